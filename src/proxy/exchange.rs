//! Statements the proxy runs itself on a session's upstream connection (a
//! rewrite's steps), with their replies read here instead of relayed.
//!
//! Only called while the session is quiet: every message the client sent
//! before has been answered, so what the server sends now answers the
//! proxy, except the asynchronous messages (NotificationResponse,
//! ParameterStatus, NoticeResponse) that belong to the client and are handed
//! back for it.

use super::stream::Stream;
use crate::wire::messages::{self, ErrorFields};
use crate::wire::FrameHeader;
use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one statement run by the proxy produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The server's error, if the statement failed.
    pub error: Option<ErrorFields>,
    /// DataRow messages received (a condition query's answer).
    pub rows: usize,
    /// Transaction status of the ReadyForQuery that ended it.
    pub status: u8,
}

/// Runs `sql` as a simple Query on `server` and reads to its ReadyForQuery.
/// `buf` holds bytes already read from the server (consumed from the
/// front); asynchronous messages meant for the client are appended, framed,
/// to `for_client`.
pub async fn run(
    server: &mut Stream,
    buf: &mut BytesMut,
    sql: &str,
    for_client: &mut Vec<u8>,
) -> io::Result<Outcome> {
    server.write_all(&messages::query(sql)).await?;
    server.flush().await?;
    let mut outcome = Outcome::default();
    loop {
        let head = match FrameHeader::parse(buf) {
            Ok(Some(head)) if buf.len() >= head.total_len => head,
            Ok(_) => {
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(16 * 1024);
                }
                if server.read_buf(buf).await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                continue;
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        };
        let frame = buf.split_to(head.total_len);
        let body = &frame[5..];
        match head.tag {
            b'E' => {
                let fields = messages::error_fields(body);
                outcome.error.get_or_insert(fields);
            }
            b'D' => outcome.rows += 1,
            b'A' | b'S' | b'N' => for_client.extend_from_slice(&frame),
            b'Z' => {
                outcome.status = messages::ready_status(body).unwrap_or(b'I');
                return Ok(outcome);
            }
            _ => {}
        }
    }
}

/// A `CommandComplete` frame with `tag`.
pub fn command_complete(tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 6);
    out.push(b'C');
    out.extend_from_slice(&(tag.len() as u32 + 5).to_be_bytes());
    out.extend_from_slice(tag.as_bytes());
    out.push(0);
    out
}

/// A `ReadyForQuery` frame with transaction `status`.
pub fn ready_for_query(status: u8) -> [u8; 6] {
    [b'Z', 0, 0, 0, 5, status]
}

/// Drops `n` bytes from the front of `buf` (a held message the proxy
/// answered itself).
pub fn discard(buf: &mut BytesMut, n: usize) {
    buf.advance(n.min(buf.len()));
}

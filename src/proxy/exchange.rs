//! Statements the proxy runs itself on a session's upstream connection (a
//! rewrite's steps), with their replies read here instead of relayed.
//!
//! Only called while the session is quiet: every message the client sent
//! before has been answered, so what the server sends now answers the
//! proxy, except the asynchronous messages (NotificationResponse,
//! ParameterStatus, NoticeResponse) that belong to the client and are handed
//! back for it.

use crate::net::stream::Stream;
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
    /// The rows received, each column as text (`None` for NULL); the
    /// proxy's own queries ask for text results.
    pub rows: Vec<Vec<Option<String>>>,
    /// Every frame but ReadyForQuery, as received, when the caller asked
    /// to keep them (a client statement the proxy ran on its behalf).
    pub frames: Vec<u8>,
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
    exchange(server, buf, &messages::query(sql), for_client, false).await
}

/// Like [`run`], for a client's own statement: every frame but the final
/// ReadyForQuery is kept in `Outcome::frames` (asynchronous ones too, in
/// their place), for the client if this attempt is the one it gets.
pub async fn run_keeping(
    server: &mut Stream,
    buf: &mut BytesMut,
    sql: &str,
) -> io::Result<Outcome> {
    let mut unused = Vec::new();
    exchange(server, buf, &messages::query(sql), &mut unused, true).await
}

/// Sends a Sync of the proxy's own and reads to its ReadyForQuery, keeping
/// every frame before it: the replies to a client's extended-protocol
/// messages (ParseComplete, BindComplete, descriptions, an error) that were
/// forwarded before the statement the proxy holds.
pub async fn sync_keeping(server: &mut Stream, buf: &mut BytesMut) -> io::Result<Outcome> {
    let mut unused = Vec::new();
    exchange(server, buf, &messages::SYNC, &mut unused, true).await
}

async fn exchange(
    server: &mut Stream,
    buf: &mut BytesMut,
    request: &[u8],
    for_client: &mut Vec<u8>,
    keep: bool,
) -> io::Result<Outcome> {
    server.write_all(request).await?;
    server.flush().await?;
    let mut outcome = Outcome::default();
    loop {
        let frame = next_frame(server, buf).await?;
        let head = FrameHeader {
            tag: frame[0],
            total_len: frame.len(),
        };
        let body = &frame[5..];
        if head.tag == b'Z' {
            outcome.status = messages::ready_status(body).unwrap_or(b'I');
            return Ok(outcome);
        }
        if keep {
            outcome.frames.extend_from_slice(&frame);
        }
        match head.tag {
            b'E' => {
                let fields = messages::error_fields(body);
                outcome.error.get_or_insert(fields);
            }
            b'D' => outcome.rows.push(data_row(body)),
            b'A' | b'S' | b'N' if !keep => for_client.extend_from_slice(&frame),
            _ => {}
        }
    }
}

/// Reads the next whole frame from `server` (bytes already read are in
/// `buf`, consumed from the front).
pub(super) async fn next_frame(server: &mut Stream, buf: &mut BytesMut) -> io::Result<BytesMut> {
    loop {
        match FrameHeader::parse(buf) {
            Ok(Some(head)) if buf.len() >= head.total_len => {
                return Ok(buf.split_to(head.total_len))
            }
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
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}

/// The text columns of a DataRow body (`None` for NULL; a malformed row
/// ends where it stops making sense).
fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return out;
    };
    let mut rest = &body[2..];
    for _ in 0..count {
        let Some(len) = rest
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        rest = &rest[4..];
        if len < 0 {
            out.push(None);
            continue;
        }
        let len = len as usize;
        let Some(value) = rest.get(..len) else {
            break;
        };
        out.push(Some(String::from_utf8_lossy(value).into_owned()));
        rest = &rest[len..];
    }
    out
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

//! The client side of `auth.mode = "proxy"`: the proxy asks for SCRAM
//! (with `-PLUS` over TLS) or md5, as the stored verifier allows, checks
//! the answer, and keeps what logs in upstream. Unknown users go through a
//! mock SCRAM exchange and fail like a wrong password.

use super::md5;
use super::scram_server::{self, ScramError, ScramServer};
use super::secret::Secret;
use crate::net::stream::Stream;
use crate::wire::messages::{cstr, ProxyError};
use crate::wire::{FrameHeader, WireError};
use bytes::{Buf, BytesMut};
use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the client proved, in the form the upstream login needs.
pub enum Proof {
    /// SCRAM: the ClientKey recovered from the proof, and the verifier's
    /// ServerKey to check the upstream's signature with.
    Scram {
        /// `HMAC(SaltedPassword, "Client Key")`.
        client_key: [u8; 32],
        /// `HMAC(SaltedPassword, "Server Key")`.
        server_key: Vec<u8>,
    },
    /// md5: the stored hash (32 hex digits).
    Md5(String),
}

/// Why the client was not let in.
#[derive(Debug, Error)]
pub enum ClientLegError {
    /// The client went away or the socket failed.
    #[error("connection lost during authentication: {0}")]
    Io(#[from] io::Error),
    /// A message that is not a valid frame.
    #[error(transparent)]
    Protocol(#[from] WireError),
    /// Refused, with the ErrorResponse Postgres would send.
    #[error("{}", .0.message)]
    Refused(ProxyError),
}

/// Postgres' words for a failed password check, for known and unknown users alike.
pub fn password_failed(user: &str) -> ProxyError {
    ProxyError::fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

/// An `Authentication*` frame with request `code` and `data`.
pub fn auth_frame(code: i32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + data.len());
    out.push(b'R');
    out.extend_from_slice(&((8 + data.len()) as u32).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Authenticates the client as `user` against `secret` (`None`: unknown
/// user, a mock that always fails). `end_point` is the hash of the proxy's
/// certificate when the client leg is TLS. Messages the client pipelined
/// after its last authentication message stay in `buf`.
pub async fn authenticate(
    client: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    secret: Option<Secret>,
    end_point: Option<&[u8]>,
    mock_key: &[u8],
    max_message: usize,
) -> Result<Proof, ClientLegError> {
    let scram = match secret {
        Some(Secret::Md5(stored)) => {
            return md5_exchange(client, buf, user, stored, max_message).await
        }
        Some(Secret::Scram(s)) => Some(s),
        None => None,
    };
    let known = scram.is_some();
    let verifier = scram.unwrap_or_else(|| scram_server::mock(user, mock_key));
    let server_key = verifier.server_key.clone();
    send(
        client,
        &auth_frame(10, &scram_server::offer(end_point.is_some())[4..]),
    )
    .await?;
    let body = read_password_message(client, buf, max_message).await?;
    let (mechanism, rest) = cstr(&body);
    let data = sasl_data(rest)?;
    let mechanism = String::from_utf8_lossy(mechanism);
    let (server, server_first) =
        ScramServer::start(verifier, end_point, &mechanism, data).map_err(|e| refused(user, e))?;
    send(client, &auth_frame(11, server_first.as_bytes())).await?;
    let body = read_password_message(client, buf, max_message).await?;
    let proven = server.finish(&body).map_err(|e| refused(user, e))?;
    if !known {
        // A mock cannot be satisfied; this is not reached in practice.
        return Err(ClientLegError::Refused(password_failed(user)));
    }
    send(client, &auth_frame(12, proven.server_final.as_bytes())).await?;
    Ok(Proof::Scram {
        client_key: proven.client_key,
        server_key,
    })
}

async fn md5_exchange(
    client: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
    stored: String,
    max_message: usize,
) -> Result<Proof, ClientLegError> {
    let salt: [u8; 4] = super::scram::random(4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| io::Error::other("no randomness for an md5 salt"))?;
    send(client, &auth_frame(5, &salt)).await?;
    let body = read_password_message(client, buf, max_message).await?;
    let given = String::from_utf8_lossy(cstr(&body).0);
    if md5::check(&stored, &salt, &given) {
        Ok(Proof::Md5(stored))
    } else {
        Err(ClientLegError::Refused(password_failed(user)))
    }
}

fn refused(user: &str, e: ScramError) -> ClientLegError {
    if e == ScramError::Proof {
        return ClientLegError::Refused(password_failed(user));
    }
    let mut err = ProxyError::fatal(e.sqlstate(), e.to_string());
    if let Some(d) = e.detail() {
        err = err.with_detail(d);
    }
    ClientLegError::Refused(err)
}

/// The data of a `SASLInitialResponse` after the mechanism name.
fn sasl_data(rest: &[u8]) -> Result<&[u8], ClientLegError> {
    let malformed = || {
        ClientLegError::Refused(
            ProxyError::fatal("08P01", "malformed SCRAM message")
                .with_detail("The SASLInitialResponse message is truncated."),
        )
    };
    let len = rest
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(malformed)?;
    let data = &rest[4..];
    match usize::try_from(len) {
        Ok(n) if n == data.len() => Ok(data),
        _ => Err(malformed()),
    }
}

async fn send(client: &mut Stream, frame: &[u8]) -> io::Result<()> {
    client.write_all(frame).await?;
    client.flush().await
}

/// Reads the client's next message, which must be a password message (`p`).
async fn read_password_message(
    client: &mut Stream,
    buf: &mut BytesMut,
    max_message: usize,
) -> Result<Vec<u8>, ClientLegError> {
    loop {
        if let Some(head) = FrameHeader::parse(buf)? {
            if head.total_len > max_message {
                return Err(WireError::TooLarge {
                    tag: head.tag as char,
                    len: head.total_len,
                    limit: max_message,
                }
                .into());
            }
            if buf.len() >= head.total_len {
                if head.tag != b'p' {
                    return Err(ClientLegError::Refused(ProxyError::fatal(
                        "08P01",
                        format!("expected SASL response, got message type {}", head.tag),
                    )));
                }
                let body = buf[5..head.total_len].to_vec();
                buf.advance(head.total_len);
                return Ok(body);
            }
        }
        if client.read_buf(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection during authentication",
            )
            .into());
        }
    }
}

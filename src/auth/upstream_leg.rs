//! The upstream side of `auth.mode = "proxy"`: sends the client's startup
//! packet and answers the server's challenge with what the client proved
//! (the ClientKey for SCRAM, `-PLUS` over TLS when offered; the stored hash
//! for md5). Trust just connects. Stops at `AuthenticationOk`, which stays
//! in the buffer for the relay of the rest of the startup.

use super::client_leg::Proof;
use super::scram_upstream::{self, ScramClient, UpstreamScramError};
use crate::net::stream::Stream;
use crate::wire::messages;
use crate::wire::{FrameHeader, WireError};
use bytes::BytesMut;
use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why the upstream login did not reach `AuthenticationOk`.
#[derive(Debug, Error)]
pub enum UpstreamLoginError {
    /// Socket error or the server went away.
    #[error("upstream connection lost during login: {0}")]
    Io(#[from] io::Error),
    /// The server sent something that is not a valid frame.
    #[error(transparent)]
    Protocol(#[from] WireError),
    /// The server refused (its ErrorResponse frame is relayed to the client).
    #[error("upstream refused the session: {code} {message}")]
    Rejected {
        /// SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
        /// The whole ErrorResponse frame.
        frame: Vec<u8>,
    },
    /// The SCRAM exchange failed on the proxy's side.
    #[error(transparent)]
    Scram(#[from] UpstreamScramError),
    /// The server asks for something the client's proof cannot answer.
    #[error("{0}")]
    Unanswerable(String),
}

/// Logs in as the client's user. `end_point` is the upstream certificate's
/// hash when that leg is TLS. Frames the client must see before
/// `AuthenticationOk` (NegotiateProtocolVersion) are appended to `to_client`.
pub async fn login(
    server: &mut Stream,
    buf: &mut BytesMut,
    raw_startup: &[u8],
    proof: &Proof,
    end_point: Option<Vec<u8>>,
    to_client: &mut Vec<u8>,
) -> Result<(), UpstreamLoginError> {
    server.write_all(raw_startup).await?;
    server.flush().await?;
    let mut scram: Option<ScramClient> = None;
    // Set once the server proved it knows the verifier (SASLFinal checked).
    let mut server_verified = false;
    loop {
        let Some(head) = FrameHeader::parse(buf)?.filter(|h| buf.len() >= h.total_len) else {
            if server.read_buf(buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection during authentication",
                )
                .into());
            }
            continue;
        };
        let frame = &buf[..head.total_len];
        let body = &frame[5..];
        let reply = match head.tag {
            b'R' => {
                let code = messages::auth_code(body)?;
                let data = &body[4..];
                match code {
                    // AuthenticationOk: left in the buffer for the relay. After
                    // a SCRAM exchange only once the server's signature was
                    // checked (as libpq): a server that skips SASLFinal has not
                    // proved it is the one the verifier came from.
                    0 if scram.is_some() && !server_verified => {
                        return Err(UpstreamScramError::Malformed(
                            "AuthenticationOk before the server's SCRAM signature (SASLFinal)",
                        )
                        .into())
                    }
                    0 => return Ok(()),
                    5 => md5_reply(proof, data)?,
                    10 => {
                        let (client_key, server_key) = scram_keys(proof)?;
                        let offered = scram_upstream::mechanisms(data);
                        let (client, mechanism, first) = ScramClient::start(
                            client_key,
                            server_key,
                            &offered,
                            end_point.clone(),
                        )?;
                        tracing::debug!(mechanism, "upstream login with the client's SCRAM key");
                        scram = Some(client);
                        sasl_initial(mechanism, first.as_bytes())
                    }
                    11 => {
                        let client = scram.as_mut().ok_or(UpstreamScramError::Malformed(
                            "SASLContinue before SASL",
                        ))?;
                        password_message(client.respond(data)?.as_bytes())
                    }
                    12 => {
                        let client = scram.as_ref().ok_or(UpstreamScramError::Malformed(
                            "SASLFinal before SASL",
                        ))?;
                        client.verify(data)?;
                        server_verified = true;
                        Vec::new()
                    }
                    3 => return Err(UpstreamLoginError::Unanswerable(
                        "the upstream asks for a plain-text password (pg_hba.conf method \"password\"), which auth.mode = \"proxy\" never knows; use scram-sha-256 (or md5) in pg_hba.conf for connections from ddlguard".into(),
                    )),
                    other => return Err(UpstreamLoginError::Unanswerable(format!(
                        "the upstream asks for authentication method {other}, which auth.mode = \"proxy\" cannot answer; use scram-sha-256 in pg_hba.conf for connections from ddlguard"
                    ))),
                }
            }
            b'E' => {
                let fields = messages::error_fields(body);
                return Err(UpstreamLoginError::Rejected {
                    code: fields.code,
                    message: fields.message,
                    frame: frame.to_vec(),
                });
            }
            _ => {
                to_client.extend_from_slice(frame);
                Vec::new()
            }
        };
        let _ = buf.split_to(head.total_len);
        if !reply.is_empty() {
            server.write_all(&reply).await?;
            server.flush().await?;
        }
    }
}

fn scram_keys(proof: &Proof) -> Result<([u8; 32], Vec<u8>), UpstreamLoginError> {
    match proof {
        Proof::Scram {
            client_key,
            server_key,
        } => Ok((*client_key, server_key.clone())),
        Proof::Md5(_) => Err(UpstreamLoginError::Unanswerable(
            "the upstream asks for SCRAM, but this user's stored password is an md5 hash; set the password again with password_encryption = 'scram-sha-256'".into(),
        )),
    }
}

fn md5_reply(proof: &Proof, data: &[u8]) -> Result<Vec<u8>, UpstreamLoginError> {
    let salt: [u8; 4] = data
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated("AuthenticationMD5Password"))?;
    match proof {
        Proof::Md5(stored) => {
            let mut text = super::md5::answer(stored, &salt).into_bytes();
            text.push(0);
            Ok(password_message(&text))
        }
        // Postgres only asks md5 of a user with an md5 hash.
        Proof::Scram { .. } => Err(UpstreamLoginError::Unanswerable(
            "the upstream asks for md5, but this user's stored password is a SCRAM verifier".into(),
        )),
    }
}

fn password_message(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.push(b'p');
    out.extend_from_slice(&((4 + data.len()) as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn sasl_initial(mechanism: &str, first: &[u8]) -> Vec<u8> {
    let mut data = mechanism.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(&(first.len() as i32).to_be_bytes());
    data.extend_from_slice(first);
    password_message(&data)
}

//! The startup phase: TLS (SSLRequest or PostgreSQL 17's direct TLS) and
//! GSS negotiation with the client, then the relay of the startup up to the
//! first ReadyForQuery (the whole authentication exchange in passthrough,
//! what follows AuthenticationOk when the proxy authenticated the client:
//! see `login`).

use crate::net::stream::Stream;
use crate::wire::messages::{self, AUTH_SASL};
use crate::wire::startup::MAX_STARTUP_LEN;
use crate::wire::{FrameHeader, StartupPacket, StartupParams, WireError};
use bytes::{Buf, BytesMut};
use std::io;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Why a session ended before it reached the relay phase.
#[derive(Debug, Error)]
pub enum StartupError {
    /// Socket error or the peer went away.
    #[error("connection lost during startup: {0}")]
    Io(#[from] io::Error),
    /// The client sent something that is not a valid startup packet or message.
    #[error(transparent)]
    Protocol(#[from] WireError),
    /// TLS handshake with the client failed.
    #[error("TLS handshake with client failed: {0}")]
    Tls(io::Error),
    /// The client started a TLS ClientHello without SSLRequest
    /// (`sslnegotiation=direct`), and no certificate is configured.
    #[error("client started TLS directly (sslnegotiation=direct), but TLS towards clients is off (server.tls_cert, server.tls_key)")]
    DirectTls,
    /// Direct TLS without the ALPN protocol `postgresql`: refused, as
    /// Postgres 17 refuses it.
    #[error("received direct SSL connection request without ALPN protocol negotiation extension")]
    NoAlpn,
    /// The client sent a second SSLRequest after TLS was set up.
    #[error("client sent SSLRequest twice")]
    DoubleSsl,
    /// The upstream refused the session (bad password, unknown database, ...).
    #[error("upstream refused the session: {code} {message}")]
    Rejected { code: String, message: String },
}

/// What the first packets of a connection asked for.
pub enum Opening {
    /// A session: the (possibly TLS) client stream and its startup packet.
    Session {
        /// The client connection, after TLS if negotiated.
        client: Stream,
        /// The raw startup packet, relayed upstream unchanged.
        raw: Vec<u8>,
        /// Protocol version requested.
        version: u32,
        /// Parameters read for logging.
        params: StartupParams,
    },
    /// A CancelRequest for the given backend key. The client's socket comes
    /// along: it must stay open until the cancel has reached Postgres, since
    /// libpq and most drivers take its close as "the cancel has landed".
    Cancel {
        /// The backend key (pid + secret) the client wants cancelled.
        key: Vec<u8>,
        /// The cancel connection, closed only after the upstream closed its own.
        client: Stream,
    },
}

/// A failed opening, with the client connection when it can still be
/// answered (an invalid startup packet gets an ErrorResponse, as Postgres
/// sends one, instead of a bare close).
pub struct OpenFailure {
    /// What went wrong.
    pub error: StartupError,
    /// The client connection, when the failure left it usable.
    pub client: Option<Stream>,
}

impl From<StartupError> for OpenFailure {
    fn from(error: StartupError) -> Self {
        OpenFailure {
            error,
            client: None,
        }
    }
}

impl From<io::Error> for OpenFailure {
    fn from(e: io::Error) -> Self {
        StartupError::Io(e).into()
    }
}

/// Reads the client's opening packets, answering SSLRequest and GSSENCRequest.
pub async fn open(tcp: TcpStream, acceptor: Option<&TlsAcceptor>) -> Result<Opening, OpenFailure> {
    let mut client = direct_tls(tcp, acceptor).await?;
    loop {
        let parsed = match read_startup_packet(&mut client).await {
            Ok(packet) => StartupPacket::parse(packet).map_err(StartupError::from),
            Err(e) => Err(e),
        };
        let packet = match parsed {
            Ok(packet) => packet,
            Err(error @ StartupError::Protocol(_)) => {
                return Err(OpenFailure {
                    error,
                    client: Some(client),
                })
            }
            Err(error) => return Err(error.into()),
        };
        match packet {
            StartupPacket::SslRequest => {
                if client.is_tls() {
                    return Err(StartupError::DoubleSsl.into());
                }
                let Stream::Plain(mut tcp) = client else {
                    return Err(StartupError::DoubleSsl.into());
                };
                match acceptor {
                    Some(acceptor) => {
                        tcp.write_all(b"S").await?;
                        let tls = acceptor.accept(tcp).await.map_err(StartupError::Tls)?;
                        client = Stream::Accepted(Box::new(tls));
                    }
                    None => {
                        tcp.write_all(b"N").await?;
                        client = Stream::Plain(tcp);
                    }
                }
            }
            StartupPacket::GssEncRequest => client.write_all(b"N").await?,
            StartupPacket::Cancel { key } => return Ok(Opening::Cancel { key, client }),
            StartupPacket::Startup {
                version,
                params,
                raw,
            } => {
                return Ok(Opening::Session {
                    client,
                    raw,
                    version,
                    params,
                })
            }
        }
    }
}

/// PostgreSQL 17's `sslnegotiation=direct`: a TLS handshake record (0x16)
/// as the first byte instead of an SSLRequest. Accepted with the ALPN
/// protocol `postgresql` (rustls refuses a client offering only others),
/// refused without ALPN, as Postgres does.
async fn direct_tls(
    tcp: TcpStream,
    acceptor: Option<&TlsAcceptor>,
) -> Result<Stream, StartupError> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 || first[0] != 0x16 {
        return Ok(Stream::Plain(tcp));
    }
    let Some(acceptor) = acceptor else {
        return Err(StartupError::DirectTls);
    };
    let tls = acceptor.accept(tcp).await.map_err(StartupError::Tls)?;
    if tls.get_ref().1.alpn_protocol() != Some(crate::net::tls::ALPN) {
        return Err(StartupError::NoAlpn);
    }
    Ok(Stream::Accepted(Box::new(tls)))
}

async fn read_startup_packet(stream: &mut Stream) -> Result<Vec<u8>, StartupError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    if len[0] == 0x16 {
        return Err(StartupError::DirectTls);
    }
    let n = u32::from_be_bytes(len);
    if !(8..=MAX_STARTUP_LEN).contains(&n) {
        return Err(WireError::BadStartupLength(n).into());
    }
    let mut packet = vec![0u8; n as usize];
    packet[..4].copy_from_slice(&len);
    stream.read_exact(&mut packet[4..]).await?;
    Ok(packet)
}

/// How much a client may send ahead of the end of authentication (its
/// first statements, pipelined with the startup packet) before the proxy
/// stops reading it until the relay starts.
const EARLY_LIMIT: usize = 1024 * 1024;

/// What the authentication exchange produced.
pub struct Authenticated {
    /// BackendKeyData body (pid + secret key), if the server sent one.
    pub backend_key: Option<Vec<u8>>,
    /// Client bytes read past the startup phase, for the relay.
    pub client_buf: BytesMut,
    /// Server bytes read past the first ReadyForQuery, for the relay.
    pub server_buf: BytesMut,
}

/// Sends the startup packet upstream and relays the authentication exchange
/// both ways until the server's first ReadyForQuery.
///
/// Messages are relayed unchanged except `AuthenticationSASL`, from which
/// `SCRAM-SHA-256-PLUS` is removed: channel binding would bind to the
/// proxy's certificate, not the server's.
pub async fn authenticate(
    client: &mut Stream,
    server: &mut Stream,
    raw_startup: &[u8],
    max_message: usize,
) -> Result<Authenticated, StartupError> {
    server.write_all(raw_startup).await?;
    server.flush().await?;
    let buffers = Buffers {
        from_client: BytesMut::with_capacity(1024),
        from_server: BytesMut::with_capacity(4096),
        to_client: Vec::with_capacity(1024),
    };
    relay_until_ready(client, server, buffers, max_message).await
}

/// What was read or is due when the relay of the startup takes over.
pub struct Buffers {
    /// Client bytes not yet handled.
    pub from_client: BytesMut,
    /// Server bytes not yet handled (from `AuthenticationOk` on, in proxy mode).
    pub from_server: BytesMut,
    /// Frames due to the client.
    pub to_client: Vec<u8>,
}

/// Relays the startup both ways until the server's first ReadyForQuery,
/// keeping the BackendKeyData (the client sees the server's own).
pub async fn relay_until_ready(
    client: &mut Stream,
    server: &mut Stream,
    buffers: Buffers,
    max_message: usize,
) -> Result<Authenticated, StartupError> {
    let Buffers {
        mut from_client,
        mut from_server,
        mut to_client,
    } = buffers;
    let mut to_server = Vec::new();
    let mut backend_key = None;
    loop {
        while let Some(head) = FrameHeader::parse(&from_server)? {
            if from_server.len() < head.total_len {
                break;
            }
            let frame = from_server.split_to(head.total_len);
            let body = &frame[5..];
            match head.tag {
                b'R' if messages::auth_code(body)? == AUTH_SASL => {
                    match messages::strip_scram_plus(body)? {
                        Some(stripped) => to_client.extend_from_slice(&stripped),
                        None => to_client.extend_from_slice(&frame),
                    }
                }
                b'K' => {
                    backend_key = Some(body.to_vec());
                    to_client.extend_from_slice(&frame);
                }
                b'E' => {
                    to_client.extend_from_slice(&frame);
                    let _ = client.write_all(&to_client).await;
                    let _ = client.flush().await;
                    let fields = messages::error_fields(body);
                    return Err(StartupError::Rejected {
                        code: fields.code,
                        message: fields.message,
                    });
                }
                b'Z' => {
                    to_client.extend_from_slice(&frame);
                    client.write_all(&to_client).await?;
                    client.flush().await?;
                    return Ok(Authenticated {
                        backend_key,
                        client_buf: from_client,
                        server_buf: from_server,
                    });
                }
                _ => to_client.extend_from_slice(&frame),
            }
        }
        if !to_client.is_empty() {
            client.write_all(&to_client).await?;
            client.flush().await?;
            to_client.clear();
        }
        tokio::select! {
            read = server.read_buf(&mut from_server) => {
                if read? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed the connection during authentication").into());
                }
            }
            read = client.read_buf(&mut from_client), if from_client.len() < EARLY_LIMIT => {
                if read? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed the connection during authentication").into());
                }
                while let Some(head) = FrameHeader::parse(&from_client)? {
                    if head.total_len > max_message {
                        return Err(WireError::TooLarge { tag: head.tag as char, len: head.total_len, limit: max_message }.into());
                    }
                    if from_client.len() < head.total_len {
                        break;
                    }
                    if head.tag != b'p' {
                        // A statement sent ahead of the end of authentication
                        // waits for the relay, which tracks and gates it.
                        break;
                    }
                    to_server.extend_from_slice(&from_client[..head.total_len]);
                    from_client.advance(head.total_len);
                }
                if !to_server.is_empty() {
                    server.write_all(&to_server).await?;
                    server.flush().await?;
                    to_server.clear();
                }
            }
        }
    }
}

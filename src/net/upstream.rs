//! Connections to the upstream Postgres: TCP, the TLS negotiation of
//! `upstream.tls`, and out-of-band cancel requests.

use super::pg_tls::{RustlsConnect, RustlsMake};
use super::settings::{UpstreamConfig, UpstreamTls};
use super::stream::Stream;
use super::tls::{self, TlsError};
use crate::wire::startup::{cancel_request, ssl_request};
use std::io;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_postgres::config::SslMode;
use tokio_rustls::TlsConnector;

/// Why a connection to the upstream failed. Each names the upstream address.
#[derive(Debug, Error)]
pub enum UpstreamError {
    /// TCP connect failed (refused, unreachable, name not resolved).
    #[error("could not connect to upstream {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// TCP connect or TLS handshake took longer than `upstream.connect_timeout`.
    #[error("timed out connecting to upstream {addr} after {secs:.1}s (upstream.connect_timeout)")]
    Timeout { addr: String, secs: f64 },
    /// `tls = require` or stricter, and the server does not do TLS.
    #[error("upstream {addr} does not accept TLS, but upstream.tls = \"{mode}\" requires it")]
    TlsRefused { addr: String, mode: &'static str },
    /// The TLS handshake failed (e.g. certificate verification).
    #[error("TLS handshake with upstream {addr} failed: {source}")]
    Handshake { addr: String, source: io::Error },
    /// The upstream host is not usable as a TLS name.
    #[error("upstream {addr}: {source}")]
    Name { addr: String, source: TlsError },
}

impl UpstreamError {
    /// SQLSTATE sent to the client: 08001 sqlclient_unable_to_establish_sqlconnection.
    pub fn sqlstate(&self) -> &'static str {
        "08001"
    }
}

/// The upstream a session relays to: its settings and the TLS connector built
/// once from them. Sessions keep the one they started with across reloads.
pub struct Upstream {
    /// The `[upstream]` settings.
    pub config: UpstreamConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Upstream {
    /// Builds the connector for `config`.
    pub fn new(config: UpstreamConfig) -> Result<Upstream, TlsError> {
        let tls = match config.tls {
            UpstreamTls::Disable => None,
            _ => Some(tls::client_config(&config)?),
        };
        Ok(Upstream { config, tls })
    }

    /// Opens a connection, negotiating TLS as `upstream.tls` says, within
    /// `upstream.connect_timeout`.
    pub async fn connect(&self) -> Result<Stream, UpstreamError> {
        let limit = self.config.connect_timeout.0;
        match timeout(limit, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout {
                addr: self.config.address(),
                secs: limit.as_secs_f64(),
            }),
        }
    }

    /// A TCP connection within `upstream.connect_timeout`, for
    /// tokio-postgres to negotiate TLS on itself (see [`Upstream::pg_tls`]).
    pub async fn connect_tcp(&self) -> Result<TcpStream, UpstreamError> {
        let limit = self.config.connect_timeout.0;
        let addr = self.config.address();
        let connect = TcpStream::connect((self.config.host.as_str(), self.config.port));
        match timeout(limit, connect).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                Ok(tcp)
            }
            Ok(Err(source)) => Err(UpstreamError::Connect { addr, source }),
            Err(_) => Err(UpstreamError::Timeout {
                addr,
                secs: limit.as_secs_f64(),
            }),
        }
    }

    /// The proxy's own tokio-postgres connections to this upstream (the
    /// service login): `upstream.tls` as libpq's sslmode, with channel
    /// binding over TLS. `None` for `tls = "disable"`.
    pub fn pg_tls(&self) -> Result<Option<(RustlsConnect, SslMode)>, UpstreamError> {
        let Some(config) = &self.tls else {
            return Ok(None);
        };
        let mode = match self.config.tls {
            UpstreamTls::Disable => return Ok(None),
            UpstreamTls::Prefer => SslMode::Prefer,
            UpstreamTls::Require | UpstreamTls::VerifyCa | UpstreamTls::VerifyFull => {
                SslMode::Require
            }
        };
        let connect = RustlsMake::new(config.clone())
            .for_host(&self.config.host)
            .map_err(|source| UpstreamError::Connect {
                addr: self.config.address(),
                source,
            })?;
        Ok(Some((connect, mode)))
    }

    async fn connect_inner(&self) -> Result<Stream, UpstreamError> {
        let addr = self.config.address();
        let mut tcp = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let connector = TlsConnector::from(config.clone());
        let io_err = |source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        };
        tcp.write_all(&ssl_request()).await.map_err(io_err)?;
        let answer = tcp.read_u8().await.map_err(io_err)?;
        if answer != b'S' {
            return match self.config.tls {
                UpstreamTls::Prefer => self.plain_after_refusal(tcp, answer).await,
                mode => Err(UpstreamError::TlsRefused {
                    addr,
                    mode: mode_name(mode),
                }),
            };
        }
        let name = tls::server_name(&self.config.host).map_err(|source| UpstreamError::Name {
            addr: addr.clone(),
            source,
        })?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|source| UpstreamError::Handshake { addr, source })?;
        Ok(Stream::Connected(Box::new(stream)))
    }

    /// After `N` the same socket goes on in plain text; after anything else
    /// (an ancient server's error) a fresh socket is opened, as libpq does.
    async fn plain_after_refusal(
        &self,
        tcp: TcpStream,
        answer: u8,
    ) -> Result<Stream, UpstreamError> {
        if answer == b'N' {
            return Ok(Stream::Plain(tcp));
        }
        drop(tcp);
        let tcp = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: self.config.address(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        Ok(Stream::Plain(tcp))
    }

    /// Sends a CancelRequest for backend `key` on a new connection, as Postgres
    /// expects, and waits for the server to close it.
    pub async fn cancel(&self, key: &[u8]) -> Result<(), UpstreamError> {
        let mut stream = self.connect().await?;
        let addr = self.config.address();
        let io_err = |source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        };
        stream
            .write_all(&cancel_request(key))
            .await
            .map_err(io_err)?;
        stream.flush().await.map_err(io_err)?;
        let mut sink = [0u8; 64];
        // The server closes the connection without answering.
        let _ = timeout(self.config.connect_timeout.0, stream.read(&mut sink)).await;
        Ok(())
    }
}

fn mode_name(mode: UpstreamTls) -> &'static str {
    match mode {
        UpstreamTls::Disable => "disable",
        UpstreamTls::Prefer => "prefer",
        UpstreamTls::Require => "require",
        UpstreamTls::VerifyCa => "verify-ca",
        UpstreamTls::VerifyFull => "verify-full",
    }
}

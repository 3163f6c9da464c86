//! TLS for the proxy's own tokio-postgres connections (the service login,
//! the `postgres://` usage store) on rustls: a `MakeTlsConnect` whose
//! streams report `tls-server-end-point`, so SCRAM-SHA-256-PLUS works as
//! with any libpq client.

use super::tls::end_point;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// Makes a TLS connector per host name from one rustls client configuration.
#[derive(Clone)]
pub struct RustlsMake {
    config: Arc<rustls::ClientConfig>,
}

impl RustlsMake {
    /// Connectors using `config` (certificate checks as its verifier says).
    pub fn new(config: Arc<rustls::ClientConfig>) -> RustlsMake {
        RustlsMake { config }
    }

    /// The connector for `host` (SNI and the name checked by `verify-full`).
    pub fn for_host(&self, host: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

impl<S> MakeTlsConnect<S> for RustlsMake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        self.for_host(domain)
    }
}

/// One TLS handshake towards a named server.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS stream that knows the server certificate's end-point hash.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(cert) => ChannelBinding::tls_server_end_point(end_point(cert)),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// The TLS settings of a libpq connection URL, taken out of the URL that
/// tokio-postgres parses (it knows neither `verify-*` nor `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTls {
    /// The URL without `sslmode` and `sslrootcert`.
    pub url: String,
    /// `sslmode`, libpq's default `prefer` when absent.
    pub mode: super::settings::UpstreamTls,
    /// `sslrootcert`: the CA the server's certificate must lead to.
    pub root_cert: Option<std::path::PathBuf>,
}

/// Reads `sslmode` and `sslrootcert` from the query string of a
/// `postgres://` URL, as libpq would.
pub fn url_tls(url: &str) -> Result<UrlTls, String> {
    use super::settings::UpstreamTls;
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = UpstreamTls::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" | "allow" => UpstreamTls::Disable,
                    "prefer" => UpstreamTls::Prefer,
                    "require" => UpstreamTls::Require,
                    "verify-ca" => UpstreamTls::VerifyCa,
                    "verify-full" => UpstreamTls::VerifyFull,
                    other => return Err(format!("invalid sslmode {other:?}")),
                }
            }
            "sslrootcert" => root_cert = Some(std::path::PathBuf::from(percent_decode(value))),
            _ => kept.push(pair),
        }
    }
    if matches!(mode, UpstreamTls::VerifyCa | UpstreamTls::VerifyFull) && root_cert.is_none() {
        return Err(
            "sslmode=verify-ca and verify-full need sslrootcert=<PEM file of the CA>".into(),
        );
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(UrlTls {
        url,
        mode,
        root_cert,
    })
}

/// `%XX` escapes of a URL value decoded (invalid ones kept as written).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::settings::UpstreamTls;
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_leave_the_url_and_default_to_prefer() {
        let t = url_tls("postgres://u@h/db").unwrap();
        assert_eq!(
            (t.url.as_str(), t.mode, t.root_cert),
            ("postgres://u@h/db", UpstreamTls::Prefer, None)
        );
        let t = url_tls("postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&channel_binding=require").unwrap();
        assert_eq!(
            t.url,
            "postgres://u@h/db?application_name=x&channel_binding=require"
        );
        assert_eq!(t.mode, UpstreamTls::VerifyFull);
        assert_eq!(
            t.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert!(url_tls("postgres://u@h/db?sslmode=verify-ca").is_err());
        assert!(url_tls("postgres://u@h/db?sslmode=sometimes").is_err());
    }
}

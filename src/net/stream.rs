//! One socket type for both sides of a session, plain or TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to a client or to the upstream, before or after TLS.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS terminated by the proxy (client side).
    Accepted(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS initiated by the proxy (upstream side).
    Connected(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// The socket is on loan to the epoll relay (`proxy::direct`), which
    /// drives plain sessions without the runtime; I/O through this value
    /// fails until the socket comes back.
    Lent,
}

/// The error I/O on a [`Stream::Lent`] gets.
fn lent() -> io::Error {
    io::Error::other("the socket is lent to the epoll relay")
}

impl Stream {
    /// True when the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Accepted(_) | Stream::Connected(_))
    }

    /// The `tls-server-end-point` hash of the upstream's certificate, when
    /// this is a TLS connection the proxy opened (SCRAM-SHA-256-PLUS).
    pub fn peer_end_point(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Connected(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| super::tls::end_point(c)),
            _ => None,
        }
    }

    /// Reads and discards what the peer still sends, until it closes or
    /// `limit` passes. Closing a socket with unread input sends a TCP reset,
    /// which can destroy the error message the peer has not read yet.
    pub async fn linger(&mut self, limit: std::time::Duration) {
        use tokio::io::AsyncReadExt;
        let mut sink = vec![0u8; 8192];
        let drain = async {
            while let Ok(n) = self.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(limit, drain).await;
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Accepted(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Connected(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Lent => Poll::Ready(Err(lent())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Accepted(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Connected(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Lent => Poll::Ready(Err(lent())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Accepted(s) => Pin::new(s).poll_flush(cx),
            Stream::Connected(s) => Pin::new(s).poll_flush(cx),
            Stream::Lent => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Accepted(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Connected(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Lent => Poll::Ready(Ok(())),
        }
    }
}

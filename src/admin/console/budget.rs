//! A byte budget for the console's login phase: an unauthenticated client
//! may not make the proxy buffer more than a few SCRAM messages' worth.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a client may send before it has logged in (SCRAM needs < 1 KiB).
pub const LOGIN_BUDGET: usize = 64 * 1024;

/// A stream that fails reads once the login budget is spent, until
/// [`LoginBudget::logged_in`] lifts it.
pub struct LoginBudget<S> {
    inner: S,
    remaining: Option<usize>,
}

impl<S> LoginBudget<S> {
    /// Wraps `inner` with [`LOGIN_BUDGET`] bytes to spend before login.
    pub fn new(inner: S) -> Self {
        LoginBudget {
            inner,
            remaining: Some(LOGIN_BUDGET),
        }
    }

    /// The client is authenticated: no more limit.
    pub fn logged_in(&mut self) {
        self.remaining = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LoginBudget<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.remaining == Some(0) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "more than {LOGIN_BUDGET} bytes sent before logging in to the admin console"
                ),
            )));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(r) = &mut this.remaining {
            *r = r.saturating_sub(buf.filled().len() - before);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LoginBudget<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_fail_past_the_budget_until_login() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let mut limited = LoginBudget::new(b);
        a.write_all(&vec![0u8; LOGIN_BUDGET + 10]).await.unwrap();
        let mut sink = vec![0u8; LOGIN_BUDGET + 10];
        let mut got = 0;
        let err = loop {
            match limited.read(&mut sink[got..]).await {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(got <= LOGIN_BUDGET + 10);
        limited.logged_in();
        a.write_all(b"x").await.unwrap();
        assert!(limited.read(&mut sink).await.is_ok());
    }
}

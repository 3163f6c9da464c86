//! A minimal raw protocol client, for what real drivers never send
//! (malformed frames, unknown message types, silence).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw TCP connection speaking just enough protocol to get past startup.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
}

impl RawClient {
    /// Connects and completes a trust-authenticated startup as `postgres`.
    pub async fn login(port: u16) -> RawClient {
        RawClient::login_with(port, 196_608, &[]).await.0
    }

    /// Logs in to database `db`.
    pub async fn login_db(port: u16, db: &str) -> RawClient {
        RawClient::login_with(port, 196_608, &[("database", db)])
            .await
            .0
    }

    /// Logs in with a protocol version and extra startup parameters; returns
    /// the client and the types of the messages up to ReadyForQuery.
    pub async fn login_with(
        port: u16,
        version: u32,
        extra: &[(&str, &str)],
    ) -> (RawClient, Vec<(u8, Vec<u8>)>) {
        let mut raw = RawClient::connect(port).await;
        let mut params = vec![("user", "postgres")];
        if !extra.iter().any(|(k, _)| *k == "database") {
            params.push(("database", "postgres"));
        }
        params.extend_from_slice(extra);
        raw.send(&ddlguard::wire::startup::build_startup(version, &params))
            .await;
        let mut seen = Vec::new();
        loop {
            let (tag, body) = raw.read_message().await.expect("startup reply");
            assert_ne!(
                tag,
                b'E',
                "startup failed: {:?}",
                String::from_utf8_lossy(&body)
            );
            seen.push((tag, body));
            if tag == b'Z' {
                return (raw, seen);
            }
        }
    }

    /// Connects without sending anything.
    pub async fn connect(port: u16) -> RawClient {
        RawClient {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one message; `None` on EOF or after 20 s of silence.
    pub async fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let read = async {
            let tag = self.stream.read_u8().await.ok()?;
            let len = self.stream.read_u32().await.ok()? as usize;
            let mut body = vec![0; len.checked_sub(4)?];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((tag, body))
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .ok()?
    }

    /// Reads until an ErrorResponse and returns its SQLSTATE and message.
    pub async fn read_error(&mut self) -> Option<(String, String)> {
        loop {
            let (tag, body) = self.read_message().await?;
            if tag == b'E' {
                let f = ddlguard::wire::messages::error_fields(&body);
                return Some((f.code, f.message));
            }
        }
    }

    /// True when the peer closes the connection within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let wait = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Encodes a simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

/// Encodes an extended-protocol message: `tag`, then `parts` (each part as
/// given, already NUL-terminated where the protocol says so).
pub fn message(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 4;
    let mut out = vec![tag];
    out.extend_from_slice(&(len as u32).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Parse (unnamed statement, no parameter types), Bind (unnamed portal, no
/// parameters, text results) and Execute (all rows) of `sql`, without Sync.
pub fn parse_bind_execute(sql: &str) -> Vec<u8> {
    let sql = [sql.as_bytes(), b"\0"].concat();
    let mut out = message(b'P', &[b"\0", &sql, &0u16.to_be_bytes()]);
    let no_formats = 0u16.to_be_bytes();
    out.extend(message(
        b'B',
        &[b"\0", b"\0", &no_formats, &no_formats, &no_formats],
    ));
    out.extend(message(b'E', &[b"\0", &0u32.to_be_bytes()]));
    out
}

/// A Sync message.
pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

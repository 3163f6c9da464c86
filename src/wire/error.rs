//! Errors raised while decoding protocol bytes.

use thiserror::Error;

/// Why a byte sequence from a peer is not a valid protocol message.
///
/// Every variant ends the one session that sent it, with SQLSTATE 08P01.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// A message declared a length below the 4 bytes of the length field itself.
    #[error("invalid message length {len} for message type {tag:?}")]
    BadLength { tag: char, len: u32 },
    /// A message is larger than `server.max_message_size`.
    #[error("message type {tag:?} of {len} bytes exceeds the limit of {limit} bytes (server.max_message_size)")]
    TooLarge { tag: char, len: usize, limit: usize },
    /// The startup packet's length is outside 8..=10000 bytes, as Postgres requires.
    #[error("invalid startup packet length {0}")]
    BadStartupLength(u32),
    /// The startup packet could not be decoded.
    #[error("invalid startup packet: {0}")]
    BadStartup(&'static str),
    /// An inspected message's body is shorter than its fields need.
    #[error("truncated {0} message")]
    Truncated(&'static str),
}

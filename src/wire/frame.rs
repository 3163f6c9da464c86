//! Message framing: one type byte followed by a big-endian length that counts itself.

use super::WireError;

/// Bytes before a message body: the type byte and the 4-byte length.
pub const HEADER_LEN: usize = 5;

/// The decoded head of one regular (post-startup) protocol message.
///
/// The relay reads only this much of most messages; bodies are forwarded
/// unread unless the message type is one the proxy inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message type byte, e.g. `b'Q'` for a simple query.
    pub tag: u8,
    /// Total size on the wire: type byte + length field + body.
    pub total_len: usize,
}

impl FrameHeader {
    /// Decodes the header at the start of `buf`, or `Ok(None)` if fewer than
    /// [`HEADER_LEN`] bytes are buffered.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, WireError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let tag = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len < 4 {
            return Err(WireError::BadLength {
                tag: tag as char,
                len,
            });
        }
        Ok(Some(FrameHeader {
            tag,
            total_len: len as usize + 1,
        }))
    }

    /// Length of the body (the bytes after the length field).
    pub fn body_len(&self) -> usize {
        self.total_len - HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_header() {
        let h = FrameHeader::parse(b"Z\0\0\0\x05I").unwrap().unwrap();
        assert_eq!(h.tag, b'Z');
        assert_eq!(h.total_len, 6);
        assert_eq!(h.body_len(), 1);
    }

    #[test]
    fn waits_for_more_bytes() {
        assert_eq!(FrameHeader::parse(b"Z\0\0").unwrap(), None);
    }

    #[test]
    fn rejects_lengths_below_four() {
        assert_eq!(
            FrameHeader::parse(b"Q\0\0\0\x03"),
            Err(WireError::BadLength { tag: 'Q', len: 3 })
        );
    }
}

//! Builders and decoders for the few messages the proxy creates or inspects.

use super::WireError;
use std::borrow::Cow;

/// Authentication request code for `AuthenticationSASL`.
pub const AUTH_SASL: i32 = 10;

/// The SASL mechanism that binds to the TLS certificate; it must not be offered
/// to clients because TLS ends at the proxy (DESIGN section 4).
pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// Severity of a message the proxy sends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Ends the session.
    Fatal,
    /// Ends the statement.
    Error,
    /// A warning sent as `NoticeResponse`; the statement goes on.
    Warning,
    /// Information sent as `NoticeResponse`.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        }
    }
}

/// An `ErrorResponse` (or, for a warning, a `NoticeResponse`) the proxy
/// writes itself: what, why, what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    /// FATAL or ERROR.
    pub severity: Severity,
    /// Five-character SQLSTATE (the server's own, when the proxy passes on
    /// an error of a statement it ran).
    pub code: Cow<'static, str>,
    /// Primary message.
    pub message: String,
    /// Optional DETAIL.
    pub detail: Option<String>,
    /// Optional HINT.
    pub hint: Option<String>,
}

impl ProxyError {
    /// A FATAL error with a code and message.
    pub fn fatal(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ProxyError {
            severity: Severity::Fatal,
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// An ERROR that ends the statement, not the session.
    pub fn error(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ProxyError {
            severity: Severity::Error,
            ..ProxyError::fatal(code, message)
        }
    }

    /// A WARNING, sent as a `NoticeResponse`.
    pub fn warning(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ProxyError {
            severity: Severity::Warning,
            ..ProxyError::fatal(code, message)
        }
    }

    /// A NOTICE (SQLSTATE 00000), sent as a `NoticeResponse`: what the
    /// proxy did on the client's behalf.
    pub fn notice(message: impl Into<String>) -> Self {
        ProxyError {
            severity: Severity::Notice,
            ..ProxyError::fatal("00000", message)
        }
    }

    /// Adds a HINT.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a DETAIL.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Encodes the message as an `ErrorResponse` frame (`NoticeResponse`
    /// for a warning).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(match self.severity {
            Severity::Warning | Severity::Notice => b'N',
            Severity::Fatal | Severity::Error => b'E',
        });
        out.extend_from_slice(&[0; 4]);
        let mut field = |t: u8, v: &str| {
            out.push(t);
            out.extend_from_slice(v.replace('\0', "").as_bytes());
            out.push(0);
        };
        field(b'S', self.severity.as_str());
        field(b'V', self.severity.as_str());
        field(b'C', &self.code);
        field(b'M', &self.message);
        if let Some(d) = &self.detail {
            field(b'D', d);
        }
        if let Some(h) = &self.hint {
            field(b'H', h);
        }
        out.push(0);
        let len = (out.len() - start - 1) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    /// The encoded frame as a new vector.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A frontend `Query` message carrying `sql`.
pub fn query(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + 6);
    out.push(b'Q');
    out.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

/// A frontend `Sync` message.
pub const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

/// A frontend `Parse` message: statement `name` (NUL excluded), `sql`, no
/// parameter types.
pub fn parse(name: &[u8], sql: &str) -> Vec<u8> {
    let len = 4 + name.len() + 1 + sql.len() + 1 + 2;
    let mut out = Vec::with_capacity(len + 1);
    out.push(b'P');
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out.extend_from_slice(&0u16.to_be_bytes());
    out
}

/// Splits a NUL-terminated string off the front of a message body; the
/// whole rest when there is no NUL.
pub fn cstr(body: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(0, body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[]),
    }
}

/// The SQL text of a `Query` body (before its NUL).
pub fn query_text(body: &[u8]) -> &[u8] {
    cstr(body).0
}

/// The statement name and SQL text of a `Parse` body.
pub fn parse_parts(body: &[u8]) -> (&[u8], &[u8]) {
    let (name, rest) = cstr(body);
    (name, cstr(rest).0)
}

/// The portal and statement names of a `Bind` body.
pub fn bind_names(body: &[u8]) -> (&[u8], &[u8]) {
    let (portal, rest) = cstr(body);
    (portal, cstr(rest).0)
}

/// The portal name of an `Execute` body.
pub fn execute_portal(body: &[u8]) -> &[u8] {
    cstr(body).0
}

/// What a `Close` body closes: `b'S'` (statement) or `b'P'` (portal), and
/// its name; `None` for an empty body.
pub fn close_target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    Some((kind, cstr(rest).0))
}

/// A frontend `Bind` of the unnamed statement to the unnamed portal, with
/// no parameters and text results.
pub fn bind_unnamed() -> Vec<u8> {
    // portal "", statement "", 0 format codes, 0 parameters, 0 result formats.
    vec![b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// A frontend `Execute` of the unnamed portal, all rows.
pub fn execute_unnamed() -> Vec<u8> {
    vec![b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0]
}

/// Reads the int32 request code of an `Authentication*` message body.
pub fn auth_code(body: &[u8]) -> Result<i32, WireError> {
    body.get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(WireError::Truncated("Authentication"))
}

/// Rebuilds an `AuthenticationSASL` frame without `SCRAM-SHA-256-PLUS`.
///
/// Returns `None` when the list does not contain it (the frame can then be
/// relayed as is).
pub fn strip_scram_plus(body: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
    let mechanisms = body
        .get(4..)
        .ok_or(WireError::Truncated("AuthenticationSASL"))?;
    let names: Vec<&[u8]> = mechanisms
        .split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .collect();
    if !names.contains(&SCRAM_PLUS.as_bytes()) {
        return Ok(None);
    }
    let mut out = vec![b'R', 0, 0, 0, 0];
    out.extend_from_slice(&AUTH_SASL.to_be_bytes());
    for name in names.iter().filter(|n| **n != SCRAM_PLUS.as_bytes()) {
        out.extend_from_slice(name);
        out.push(0);
    }
    out.push(0);
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Ok(Some(out))
}

/// A frontend `CopyFail` message: ends a COPY FROM STDIN with `reason`
/// (the server answers with an ErrorResponse quoting it).
pub fn copy_fail(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(reason.len() + 6);
    out.push(b'f');
    out.extend_from_slice(&(reason.len() as u32 + 5).to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.push(0);
    out
}

/// Transaction status from a `ReadyForQuery` body: `I`, `T` or `E`.
pub fn ready_status(body: &[u8]) -> Result<u8, WireError> {
    body.first()
        .copied()
        .ok_or(WireError::Truncated("ReadyForQuery"))
}

/// The fields of a server `ErrorResponse`/`NoticeResponse` the proxy logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// Non-localized severity (`V`), or `S` from servers before 9.6.
    pub severity: String,
    /// SQLSTATE (`C`).
    pub code: String,
    /// Primary message (`M`).
    pub message: String,
}

/// Decodes the severity, SQLSTATE and message of an `ErrorResponse` body.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let mut fields = ErrorFields::default();
    for field in body.split(|&b| b == 0) {
        let Some((&t, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match t {
            b'V' => fields.severity = value,
            b'S' if fields.severity.is_empty() => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            _ => {}
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_protocol_names_are_read_and_built() {
        assert_eq!(bind_names(b"p1\0s1\0\0\0"), (&b"p1"[..], &b"s1"[..]));
        assert_eq!(execute_portal(b"p1\0\0\0\0\0"), b"p1");
        assert_eq!(close_target(b"Sname\0"), Some((b'S', &b"name"[..])));
        assert_eq!(close_target(b""), None);
        for frame in [bind_unnamed(), execute_unnamed()] {
            let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
            assert_eq!(len + 1, frame.len(), "{frame:?}");
        }
        assert_eq!(bind_names(&bind_unnamed()[5..]), (&b""[..], &b""[..]));
    }
    use crate::wire::FrameHeader;

    #[test]
    fn error_frames_are_well_formed() {
        let frame = ProxyError::fatal("08P01", "bad")
            .with_hint("fix it")
            .to_frame();
        let head = FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(head.tag, b'E');
        assert_eq!(head.total_len, frame.len());
        let fields = error_fields(&frame[5..]);
        assert_eq!(fields.code, "08P01");
        assert_eq!(fields.severity, "FATAL");
        assert_eq!(fields.message, "bad");
    }

    #[test]
    fn scram_plus_is_removed_from_the_sasl_offer() {
        let mut body = AUTH_SASL.to_be_bytes().to_vec();
        body.extend_from_slice(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let frame = strip_scram_plus(&body).unwrap().unwrap();
        assert_eq!(&frame[5..], b"\0\0\0\x0aSCRAM-SHA-256\0\0");
        let head = FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(head.total_len, frame.len());
        assert_eq!(strip_scram_plus(&frame[5..]).unwrap(), None);
    }
}

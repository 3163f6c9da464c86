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
    parse_typed(name, sql, &0u16.to_be_bytes())
}

/// Splits a NUL-terminated string off the front of a message body; the
/// whole rest when there is no NUL.
pub fn cstr(body: &[u8]) -> (&[u8], &[u8]) {
    // The unnamed statement and portal, which most Binds and Executes
    // name: no search (memchr's setup costs more than the string).
    if let Some((0, rest)) = body.split_first() {
        return (&[], rest);
    }
    match memchr::memchr(0, body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[]),
    }
}

/// The SQL text of a `Query` body (before its NUL).
///
/// A Query holds one string, so its NUL is the last byte: taken from there
/// without a search. Postgres refuses a Query with a NUL inside its text
/// ("invalid message format"), so what is before that NUL never runs; the
/// whole text is still what the gate judges, which can only be stricter.
pub fn query_text(body: &[u8]) -> &[u8] {
    match body.split_last() {
        Some((0, text)) => text,
        _ => cstr(body).0,
    }
}

/// The statement name and SQL text of a `Parse` body.
pub fn parse_parts(body: &[u8]) -> (&[u8], &[u8]) {
    let (name, rest) = cstr(body);
    (name, cstr(rest).0)
}

/// The parts of a `Parse` body: statement name, SQL text, and the raw
/// parameter type list (int16 count, then that many int32 OIDs), so a
/// statement can be parsed again exactly as the client parsed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseParts<'a> {
    /// Statement name (empty: the unnamed statement).
    pub name: &'a [u8],
    /// SQL text (without its NUL).
    pub sql: &'a [u8],
    /// The parameter type section as sent (count and OIDs).
    pub param_types: &'a [u8],
}

/// Splits a `Parse` body; `None` when it is truncated.
pub fn parse_body(body: &[u8]) -> Option<ParseParts<'_>> {
    let name_end = memchr::memchr(0, body)?;
    let rest = &body[name_end + 1..];
    let sql_end = memchr::memchr(0, rest)?;
    let param_types = &rest[sql_end + 1..];
    let count = param_types
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)?;
    let param_types = param_types.get(..2 + 4 * count)?;
    Some(ParseParts {
        name: &body[..name_end],
        sql: &rest[..sql_end],
        param_types,
    })
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

/// What a `Close` (or `Describe`) body names: `b'S'` (statement) or `b'P'`
/// (portal), and its name; `None` for an empty body.
pub fn close_target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    Some((kind, cstr(rest).0))
}

/// A frontend `Parse` message with a raw parameter type section, as
/// [`ParseParts::param_types`] holds it.
pub fn parse_typed(name: &[u8], sql: &str, param_types: &[u8]) -> Vec<u8> {
    let len = 4 + name.len() + 1 + sql.len() + 1 + param_types.len();
    let mut out = Vec::with_capacity(len + 1);
    out.push(b'P');
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out.extend_from_slice(param_types);
    out
}

/// A frontend `Describe` (`tag` b'D') or `Close` (`tag` b'C') message for
/// a statement (`kind` b'S') or portal (`kind` b'P').
pub fn target_message(tag: u8, kind: u8, name: &[u8]) -> Vec<u8> {
    let len = 4 + 1 + name.len() + 1;
    let mut out = Vec::with_capacity(len + 1);
    out.push(tag);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(name);
    out.push(0);
    out
}

/// One field of a `RowDescription`: which column it is and how it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDesc<'a> {
    /// Column name as the client sees it.
    pub name: &'a [u8],
    /// OID of the table the column comes from (0: not a table column).
    pub table_oid: u32,
    /// Attribute number in that table (0: not a table column).
    pub column: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type size (`pg_type.typlen`).
    pub type_len: i16,
    /// Type modifier.
    pub typmod: i32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

/// Iterates the fields of a `RowDescription` body without allocating;
/// stops at the first truncated field (check [`RowFields::complete`]).
#[derive(Debug, Clone)]
pub struct RowFields<'a> {
    rest: &'a [u8],
    left: u16,
    broken: bool,
}

/// The fields of a `RowDescription` body.
pub fn row_fields(body: &[u8]) -> RowFields<'_> {
    match body.get(..2) {
        Some(b) => RowFields {
            rest: &body[2..],
            left: u16::from_be_bytes([b[0], b[1]]),
            broken: false,
        },
        None => RowFields {
            rest: &[],
            left: 0,
            broken: true,
        },
    }
}

impl RowFields<'_> {
    /// True when every announced field was read whole (call after
    /// iterating).
    pub fn complete(&self) -> bool {
        !self.broken && self.left == 0
    }
}

impl<'a> Iterator for RowFields<'a> {
    type Item = FieldDesc<'a>;

    fn next(&mut self) -> Option<FieldDesc<'a>> {
        if self.left == 0 || self.broken {
            return None;
        }
        let end = memchr::memchr(0, self.rest);
        let fixed = end.and_then(|e| self.rest.get(e + 1..e + 19));
        let (Some(end), Some(f)) = (end, fixed) else {
            self.broken = true;
            return None;
        };
        let i16_at = |i: usize| i16::from_be_bytes([f[i], f[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
        let field = FieldDesc {
            name: &self.rest[..end],
            table_oid: u32_at(0),
            column: i16_at(4),
            type_oid: u32_at(6),
            type_len: i16_at(10),
            typmod: u32_at(12) as i32,
            format: i16_at(16),
        };
        self.rest = &self.rest[end + 19..];
        self.left -= 1;
        Some(field)
    }
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

/// A RowDescription body with text-format fields of size 4 and no
/// modifier: (name, table OID, column number, type OID) each (for tests).
#[cfg(test)]
pub(crate) fn row_description_body(fields: &[(&str, u32, i16, u32)]) -> Vec<u8> {
    let mut body = (fields.len() as u16).to_be_bytes().to_vec();
    for (name, table, col, ty) in fields {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&table.to_be_bytes());
        body.extend_from_slice(&col.to_be_bytes());
        body.extend_from_slice(&ty.to_be_bytes());
        body.extend_from_slice(&4i16.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_text_ends_at_its_final_nul() {
        assert_eq!(query_text(b"SELECT 1\0"), b"SELECT 1");
        assert_eq!(query_text(b"\0"), b"");
        // Malformed ones: no NUL, or one inside (Postgres refuses the
        // message; the gate sees all of it).
        assert_eq!(query_text(b"SELECT 1"), b"SELECT 1");
        assert_eq!(
            query_text(b"SELECT 1\0; DROP TABLE t\0"),
            b"SELECT 1\0; DROP TABLE t"
        );
        assert_eq!(query_text(b"SELECT 1\0junk"), b"SELECT 1");
        assert_eq!(query_text(b""), b"");
    }

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

    #[test]
    fn parse_bodies_split_into_name_text_and_types() {
        let frame = parse_typed(b"s1", "SELECT $1", &[0, 1, 0, 0, 0, 23]);
        let head = FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(head.total_len, frame.len());
        let p = parse_body(&frame[5..]).unwrap();
        assert_eq!(p.name, b"s1");
        assert_eq!(p.sql, b"SELECT $1");
        assert_eq!(p.param_types, &[0, 1, 0, 0, 0, 23]);
        // A type list shorter than its count is truncated.
        assert_eq!(parse_body(b"s1\0SELECT $1\0\0\x02\0\0\0\x17"), None);
    }

    #[test]
    fn row_description_fields_are_read_in_place() {
        let body = row_description_body(&[("id", 16384, 1, 23), ("v", 16384, 2, 25)]);
        let mut fields = row_fields(&body);
        let all: Vec<_> = fields.by_ref().collect();
        assert!(fields.complete());
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].name, b"v");
        assert_eq!(
            (all[1].table_oid, all[1].column, all[1].type_oid),
            (16384, 2, 25)
        );
        assert_eq!(all[0].typmod, -1);
        let mut cut = row_fields(&body[..body.len() - 3]);
        assert_eq!(cut.by_ref().count(), 1);
        assert!(!cut.complete());
    }
}

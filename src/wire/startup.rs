//! The untyped first packet of a connection: startup, SSL/GSS requests, cancel.

use super::WireError;

/// Postgres refuses startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: u32 = 10_000;

/// Why a startup packet without `user` is refused (Postgres answers 28000).
pub const NO_USER: &str = "no PostgreSQL user name specified";

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// What a client sent as its first (length-prefixed, untyped) packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// Asks to switch to TLS before the real startup packet.
    SslRequest,
    /// Asks for GSSAPI encryption, which the proxy declines.
    GssEncRequest,
    /// Cancels the query of the backend identified by `key` (pid + secret, any
    /// length, so that protocol 3.2's longer keys pass through).
    Cancel { key: Vec<u8> },
    /// A real startup message; `raw` is the whole packet as received, relayed
    /// upstream byte for byte.
    Startup {
        /// Protocol version: major in the high 16 bits, minor in the low.
        version: u32,
        /// The parameters the proxy reads for logging and routing.
        params: StartupParams,
        /// The packet exactly as the client sent it, length prefix included.
        raw: Vec<u8>,
    },
}

/// The startup parameters the proxy looks at; all of them are still relayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupParams {
    /// `user`, required by Postgres.
    pub user: String,
    /// `database`, defaulting to the user name as Postgres does.
    pub database: String,
    /// `application_name`, empty when not sent.
    pub application_name: String,
    /// `search_path` sent as a startup parameter, if any.
    pub search_path: Option<String>,
    /// `options` (command-line style `-c name=value` settings), if any.
    pub options: Option<String>,
}

impl StartupPacket {
    /// Decodes a startup-phase packet body (everything after the 4-byte length).
    /// `raw` must be the complete packet including the length prefix.
    pub fn parse(raw: Vec<u8>) -> Result<StartupPacket, WireError> {
        let body = raw.get(4..).ok_or(WireError::BadStartup("too short"))?;
        let code = body
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(WireError::BadStartup("missing protocol code"))?;
        match code {
            SSL_REQUEST => Ok(StartupPacket::SslRequest),
            GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
            CANCEL_REQUEST => {
                let key = body[4..].to_vec();
                if key.len() < 8 {
                    return Err(WireError::BadStartup("cancel request key too short"));
                }
                Ok(StartupPacket::Cancel { key })
            }
            version => {
                let params = parse_params(&body[4..])?;
                Ok(StartupPacket::Startup {
                    version,
                    params,
                    raw,
                })
            }
        }
    }
}

/// Reads `name\0value\0...\0` pairs, keeping the ones the proxy uses.
fn parse_params(mut rest: &[u8]) -> Result<StartupParams, WireError> {
    let mut params = StartupParams::default();
    loop {
        let name = take_cstr(&mut rest)?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut rest)?;
        let value = String::from_utf8_lossy(value).into_owned();
        match name {
            b"user" => params.user = value,
            b"database" => params.database = value,
            b"application_name" => params.application_name = value,
            b"search_path" => params.search_path = Some(value),
            b"options" => params.options = Some(value),
            _ => {}
        }
    }
    if params.user.is_empty() {
        return Err(WireError::BadStartup(NO_USER));
    }
    if params.database.is_empty() {
        params.database = params.user.clone();
    }
    Ok(params)
}

fn take_cstr<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::BadStartup("unterminated parameter"))?;
    let s = &rest[..end];
    *rest = &rest[end + 1..];
    Ok(s)
}

/// Builds a startup packet (used by tests and by the proxy's own connections).
pub fn build_startup(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0];
    out.extend_from_slice(&version.to_be_bytes());
    for (k, v) in params {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Builds the 8-byte SSLRequest packet sent to the upstream.
pub fn ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8u32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    out
}

/// Builds a CancelRequest packet for a backend key (pid + secret).
pub fn cancel_request(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&(8 + key.len() as u32).to_be_bytes());
    out.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_startup_parameters_and_keeps_raw_bytes() {
        let raw = build_startup(
            196_608,
            &[
                ("user", "alice"),
                ("application_name", "web"),
                ("options", "-c x=1"),
            ],
        );
        let StartupPacket::Startup {
            version,
            params,
            raw: kept,
        } = StartupPacket::parse(raw.clone()).unwrap()
        else {
            panic!("not a startup packet");
        };
        assert_eq!(version, 196_608);
        assert_eq!(params.user, "alice");
        assert_eq!(params.database, "alice");
        assert_eq!(params.application_name, "web");
        assert_eq!(kept, raw);
    }

    #[test]
    fn recognises_requests() {
        assert_eq!(
            StartupPacket::parse(ssl_request().to_vec()).unwrap(),
            StartupPacket::SslRequest
        );
        let key = [0, 0, 1, 2, 9, 9, 9, 9];
        assert_eq!(
            StartupPacket::parse(cancel_request(&key)).unwrap(),
            StartupPacket::Cancel { key: key.to_vec() }
        );
    }

    #[test]
    fn rejects_missing_user_and_garbage() {
        let raw = build_startup(196_608, &[("database", "x")]);
        assert!(StartupPacket::parse(raw).is_err());
        let mut raw = build_startup(196_608, &[("user", "x")]);
        raw.pop();
        raw.pop();
        assert!(StartupPacket::parse(raw).is_err());
    }
}

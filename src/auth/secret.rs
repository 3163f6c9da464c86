//! What `pg_authid.rolpassword` holds, parsed: a SCRAM-SHA-256 verifier or
//! an md5 hash. The proxy never sees a plain password.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

/// A parsed `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    /// Salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: usize,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramSecret(iterations={})", self.iterations)
    }
}

/// A user's stored password, as the upstream keeps it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A SCRAM-SHA-256 verifier.
    Scram(ScramSecret),
    /// `md5` + hex(md5(password || user)): the 32 hex digits after `md5`.
    Md5(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Scram(s) => s.fmt(f),
            Secret::Md5(_) => f.write_str("Md5(..)"),
        }
    }
}

/// Why a stored password cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    /// Not a SCRAM-SHA-256 verifier; the reason says which part is wrong.
    #[error("not a SCRAM-SHA-256 verifier: {0}")]
    Scram(&'static str),
    /// Neither SCRAM nor md5 (a plain-text password from an old server).
    #[error("neither a SCRAM-SHA-256 verifier nor an md5 hash")]
    Unknown,
}

/// Parses a `rolpassword` value.
pub fn parse(text: &str) -> Result<Secret, SecretError> {
    if let Some(hex) = text.strip_prefix("md5") {
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Secret::Md5(hex.to_ascii_lowercase()));
        }
    }
    if text.starts_with("SCRAM-SHA-256$") {
        return parse_scram(text).map(Secret::Scram);
    }
    Err(SecretError::Unknown)
}

/// Parses a SCRAM-SHA-256 verifier as Postgres stores it.
pub fn parse_scram(text: &str) -> Result<ScramSecret, SecretError> {
    let rest = text
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or(SecretError::Scram("not a verifier"))?;
    let (params, keys) = rest
        .split_once('$')
        .ok_or(SecretError::Scram("missing keys"))?;
    let (iterations, salt) = params
        .split_once(':')
        .ok_or(SecretError::Scram("missing salt"))?;
    let (stored, server) = keys
        .split_once(':')
        .ok_or(SecretError::Scram("missing server key"))?;
    let iterations: usize = iterations
        .parse()
        .map_err(|_| SecretError::Scram("iterations are not a number"))?;
    let decode = |s: &str, what| STANDARD.decode(s).map_err(|_| SecretError::Scram(what));
    let secret = ScramSecret {
        salt: decode(salt, "salt is not base64")?,
        iterations,
        stored_key: decode(stored, "StoredKey is not base64")?,
        server_key: decode(server, "ServerKey is not base64")?,
    };
    if iterations == 0 || secret.stored_key.len() != 32 || secret.server_key.len() != 32 {
        return Err(SecretError::Scram("wrong key length or iterations"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_and_md5_parse_and_plain_text_does_not() {
        let v = "SCRAM-SHA-256$4096:Tn4f3JThqkQ/6wgfOWIsyw==$5MApVeN5mrb/9ePNJwrA3v9URX4DHAtMg7MZ8Ne+9SQ=:QbIhpYPvGWXbAq6Qk+uuhfwp+w1Y4ycZc2pLHl5hFeM=";
        let Ok(Secret::Scram(s)) = parse(v) else {
            panic!("{:?}", parse(v))
        };
        assert_eq!((s.iterations, s.salt.len()), (4096, 16));
        assert_eq!(
            parse("md5A0B1C2D3E4F5A6B7C8D9E0F1A2B3C4D5"),
            Ok(Secret::Md5("a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5".into()))
        );
        assert_eq!(parse("md5short"), Err(SecretError::Unknown));
        assert_eq!(parse("secret"), Err(SecretError::Unknown));
        assert!(parse("SCRAM-SHA-256$4096:!!$a:b").is_err());
    }
}

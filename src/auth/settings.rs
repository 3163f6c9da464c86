//! `[auth]`: who authenticates clients, the proxy or the upstream. Owned by
//! the auth layer and embedded by `config`, so `auth` never imports `config`.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The verifier lookup run through the service login when `auth.query` is
/// not set: a `SECURITY DEFINER` function (see README), as PgBouncer's
/// `auth_query`. `$1` is the user name; the answer is (name, verifier).
pub const DEFAULT_QUERY: &str = "SELECT usename, passwd FROM ddlguard.user_lookup($1)";

/// `[auth]`: how clients prove who they are.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `proxy` (default): ddlguard authenticates the client from verifiers
    /// read with `query`, then logs in upstream with the recovered key;
    /// `passthrough`: the exchange is relayed to the upstream.
    pub mode: AuthMode,
    /// The verifier lookup, run through the service login with the user
    /// name as `$1`; answers one row (user name, `rolpassword`).
    pub query: String,
    /// Database the service login runs `query` in.
    pub database: String,
    /// How long a looked-up verifier is reused (a failed login reads it again).
    pub cache_ttl: HumanDuration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Proxy,
            query: DEFAULT_QUERY.into(),
            database: "postgres".into(),
            cache_ttl: HumanDuration(Duration::from_secs(60)),
        }
    }
}

/// Who checks the client's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// The authentication exchange is relayed between client and upstream
    /// (`SCRAM-SHA-256-PLUS` hidden, since TLS ends at the proxy).
    Passthrough,
    /// ddlguard authenticates the client itself (SCRAM-SHA-256 and -PLUS on
    /// its own certificate, md5) and logs in upstream as that user. While
    /// no verifier can be read (no service login, no lookup function),
    /// sessions are relayed as in `passthrough` and the log says why.
    #[default]
    Proxy,
}

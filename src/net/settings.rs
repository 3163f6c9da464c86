//! `[upstream]`: where and how the proxy reaches Postgres. Owned by the
//! network layer that uses it and embedded by `config`, so `net` never
//! imports `config`.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[upstream]`: the Postgres server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS towards the upstream, with libpq's `sslmode` meanings.
    pub tls: UpstreamTls,
    /// PEM CA bundle used to verify the upstream's certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for the TCP connection and TLS handshake.
    pub connect_timeout: HumanDuration,
    /// Service login the proxy uses itself (catalog snapshots). Without it,
    /// column resolution degrades and the log says so once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variable holding the service login's password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            tls: UpstreamTls::Prefer,
            ca_file: None,
            connect_timeout: HumanDuration(Duration::from_secs(5)),
            user: None,
            password_env: None,
        }
    }
}

impl UpstreamConfig {
    /// `host:port`, as named in errors and logs.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How the proxy secures its connection to the upstream, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without verifying its certificate.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is verified against `ca_file` when one is set.
    Require,
    /// TLS with the certificate chain verified against `ca_file`.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name `upstream.host`.
    VerifyFull,
}

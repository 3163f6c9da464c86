//! `upstream.tls`: the libpq-style `sslmode` towards the upstream.

use serde::{Deserialize, Serialize};

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

//! Loading `proxy.toml` for the proxy: `config` checks the structure, then
//! the modules that build from the values check them (TLS files in `net`,
//! admin verifiers in the console's auth), with errors naming file, line and
//! key. `serve`, `check-config` and every reload go through here.

use crate::config::{Check, Config, ConfigError, KeyError, UpstreamTls};
use crate::net::tls;
use std::path::Path;

/// The checks the proxy runs on a parsed configuration.
pub const CHECKS: &[Check] = &[check_tls, crate::admin::console::auth::check_config];

/// Builds the TLS acceptor and connector once, so `check-config` and a
/// reload refuse a certificate, key or CA file that cannot be used, naming
/// its key.
fn check_tls(config: &Config) -> Result<(), KeyError> {
    if let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) {
        tls::acceptor(cert, key).map_err(|e| {
            let field = if e.is_key() { "tls_key" } else { "tls_cert" };
            KeyError::new("server", field, e.to_string())
        })?;
    }
    if config.upstream.tls != UpstreamTls::Disable {
        tls::connector(&config.upstream)
            .map_err(|e| KeyError::new("upstream", "ca_file", e.to_string()))?;
    }
    Ok(())
}

/// Reads a configuration file and checks it as the proxy will use it.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load_checked(path, CHECKS)
}

/// As [`load_config`], for text already read from `path`.
pub fn parse_config(path: &Path, text: &str) -> Result<Config, ConfigError> {
    Config::parse_checked(path, text, CHECKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        parse_config(Path::new("proxy.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_plain_text_admin_password_names_file_line_and_key() {
        let text = "[admin]\n\n[[admin.users]]\nname = \"ops\"\npassword = \"hunter2\"\n";
        assert!(Config::parse(Path::new("proxy.toml"), text).is_ok());
        let err = parse(text).unwrap_err();
        assert!(
            err.starts_with("proxy.toml:5: key `admin.users.password`"),
            "{err}"
        );
        assert!(
            err.contains("never plain text") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_certificate_file_names_file_line_and_key() {
        let text = "[server]\ntls_cert = \"/nonexistent/ddlguard.crt\"\ntls_key = \"/nonexistent/ddlguard.key\"\n";
        assert!(Config::parse(Path::new("proxy.toml"), text).is_ok());
        let err = parse(text).unwrap_err();
        assert!(
            err.starts_with("proxy.toml:2: key `server.tls_cert`"),
            "{err}"
        );
        let text = "[upstream]\ntls = \"verify-ca\"\nca_file = \"/nonexistent/ca.pem\"\n";
        let err = parse(text).unwrap_err();
        assert!(
            err.starts_with("proxy.toml:3: key `upstream.ca_file`"),
            "{err}"
        );
    }
}

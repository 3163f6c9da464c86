//! `proxy.toml`: the settings, their defaults, and validation with errors that
//! name the file, the line and the key (DESIGN section 3).

mod error;
#[cfg(test)]
mod policy_tests;

pub use crate::auth::settings::{AuthConfig, AuthMode};
pub use crate::net::settings::{UpstreamConfig, UpstreamTls};
pub use crate::policy::{PolicySettings, Scope};
pub use crate::units::{ByteSize, HumanDuration};
pub use error::{ConfigError, KeyError, Located, SourceMap};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A check that a module using the settings runs on them after parsing (it
/// builds what it needs, e.g. a TLS acceptor, and names the key at fault).
pub type Check = fn(&Config) -> Result<(), KeyError>;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect and the limits that protect the proxy.
    #[serde(default)]
    pub server: ServerConfig,
    /// The Postgres server every session is relayed to.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Reports: HTTP API (and the admin console, later).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Usage tracking.
    #[serde(default)]
    pub usage: UsageConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The DDL policy.
    #[serde(default)]
    pub policy: PolicySettings,
    /// Who authenticates clients: the proxy or the upstream.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Throttled backfills.
    #[serde(default)]
    pub backfill: crate::backfill::BackfillSettings,
}

/// `[admin]`: where reports are served.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The database name that opens the admin console on the proxy's own
    /// port (`psql -h 127.0.0.1 -p 6432 -U admin ddlguard`); never relayed.
    pub database: String,
    /// HTTP address for /metrics, /healthz, /readyz and /api/v1/...; `""`
    /// turns HTTP off.
    #[serde(with = "optional_addr")]
    pub http_listen: Option<SocketAddr>,
    /// When set, /api/v1 needs `Authorization: Bearer <value of this
    /// variable>` (/metrics, /healthz and /readyz stay open: they hold no
    /// statement text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_token_env: Option<String>,
    /// `[[admin.users]]`: who may log in to the console (SCRAM-SHA-256).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<AdminUser>,
}

/// One `[[admin.users]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// Login name.
    pub name: String,
    /// A SCRAM-SHA-256 verifier as Postgres stores it
    /// (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`), never plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Or: the environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            database: "ddlguard".into(),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9187))),
            http_token_env: None,
            users: Vec::new(),
        }
    }
}

/// `http_listen = ""` means no HTTP server.
mod optional_addr {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "invalid address {s:?}; write e.g. \"127.0.0.1:9187\", or \"\" for none"
            ))
        })
    }

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str(""),
        }
    }
}

/// The smallest `usage.max_memory` accepted.
const MIN_USAGE_MEMORY: usize = 64 << 10;

/// `[usage]`: what the proxy records about each client's statements.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Where usage survives restarts: `memory`, `sqlite:PATH` (relative to
    /// this file) or `postgres://...` (shared by several proxies).
    pub store: crate::usage::store::StoreSpec,
    /// How often usage is written to the store (and at shutdown).
    pub flush_interval: HumanDuration,
    /// How far back "still depends on" looks by default.
    pub window: HumanDuration,
    /// Analyse statements and record usage per client. Off, the proxy is a
    /// plain relay (useful to measure what tracking costs).
    pub enabled: bool,
    /// At most this many (client, statement shape) entries are kept; beyond
    /// it new entries are dropped and counted.
    pub max_entries: usize,
    /// Memory the usage registry may hold (entries, the analyses and
    /// latency timelines of their shapes, client identities), e.g. "64MB":
    /// beyond it the least recently used entries are evicted (their
    /// unflushed counts are written to the store first). The analysis
    /// cache and the DDL log are bounded by count and reported apart.
    pub max_memory: ByteSize,
    /// Statement shapes whose analysis is cached.
    pub analysis_cache: usize,
    /// How often each database's catalog snapshot is refreshed (it is also
    /// refreshed after a DDL statement passes through).
    pub catalog_refresh: HumanDuration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            store: crate::usage::store::StoreSpec::Sqlite(PathBuf::from("ddlguard-usage.db")),
            flush_interval: HumanDuration(Duration::from_secs(5)),
            window: HumanDuration(Duration::from_secs(24 * 3600)),
            enabled: true,
            max_entries: 100_000,
            max_memory: ByteSize(64 << 20),
            analysis_cache: 10_000,
            catalog_refresh: HumanDuration(Duration::from_secs(300)),
        }
    }
}

/// `[server]`: the client-facing listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address clients connect to. Changing it needs a restart.
    pub listen: SocketAddr,
    /// Sessions beyond this get SQLSTATE 53300 too_many_connections.
    pub max_client_connections: usize,
    /// A client that has not finished startup and authentication by then is dropped.
    pub startup_timeout: HumanDuration,
    /// A client message larger than this ends its session with 08P01.
    pub max_message_size: ByteSize,
    /// On SIGTERM/SIGINT, how long sessions may go on before they are closed with 57P01.
    pub shutdown_grace: HumanDuration,
    /// Threads that run sessions. 1 (default) is one thread, the cheapest
    /// per transaction (PgBouncer is single-threaded too); N > 1 is N
    /// session threads, each a single-thread runtime that keeps its sessions
    /// for life; 0 = one per CPU core. Needs a restart.
    pub worker_threads: usize,
    /// Relay plain (non-TLS) sessions on an epoll loop per session thread
    /// instead of through the async runtime: the same relay for about 1 µs
    /// less CPU per transaction. `false` relays every session on its task,
    /// as TLS sessions always are. Needs a restart.
    pub epoll_relay: bool,
    /// PEM certificate chain; with `tls_key` it enables TLS towards clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            max_client_connections: 1000,
            startup_timeout: HumanDuration(Duration::from_secs(10)),
            max_message_size: ByteSize(256 << 20),
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            worker_threads: 1,
            epoll_relay: true,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[log]`: what is logged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `ddlguard=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads, parses and validates the structure of a configuration file.
    ///
    /// Relative paths inside the file are resolved against the file's folder.
    /// Values that only their users can judge (certificates, verifiers) are
    /// checked by [`Config::load_checked`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_checked(path, &[])
    }

    /// As [`Config::load`], then runs `checks`; a failed check is reported
    /// with the file, the line and the key it names.
    pub fn load_checked(path: &Path, checks: &[Check]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Config::parse_checked(path, &text, checks)
    }

    /// Parses and validates the structure of configuration text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_checked(path, text, &[])
    }

    /// As [`Config::parse`], then runs `checks`.
    pub fn parse_checked(path: &Path, text: &str, checks: &[Check]) -> Result<Config, ConfigError> {
        let map = SourceMap::new(text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| map.line_of(s.start));
            let key = line.map(|l| map.key_at_line(l)).unwrap_or_default();
            ConfigError::Invalid(Located {
                file: path.to_path_buf(),
                line,
                key,
                message: e.message().to_string(),
            })
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        let locate = |e: KeyError| {
            ConfigError::Invalid(Located {
                file: path.to_path_buf(),
                line: map.line_of_key(&e.table, &e.key),
                key: format!("{}.{}", e.table, e.key),
                message: e.message,
            })
        };
        config
            .validate()
            .map_err(|(table, key, message)| locate(KeyError::new(table, key, message)))?;
        config
            .policy
            .validate()
            .map_err(|(table, key, message)| locate(KeyError::new(&table, &key, message)))?;
        config
            .backfill
            .validate()
            .map_err(|(key, message)| locate(KeyError::new("backfill", key, message)))?;
        for check in checks {
            check(&config).map_err(locate)?;
        }
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.server.tls_cert,
            &mut self.server.tls_key,
            &mut self.upstream.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let crate::usage::store::StoreSpec::Sqlite(p) = &mut self.usage.store {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks what a single value's parser cannot: combinations and filters.
    /// Files and verifiers are checked by their users (see [`Check`]).
    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        let s = &self.server;
        if s.max_client_connections == 0 {
            return Err((
                "server",
                "max_client_connections",
                "must be at least 1".into(),
            ));
        }
        if s.max_message_size.0 < 1024 {
            return Err(("server", "max_message_size", "must be at least 1kB".into()));
        }
        match (&s.tls_cert, &s.tls_key) {
            (Some(_), None) => {
                return Err((
                    "server",
                    "tls_key",
                    "tls_cert is set but tls_key is not; set both to enable TLS towards clients"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "server",
                    "tls_cert",
                    "tls_key is set but tls_cert is not; set both to enable TLS towards clients"
                        .into(),
                ))
            }
            (Some(_), Some(_)) | (None, None) => {}
        }
        if self.admin.database.trim().is_empty() {
            return Err((
                "admin",
                "database",
                "must not be empty: clients ask for it to open the admin console".into(),
            ));
        }
        for user in &self.admin.users {
            if user.name.is_empty() {
                return Err(("admin.users", "name", "must not be empty".into()));
            }
            match (&user.password, &user.password_env) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err((
                        "admin.users",
                        if user.password.is_some() { "password_env" } else { "name" },
                        format!(
                            "user {:?}: set exactly one of password (a SCRAM-SHA-256 verifier) or password_env",
                            user.name
                        ),
                    ))
                }
                (Some(_), None) | (None, Some(_)) => {}
            }
        }
        if self.usage.flush_interval.0 < Duration::from_millis(100) {
            return Err(("usage", "flush_interval", "must be at least 100ms".into()));
        }
        if self.usage.max_entries == 0 {
            return Err(("usage", "max_entries", "must be at least 1".into()));
        }
        if self.usage.max_memory.0 < MIN_USAGE_MEMORY {
            return Err((
                "usage",
                "max_memory",
                "must be at least 64kB; write e.g. \"64MB\"".into(),
            ));
        }
        let u = &self.upstream;
        if u.host.trim().is_empty() {
            return Err(("upstream", "host", "must not be empty".into()));
        }
        if u.port == 0 {
            return Err(("upstream", "port", "must be between 1 and 65535".into()));
        }
        if let Some(var) = &u.password_env {
            if u.user.is_none() {
                return Err((
                    "upstream",
                    "password_env",
                    "is set but upstream.user is not".into(),
                ));
            }
            if var.is_empty() {
                return Err((
                    "upstream",
                    "password_env",
                    "must name an environment variable".into(),
                ));
            }
        }
        if matches!(u.tls, UpstreamTls::VerifyCa | UpstreamTls::VerifyFull) && u.ca_file.is_none() {
            return Err((
                "upstream",
                "ca_file",
                format!(
                    "tls = \"{}\" needs ca_file, the PEM file of the CA that signed the server certificate",
                    if u.tls == UpstreamTls::VerifyCa { "verify-ca" } else { "verify-full" }
                ),
            ));
        }
        if self.auth.query.trim().is_empty() {
            return Err((
                "auth",
                "query",
                format!(
                    "must not be empty; the default is {:?}",
                    crate::auth::settings::DEFAULT_QUERY
                ),
            ));
        }
        if self.auth.database.trim().is_empty() {
            return Err(("auth", "database", "must not be empty".into()));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            (
                "log",
                "level",
                format!("invalid filter {:?}: {e}", self.log.level),
            )
        })?;
        Ok(())
    }

    /// The effective settings as TOML, for `check-config` and the logs.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("proxy.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen.port(), 6432);
        assert_eq!(c.upstream.address(), "127.0.0.1:5432");
        assert_eq!(c.server.startup_timeout.0, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let err = parse("[server]\n\nstartup_timeout = \"10 fortnights\"\n").unwrap_err();
        assert!(
            err.starts_with("proxy.toml:3: key `server.startup_timeout`"),
            "{err}"
        );
        let err = parse("[upstream]\ntls = \"sometimes\"\n").unwrap_err();
        assert!(err.starts_with("proxy.toml:2: key `upstream.tls`"), "{err}");
        let err = parse("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(
            err.starts_with("proxy.toml:2: key `server.listen`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.starts_with("proxy.toml:3: key `server.lisen`"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn cross_field_errors_point_at_the_key() {
        let err = parse("[upstream]\nport = 5\ntls = \"verify-full\"\n").unwrap_err();
        assert!(
            err.starts_with("proxy.toml:1: key `upstream.ca_file`"),
            "{err}"
        );
        let err = parse("[log]\nlevel = \"[[[\"\n").unwrap_err();
        assert!(err.starts_with("proxy.toml:2: key `log.level`"), "{err}");
    }

    #[test]
    fn usage_max_memory_takes_a_size_with_units() {
        assert_eq!(parse("").unwrap().usage.max_memory.0, 64 << 20);
        let c = parse("[usage]\nmax_memory = \"256MB\"\n").unwrap();
        assert_eq!(c.usage.max_memory.0, 256 << 20);
        let err = parse("[usage]\n\nmax_memory = \"lots\"\n").unwrap_err();
        assert!(
            err.starts_with("proxy.toml:3: key `usage.max_memory`"),
            "{err}"
        );
        let err = parse("[usage]\nmax_memory = \"1kB\"\n").unwrap_err();
        assert!(
            err.starts_with("proxy.toml:2: key `usage.max_memory`") && err.contains("64kB"),
            "{err}"
        );
    }

    #[test]
    fn admin_users_need_a_password_or_an_environment_variable() {
        let err = parse("[[admin.users]]\nname = \"ops\"\n").unwrap_err();
        assert!(err.contains("set exactly one of password"), "{err}");
        let c = parse("[[admin.users]]\nname = \"ops\"\npassword_env = \"OPS_PW\"\n").unwrap();
        assert_eq!(c.admin.users[0].password_env.as_deref(), Some("OPS_PW"));
        assert_eq!(c.admin.database, "ddlguard");
    }
}

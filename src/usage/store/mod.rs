//! Where usage survives restarts: `memory` (nowhere), `sqlite:PATH` (the
//! embedded default) or `postgres://...` (one history for a fleet of proxies).

mod ddl;
pub(crate) mod postgres;
mod resolved;
mod sqlite;

use super::{DdlEvent, UsageRecord};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
pub(crate) use sqlite::blocking;
use std::path::PathBuf;
use thiserror::Error;

/// The `[usage] store` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// Keep usage in memory only.
    Memory,
    /// A SQLite file (WAL mode).
    Sqlite(PathBuf),
    /// A Postgres database shared by several proxies.
    Postgres(String),
}

impl StoreSpec {
    /// Parses `memory`, `sqlite:PATH` or `postgres://...`/`postgresql://...`.
    pub fn parse(s: &str) -> Option<StoreSpec> {
        if s == "memory" {
            Some(StoreSpec::Memory)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            (!path.is_empty()).then(|| StoreSpec::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Some(StoreSpec::Postgres(s.to_string()))
        } else {
            None
        }
    }

    /// The setting as written in the file (passwords in URLs masked).
    pub fn display(&self) -> String {
        match self {
            StoreSpec::Memory => "memory".into(),
            StoreSpec::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreSpec::Postgres(url) => mask_password(url),
        }
    }
}

fn mask_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db, and a
    // password=... query parameter likewise.
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                out = format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    match out.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => out,
    }
}

impl<'de> Deserialize<'de> for StoreSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StoreSpec::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid store {s:?}: write \"memory\", \"sqlite:PATH\" or \"postgres://user@host/db\""
            ))
        })
    }
}

impl Serialize for StoreSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

/// Why the store could not be read or written. Never fatal to traffic.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite store {path}: {error}")]
    Sqlite {
        /// The file.
        path: String,
        /// The error.
        error: rusqlite::Error,
    },
    /// Postgres failed.
    #[error("postgres store {url}: {error}")]
    Postgres {
        /// The URL, password masked.
        url: String,
        /// The driver's or the server's message.
        error: String,
    },
    /// The blocking SQLite task died.
    #[error("sqlite store task failed: {0}")]
    Task(String),
}

/// An open store.
pub enum Store {
    /// Nothing persists.
    Memory,
    /// SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// Postgres database.
    Postgres(postgres::PostgresStore),
}

impl Store {
    /// Opens (and creates the tables of) the store `spec` names.
    pub async fn open(spec: &StoreSpec) -> Result<Store, StoreError> {
        Ok(match spec {
            StoreSpec::Memory => Store::Memory,
            StoreSpec::Sqlite(path) => {
                Store::Sqlite(sqlite::SqliteStore::open(path.clone()).await?)
            }
            StoreSpec::Postgres(url) => Store::Postgres(postgres::PostgresStore::open(url).await?),
        })
    }

    /// Adds increments to the stored totals.
    pub async fn add(&self, deltas: Vec<UsageRecord>) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            Store::Sqlite(s) => s.add(deltas).await,
            Store::Postgres(s) => s.add(deltas).await,
        }
    }

    /// Totals of rows last seen at or after `since_ms`.
    pub async fn read_since(&self, since_ms: u64) -> Result<Vec<UsageRecord>, StoreError> {
        match self {
            Store::Memory => Ok(Vec::new()),
            Store::Sqlite(s) => s.read_since(since_ms).await,
            Store::Postgres(s) => s.read_since(since_ms).await,
        }
    }

    /// Writes DDL log events (again, when one changed), stamped `now_ms`.
    pub async fn write_ddl(&self, events: Vec<DdlEvent>, now_ms: u64) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            Store::Sqlite(s) => s.write_ddl(events, now_ms).await,
            Store::Postgres(s) => s.write_ddl(events, now_ms).await,
        }
    }

    /// The newest `limit` DDL log events written or changed at or after
    /// `since_ms`, newest first.
    pub async fn read_ddl(&self, since_ms: u64, limit: usize) -> Result<Vec<DdlEvent>, StoreError> {
        match self {
            Store::Memory => Ok(Vec::new()),
            Store::Sqlite(s) => s.read_ddl(since_ms, limit).await,
            Store::Postgres(s) => s.read_ddl(since_ms, limit).await,
        }
    }
}

/// Error counts encoded in one column: `42703:3,23505:1`.
pub(crate) fn encode_codes(codes: &[(String, u64)]) -> String {
    codes
        .iter()
        .map(|(c, n)| format!("{c}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Inverse of `encode_codes`.
pub(crate) fn decode_codes(s: &str) -> Vec<(String, u64)> {
    s.split(',')
        .filter_map(|p| p.split_once(':'))
        .filter_map(|(c, n)| n.parse().ok().map(|n| (c.to_string(), n)))
        .collect()
}

/// Adds two encoded error-count lists.
pub(crate) fn merge_codes(a: &str, b: &[(String, u64)]) -> String {
    let mut codes = decode_codes(a);
    for (c, n) in b {
        match codes.iter_mut().find(|(x, _)| x == c) {
            Some((_, m)) => *m += n,
            None => codes.push((c.clone(), *n)),
        }
    }
    encode_codes(&codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_mask_passwords() {
        assert_eq!(StoreSpec::parse("memory"), Some(StoreSpec::Memory));
        assert_eq!(
            StoreSpec::parse("sqlite:x.db"),
            Some(StoreSpec::Sqlite("x.db".into()))
        );
        assert!(StoreSpec::parse("redis://x").is_none());
        let pg = StoreSpec::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(pg.display(), "postgres://u:***@h/db");
        let pg = StoreSpec::parse("postgres://h/db?sslmode=disable&password=x").unwrap();
        assert_eq!(pg.display(), "postgres://h/db?sslmode=disable&password=***");
    }

    #[test]
    fn error_codes_round_trip_and_merge() {
        let codes = vec![("42703".to_string(), 3), ("23505".to_string(), 1)];
        assert_eq!(decode_codes(&encode_codes(&codes)), codes);
        assert_eq!(
            merge_codes("42703:3", &[("42703".into(), 2), ("57014".into(), 1)]),
            "42703:5,57014:1"
        );
    }
}

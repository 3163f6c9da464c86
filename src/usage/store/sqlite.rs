//! The embedded SQLite store (rusqlite, bundled SQLite, WAL).

use super::{decode_codes, encode_codes, merge_codes, StoreError};
use crate::usage::{ClientIdentity, UsageRecord};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ddlguard_usage (
    application_name TEXT NOT NULL,
    user_name TEXT NOT NULL,
    database_name TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    fingerprint_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    total_us INTEGER NOT NULL,
    max_us INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    error_codes TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (application_name, user_name, database_name, client_addr, fingerprint_id)
);
CREATE INDEX IF NOT EXISTS ddlguard_usage_last_seen ON ddlguard_usage (last_seen_ms);
";

/// A SQLite file; all access runs on the blocking pool.
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens or creates the file and its table.
    pub async fn open(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let p = path.clone();
        let conn = blocking(&path, move || {
            let conn = Connection::open(&p)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        })
        .await?;
        Ok(SqliteStore {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Adds increments in one transaction.
    pub async fn add(&self, deltas: Vec<UsageRecord>) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        blocking(&self.path, move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction()?;
            for d in &deltas {
                let key = params![
                    d.client.application_name,
                    d.client.user,
                    d.client.database,
                    d.client.client_addr,
                    d.fingerprint_id as i64
                ];
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT error_codes FROM ddlguard_usage WHERE application_name = ?1 AND user_name = ?2
                         AND database_name = ?3 AND client_addr = ?4 AND fingerprint_id = ?5",
                        key,
                        |r| r.get(0),
                    )
                    .optional()?;
                match existing {
                    Some(codes) => {
                        tx.execute(
                            "UPDATE ddlguard_usage SET calls = calls + ?6, errors = errors + ?7,
                             total_us = total_us + ?8, max_us = max(max_us, ?9),
                             first_seen_ms = min(first_seen_ms, ?10), last_seen_ms = max(last_seen_ms, ?11),
                             error_codes = ?12
                             WHERE application_name = ?1 AND user_name = ?2 AND database_name = ?3
                             AND client_addr = ?4 AND fingerprint_id = ?5",
                            params![
                                d.client.application_name,
                                d.client.user,
                                d.client.database,
                                d.client.client_addr,
                                d.fingerprint_id as i64,
                                d.calls as i64,
                                d.errors as i64,
                                d.total_us as i64,
                                d.max_us as i64,
                                d.first_seen_ms as i64,
                                d.last_seen_ms as i64,
                                merge_codes(&codes, &d.error_codes),
                            ],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO ddlguard_usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                            params![
                                d.client.application_name,
                                d.client.user,
                                d.client.database,
                                d.client.client_addr,
                                d.fingerprint_id as i64,
                                d.fingerprint,
                                d.calls as i64,
                                d.errors as i64,
                                d.total_us as i64,
                                d.max_us as i64,
                                d.first_seen_ms as i64,
                                d.last_seen_ms as i64,
                                encode_codes(&d.error_codes),
                            ],
                        )?;
                    }
                }
            }
            tx.commit()
        })
        .await
    }

    /// Totals of rows last seen at or after `since_ms`.
    pub async fn read_since(&self, since_ms: u64) -> Result<Vec<UsageRecord>, StoreError> {
        let conn = self.conn.clone();
        blocking(&self.path, move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let mut stmt = conn.prepare(
                "SELECT application_name, user_name, database_name, client_addr, fingerprint_id, fingerprint,
                        calls, errors, total_us, max_us, first_seen_ms, last_seen_ms, error_codes
                 FROM ddlguard_usage WHERE last_seen_ms >= ?1",
            )?;
            let rows = stmt.query_map(params![since_ms as i64], |r| {
                Ok(UsageRecord {
                    client: ClientIdentity {
                        application_name: r.get(0)?,
                        user: r.get(1)?,
                        database: r.get(2)?,
                        client_addr: r.get(3)?,
                    },
                    fingerprint_id: r.get::<_, i64>(4)? as u64,
                    fingerprint: r.get(5)?,
                    calls: r.get::<_, i64>(6)? as u64,
                    errors: r.get::<_, i64>(7)? as u64,
                    total_us: r.get::<_, i64>(8)? as u64,
                    max_us: r.get::<_, i64>(9)? as u64,
                    first_seen_ms: r.get::<_, i64>(10)? as u64,
                    last_seen_ms: r.get::<_, i64>(11)? as u64,
                    error_codes: decode_codes(&r.get::<_, String>(12)?),
                })
            })?;
            rows.collect()
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let path = path.display().to_string();
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(error)) => Err(StoreError::Sqlite { path, error }),
        Err(e) => Err(StoreError::Task(e.to_string())),
    }
}

//! The embedded SQLite store (rusqlite, bundled SQLite, WAL).

use super::{decode_codes, encode_codes, merge_codes, resolved, StoreError};
use crate::usage::{ClientIdentity, UsageRecord};
use rusqlite::{named_params, params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ddlguard_usage (
    application_name TEXT NOT NULL,
    user_name TEXT NOT NULL,
    database_name TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    search_path TEXT NOT NULL DEFAULT '',
    fingerprint_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    total_us INTEGER NOT NULL,
    max_us INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    error_codes TEXT NOT NULL DEFAULT '',
    resolved TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (application_name, user_name, database_name, client_addr, search_path, fingerprint_id)
);
CREATE INDEX IF NOT EXISTS ddlguard_usage_last_seen ON ddlguard_usage (last_seen_ms);
";

/// Files written before `search_path` was part of the key (version 0.1 of
/// the table) are moved over once, their rows under the default path.
const MIGRATE_V1: &str = "
BEGIN;
ALTER TABLE ddlguard_usage RENAME TO ddlguard_usage_v1;
DROP INDEX IF EXISTS ddlguard_usage_last_seen;
";
const MIGRATE_V1_COPY: &str = "
INSERT INTO ddlguard_usage (application_name, user_name, database_name, client_addr, search_path,
    fingerprint_id, fingerprint, calls, errors, total_us, max_us, first_seen_ms, last_seen_ms, error_codes)
SELECT application_name, user_name, database_name, client_addr, '', fingerprint_id, fingerprint,
    calls, errors, total_us, max_us, first_seen_ms, last_seen_ms, error_codes FROM ddlguard_usage_v1;
DROP TABLE ddlguard_usage_v1;
COMMIT;
";

/// Files written before the resolved tables and columns were stored with
/// each row get the column; their rows read as not resolved yet.
const MIGRATE_V2: &str = "ALTER TABLE ddlguard_usage ADD COLUMN resolved TEXT NOT NULL DEFAULT ''";

/// Adds one increment; error counts per SQLSTATE were merged by the caller.
/// The resolution is the latest one known.
const UPSERT: &str = "
INSERT INTO ddlguard_usage (application_name, user_name, database_name, client_addr, search_path,
    fingerprint_id, fingerprint, calls, errors, total_us, max_us, first_seen_ms, last_seen_ms,
    error_codes, resolved)
VALUES (:app, :user, :db, :addr, :path, :fp_id, :fp, :calls, :errors, :total_us, :max_us, :first,
    :last, :codes, :resolved)
ON CONFLICT (application_name, user_name, database_name, client_addr, search_path, fingerprint_id)
DO UPDATE SET calls = calls + excluded.calls, errors = errors + excluded.errors,
    total_us = total_us + excluded.total_us, max_us = max(max_us, excluded.max_us),
    first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
    last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
    error_codes = excluded.error_codes,
    resolved = CASE WHEN excluded.resolved <> '' THEN excluded.resolved ELSE resolved END";

/// A SQLite file; all access runs on the blocking pool.
pub struct SqliteStore {
    pub(super) path: PathBuf,
    pub(super) conn: Arc<Mutex<Connection>>,
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

impl SqliteStore {
    /// Opens or creates the file and its table.
    pub async fn open(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let p = path.clone();
        let conn = blocking(&path, move || {
            let conn = Connection::open(&p)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let v1 = has_column(&conn, "ddlguard_usage", "calls")?
                && !has_column(&conn, "ddlguard_usage", "search_path")?;
            if v1 {
                conn.execute_batch(MIGRATE_V1)?;
                conn.execute_batch(SCHEMA)?;
                conn.execute_batch(MIGRATE_V1_COPY)?;
            } else {
                conn.execute_batch(SCHEMA)?;
            }
            if !has_column(&conn, "ddlguard_usage", "resolved")? {
                conn.execute_batch(MIGRATE_V2)?;
            }
            conn.execute_batch(&super::ddl::sqlite_schema())?;
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
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT error_codes FROM ddlguard_usage WHERE application_name = ?1 AND user_name = ?2
                         AND database_name = ?3 AND client_addr = ?4 AND search_path = ?5 AND fingerprint_id = ?6",
                        params![
                            d.client.application_name,
                            d.client.user,
                            d.client.database,
                            d.client.client_addr,
                            d.search_path,
                            d.fingerprint_id as i64
                        ],
                        |r| r.get(0),
                    )
                    .optional()?;
                let codes = match stored {
                    Some(stored) => merge_codes(&stored, &d.error_codes),
                    None => encode_codes(&d.error_codes),
                };
                tx.execute(
                    UPSERT,
                    named_params! {
                        ":app": d.client.application_name,
                        ":user": d.client.user,
                        ":db": d.client.database,
                        ":addr": d.client.client_addr,
                        ":path": d.search_path,
                        ":fp_id": d.fingerprint_id as i64,
                        ":fp": d.fingerprint,
                        ":calls": d.calls as i64,
                        ":errors": d.errors as i64,
                        ":total_us": d.total_us as i64,
                        ":max_us": d.max_us as i64,
                        ":first": d.first_seen_ms as i64,
                        ":last": d.last_seen_ms as i64,
                        ":codes": codes,
                        ":resolved": resolved::encode(d.resolved.as_deref().map(|v| &v[..])),
                    },
                )?;
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
                        calls, errors, total_us, max_us, first_seen_ms, last_seen_ms, error_codes, search_path,
                        resolved
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
                    search_path: r.get(13)?,
                    resolved: resolved::decode(&r.get::<_, String>(14)?).map(Arc::new),
                })
            })?;
            rows.collect()
        })
        .await
    }
}

pub(super) async fn blocking<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, calls: u64) -> UsageRecord {
        UsageRecord {
            client: ClientIdentity {
                application_name: "app".into(),
                user: "u".into(),
                database: "d".into(),
                client_addr: "10.0.0.1".into(),
            },
            search_path: path.into(),
            fingerprint_id: 7,
            fingerprint: "select email from users".into(),
            calls,
            errors: 1,
            total_us: 10,
            max_us: 5,
            first_seen_ms: 1,
            last_seen_ms: 2,
            error_codes: vec![("42703".into(), 1)],
            resolved: None,
        }
    }

    #[tokio::test]
    async fn search_paths_are_kept_apart_and_old_files_are_migrated() {
        let dir = std::env::temp_dir().join(format!("ddlguard-sqlite-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("v1.db");
        {
            // A file as version 0.1 wrote it: no search_path column.
            let conn = Connection::open(&file).unwrap();
            conn.execute_batch(
                &SCHEMA
                    .replace("    search_path TEXT NOT NULL DEFAULT '',\n", "")
                    .replace("    resolved TEXT NOT NULL DEFAULT '',\n", "")
                    .replace(
                        "client_addr, search_path, fingerprint_id)",
                        "client_addr, fingerprint_id)",
                    ),
            )
            .unwrap();
            conn.execute(
                "INSERT INTO ddlguard_usage VALUES ('app', 'u', 'd', '10.0.0.1', 7, 'select email from users', 3, 0, 30, 20, 1, 2, '')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(file.clone()).await.unwrap();
        let rows = store.read_since(0).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].calls, rows[0].search_path.as_str()), (3, ""));
        store
            .add(vec![record("", 2), record("app, public", 5)])
            .await
            .unwrap();
        store.add(vec![record("", 1)]).await.unwrap();
        let mut rows = store.read_since(0).await.unwrap();
        rows.sort_by(|a, b| a.search_path.cmp(&b.search_path));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].calls, rows[0].errors), (6, 2));
        assert_eq!(rows[0].error_codes, vec![("42703".to_string(), 2)]);
        assert_eq!(
            (rows[1].search_path.as_str(), rows[1].calls),
            ("app, public", 5)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    #[tokio::test]
    async fn resolutions_are_stored_and_files_without_them_are_migrated() {
        use crate::analysis::{Dependency, Mode, QualifiedName, ResolvedUse};
        let dir = std::env::temp_dir().join(format!("ddlguard-sqlite-v2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("v2.db");
        {
            // A file as version 0.2 wrote it: search_path, no resolved column.
            let conn = Connection::open(&file).unwrap();
            conn.execute_batch(&SCHEMA.replace("    resolved TEXT NOT NULL DEFAULT '',\n", ""))
                .unwrap();
            conn.execute(
                "INSERT INTO ddlguard_usage VALUES ('app', 'u', 'd', '10.0.0.1', '', 7, 'select email from users', 3, 0, 30, 20, 1, 2, '')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(file.clone()).await.unwrap();
        let rows = store.read_since(0).await.unwrap();
        assert_eq!((rows.len(), rows[0].calls), (1, 3));
        assert_eq!(rows[0].resolved, None, "old rows are not resolved yet");
        let uses = Arc::new(vec![ResolvedUse {
            relations: vec![QualifiedName {
                schema: "public".into(),
                name: "users".into(),
            }],
            column: Some("email".into()),
            mode: Mode::Read,
            dependency: Dependency::Explicit,
        }]);
        let mut resolved_row = record("", 1);
        resolved_row.resolved = Some(uses.clone());
        store.add(vec![resolved_row]).await.unwrap();
        // An increment without a resolution keeps the stored one.
        store.add(vec![record("", 1)]).await.unwrap();
        let rows = store.read_since(0).await.unwrap();
        assert_eq!(rows[0].calls, 5);
        assert_eq!(rows[0].resolved, Some(uses));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Backfill jobs in the usage store (`[usage] store`), so progress survives
//! a restart: one row per job in `ddlguard_backfills` (id, owner, state,
//! last change, and the job as JSON). The store is opened on a connection
//! of its own; `memory` keeps jobs for the process' life only.

use super::job::Job;
use crate::usage::store::{blocking, StoreError, StoreSpec};
use rusqlite::{params, Connection};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ddlguard_backfills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    job TEXT NOT NULL
);";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ddlguard_backfills (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    job TEXT NOT NULL
);";

/// Where jobs are kept.
pub enum JobStore {
    /// In memory: ids from a counter.
    Memory(std::sync::atomic::AtomicU64),
    /// A SQLite file (the usage store's).
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The connection (used on the blocking pool).
        conn: Arc<Mutex<Connection>>,
    },
    /// A Postgres store database.
    Postgres {
        /// The URL, password masked.
        url: String,
        /// The connection.
        client: tokio::sync::Mutex<tokio_postgres::Client>,
    },
}

fn pg_err(url: &str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres {
        url: url.to_string(),
        error: match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        },
    }
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

impl JobStore {
    /// Opens the store `spec` names and creates the table.
    pub async fn open(spec: &StoreSpec) -> Result<JobStore, StoreError> {
        match spec {
            StoreSpec::Memory => Ok(JobStore::Memory(std::sync::atomic::AtomicU64::new(1))),
            StoreSpec::Sqlite(path) => {
                let p = path.clone();
                let conn = blocking(path, move || {
                    let conn = Connection::open(&p)?;
                    conn.busy_timeout(std::time::Duration::from_secs(5))?;
                    // WAL (the usage store's mode) and a sync at checkpoints
                    // only: a progress row per batch stays cheap.
                    conn.pragma_update(None, "journal_mode", "WAL")?;
                    conn.pragma_update(None, "synchronous", "NORMAL")?;
                    conn.execute_batch(SQLITE_SCHEMA)?;
                    Ok(conn)
                })
                .await?;
                Ok(JobStore::Sqlite {
                    path: path.clone(),
                    conn: Arc::new(Mutex::new(conn)),
                })
            }
            StoreSpec::Postgres(url) => {
                let masked = spec.display();
                // TLS as the URL's sslmode says, as the usage store connects.
                let client =
                    crate::usage::store::postgres::connect(url)
                        .await
                        .map_err(|error| StoreError::Postgres {
                            url: masked.clone(),
                            error,
                        })?;
                client
                    .batch_execute(POSTGRES_SCHEMA)
                    .await
                    .map_err(|e| pg_err(&masked, e))?;
                Ok(JobStore::Postgres {
                    url: masked,
                    client: tokio::sync::Mutex::new(client),
                })
            }
        }
    }

    /// Stores a new job and returns its id.
    pub async fn insert(&self, job: &Job) -> Result<u64, StoreError> {
        let text = serde_json::to_string(job).map_err(|e| StoreError::Task(e.to_string()))?;
        match self {
            JobStore::Memory(next) => Ok(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            JobStore::Sqlite { path, conn } => {
                let (owner, state, at) =
                    (job.owner.clone(), job.state.as_str(), job.updated_ms as i64);
                on_sqlite(path, conn, move |c| {
                    c.execute(
                        "INSERT INTO ddlguard_backfills (owner, state, updated_ms, job) VALUES (?1, ?2, ?3, ?4)",
                        params![owner, state, at, text],
                    )?;
                    Ok(c.last_insert_rowid() as u64)
                })
                .await
            }
            JobStore::Postgres { url, client } => {
                let row = client
                    .lock()
                    .await
                    .query_one(
                        "INSERT INTO ddlguard_backfills (owner, state, updated_ms, job) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&job.owner, &job.state.as_str(), &(job.updated_ms as i64), &text],
                    )
                    .await
                    .map_err(|e| pg_err(url, e))?;
                let id: i64 = row.try_get(0).map_err(|e| pg_err(url, e))?;
                Ok(id as u64)
            }
        }
    }

    /// Writes a job's progress and state.
    pub async fn update(&self, job: &Job) -> Result<(), StoreError> {
        let text = serde_json::to_string(job).map_err(|e| StoreError::Task(e.to_string()))?;
        match self {
            JobStore::Memory(_) => Ok(()),
            JobStore::Sqlite { path, conn } => {
                let (id, state, at) = (job.id as i64, job.state.as_str(), job.updated_ms as i64);
                on_sqlite(path, conn, move |c| {
                    c.execute(
                        "UPDATE ddlguard_backfills SET state = ?2, updated_ms = ?3, job = ?4 WHERE id = ?1",
                        params![id, state, at, text],
                    )?;
                    Ok(())
                })
                .await
            }
            JobStore::Postgres { url, client } => {
                client
                    .lock()
                    .await
                    .execute(
                        "UPDATE ddlguard_backfills SET state = $2, updated_ms = $3, job = $4 WHERE id = $1",
                        &[&(job.id as i64), &job.state.as_str(), &(job.updated_ms as i64), &text],
                    )
                    .await
                    .map_err(|e| pg_err(url, e))?;
                Ok(())
            }
        }
    }

    /// Every stored job, oldest first.
    pub async fn load(&self) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<(i64, String)> = match self {
            JobStore::Memory(_) => Vec::new(),
            JobStore::Sqlite { path, conn } => {
                on_sqlite(path, conn, move |c| {
                    let mut stmt =
                        c.prepare("SELECT id, job FROM ddlguard_backfills ORDER BY id")?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(rows)
                })
                .await?
            }
            JobStore::Postgres { url, client } => {
                let rows = client
                    .lock()
                    .await
                    .query("SELECT id, job FROM ddlguard_backfills ORDER BY id", &[])
                    .await
                    .map_err(|e| pg_err(url, e))?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    .map_err(|e| pg_err(url, e))?
            }
        };
        let mut jobs = Vec::new();
        for (id, text) in rows {
            match serde_json::from_str::<Job>(&text) {
                Ok(mut job) => {
                    job.id = id as u64;
                    jobs.push(job);
                }
                // A row this version cannot read stays in the store untouched.
                Err(e) => {
                    tracing::warn!(id, "backfill job row unreadable, skipped: {}", json_err(e))
                }
            }
        }
        Ok(jobs)
    }
}

/// Runs `f` on the SQLite connection, on the blocking pool.
async fn on_sqlite<T: Send + 'static>(
    path: &std::path::Path,
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let conn = conn.clone();
    blocking(path, move || {
        f(&conn.lock().unwrap_or_else(|p| p.into_inner()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::job::{sample, JobState};

    #[tokio::test]
    async fn jobs_survive_reopening_a_sqlite_store() {
        let dir =
            std::env::temp_dir().join(format!("ddlguard-backfill-store-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("usage.db");
        let _ = std::fs::remove_file(&path);
        let spec = StoreSpec::Sqlite(path.clone());
        let store = JobStore::open(&spec).await.unwrap();
        let mut j = sample();
        j.id = store.insert(&j).await.unwrap();
        let second = store.insert(&sample()).await.unwrap();
        assert_eq!(second, j.id + 1);
        j.current_key = Some("42".into());
        j.rows_done = 42;
        j.state = JobState::Paused;
        store.update(&j).await.unwrap();
        drop(store);
        let again = JobStore::open(&spec).await.unwrap();
        let jobs = again.load().await.unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0], j);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

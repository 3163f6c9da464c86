//! A Postgres store shared by several proxies: each adds its increments.

use super::{decode_codes, resolved, StoreError};
use crate::usage::{ClientIdentity, UsageRecord};
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

/// Created under an advisory lock: proxies starting together do not race.
const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7140512351);
CREATE TABLE IF NOT EXISTS ddlguard_usage (
    application_name text NOT NULL,
    user_name text NOT NULL,
    database_name text NOT NULL,
    client_addr text NOT NULL,
    search_path text NOT NULL DEFAULT '',
    fingerprint_id bigint NOT NULL,
    fingerprint text NOT NULL,
    calls bigint NOT NULL,
    errors bigint NOT NULL,
    total_us bigint NOT NULL,
    max_us bigint NOT NULL,
    first_seen_ms bigint NOT NULL,
    last_seen_ms bigint NOT NULL,
    error_codes jsonb NOT NULL DEFAULT '{}',
    resolved text NOT NULL DEFAULT '',
    PRIMARY KEY (application_name, user_name, database_name, client_addr, search_path, fingerprint_id)
);
-- Tables created before search_path was part of the key: rows keep the default path.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'ddlguard_usage'
                     AND column_name = 'search_path') THEN
        ALTER TABLE ddlguard_usage ADD COLUMN search_path text NOT NULL DEFAULT '';
        ALTER TABLE ddlguard_usage DROP CONSTRAINT ddlguard_usage_pkey;
        ALTER TABLE ddlguard_usage ADD PRIMARY KEY
            (application_name, user_name, database_name, client_addr, search_path, fingerprint_id);
    END IF;
END $$;
-- Tables created before the resolved tables and columns were stored: rows read as not resolved yet.
ALTER TABLE ddlguard_usage ADD COLUMN IF NOT EXISTS resolved text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS ddlguard_usage_last_seen ON ddlguard_usage (last_seen_ms);
COMMIT;
";

/// Upsert adding increments; error counts are summed per SQLSTATE in jsonb.
const UPSERT: &str = "
INSERT INTO ddlguard_usage AS u (application_name, user_name, database_name, client_addr, fingerprint_id,
    fingerprint, calls, errors, total_us, max_us, first_seen_ms, last_seen_ms, error_codes, search_path, resolved)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
    (SELECT coalesce(jsonb_object_agg(k, v::bigint), '{}') FROM json_each_text($13::text::json) AS e(k, v)), $14, $15)
ON CONFLICT (application_name, user_name, database_name, client_addr, search_path, fingerprint_id) DO UPDATE SET
    calls = u.calls + excluded.calls,
    errors = u.errors + excluded.errors,
    total_us = u.total_us + excluded.total_us,
    max_us = greatest(u.max_us, excluded.max_us),
    first_seen_ms = least(u.first_seen_ms, excluded.first_seen_ms),
    last_seen_ms = greatest(u.last_seen_ms, excluded.last_seen_ms),
    resolved = CASE WHEN excluded.resolved <> '' THEN excluded.resolved ELSE u.resolved END,
    error_codes = (SELECT coalesce(jsonb_object_agg(k, s), '{}') FROM (
        SELECT k, sum(v::bigint) AS s FROM (
            SELECT * FROM jsonb_each_text(u.error_codes)
            UNION ALL SELECT * FROM jsonb_each_text(excluded.error_codes)) AS x(k, v)
        GROUP BY k) AS y)";

/// The server's message when there is one ("db error" says nothing).
fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Connects as libpq would with this URL: `sslmode` (default `prefer`) and
/// `sslrootcert` choose TLS, with SCRAM channel binding over it.
pub(crate) async fn connect(url: &str) -> Result<Client, String> {
    use crate::net::pg_tls::{url_tls, RustlsMake};
    use crate::net::settings::{UpstreamConfig, UpstreamTls};
    let tls = url_tls(url)?;
    let mut config: tokio_postgres::Config = tls.url.parse().map_err(|e| format!("{e}"))?;
    let mode = match tls.mode {
        UpstreamTls::Disable => SslMode::Disable,
        UpstreamTls::Prefer => SslMode::Prefer,
        UpstreamTls::Require | UpstreamTls::VerifyCa | UpstreamTls::VerifyFull => SslMode::Require,
    };
    config.ssl_mode(mode);
    let rustls = crate::net::tls::client_config(&UpstreamConfig {
        tls: tls.mode,
        ca_file: tls.root_cert,
        ..UpstreamConfig::default()
    })
    .map_err(|e| e.to_string())?;
    // A TLS failure's reason (e.g. the certificate) is in the source.
    let driver_err = |e: tokio_postgres::Error| match std::error::Error::source(&e) {
        Some(source) if e.as_db_error().is_none() => format!("{e}: {source}"),
        _ => pg_text(&e),
    };
    if mode == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(driver_err)?;
        tokio::spawn(connection);
        return Ok(client);
    }
    let (client, connection) = config
        .connect(RustlsMake::new(rustls))
        .await
        .map_err(driver_err)?;
    tokio::spawn(connection);
    Ok(client)
}

/// A connection to the store database (TLS as its URL says).
pub struct PostgresStore {
    url: String,
    pub(super) client: tokio::sync::Mutex<Client>,
}

impl PostgresStore {
    /// Connects and creates the table.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let masked = super::StoreSpec::Postgres(url.to_string()).display();
        let err = |error: tokio_postgres::Error| StoreError::Postgres {
            url: masked.clone(),
            error: pg_text(&error),
        };
        let client = connect(url).await.map_err(|error| StoreError::Postgres {
            url: masked.clone(),
            error,
        })?;
        client.batch_execute(SCHEMA).await.map_err(err)?;
        client
            .batch_execute(&super::ddl::postgres_schema())
            .await
            .map_err(err)?;
        Ok(PostgresStore {
            url: masked.clone(),
            client: tokio::sync::Mutex::new(client),
        })
    }

    pub(super) fn err(&self, error: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            url: self.url.clone(),
            error: pg_text(&error),
        }
    }

    /// Adds increments in one transaction.
    pub async fn add(&self, deltas: Vec<UsageRecord>) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        let stmt = tx.prepare(UPSERT).await.map_err(|e| self.err(e))?;
        for d in &deltas {
            let uses = resolved::encode(d.resolved.as_deref().map(|v| &v[..]));
            let codes = format!(
                "{{{}}}",
                d.error_codes
                    .iter()
                    .map(|(c, n)| format!("\"{c}\": {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tx.execute(
                &stmt,
                &[
                    &d.client.application_name,
                    &d.client.user,
                    &d.client.database,
                    &d.client.client_addr,
                    &(d.fingerprint_id as i64),
                    &d.fingerprint,
                    &(d.calls as i64),
                    &(d.errors as i64),
                    &(d.total_us as i64),
                    &(d.max_us as i64),
                    &(d.first_seen_ms as i64),
                    &(d.last_seen_ms as i64),
                    &codes,
                    &d.search_path,
                    &uses,
                ],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Totals of rows last seen at or after `since_ms`.
    pub async fn read_since(&self, since_ms: u64) -> Result<Vec<UsageRecord>, StoreError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                "SELECT application_name, user_name, database_name, client_addr, fingerprint_id, fingerprint,
                        calls, errors, total_us, max_us, first_seen_ms, last_seen_ms,
                        (SELECT coalesce(string_agg(k || ':' || v, ',' ORDER BY k), '') FROM jsonb_each_text(error_codes) AS e(k, v)),
                        search_path, resolved
                 FROM ddlguard_usage WHERE last_seen_ms >= $1",
                &[&(since_ms as i64)],
            )
            .await
            .map_err(|e| self.err(e))?;
        // try_get: a store table altered by hand must not panic the flusher.
        rows.iter()
            .map(|r| -> Result<UsageRecord, tokio_postgres::Error> {
                Ok(UsageRecord {
                    client: ClientIdentity {
                        application_name: r.try_get(0)?,
                        user: r.try_get(1)?,
                        database: r.try_get(2)?,
                        client_addr: r.try_get(3)?,
                    },
                    fingerprint_id: r.try_get::<_, i64>(4)? as u64,
                    fingerprint: r.try_get(5)?,
                    calls: r.try_get::<_, i64>(6)? as u64,
                    errors: r.try_get::<_, i64>(7)? as u64,
                    total_us: r.try_get::<_, i64>(8)? as u64,
                    max_us: r.try_get::<_, i64>(9)? as u64,
                    first_seen_ms: r.try_get::<_, i64>(10)? as u64,
                    last_seen_ms: r.try_get::<_, i64>(11)? as u64,
                    error_codes: decode_codes(&r.try_get::<_, String>(12)?),
                    search_path: r.try_get(13)?,
                    resolved: resolved::decode(&r.try_get::<_, String>(14)?).map(Arc::new),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

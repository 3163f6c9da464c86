//! Loading a catalog snapshot through the service login of `[upstream]`.

use super::{Catalog, Column, Table};
use crate::net::upstream::{Upstream, UpstreamError};
use thiserror::Error;
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

/// Why a snapshot could not be taken.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// No `upstream.user` is configured.
    #[error(
        "no service login: set [upstream] user (and password_env) so ddlguard can read the catalog"
    )]
    NoLogin,
    /// The password variable named by `upstream.password_env` is not set.
    #[error("environment variable {0} (upstream.password_env) is not set")]
    MissingPassword(String),
    /// The connection failed.
    #[error(transparent)]
    Connect(#[from] UpstreamError),
    /// Login or query failed.
    #[error("catalog query as {user} on database {database} failed: {error}")]
    Query {
        /// Service login.
        user: String,
        /// Database.
        database: String,
        /// The driver's error.
        error: tokio_postgres::Error,
    },
}

/// Relations and columns of user schemas and of `pg_catalog` (searched
/// first, implicitly), with row estimates. Temporary relations of every
/// session are listed under `pg_temp`, the name a session knows its own by.
const SNAPSHOT_SQL: &str = "\
SELECT CASE WHEN n.nspname LIKE 'pg\\_temp\\_%' THEN 'pg_temp' ELSE n.nspname::text END,
       c.relname::text, c.reltuples::float8,
       a.attname::text, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1, 2, c.oid, a.attnum";

/// The service login from `[upstream]`.
#[derive(Clone, Debug)]
pub struct ServiceLogin {
    /// Role name.
    pub user: String,
    /// Variable holding the password, if any.
    pub password_env: Option<String>,
}

/// A service connection to one database, kept between reloads.
pub struct ServiceConn {
    client: tokio_postgres::Client,
}

impl ServiceConn {
    /// False once the server or the network closed it.
    pub fn is_open(&self) -> bool {
        !self.client.is_closed()
    }

    /// The driver's client, for the verifier lookup of `auth.mode = "proxy"`.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

/// Opens a service connection to `database` through the service login.
pub async fn connect(
    upstream: &Upstream,
    login: &ServiceLogin,
    database: &str,
) -> Result<ServiceConn, CatalogError> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&login.user)
        .dbname(database)
        .application_name("ddlguard catalog")
        .ssl_mode(SslMode::Disable);
    if let Some(var) = &login.password_env {
        let password =
            std::env::var(var).map_err(|_| CatalogError::MissingPassword(var.clone()))?;
        config.password(password);
    }
    // tokio-postgres negotiates TLS as `upstream.tls` says, so SCRAM can
    // bind to the channel (SCRAM-SHA-256-PLUS) as libpq would.
    let tcp = upstream.connect_tcp().await?;
    let limit = upstream.config.connect_timeout.0;
    let timed_out = || {
        CatalogError::Connect(UpstreamError::Timeout {
            addr: upstream.config.address(),
            secs: limit.as_secs_f64(),
        })
    };
    let opened = match upstream.pg_tls()? {
        Some((tls, mode)) => {
            config.ssl_mode(mode);
            open(&config, tcp, tls, limit).await
        }
        None => open(&config, tcp, NoTls, limit).await,
    };
    let client = opened
        .ok_or_else(timed_out)?
        .map_err(|error| query_error(login, database, error))?;
    Ok(ServiceConn { client })
}

/// Logs in on `tcp` (TLS through `tls` as `config` says) within `limit`
/// (`None` when it took longer) and drives the connection in a task.
async fn open<T>(
    config: &tokio_postgres::Config,
    tcp: tokio::net::TcpStream,
    tls: T,
    limit: std::time::Duration,
) -> Option<Result<tokio_postgres::Client, tokio_postgres::Error>>
where
    T: tokio_postgres::tls::TlsConnect<tokio::net::TcpStream>,
    T::Stream: Send + 'static,
{
    let (client, connection) = match tokio::time::timeout(limit, config.connect_raw(tcp, tls)).await
    {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => return Some(Err(e)),
        Err(_) => return None,
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("service connection ended: {e}");
        }
    });
    Some(Ok(client))
}

fn query_error(login: &ServiceLogin, database: &str, error: tokio_postgres::Error) -> CatalogError {
    CatalogError::Query {
        user: login.user.clone(),
        database: database.to_string(),
        error,
    }
}

/// Takes a snapshot of `database` through an open service connection.
pub async fn read(
    conn: &ServiceConn,
    login: &ServiceLogin,
    database: &str,
) -> Result<Catalog, CatalogError> {
    let query_err = |error| query_error(login, database, error);
    let rows = conn
        .client
        .query(SNAPSHOT_SQL, &[])
        .await
        .map_err(query_err)?;
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        // try_get: unexpected types from the server end the load, not the task.
        let field = |e| query_err(e);
        let schema: String = row.try_get(0).map_err(field)?;
        let name: String = row.try_get(1).map_err(field)?;
        let reltuples: f64 = row.try_get(2).map_err(field)?;
        let needs_new = tables
            .last()
            .is_none_or(|t| t.schema != schema || t.name != name);
        if needs_new {
            tables.push(Table {
                schema,
                name,
                columns: Vec::new(),
                row_estimate: reltuples as i64,
            });
        }
        let attname: Option<String> = row.try_get(3).map_err(field)?;
        if let (Some(attname), Some(table)) = (attname, tables.last_mut()) {
            table.columns.push(Column {
                name: attname,
                attnum: row.try_get(4).map_err(field)?,
                type_name: row
                    .try_get::<_, Option<String>>(5)
                    .map_err(field)?
                    .unwrap_or_default(),
                not_null: row.try_get(6).map_err(field)?,
            });
        }
    }
    Ok(Catalog::from_tables(tables))
}

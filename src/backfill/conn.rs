//! The job's own connections to the upstream, through the service login
//! and the connector the catalog uses, and what it reads from the catalog
//! before it starts: the table, its usable unique key, its columns, its
//! row estimate.

use super::error::BackfillError;
use super::sql::quote_ident;
use crate::catalog::ServiceLogin;
use crate::net::upstream::Upstream;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

/// Opens a connection to `database` as the service login; `purpose`
/// becomes its `application_name` (`ddlguard backfill 3`).
pub async fn connect(
    upstream: &Upstream,
    login: &ServiceLogin,
    database: &str,
    purpose: &str,
) -> Result<Client, BackfillError> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&login.user)
        .dbname(database)
        .application_name(purpose)
        .ssl_mode(SslMode::Disable);
    if let Some(var) = &login.password_env {
        let password = std::env::var(var).map_err(|_| {
            BackfillError::Upstream(format!(
                "environment variable {var} (upstream.password_env) is not set"
            ))
        })?;
        config.password(password);
    }
    // TLS, if any, is negotiated by the upstream connector.
    let stream = upstream
        .connect()
        .await
        .map_err(|e| BackfillError::Upstream(e.to_string()))?;
    let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(|e| {
        BackfillError::Upstream(format!(
            "logging in as {} to database {database}: {e}",
            login.user
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("backfill connection ended: {e}");
        }
    });
    Ok(client)
}

/// The table as the job needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Schema.
    pub schema: String,
    /// Name.
    pub table: String,
    /// The key column walked.
    pub key: String,
    /// Its type.
    pub key_type: String,
    /// Column names.
    pub columns: Vec<String>,
    /// `reltuples` (0 when never analysed).
    pub rows_estimated: u64,
}

const TABLE_SQL: &str = "\
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = pg_catalog.to_regclass($1)";

const COLUMNS_SQL: &str = "\
SELECT attname::text FROM pg_catalog.pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum";

/// Single-column unique indexes usable as a key: valid, not partial, not on
/// an expression, on a NOT NULL column (a primary key first).
const KEYS_SQL: &str = "\
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = $1 AND i.indisunique AND i.indnkeyatts = 1 AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY i.indisprimary DESC, a.attnum";

/// Reads the table `name` (as written: `users`, `app.users`, `"Users"`)
/// and picks its key (`key`, else the primary key, else the first usable
/// unique index). Refuses what cannot be walked safely.
pub async fn inspect(
    client: &Client,
    name: &str,
    key: Option<&str>,
) -> Result<TableInfo, BackfillError> {
    let server = |e: tokio_postgres::Error| BackfillError::server(&e);
    let row = client
        .query_opt(TABLE_SQL, &[&name])
        .await
        .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
            // to_regclass refuses a malformed name the same way a missing one is.
            Some("42601") | Some("3F000") => missing_table(name),
            _ => server(e),
        })?
        .ok_or_else(|| missing_table(name))?;
    let oid: u32 = row.try_get(0).map_err(server)?;
    let schema: String = row.try_get(1).map_err(server)?;
    let table: String = row.try_get(2).map_err(server)?;
    let kind: String = row.try_get(3).map_err(server)?;
    let reltuples: f64 = row.try_get(4).map_err(server)?;
    if kind != "r" && kind != "p" {
        return Err(BackfillError::Unsafe {
            message: format!("{schema}.{table} is not a table (relkind {kind})"),
            hint: "backfill the table a view or index is built on".into(),
        });
    }
    let columns = client
        .query(COLUMNS_SQL, &[&oid])
        .await
        .map_err(server)?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(server)?;
    let mut keys = Vec::new();
    for r in client.query(KEYS_SQL, &[&oid]).await.map_err(server)? {
        let col: String = r.try_get(0).map_err(server)?;
        let ty: String = r.try_get(1).map_err(server)?;
        let not_null: bool = r.try_get(2).map_err(server)?;
        keys.push((col, ty, not_null));
    }
    let qualified = format!("{}.{}", quote_ident(&schema), quote_ident(&table));
    let (key, key_type) = pick_key(&qualified, &columns, &keys, key)?;
    Ok(TableInfo {
        schema,
        table,
        key,
        key_type,
        columns,
        rows_estimated: reltuples.max(0.0) as u64,
    })
}

fn missing_table(name: &str) -> BackfillError {
    BackfillError::Missing {
        code: "42P01",
        message: format!("relation {name:?} does not exist"),
    }
}

/// The key to walk among the usable ones, or a refusal that says which
/// index to add.
fn pick_key(
    qualified: &str,
    columns: &[String],
    keys: &[(String, String, bool)],
    wanted: Option<&str>,
) -> Result<(String, String), BackfillError> {
    let add = |col: &str| {
        format!(
            "add one: CREATE UNIQUE INDEX CONCURRENTLY ON {qualified} ({col}) on a NOT NULL column (or ALTER TABLE {qualified} ADD PRIMARY KEY ...), then start the backfill again"
        )
    };
    match wanted {
        Some(k) => {
            if !columns.iter().any(|c| c == k) {
                return Err(BackfillError::Missing {
                    code: "42703",
                    message: format!("column {k:?} of {qualified} does not exist"),
                });
            }
            match keys.iter().find(|(c, _, _)| c == k) {
                Some((c, t, true)) => Ok((c.clone(), t.clone())),
                Some((_, _, false)) => Err(BackfillError::Unsafe {
                    message: format!("key column {k} of {qualified} allows NULL: rows with a NULL key would be skipped"),
                    hint: format!("ALTER TABLE {qualified} ALTER COLUMN {k} SET NOT NULL, or choose another --key"),
                }),
                None => Err(BackfillError::Unsafe {
                    message: format!("column {k} of {qualified} has no unique index of its own: batches by key range need one"),
                    hint: add(k),
                }),
            }
        }
        None => keys
            .iter()
            .find(|(_, _, not_null)| *not_null)
            .map(|(c, t, _)| (c.clone(), t.clone()))
            .ok_or_else(|| BackfillError::Unsafe {
                message: format!(
                    "{qualified} has no usable unique key (a primary key or a unique index on one NOT NULL column): batches by key range need one"
                ),
                hint: add("id"),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(c: &str, nn: bool) -> (String, String, bool) {
        (c.into(), "bigint".into(), nn)
    }

    #[test]
    fn keys_are_picked_or_the_refusal_says_what_to_add() {
        let cols: Vec<String> = ["id", "email", "code"].map(String::from).into();
        let keys = [k("id", true), k("code", false)];
        assert_eq!(pick_key("t", &cols, &keys, None).unwrap().0, "id");
        assert_eq!(pick_key("t", &cols, &keys, Some("id")).unwrap().0, "id");
        let e = pick_key("t", &cols, &keys, Some("code")).unwrap_err();
        assert!(e.to_string().contains("allows NULL"), "{e}");
        let e = pick_key("t", &cols, &keys, Some("email")).unwrap_err();
        assert!(e
            .hint()
            .unwrap()
            .contains("CREATE UNIQUE INDEX CONCURRENTLY"));
        assert_eq!(
            pick_key("t", &cols, &keys, Some("nope"))
                .unwrap_err()
                .sqlstate(),
            "42703"
        );
        let e = pick_key("t", &cols, &[k("code", false)], None).unwrap_err();
        assert_eq!(e.sqlstate(), "55000");
        assert!(e.to_string().contains("no usable unique key"), "{e}");
    }
}

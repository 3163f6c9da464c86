//! A database of its own with one table, `items (id int PRIMARY KEY, v
//! text)`, for the policy and guarded-execution tests.

use super::{connect, Cluster};
use tokio_postgres::Client;

/// Creates database `name` with `rows` items (ids 1..=rows); returns the
/// shared cluster, the database name and a direct (not proxied) client.
pub async fn items_db(name: &str, rows: i32) -> (&'static Cluster, String, Client) {
    db_with(
        name,
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, v text);
             INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, {rows}) i;"
        ),
    )
    .await
}

/// Creates database `name` and runs `setup` in it; returns the shared
/// cluster, the database name and a direct (not proxied) client.
pub async fn db_with(name: &str, setup: &str) -> (&'static Cluster, String, Client) {
    let cluster = Cluster::shared();
    let db = cluster.create_db(name);
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct.batch_execute(setup).await.unwrap();
    (cluster, db, direct)
}

/// The single bigint `sql` returns (a count).
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// How many valid indexes are named `name`.
pub async fn valid_index(direct: &Client, name: &str) -> i64 {
    count(
        direct,
        &format!(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = '{name}' AND i.indisvalid"
        ),
    )
    .await
}

/// A direct session of `app` that read `items` in a transaction it keeps
/// open (a report, a forgotten psql): it holds ACCESS SHARE until it ends.
pub async fn open_reader(cluster: &Cluster, db: &str, app: &str) -> Client {
    let reader = connect(&format!(
        "{} application_name={app}",
        cluster.direct_conn(db)
    ))
    .await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM items;")
        .await
        .unwrap();
    reader
}

//! A database of its own with one table, `items (id int PRIMARY KEY, v
//! text)`, for the policy and guarded-execution tests.

use super::{connect, Cluster};
use tokio_postgres::Client;

/// Creates database `name` with `rows` items (ids 1..=rows); returns the
/// shared cluster, the database name and a direct (not proxied) client.
pub async fn items_db(name: &str, rows: i32) -> (&'static Cluster, String, Client) {
    let cluster = Cluster::shared();
    let db = cluster.create_db(name);
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v text);
             INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, {rows}) i;"
        ))
        .await
        .unwrap();
    (cluster, db, direct)
}

//! Usage-aware rules for functions, sequences, types and schemas (issue 13):
//! DDL on an object another client called, drew from, cast to or read from
//! is refused with 55000 naming that client; the same DDL goes through when
//! only the issuing client used it.

use crate::support::items::{count, items_db};
use crate::support::{connect, Cluster, TestProxy};
use tokio_postgres::Client;

/// A database with a schema `shop` (a table, a function, a sequence) and, in
/// `public`, a function and an enum type.
/// Then a proxy, and a session through it named `first` and one named
/// `second` (application_name); the direct client and the database come first.
async fn start(
    name: &str,
    first: &str,
    second: &str,
) -> ((Client, String), TestProxy, Client, Client) {
    let (cluster, db, direct) = setup(name).await;
    let proxy = TestProxy::start(cluster).await;
    let app = |name: &str| format!("{} application_name={name}", proxy.conn(&db));
    let (a, b) = (connect(&app(first)).await, connect(&app(second)).await);
    ((direct, db), proxy, a, b)
}

async fn setup(name: &str) -> (&'static Cluster, String, Client) {
    let (cluster, db, direct) = items_db(name, 5).await;
    direct
        .batch_execute(
            "CREATE SCHEMA shop;
             CREATE TABLE shop.orders (id int PRIMARY KEY, total int);
             CREATE FUNCTION shop.calc(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
             CREATE FUNCTION calc_total(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
             CREATE SEQUENCE shop.ids;
             CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE SCHEMA archive;",
        )
        .await
        .expect("objects created");
    (cluster, db, direct)
}

/// What each object is used by: a function called unqualified, one called
/// qualified, a sequence drawn from, a type cast to, a table of `shop` read.
async fn use_everything(c: &Client) {
    c.query("SELECT calc_total(1)", &[]).await.unwrap();
    c.query("SELECT shop.calc(2)", &[]).await.unwrap();
    c.query("SELECT nextval('shop.ids')", &[]).await.unwrap();
    c.query("SELECT 'happy'::mood", &[]).await.unwrap();
    c.query("SELECT total FROM shop.orders WHERE id = $1", &[&1i32])
        .await
        .unwrap();
}

/// Each DDL, the rule that must refuse it, and what the other client's
/// statement looks like in the refusal (its fingerprint).
const DDL: [(&str, &str, &str); 8] = [
    (
        "ALTER FUNCTION shop.calc(int) RENAME TO calc2",
        "rename-in-use",
        "shop.calc(",
    ),
    (
        "DROP FUNCTION calc_total(int)",
        "drop-function-in-use",
        "calc_total(",
    ),
    (
        "ALTER SEQUENCE shop.ids SET SCHEMA archive",
        "set-schema-in-use",
        "nextval(",
    ),
    ("DROP SEQUENCE shop.ids", "drop-sequence-in-use", "nextval("),
    ("DROP TYPE mood", "drop-type-in-use", "::mood"),
    (
        "ALTER TYPE mood RENAME TO feeling",
        "rename-in-use",
        "::mood",
    ),
    (
        "ALTER SCHEMA shop RENAME TO shop2",
        "rename-in-use",
        "shop.orders",
    ),
    (
        "DROP SCHEMA shop CASCADE",
        "drop-schema-in-use",
        "shop.orders",
    ),
];

/// How many of the objects still exist (asked directly, not through the proxy).
async fn objects_left(direct: &Client) -> i64 {
    count(
        direct,
        "SELECT (SELECT count(*) FROM pg_proc WHERE proname IN ('calc', 'calc_total'))
              + (SELECT count(*) FROM pg_class WHERE relname = 'ids'
                   AND relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = 'shop'))
              + (SELECT count(*) FROM pg_type WHERE typname = 'mood')
              + (SELECT count(*) FROM pg_namespace WHERE nspname = 'shop')",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_on_objects_another_client_uses_is_refused_naming_that_client() {
    let ((direct, db), proxy, worker, migrator) =
        start("objects_in_use", "order_worker", "migrator").await;
    use_everything(&worker).await;
    // A client that finds `shop.orders` through its search_path uses the
    // schema too.
    let conn = proxy.conn(&db);
    let path_worker = connect(&format!("{conn} application_name=path_worker")).await;
    path_worker
        .batch_execute("SET search_path = shop, public")
        .await
        .unwrap();
    path_worker
        .query("SELECT count(*) FROM orders", &[])
        .await
        .unwrap();
    for (sql, rule, shape) in DDL {
        let err = match migrator.batch_execute(sql).await {
            Ok(()) => panic!("{sql} went through"),
            Err(e) => e,
        };
        let e = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
        assert_eq!(e.code().code(), "55000", "{sql}: {}", e.message());
        assert!(e.message().contains(rule), "{sql}: {}", e.message());
        let detail = e.detail().unwrap_or("");
        assert!(
            detail.contains("order_worker") && detail.contains(shape),
            "{sql}: {detail}"
        );
        assert!(!detail.contains("migrator"), "{sql}: {detail}");
        assert_eq!(
            detail.contains("path_worker"),
            sql.contains("SCHEMA shop"),
            "{sql}: {detail}"
        );
    }
    // Nothing was executed: 2 functions, the sequence, the type, the schema.
    assert_eq!(objects_left(&direct).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_ddl_goes_through_when_only_the_issuer_used_the_objects() {
    let ((direct, _), _proxy, migrator, other) =
        start("objects_own_use", "migrator", "reporting").await;
    use_everything(&migrator).await;
    // Another client that used something else does not count either.
    other
        .query("SELECT count(*) FROM items", &[])
        .await
        .unwrap();
    for (sql, _, _) in DDL {
        // After the rename and the move, the next statements name the
        // object where it now is.
        let sql = match sql {
            "DROP SEQUENCE shop.ids" => "DROP SEQUENCE archive.ids",
            "DROP TYPE mood" => "DROP TYPE mood CASCADE",
            "ALTER TYPE mood RENAME TO feeling" => "CREATE TYPE mood AS ENUM ('x')",
            "DROP SCHEMA shop CASCADE" => "DROP SCHEMA shop2 CASCADE",
            other => other,
        };
        migrator
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    assert_eq!(objects_left(&direct).await, 1, "only the new type mood");
}

//! The DDL policy at the proxy, end to end: refusals with SQLSTATE 55000
//! and nothing executed, rewrites into the safe sequence answered as if the
//! client's statement ran, warnings, override comments, both protocols, and
//! pipelined statements after a held one kept in order.

use crate::support::items::{count, items_db};
use crate::support::notices::with_notices;
use crate::support::raw::{query, RawClient};
use crate::support::{connect, Cluster, TestProxy};
use ddlguard::policy::Mode;
use ddlguard::wire::messages::error_fields;
use tokio_postgres::{Client, SimpleQueryMessage};

async fn setup(name: &str) -> (&'static Cluster, String, Client) {
    items_db(name, 50).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_statement_gets_55000_with_rule_reason_and_hint_and_changes_nothing() {
    let (cluster, db, direct) = setup("policy_block").await;
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    // Simple protocol.
    let err = via.batch_execute("TRUNCATE items").await.unwrap_err();
    let e = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(e.code().code(), "55000");
    assert!(e.message().contains("truncate-table"), "{}", e.message());
    assert!(
        e.detail().is_some_and(|d| d.contains("ACCESS EXCLUSIVE")),
        "{e:?}"
    );
    assert!(
        e.hint().is_some_and(|h| h.contains("ddlguard:allow")),
        "{e:?}"
    );
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 50);
    // Extended protocol (Parse/Bind/Execute): the same refusal.
    let err = via.execute("TRUNCATE items", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55000");
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 50);
    // The session goes on, outside and inside a transaction block.
    assert_eq!(
        via.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    via.batch_execute("BEGIN").await.unwrap();
    let err = via.batch_execute("TRUNCATE items").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55000");
    // As after any failed statement, the transaction is aborted.
    let aborted = via.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(aborted.code().unwrap().code(), "25P02");
    via.batch_execute("ROLLBACK").await.unwrap();
    // Decisions are counted by rule and action.
    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    assert!(
        metrics
            .contains(r#"ddlguard_policy_findings_total{rule="truncate-table",action="block"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ddlguard_gate_statements_total{outcome="blocked"} 3"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_multi_statement_query_what_comes_before_runs_and_the_rest_does_not() {
    let (cluster, db, direct) = setup("policy_multi").await;
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    // Explicit transaction committed before the refused statement: kept.
    let err = via
        .simple_query(
            "BEGIN; INSERT INTO items VALUES (100, 'kept'); COMMIT; \
             TRUNCATE items; INSERT INTO items VALUES (101, 'never')",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55000");
    assert_eq!(
        count(&direct, "SELECT count(*) FROM items WHERE id = 100").await,
        1
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM items WHERE id = 101").await,
        0
    );
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 51);
    // In the implicit transaction of the Query, the statements before it are
    // rolled back with it, as Postgres does for a failing statement.
    via.simple_query("INSERT INTO items VALUES (102, 'gone'); TRUNCATE items")
        .await
        .unwrap_err();
    assert_eq!(
        count(&direct, "SELECT count(*) FROM items WHERE id = 102").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_is_rewritten_concurrently_and_answered_as_create_index() {
    let (cluster, db, direct) = setup("policy_rewrite").await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    // Pipelined: the held statement, then two more; replies keep their order.
    let mut batch = query("CREATE INDEX items_v ON items (v)");
    batch.extend(query("SELECT 'after'"));
    batch.extend(query("SELECT count(*) FROM items"));
    raw.send(&batch).await;
    let mut seen = Vec::new();
    let mut ready = 0;
    while ready < 3 {
        let (tag, body) = raw.read_message().await.expect("reply");
        match tag {
            b'C' => seen.push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
            b'N' => seen.push(format!("notice: {}", error_fields(&body).message)),
            b'E' => panic!("unexpected error {:?}", error_fields(&body)),
            b'Z' => ready += 1,
            _ => {}
        }
    }
    let tags: Vec<&str> = seen
        .iter()
        .filter(|s| !s.starts_with("notice"))
        .map(String::as_str)
        .collect();
    assert_eq!(tags, ["CREATE INDEX", "SELECT 1", "SELECT 1"]);
    assert!(
        seen.iter()
            .any(|s| s.starts_with("notice") && s.contains("step 2/2 done")),
        "each step is reported: {seen:?}"
    );
    let valid = count(
        &direct,
        "SELECT count(*) FROM pg_index WHERE indexrelid = 'items_v'::regclass AND indisvalid",
    )
    .await;
    assert_eq!(valid, 1, "a valid index, built concurrently");
    // Inside a transaction block the sequence cannot run: refused, with the
    // migration tools' way out and the steps.
    let via = proxy.connect(&db).await;
    via.batch_execute("BEGIN").await.unwrap();
    let err = via
        .batch_execute("CREATE INDEX items_v2 ON items (v)")
        .await
        .unwrap_err();
    let e = err.as_db_error().unwrap();
    assert_eq!(e.code().code(), "55000");
    let hint = e.hint().unwrap_or("");
    assert!(
        hint.contains("disable_ddl_transaction!") && hint.contains("CONCURRENTLY"),
        "{hint}"
    );
    via.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_v2'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_forwards_with_a_warning_and_an_override_comment_lets_one_through() {
    let (cluster, db, direct) = setup("policy_warn").await;
    let warn = TestProxy::start_with(cluster, |c| c.policy.mode = Mode::Warn).await;
    let (via, notices) = with_notices(&warn.conn(&db)).await;
    let messages = via.simple_query("TRUNCATE items").await.unwrap();
    assert!(messages
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))));
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 0);
    let warned = notices.lock().unwrap().clone();
    assert!(
        warned.iter().any(|n| n.contains("truncate-table")),
        "{warned:?}"
    );

    direct
        .batch_execute("INSERT INTO items SELECT i, 'v' FROM generate_series(1, 5) i")
        .await
        .unwrap();
    let enforce = TestProxy::start(cluster).await;
    let via = enforce.connect(&db).await;
    via.batch_execute("-- ddlguard:allow truncate-table emptying the staging copy\nTRUNCATE items")
        .await
        .unwrap();
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_column_another_client_reads_is_refused_naming_that_client() {
    let (cluster, db, direct) = setup("policy_in_use").await;
    let proxy = TestProxy::start(cluster).await;
    let app = |name: &str| format!("{} application_name={name}", proxy.conn(&db));
    let reader = connect(&app("billing_worker")).await;
    reader
        .query("SELECT v FROM items WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    let migrator = connect(&app("migrator")).await;
    let err = migrator
        .batch_execute("ALTER TABLE items DROP COLUMN v")
        .await
        .unwrap_err();
    let e = err.as_db_error().unwrap();
    assert_eq!(e.code().code(), "55000");
    assert!(
        e.message().contains("drop-column-in-use"),
        "{}",
        e.message()
    );
    let detail = e.detail().unwrap_or("");
    assert!(
        detail.contains("billing_worker") && detail.contains("select v from items where id = $1"),
        "{detail}"
    );
    assert_eq!(
        count(&direct, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'v'").await,
        1
    );
    // The migrator's own earlier use does not count against it.
    direct
        .batch_execute("ALTER TABLE items ADD COLUMN w int")
        .await
        .unwrap();
    migrator
        .query("SELECT w FROM items LIMIT 1", &[])
        .await
        .unwrap();
    migrator
        .batch_execute("ALTER TABLE items DROP COLUMN w")
        .await
        .expect("nobody else used items.w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_read_as_postgres_reads_them_so_none_slips_past() {
    let (cluster, db, direct) = setup("policy_escapes").await;
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    let refused = |r: Result<(), tokio_postgres::Error>| {
        let e = r.expect_err("refused");
        assert_eq!(e.code().map(|c| c.code()), Some("55000"), "{e}");
    };
    // A -- comment ends at a carriage return too.
    refused(via.batch_execute("-- cleanup\rTRUNCATE items").await);
    // CREATE TABLE IF NOT EXISTS of an existing table creates nothing new.
    via.batch_execute("CREATE TABLE IF NOT EXISTS items (id int)")
        .await
        .unwrap();
    refused(via.batch_execute("TRUNCATE items").await);
    // With standard_conforming_strings off, a backslash escapes a quote.
    via.batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    refused(
        via.batch_execute("SELECT 'x\\' , $$' ; TRUNCATE items; -- $$")
            .await,
    );
    // A statement pipelined with the startup packet is judged too.
    let mut startup =
        ddlguard::wire::startup::build_startup(196_608, &[("user", "postgres"), ("database", &db)]);
    startup.extend(query("TRUNCATE items"));
    let mut raw = RawClient::connect(proxy.addr.port()).await;
    raw.send(&startup).await;
    let (code, _) = raw
        .read_error()
        .await
        .expect("the early statement is refused");
    assert_eq!(code, "55000");
    assert_eq!(count(&direct, "SELECT count(*) FROM items").await, 50);
}

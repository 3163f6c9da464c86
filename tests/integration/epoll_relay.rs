//! `server.epoll_relay`: plain sessions are relayed by an epoll loop beside
//! the session thread, TLS sessions and `epoll_relay = false` on their
//! tasks; a session goes to its task for held work and comes back, and the
//! proxy's closing phase reaches it there.

use crate::support::items::items_db;
use crate::support::TestProxy;
use ddlguard::config::UpstreamTls;
use std::time::{Duration, Instant};

/// A value of `/metrics`, by the start of its line.
fn metric(proxy: &TestProxy, line: &str) -> u64 {
    proxy
        .metric(line)
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
}

/// Sessions on the epoll loop now.
fn on_loop(proxy: &TestProxy) -> u64 {
    metric(proxy, "ddlguard_sessions_epoll_relay ")
}

/// Waits until `on_loop` is `n` (a session moves there right after its
/// login, and leaves it when it ends).
async fn wait_on_loop(proxy: &TestProxy, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_loop(proxy) != n {
        assert!(
            Instant::now() < deadline,
            "{} sessions on the epoll loop, expected {n}",
            on_loop(proxy)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sessions_take_the_epoll_loop_tls_and_disabled_ones_do_not() {
    let (cluster, db, _direct) = items_db("epoll_paths", 50).await;

    let proxy = TestProxy::start(cluster).await;
    let a = proxy.connect(&db).await;
    let b = proxy.connect(&db).await;
    let sum: i64 = a
        .query_one(
            "SELECT sum(id)::bigint FROM items WHERE id <= $1",
            &[&10i32],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 55);
    b.batch_execute("SELECT 1; SELECT 2").await.unwrap();
    wait_on_loop(&proxy, 2).await;
    drop(a);
    wait_on_loop(&proxy, 1).await;
    drop(b);
    wait_on_loop(&proxy, 0).await;

    // TLS to the upstream: relayed on the session's task.
    let tls = TestProxy::start_with(cluster, |c| c.upstream.tls = UpstreamTls::Require).await;
    let client = tls.connect(&db).await;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the upstream leg is TLS");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(on_loop(&tls), 0);

    // Turned off: every session on its task.
    let off = TestProxy::start_with(cluster, |c| c.server.epoll_relay = false).await;
    let client = off.connect(&db).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 50);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(on_loop(&off), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_ddl_leaves_the_loop_for_its_task_and_comes_back() {
    let (cluster, db, _direct) = items_db("epoll_held", 20).await;
    let proxy = TestProxy::start(cluster).await;
    let client = proxy.connect(&db).await;
    client.batch_execute("SELECT 1").await.unwrap();
    wait_on_loop(&proxy, 1).await;

    // A strong-lock DDL alone is held and run guarded by the session's task.
    client
        .batch_execute("ALTER TABLE items ADD COLUMN note text")
        .await
        .unwrap();
    assert_eq!(
        metric(
            &proxy,
            r#"ddlguard_gate_statements_total{outcome="guarded"} "#
        ),
        1
    );
    // Then relaying goes on, on the loop again, with the new column.
    client
        .execute("UPDATE items SET note = 'x' WHERE id = $1", &[&3i32])
        .await
        .unwrap();
    let note: String = client
        .query_one("SELECT note FROM items WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "x");
    wait_on_loop(&proxy, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_recalls_sessions_from_the_loop_and_ends_them_with_57p01() {
    let (cluster, db, _direct) = items_db("epoll_closing", 10).await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.shutdown_grace.0 = Duration::from_millis(300);
    })
    .await;
    let (client, connection) = tokio_postgres::connect(&proxy.conn(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    client.batch_execute("SELECT 1").await.unwrap();
    wait_on_loop(&proxy, 1).await;
    // A statement still running when the grace ends.
    let sleeper = tokio::spawn(async move { client.batch_execute("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.handle.shutdown();
    // The running statement gets the proxy's 57P01, as from a Postgres
    // shutting down.
    let err = tokio::time::timeout(Duration::from_secs(15), sleeper)
        .await
        .expect("the session is closed after the grace")
        .unwrap()
        .expect_err("the statement ends with an error");
    assert_eq!(err.code().map(|c| c.code()), Some("57P01"), "{err}");
    tokio::time::timeout(Duration::from_secs(5), conn_task)
        .await
        .expect("the connection ends")
        .unwrap()
        .expect_err("closed by the proxy");
    tokio::time::timeout(Duration::from_secs(20), proxy.task)
        .await
        .expect("the proxy stops once its sessions ended")
        .unwrap();
}

/// The loop stamps each wakeup once (one clock read shared by an epoll
/// batch): a statement's latency still runs from the wakeup that brought
/// its Query or Execute to the one that brought its answer, on both
/// protocols. A clock kept across wakeups would record these as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_the_loop_spans_the_statement() {
    let (cluster, db, _direct) = items_db("epoll_latency", 10).await;
    let proxy = TestProxy::start(cluster).await;
    let client = proxy.connect(&db).await;
    client.batch_execute("SELECT 1").await.unwrap();
    wait_on_loop(&proxy, 1).await;
    client
        .batch_execute("SELECT pg_sleep(0.25), count(*) FROM items")
        .await
        .unwrap();
    client
        .query("SELECT pg_sleep($1), min(id) FROM items", &[&0.25f64])
        .await
        .unwrap();
    let slept: Vec<(String, u64)> = proxy
        .handle
        .usage()
        .statements()
        .into_iter()
        .filter(|r| r.fingerprint.contains("pg_sleep"))
        .map(|r| (r.fingerprint, r.max_us))
        .collect();
    assert_eq!(slept.len(), 2, "{slept:?}");
    for (fingerprint, max_us) in slept {
        assert!(max_us >= 250_000, "{fingerprint}: {max_us} µs");
    }
}

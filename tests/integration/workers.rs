//! `server.worker_threads` > 1: sessions spread over single-thread worker
//! runtimes and behave as on one thread (results, cancel, usage, held DDL,
//! graceful shutdown).

use crate::support::items::items_db;
use crate::support::TestProxy;
use std::time::Duration;

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim().starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_worker_threads_relay_cancel_record_and_drain() {
    let (cluster, db, direct) = items_db("workers", 100).await;
    let before = threads_named("ddlguard-worker");
    let proxy = TestProxy::start_with(cluster, |c| c.server.worker_threads = 2).await;

    // Eight clients at once, simple and extended protocol.
    let mut tasks = Vec::new();
    for i in 0..8i32 {
        let conn = format!("{} application_name=worker-{i}", proxy.conn(&db));
        tasks.push(tokio::spawn(async move {
            let client = crate::support::connect(&conn).await;
            let mut sum = 0i64;
            for id in 1..=20i32 {
                let row = client
                    .query_one("SELECT id::bigint FROM items WHERE id = $1", &[&id])
                    .await
                    .unwrap();
                sum += row.get::<_, i64>(0);
            }
            client.batch_execute("SELECT 1; SELECT 2").await.unwrap();
            (i, sum)
        }));
    }
    for t in tasks {
        let (_, sum) = t.await.unwrap();
        assert_eq!(sum, 210);
    }
    assert!(
        threads_named("ddlguard-worker") >= before + 2,
        "two session threads run"
    );
    assert!(
        threads_named("ddlguard-relay-") >= 2,
        "each session thread has its epoll relay"
    );

    // A cancel reaches the session whatever thread it lives on.
    let client = proxy.connect(&db).await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.batch_execute("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("cancelled, not left sleeping")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");

    // Held DDL (a rewrite) runs on a worker too.
    let via = proxy.connect(&db).await;
    via.batch_execute("CREATE INDEX items_v_workers ON items (v)")
        .await
        .unwrap();
    let valid: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'items_v_workers'::regclass AND indisvalid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(valid, 1);

    // Usage from every thread lands in the one registry.
    let apps: std::collections::BTreeSet<String> = proxy
        .handle
        .usage()
        .statements()
        .into_iter()
        .map(|r| r.client.application_name.clone())
        .filter(|a| a.starts_with("worker-"))
        .collect();
    assert_eq!(apps.len(), 8, "{apps:?}");

    // Graceful shutdown waits for the sessions on the workers.
    let idle = proxy.connect(&db).await;
    proxy.handle.shutdown();
    idle.batch_execute("SELECT 1")
        .await
        .expect("an open session goes on while draining");
    drop(idle);
    drop(via);
    tokio::time::timeout(Duration::from_secs(20), proxy.task)
        .await
        .expect("the proxy stops once its sessions ended")
        .unwrap();
}

//! Catalog refresh after DDL: a burst is coalesced into a few reloads over
//! one kept service connection, counted in /metrics, and the snapshot ends
//! up current.

use crate::support::{connect, Cluster, TestProxy};
use std::time::{Duration, Instant};

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ddl_costs_a_handful_of_reloads_and_ends_current() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("catalog_storm");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE t (id int); CREATE TABLE u (uid int);")
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.upstream.user = Some("postgres".into());
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let catalogs = proxy.handle.catalogs();
    let client = proxy.connect(&db).await;
    wait_for("the first snapshot", || {
        catalogs.get(&db).table("public", "t").is_some()
    })
    .await;
    let before = catalogs.stats();

    for i in 1..=100 {
        client
            .simple_query(&format!("ALTER TABLE t ADD COLUMN c{i} int"))
            .await
            .unwrap();
    }
    wait_for("the column added last", || {
        catalogs
            .get(&db)
            .table("public", "t")
            .is_some_and(|t| t.has_column("c100"))
    })
    .await;
    // Any reload still pending after the burst has ended by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = catalogs.stats();
    let reloads = after.reloads - before.reloads;
    eprintln!("100 DDL statements: {reloads} catalog reloads, {after:?}");
    assert!(
        (1..=5).contains(&reloads),
        "100 DDL statements led to {reloads} reloads"
    );
    assert_eq!(after.failures, 0);
    assert_eq!(after.connects, 1, "one service connection, kept: {after:?}");

    // Resolved with the new snapshot: two tables in scope, only t has c100.
    client
        .simple_query("SELECT c100, uid FROM t, u")
        .await
        .unwrap();
    let rows = proxy.handle.usage_rows();
    assert!(
        rows.iter()
            .any(|r| r.table == "t" && r.column.as_deref() == Some("c100")),
        "c100 resolved to t: {:?}",
        rows.iter()
            .map(|r| (&r.table, &r.column))
            .collect::<Vec<_>>()
    );

    let http = proxy.http.unwrap();
    let metrics = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("http://{http}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    for line in [
        format!("ddlguard_catalog_reloads_total {}", after.reloads),
        "ddlguard_catalog_reload_failures_total 0".to_string(),
        "ddlguard_catalog_connections_total 1".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

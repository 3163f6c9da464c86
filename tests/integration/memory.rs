//! Memory the usage registry holds stays near `usage.max_memory` under many
//! distinct statement shapes, with evictions counted and exported.

use crate::support::raw::{query, RawClient};
use crate::support::{connect, Cluster, TestProxy};

/// Sends `n` statements pipelined and waits for their answers.
async fn run_batch(raw: &mut RawClient, texts: impl Iterator<Item = String>) {
    let mut batch = Vec::new();
    let mut n = 0;
    for t in texts {
        batch.extend(query(&t));
        n += 1;
    }
    raw.send(&batch).await;
    let mut ready = 0;
    while ready < n {
        if raw.read_message().await.expect("reply").0 == b'Z' {
            ready += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_memory_stays_under_max_memory_with_evictions_counted() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("memory_bound");
    let direct = connect(&cluster.direct_conn(&db)).await;
    for t in 0..50 {
        direct
            .batch_execute(&format!(
                "CREATE TABLE t{t} (id int, a int, b text, c text)"
            ))
            .await
            .unwrap();
    }
    const MAX: usize = 512 << 10;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.usage.max_memory.0 = MAX;
        c.usage.max_entries = 1_000_000;
        c.usage.flush_interval.0 = std::time::Duration::from_millis(100);
    })
    .await;
    let usage = proxy.handle.usage();
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    let mut peak = 0;
    // 20,000 distinct shapes (distinct aliases) over 50 tables.
    for chunk in 0..40 {
        run_batch(
            &mut raw,
            (0..500).map(|i| {
                let n = chunk * 500 + i;
                format!("SELECT a AS x{n}, b FROM t{} WHERE id = {n}", n % 50)
            }),
        )
        .await;
        peak = peak.max(usage.memory_bytes());
    }
    let stats = usage.stats();
    assert!(stats.evicted > 0, "{stats:?}");
    assert_eq!(
        stats.recorded + stats.dropped,
        20_000,
        "every execution recorded or counted as dropped: {stats:?}"
    );
    // Never above the bound (plus one entry's worth of slack for the
    // entries being inserted while the check runs).
    assert!(peak <= MAX + 8 * 1024, "peak {peak} > {MAX}");
    // Without the bound the same workload holds several times as much.
    let unbounded = TestProxy::start_with(cluster, |c| {
        c.usage.max_entries = 1_000_000;
    })
    .await;
    let mut raw = RawClient::login_db(unbounded.addr.port(), &db).await;
    run_batch(
        &mut raw,
        (0..5_000).map(|n| format!("SELECT a AS x{n}, b FROM t{} WHERE id = {n}", n % 50)),
    )
    .await;
    let held = unbounded.handle.usage().memory_bytes();
    assert!(held > 3 * MAX, "5,000 shapes hold {held} bytes");

    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    let value = |needle: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{needle} missing from:\n{metrics}"))
    };
    assert!(value("ddlguard_usage_evictions_total") >= stats.evicted);
    let usage_bytes = value("ddlguard_memory_bytes{part=\"usage\"}");
    assert!(usage_bytes > 0 && usage_bytes <= (MAX + 8 * 1024) as u64);
    assert!(value("ddlguard_memory_bytes{part=\"analysis_cache\"}") > 0);
    assert_eq!(value("ddlguard_memory_bytes{part=\"ddl_log\"}"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_entries_reach_the_store_with_every_count() {
    use crate::usage::{restartable, sqlite_store};
    let cluster = Cluster::shared();
    let db = cluster.create_db("memory_evict_store");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE t (id int, a int, b text)")
        .await
        .unwrap();
    let (dir, store) = sqlite_store("evict-store");
    let proxy = TestProxy::start_with(cluster, |c| {
        restartable(c, &store);
        // Room between the eviction mark (7/8) and the bound for a pipeline.
        c.usage.max_memory.0 = 2 << 20;
        c.usage.flush_interval.0 = std::time::Duration::from_millis(100);
    })
    .await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    // Small pipelines: between them the flusher task gets to evict.
    for chunk in 0..200 {
        run_batch(
            &mut raw,
            (0..25).map(|i| {
                let n = chunk * 25 + i;
                format!("SELECT a AS evict{n} FROM t WHERE id = {n}")
            }),
        )
        .await;
    }
    drop(raw);
    let usage = proxy.handle.usage();
    proxy.handle.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(30), proxy.task)
        .await
        .expect("proxy stops")
        .unwrap();
    let stats = usage.stats();
    assert!(stats.evicted > 0, "{stats:?}");
    let store_errors = usage
        .store_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    let stored: i64 = rusqlite::Connection::open(dir.join("usage.db"))
        .unwrap()
        .query_row(
            "SELECT coalesce(sum(calls), 0) FROM ddlguard_usage WHERE fingerprint LIKE '%evict%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Every execution is in the store, or was counted as not recorded
    // (new shapes faster than the background pass evicts hit the bound).
    assert_eq!(
        stored as u64 + stats.dropped,
        5_000,
        "{stats:?}, store errors {store_errors}"
    );
    assert!(stored as u64 > stats.evicted, "{stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! A large report never stalls relayed traffic, and it is served in pages
//! of bounded size (the real binary, with its default single relay thread).

use crate::support::spawn::free_port;
use crate::support::{connect, BinProxy, Cluster};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 40;
const SHAPES: usize = 60;
const COLUMNS: usize = 20;
/// Report reads during the measurement: a stalled relay shows once per read.
const STALLS: usize = 5;

fn workdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ddlguard-test-{}-report-load-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The peak resident set of process `pid` (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Round-trip times of `SELECT 1`, sorted, until `until` says stop (and at
/// least `min` of them).
async fn round_trips(
    client: &tokio_postgres::Client,
    min: usize,
    until: impl Fn() -> bool,
) -> Vec<Duration> {
    let mut times = Vec::new();
    while times.len() < min || !until() {
        let start = Instant::now();
        client.simple_query("SELECT 1").await.unwrap();
        times.push(start.elapsed());
        // A client that pauses between statements, as applications do.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    times.sort();
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_usage_report_does_not_stall_relayed_sessions() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("report_load");
    let columns: Vec<String> = (1..=COLUMNS).map(|i| format!("c{i}")).collect();
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(&format!(
            "CREATE TABLE wide ({})",
            columns
                .iter()
                .map(|c| format!("{c} int"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .unwrap();
    let port = free_port();
    let http_port = free_port();
    let proxy = BinProxy::spawn(
        &workdir("usage"),
        port,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nport = {}\n\n[usage]\nstore = \"memory\"\n\n[admin]\nhttp_listen = \"127.0.0.1:{http_port}\"\n",
            cluster.port
        ),
    );
    let conn = |app: &str| {
        format!(
            "host=127.0.0.1 port={port} user=postgres dbname={db} sslmode=disable application_name={app}"
        )
    };
    // CLIENTS x SHAPES statements naming COLUMNS columns each: one usage
    // row per (client, shape, column).
    let select = columns.join(", ");
    for c in 0..CLIENTS {
        let client = connect(&conn(&format!("app_{c}"))).await;
        let shapes = (0..SHAPES).map(|s| {
            let sql = format!("SELECT {select}, 1 AS shape_{s} FROM wide");
            let client = &client;
            async move { client.simple_query(&sql).await.map(|_| ()) }
        });
        for r in futures_util::future::join_all(shapes).await {
            r.unwrap();
        }
    }

    let rss_before = peak_rss_kib(proxy.child.id());
    let probe = connect(&conn("probe")).await;
    let baseline = round_trips(&probe, 300, || true).await;

    // Read the whole usage report, page after page, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let rows_seen = Arc::new(AtomicUsize::new(0));
    let largest_page = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, passes, rows_seen, largest) = (
            stop.clone(),
            passes.clone(),
            rows_seen.clone(),
            largest_page.clone(),
        );
        std::thread::spawn(move || {
            let base = format!("http://127.0.0.1:{http_port}/api/v1/usage?limit=10000");
            while !stop.load(Ordering::Relaxed) {
                let mut url = base.clone();
                let mut rows = 0;
                loop {
                    let crate::support::http::Page { body, next, .. } =
                        crate::support::http::get_page(&url).unwrap();
                    largest.fetch_max(body.len(), Ordering::Relaxed);
                    let page: Vec<serde::de::IgnoredAny> = serde_json::from_str(&body).unwrap();
                    rows += page.len();
                    match next {
                        Some(cursor) => url = format!("{base}&after={cursor}"),
                        None => break,
                    }
                }
                rows_seen.store(rows, Ordering::Relaxed);
                passes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let during = round_trips(&probe, 300, || {
        passes.load(Ordering::Relaxed) >= STALLS || reader.is_finished()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the report reader did not fail");

    eprintln!(
        "proxy peak RSS: {rss_before} KiB before the reports, {} KiB after them",
        peak_rss_kib(proxy.child.id())
    );
    let max = |t: &[Duration]| t.last().copied().unwrap_or_default();
    let p99 = |t: &[Duration]| t[t.len() * 99 / 100];
    eprintln!(
        "SELECT 1 round trips: without a report max {:?} p99 {:?} (n={}); during {} full reports of {} rows (largest page {} bytes) max {:?} {STALLS}th longest {:?} p99 {:?} (n={})",
        max(&baseline),
        p99(&baseline),
        baseline.len(),
        passes.load(Ordering::Relaxed),
        rows_seen.load(Ordering::Relaxed),
        largest_page.load(Ordering::Relaxed),
        max(&during),
        during[during.len() - STALLS],
        p99(&during),
        during.len()
    );
    assert_eq!(
        rows_seen.load(Ordering::Relaxed),
        CLIENTS * SHAPES * (COLUMNS + 1),
        "every usage row is served once across the pages"
    );
    // Generous: a stalled relay thread waits for the whole report, once per
    // report read (at least STALLS of them), so the STALLS-th longest round
    // trip shows a stall while up to STALLS - 1 scheduling outliers of a
    // busy machine (other tests run in parallel) do not. With 3, one CI run
    // in about ten failed on a third outlier of 32 ms against a 30 ms bound.
    let bound = max(&baseline).max(p99(&baseline) * 4) * 10;
    let nth = during[during.len() - STALLS];
    assert!(
        nth <= bound,
        "relayed latency during the reports ({STALLS}th longest {nth:?}) exceeds 10x the baseline ({bound:?}); {}",
        proxy.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

//! What the throttle listens to: the latency of the other clients'
//! statements on the table (from the usage registry, which the job's own
//! connection never feeds: it is not relayed), the sessions waiting for the
//! job's locks, and the replicas' replay lag.

use crate::usage::{LatencyHistogram, UsageRegistry};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fewer statements than this in a window say nothing about its p95.
pub const MIN_SAMPLES: u64 = 20;
/// How far back the level before the job is read from the minute buckets.
const BASELINE_MINUTES: u64 = 10;
/// A window without enough statements is restarted after this long.
const MAX_WINDOW: Duration = Duration::from_secs(10);
/// How often the set of statement shapes on the table is read again.
const SHAPES_REFRESH: Duration = Duration::from_secs(5);

/// The latency of the statements other clients run on one table.
pub struct TableLatency {
    usage: Arc<UsageRegistry>,
    schema: String,
    table: String,
    shapes: HashSet<u64>,
    shapes_read: Option<Instant>,
    /// Registry entries when the shapes were read (a new one re-reads).
    entries_seen: usize,
    reference: LatencyHistogram,
    opened: Instant,
}

impl TableLatency {
    /// Watches `schema.table` in `usage`; the first window opens now.
    pub fn new(usage: Arc<UsageRegistry>, schema: &str, table: &str) -> TableLatency {
        let mut t = TableLatency {
            usage,
            schema: schema.to_string(),
            table: table.to_string(),
            shapes: HashSet::new(),
            shapes_read: None,
            entries_seen: 0,
            reference: LatencyHistogram::default(),
            opened: Instant::now(),
        };
        t.reference = t.cumulative();
        t
    }

    fn refresh_shapes(&mut self) {
        let entries = self.usage.stats().entries;
        if entries == self.entries_seen
            && self
                .shapes_read
                .is_some_and(|t| t.elapsed() < SHAPES_REFRESH)
        {
            return;
        }
        self.entries_seen = entries;
        let (schema, table) = (&self.schema, &self.table);
        self.shapes = self
            .usage
            .shapes()
            .into_iter()
            .filter(|(_, a)| {
                a.relations.iter().any(|r| {
                    r.relation.name == *table
                        && r.relation.schema.as_deref().is_none_or(|s| s == schema)
                })
            })
            .map(|(fp, _)| fp)
            .collect();
        self.shapes_read = Some(Instant::now());
    }

    /// Every execution on the table since the proxy started.
    fn cumulative(&mut self) -> LatencyHistogram {
        self.refresh_shapes();
        let mut all = LatencyHistogram::default();
        for fp in &self.shapes {
            if let Some(h) = self.usage.latency(*fp) {
                all.merge(&h);
            }
        }
        all
    }

    /// The p95 (µs) of the last ten minutes' buckets: the level before the
    /// job. `None` when too few statements ran.
    pub fn baseline_p95_us(&mut self, now_ms: u64) -> Option<u64> {
        self.refresh_shapes();
        let since_minute = (now_ms / 60_000).saturating_sub(BASELINE_MINUTES);
        let mut h = LatencyHistogram::default();
        for (fp, slots) in self.usage.recent_latencies(now_ms) {
            if !self.shapes.contains(&fp) {
                continue;
            }
            for slot in slots.iter().filter(|s| s.minute >= since_minute) {
                h.merge_sparse(&slot.histogram);
            }
        }
        (h.count() >= MIN_SAMPLES).then(|| h.quantile(0.95))
    }

    /// The p95 (µs) of the statements finished since the window opened,
    /// and a new window; `None` (the window stays open) while fewer than
    /// [`MIN_SAMPLES`] finished, unless it has been open too long.
    pub fn window_p95_us(&mut self) -> Option<u64> {
        let now = self.cumulative();
        let window = now.since(&self.reference);
        if window.count() >= MIN_SAMPLES || self.opened.elapsed() > MAX_WINDOW {
            self.reference = now;
            self.opened = Instant::now();
            return (window.count() >= MIN_SAMPLES).then(|| window.quantile(0.95));
        }
        None
    }
}

/// Sessions that have been waiting more than 100 ms for a lock the backend
/// `pid` holds, now (a shorter wait on a row a batch holds is ordinary
/// contention; a longer one means the batches hold their locks too long).
pub const LOCK_WAITS_SQL: &str = "SELECT count(*) FROM pg_catalog.pg_stat_activity \
WHERE $1::int4 = ANY(pg_catalog.pg_blocking_pids(pid)) \
AND pg_catalog.clock_timestamp() - coalesce(query_start, pg_catalog.clock_timestamp()) > interval '100 milliseconds'";

/// The largest replay lag of the replicas, seconds (NULL without replicas
/// or without the right to see it).
pub const REPLICA_LAG_SQL: &str =
    "SELECT EXTRACT(EPOCH FROM max(replay_lag))::float8 FROM pg_catalog.pg_stat_replication";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::usage::ClientIdentity;

    fn run(usage: &UsageRegistry, analyzer: &Analyzer, sql: &str, us: u64, times: usize) {
        let client = usage.client_id(
            &ClientIdentity {
                application_name: "app".into(),
                user: "u".into(),
                database: "d".into(),
                client_addr: "127.0.0.1".into(),
            },
            "",
        );
        let a = analyzer.analyze(sql);
        for _ in 0..times {
            usage.record(&client, &a, us, None);
        }
    }

    #[test]
    fn a_window_measures_only_the_table_and_only_since_it_opened() {
        let usage = Arc::new(UsageRegistry::new(1000));
        let analyzer = Analyzer::new(100);
        run(
            &usage,
            &analyzer,
            "SELECT v FROM items WHERE id = 1",
            1_000,
            50,
        );
        run(
            &usage,
            &analyzer,
            "SELECT v FROM other WHERE id = 1",
            90_000,
            50,
        );
        let mut t = TableLatency::new(usage.clone(), "public", "items");
        let base = t.baseline_p95_us(crate::usage::now_ms()).unwrap();
        assert!((1_000..1_300).contains(&base), "{base}");
        // Nothing new yet: no verdict, the window stays open.
        assert_eq!(t.window_p95_us(), None);
        run(
            &usage,
            &analyzer,
            "UPDATE items SET v = 2 WHERE id = 3",
            20_000,
            30,
        );
        let p95 = t.window_p95_us().unwrap();
        assert!((20_000..25_000).contains(&p95), "{p95}");
        run(
            &usage,
            &analyzer,
            "SELECT v FROM items WHERE id = 1",
            1_000,
            5,
        );
        assert_eq!(t.window_p95_us(), None);
    }
}

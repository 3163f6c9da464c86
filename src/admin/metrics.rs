//! `/metrics` in the Prometheus/OpenMetrics text format. Every value is read
//! at scrape time from counters the proxy keeps anyway (atomics), so the
//! hot path pays nothing for it.

use crate::admin::view::AdminView;
use crate::usage::kinds::BUCKETS_US;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

/// Reads the proxy's counters at each scrape.
pub struct ProxyCollector {
    handle: std::sync::Arc<dyn AdminView>,
}

impl std::fmt::Debug for ProxyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter family with one label.
fn counters(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ProxyCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.handle;
        let c = h.counters();
        gauge(
            &mut e,
            "ddlguard_sessions_active",
            "Client sessions open now (relayed and admin console)",
            h.active_sessions() as i64,
        )?;
        gauge(
            &mut e,
            "ddlguard_sessions_epoll_relay",
            "Sessions relayed by an epoll loop now (server.epoll_relay: plain sessions in their relay phase)",
            c.epoll_sessions.load(Ordering::Relaxed) as i64,
        )?;
        counter(
            &mut e,
            "ddlguard_sessions",
            "Client connections accepted since start",
            c.sessions_total.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "ddlguard_sessions_refused",
            "Sessions refused for server.max_client_connections",
            c.sessions_refused.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "ddlguard_auth_failures",
            "Logins refused for a wrong password or an unknown user (28P01)",
            c.auth_failures.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "ddlguard_protocol_violations",
            "Sessions ended for a protocol violation by the client",
            c.protocol_violations.load(Ordering::Relaxed),
        )?;
        counters(
            &mut e,
            "ddlguard_unknown_messages",
            "Messages of a type the proxy does not know, relayed unchanged",
            "from",
            &[
                (
                    "client".into(),
                    c.unknown_client_messages.load(Ordering::Relaxed),
                ),
                (
                    "server".into(),
                    c.unknown_server_messages.load(Ordering::Relaxed),
                ),
            ],
        )?;
        let t = h.traffic();
        counters(
            &mut e,
            "ddlguard_received_bytes",
            "Bytes relayed, by the side they came from",
            "from",
            &[
                ("client".into(), t.from_clients.get()),
                ("server".into(), t.from_server.get()),
            ],
        )?;

        let usage = h.usage();
        let kinds = usage.kind_counts();
        counters(
            &mut e,
            "ddlguard_queries",
            "Statements executed, by kind",
            "kind",
            &kinds
                .iter()
                .map(|k| (k.kind.as_str().to_string(), k.calls))
                .collect::<Vec<_>>(),
        )?;
        counters(
            &mut e,
            "ddlguard_query_errors",
            "Statements that ended in an error, by kind",
            "kind",
            &kinds
                .iter()
                .map(|k| (k.kind.as_str().to_string(), k.errors))
                .collect::<Vec<_>>(),
        )?;
        let mut m = e.encode_descriptor(
            "ddlguard_query_duration_seconds",
            "Time from the message that starts a statement to its CommandComplete or ErrorResponse",
            None,
            MetricType::Histogram,
        )?;
        for k in &kinds {
            // The encoder wants counts per bucket; it sums them itself.
            let mut previous = 0;
            let per_bucket: Vec<(f64, u64)> = BUCKETS_US
                .iter()
                .map(|us| *us as f64 / 1e6)
                .chain(std::iter::once(f64::INFINITY))
                .zip(k.cumulative.iter())
                .map(|(le, cum)| {
                    let n = cum - previous;
                    previous = *cum;
                    (le, n)
                })
                .collect();
            let labels = [("kind", k.kind.as_str())];
            // The count is the +Inf bucket, read together with the others.
            let count = k.cumulative.last().copied().unwrap_or(0);
            m.encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    k.total_us as f64 / 1e6,
                    count,
                    &per_bucket,
                    None,
                )?;
        }

        let a = h.analyzer();
        counter(
            &mut e,
            "ddlguard_analysis_cache_hits",
            "Statements whose shape was already analysed",
            a.stats.hits.get(),
        )?;
        counter(
            &mut e,
            "ddlguard_analysis_cache_misses",
            "Statements analysed in full (a new shape)",
            a.stats.misses.get(),
        )?;
        counter(
            &mut e,
            "ddlguard_unparsed_statements",
            "New shapes the SQL parser could not parse (relayed unchanged, classified lexically)",
            a.stats.unparsed.get(),
        )?;
        gauge(
            &mut e,
            "ddlguard_analysis_cache_shapes",
            "Statement shapes in the analysis cache",
            a.len() as i64,
        )?;

        let stats = usage.stats();
        gauge(
            &mut e,
            "ddlguard_usage_entries",
            "(client, statement shape) entries held in memory",
            stats.entries as i64,
        )?;
        counter(
            &mut e,
            "ddlguard_usage_dropped",
            "Executions not recorded because usage.max_entries or usage.max_memory was reached",
            stats.dropped,
        )?;
        counter(
            &mut e,
            "ddlguard_usage_evictions",
            "Usage entries evicted (least recently used) to stay under usage.max_memory",
            stats.evicted,
        )?;
        gauge(
            &mut e,
            "ddlguard_usage_clients",
            "Client identities (with search_path) held by the usage registry",
            stats.clients as i64,
        )?;
        counter(
            &mut e,
            "ddlguard_usage_store_dropped",
            "Increments of evicted usage entries dropped because the store stayed unreachable",
            usage.store_dropped.load(Ordering::Relaxed),
        )?;
        let mut m = e.encode_descriptor(
            "ddlguard_memory_bytes",
            "Estimated bytes held, by part (usage: entries, their shapes' analyses and timelines, client identities; analyses shared by the usage registry and the cache count in both)",
            None,
            MetricType::Gauge,
        )?;
        for (part, bytes) in [
            ("usage", stats.bytes),
            ("analysis_cache", a.bytes()),
            ("ddl_log", h.ddl_log().bytes()),
        ] {
            ConstGauge::new(bytes as i64).encode(m.encode_family(&[("part", part)])?)?;
        }
        counter(
            &mut e,
            "ddlguard_store_flushes",
            "Successful usage store syncs",
            usage.store_flushes.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "ddlguard_store_flush_errors",
            "Failed usage store opens and syncs (retried)",
            usage.store_errors.load(Ordering::Relaxed),
        )?;

        let cat = h.catalogs().stats();
        counter(
            &mut e,
            "ddlguard_catalog_reloads",
            "Catalog snapshots taken (coalesced after DDL: one per burst per database)",
            cat.reloads,
        )?;
        counter(
            &mut e,
            "ddlguard_catalog_reload_failures",
            "Catalog snapshots that failed (retried later)",
            cat.failures,
        )?;
        counter(
            &mut e,
            "ddlguard_catalog_connections",
            "Service connections opened for catalog snapshots (one is kept per database)",
            cat.connects,
        )?;

        let g = h.gate_stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counters(
            &mut e,
            "ddlguard_gate_statements",
            "Statements the gate handed to the DDL policy, and what came of them",
            "outcome",
            &[
                ("judged".to_string(), load(&g.judged)),
                ("warned".to_string(), load(&g.warned)),
                ("blocked".to_string(), load(&g.blocked)),
                ("rewritten".to_string(), load(&g.rewritten)),
                ("guarded".to_string(), load(&g.guarded)),
                ("deferred".to_string(), load(&g.deferred)),
            ],
        )?;
        counter(
            &mut e,
            "ddlguard_guard_lock_timeouts",
            "Guarded DDL attempts that gave up waiting for their lock (policy.lock_timeout)",
            load(&g.lock_timeouts),
        )?;
        let (recovered, passed) = h.prepared_recoveries();
        counters(
            &mut e,
            "ddlguard_prepared_recoveries",
            "Executions of prepared statements that failed with \"cached plan must not change result type\": re-prepared with their old shape, or passed to the client",
            "outcome",
            &[
                ("recovered".to_string(), recovered),
                ("passed_through".to_string(), passed),
            ],
        )?;
        counter(
            &mut e,
            "ddlguard_guard_preflight_waits",
            "Guarded DDL that waited outside the lock queue for an old transaction",
            load(&g.preflight_waits),
        )?;
        counter(
            &mut e,
            "ddlguard_guard_terminated_blockers",
            "Idle-in-transaction blockers ended by policy.terminate_idle_blockers_after",
            load(&g.terminated),
        )?;
        let mut m = e.encode_descriptor(
            "ddlguard_policy_findings",
            "DDL policy findings by rule and the action in force (allow, warn, rewrite, block)",
            None,
            MetricType::Counter,
        )?;
        for ((rule, action), n) in g.findings() {
            let labels = [("rule", rule), ("action", action)];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }

        let mut m = e.encode_descriptor(
            "ddlguard_ddl_statements",
            "DDL statements that passed through, by command and outcome (ok or SQLSTATE)",
            None,
            MetricType::Counter,
        )?;
        for ((command, outcome), n) in h.ddl_log().totals() {
            let labels = [("command", command.as_str()), ("outcome", outcome.as_str())];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }
        if let Some(b) = h.backfills() {
            backfill_gauges(&mut e, &b.list())?;
        }
        Ok(())
    }
}

/// Per backfill job (labels `job`, `table`, `state`; the throttle's
/// reason as its first word): progress, pace and why it is held back.
fn backfill_gauges(e: &mut DescriptorEncoder, jobs: &[crate::backfill::Job]) -> std::fmt::Result {
    type Value = fn(&crate::backfill::Job) -> f64;
    let families: [(&str, &str, Value); 6] = [
        (
            "ddlguard_backfill_rows_done",
            "Rows a backfill job updated",
            |j| j.rows_done as f64,
        ),
        (
            "ddlguard_backfill_rows_scanned",
            "Keys a backfill job visited",
            |j| j.rows_scanned as f64,
        ),
        (
            "ddlguard_backfill_rows_estimated",
            "The table's row estimate when the job started",
            |j| j.rows_estimated as f64,
        ),
        (
            "ddlguard_backfill_rate",
            "Keys visited per second, recent batches",
            |j| j.rate,
        ),
        (
            "ddlguard_backfill_batch_size",
            "Rows in the job's next batch (AIMD)",
            |j| j.batch_size as f64,
        ),
        (
            "ddlguard_backfill_pause_seconds",
            "Pause between the job's batches",
            |j| j.pause_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, value) in families {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for j in jobs {
            let (id, table) = (j.id.to_string(), j.qualified_table());
            let reason = j.throttle_reason.split(':').next().unwrap_or("none");
            let labels = [
                ("job", id.as_str()),
                ("table", table.as_str()),
                ("state", j.state.as_str()),
                ("throttle", reason),
            ];
            ConstGauge::new(value(j)).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// The exposition text of all metrics.
pub fn render(handle: &dyn AdminView) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProxyCollector {
        handle: handle.shared_view(),
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

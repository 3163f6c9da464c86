//! `SHOW QUERIES [table]`: latency per statement shape and per table, in
//! one-minute buckets for the last hour, so the effect of a migration on
//! read and write latency shows minute by minute.

use super::{columns, Cell, Report};
use crate::admin::dependents::Target;
use crate::proxy::ServerHandle;
use crate::usage::timeline::MinuteSlot;
use crate::usage::{now_ms, LatencyHistogram};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A minute's executions merged from one or more shapes.
#[derive(Default)]
struct Bucket {
    calls: u64,
    total_us: u64,
    max_us: u64,
    histogram: LatencyHistogram,
}

impl Bucket {
    fn add(&mut self, slot: &MinuteSlot) {
        self.calls += slot.calls;
        self.total_us += slot.total_us;
        self.max_us = self.max_us.max(slot.max_us);
        self.histogram.merge_sparse(&slot.histogram);
    }

    fn cells(&self) -> [Cell; 6] {
        [
            Cell::count(self.calls),
            Cell::ms(self.total_us.checked_div(self.calls).unwrap_or(0)),
            Cell::ms(self.histogram.quantile(0.50)),
            Cell::ms(self.histogram.quantile(0.95)),
            Cell::ms(self.histogram.quantile(0.99)),
            Cell::ms(self.max_us),
        ]
    }
}

/// Rows of scope `table` (all shapes on a table, by statement kind) and of
/// scope `query` (one shape), newest minute first; with `table`, only what
/// touches it. Quantiles are bucket upper bounds (within about 19%).
pub fn queries(handle: &ServerHandle, table: Option<&Target>) -> Report {
    let usage = handle.usage();
    let shapes = usage.shapes();
    // The tables each shape touches, as resolved for its clients.
    let mut tables_of: HashMap<u64, BTreeSet<String>> = HashMap::new();
    for r in handle.usage_rows() {
        for (s, t) in r.relations() {
            tables_of
                .entry(r.fingerprint_id)
                .or_default()
                .insert(format!("{s}.{t}"));
        }
    }
    let wanted = table.map(|t| format!("{}.{}", t.schema, t.table));
    let mut per_query: BTreeMap<(u64, u64), Bucket> = BTreeMap::new();
    let mut per_table: BTreeMap<(u64, String, &'static str), Bucket> = BTreeMap::new();
    for (fp, slots) in usage.recent_latencies(now_ms()) {
        let tables = tables_of.get(&fp).cloned().unwrap_or_default();
        if let Some(w) = &wanted {
            if !tables.contains(w) {
                continue;
            }
        }
        let kind = shapes
            .get(&fp)
            .map(|a| a.kind.as_str())
            .unwrap_or("utility");
        for slot in &slots {
            per_query.entry((slot.minute, fp)).or_default().add(slot);
            for t in &tables {
                if wanted.as_ref().is_none_or(|w| w == t) {
                    per_table
                        .entry((slot.minute, t.clone(), kind))
                        .or_default()
                        .add(slot);
                }
            }
        }
    }
    let mut report = Report::new(columns::QUERIES.to_vec());
    let mut rows: Vec<(u64, u8, u64, Vec<Cell>)> = Vec::new();
    for ((minute, t, kind), b) in &per_table {
        let mut row = vec![
            Cell::Time(minute * 60_000),
            Cell::text("table"),
            Cell::text(t),
            Cell::text(*kind),
        ];
        row.extend(b.cells());
        row.push(Cell::Null);
        rows.push((*minute, 0, b.calls, row));
    }
    for ((minute, fp), b) in &per_query {
        let tables = tables_of
            .get(fp)
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let analysis = shapes.get(fp);
        let mut row = vec![
            Cell::Time(minute * 60_000),
            Cell::text("query"),
            Cell::text(tables),
            Cell::text(analysis.map(|a| a.kind.as_str()).unwrap_or("utility")),
        ];
        row.extend(b.cells());
        row.push(Cell::opt_text(analysis.map(|a| a.fingerprint.text.clone())));
        rows.push((*minute, 1, b.calls, row));
    }
    // Newest minute first; tables before shapes; busiest first.
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)));
    for (_, _, _, row) in rows {
        report.push(row);
    }
    report
}

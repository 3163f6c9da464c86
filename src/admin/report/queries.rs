//! `SHOW QUERIES [table]`: latency per statement shape and per table, in
//! one-minute buckets for the last hour, so the effect of a migration on
//! read and write latency shows minute by minute.

use super::page::{KeyPart, Page, Pager};
use super::{columns, Cell, Report};
use crate::admin::view::ReportView;
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
/// scope `query` (one shape), newest minute first; with `page.table`, only
/// what touches it; with `page.client`, only the shapes that client ran.
/// Quantiles are bucket upper bounds (within about 19%).
pub fn queries(handle: &dyn ReportView, page: &Page) -> Report {
    let table = page.table.as_ref();
    let usage = handle.usage();
    let shapes = usage.shapes();
    let client_shapes: Option<BTreeSet<u64>> = page.client.as_ref().map(|_| {
        usage
            .statements()
            .into_iter()
            .filter(|r| page.wants_client(&r.client))
            .map(|r| r.fingerprint_id)
            .collect()
    });
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
        if client_shapes.as_ref().is_some_and(|s| !s.contains(&fp)) {
            continue;
        }
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
    // Newest minute first; tables before shapes; busiest first.
    let mut pager = Pager::new(page);
    let key = |minute: u64, scope: i64, calls: u64, rest: [&str; 3]| {
        let mut key = vec![
            KeyPart::newest_first(minute),
            KeyPart::Int(scope),
            KeyPart::newest_first(calls),
        ];
        key.extend(rest.map(|s| KeyPart::Text(s.to_string())));
        key
    };
    for ((minute, t, kind), b) in &per_table {
        pager.offer(key(*minute, 0, b.calls, [t, kind, ""]), || {
            let mut row = vec![
                Cell::Time(minute * 60_000),
                Cell::text("table"),
                Cell::text(t),
                Cell::text(*kind),
            ];
            row.extend(b.cells());
            row.push(Cell::Null);
            row
        });
    }
    for ((minute, fp), b) in &per_query {
        let tables = tables_of
            .get(fp)
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let analysis = shapes.get(fp);
        let kind = analysis.map(|a| a.kind.as_str()).unwrap_or("utility");
        let text = analysis.map(|a| a.fingerprint.text.as_str()).unwrap_or("");
        pager.offer(key(*minute, 1, b.calls, [&tables, kind, text]), || {
            let mut row = vec![
                Cell::Time(minute * 60_000),
                Cell::text("query"),
                Cell::text(tables.clone()),
                Cell::text(kind),
            ];
            row.extend(b.cells());
            row.push(Cell::opt_text(analysis.map(|a| a.fingerprint.text.clone())));
            row
        });
    }
    Report::paged(columns::QUERIES.to_vec(), pager.finish())
}

//! `SHOW TABLES`: each table clients used, how, and by how many of them.

use super::page::{KeyPart, Page, Pager};
use super::{columns, unresolved, Cell, Report};
use crate::admin::view::ReportView;
use crate::analysis::{Dependency, Mode};
use crate::usage::ClientIdentity;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
struct Acc {
    /// Calls per (client, search_path, fingerprint, mode), counted once
    /// however many columns the statement names.
    calls: BTreeMap<(ClientIdentity, String, u64, Mode), u64>,
    clients: BTreeSet<ClientIdentity>,
    columns: BTreeSet<String>,
    implicit: bool,
    last: u64,
}

/// One row per (schema, table) seen in usage (by `page.client`, only
/// `page.table`), with the catalog's row estimate when a snapshot knows
/// the table. Columns that could not be resolved to one table are no
/// table's: a NOTICE counts them, `SHOW UNRESOLVED` lists them.
pub fn tables(handle: &dyn ReportView, page: &Page) -> Report {
    let mut pager: Pager<((String, String), Acc)> = Pager::new(page);
    let rows = handle.usage_rows();
    let left_out = rows
        .iter()
        .filter(|r| !r.is_resolved() && page.wants_client(&r.client))
        .count();
    for r in rows.into_iter().filter(|r| {
        r.is_resolved() && page.wants_client(&r.client) && page.wants_table(&r.schema, &r.table)
    }) {
        let key = vec![
            KeyPart::Text(r.schema.clone()),
            KeyPart::Text(r.table.clone()),
        ];
        let Some((_, acc)) = pager.slot(key, || {
            ((r.schema.clone(), r.table.clone()), Acc::default())
        }) else {
            continue;
        };
        acc.calls.insert(
            (
                r.client.clone(),
                r.search_path.clone(),
                r.fingerprint_id,
                r.mode,
            ),
            r.calls,
        );
        acc.clients.insert(r.client.clone());
        if let Some(c) = &r.column {
            acc.columns.insert(c.clone());
        }
        acc.implicit |= r.dependency == Dependency::Implicit;
        acc.last = acc.last.max(r.last_seen_ms);
    }
    let catalogs = handle.catalogs();
    let (by, next) = pager.finish();
    let mut report = Report::new(columns::TABLES.to_vec());
    report.next = next;
    report.notices.extend(unresolved::left_out_notice(left_out));
    for ((schema, table), acc) in by {
        let sum = |mode: Mode| -> u64 {
            acc.calls
                .iter()
                .filter(|((_, _, _, m), _)| *m == mode)
                .map(|(_, n)| n)
                .sum()
        };
        let rows_estimate = acc
            .clients
            .iter()
            .map(|c| c.database.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .find_map(|db| {
                catalogs
                    .get(&db)
                    .table(&schema, &table)
                    .map(|t| t.row_estimate)
            });
        report.push(vec![
            Cell::text(&schema),
            Cell::text(&table),
            Cell::count(sum(Mode::Read)),
            Cell::count(sum(Mode::Write)),
            Cell::count(acc.clients.len() as u64),
            Cell::count(acc.columns.len() as u64),
            Cell::text(if acc.implicit { "yes" } else { "no" }),
            rows_estimate
                .filter(|n| *n >= 0)
                .map(Cell::Int)
                .unwrap_or(Cell::Null),
            Cell::Time(acc.last),
        ]);
    }
    report
}

//! `SHOW CLIENTS`: every client identity seen, with its sessions open now.

use super::page::{client_key, Page, Pager};
use super::{columns, Cell, Report};
use crate::admin::view::ReportView;
use crate::usage::ClientIdentity;
use std::collections::BTreeSet;

#[derive(Default)]
struct Acc {
    sessions: u64,
    calls: u64,
    errors: u64,
    shapes: BTreeSet<u64>,
    old_shapes: u64,
    first: Option<u64>,
    last: Option<u64>,
}

/// One row per client identity (`page.client`; with `page.table`, those
/// that used it): sessions connected now, and its recorded executions,
/// errors and statement shapes, and its prepared statements the proxy keeps
/// on the result shape they had before a schema change (`old_shapes`: a
/// deploy that never refreshed its statements).
pub fn clients(handle: &dyn ReportView, page: &Page) -> Report {
    let users_of_table: Option<BTreeSet<ClientIdentity>> = page.table.as_ref().map(|_| {
        handle
            .usage_rows()
            .into_iter()
            .filter(|r| page.wants_table(&r.schema, &r.table))
            .map(|r| r.client)
            .collect()
    });
    let wanted = |c: &ClientIdentity| {
        page.wants_client(c) && users_of_table.as_ref().is_none_or(|s| s.contains(c))
    };
    let mut pager: Pager<(ClientIdentity, Acc)> = Pager::new(page);
    for identity in handle.live_sessions().into_iter().filter(|c| wanted(c)) {
        if let Some((_, acc)) = pager.slot(client_key(&identity).to_vec(), || {
            (identity.clone(), Acc::default())
        }) {
            acc.sessions += 1;
        }
    }
    for (identity, n) in handle.old_shapes().into_iter().filter(|(c, _)| wanted(c)) {
        if let Some((_, acc)) = pager.slot(client_key(&identity).to_vec(), || {
            (identity.clone(), Acc::default())
        }) {
            acc.old_shapes += n;
        }
    }
    for r in handle.usage().statements() {
        if !wanted(&r.client) {
            continue;
        }
        let Some((_, acc)) = pager.slot(client_key(&r.client).to_vec(), || {
            (r.client.clone(), Acc::default())
        }) else {
            continue;
        };
        acc.calls += r.calls;
        acc.errors += r.errors;
        // One shape run under several search_paths is one statement.
        acc.shapes.insert(r.fingerprint_id);
        acc.first = Some(
            acc.first
                .map_or(r.first_seen_ms, |f| f.min(r.first_seen_ms)),
        );
        acc.last = Some(acc.last.map_or(r.last_seen_ms, |l| l.max(r.last_seen_ms)));
    }
    let (by, next) = pager.finish();
    let mut report = Report::new(columns::CLIENTS.to_vec());
    report.next = next;
    for (identity, acc) in by {
        report.push_client(
            &identity,
            [
                Cell::count(acc.sessions),
                Cell::count(acc.calls),
                Cell::count(acc.errors),
                Cell::count(acc.shapes.len() as u64),
                acc.first.map(Cell::Time).unwrap_or(Cell::Null),
                acc.last.map(Cell::Time).unwrap_or(Cell::Null),
                Cell::count(acc.old_shapes),
            ],
        );
    }
    report
}

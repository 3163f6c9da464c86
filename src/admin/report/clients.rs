//! `SHOW CLIENTS`: every client identity seen, with its sessions open now.

use super::{columns, Cell, Report};
use crate::proxy::ServerHandle;
use crate::usage::ClientIdentity;
use std::collections::BTreeMap;

#[derive(Default)]
struct Acc {
    sessions: u64,
    calls: u64,
    errors: u64,
    shapes: std::collections::BTreeSet<u64>,
    first: Option<u64>,
    last: Option<u64>,
}

/// One row per client identity: sessions connected now, and its recorded
/// executions, errors and statement shapes.
pub fn clients(handle: &ServerHandle) -> Report {
    let mut by: BTreeMap<ClientIdentity, Acc> = BTreeMap::new();
    for identity in handle.live_sessions() {
        by.entry(identity).or_default().sessions += 1;
    }
    for r in handle.usage().statements() {
        let acc = by.entry(r.client).or_default();
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
    let mut report = Report::new(columns::CLIENTS.to_vec());
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
            ],
        );
    }
    report
}

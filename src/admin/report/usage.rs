//! `SHOW USAGE [table[.column]]`: who used what, how, through which
//! statement shape.

use super::{columns, unresolved, Cell, Report};
use crate::admin::dependents::Target;
use crate::analysis::{Dependency, Mode};
use crate::proxy::ServerHandle;
use crate::usage::{ClientIdentity, UsageRow};
use std::collections::BTreeMap;

/// Schema, table, column, client, fingerprint id, mode, dependency.
type UsageKey = (
    String,
    String,
    Option<String>,
    ClientIdentity,
    u64,
    Mode,
    Dependency,
);

/// Every usage row, or those on `target` (a table, or a column including
/// implicit uses of all columns). Columns that could not be resolved to
/// one table are not rows here: a NOTICE counts them, `SHOW UNRESOLVED`
/// lists them.
pub fn usage(handle: &ServerHandle, target: Option<&Target>) -> Report {
    from_rows(handle.usage_rows(), target)
}

/// The report from usage rows (testable without a server).
pub(crate) fn from_rows(rows: Vec<UsageRow>, target: Option<&Target>) -> Report {
    let mut report = Report::new(columns::USAGE.to_vec());
    let left_out = rows
        .iter()
        .filter(|r| match target {
            Some(t) => t.may_be_used_by(r),
            None => !r.is_resolved(),
        })
        .count();
    report.notices.extend(unresolved::left_out_notice(left_out));
    // Entries of one client and shape under different search_paths that
    // resolve to the same object are one row.
    let mut merged: BTreeMap<UsageKey, UsageRow> = BTreeMap::new();
    for r in rows
        .into_iter()
        .filter(|r| r.is_resolved())
        .filter(|r| target.is_none_or(|t| t.dependency_of(r).is_some()))
    {
        let key = (
            r.schema.clone(),
            r.table.clone(),
            r.column.clone(),
            r.client.clone(),
            r.fingerprint_id,
            r.mode,
            r.dependency,
        );
        match merged.get_mut(&key) {
            Some(m) => {
                m.calls += r.calls;
                m.errors += r.errors;
                m.total_us += r.total_us;
                m.max_us = m.max_us.max(r.max_us);
                m.first_seen_ms = m.first_seen_ms.min(r.first_seen_ms);
                m.last_seen_ms = m.last_seen_ms.max(r.last_seen_ms);
            }
            None => {
                merged.insert(key, r);
            }
        }
    }
    let rows = merged.into_values();
    for r in rows {
        report.push_client(
            &r.client,
            [
                Cell::text(r.schema),
                Cell::text(r.table),
                Cell::opt_text(r.column),
                Cell::text(match r.mode {
                    Mode::Read => "read",
                    Mode::Write => "write",
                }),
                Cell::text(r.dependency.as_str()),
                Cell::count(r.calls),
                Cell::count(r.errors),
                Cell::ms(r.total_us.checked_div(r.calls).unwrap_or(0)),
                Cell::ms(r.max_us),
                Cell::Time(r.first_seen_ms),
                Cell::Time(r.last_seen_ms),
                Cell::text(r.fingerprint),
            ],
        );
    }
    report
}

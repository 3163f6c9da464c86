//! `SHOW USAGE [table[.column]]`: who used what, how, through which
//! statement shape.

use super::{client_cells, columns, Cell, Report};
use crate::admin::dependents::Target;
use crate::analysis::{Dependency, Mode};
use crate::proxy::ServerHandle;
use crate::usage::UsageRow;

fn wanted(r: &UsageRow, target: &Target) -> bool {
    let on_table = r
        .schema
        .split('|')
        .zip(r.table.split('|'))
        .any(|(s, t)| s == target.schema && t == target.table);
    on_table
        && match &target.column {
            None => true,
            Some(c) => {
                r.column.as_deref() == Some(c.as_str())
                    || (r.column.is_none() && r.dependency == Dependency::Implicit)
            }
        }
}

/// Every usage row, or those on `target` (a table, or a column including
/// implicit uses of all columns).
pub fn usage(handle: &ServerHandle, target: Option<&Target>) -> Report {
    let mut report = Report::new(columns::USAGE.to_vec());
    let mut rows: Vec<UsageRow> = handle
        .usage_rows()
        .into_iter()
        .filter(|r| target.is_none_or(|t| wanted(r, t)))
        .collect();
    rows.sort_by(|a, b| {
        (&a.schema, &a.table, &a.column, &a.client)
            .cmp(&(&b.schema, &b.table, &b.column, &b.client))
    });
    for r in rows {
        let mut row = client_cells(&r.client);
        row.extend([
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
        ]);
        report.push(row);
    }
    report
}

//! `SHOW USAGE [table[.column]]`: who used what, how, through which
//! statement shape.

use super::page::{client_key, Key, KeyPart, Page, Pager};
use super::{columns, unresolved, Cell, Report};
use crate::admin::dependents::Target;
use crate::admin::view::ReportView;
use crate::analysis::Mode;
use crate::usage::UsageRow;

/// Schema, table, column, client, fingerprint, mode, dependency: the order
/// of the rows and the paging cursor.
fn key(r: &UsageRow) -> Key {
    let mut key = vec![
        KeyPart::Text(r.schema.clone()),
        KeyPart::Text(r.table.clone()),
        KeyPart::opt_text(r.column.as_deref()),
    ];
    key.extend(client_key(&r.client));
    key.extend([
        KeyPart::Text(r.fingerprint.clone()),
        KeyPart::Text(mode(r.mode).into()),
        KeyPart::Text(r.dependency.as_str().into()),
    ]);
    key
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Read => "read",
        Mode::Write => "write",
    }
}

/// Usage rows of `page`: all, or those on `page.table` (a table, or a
/// column including implicit uses of all columns), of `page.client`.
/// Columns that could not be resolved to one table are not rows here: a
/// NOTICE counts them, `SHOW UNRESOLVED` lists them.
pub fn usage(handle: &dyn ReportView, page: &Page) -> Report {
    paged_rows(handle.usage_rows(), page)
}

/// The first page of the report from usage rows (testable without a server).
#[cfg(test)]
pub(crate) fn from_rows(rows: Vec<UsageRow>, target: Option<&Target>) -> Report {
    let page = Page {
        table: target.cloned(),
        ..Page::default()
    };
    paged_rows(rows, &page)
}

/// One page of the report from usage rows.
fn paged_rows(rows: Vec<UsageRow>, page: &Page) -> Report {
    let target: Option<&Target> = page.table.as_ref();
    let left_out = rows
        .iter()
        .filter(|r| page.wants_client(&r.client))
        .filter(|r| match target {
            Some(t) => t.may_be_used_by(r),
            None => !r.is_resolved(),
        })
        .count();
    // Entries of one client and shape under different search_paths that
    // resolve to the same object are one row.
    let mut pager: Pager<UsageRow> = Pager::new(page);
    for r in rows.into_iter().filter(|r| {
        r.is_resolved()
            && page.wants_client(&r.client)
            && target.is_none_or(|t| t.dependency_of(r).is_some())
    }) {
        pager.merge(key(&r), r, |m, r| {
            m.calls += r.calls;
            m.errors += r.errors;
            m.total_us += r.total_us;
            m.max_us = m.max_us.max(r.max_us);
            m.first_seen_ms = m.first_seen_ms.min(r.first_seen_ms);
            m.last_seen_ms = m.last_seen_ms.max(r.last_seen_ms);
        });
    }
    let (rows, next) = pager.finish();
    let rows = rows
        .into_iter()
        .map(|r| {
            let mut row = super::client_cells(&r.client);
            row.extend([
                Cell::text(r.schema),
                Cell::text(r.table),
                Cell::opt_text(r.column),
                Cell::text(mode(r.mode)),
                Cell::text(r.dependency.as_str()),
                Cell::count(r.calls),
                Cell::count(r.errors),
                Cell::ms(r.total_us.checked_div(r.calls).unwrap_or(0)),
                Cell::ms(r.max_us),
                Cell::Time(r.first_seen_ms),
                Cell::Time(r.last_seen_ms),
                Cell::text(r.fingerprint),
            ]);
            row
        })
        .collect();
    let mut report = Report::paged(columns::USAGE.to_vec(), (rows, next));
    report.notices.extend(unresolved::left_out_notice(left_out));
    report
}

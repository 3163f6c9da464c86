//! `SHOW DEPENDENTS table[.column] [SINCE 'interval']`: the rows of the
//! DESIGN section 7 contract, as a typed table.

use super::page::{client_key, Page, Pager};
use super::{client_cells, columns, unresolved, Cell, Report};
use crate::admin::dependents::{dependents as find, Target};
use crate::admin::view::ReportView;
use crate::usage::UsageRow;

/// One row per client identity (`page.client`) that depended on `target`
/// since `since_ms`, in client order, one page at a time. `dependency`
/// keeps the contract's meaning (`explicit` when the client named it at
/// all); `implicit_use` says whether it also depended on it implicitly,
/// with a sample fingerprint of that use.
pub fn dependents(handle: &dyn ReportView, target: &Target, since_ms: u64, page: &Page) -> Report {
    paged_rows(&handle.usage_rows(), target, since_ms, page)
}

/// The first page of the report from usage rows (testable without a server).
#[cfg(test)]
pub(crate) fn from_rows(rows: &[UsageRow], target: &Target, since_ms: u64) -> Report {
    paged_rows(rows, target, since_ms, &Page::default())
}

/// One page of the report from usage rows.
fn paged_rows(rows: &[UsageRow], target: &Target, since_ms: u64, page: &Page) -> Report {
    let left_out = rows
        .iter()
        .filter(|r| r.last_seen_ms >= since_ms && target.may_be_used_by(r))
        .filter(|r| page.wants_client(&r.client))
        .count();
    let mut pager = Pager::new(page);
    for d in find(rows, target, since_ms) {
        if !page.wants_client(&d.client) {
            continue;
        }
        pager.offer(client_key(&d.client).to_vec(), || {
            let mut row = client_cells(&d.client);
            row.extend([
                Cell::text(d.dependency),
                Cell::count(d.calls),
                Cell::Time(d.first_seen_ms),
                Cell::Time(d.last_seen_ms),
                Cell::text(d.fingerprint.clone()),
                Cell::text(if d.implicit { "yes" } else { "no" }),
                Cell::opt_text(d.implicit_fingerprint.clone()),
            ]);
            row
        });
    }
    let mut report = Report::paged(columns::DEPENDENTS.to_vec(), pager.finish());
    report.notices.extend(unresolved::left_out_notice(left_out));
    report
}

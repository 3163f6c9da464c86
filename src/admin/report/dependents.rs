//! `SHOW DEPENDENTS table[.column] [SINCE 'interval']`: the rows of the
//! DESIGN section 7 contract, as a typed table.

use super::{columns, unresolved, Cell, Report};
use crate::admin::dependents::{dependents as find, Target};
use crate::proxy::ServerHandle;
use crate::usage::UsageRow;

/// One row per client identity that depended on `target` since `since_ms`.
/// `dependency` keeps the contract's meaning (`explicit` when the client
/// named it at all); `implicit_use` says whether it also depended on it
/// implicitly, with a sample fingerprint of that use.
pub fn dependents(handle: &ServerHandle, target: &Target, since_ms: u64) -> Report {
    from_rows(&handle.usage_rows(), target, since_ms)
}

/// The report from usage rows (testable without a server).
pub(crate) fn from_rows(rows: &[UsageRow], target: &Target, since_ms: u64) -> Report {
    let mut report = Report::new(columns::DEPENDENTS.to_vec());
    let left_out = rows
        .iter()
        .filter(|r| r.last_seen_ms >= since_ms && target.may_be_used_by(r))
        .count();
    report.notices.extend(unresolved::left_out_notice(left_out));
    for d in find(rows, target, since_ms) {
        report.push_client(
            &d.client,
            [
                Cell::text(d.dependency),
                Cell::count(d.calls),
                Cell::Time(d.first_seen_ms),
                Cell::Time(d.last_seen_ms),
                Cell::text(d.fingerprint),
                Cell::text(if d.implicit { "yes" } else { "no" }),
                Cell::opt_text(d.implicit_fingerprint),
            ],
        );
    }
    report
}

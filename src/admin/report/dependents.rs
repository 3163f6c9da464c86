//! `SHOW DEPENDENTS table[.column] [SINCE 'interval']`: the rows of the
//! DESIGN section 7 contract, as a typed table.

use super::{columns, Cell, Report};
use crate::admin::dependents::{dependents as find, Target};
use crate::proxy::ServerHandle;

/// One row per client identity that depended on `target` since `since_ms`.
pub fn dependents(handle: &ServerHandle, target: &Target, since_ms: u64) -> Report {
    let mut report = Report::new(columns::DEPENDENTS.to_vec());
    for d in find(&handle.usage_rows(), target, since_ms) {
        report.push_client(
            &d.client,
            [
                Cell::text(d.dependency),
                Cell::count(d.calls),
                Cell::Time(d.first_seen_ms),
                Cell::Time(d.last_seen_ms),
                Cell::text(d.fingerprint),
            ],
        );
    }
    report
}

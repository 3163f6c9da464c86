//! `SHOW DEPENDENTS table[.column] [SINCE 'interval']`: the rows of the
//! DESIGN section 7 contract, as a typed table.

use super::{client_cells, columns, Cell, Report};
use crate::admin::dependents::{dependents as find, Target};
use crate::proxy::ServerHandle;
use crate::usage::ClientIdentity;

/// One row per client identity that depended on `target` since `since_ms`.
pub fn dependents(handle: &ServerHandle, target: &Target, since_ms: u64) -> Report {
    let mut report = Report::new(columns::DEPENDENTS.to_vec());
    for d in find(&handle.usage_rows(), target, since_ms) {
        let mut row = client_cells(&ClientIdentity {
            application_name: d.application_name,
            user: d.user,
            database: d.database,
            client_addr: d.client_addr,
        });
        row.extend([
            Cell::text(d.dependency),
            Cell::count(d.calls),
            Cell::Time(d.first_seen_ms),
            Cell::Time(d.last_seen_ms),
            Cell::text(d.fingerprint),
        ]);
        report.push(row);
    }
    report
}

//! `SHOW DEPENDENTS table[.column] [SINCE 'interval']`: the rows of the
//! DESIGN section 7 contract, as a typed table.

use super::page::{client_key, Page, Pager};
use super::{client_cells, columns, Cell, Report};
use crate::admin::dependents::{dependents as find, Target};
use crate::proxy::ServerHandle;

/// One row per client identity (`page.client`) that depended on `target`
/// since `since_ms`, in client order, one page at a time.
pub fn dependents(handle: &ServerHandle, target: &Target, since_ms: u64, page: &Page) -> Report {
    let mut pager = Pager::new(page);
    for d in find(&handle.usage_rows(), target, since_ms) {
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
            ]);
            row
        });
    }
    Report::paged(columns::DEPENDENTS.to_vec(), pager.finish())
}

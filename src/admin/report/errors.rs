//! `SHOW ERRORS [SINCE 'interval']`: who broke, on which statement, with
//! which SQLSTATE.

use super::page::{client_key, KeyPart, Page, Pager};
use super::{client_cells, columns, Cell, Report};
use crate::admin::view::ReportView;
use std::collections::BTreeSet;

/// Errors by client x fingerprint x SQLSTATE whose last occurrence is at or
/// after `since_ms`, newest first (of `page.client`; with `page.table`,
/// of statements on that table).
pub fn errors(handle: &dyn ReportView, since_ms: u64, page: &Page) -> Report {
    let shapes_on_table: Option<BTreeSet<String>> = page.table.as_ref().map(|_| {
        handle
            .usage_rows()
            .into_iter()
            .filter(|r| {
                r.relations()
                    .into_iter()
                    .any(|(s, t)| page.wants_table(s, t))
            })
            .map(|r| r.fingerprint)
            .collect()
    });
    let mut pager = Pager::new(page);
    for e in handle.usage().errors_since(since_ms) {
        if !page.wants_client(&e.client)
            || shapes_on_table
                .as_ref()
                .is_some_and(|s| !s.contains(&e.fingerprint))
        {
            continue;
        }
        let mut key = vec![KeyPart::newest_first(e.last_error_ms)];
        key.extend(client_key(&e.client));
        key.extend([
            KeyPart::Text(e.sqlstate.clone()),
            KeyPart::Text(e.fingerprint.clone()),
        ]);
        pager.offer(key, || {
            let mut row = client_cells(&e.client);
            row.extend([
                Cell::text(e.sqlstate.clone()),
                Cell::count(e.errors),
                Cell::count(e.calls),
                Cell::Time(e.last_error_ms),
                Cell::text(e.fingerprint.clone()),
            ]);
            row
        });
    }
    Report::paged(columns::ERRORS.to_vec(), pager.finish())
}

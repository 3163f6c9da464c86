//! `SHOW DDL`: the DDL statements that passed through, newest first.

use super::page::{client_key, KeyPart, Page, Pager};
use super::{client_cells, columns, Cell, Report};
use crate::admin::view::ReportView;
use std::collections::HashMap;

/// The DDL log, newest first: when, who, what, on which object, and how it
/// ended (of `page.client`; with `page.table`, statements whose target or
/// table is that table, as written, qualified or not).
pub fn ddl(handle: &dyn ReportView, page: &Page) -> Report {
    let mut pager = Pager::new(page);
    // Identical events in the same millisecond stay distinct rows.
    let mut repeats: HashMap<Vec<KeyPart>, i64> = HashMap::new();
    for e in handle.ddl_log().events() {
        let on_table = page.table.as_ref().is_none_or(|t| {
            [e.target.as_deref(), e.on.as_deref()]
                .into_iter()
                .flatten()
                .any(|name| name == t.table || name == format!("{}.{}", t.schema, t.table))
        });
        if !on_table || !page.wants_client(&e.client) {
            continue;
        }
        let mut key = vec![KeyPart::newest_first(e.at_ms)];
        key.extend(client_key(&e.client));
        key.extend([
            KeyPart::Text(e.command.clone()),
            KeyPart::opt_text(e.target.as_deref()),
            KeyPart::Text(e.fingerprint.clone()),
        ]);
        let n = repeats.entry(key.clone()).or_default();
        *n -= 1;
        key.push(KeyPart::Int(*n));
        pager.offer(key, || {
            let mut row = vec![Cell::Time(e.at_ms)];
            row.extend(client_cells(&e.client));
            row.extend([
                Cell::text(e.command.clone()),
                Cell::opt_text((!e.object.is_empty()).then_some(e.object)),
                Cell::opt_text(e.target.clone()),
                Cell::opt_text(e.on.clone()),
                Cell::text(e.error.clone().unwrap_or_else(|| "ok".into())),
                Cell::ms(e.duration_us),
                Cell::text(e.fingerprint.clone()),
            ]);
            row
        });
    }
    Report::paged(columns::DDL.to_vec(), pager.finish())
}

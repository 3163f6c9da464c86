//! `SHOW DDL`: the DDL statements that passed through, newest first.

use super::{client_cells, columns, Cell, Report};
use crate::proxy::ServerHandle;

/// The DDL log: when, who, what, on which object, and how it ended.
pub fn ddl(handle: &ServerHandle) -> Report {
    let mut report = Report::new(columns::DDL.to_vec());
    for e in handle.ddl_log().events().into_iter().rev() {
        let mut row = vec![Cell::Time(e.at_ms)];
        row.extend(client_cells(&e.client));
        row.extend([
            Cell::text(e.command),
            Cell::opt_text((!e.object.is_empty()).then_some(e.object)),
            Cell::opt_text(e.target),
            Cell::opt_text(e.on),
            Cell::text(e.error.unwrap_or_else(|| "ok".into())),
            Cell::ms(e.duration_us),
            Cell::text(e.fingerprint),
        ]);
        report.push(row);
    }
    report
}

//! `SHOW ERRORS [SINCE 'interval']`: who broke, on which statement, with
//! which SQLSTATE.

use super::{columns, Cell, Report};
use crate::proxy::ServerHandle;

/// Errors by client x fingerprint x SQLSTATE whose last occurrence is at or
/// after `since_ms`, newest first.
pub fn errors(handle: &ServerHandle, since_ms: u64) -> Report {
    let mut report = Report::new(columns::ERRORS.to_vec());
    for e in handle.usage().errors_since(since_ms) {
        report.push_client(
            &e.client,
            [
                Cell::text(e.sqlstate),
                Cell::count(e.errors),
                Cell::count(e.calls),
                Cell::Time(e.last_error_ms),
                Cell::text(e.fingerprint),
            ],
        );
    }
    report
}

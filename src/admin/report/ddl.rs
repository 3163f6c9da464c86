//! `SHOW DDL [SINCE 'interval']`: the DDL statements that passed through,
//! newest first, with what the gate and the guard did and what each did to
//! the traffic on its table.

use super::page::{KeyPart, Page, Pager};
use super::{client_cells, columns, Cell, Report};
use crate::admin::view::ReportView;
use crate::usage::ddl_log::{DdlEvent, RuleHit};
use crate::usage::impact::{ImpactState, WindowStats};

/// The DDL log, newest first: when, who, what, on which object, how it
/// ended, the rules that fired, the attempts and waits, the blockers, and
/// the impact on the table's traffic; events that finished at or after
/// `since_ms` (0: all held), of `page.client`; with `page.table`,
/// statements whose target or table is that table, as written, qualified
/// or not.
pub fn ddl(handle: &dyn ReportView, since_ms: u64, page: &Page) -> Report {
    let mut pager = Pager::new(page);
    for e in handle.ddl_log().events() {
        let on_table = page.table.as_ref().is_none_or(|t| {
            [e.target.as_deref(), e.on.as_deref()]
                .into_iter()
                .flatten()
                .any(|name| name == t.table || name == format!("{}.{}", t.schema, t.table))
        });
        if e.at_ms < since_ms || !on_table || !page.wants_client(&e.client) {
            continue;
        }
        let mut key = vec![KeyPart::newest_first(e.at_ms)];
        key.extend(id_key(&e.id));
        pager.offer(key, || row(&e));
    }
    Report::paged(columns::DDL.to_vec(), pager.finish())
}

/// The id as a sort key: unique, and one proxy's events of the same
/// millisecond newest first (`instance-sequence`).
fn id_key(id: &str) -> [KeyPart; 2] {
    match id.rsplit_once('-').map(|(i, n)| (i, n.parse::<i64>())) {
        Some((instance, Ok(n))) => [KeyPart::Text(instance.to_string()), KeyPart::Int(-n)],
        _ => [KeyPart::Text(id.to_string()), KeyPart::Null],
    }
}

/// `rule=action`, with the reason of an allow comment.
fn rule_text(r: &RuleHit) -> String {
    match &r.allowed_by_comment {
        Some(reason) => format!("{}={} (allowed: {reason})", r.rule, r.action),
        None => format!("{}={}", r.rule, r.action),
    }
}

fn row(e: &DdlEvent) -> Vec<Cell> {
    let n = &e.notes;
    let mut row = vec![Cell::Time(e.at_ms)];
    row.extend(client_cells(&e.client));
    row.extend([
        Cell::text(e.command.clone()),
        Cell::opt_text((!e.object.is_empty()).then_some(e.object.clone())),
        Cell::opt_text(e.target.clone()),
        Cell::opt_text(e.on.clone()),
        Cell::text(e.outcome()),
        Cell::ms(e.duration_us),
        Cell::text(e.fingerprint.clone()),
        Cell::text(e.id.clone()),
        Cell::text(n.action.clone()),
        Cell::text(n.rules.iter().map(rule_text).collect::<Vec<_>>().join(", ")),
        Cell::count(u64::from(n.attempts)),
        Cell::count(n.preflight_wait_ms),
        Cell::count(n.lock_wait_ms),
        Cell::text(n.blockers.join("\n")),
        Cell::text(n.terminated.join(", ")),
        Cell::text(e.impact.state.as_str()),
    ]);
    let measured = e.impact.state != ImpactState::None;
    for w in [&e.impact.before, &e.impact.during, &e.impact.after] {
        row.extend(window_cells(w, measured));
    }
    row
}

/// Calls, errors, p50 and p99 of one window (NULL when not measured; the
/// quantiles NULL without calls).
fn window_cells(w: &WindowStats, measured: bool) -> [Cell; 4] {
    if !measured {
        return [Cell::Null, Cell::Null, Cell::Null, Cell::Null];
    }
    let quantile = |us: u64| {
        if w.calls > 0 {
            Cell::ms(us)
        } else {
            Cell::Null
        }
    };
    [
        Cell::count(w.calls),
        Cell::count(w.errors),
        quantile(w.p50_us),
        quantile(w.p99_us),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::usage::{DdlLog, DdlNotes};

    #[test]
    fn rows_have_a_cell_per_column_and_unmeasured_impacts_are_null() {
        let log = DdlLog::new(4);
        let who = crate::usage::ClientIdentity {
            application_name: "migrate".into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        };
        let notes = DdlNotes {
            rules: vec![RuleHit {
                rule: "r1".into(),
                action: "warn".into(),
                allowed_by_comment: Some("why".into()),
            }],
            action: "guard".into(),
            attempts: 2,
            blockers: vec!["b1".into(), "b2".into()],
            ..DdlNotes::default()
        };
        let alter = Analyzer::new(4).analyze("ALTER TABLE users ADD COLUMN x int");
        log.record(&who, &alter, 1, 1, None, Some(&notes));
        let mut e = log.events().remove(0);
        let col = |row: &[Cell], name: &str| {
            let i = columns::DDL.iter().position(|(n, _)| *n == name).unwrap();
            row[i].clone()
        };
        let r = row(&e);
        assert_eq!(r.len(), columns::DDL.len());
        assert_eq!(col(&r, "rules"), Cell::text("r1=warn (allowed: why)"));
        assert_eq!(col(&r, "blockers"), Cell::text("b1\nb2"));
        assert_eq!(col(&r, "attempts"), Cell::Int(2));
        assert_eq!(col(&r, "impact"), Cell::text("none"));
        assert_eq!(col(&r, "before_calls"), Cell::Null);
        e.impact.state = ImpactState::Partial;
        e.impact.during.calls = 3;
        e.impact.during.p99_us = 2500;
        let r = row(&e);
        assert_eq!(col(&r, "before_calls"), Cell::Int(0));
        assert_eq!(
            col(&r, "before_p99_ms"),
            Cell::Null,
            "no calls, no quantile"
        );
        assert_eq!(col(&r, "during_calls"), Cell::Int(3));
        assert_eq!(col(&r, "during_p99_ms"), Cell::Float(2.5));
    }
}

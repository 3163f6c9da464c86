//! `SHOW UNRESOLVED [table[.column]]`: the "could not resolve" list. A
//! column the catalog could not place in one relation (it was named
//! unqualified in a join of tables the snapshot does not know, or that all
//! have it) is listed here with its candidates, never as a table row of
//! the usage, tables or dependents reports.

use super::page::{client_key, KeyPart, Page, Pager};
use super::{client_cells, columns, Cell, Report};
use crate::admin::dependents::Target;
use crate::admin::view::ReportView;
use crate::analysis::Mode;
use crate::usage::UsageRow;

/// The NOTICE a report adds when `n` unresolved uses are left out of it.
pub(crate) fn left_out_notice(n: usize) -> Option<String> {
    (n > 0).then(|| {
        format!(
            "{n} column use(s) could not be resolved to one table and are not in these rows: \
             see SHOW UNRESOLVED or /api/v1/unresolved"
        )
    })
}

/// Unresolved column uses of `page.client`, or those that may be on
/// `page.table`, one page at a time.
pub fn unresolved(handle: &dyn ReportView, page: &Page) -> Report {
    paged_rows(&handle.usage_rows(), page)
}

/// The first page of the report from usage rows (testable without a server).
#[cfg(test)]
pub(crate) fn from_rows(rows: &[UsageRow], target: Option<&Target>) -> Report {
    let page = Page {
        table: target.cloned(),
        ..Page::default()
    };
    paged_rows(rows, &page)
}

/// One page of the report from usage rows, in client, column, candidates,
/// mode, fingerprint order.
fn paged_rows(rows: &[UsageRow], page: &Page) -> Report {
    let target: Option<&Target> = page.table.as_ref();
    let mut pager = Pager::new(page);
    for r in rows
        .iter()
        .filter(|r| !r.is_resolved() && page.wants_client(&r.client))
        .filter(|r| target.is_none_or(|t| t.may_be_used_by(r)))
    {
        let candidates: Vec<String> = r
            .candidates
            .iter()
            .map(|q| format!("{}.{}", q.schema, q.name))
            .collect();
        let candidates = candidates.join(", ");
        let mode = match r.mode {
            Mode::Read => "read",
            Mode::Write => "write",
        };
        let mut key = client_key(&r.client).to_vec();
        key.extend([
            KeyPart::opt_text(r.column.as_deref()),
            KeyPart::Text(candidates.clone()),
            KeyPart::Text(mode.into()),
            KeyPart::Text(r.fingerprint.clone()),
            KeyPart::Text(r.search_path.clone()),
        ]);
        pager.offer(key, || {
            let mut row = client_cells(&r.client);
            row.extend([
                Cell::opt_text(r.column.clone()),
                Cell::text(candidates),
                Cell::text(mode),
                Cell::count(r.calls),
                Cell::Time(r.last_seen_ms),
                Cell::text(&r.fingerprint),
            ]);
            row
        });
    }
    Report::paged(columns::UNRESOLVED.to_vec(), pager.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analysis::{Dependency, QualifiedName};
    use crate::usage::ClientIdentity;

    /// A usage row of client `app` on `table` (`a|b` for candidates).
    pub(crate) fn row(app: &str, table: &str, column: Option<&str>, dep: Dependency) -> UsageRow {
        let q = |t: &str| QualifiedName {
            schema: "public".into(),
            name: t.into(),
        };
        let (schema, name, candidates) = if table.contains('|') {
            (
                String::new(),
                String::new(),
                table.split('|').map(q).collect(),
            )
        } else {
            ("public".to_string(), table.to_string(), Vec::new())
        };
        UsageRow {
            client: ClientIdentity {
                application_name: app.into(),
                user: "u".into(),
                database: "d".into(),
                client_addr: "127.0.0.1".into(),
            },
            search_path: String::new(),
            schema,
            table: name,
            candidates,
            column: column.map(str::to_string),
            mode: Mode::Read,
            dependency: dep,
            fingerprint: format!("select from {table}"),
            fingerprint_id: table.len() as u64,
            calls: 3,
            errors: 0,
            error_codes: Vec::new(),
            total_us: 30,
            max_us: 10,
            first_seen_ms: 1,
            last_seen_ms: 2,
        }
    }

    fn text(report: &Report, col: &str) -> Vec<String> {
        let i = report.columns.iter().position(|(n, _)| *n == col);
        report
            .rows
            .iter()
            .filter_map(|r| match i.map(|i| &r[i]) {
                Some(Cell::Text(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn candidate_sets_are_never_table_rows() {
        let rows = vec![
            row("a", "j1_tbl", Some("x"), Dependency::Explicit),
            row("a", "j1_tbl|j2_tbl", Some("i"), Dependency::Explicit),
        ];
        let usage = crate::admin::report::usage::from_rows(rows.clone(), None);
        assert_eq!(text(&usage, "table"), vec!["j1_tbl"]);
        assert_eq!(usage.notices.len(), 1, "{:?}", usage.notices);
        let on_j2 = Target::new("j2_tbl", Some("i"));
        let usage = crate::admin::report::usage::from_rows(rows.clone(), Some(&on_j2));
        assert!(usage.rows.is_empty());
        assert_eq!(usage.notices.len(), 1);
        let dependents = crate::admin::report::dependents::from_rows(
            &rows,
            &Target::new("j1_tbl", Some("i")),
            0,
        );
        assert!(
            dependents.rows.is_empty(),
            "an ambiguous use is no dependent"
        );
        assert_eq!(dependents.notices.len(), 1);
        let list = from_rows(&rows, None);
        assert_eq!(
            text(&list, "candidates"),
            vec!["public.j1_tbl, public.j2_tbl"]
        );
        assert_eq!(text(&list, "column"), vec!["i"]);
        assert_eq!(from_rows(&rows, Some(&on_j2)).rows.len(), 1);
        assert!(from_rows(&rows, Some(&Target::new("j1_tbl", Some("x"))))
            .rows
            .is_empty());
    }

    #[test]
    fn a_dependent_that_used_a_column_both_ways_shows_both() {
        let rows = vec![
            // UPDATE tags SET name = ... RETURNING *
            row("a", "tags", Some("name"), Dependency::Explicit),
            row("a", "tags", None, Dependency::Implicit),
            row("b", "tags", None, Dependency::Implicit),
        ];
        let report =
            crate::admin::report::dependents::from_rows(&rows, &Target::new("tags", Some("id")), 0);
        let deps = text(&report, "dependency");
        let implicit = text(&report, "implicit_use");
        assert_eq!(deps, vec!["implicit", "implicit"], "neither named id");
        assert_eq!(implicit, vec!["yes", "yes"]);
        let report = crate::admin::report::dependents::from_rows(
            &rows,
            &Target::new("tags", Some("name")),
            0,
        );
        assert_eq!(text(&report, "dependency"), vec!["explicit", "implicit"]);
        assert_eq!(
            text(&report, "implicit_use"),
            vec!["yes", "yes"],
            "a used it both ways"
        );
        assert_eq!(
            text(&report, "implicit_fingerprint"),
            vec!["select from tags", "select from tags"]
        );
    }
}

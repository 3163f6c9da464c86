//! The SQL of a backfill: the request's `SET` and `WHERE` read with
//! sqlparser (one statement, no `FROM`/`RETURNING`, no subquery unless
//! allowed, re-printed from the syntax tree so comments and stray
//! statements cannot ride along), and the keyset batch built from them
//! (never OFFSET: each batch starts after the last key of the one before).

use super::error::BackfillError;
use sqlparser::ast::{AssignmentTarget, Query, Statement, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The assignments and the row filter, checked and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignments {
    /// The target columns (unquoted names fold to lower case).
    pub targets: Vec<String>,
    /// `col = expr, ...` as the parser prints it.
    pub set_sql: String,
    /// The filter: the request's, or `targets IS DISTINCT FROM exprs`.
    pub where_sql: String,
}

fn invalid(message: impl Into<String>, hint: impl Into<String>) -> BackfillError {
    BackfillError::Invalid {
        message: message.into(),
        hint: hint.into(),
    }
}

const SET_HINT: &str =
    "write the assignments as in UPDATE, e.g. --set \"email_lower = lower(email)\"";

/// Parses `UPDATE t SET {set} [WHERE {where}]` and checks it is a plain,
/// single-row update (`allow_subquery` lets subqueries through).
pub fn parse(
    set: &str,
    where_clause: Option<&str>,
    allow_subquery: bool,
) -> Result<Assignments, BackfillError> {
    if set.trim().is_empty() {
        return Err(invalid("the backfill has no assignments", SET_HINT));
    }
    let update =
        one_update(&format!("UPDATE ddlguard_backfill_target SET {set}")).map_err(|e| {
            invalid(
                format!("cannot read the assignments {set:?}: {e}"),
                SET_HINT,
            )
        })?;
    let Statement::Update(u) = &update else {
        return Err(invalid("the assignments are not an UPDATE's", SET_HINT));
    };
    if u.selection.is_some() || u.from.is_some() || u.returning.is_some() {
        return Err(invalid(
            "the assignments carry a WHERE, FROM or RETURNING clause",
            "give the assignments alone in --set and the row filter in --where; FROM and RETURNING are not supported",
        ));
    }
    let mut targets = Vec::new();
    let mut values = Vec::new();
    for a in &u.assignments {
        match &a.target {
            AssignmentTarget::ColumnName(name) if name.0.len() == 1 => {
                let ident = name.0[0]
                    .as_ident()
                    .ok_or_else(|| invalid(format!("{name} is not a column name"), SET_HINT))?;
                let column = if ident.quote_style.is_some() {
                    ident.value.clone()
                } else {
                    ident.value.to_lowercase()
                };
                targets.push(column);
                values.push(a.value.to_string());
            }
            other => {
                return Err(invalid(
                    format!("cannot backfill {other}: assign one plain column at a time"),
                    "write col_a = expr_a, col_b = expr_b",
                ))
            }
        }
    }
    let set_sql = u
        .assignments
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !allow_subquery && has_subquery(&update) {
        return Err(BackfillError::Unsafe {
            message: "the assignments contain a subquery: it runs once per row and can read other rows as they change".into(),
            hint: "compute the value from the row itself, or pass --allow-subquery (console: ALLOW_SUBQUERY) when the subquery is intended".into(),
        });
    }
    let where_sql = match where_clause.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => {
            let stmt = one_update(&format!(
                "UPDATE ddlguard_backfill_target SET x = 1 WHERE {w}"
            ))
            .map_err(|e| {
                invalid(
                    format!("cannot read the row filter {w:?}: {e}"),
                    "write a condition as in WHERE, e.g. --where \"email_lower IS NULL\"",
                )
            })?;
            let selection = match &stmt {
                Statement::Update(u) if u.returning.is_none() => u.selection.clone(),
                _ => None,
            };
            let Some(selection) = selection else {
                return Err(invalid(
                    format!("the row filter {w:?} is not a plain condition"),
                    "write a condition as in WHERE, e.g. --where \"email_lower IS NULL\"",
                ));
            };
            if !allow_subquery && has_subquery(&stmt) {
                return Err(BackfillError::Unsafe {
                    message: "the row filter contains a subquery: it runs once per row".into(),
                    hint: "filter on the row's own columns, or pass --allow-subquery".into(),
                });
            }
            selection.to_string()
        }
        None => default_where(&targets, &values),
    };
    Ok(Assignments {
        targets,
        set_sql,
        where_sql,
    })
}

/// Exactly one statement, and an UPDATE.
fn one_update(sql: &str) -> Result<Statement, String> {
    let mut statements =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    match (statements.pop(), statements.is_empty()) {
        (Some(s @ Statement::Update(_)), true) => Ok(s),
        (Some(_), true) => Err("not a single assignment list".into()),
        _ => Err("more than one statement".into()),
    }
}

/// Finds any query nested in the statement (`(SELECT ...)`, `EXISTS`,
/// `IN (SELECT ...)`, `ARRAY(SELECT ...)`): the statement itself is an
/// UPDATE, so every query the visitor meets is a subquery.
struct Subqueries;

impl Visitor for Subqueries {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        ControlFlow::Break(())
    }
}

fn has_subquery(stmt: &Statement) -> bool {
    stmt.visit(&mut Subqueries).is_break()
}

/// `col IS DISTINCT FROM (expr)`, or the row form for several columns:
/// a row already right is not updated again, so a rerun redoes nothing.
fn default_where(targets: &[String], values: &[String]) -> String {
    let cols: Vec<String> = targets.iter().map(|t| quote_ident(t)).collect();
    if cols.len() == 1 {
        format!("{} IS DISTINCT FROM ({})", cols[0], values[0])
    } else {
        format!(
            "ROW({}) IS DISTINCT FROM ROW({})",
            cols.join(", "),
            values.join(", ")
        )
    }
}

/// An identifier quoted as Postgres' `quote_ident` would, always.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What one batch needs to know about the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchShape<'a> {
    /// Schema.
    pub schema: &'a str,
    /// Table.
    pub table: &'a str,
    /// Key column.
    pub key: &'a str,
    /// Key type as `format_type` prints it.
    pub key_type: &'a str,
    /// The assignments.
    pub set_sql: &'a str,
    /// The filter.
    pub where_sql: &'a str,
}

/// One batch: the next `limit` keys after `$1` (the last key as text; the
/// first batch has no `$1`), the rows among them that match the filter
/// updated, and back the last key visited (text), keys visited and rows
/// updated.
pub fn batch_sql(s: &BatchShape<'_>, first: bool, limit: u64) -> String {
    let table = format!("{}.{}", quote_ident(s.schema), quote_ident(s.table));
    let key = quote_ident(s.key);
    let after = if first {
        String::new()
    } else {
        format!(" WHERE {key} > $1::text::{}", s.key_type)
    };
    format!(
        "WITH ddlguard_batch AS (\
SELECT {key} AS ddlguard_key FROM {table}{after} ORDER BY {key} LIMIT {limit}), \
ddlguard_done AS (\
UPDATE {table} SET {set} FROM ddlguard_batch \
WHERE {table}.{key} = ddlguard_batch.ddlguard_key AND ({filter}) RETURNING 1) \
SELECT (SELECT ddlguard_batch.ddlguard_key::text AS ddlguard_last FROM ddlguard_batch \
ORDER BY ddlguard_batch.ddlguard_key DESC LIMIT 1), \
(SELECT count(*) FROM ddlguard_batch), (SELECT count(*) FROM ddlguard_done)",
        set = s.set_sql,
        filter = s.where_sql,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_makes_a_rerun_a_no_op() {
        let a = parse("email_lower = lower(email)", None, false).unwrap();
        assert_eq!(a.targets, ["email_lower"]);
        assert_eq!(a.set_sql, "email_lower = lower(email)");
        assert_eq!(
            a.where_sql,
            "\"email_lower\" IS DISTINCT FROM (lower(email))"
        );
        let a = parse("A = 1, \"B\" = b + 1", None, false).unwrap();
        assert_eq!(a.targets, ["a", "B"]);
        assert_eq!(
            a.where_sql,
            "ROW(\"a\", \"B\") IS DISTINCT FROM ROW(1, b + 1)"
        );
        let a = parse("x = 2", Some("x IS NULL"), false).unwrap();
        assert_eq!(a.where_sql, "x IS NULL");
    }

    #[test]
    fn subqueries_need_permission() {
        for (set, filter) in [
            ("x = (SELECT max(y) FROM other)", None),
            ("x = 1", Some("EXISTS (SELECT 1 FROM other)")),
            ("x = 1", Some("id IN (SELECT id FROM other)")),
            ("x = ARRAY(SELECT y FROM other)", None),
        ] {
            let e = parse(set, filter, false).unwrap_err();
            assert_eq!(e.sqlstate(), "55000", "{set} {filter:?}");
            assert!(e.hint().unwrap().contains("--allow-subquery"));
            assert!(parse(set, filter, true).is_ok(), "{set} {filter:?}");
        }
    }

    #[test]
    fn smuggled_statements_and_clauses_are_refused() {
        for (set, filter) in [
            ("x = 1; DROP TABLE t", None),
            ("x = 1 WHERE y", None),
            ("x = 1 FROM other", None),
            ("x = 1 RETURNING *", None),
            ("(a, b) = (1, 2)", None),
            ("", None),
            ("x = 1", Some("true; DROP TABLE t")),
            ("x = 1", Some("true RETURNING *")),
        ] {
            let e = parse(set, filter, false).unwrap_err();
            assert_eq!(e.sqlstate(), "42601", "{set} {filter:?}: {e}");
        }
        // A comment cannot cut the batch statement short: the text is re-printed.
        let a = parse("x = 1 -- , y = 2", None, false).unwrap();
        assert_eq!(a.set_sql, "x = 1");
    }

    #[test]
    fn batches_walk_the_key_without_offset() {
        let shape = BatchShape {
            schema: "public",
            table: "users",
            key: "id",
            key_type: "bigint",
            set_sql: "x = 1",
            where_sql: "x IS NULL",
        };
        let first = batch_sql(&shape, true, 500);
        assert!(!first.contains("$1"), "{first}");
        assert!(first.contains("ORDER BY \"id\" LIMIT 500"), "{first}");
        let next = batch_sql(&shape, false, 10);
        assert!(next.contains("WHERE \"id\" > $1::text::bigint"), "{next}");
        assert!(!next.to_uppercase().contains("OFFSET"), "{next}");
        // The last key is the largest by the key's order, not by its text
        // ("999" sorts after "1250").
        assert!(
            next.contains("ORDER BY ddlguard_batch.ddlguard_key DESC"),
            "{next}"
        );
    }
}

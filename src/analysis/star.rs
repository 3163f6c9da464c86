//! Star expansion pinned to a remembered result shape: `SELECT *` becomes
//! `SELECT t."id", t."v"` with exactly the columns a prepared statement
//! returned before a schema change, so the statement can be prepared again
//! and keep its old result shape (issue 20). The rest of the text is kept
//! byte for byte; only the star items of the top-level select list change.

use sqlparser::ast::{
    JoinConstraint, JoinOperator, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned,
    Statement, TableFactor, TableWithJoins, WildcardAdditionalOptions,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Location;

/// One column of the remembered shape, as its RowDescription field said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarColumn<'a> {
    /// The column's name.
    pub name: &'a str,
    /// The table it comes from (0: not a table column).
    pub table_oid: u32,
    /// Its attribute number in that table.
    pub column: i16,
}

/// Why a statement's stars cannot be pinned (the caller then leaves the
/// statement alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StarError {
    /// The text does not parse as one statement.
    #[error("the statement does not parse")]
    Unparsed,
    /// Not one plain SELECT (a set operation, a DML statement, a star with
    /// EXCLUDE/REPLACE and the like).
    #[error("the statement is not one plain SELECT")]
    NotSelect,
    /// Nothing to expand: the shape changed some other way.
    #[error("the select list has no star")]
    NoStar,
    /// The remembered columns do not fit the select list.
    #[error("the remembered columns do not fit the select list")]
    Mismatch,
    /// A star covered something that is not a column of a table.
    #[error("a star covers a column that is not a table column")]
    NotTableColumn,
    /// A bare star whose columns cannot be named one by one (joins with
    /// USING or NATURAL, sources without a name, several bare stars).
    #[error("a star's columns cannot be named one by one")]
    Unqualifiable,
}

/// One select-list item: a single column, or a star (with its qualifier
/// text and its byte range in the statement).
enum Item {
    Single,
    Star {
        qualifier: Option<String>,
        range: (usize, usize),
    },
}

/// Rewrites `sql` with every star of its select list replaced by the
/// explicit, qualified columns of `columns` (the remembered shape, in
/// order).
pub fn pin_stars(sql: &str, columns: &[StarColumn<'_>]) -> Result<String, StarError> {
    let statements =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|_| StarError::Unparsed)?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return Err(StarError::NotSelect);
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(StarError::NotSelect);
    };
    let mut items = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        items.push(match item {
            SelectItem::Wildcard(opts) => star(sql, item, None, opts)?,
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), opts) => {
                star(sql, item, Some(n.to_string()), opts)?
            }
            SelectItem::QualifiedWildcard(..) => return Err(StarError::NotSelect),
            _ => Item::Single,
        });
    }
    let stars = items
        .iter()
        .filter(|i| matches!(i, Item::Star { .. }))
        .count();
    if stars == 0 {
        return Err(StarError::NoStar);
    }
    let singles = items.len() - stars;
    let Some(star_total) = columns.len().checked_sub(singles) else {
        return Err(StarError::Mismatch);
    };
    let mut pos = 0;
    let mut edits = Vec::with_capacity(stars);
    for item in items {
        let Item::Star { qualifier, range } = item else {
            pos += 1;
            continue;
        };
        let rest = columns.get(pos..).ok_or(StarError::Mismatch)?;
        let count = match (&qualifier, stars) {
            (_, 1) => star_total,
            (Some(_), _) => run_len(rest),
            (None, _) => return Err(StarError::Unqualifiable),
        };
        let covered = rest.get(..count).ok_or(StarError::Mismatch)?;
        if covered.is_empty() {
            return Err(StarError::Mismatch);
        }
        if covered.iter().any(|c| c.table_oid == 0 || c.column <= 0) {
            return Err(StarError::NotTableColumn);
        }
        let text = match qualifier {
            Some(q) => listed(covered.iter().map(|c| (q.as_str(), c.name))),
            None => bare(&select.from, covered)?,
        };
        edits.push((range, text));
        pos += count;
    }
    if pos != columns.len() {
        return Err(StarError::Mismatch);
    }
    let mut out = sql.to_string();
    for ((start, end), text) in edits.into_iter().rev() {
        out.replace_range(start..end, &text);
    }
    Ok(out)
}

/// A star item, refused when it carries modifiers (EXCLUDE, REPLACE, ...).
fn star(
    sql: &str,
    item: &SelectItem,
    qualifier: Option<String>,
    opts: &WildcardAdditionalOptions,
) -> Result<Item, StarError> {
    let plain = opts.opt_ilike.is_none()
        && opts.opt_exclude.is_none()
        && opts.opt_except.is_none()
        && opts.opt_replace.is_none()
        && opts.opt_rename.is_none()
        && opts.opt_alias.is_none();
    if !plain {
        return Err(StarError::NotSelect);
    }
    let span = item.span();
    let start = offset(sql, span.start).ok_or(StarError::Unparsed)?;
    let end = offset(sql, span.end).ok_or(StarError::Unparsed)?;
    if start >= end || !sql[start..end].ends_with('*') {
        return Err(StarError::Unparsed);
    }
    Ok(Item::Star {
        qualifier,
        range: (start, end),
    })
}

/// Length of the leading run of columns of one table in attribute order
/// (how far a qualified star reaches when several stars share the list).
fn run_len(columns: &[StarColumn<'_>]) -> usize {
    let Some(first) = columns.first() else {
        return 0;
    };
    let mut last = first.column;
    1 + columns[1..]
        .iter()
        .take_while(|c| {
            let next = c.table_oid == first.table_oid && c.column > last;
            last = c.column;
            next
        })
        .count()
}

/// The columns of a bare star, each qualified by the FROM item it comes
/// from (FROM items in order, each one run of columns).
fn bare(from: &[TableWithJoins], covered: &[StarColumn<'_>]) -> Result<String, StarError> {
    let mut names = Vec::new();
    for twj in from {
        names.push(source_name(&twj.relation)?);
        for join in &twj.joins {
            if merges_columns(&join.join_operator) {
                return Err(StarError::Unqualifiable);
            }
            names.push(source_name(&join.relation)?);
        }
    }
    let mut pairs = Vec::with_capacity(covered.len());
    match names.as_slice() {
        [] => return Err(StarError::Unqualifiable),
        [only] => pairs.extend(covered.iter().map(|c| (only.as_str(), c.name))),
        _ => {
            let mut rest = covered;
            for name in &names {
                let n = run_len(rest);
                if n == 0 {
                    return Err(StarError::Unqualifiable);
                }
                pairs.extend(rest[..n].iter().map(|c| (name.as_str(), c.name)));
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                return Err(StarError::Unqualifiable);
            }
        }
    }
    Ok(listed(pairs.into_iter()))
}

/// True for joins whose star output merges columns (USING, NATURAL), or
/// whose kind is not a plain join.
fn merges_columns(op: &JoinOperator) -> bool {
    !matches!(
        super::extract::join_constraint(op),
        Some(JoinConstraint::On(_) | JoinConstraint::None)
    )
}

/// The name a FROM item's columns are qualified with: its alias, else the
/// table's name as written.
fn source_name(factor: &TableFactor) -> Result<String, StarError> {
    match factor {
        TableFactor::Table { alias: Some(a), .. }
        | TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::Function { alias: Some(a), .. } => Ok(a.name.to_string()),
        TableFactor::Table {
            name, args: None, ..
        } => Ok(name.to_string()),
        _ => Err(StarError::Unqualifiable),
    }
}

/// `q."a", q."b"`.
fn listed<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (qualifier, name) in pairs {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(qualifier);
        out.push_str(".\"");
        out.push_str(&name.replace('"', "\"\""));
        out.push('"');
    }
    out
}

/// Byte offset of a parser location (1-based line and character column).
fn offset(sql: &str, at: Location) -> Option<usize> {
    if at.line == 0 || at.column == 0 {
        return None;
    }
    let mut line_start = 0;
    for _ in 1..at.line {
        line_start += sql[line_start..].find('\n')? + 1;
    }
    let line = &sql[line_start..];
    let col = (at.column - 1) as usize;
    match line.char_indices().nth(col) {
        Some((i, _)) => Some(line_start + i),
        None if line.chars().count() == col => Some(sql.len()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &'static str, table_oid: u32, column: i16) -> StarColumn<'static> {
        StarColumn {
            name,
            table_oid,
            column,
        }
    }

    const T: u32 = 16384;
    const U: u32 = 16390;

    #[test]
    fn a_bare_star_becomes_the_remembered_columns() {
        let cols = [col("id", T, 1), col("v", T, 2)];
        assert_eq!(
            pin_stars("select * from t where id = $1", &cols).unwrap(),
            r#"select t."id", t."v" from t where id = $1"#
        );
        assert_eq!(
            pin_stars("SELECT * FROM public.t AS x", &cols).unwrap(),
            r#"SELECT x."id", x."v" FROM public.t AS x"#
        );
    }

    #[test]
    fn a_qualified_star_keeps_the_other_items_in_place() {
        let cols = [
            col("n", 0, 0),
            col("id", T, 1),
            col("v", T, 2),
            col("name", U, 2),
        ];
        assert_eq!(
            pin_stars(
                "SELECT 1 AS n, t.*, u.name FROM t JOIN u ON u.id = t.id WHERE t.id = $1",
                &cols
            )
            .unwrap(),
            r#"SELECT 1 AS n, t."id", t."v", u.name FROM t JOIN u ON u.id = t.id WHERE t.id = $1"#
        );
    }

    #[test]
    fn several_stars_split_by_table_and_attribute_order() {
        let cols = [
            col("id", T, 1),
            col("v", T, 3),
            col("id", T, 1),
            col("v", T, 3),
        ];
        assert_eq!(
            pin_stars("SELECT a.*, b.* FROM t a JOIN t b ON a.id = b.id", &cols).unwrap(),
            r#"SELECT a."id", a."v", b."id", b."v" FROM t a JOIN t b ON a.id = b.id"#
        );
        let cols = [
            col("id", T, 1),
            col("v", T, 2),
            col("id", U, 1),
            col("name", U, 2),
        ];
        assert_eq!(
            pin_stars("SELECT *\nFROM t, u -- é\nWHERE t.id = u.id", &cols).unwrap(),
            "SELECT t.\"id\", t.\"v\", u.\"id\", u.\"name\"\nFROM t, u -- é\nWHERE t.id = u.id"
        );
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let cols = [col("é", T, 1)];
        assert_eq!(
            pin_stars(
                "SELECT 'é', * FROM \"tè\"",
                &[col("?column?", 0, 0), cols[0]]
            )
            .unwrap(),
            "SELECT 'é', \"tè\".\"é\" FROM \"tè\""
        );
    }

    #[test]
    fn what_cannot_be_named_is_refused() {
        let cols = [col("id", T, 1), col("v", T, 2)];
        assert_eq!(
            pin_stars("SELECT id, v FROM t", &cols),
            Err(StarError::NoStar)
        );
        assert_eq!(
            pin_stars("SELECT * FROM t JOIN u USING (id)", &cols),
            Err(StarError::Unqualifiable)
        );
        assert_eq!(
            pin_stars("SELECT * FROM generate_series(1, 2)", &[col("g", 0, 0)]),
            Err(StarError::NotTableColumn)
        );
        assert_eq!(
            pin_stars("SELECT * FROM t UNION SELECT * FROM t", &cols),
            Err(StarError::NotSelect)
        );
        assert_eq!(
            pin_stars("DELETE FROM t RETURNING *", &cols),
            Err(StarError::NotSelect)
        );
        assert_eq!(
            pin_stars("SELECT *, * FROM t", &cols),
            Err(StarError::Unqualifiable)
        );
        assert_eq!(
            pin_stars("SELECT x, y, z, * FROM t", &cols),
            Err(StarError::Mismatch)
        );
        assert_eq!(pin_stars("SELECT * FROM", &cols), Err(StarError::Unparsed));
    }
}

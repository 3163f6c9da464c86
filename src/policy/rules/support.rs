//! What several rules share: relaxations, dependents in words, names of
//! constraints and indexes as Postgres would choose them, and catalog
//! queries that keep rewrite steps idempotent.

use crate::policy::context::{Context, Dependent};
use crate::policy::statement::{Name, NewColumn, ObjectKind, Op, Statement};
use crate::policy::tokens::{ident, literal, qualified};
use crate::policy::{Hit, PolicySettings};

/// True when a rule about touching every row of `table` relaxes (new in
/// this transaction/session, or below `small_table_rows`).
pub fn relaxed(table: &Name, ctx: &Context, s: &PolicySettings) -> bool {
    ctx.small_or_new(table, s.small_table_rows)
}

/// The only operation of the statement, when it has exactly one (rewrites
/// handle single-change statements).
pub fn single(st: &Statement) -> Option<&Op> {
    match st.ops.as_slice() {
        [op] => Some(op),
        _ => None,
    }
}

/// Columns the statement defines (CREATE TABLE, ADD COLUMN in any form).
pub fn new_columns(st: &Statement) -> Vec<&NewColumn> {
    let mut out = Vec::new();
    for op in &st.ops {
        match op {
            Op::CreateTable { columns, .. } => out.extend(columns.iter()),
            Op::AddColumn { column, .. } => out.push(column),
            Op::AddForeignKey {
                in_column: Some(c), ..
            }
            | Op::AddUnique {
                in_column: Some(c), ..
            } => out.push(c),
            _ => {}
        }
    }
    out
}

/// "client (explicit, last used T, e.g. `fingerprint`)" for each dependent.
pub fn describe(deps: &[Dependent]) -> String {
    deps.iter()
        .map(|d| {
            format!(
                "{} ({}, last used {}, e.g. `{}`)",
                d.client, d.dependency, d.last_used, d.fingerprint
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The reason of a usage-aware finding, or `None` when nobody else used it.
pub fn in_use(
    ctx: &Context,
    kind: ObjectKind,
    object: &Name,
    column: Option<&str>,
    what: &str,
) -> Option<String> {
    let deps = ctx.usage.dependents(kind, object, column);
    if deps.is_empty() {
        return None;
    }
    let target = match column {
        Some(c) => format!("{object}.{c}"),
        None => object.to_string(),
    };
    Some(format!(
        "{what} {target}, which {} other client(s) used within usage.window: {}",
        deps.len(),
        describe(&deps)
    ))
}

/// The finding of a `DROP <kind>` of an object another client used:
/// the first dropped name of one of `kinds` that is in use.
pub fn dropped_in_use(
    st: &Statement,
    ctx: &Context,
    kinds: &[ObjectKind],
    what: &str,
) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Drop { kind, names, .. } if kinds.contains(kind) => {
                names.iter().find_map(|n| in_use(ctx, *kind, n, None, what))
            }
            _ => None,
        })
        .map(Hit::new)
}

/// Postgres's 63-byte identifier limit, cut on a character boundary.
pub fn pg_name(parts: &[&str], suffix: &str) -> String {
    let mut base = parts.join("_");
    let max = 63 - suffix.len() - 1;
    while base.len() > max {
        base.pop();
    }
    format!("{base}_{suffix}")
}

/// The index `name` in the schema of `table` (indexes live with their table).
pub fn index_in(table: &Name, name: &str) -> Name {
    Name {
        schema: table.schema.clone(),
        name: name.to_string(),
    }
}

/// A query that returns a row when `index` exists and is invalid (left by
/// a failed concurrent build).
pub fn invalid_index(index: &Name) -> String {
    format!(
        "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass({}) AND NOT indisvalid",
        literal(&qualified(index))
    )
}

/// A step that drops an invalid index left by a failed concurrent build.
pub fn drop_invalid_index(index: &Name) -> crate::policy::Step {
    crate::policy::Step::new(
        format!("DROP INDEX CONCURRENTLY IF EXISTS {}", qualified(index)),
        format!(
            "drop {} if an earlier concurrent build left it invalid, so that it is rebuilt",
            qualified(index)
        ),
    )
    .only_if(invalid_index(index))
}

/// A query that returns a row when `table` has no constraint `name`.
pub fn no_constraint(table: &Name, name: &str) -> String {
    format!(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = {}::regclass AND conname = {})",
        literal(&qualified(table)),
        literal(name)
    )
}

/// `ALTER TABLE t VALIDATE CONSTRAINT c` as a step.
pub fn validate(table: &Name, name: &str) -> crate::policy::Step {
    crate::policy::Step::new(
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            qualified(table),
            ident(name)
        ),
        format!(
            "validate {} while reads and writes go on (SHARE UPDATE EXCLUSIVE)",
            ident(name)
        ),
    )
}

/// Tables the statement takes ACCESS EXCLUSIVE on.
pub fn access_exclusive_targets(st: &Statement) -> Vec<Name> {
    let mut out = Vec::new();
    for op in &st.ops {
        match op {
            Op::AddColumn { table, .. }
            | Op::AlterColumnType { table, .. }
            | Op::SetNotNull { table, .. }
            | Op::DropColumn { table, .. }
            | Op::RenameColumn { table, .. }
            | Op::DropDefault { table, .. }
            | Op::DropNotNull { table, .. }
            | Op::DropConstraint { table, .. }
            | Op::AddUnique { table, .. }
            | Op::AddCheck { table, .. }
            | Op::AddExclusion { table }
            | Op::SetTablespace { table }
            | Op::SetLogged { table, .. }
            | Op::AlterIdentity { table, .. }
            | Op::DropExpression { table, .. }
            | Op::DetachPartition {
                table,
                concurrently: false,
                ..
            }
            | Op::RefreshMatview {
                view: table,
                concurrently: false,
            } => out.push(table.clone()),
            Op::Rename {
                kind: ObjectKind::Table,
                name,
                ..
            } => out.push(name.clone()),
            Op::VacuumFull { table: Some(t) } | Op::Cluster { table: Some(t) } => {
                out.push(t.clone())
            }
            Op::Truncate { tables, .. } => out.extend(tables.iter().cloned()),
            Op::Lock { tables, mode } if mode == "access exclusive" => {
                out.extend(tables.iter().cloned())
            }
            Op::Drop {
                kind: ObjectKind::Table,
                names,
                ..
            } => out.extend(names.iter().cloned()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
pub mod testing {
    //! Running one rule on SQL text in tests.

    use super::*;
    use crate::catalog::{Catalog, Column, Table};
    use crate::policy::{Hit, Rule, Usage};

    /// The rule's finding on `sql` with a default context (no catalog, not
    /// in a transaction, PG 15).
    /// A usage-aware rule fires on `used_sql` when another client
    /// used `name` (naming it, its dependency and fingerprint), and neither
    /// without usage nor on `other_sql`.
    pub fn assert_fires_only_when_used(
        rule: &Rule,
        used_sql: &str,
        name: &'static str,
        other_sql: &str,
    ) {
        let found = hit_in(rule, used_sql, &used(name)).expect("in use");
        assert!(
            found.reason.contains("billing@reporter"),
            "{}",
            found.reason
        );
        assert!(
            found.reason.contains("explicit") && found.reason.contains("select a from t"),
            "{}",
            found.reason
        );
        assert!(hit(rule, used_sql).is_none());
        assert!(hit_in(rule, other_sql, &used(name)).is_none());
    }

    pub fn hit(rule: &Rule, sql: &str) -> Option<Hit> {
        hit_in(rule, sql, &Context::default())
    }

    /// The rule's finding on `sql` in `ctx`.
    pub fn hit_in(rule: &Rule, sql: &str, ctx: &Context) -> Option<Hit> {
        (rule.check)(&Statement::new(sql), ctx, &PolicySettings::default())
    }

    /// A catalog with one table `public.t` of `rows` rows and columns `(name, type)`.
    pub fn catalog(rows: i64, columns: &[(&str, &str)]) -> Catalog {
        Catalog::from_tables([Table {
            schema: "public".into(),
            name: "t".into(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, (n, t))| Column {
                    name: n.to_string(),
                    attnum: i as i16 + 1,
                    type_name: t.to_string(),
                    not_null: false,
                })
                .collect(),
            row_estimate: rows,
        }])
    }

    /// A usage lookup where every object named `used` has one other client.
    pub struct UsedBy(pub &'static str);

    impl Usage for UsedBy {
        fn dependents(&self, _: ObjectKind, object: &Name, column: Option<&str>) -> Vec<Dependent> {
            if object.name != self.0 && column != Some(self.0) {
                return Vec::new();
            }
            vec![Dependent {
                client: "billing@reporter".into(),
                dependency: "explicit",
                last_used: "2026-11-28T03:00:00.000Z".into(),
                fingerprint: "select a from t where id = $1".into(),
            }]
        }

        fn has_unique_index(&self, view: &Name) -> bool {
            view.name == self.0
        }
    }

    /// A context whose usage lookup says `used` is in use by another client.
    pub fn used(name: &'static str) -> Context<'static> {
        let usage: &'static UsedBy = Box::leak(Box::new(UsedBy(name)));
        Context {
            usage,
            ..Context::default()
        }
    }

    /// A context inside a transaction block.
    pub fn in_tx() -> Context<'static> {
        Context {
            in_transaction: true,
            ..Context::default()
        }
    }

    /// A context where `t` was created earlier in the session.
    pub fn created_t() -> Context<'static> {
        Context {
            created: vec![Name {
                schema: None,
                name: "t".into(),
            }],
            ..Context::default()
        }
    }
}

//! Facts from sqlparser 0.64's tree (PostgreSqlDialect) of one statement.

use super::statement::{DefaultKind, Name, NewColumn, ObjectKind, Op};
use super::tokens::lex;
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, AlterTypeOperation, AlterViewOperation,
    AssignmentTarget, ColumnDef, ColumnOption, Expr, FromTable, GeneratedAs, Ident, ObjectName,
    ObjectType, Statement as Ast, TableConstraint, TableFactor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Facts and the identifiers the statement creates, or `None` when
/// sqlparser cannot parse the text as exactly one statement.
pub fn facts(sql: &str) -> Option<(Vec<Op>, Vec<String>)> {
    if sql.len() > crate::analysis::MAX_PARSE_LEN {
        return None;
    }
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if parsed.len() != 1 {
        return None;
    }
    let ast = parsed.pop()?;
    let mut idents = Vec::new();
    let ops = ops(&ast, &mut idents);
    Some((ops, idents))
}

/// A name from sqlparser's `ObjectName` (last part the name, the one before it the schema).
pub fn name(o: &ObjectName) -> Name {
    let parts: Vec<String> =
        o.0.iter()
            .map(|p| p.as_ident().map(ident).unwrap_or_else(|| p.to_string()))
            .collect();
    let n = parts.len();
    Name {
        schema: (n >= 2).then(|| parts[n - 2].clone()),
        name: parts.last().cloned().unwrap_or_default(),
    }
}

/// An identifier as Postgres folds it.
pub fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// Functions whose result is fixed for a statement (or a transaction):
/// a default calling only these is stored once, without a rewrite (PG 11+).
const NON_VOLATILE: &[&str] = &[
    "now",
    "current_timestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "current_user",
    "session_user",
    "current_setting",
    "lower",
    "upper",
    "coalesce",
    "concat",
    "to_timestamp",
    "to_date",
    "make_interval",
    "jsonb_build_object",
    "json_build_object",
    "array",
    "interval",
];

/// How a default expression affects the table on `ADD COLUMN`.
pub fn default_kind(expr: &Expr) -> DefaultKind {
    let text = expr.to_string();
    let toks = lex(&text);
    for (i, t) in toks.iter().enumerate() {
        let call = toks.get(i + 1).is_some_and(|n| n.text == "(");
        if call
            && !t.quoted
            && t.text.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !NON_VOLATILE.contains(&t.text.as_str())
        {
            return DefaultKind::Volatile(t.text.clone());
        }
    }
    DefaultKind::NonVolatile
}

fn column(def: &ColumnDef) -> NewColumn {
    let mut c = NewColumn {
        name: ident(&def.name),
        type_name: def.data_type.to_string().to_lowercase(),
        ..NewColumn::default()
    };
    let mut bare = format!("{} {}", def.name, def.data_type);
    for opt in &def.options {
        let keep_in_bare = !matches!(
            opt.option,
            ColumnOption::ForeignKey(_) | ColumnOption::Unique(_) | ColumnOption::PrimaryKey(_)
        );
        if keep_in_bare {
            bare.push_str(&format!(" {opt}"));
        }
        match &opt.option {
            ColumnOption::Default(e) => c.default = Some(default_kind(e)),
            ColumnOption::NotNull => c.not_null = true,
            ColumnOption::Generated {
                generated_as,
                generation_expr,
                ..
            } => {
                if generation_expr.is_some() && matches!(generated_as, GeneratedAs::ExpStored) {
                    c.generated_stored = true;
                } else if generation_expr.is_none() {
                    c.identity = true;
                }
            }
            ColumnOption::ForeignKey(_) => {
                c.references = Some(opt.option.to_string());
                c.constraint_name = opt.name.as_ref().map(ident);
            }
            ColumnOption::Unique(_) => {
                c.unique = true;
                c.constraint_name = opt.name.as_ref().map(ident);
            }
            ColumnOption::PrimaryKey(_) => {
                c.primary_key = true;
                c.constraint_name = opt.name.as_ref().map(ident);
            }
            ColumnOption::Check(_) => c.check = true,
            _ => {}
        }
    }
    c.bare_sql = bare;
    c
}

fn index_columns(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter().map(|c| c.column.expr.to_string()).collect()
}

fn first_identifier(e: &Expr) -> Option<String> {
    lex(&e.to_string())
        .into_iter()
        .find(|t| t.quoted || t.text.starts_with(|c: char| c.is_alphabetic() || c == '_'))
        .map(|t| t.text)
}

fn drop_kind(t: &ObjectType) -> ObjectKind {
    match t {
        ObjectType::Table => ObjectKind::Table,
        ObjectType::View => ObjectKind::View,
        ObjectType::MaterializedView => ObjectKind::MaterializedView,
        ObjectType::Index => ObjectKind::Index,
        ObjectType::Sequence => ObjectKind::Sequence,
        ObjectType::Type => ObjectKind::Type,
        ObjectType::Schema => ObjectKind::Schema,
        ObjectType::Database => ObjectKind::Database,
        _ => ObjectKind::Other,
    }
}

fn table_of(f: &TableFactor) -> Option<Name> {
    match f {
        TableFactor::Table { name: n, .. } => Some(name(n)),
        _ => None,
    }
}

fn ops(ast: &Ast, idents: &mut Vec<String>) -> Vec<Op> {
    match ast {
        Ast::CreateTable(ct) => {
            let columns: Vec<NewColumn> = ct.columns.iter().map(column).collect();
            let table = name(&ct.name);
            idents.push(table.name.clone());
            idents.extend(columns.iter().map(|c| c.name.clone()));
            vec![Op::CreateTable {
                table,
                columns,
                if_not_exists: ct.if_not_exists,
            }]
        }
        Ast::CreateIndex(ci) => {
            let n = ci.name.as_ref().map(|n| name(n).name);
            idents.extend(n.clone());
            vec![Op::CreateIndex {
                table: name(&ci.table_name),
                name: n,
                unique: ci.unique,
                concurrently: ci.concurrently,
                if_not_exists: ci.if_not_exists,
            }]
        }
        Ast::Drop {
            object_type,
            names,
            cascade,
            if_exists,
            ..
        } => {
            let names: Vec<Name> = names.iter().map(name).collect();
            if *object_type == ObjectType::Index {
                vec![Op::DropIndex {
                    names,
                    concurrently: false,
                    if_exists: *if_exists,
                    cascade: *cascade,
                }]
            } else {
                vec![Op::Drop {
                    kind: drop_kind(object_type),
                    names,
                    cascade: *cascade,
                    if_exists: *if_exists,
                }]
            }
        }
        Ast::DropFunction(f) => vec![Op::Drop {
            kind: ObjectKind::Function,
            names: f.func_desc.iter().map(|d| name(&d.name)).collect(),
            cascade: f.drop_behavior.is_some_and(|b| b.to_string() == "CASCADE"),
            if_exists: f.if_exists,
        }],
        Ast::DropProcedure {
            proc_desc,
            if_exists,
            ..
        } => vec![Op::Drop {
            kind: ObjectKind::Function,
            names: proc_desc.iter().map(|d| name(&d.name)).collect(),
            cascade: false,
            if_exists: *if_exists,
        }],
        Ast::DropDomain(d) => vec![Op::Drop {
            kind: ObjectKind::Type,
            names: vec![name(&d.name)],
            cascade: d.drop_behavior.is_some_and(|b| b.to_string() == "CASCADE"),
            if_exists: d.if_exists,
        }],
        Ast::DropExtension(e) => vec![Op::Drop {
            kind: ObjectKind::Extension,
            names: e
                .names
                .iter()
                .map(|i| Name {
                    schema: None,
                    name: ident(i),
                })
                .collect(),
            cascade: false,
            if_exists: e.if_exists,
        }],
        Ast::AlterTable(at) => {
            let table = name(&at.name);
            at.operations
                .iter()
                .filter_map(|op| alter_table(&table, op, idents))
                .collect()
        }
        Ast::AlterView(v) => {
            let kind = if v.materialized {
                ObjectKind::MaterializedView
            } else {
                ObjectKind::View
            };
            match &v.operation {
                AlterViewOperation::RenameTo { new_name } => vec![Op::Rename {
                    kind,
                    name: name(&v.name),
                    to: name(new_name).name,
                }],
                AlterViewOperation::SetSchema { schema_name } => vec![Op::SetSchema {
                    kind,
                    name: name(&v.name),
                    schema: name(schema_name).name,
                }],
                _ => Vec::new(),
            }
        }
        // ALTER FUNCTION / AGGREGATE and ALTER SCHEMA: the renames and moves
        // the usage-aware rules read.
        Ast::AlterFunction(f) => match &f.operation {
            sqlparser::ast::AlterFunctionOperation::RenameTo { new_name } => vec![Op::Rename {
                kind: ObjectKind::Function,
                name: name(&f.function.name),
                to: ident(new_name),
            }],
            sqlparser::ast::AlterFunctionOperation::SetSchema { schema_name } => {
                vec![Op::SetSchema {
                    kind: ObjectKind::Function,
                    name: name(&f.function.name),
                    schema: name(schema_name).name,
                }]
            }
            _ => Vec::new(),
        },
        Ast::AlterSchema(a) => a
            .operations
            .iter()
            .filter_map(|op| match op {
                sqlparser::ast::AlterSchemaOperation::Rename { name: to } => Some(Op::Rename {
                    kind: ObjectKind::Schema,
                    name: name(&a.name),
                    to: name(to).name,
                }),
                _ => None,
            })
            .collect(),
        Ast::AlterType(t) => match &t.operation {
            AlterTypeOperation::Rename(r) => vec![Op::Rename {
                kind: ObjectKind::Type,
                name: name(&t.name),
                to: ident(&r.new_name),
            }],
            AlterTypeOperation::RenameValue(_) => vec![Op::EnumRenameValue { ty: name(&t.name) }],
            AlterTypeOperation::AddValue(a) => vec![Op::EnumAddValue {
                ty: name(&t.name),
                positioned: a.position.is_some(),
            }],
        },
        Ast::CreateDomain(d) => vec![Op::CreateDomain {
            name: name(&d.name),
            has_constraint: !d.constraints.is_empty(),
        }],
        Ast::Truncate(t) => vec![Op::Truncate {
            tables: t.table_names.iter().map(|x| name(&x.name)).collect(),
            cascade: t
                .cascade
                .as_ref()
                .is_some_and(|c| c.to_string().eq_ignore_ascii_case("cascade")),
        }],
        Ast::Lock(l) => {
            let text = ast.to_string().to_lowercase();
            let mode = text
                .split_once(" in ")
                .and_then(|(_, rest)| rest.split_once(" mode"))
                .map(|(m, _)| m.trim().to_string())
                .unwrap_or_else(|| "access exclusive".to_string());
            vec![Op::Lock {
                tables: l.tables.iter().map(|x| name(&x.name)).collect(),
                mode,
            }]
        }
        Ast::RefreshMaterializedView(r) => vec![Op::RefreshMatview {
            view: name(&r.name),
            concurrently: r.concurrently,
        }],
        Ast::Vacuum(v) if v.full => vec![Op::VacuumFull {
            table: v.table_name.as_ref().map(name),
        }],
        Ast::Update(u) => {
            let Some(table) = table_of(&u.table.relation) else {
                return Vec::new();
            };
            let mut columns = Vec::new();
            for a in &u.assignments {
                match &a.target {
                    AssignmentTarget::ColumnName(c) => columns.push(name(c).name),
                    AssignmentTarget::Tuple(cs) => columns.extend(cs.iter().map(|c| name(c).name)),
                }
            }
            let mut out = vec![Op::Update {
                table: table.clone(),
                columns,
            }];
            if u.selection.is_none() {
                out.push(Op::UpdateAll { table });
            }
            out
        }
        Ast::Delete(d) => {
            let from = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            match (
                from.first().and_then(|t| table_of(&t.relation)),
                &d.selection,
            ) {
                (Some(table), None) if d.using.is_none() => vec![Op::DeleteAll { table }],
                _ => Vec::new(),
            }
        }
        Ast::StartTransaction { .. } => vec![Op::Begin],
        Ast::Commit { .. } => vec![Op::Commit],
        Ast::Rollback {
            savepoint: None, ..
        } => vec![Op::Rollback],
        _ => Vec::new(),
    }
}

fn alter_table(table: &Name, op: &AlterTableOperation, idents: &mut Vec<String>) -> Option<Op> {
    let t = table.clone();
    Some(match op {
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => match constraint {
            TableConstraint::ForeignKey(fk) => {
                idents.extend(fk.name.as_ref().map(ident));
                Op::AddForeignKey {
                    table: t,
                    constraint: fk.name.as_ref().map(ident),
                    columns: fk.columns.iter().map(ident).collect(),
                    not_valid: *not_valid,
                    in_column: None,
                }
            }
            TableConstraint::Check(c) => {
                idents.extend(c.name.as_ref().map(ident));
                Op::AddCheck {
                    table: t,
                    constraint: c.name.as_ref().map(ident),
                    first_column: first_identifier(&c.expr),
                    not_valid: *not_valid,
                }
            }
            TableConstraint::Unique(u) => Op::AddUnique {
                table: t,
                constraint: u.name.as_ref().map(ident),
                primary: false,
                columns: index_columns(&u.columns),
                using_index: false,
                in_column: None,
            },
            TableConstraint::PrimaryKey(p) => Op::AddUnique {
                table: t,
                constraint: p.name.as_ref().map(ident),
                primary: true,
                columns: index_columns(&p.columns),
                using_index: false,
                in_column: None,
            },
            TableConstraint::Exclude(_) => Op::AddExclusion { table: t },
            _ => return None,
        },
        AlterTableOperation::AddColumn {
            column_def,
            if_not_exists,
            ..
        } => {
            let c = column(column_def);
            idents.push(c.name.clone());
            if c.references.is_some() {
                Op::AddForeignKey {
                    table: t,
                    constraint: c.constraint_name.clone(),
                    columns: vec![c.name.clone()],
                    not_valid: false,
                    in_column: Some(c),
                }
            } else if c.unique || c.primary_key {
                Op::AddUnique {
                    table: t,
                    constraint: c.constraint_name.clone(),
                    primary: c.primary_key,
                    columns: vec![c.name.clone()],
                    using_index: false,
                    in_column: Some(c),
                }
            } else {
                Op::AddColumn {
                    table: t,
                    column: c,
                    if_not_exists: *if_not_exists,
                }
            }
        }
        AlterTableOperation::DropConstraint { name: n, .. } => Op::DropConstraint {
            table: t,
            name: ident(n),
        },
        AlterTableOperation::DropColumn { column_names, .. } => Op::DropColumn {
            table: t,
            columns: column_names.iter().map(ident).collect(),
        },
        AlterTableOperation::AttachPartitionOf { partition, .. } => Op::AttachPartition {
            table: t,
            partition: name(partition),
        },
        AlterTableOperation::DetachPartitionOf { partition, mode } => Op::DetachPartition {
            table: t,
            partition: name(partition),
            concurrently: mode
                .as_ref()
                .is_some_and(|m| m.to_string().eq_ignore_ascii_case("concurrently")),
        },
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => Op::RenameColumn {
            table: t,
            from: ident(old_column_name),
            to: ident(new_column_name),
        },
        AlterTableOperation::RenameTable { table_name } => Op::Rename {
            kind: ObjectKind::Table,
            name: t,
            to: table_name
                .to_string()
                .trim_start_matches("TO ")
                .trim_start_matches("AS ")
                .to_string(),
        },
        AlterTableOperation::SetLogged => Op::SetLogged {
            table: t,
            logged: true,
        },
        AlterTableOperation::SetUnlogged => Op::SetLogged {
            table: t,
            logged: false,
        },
        AlterTableOperation::AlterColumn { column_name, op } => {
            let column = ident(column_name);
            match op {
                AlterColumnOperation::SetNotNull => Op::SetNotNull { table: t, column },
                AlterColumnOperation::DropNotNull => Op::DropNotNull { table: t, column },
                AlterColumnOperation::DropDefault => Op::DropDefault { table: t, column },
                AlterColumnOperation::SetDataType { data_type, .. } => Op::AlterColumnType {
                    table: t,
                    column,
                    new_type: data_type.to_string().to_lowercase(),
                },
                AlterColumnOperation::AddGenerated { .. } => Op::AlterIdentity { table: t, column },
                _ => return None,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Op {
        let (mut ops, _) = facts(sql).expect("parses");
        assert_eq!(ops.len(), 1, "{ops:?}");
        ops.remove(0)
    }

    #[test]
    fn defaults_are_classified_by_volatility() {
        let d = |sql: &str| match one(sql) {
            Op::AddColumn { column, .. } => column.default,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            d("ALTER TABLE t ADD COLUMN a int DEFAULT -1"),
            Some(DefaultKind::NonVolatile)
        );
        assert_eq!(
            d("ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now()"),
            Some(DefaultKind::NonVolatile)
        );
        assert_eq!(
            d("ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid()"),
            Some(DefaultKind::Volatile("gen_random_uuid".into()))
        );
    }

    #[test]
    fn column_constraints_become_their_own_facts() {
        assert!(matches!(
            one("ALTER TABLE t ADD COLUMN o int REFERENCES o (id)"),
            Op::AddForeignKey {
                in_column: Some(_),
                ..
            }
        ));
        assert!(matches!(
            one("ALTER TABLE t ADD COLUMN o int UNIQUE"),
            Op::AddUnique {
                in_column: Some(_),
                primary: false,
                ..
            }
        ));
        assert_eq!(
            one("ALTER TABLE \"T\" RENAME TO u"),
            Op::Rename {
                kind: ObjectKind::Table,
                name: Name {
                    schema: None,
                    name: "T".into()
                },
                to: "u".into()
            }
        );
        assert!(facts("REINDEX TABLE t").is_none());
    }
}

//! The facts about one statement that the rules read: what it does to
//! which objects, built from sqlparser's tree (`from_ast`) or, when the
//! parser fails, from the tokens (`lexical`), so that DDL never escapes the
//! policy because the parser failed.

use super::tokens::{lex, Tok};
use crate::analysis::{RelationName, StatementKind};

/// A name as the statement wrote it (schema when qualified).
pub type Name = RelationName;

/// Kinds of objects that are dropped, renamed or moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Table.
    Table,
    /// View.
    View,
    /// Materialized view.
    MaterializedView,
    /// Index.
    Index,
    /// Sequence.
    Sequence,
    /// Function, procedure or aggregate.
    Function,
    /// Type or domain.
    Type,
    /// Schema.
    Schema,
    /// Extension.
    Extension,
    /// Database.
    Database,
    /// Anything else (collation, role, ...): no rule reads it.
    Other,
}

impl ObjectKind {
    /// Lower-case SQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Index => "index",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Function => "function",
            ObjectKind::Type => "type",
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::Database => "database",
            ObjectKind::Other => "object",
        }
    }
}

/// A column default, as far as rewriting the table is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultKind {
    /// A constant or a stable function (`-1`, `'x'`, `now()`): PG 11+ stores it
    /// in the catalog without touching rows.
    NonVolatile,
    /// A volatile function (or one ddlguard cannot vouch for), named.
    Volatile(String),
}

/// A column as `CREATE TABLE` or `ADD COLUMN` defines it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewColumn {
    /// Column name.
    pub name: String,
    /// Type as written, lower case (`varchar(20)`, `bigserial`).
    pub type_name: String,
    /// Its default, if any.
    pub default: Option<DefaultKind>,
    /// `GENERATED ALWAYS AS (...) STORED`.
    pub generated_stored: bool,
    /// `GENERATED ... AS IDENTITY`.
    pub identity: bool,
    /// `NOT NULL`.
    pub not_null: bool,
    /// The `REFERENCES other (col) [ON DELETE ...]` clause, when present.
    pub references: Option<String>,
    /// The name given with `CONSTRAINT name` to its REFERENCES / UNIQUE / PRIMARY KEY.
    pub constraint_name: Option<String>,
    /// `UNIQUE`.
    pub unique: bool,
    /// `PRIMARY KEY`.
    pub primary_key: bool,
    /// `CHECK (...)`.
    pub check: bool,
    /// The column definition without its REFERENCES / UNIQUE / PRIMARY KEY
    /// (`name type [DEFAULT ...] [NOT NULL] ...`).
    pub bare_sql: String,
}

impl NewColumn {
    /// `serial`, `bigserial`, `smallserial` (and their aliases).
    pub fn is_serial(&self) -> bool {
        matches!(
            self.type_name.as_str(),
            "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
        )
    }
}

/// One thing a statement does. An `ALTER TABLE` with several actions
/// gives several.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields are named for what they hold; each variant is documented"
)]
pub enum Op {
    /// `CREATE TABLE`.
    CreateTable {
        table: Name,
        columns: Vec<NewColumn>,
        if_not_exists: bool,
    },
    /// `CREATE [UNIQUE] INDEX`.
    CreateIndex {
        table: Name,
        name: Option<String>,
        unique: bool,
        concurrently: bool,
        if_not_exists: bool,
    },
    /// `DROP INDEX`.
    DropIndex {
        names: Vec<Name>,
        concurrently: bool,
        if_exists: bool,
        cascade: bool,
    },
    /// `kind` is `index`, `table`, `schema`, `database` or `system`.
    Reindex {
        kind: String,
        target: Option<Name>,
        concurrently: bool,
    },
    /// `ALTER TABLE ... DETACH PARTITION`.
    DetachPartition {
        table: Name,
        partition: Name,
        concurrently: bool,
    },
    /// `ALTER TABLE ... ATTACH PARTITION`.
    AttachPartition { table: Name, partition: Name },
    /// `ADD FOREIGN KEY`, or `ADD COLUMN ... REFERENCES` (`in_column`).
    AddForeignKey {
        table: Name,
        constraint: Option<String>,
        columns: Vec<String>,
        not_valid: bool,
        in_column: Option<NewColumn>,
    },
    /// `ADD CHECK`.
    AddCheck {
        table: Name,
        constraint: Option<String>,
        first_column: Option<String>,
        not_valid: bool,
    },
    /// `ALTER DOMAIN ... ADD CONSTRAINT`.
    DomainAddConstraint {
        domain: Name,
        constraint: Option<String>,
        not_valid: bool,
    },
    /// `ALTER COLUMN ... SET NOT NULL`.
    SetNotNull { table: Name, column: String },
    /// `ADD UNIQUE` / `ADD PRIMARY KEY`, or `ADD COLUMN ... UNIQUE` (`in_column`).
    AddUnique {
        table: Name,
        constraint: Option<String>,
        primary: bool,
        columns: Vec<String>,
        using_index: bool,
        in_column: Option<NewColumn>,
    },
    /// `ADD EXCLUDE`.
    AddExclusion { table: Name },
    /// `ADD COLUMN` (without REFERENCES / UNIQUE, which give their own facts).
    AddColumn {
        table: Name,
        column: NewColumn,
        if_not_exists: bool,
    },
    /// `ALTER COLUMN ... TYPE`.
    AlterColumnType {
        table: Name,
        column: String,
        new_type: String,
    },
    /// `SET TABLESPACE`.
    SetTablespace { table: Name },
    /// `SET LOGGED` / `SET UNLOGGED`.
    SetLogged { table: Name, logged: bool },
    /// `VACUUM FULL`.
    VacuumFull { table: Option<Name> },
    /// `CLUSTER`.
    Cluster { table: Option<Name> },
    /// `TRUNCATE`.
    Truncate { tables: Vec<Name>, cascade: bool },
    /// `LOCK TABLE`; `mode` in lower case (`access exclusive` by default).
    Lock { tables: Vec<Name>, mode: String },
    /// `REFRESH MATERIALIZED VIEW`.
    RefreshMatview { view: Name, concurrently: bool },
    /// `UPDATE` without WHERE.
    UpdateAll { table: Name },
    /// `DELETE` without WHERE or USING.
    DeleteAll { table: Name },
    /// Any `UPDATE`, with the columns it assigns.
    Update { table: Name, columns: Vec<String> },
    /// `DROP` of anything but an index.
    Drop {
        kind: ObjectKind,
        names: Vec<Name>,
        cascade: bool,
        if_exists: bool,
    },
    /// `DROP COLUMN`.
    DropColumn { table: Name, columns: Vec<String> },
    /// `RENAME COLUMN`.
    RenameColumn {
        table: Name,
        from: String,
        to: String,
    },
    /// `RENAME TO` of a table, view, sequence, function, type or schema.
    Rename {
        kind: ObjectKind,
        name: Name,
        to: String,
    },
    /// `SET SCHEMA`.
    SetSchema {
        kind: ObjectKind,
        name: Name,
        schema: String,
    },
    /// `ALTER COLUMN ... DROP DEFAULT`.
    DropDefault { table: Name, column: String },
    /// Identity changes: `ADD GENERATED`, `SET GENERATED`, `DROP IDENTITY`, `RESTART`.
    AlterIdentity { table: Name, column: String },
    /// `ALTER TYPE ... RENAME VALUE`.
    EnumRenameValue { ty: Name },
    /// `ALTER TYPE ... ADD VALUE` (`positioned`: BEFORE/AFTER).
    EnumAddValue { ty: Name, positioned: bool },
    /// `ALTER COLUMN ... DROP NOT NULL`.
    DropNotNull { table: Name, column: String },
    /// `DROP CONSTRAINT`.
    DropConstraint { table: Name, name: String },
    /// `ALTER COLUMN ... DROP EXPRESSION`.
    DropExpression { table: Name, column: String },
    /// `CREATE DOMAIN`.
    CreateDomain { name: Name, has_constraint: bool },
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK` (not to a savepoint).
    Rollback,
}

impl Op {
    /// The table (or other relation) the operation is about, if one.
    pub fn table(&self) -> Option<&Name> {
        use Op::*;
        match self {
            CreateTable { table, .. }
            | CreateIndex { table, .. }
            | DetachPartition { table, .. }
            | AttachPartition { table, .. }
            | AddForeignKey { table, .. }
            | AddCheck { table, .. }
            | SetNotNull { table, .. }
            | AddUnique { table, .. }
            | AddExclusion { table }
            | AddColumn { table, .. }
            | AlterColumnType { table, .. }
            | SetTablespace { table }
            | SetLogged { table, .. }
            | UpdateAll { table }
            | DeleteAll { table }
            | Update { table, .. }
            | DropColumn { table, .. }
            | RenameColumn { table, .. }
            | DropDefault { table, .. }
            | AlterIdentity { table, .. }
            | DropNotNull { table, .. }
            | DropConstraint { table, .. }
            | DropExpression { table, .. } => Some(table),
            VacuumFull { table } | Cluster { table } => table.as_ref(),
            RefreshMatview { view, .. } => Some(view),
            _ => None,
        }
    }
}

/// One statement and its facts.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The client's text of this one statement.
    pub text: String,
    /// Its tokens, with positions in `text`.
    pub tokens: Vec<Tok>,
    /// False when sqlparser could not parse it (facts then come from tokens).
    pub parsed: bool,
    /// Broad class (from the lexical classifier, which never fails).
    pub kind: StatementKind,
    /// Leading command, e.g. `alter table`, `create index`.
    pub command: String,
    /// What it does.
    pub ops: Vec<Op>,
    /// Identifiers the statement creates (tables, columns, indexes, constraints).
    pub new_identifiers: Vec<String>,
}

impl Statement {
    /// Builds the facts of one statement (one statement of a multi-statement
    /// Query: the caller splits them).
    pub fn new(sql: &str) -> Statement {
        let tokens = lex(sql);
        let class = super::lexical::classify(sql);
        let (parsed, ops, new_identifiers) = match super::from_ast::facts(sql) {
            Some((ops, idents)) => (true, ops, idents),
            None => (false, super::lexical::facts(&tokens), Vec::new()),
        };
        Statement {
            text: sql.to_string(),
            tokens,
            parsed,
            kind: class.kind,
            command: class.command,
            ops,
            new_identifiers,
        }
    }

    /// Tables this statement creates (the gate adds them to
    /// `Context::created` once the statement succeeded).
    pub fn created_tables(&self) -> Vec<Name> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::CreateTable { table, .. } => Some(table.clone()),
                _ => None,
            })
            .collect()
    }

    /// Tables this statement takes ACCESS EXCLUSIVE on (the gate adds them
    /// to `Context::exclusive_locked` inside a transaction block).
    pub fn exclusive_tables(&self) -> Vec<Name> {
        super::rules::support::access_exclusive_targets(self)
    }

    /// The text with a trailing `;` and whitespace removed, for splicing.
    pub fn body(&self) -> &str {
        self.text.trim_end().trim_end_matches(';').trim_end()
    }

    /// The first token that is keyword `kw`.
    pub fn keyword(&self, kw: &str) -> Option<&Tok> {
        self.tokens.iter().find(|t| t.is(kw))
    }

    /// The text with `insert` placed right after the first keyword `kw`
    /// (`None` when the keyword is absent).
    pub fn insert_after(&self, kw: &str, insert: &str) -> Option<String> {
        let at = self.keyword(kw)?.end;
        let body = self.body();
        if at > body.len() {
            return None;
        }
        Some(format!("{}{}{}", &body[..at], insert, &body[at..]))
    }
}

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
    /// `REFERENCES other (col)` as written, when present.
    pub references: Option<String>,
    /// `UNIQUE`.
    pub unique: bool,
    /// `PRIMARY KEY`.
    pub primary_key: bool,
    /// `CHECK (...)`.
    pub check: bool,
    /// The column definition without its constraints (`name type [DEFAULT ...]`).
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
#[allow(missing_docs)]
pub enum Op {
    CreateTable {
        table: Name,
        columns: Vec<NewColumn>,
        if_not_exists: bool,
    },
    CreateIndex {
        table: Name,
        name: Option<String>,
        unique: bool,
        concurrently: bool,
        if_not_exists: bool,
    },
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
    DetachPartition {
        table: Name,
        partition: Name,
        concurrently: bool,
    },
    AttachPartition {
        table: Name,
        partition: Name,
    },
    AddForeignKey {
        table: Name,
        constraint: Option<String>,
        columns: Vec<String>,
        not_valid: bool,
        in_column: Option<NewColumn>,
    },
    AddCheck {
        table: Name,
        constraint: Option<String>,
        first_column: Option<String>,
        not_valid: bool,
    },
    DomainAddConstraint {
        domain: Name,
        constraint: Option<String>,
        not_valid: bool,
    },
    SetNotNull {
        table: Name,
        column: String,
    },
    AddUnique {
        table: Name,
        constraint: Option<String>,
        primary: bool,
        columns: Vec<String>,
        using_index: bool,
        in_column: Option<NewColumn>,
    },
    AddExclusion {
        table: Name,
    },
    AddColumn {
        table: Name,
        column: NewColumn,
        if_not_exists: bool,
    },
    AlterColumnType {
        table: Name,
        column: String,
        new_type: String,
    },
    SetTablespace {
        table: Name,
    },
    SetLogged {
        table: Name,
        logged: bool,
    },
    VacuumFull {
        table: Option<Name>,
    },
    Cluster {
        table: Option<Name>,
    },
    Truncate {
        tables: Vec<Name>,
        cascade: bool,
    },
    Lock {
        tables: Vec<Name>,
        mode: String,
    },
    RefreshMatview {
        view: Name,
        concurrently: bool,
    },
    UpdateAll {
        table: Name,
    },
    DeleteAll {
        table: Name,
    },
    Update {
        table: Name,
        columns: Vec<String>,
    },
    Drop {
        kind: ObjectKind,
        names: Vec<Name>,
        cascade: bool,
        if_exists: bool,
    },
    DropColumn {
        table: Name,
        columns: Vec<String>,
    },
    RenameColumn {
        table: Name,
        from: String,
        to: String,
    },
    Rename {
        kind: ObjectKind,
        name: Name,
        to: String,
    },
    SetSchema {
        kind: ObjectKind,
        name: Name,
        schema: String,
    },
    DropDefault {
        table: Name,
        column: String,
    },
    AlterIdentity {
        table: Name,
        column: String,
    },
    EnumRenameValue {
        ty: Name,
    },
    EnumAddValue {
        ty: Name,
        positioned: bool,
    },
    DropNotNull {
        table: Name,
        column: String,
    },
    DropConstraint {
        table: Name,
        name: String,
    },
    DropExpression {
        table: Name,
        column: String,
    },
    CreateDomain {
        name: Name,
        has_constraint: bool,
    },
    Begin,
    Commit,
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

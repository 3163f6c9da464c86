//! What an analysis says about a statement, before and after names are
//! resolved against the catalog.

use super::Fingerprint;

/// The broad class of a statement.
///
/// Ordered by strength: the kind of a text holding several statements is
/// the strongest of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum StatementKind {
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...
    Transaction,
    /// SET, SHOW, LISTEN, EXPLAIN, PREPARE, LOCK, ...
    #[default]
    Utility,
    /// SELECT and other statements that only read.
    Read,
    /// INSERT, UPDATE, DELETE, MERGE, COPY FROM, TRUNCATE.
    Write,
    /// VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW: they
    /// change no schema (the catalog is not reloaded), but REINDEX, CLUSTER,
    /// VACUUM FULL and a non-concurrent REFRESH take strong locks, so a DDL
    /// policy may want to see them (the classifier's `command` says which).
    Maintenance,
    /// GRANT, REVOKE, ALTER DEFAULT PRIVILEGES, REASSIGN OWNED, and
    /// CREATE/ALTER/DROP ROLE (USER, GROUP): privileges, not the shape.
    Privilege,
    /// Statements that change the schema: CREATE, ALTER, DROP, COMMENT ON,
    /// SECURITY LABEL, IMPORT FOREIGN SCHEMA, ...
    Ddl,
}

impl StatementKind {
    /// Lower-case name used in reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Transaction => "transaction",
            StatementKind::Utility => "utility",
            StatementKind::Read => "read",
            StatementKind::Write => "write",
            StatementKind::Maintenance => "maintenance",
            StatementKind::Privilege => "privilege",
            StatementKind::Ddl => "ddl",
        }
    }
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The statement reads the object.
    Read,
    /// The statement writes (or alters) the object.
    Write,
}

/// A relation name as written: schema when qualified, identifiers folded as
/// Postgres folds them (unquoted to lower case, quoted kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationName {
    /// Explicit schema, if the statement qualified the name.
    pub schema: Option<String>,
    /// Relation name.
    pub name: String,
}

impl std::fmt::Display for RelationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl crate::catalog::RelationRef for RelationName {
    fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// A use of a relation as a whole.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationUse {
    /// The relation.
    pub relation: RelationName,
    /// Read or write.
    pub mode: Mode,
    /// The statement depends on all of its columns without naming them
    /// (`SELECT *`, `t.*`, `RETURNING *`, `INSERT` without a column list,
    /// `COPY t` without one).
    pub all_columns: bool,
}

/// A column named by the statement; `scopes` lists the relations it may
/// belong to, innermost query scope first, until the catalog decides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnUse {
    /// Column name.
    pub column: String,
    /// Candidate relations per scope, innermost first.
    pub scopes: Vec<Vec<RelationName>>,
    /// The statement named the relation (`t.col`) or the syntax fixes it
    /// (INSERT column lists, SET targets): no catalog check needed.
    pub certain: bool,
    /// Read or write.
    pub mode: Mode,
}

/// Everything ddlguard knows about one statement text (a simple Query may
/// hold several statements; their uses are merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The normalized text and its id.
    pub fingerprint: Fingerprint,
    /// The strongest kind among the statements.
    pub kind: StatementKind,
    /// False when sqlparser could not parse the text; the kind then comes
    /// from the lexical classifier and uses may be incomplete.
    pub parsed: bool,
    /// Relations used.
    pub relations: Vec<RelationUse>,
    /// Columns named.
    pub columns: Vec<ColumnUse>,
    /// Functions called, sequences read through `nextval` and the like,
    /// and types cast to (user types only; built-in type names are not kept).
    pub objects: Vec<ObjectUse>,
    /// Some statement of the text may change `search_path` (decided once
    /// per shape; the raw text is then parsed for the new value).
    pub changes_search_path: bool,
    /// The statements of the text the DDL log records (schema changes,
    /// maintenance, privileges), each classified on its own, in order:
    /// `SET lock_timeout ...; ALTER TABLE ...` holds the ALTER only.
    pub ddl: Vec<super::classify::Classified>,
}

impl Analysis {
    /// True when some statement of the text, if it succeeds, can change
    /// the catalog snapshot (see `Classified::changes_catalog`).
    pub fn changes_catalog(&self) -> bool {
        self.ddl.iter().any(|c| c.changes_catalog())
    }
}

/// What kind of non-relation object a statement uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectUseKind {
    /// A function or procedure it calls (`f(...)`, `CALL p(...)`, `FROM f(...)`).
    Function,
    /// A sequence named in `nextval('s')`, `currval('s')` or `setval('s', ...)`.
    Sequence,
    /// A type named in a cast (`x::t`, `CAST(x AS t)`).
    Type,
}

/// A function, sequence or type a statement uses, so that the policy can
/// tell who still depends on it before it is dropped, renamed or moved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectUse {
    /// Function, sequence or type.
    pub kind: ObjectUseKind,
    /// The name as written, folded as Postgres folds identifiers.
    pub name: RelationName,
}

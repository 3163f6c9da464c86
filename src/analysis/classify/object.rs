//! The kinds of object a DDL statement can name, and the keywords that
//! name them.

use super::lex::Tok;

/// What kind of object a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ObjectKind {
    /// A table (plain, partitioned, temporary or unlogged: the keywords do
    /// not tell a partitioned table apart).
    Table,
    /// A foreign table.
    ForeignTable,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A sequence.
    Sequence,
    /// An index.
    Index,
    /// A function.
    Function,
    /// A procedure.
    Procedure,
    /// A function or procedure (`ROUTINE`).
    Routine,
    /// An aggregate.
    Aggregate,
    /// A trigger (also a constraint trigger).
    Trigger,
    /// An event trigger.
    EventTrigger,
    /// A rewrite rule.
    Rule,
    /// A type.
    Type,
    /// A domain.
    Domain,
    /// A schema.
    Schema,
    /// An extension.
    Extension,
    /// A row-level security policy.
    Policy,
    /// A logical replication publication.
    Publication,
    /// A logical replication subscription.
    Subscription,
    /// A role (`ROLE`, `USER` or `GROUP`).
    Role,
    /// A database.
    Database,
    /// A tablespace.
    Tablespace,
    /// A foreign server.
    Server,
    /// A foreign-data wrapper.
    ForeignDataWrapper,
    /// A user mapping.
    UserMapping,
    /// A collation.
    Collation,
    /// An encoding conversion.
    Conversion,
    /// An operator.
    Operator,
    /// An operator class.
    OperatorClass,
    /// An operator family.
    OperatorFamily,
    /// A cast.
    Cast,
    /// Extended statistics.
    Statistics,
    /// A text search configuration.
    TextSearchConfiguration,
    /// A text search dictionary.
    TextSearchDictionary,
    /// A text search parser.
    TextSearchParser,
    /// A text search template.
    TextSearchTemplate,
    /// A procedural language.
    Language,
    /// A transform.
    Transform,
    /// An access method.
    AccessMethod,
    /// Default privileges (`ALTER DEFAULT PRIVILEGES`).
    DefaultPrivileges,
    /// A large object.
    LargeObject,
    /// A column (`COMMENT ON COLUMN t.c`, `SECURITY LABEL ON COLUMN`).
    Column,
    /// A table constraint (`COMMENT ON CONSTRAINT c ON t`).
    Constraint,
    /// Everything a role owns (`DROP OWNED`, `REASSIGN OWNED`).
    Owned,
    /// The server configuration (`ALTER SYSTEM`).
    System,
    /// A configuration parameter (`GRANT ... ON PARAMETER`).
    Parameter,
    /// The statement names no object, or one the classifier does not know.
    #[default]
    None,
}

/// The keywords naming each kind, longest first so that `materialized
/// view` wins over `view` and `user mapping` over `user`.
const KEYWORDS: &[(&[&str], ObjectKind)] = &[
    (
        &["text", "search", "configuration"],
        ObjectKind::TextSearchConfiguration,
    ),
    (
        &["text", "search", "dictionary"],
        ObjectKind::TextSearchDictionary,
    ),
    (&["text", "search", "parser"], ObjectKind::TextSearchParser),
    (
        &["text", "search", "template"],
        ObjectKind::TextSearchTemplate,
    ),
    (
        &["foreign", "data", "wrapper"],
        ObjectKind::ForeignDataWrapper,
    ),
    (&["materialized", "view"], ObjectKind::MaterializedView),
    (&["foreign", "table"], ObjectKind::ForeignTable),
    (&["foreign", "server"], ObjectKind::Server),
    (&["event", "trigger"], ObjectKind::EventTrigger),
    (&["constraint", "trigger"], ObjectKind::Trigger),
    (&["operator", "class"], ObjectKind::OperatorClass),
    (&["operator", "family"], ObjectKind::OperatorFamily),
    (&["user", "mapping"], ObjectKind::UserMapping),
    (&["access", "method"], ObjectKind::AccessMethod),
    (&["default", "privileges"], ObjectKind::DefaultPrivileges),
    (&["large", "object"], ObjectKind::LargeObject),
    (&["procedural", "language"], ObjectKind::Language),
    (&["table"], ObjectKind::Table),
    (&["index"], ObjectKind::Index),
    (&["view"], ObjectKind::View),
    (&["sequence"], ObjectKind::Sequence),
    (&["function"], ObjectKind::Function),
    (&["procedure"], ObjectKind::Procedure),
    (&["routine"], ObjectKind::Routine),
    (&["aggregate"], ObjectKind::Aggregate),
    (&["trigger"], ObjectKind::Trigger),
    (&["rule"], ObjectKind::Rule),
    (&["type"], ObjectKind::Type),
    (&["domain"], ObjectKind::Domain),
    (&["schema"], ObjectKind::Schema),
    (&["extension"], ObjectKind::Extension),
    (&["policy"], ObjectKind::Policy),
    (&["publication"], ObjectKind::Publication),
    (&["subscription"], ObjectKind::Subscription),
    (&["role"], ObjectKind::Role),
    (&["user"], ObjectKind::Role),
    (&["group"], ObjectKind::Role),
    (&["database"], ObjectKind::Database),
    (&["tablespace"], ObjectKind::Tablespace),
    (&["server"], ObjectKind::Server),
    (&["collation"], ObjectKind::Collation),
    (&["conversion"], ObjectKind::Conversion),
    (&["operator"], ObjectKind::Operator),
    (&["cast"], ObjectKind::Cast),
    (&["statistics"], ObjectKind::Statistics),
    (&["language"], ObjectKind::Language),
    (&["transform"], ObjectKind::Transform),
    (&["column"], ObjectKind::Column),
    (&["constraint"], ObjectKind::Constraint),
    (&["owned"], ObjectKind::Owned),
    (&["system"], ObjectKind::System),
    (&["parameter"], ObjectKind::Parameter),
];

impl ObjectKind {
    /// The kind named by the words at the start of `toks`, and how many
    /// tokens it took.
    pub fn from_words(toks: &[Tok]) -> Option<(ObjectKind, usize)> {
        KEYWORDS.iter().find_map(|(kw, kind)| {
            let hit = kw.len() <= toks.len() && kw.iter().zip(toks).all(|(k, t)| t.is(k));
            hit.then_some((*kind, kw.len()))
        })
    }

    /// Lower-case name used in commands, the DDL log and reports.
    pub fn as_str(self) -> &'static str {
        use ObjectKind::*;
        match self {
            Table => "table",
            ForeignTable => "foreign table",
            View => "view",
            MaterializedView => "materialized view",
            Sequence => "sequence",
            Index => "index",
            Function => "function",
            Procedure => "procedure",
            Routine => "routine",
            Aggregate => "aggregate",
            Trigger => "trigger",
            EventTrigger => "event trigger",
            Rule => "rule",
            Type => "type",
            Domain => "domain",
            Schema => "schema",
            Extension => "extension",
            Policy => "policy",
            Publication => "publication",
            Subscription => "subscription",
            Role => "role",
            Database => "database",
            Tablespace => "tablespace",
            Server => "server",
            ForeignDataWrapper => "foreign data wrapper",
            UserMapping => "user mapping",
            Collation => "collation",
            Conversion => "conversion",
            Operator => "operator",
            OperatorClass => "operator class",
            OperatorFamily => "operator family",
            Cast => "cast",
            Statistics => "statistics",
            TextSearchConfiguration => "text search configuration",
            TextSearchDictionary => "text search dictionary",
            TextSearchParser => "text search parser",
            TextSearchTemplate => "text search template",
            Language => "language",
            Transform => "transform",
            AccessMethod => "access method",
            DefaultPrivileges => "default privileges",
            LargeObject => "large object",
            Column => "column",
            Constraint => "constraint",
            Owned => "owned",
            System => "system",
            Parameter => "parameter",
            None => "",
        }
    }

    /// True for the relations usage records: tables, foreign tables,
    /// views, materialized views and sequences. Indexes are relations in
    /// `pg_class` but not something clients read or write: a statement on
    /// an index records the table it is `ON` when the text names it.
    pub fn is_used_relation(self) -> bool {
        matches!(
            self,
            ObjectKind::Table
                | ObjectKind::ForeignTable
                | ObjectKind::View
                | ObjectKind::MaterializedView
                | ObjectKind::Sequence
        )
    }

    /// True for every kind stored in `pg_class` (the used relations and
    /// indexes).
    pub fn is_relation(self) -> bool {
        self.is_used_relation() || self == ObjectKind::Index
    }

    /// True when DDL on this kind can change what the catalog snapshot
    /// holds (relations, their columns and column types, schemas);
    /// unknown objects count as changing it.
    pub fn changes_snapshot(self) -> bool {
        self.is_used_relation()
            || matches!(
                self,
                ObjectKind::Schema
                    | ObjectKind::Type
                    | ObjectKind::Domain
                    | ObjectKind::Extension
                    | ObjectKind::Owned
                    | ObjectKind::None
            )
    }
}

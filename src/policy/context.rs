//! What the caller knows about the session when a statement arrives: the
//! server, the transaction, the catalog snapshot and who else uses what.

use super::statement::{Name, ObjectKind};
use crate::catalog::{Catalog, Table};

/// One other client that depended on an object within `usage.window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// The client identity as reports print it (user, application, address).
    pub client: String,
    /// `explicit` (named it) or `implicit` (`*`, INSERT without a column list, ...).
    pub dependency: &'static str,
    /// Last use, RFC 3339.
    pub last_used: String,
    /// A fingerprint of such a statement (never literal values).
    pub fingerprint: String,
}

/// The usage lookup the usage-aware rules read; the caller implements it
/// over the usage registry, leaving out the identity of the session that
/// issues the DDL.
pub trait Usage {
    /// Clients other than the issuing session that used `object` (a column of
    /// it when `column` is set) within the window.
    fn dependents(&self, kind: ObjectKind, object: &Name, column: Option<&str>) -> Vec<Dependent>;

    /// True when the materialized view has a unique index (so that
    /// `REFRESH ... CONCURRENTLY` is possible).
    fn has_unique_index(&self, _view: &Name) -> bool {
        false
    }
}

/// A lookup that knows of no usage.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUsage;

impl Usage for NoUsage {
    fn dependents(&self, _: ObjectKind, _: &Name, _: Option<&str>) -> Vec<Dependent> {
        Vec::new()
    }
}

/// Who is asking, for `[[policy.scope]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Login user.
    pub user: String,
    /// Database.
    pub database: String,
    /// `application_name`.
    pub application_name: String,
}

/// Everything the rules may read besides the statement; the caller fills it.
pub struct Context<'a> {
    /// `server_version_num` (150000 for 15.0).
    pub server_version: u32,
    /// The session is inside a transaction block.
    pub in_transaction: bool,
    /// Tables created earlier in this transaction or session (rules relax on them).
    pub created: Vec<Name>,
    /// The catalog snapshot, when there is one.
    pub catalog: Option<&'a Catalog>,
    /// The session's `search_path`, to find unqualified names in the catalog.
    pub search_path: Vec<String>,
    /// The transaction already wrote rows.
    pub wrote_rows: bool,
    /// Tables on which the transaction already holds ACCESS EXCLUSIVE.
    pub exclusive_locked: Vec<Name>,
    /// For `lint` over a file: whether a COMMIT follows this statement
    /// (`None` at the proxy, which cannot know).
    pub commit_follows: Option<bool>,
    /// Who is asking.
    pub session: Session,
    /// Who else uses what.
    pub usage: &'a dyn Usage,
}

impl Default for Context<'_> {
    fn default() -> Self {
        Context {
            server_version: 150000,
            in_transaction: false,
            created: Vec::new(),
            catalog: None,
            search_path: vec!["public".to_string()],
            wrote_rows: false,
            exclusive_locked: Vec::new(),
            commit_follows: None,
            session: Session::default(),
            usage: &NoUsage,
        }
    }
}

fn same(a: &Name, b: &Name) -> bool {
    a.name == b.name && (a.schema.is_none() || b.schema.is_none() || a.schema == b.schema)
}

impl Context<'_> {
    /// The table as the catalog snapshot knows it.
    pub fn table(&self, name: &Name) -> Option<&Table> {
        self.catalog?.find(name, &self.search_path)
    }

    /// True when the table was created earlier in this transaction or session.
    pub fn created_here(&self, name: &Name) -> bool {
        self.created.iter().any(|c| same(c, name))
    }

    /// True when the transaction already holds ACCESS EXCLUSIVE on the table.
    pub fn locked_here(&self, name: &Name) -> bool {
        self.exclusive_locked.iter().any(|c| same(c, name))
    }

    /// The catalog's row estimate (`None` when unknown or never analyzed).
    pub fn rows(&self, name: &Name) -> Option<i64> {
        self.table(name).map(|t| t.row_estimate).filter(|r| *r >= 0)
    }

    /// True when a rule about the cost of touching every row of `name` can
    /// relax: the table is new in this transaction/session, or the catalog
    /// says it is smaller than `small_table_rows`.
    pub fn small_or_new(&self, name: &Name, small_table_rows: u64) -> bool {
        self.created_here(name)
            || self
                .rows(name)
                .is_some_and(|r| (r as u64) < small_table_rows)
    }

    /// The type of a column as the catalog prints it (`character varying(20)`).
    pub fn column_type(&self, table: &Name, column: &str) -> Option<String> {
        self.table(table)?
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.type_name.clone())
    }
}

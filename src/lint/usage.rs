//! The usage lookups lint gives the usage-aware rules: [`Remote`] asks a
//! running proxy (`/api/v1/dependents`, `/api/v1/tables`); [`Unknown`]
//! answers "someone, unknown" for what nobody could ask about, so that the
//! rule's finding is reported as unknown usage instead of passing silently.

use super::error::LintError;
use crate::admin::client::{Api, DependentRow};
use crate::catalog::{Catalog, Table};
use crate::policy::statement::Name;
use crate::policy::{Dependent, ObjectKind, Usage};
use std::cell::RefCell;
use std::collections::HashMap;

/// Kinds `/api/v1/dependents` answers for (relations).
fn asked_remotely(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView | ObjectKind::Sequence
    )
}

fn same(a: &Name, b: &Name) -> bool {
    a.name == b.name && (a.schema.is_none() || b.schema.is_none() || a.schema == b.schema)
}

/// Usage nobody could ask about: one placeholder dependent for every object
/// except those created earlier in the run and, when a proxy answers, the
/// kinds it answers for.
pub struct Unknown<'a> {
    /// Tables created earlier in the run (nobody else can use them yet).
    pub created: &'a [Name],
    /// A proxy answers for relations.
    pub remote: bool,
}

impl Usage for Unknown<'_> {
    fn dependents(&self, kind: ObjectKind, object: &Name, _: Option<&str>) -> Vec<Dependent> {
        if (self.remote && asked_remotely(kind)) || self.created.iter().any(|c| same(c, object)) {
            return Vec::new();
        }
        vec![Dependent {
            client: "(unknown)".into(),
            dependency: "unknown",
            last_used: "unknown".into(),
            fingerprint: String::new(),
        }]
    }
}

/// One row of `/api/v1/tables` (the columns lint reads).
#[derive(serde::Deserialize)]
struct TableRow {
    schema: String,
    table: String,
    row_estimate: Option<i64>,
}

/// A running proxy: live dependents, and row estimates of the tables it saw.
pub struct Remote {
    api: Api,
    catalog: Catalog,
    cache: RefCell<HashMap<String, Vec<Dependent>>>,
    failure: RefCell<Option<String>>,
}

impl Remote {
    /// Connects by reading `/api/v1/tables` (an unreachable proxy fails here).
    pub fn connect(address: &str) -> Result<Remote, LintError> {
        let api = Api::new(address);
        let rows: Vec<TableRow> = api.rows("/api/v1/tables", &[])?;
        let catalog = Catalog::from_tables(rows.into_iter().map(|r| Table {
            schema: r.schema,
            name: r.table,
            columns: Vec::new(),
            row_estimate: r.row_estimate.unwrap_or(-1),
        }));
        Ok(Remote {
            api,
            catalog,
            cache: RefCell::new(HashMap::new()),
            failure: RefCell::new(None),
        })
    }

    /// Row estimates of the tables the proxy knows.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The first lookup that failed while judging, if any.
    pub fn take_failure(&self) -> Option<LintError> {
        self.failure.borrow_mut().take().map(LintError::Usage)
    }

    fn ask(&self, table: &str, column: Option<&str>) -> Vec<Dependent> {
        let key = format!("{table}\u{0}{}", column.unwrap_or(""));
        if let Some(hit) = self.cache.borrow().get(&key) {
            return hit.clone();
        }
        let mut query = vec![("table", table)];
        if let Some(c) = column {
            query.push(("column", c));
        }
        let deps = match self.api.rows::<DependentRow>("/api/v1/dependents", &query) {
            Ok(rows) => rows.into_iter().map(dependent).collect(),
            Err(e) => {
                self.failure.borrow_mut().get_or_insert(e.to_string());
                Vec::new()
            }
        };
        self.cache.borrow_mut().insert(key, deps.clone());
        deps
    }
}

fn dependent(r: DependentRow) -> Dependent {
    Dependent {
        client: format!("{}@{} ({})", r.user, r.application_name, r.client_addr),
        dependency: if r.dependency == "implicit" {
            "implicit"
        } else {
            "explicit"
        },
        last_used: r.last_seen,
        fingerprint: r.fingerprint,
    }
}

impl Usage for Remote {
    fn dependents(&self, kind: ObjectKind, object: &Name, column: Option<&str>) -> Vec<Dependent> {
        if !asked_remotely(kind) {
            return Vec::new();
        }
        let table = match &object.schema {
            Some(s) => format!("{s}.{}", object.name),
            None => object.name.clone(),
        };
        self.ask(&table, column)
    }
}

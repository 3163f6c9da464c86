//! In-memory catalog model and lookups by name and `search_path`.

use crate::analysis::RelationName;
use std::collections::{HashMap, HashSet};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as stored (`attname`).
    pub name: String,
    /// Attribute number (`attnum`).
    pub attnum: i16,
    /// Type as `format_type` prints it.
    pub type_name: String,
    /// `NOT NULL`.
    pub not_null: bool,
}

/// One table, view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Columns in attnum order.
    pub columns: Vec<Column>,
    /// `reltuples`, or -1 when never analyzed.
    pub row_estimate: i64,
}

impl Table {
    /// True when the table has a column of that name.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
}

/// A snapshot of the upstream's relations.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: HashMap<(String, String), Table>,
    schemas: HashSet<String>,
}

impl Catalog {
    /// Builds a catalog from tables.
    pub fn from_tables(tables: impl IntoIterator<Item = Table>) -> Catalog {
        let tables: HashMap<(String, String), Table> = tables
            .into_iter()
            .map(|t| ((t.schema.clone(), t.name.clone()), t))
            .collect();
        let schemas = tables.keys().map(|(s, _)| s.clone()).collect();
        Catalog { tables, schemas }
    }

    /// The relation `schema.name`, if the snapshot has it.
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.get(&(schema.to_string(), name.to_string()))
    }

    /// True when some relation of the snapshot lives in `schema`.
    pub fn has_schema(&self, schema: &str) -> bool {
        self.schemas.contains(schema)
    }

    /// Number of relations known.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// True when nothing is known (no snapshot yet, or no service login).
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Finds a relation as Postgres would: a qualified name directly, an
    /// unqualified one through `search_path` in order.
    pub fn find(&self, rel: &RelationName, search_path: &[String]) -> Option<&Table> {
        match &rel.schema {
            Some(schema) => self.tables.get(&(schema.clone(), rel.name.clone())),
            None => search_path
                .iter()
                .chain(std::iter::once(&"pg_catalog".to_string()))
                .find_map(|s| self.tables.get(&(s.clone(), rel.name.clone()))),
        }
    }
}

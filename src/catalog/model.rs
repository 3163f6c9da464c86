//! In-memory catalog model and lookups by name and `search_path`.

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
    /// unqualified one through `search_path` in order, with `pg_temp`
    /// (the session's temporary tables, all sessions' in this snapshot)
    /// and then `pg_catalog` searched first unless the path names them
    /// elsewhere. (Postgres never searches `pg_temp` for functions; this
    /// finds relations only.)
    pub fn find<R: RelationRef + ?Sized>(&self, rel: &R, search_path: &[String]) -> Option<&Table> {
        let name = rel.name();
        match rel.schema() {
            Some(schema) => self.tables.get(&(schema.to_string(), name.to_string())),
            None => {
                let listed = |s: &str| search_path.iter().any(|p| p == s);
                let implicit = [TEMP_SCHEMA, SYSTEM_SCHEMA]
                    .into_iter()
                    .filter(|s| !listed(s));
                implicit
                    .chain(search_path.iter().map(String::as_str))
                    .find_map(|s| self.tables.get(&(s.to_string(), name.to_string())))
            }
        }
    }
}

/// A relation name as a statement wrote it, for [`Catalog::find`]: the
/// analysis's names implement it, so the catalog needs no analysis types.
pub trait RelationRef {
    /// The schema, when the name was qualified.
    fn schema(&self) -> Option<&str>;
    /// The relation's name.
    fn name(&self) -> &str;
}

/// The schema temporary relations are known under (Postgres's alias for
/// the session's own `pg_temp_N`).
pub const TEMP_SCHEMA: &str = "pg_temp";

/// The system catalog schema, implicitly searched before the path.
pub const SYSTEM_SCHEMA: &str = "pg_catalog";

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str) -> Table {
        Table {
            schema: schema.into(),
            name: name.into(),
            columns: Vec::new(),
            row_estimate: -1,
        }
    }

    struct Unqualified<'a>(&'a str);

    impl RelationRef for Unqualified<'_> {
        fn schema(&self) -> Option<&str> {
            None
        }
        fn name(&self) -> &str {
            self.0
        }
    }

    fn found(c: &Catalog, name: &str, path: &[&str]) -> Option<String> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        c.find(&Unqualified(name), &path)
            .map(|t| format!("{}.{}", t.schema, t.name))
    }

    #[test]
    fn pg_temp_then_pg_catalog_are_searched_first_unless_the_path_places_them() {
        let c = Catalog::from_tables([
            table("pg_catalog", "pg_class"),
            table("public", "pg_class"),
            table("public", "users"),
            table("pg_temp", "users"),
            table("billing", "users"),
        ]);
        assert_eq!(
            found(&c, "pg_class", &["public"]).as_deref(),
            Some("pg_catalog.pg_class")
        );
        assert_eq!(
            found(&c, "pg_class", &["public", "pg_catalog"]).as_deref(),
            Some("public.pg_class")
        );
        assert_eq!(
            found(&c, "users", &["billing", "public"]).as_deref(),
            Some("pg_temp.users")
        );
        assert_eq!(
            found(&c, "users", &["billing", "pg_temp"]).as_deref(),
            Some("billing.users")
        );
        assert_eq!(found(&c, "nothing", &["public"]), None);
    }
}

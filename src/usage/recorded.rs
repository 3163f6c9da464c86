//! Usage resolved as it was recorded.
//!
//! An entry's tables and columns are resolved against the catalog snapshot
//! of its database. The resolution made while the relations existed is
//! pinned to the entry (off the relay path) and stored with it, so that
//! history keeps its names: after a restart before any catalog is loaded,
//! and after a table is dropped or renamed. A newer snapshot still decides
//! every use whose relations it knows (a column added since, a table
//! created since).

use super::entry::Pinned;
use super::memory::uses_bytes;
use super::registry::{add_bytes, UsageRegistry};
use crate::analysis::{resolve, search_path, Analysis, ResolvedUse};
use crate::catalog::Catalog;
use std::collections::HashMap;
use std::sync::Arc;

/// A database's snapshot and a client's effective `search_path` in it.
type Context = (Arc<Catalog>, Vec<String>);

/// An entry to pin: its key, its analysis and its current pin.
type Todo = ((u64, u64), Arc<Analysis>, Option<Arc<Vec<ResolvedUse>>>);

/// True when the catalog knows every relation of `u`.
fn known(u: &ResolvedUse, catalog: &Catalog) -> bool {
    u.relations
        .iter()
        .all(|r| catalog.table(&r.schema, &r.name).is_some())
}

/// The uses of `analysis` under `search_path`: resolved with `catalog`
/// where it knows the relations, and as pinned where it does not.
pub fn uses(
    analysis: &Analysis,
    catalog: &Catalog,
    search_path: &[String],
    pinned: Option<&[ResolvedUse]>,
) -> Vec<ResolvedUse> {
    let live = resolve(analysis, catalog, search_path);
    let Some(pinned) = pinned else {
        return live;
    };
    let mut out: Vec<ResolvedUse> = live
        .into_iter()
        .filter(|u| known(u, catalog))
        .chain(pinned.iter().filter(|u| !known(u, catalog)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

impl UsageRegistry {
    /// Pins to every entry the resolution made with its database's current
    /// catalog snapshot, where the snapshot changed since the last pin (the
    /// flusher calls it every interval, off the relay path): the form
    /// history keeps when the catalog is missing or the tables are gone.
    pub fn pin_resolutions(&self, catalog_of: impl Fn(&str) -> Arc<Catalog>) {
        // Held executions first: an entry they create is written to the
        // store by this same pass, and must go there resolved.
        super::held::settle(self);
        let mut contexts: HashMap<u64, Option<Context>> = HashMap::new();
        let mut todo: Vec<Todo> = Vec::new();
        for item in self.entries.iter() {
            let (key, e) = item.pair();
            let ctx = contexts.entry(key.0).or_insert_with(|| {
                let (identity, path) = self.clients.key_of(key.0)?;
                let catalog = catalog_of(&identity.database);
                if catalog.is_empty() {
                    return None;
                }
                let schemas =
                    search_path::effective(&path, &identity.user, |s| catalog.has_schema(s));
                Some((catalog, schemas))
            });
            let Some((catalog, _)) = ctx else { continue };
            if e.pinned.as_ref().map(|p| p.catalog) != Some(Arc::as_ptr(catalog) as usize) {
                let old = e.pinned.as_ref().map(|p| p.uses.clone());
                todo.push((*key, e.analysis.clone(), old));
            }
        }
        for (key, analysis, old) in todo {
            let Some(Some((catalog, schemas))) = contexts.get(&key.0) else {
                continue;
            };
            let uses = uses(&analysis, catalog, schemas, old.as_deref().map(|v| &v[..]));
            if let Some(mut e) = self.entries.get_mut(&key) {
                let before = e.pinned.as_ref().map_or(0, |p| uses_bytes(&p.uses)) as isize;
                add_bytes(&self.bytes, uses_bytes(&uses) as isize - before);
                e.pinned = Some(Pinned {
                    uses: Arc::new(uses),
                    catalog: Arc::as_ptr(catalog) as usize,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Analyzer, QualifiedName};
    use crate::catalog::{Column, Table};

    fn table(schema: &str, name: &str, columns: &[&str]) -> Table {
        Table {
            schema: schema.into(),
            name: name.into(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    name: c.to_string(),
                    attnum: i as i16 + 1,
                    type_name: "text".into(),
                    not_null: false,
                })
                .collect(),
            row_estimate: 0,
        }
    }

    fn tables_of(uses: &[ResolvedUse]) -> Vec<String> {
        let mut out: Vec<String> = uses
            .iter()
            .flat_map(|u| &u.relations)
            .map(|QualifiedName { schema, name }| format!("{schema}.{name}"))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn pinned_names_survive_a_missing_or_changed_catalog() {
        let a = Analyzer::new(16).analyze("SELECT email FROM users");
        let path = vec!["billing".to_string(), "public".to_string()];
        let then = Catalog::from_tables([
            table("public", "users", &["email"]),
            table("billing", "invoices", &["total"]),
        ]);
        let pinned = uses(&a, &then, &path, None);
        assert_eq!(tables_of(&pinned), ["public.users"]);
        // No catalog yet (a restart): the pinned form, not a guess.
        let empty = Catalog::default();
        assert_eq!(tables_of(&resolve(&a, &empty, &path)), ["billing.users"]);
        assert_eq!(
            tables_of(&uses(&a, &empty, &path, Some(&pinned))),
            ["public.users"]
        );
        // Renamed away: history keeps the recorded name.
        let renamed = Catalog::from_tables([
            table("public", "customers", &["email"]),
            table("billing", "invoices", &["total"]),
        ]);
        assert_eq!(
            tables_of(&uses(&a, &renamed, &path, Some(&pinned))),
            ["public.users"]
        );
        // A newer snapshot decides what it knows.
        let moved = Catalog::from_tables([
            table("public", "users", &["email"]),
            table("billing", "users", &["email"]),
        ]);
        assert_eq!(
            tables_of(&uses(&a, &moved, &path, Some(&pinned))),
            ["billing.users"]
        );
    }
}

//! Turns an analysis into concrete (schema, table, column) uses with the
//! catalog and the session's `search_path`.

use super::model::{Analysis, Mode, RelationName};
use crate::catalog::Catalog;

/// How a use depends on a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// The statement names the column.
    Explicit,
    /// The statement depends on all columns without naming them (`*`).
    Implicit,
}

impl Dependency {
    /// `explicit` or `implicit`, as in the dependents report.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Explicit => "explicit",
            Dependency::Implicit => "implicit",
        }
    }
}

/// A relation after resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    /// Schema.
    pub schema: String,
    /// Relation.
    pub name: String,
}

/// One resolved use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedUse {
    /// The relation, or the candidates when the column stays ambiguous.
    pub relations: Vec<QualifiedName>,
    /// The column; `None` for a use of the relation as a whole.
    pub column: Option<String>,
    /// Read or write.
    pub mode: Mode,
    /// Explicit, or implicit (all columns).
    pub dependency: Dependency,
}

impl ResolvedUse {
    /// True when more than one relation could own the column.
    pub fn is_ambiguous(&self) -> bool {
        self.relations.len() > 1
    }
}

fn qualify(rel: &RelationName, catalog: &Catalog, search_path: &[String]) -> QualifiedName {
    if let Some(t) = catalog.find(rel, search_path) {
        return QualifiedName {
            schema: t.schema.clone(),
            name: t.name.clone(),
        };
    }
    if rel.schema.is_none()
        && rel.name.starts_with("pg_")
        && !catalog.has_schema(crate::catalog::SYSTEM_SCHEMA)
    {
        // No snapshot of pg_catalog (none loaded yet): a `pg_*` name that
        // is no known relation is a system catalog, searched first.
        return QualifiedName {
            schema: crate::catalog::SYSTEM_SCHEMA.into(),
            name: rel.name.clone(),
        };
    }
    QualifiedName {
        // Unknown relation: Postgres would look in (and create in) the
        // first schema of the path that exists.
        schema: rel
            .schema
            .clone()
            .or_else(|| {
                search_path
                    .iter()
                    .find(|s| catalog.has_schema(s))
                    .or_else(|| search_path.first())
                    .cloned()
            })
            .unwrap_or_else(|| "public".into()),
        name: rel.name.clone(),
    }
}

/// Resolves every use of `analysis`. Without a catalog (empty), a column in
/// a single-table scope belongs to that table and anything else stays
/// ambiguous, listing its candidates.
pub fn resolve(analysis: &Analysis, catalog: &Catalog, search_path: &[String]) -> Vec<ResolvedUse> {
    let mut out = Vec::with_capacity(analysis.relations.len() + analysis.columns.len());
    for r in &analysis.relations {
        let name = qualify(&r.relation, catalog, search_path);
        out.push(ResolvedUse {
            relations: vec![name],
            column: None,
            mode: r.mode,
            dependency: if r.all_columns {
                Dependency::Implicit
            } else {
                Dependency::Explicit
            },
        });
    }
    for c in &analysis.columns {
        let mut chosen: Option<Vec<&RelationName>> = None;
        for scope in &c.scopes {
            if c.certain {
                chosen = Some(scope.iter().collect());
                break;
            }
            let known: Vec<Option<bool>> = scope
                .iter()
                .map(|r| {
                    catalog
                        .find(r, search_path)
                        .map(|t| t.has_column(&c.column))
                })
                .collect();
            let owners: Vec<&RelationName> = scope
                .iter()
                .zip(&known)
                .filter(|(_, k)| **k == Some(true))
                .map(|(r, _)| r)
                .collect();
            if !owners.is_empty() {
                chosen = Some(owners);
                break;
            }
            if known.iter().all(|k| *k == Some(false)) {
                continue; // certainly not here: an outer reference
            }
            // Unknown tables in this scope: without the catalog, a single
            // table owns it; several stay ambiguous.
            chosen = Some(scope.iter().collect());
            break;
        }
        let Some(rels) = chosen else { continue };
        let mut relations: Vec<QualifiedName> = rels
            .iter()
            .map(|r| qualify(r, catalog, search_path))
            .collect();
        relations.sort();
        relations.dedup();
        out.push(ResolvedUse {
            relations,
            column: Some(c.column.clone()),
            mode: c.mode,
            dependency: Dependency::Explicit,
        });
    }
    // `SELECT * FROM t` uses t as a whole and all its columns: the implicit
    // use says both, so the plain relation use goes.
    let implicit: Vec<(Vec<QualifiedName>, Mode)> = out
        .iter()
        .filter(|u| u.column.is_none() && u.dependency == Dependency::Implicit)
        .map(|u| (u.relations.clone(), u.mode))
        .collect();
    out.retain(|u| {
        !(u.column.is_none()
            && u.dependency == Dependency::Explicit
            && implicit
                .iter()
                .any(|(r, m)| *r == u.relations && *m == u.mode))
    });
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::catalog::Table;

    fn tables(sql: &str, catalog: &Catalog, path: &[&str]) -> Vec<String> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let mut out: Vec<String> = resolve(&Analyzer::new(16).analyze(sql), catalog, &path)
            .into_iter()
            .flat_map(|u| u.relations)
            .map(|r| format!("{}.{}", r.schema, r.name))
            .collect();
        out.dedup();
        out
    }

    #[test]
    fn system_catalogs_resolve_to_pg_catalog_with_or_without_a_snapshot() {
        let empty = Catalog::default();
        assert_eq!(
            tables("SELECT relname FROM pg_class", &empty, &["public"]),
            vec!["pg_catalog.pg_class"]
        );
        let snapshot = Catalog::from_tables([Table {
            schema: "pg_catalog".into(),
            name: "pg_class".into(),
            columns: Vec::new(),
            row_estimate: -1,
        }]);
        assert_eq!(
            tables("SELECT * FROM pg_class", &snapshot, &["app", "public"]),
            vec!["pg_catalog.pg_class"]
        );
        // A user table named pg_something, with pg_catalog known: Postgres
        // creates it in the first schema of the path.
        assert_eq!(
            tables("CREATE TABLE pg_mine (x int)", &snapshot, &["app"]),
            vec!["app.pg_mine"]
        );
    }

    #[test]
    fn temporary_tables_resolve_through_pg_temp() {
        let empty = Catalog::default();
        assert_eq!(
            tables("CREATE TEMP TABLE scratch (x int)", &empty, &["public"]),
            vec!["pg_temp.scratch"]
        );
        let snapshot = Catalog::from_tables(["public", "pg_temp"].map(|s| Table {
            schema: s.into(),
            name: "scratch".into(),
            columns: Vec::new(),
            row_estimate: -1,
        }));
        assert_eq!(
            tables("INSERT INTO scratch VALUES (1)", &snapshot, &["public"]),
            vec!["pg_temp.scratch"]
        );
    }
}

//! The analysis corpus: statements with their expected resolved uses,
//! against the fixture catalog in `tests/fixtures/analysis_corpus.toml`.
//!
//! Notation of a use: `r` or `w`, then the table (schema omitted when it is
//! `public`), then `.column`, `.*` for an implicit all-columns dependency, or
//! nothing for a use of the table as a whole. An ambiguous column lists its
//! candidates: `r orders|users.id`.

use super::{resolve, Analyzer, Dependency, Mode, ResolvedUse};
use crate::catalog::{Catalog, Column, Table};
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Deserialize)]
struct Corpus {
    table: Vec<FixtureTable>,
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct FixtureTable {
    #[serde(default = "public")]
    schema: String,
    name: String,
    columns: Vec<String>,
}

fn public() -> String {
    "public".into()
}

#[derive(Deserialize)]
struct Case {
    sql: String,
    kind: String,
    #[serde(default)]
    uses: Vec<String>,
    #[serde(default = "yes")]
    parses: bool,
    #[serde(default)]
    search_path: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

fn catalog(tables: &[FixtureTable]) -> Catalog {
    Catalog::from_tables(tables.iter().map(|t| {
        Table {
            schema: t.schema.clone(),
            name: t.name.clone(),
            columns: t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    name: c.clone(),
                    attnum: i as i16 + 1,
                    type_name: "text".into(),
                    not_null: false,
                })
                .collect(),
            row_estimate: 1000,
        }
    }))
}

/// Renders a resolved use in the corpus notation.
pub fn notation(u: &ResolvedUse) -> String {
    let rels: Vec<String> = u
        .relations
        .iter()
        .map(|r| {
            if r.schema == "public" {
                r.name.clone()
            } else {
                format!("{}.{}", r.schema, r.name)
            }
        })
        .collect();
    let mode = match u.mode {
        Mode::Read => "r",
        Mode::Write => "w",
    };
    let tail = match (&u.column, u.dependency) {
        (Some(c), _) => format!(".{c}"),
        (None, Dependency::Implicit) => ".*".into(),
        (None, Dependency::Explicit) => String::new(),
    };
    format!("{mode} {}{tail}", rels.join("|"))
}

#[test]
fn corpus_statements_resolve_as_expected() {
    let text = include_str!("../../tests/fixtures/analysis_corpus.toml");
    let corpus: Corpus = toml::from_str(text).expect("corpus parses");
    let catalog = catalog(&corpus.table);
    let analyzer = Analyzer::new(10_000);
    let mut failures = Vec::new();
    for case in &corpus.case {
        let analysis = analyzer.analyze(&case.sql);
        let path = case
            .search_path
            .clone()
            .unwrap_or_else(|| vec!["public".to_string()]);
        let got: BTreeSet<String> = resolve(&analysis, &catalog, &path)
            .iter()
            .map(notation)
            .collect();
        let want: BTreeSet<String> = case.uses.iter().cloned().collect();
        let kind_ok = analysis.kind.as_str() == case.kind;
        if got != want || !kind_ok || analysis.parsed != case.parses {
            failures.push(format!(
                "{}\n  kind: got {} want {}; parsed: got {} want {}\n  missing: {:?}\n  unexpected: {:?}",
                case.sql,
                analysis.kind.as_str(),
                case.kind,
                analysis.parsed,
                case.parses,
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>(),
            ));
        }
    }
    assert!(
        corpus.case.len() >= 20,
        "the corpus holds {} cases",
        corpus.case.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases differ:\n\n{}",
        failures.len(),
        corpus.case.len(),
        failures.join("\n\n")
    );
}

#[test]
fn known_parser_gaps_are_still_gaps_and_classified_lexically() {
    use super::StatementKind::{Ddl, Maintenance};
    // DESIGN section 5: sqlparser 0.64 cannot parse these. When an upgrade
    // closes a gap this test fails, so the lexical path can be revisited.
    let analyzer = Analyzer::new(16);
    for (sql, kind, object, name) in [
        ("REINDEX TABLE users", Maintenance, "table", "users"),
        (
            "CLUSTER users USING users_pkey",
            Maintenance,
            "table",
            "users",
        ),
        (
            "DROP INDEX CONCURRENTLY IF EXISTS idx_users_email",
            Ddl,
            "index",
            "idx_users_email",
        ),
        (
            "ALTER TABLE users SET TABLESPACE fast",
            Ddl,
            "table",
            "users",
        ),
    ] {
        let a = analyzer.analyze(sql);
        assert!(
            !a.parsed,
            "sqlparser now parses {sql:?}: revisit the lexical classifier"
        );
        assert_eq!(a.kind, kind, "{sql}");
        let c = &a.ddl[0];
        assert_eq!(
            (c.object.as_str(), c.name().map(|n| n.name.as_str())),
            (object, Some(name)),
            "{sql}"
        );
    }
}

#[test]
fn cached_shapes_share_one_analysis() {
    let analyzer = Analyzer::new(16);
    let a = analyzer.analyze("SELECT email FROM users WHERE id = 1");
    let b = analyzer.analyze("select email from users where id = 2");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(analyzer.stats.misses.get(), 1);
    assert_eq!(analyzer.stats.hits.get(), 1);
}

//! Query analysis: fingerprints, the tables and columns a statement touches,
//! and the shape-keyed cache that keeps parsing off the hot path
//! (DESIGN section 5).

pub mod classify;
#[cfg(test)]
mod corpus_test;
pub mod extract;
pub mod fingerprint;
mod lexical;
pub mod model;
pub mod resolve;
pub mod search_path;
pub mod split;
pub mod tokens;

pub use fingerprint::{fingerprint, Fingerprint};
pub use model::{Analysis, ColumnUse, Mode, RelationName, RelationUse, StatementKind};
pub use resolve::{resolve, Dependency, QualifiedName, ResolvedUse};

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Texts longer than this are fingerprinted and classified but not parsed
/// (a multi-megabyte INSERT would stall the session for nothing).
pub const MAX_PARSE_LEN: usize = 256 * 1024;

fn parse(sql: &str) -> Option<Vec<sqlparser::ast::Statement>> {
    if sql.len() > MAX_PARSE_LEN {
        return None;
    }
    Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()
}

/// Parses and walks `sql` (no cache). `fp` must be `fingerprint(sql)`.
pub fn analyze_uncached(sql: &str, fp: Fingerprint) -> Analysis {
    // Every statement of the text, classified on its own: the DDL log and
    // the policy read these, whatever the parser makes of the text.
    let statements = classify::classify_all(&fp.text);
    let ddl: Vec<classify::Classified> = statements
        .iter()
        .filter(|c| c.is_logged())
        .cloned()
        .collect();
    let changes_search_path = search_path::may_change(&fp.text);
    // A locking clause sqlparser 0.64 cannot read changes no column usage:
    // the text without it gets the full analysis.
    let parsed = parse(sql).or_else(|| {
        lexical::without_locking_clauses(&fp.text).and_then(|stripped| parse(&stripped))
    });
    match parsed {
        Some(parsed) => {
            let mut x = extract::Extractor::new();
            let kind = parsed
                .iter()
                .map(|s| x.statement(s))
                .max()
                .unwrap_or(StatementKind::Utility);
            let uses = x.finish();
            Analysis {
                changes_search_path,
                fingerprint: fp,
                kind,
                parsed: true,
                relations: uses.relations.into_iter().collect(),
                columns: uses.columns.into_iter().collect(),
                ddl,
            }
        }
        None => {
            // The lexical classifier decides the kind, statement by
            // statement, and records the relations it can prove: those a
            // DDL statement names (relations only, never a function, a
            // schema or a keyword) and those after FROM, JOIN, UPDATE,
            // INSERT INTO, DELETE FROM of a read or write. No columns.
            let mut kind = StatementKind::Utility;
            let mut relations: Vec<RelationUse> = Vec::new();
            for c in &statements {
                kind = kind.max(c.kind);
                let uses = match c.kind {
                    StatementKind::Read | StatementKind::Write
                        if c.command != "table" && c.command != "truncate" =>
                    {
                        lexical::dml_relations(&c.text)
                    }
                    _ => c.relation_uses(),
                };
                for u in uses {
                    if !relations.contains(&u) {
                        relations.push(u);
                    }
                }
            }
            Analysis {
                changes_search_path,
                fingerprint: fp,
                kind,
                parsed: false,
                relations,
                columns: Vec::new(),
                ddl,
            }
        }
    }
}

/// Counters of the analysis cache, for metrics.
#[derive(Default, Debug)]
pub struct AnalyzerStats {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that ran a full analysis.
    pub misses: AtomicU64,
    /// Analyses whose text did not parse.
    pub unparsed: AtomicU64,
}

/// The bounded, concurrent analysis cache keyed by fingerprint id: texts
/// that differ only in literals share one analysis, so a repeated shape
/// costs a lex and a hash lookup, never a parse.
pub struct Analyzer {
    cache: quick_cache::sync::Cache<u64, Arc<Analysis>>,
    /// Hit/miss counters.
    pub stats: AnalyzerStats,
}

impl Analyzer {
    /// A cache holding at most `capacity` shapes.
    pub fn new(capacity: usize) -> Analyzer {
        Analyzer {
            cache: quick_cache::sync::Cache::new(capacity.max(16)),
            stats: AnalyzerStats::default(),
        }
    }

    /// The analysis of `sql`, from the cache when its shape was seen before.
    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        let fp = fingerprint(sql);
        if let Some(hit) = self.cache.get(&fp.id) {
            // A 64-bit collision is astronomically rare, but never wrong.
            if hit.fingerprint.text == fp.text {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return hit;
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let id = fp.id;
        let analysis = Arc::new(analyze_uncached(sql, fp));
        if !analysis.parsed {
            self.stats.unparsed.fetch_add(1, Ordering::Relaxed);
        }
        self.cache.insert(id, analysis.clone());
        analysis
    }

    /// Shapes currently cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

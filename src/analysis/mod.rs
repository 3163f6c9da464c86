//! Query analysis: fingerprints, the tables and columns a statement touches,
//! and the shape-keyed cache that keeps parsing off the hot path
//! (DESIGN section 5).

pub mod classify;
#[cfg(test)]
mod corpus_test;
pub mod extract;
pub mod fingerprint;
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

/// Parses and walks `sql` (no cache). `fp` must be `fingerprint(sql)`.
pub fn analyze_uncached(sql: &str, fp: Fingerprint) -> Analysis {
    let parsed = if sql.len() <= MAX_PARSE_LEN {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()
    } else {
        None
    };
    match parsed {
        Some(statements) => {
            let mut x = extract::Extractor::new();
            let kind = statements
                .iter()
                .map(|s| x.statement(s))
                .max()
                .unwrap_or(StatementKind::Utility);
            let uses = x.finish();
            Analysis {
                changes_search_path: search_path::may_change(&fp.text),
                fingerprint: fp,
                kind,
                parsed: true,
                relations: uses.relations.into_iter().collect(),
                columns: uses.columns.into_iter().collect(),
            }
        }
        None => {
            // The lexical classifier decides the kind, statement by statement.
            let mut kind = StatementKind::Utility;
            let mut relations = Vec::new();
            for part in fp.text.split(';').filter(|p| !p.trim().is_empty()) {
                let c = classify::classify(part.trim());
                kind = kind.max(c.kind);
                if let Some(target) = c.target {
                    // `TABLE t` reads every column; everything else the
                    // classifier recognises targets an object it changes.
                    let read = c.command == "table";
                    relations.push(RelationUse {
                        relation: target,
                        mode: if read { Mode::Read } else { Mode::Write },
                        all_columns: read,
                    });
                }
            }
            Analysis {
                changes_search_path: search_path::may_change(&fp.text),
                fingerprint: fp,
                kind,
                parsed: false,
                relations,
                columns: Vec::new(),
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

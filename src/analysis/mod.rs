//! Query analysis: fingerprints, the tables and columns a statement touches,
//! and the shape-keyed cache that keeps parsing off the hot path
//! (DESIGN section 5).

pub mod classify;
#[cfg(test)]
mod corpus_test;
pub mod extract;
pub mod fingerprint;
mod lexical;
mod memo;
pub mod model;
pub mod objects;
pub mod resolve;
pub mod search_path;
mod shape_key;
pub mod split;
pub mod star;
mod template;
pub mod tokens;

pub use fingerprint::{fingerprint, Fingerprint};
pub use model::{
    Analysis, ColumnUse, Mode, ObjectUse, ObjectUseKind, RelationName, RelationUse, StatementKind,
};
pub use resolve::{resolve, Dependency, QualifiedName, ResolvedUse};
pub use template::Template;

use crate::counters::Striped;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
                objects: objects::objects(&parsed),
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
                objects: Vec::new(),
                ddl,
            }
        }
    }
}

/// A heap allocation of `n` bytes as the allocator serves it (16-byte
/// granules and a header).
pub fn heap_bytes(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.div_ceil(16) * 16 + 16
    }
}

/// Estimated bytes an analysis holds (its shared allocation, texts and
/// vectors, as the allocator serves them), so that the cache and the usage
/// registry can account for their memory.
pub fn analysis_bytes(a: &Analysis) -> usize {
    let name = |n: &RelationName| {
        heap_bytes(n.name.capacity()) + n.schema.as_ref().map_or(0, |s| heap_bytes(s.capacity()))
    };
    let relations = heap_bytes(a.relations.capacity() * size_of::<RelationUse>())
        + a.relations.iter().map(|r| name(&r.relation)).sum::<usize>();
    let columns = heap_bytes(a.columns.capacity() * size_of::<ColumnUse>())
        + a.columns
            .iter()
            .map(|c| {
                heap_bytes(c.column.capacity())
                    + heap_bytes(c.scopes.capacity() * size_of::<Vec<RelationName>>())
                    + c.scopes
                        .iter()
                        .map(|s| {
                            heap_bytes(s.capacity() * size_of::<RelationName>())
                                + s.iter().map(name).sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum::<usize>();
    let objects = heap_bytes(a.objects.capacity() * size_of::<ObjectUse>())
        + a.objects.iter().map(|o| name(&o.name)).sum::<usize>();
    // The Arc's counters are allocated with the value.
    heap_bytes(size_of::<Analysis>() + 16)
        + heap_bytes(a.fingerprint.text.capacity())
        + relations
        + columns
        + objects
}

/// Keeps the cache's byte count as analyses leave it.
#[derive(Clone, Default)]
struct CacheBytes(Arc<AtomicUsize>);

impl quick_cache::Lifecycle<u64, Arc<Analysis>> for CacheBytes {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut (), _: u64, val: Arc<Analysis>) {
        self.0.fetch_sub(analysis_bytes(&val), Ordering::Relaxed);
    }
}

/// The cache: at most `capacity` shapes, evicted by quick_cache's policy.
type ShapeCache = quick_cache::sync::Cache<
    u64,
    Arc<Analysis>,
    quick_cache::UnitWeighter,
    quick_cache::DefaultHashBuilder,
    CacheBytes,
>;

/// Counters of the analysis cache, for metrics.
#[derive(Default, Debug)]
pub struct AnalyzerStats {
    /// Lookups answered from the cache (every statement adds: striped).
    pub hits: Striped,
    /// Lookups that ran a full analysis.
    pub misses: Striped,
    /// Analyses whose text did not parse.
    pub unparsed: Striped,
}

/// The bounded, concurrent analysis cache keyed by fingerprint id: texts
/// that differ only in literals share one analysis, so a repeated shape
/// costs a lex and a hash lookup, never a parse.
pub struct Analyzer {
    /// Tells this analyzer's entries in the per-thread memo from another's.
    id: u64,
    cache: ShapeCache,
    /// Estimated bytes of the cached analyses (updated on insert and evict).
    bytes: CacheBytes,
    /// Hit/miss counters.
    pub stats: AnalyzerStats,
}

impl Analyzer {
    /// A cache holding at most `capacity` shapes.
    pub fn new(capacity: usize) -> Analyzer {
        let capacity = capacity.max(16);
        let bytes = CacheBytes::default();
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Analyzer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            cache: ShapeCache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                quick_cache::DefaultHashBuilder::default(),
                bytes.clone(),
            ),
            bytes,
            stats: AnalyzerStats::default(),
        }
    }

    /// The analysis of `sql`, from the cache when its shape was seen before.
    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        self.template(sql).analysis().clone()
    }

    /// The template (and so the analysis) of the statement text `sql` for
    /// a session whose previous statement's template is `last`: recognized
    /// by it when `sql` has its shape (no lexing, and UTF-8 checked from
    /// the first literal on only), else as [`Analyzer::analyze`] does;
    /// `None` when `sql` is not UTF-8. `last` becomes the template of
    /// `sql`'s shape.
    ///
    /// A template rather than its analysis, for the tracker to hold while
    /// the statement runs: templates are made per thread (the memo's), so
    /// counting references to one is not a write to a cache line every
    /// worker thread writes (an analysis is shared by all of them).
    pub fn template_after(
        &self,
        sql: &[u8],
        last: &mut Option<Arc<Template>>,
    ) -> Option<Arc<Template>> {
        if let Some(t) = last.as_ref() {
            if t.owner() == self.id && t.matches(sql) {
                self.stats.hits.add(1);
                return Some(t.clone());
            }
        }
        let sql = std::str::from_utf8(sql).ok()?;
        let t = self.template(sql);
        *last = Some(t.clone());
        Some(t)
    }

    /// The template of `sql`'s shape, from the thread's memo when it was
    /// seen there, else with the shared cache's (or a new) analysis.
    fn template(&self, sql: &str) -> Arc<Template> {
        let (template, remembered) = memo::memoized(self.id, sql, || self.analyze_shared(sql));
        if remembered {
            self.stats.hits.add(1);
        }
        template
    }

    /// The analysis of `sql` from the shared cache (or a new one, cached).
    fn analyze_shared(&self, sql: &str) -> Arc<Analysis> {
        let fp = fingerprint(sql);
        if let Some(hit) = self.cache.get(&fp.id) {
            // A 64-bit collision is astronomically rare, but never wrong.
            if hit.fingerprint.text == fp.text {
                self.stats.hits.add(1);
                return hit;
            }
        }
        self.stats.misses.add(1);
        let id = fp.id;
        let analysis = Arc::new(analyze_uncached(sql, fp));
        if !analysis.parsed {
            self.stats.unparsed.add(1);
        }
        // A replaced value (another thread analysed the same new shape, or
        // an id collision) is not reported as evicted: subtract it here.
        let replaced = self.cache.peek(&id).map_or(0, |old| analysis_bytes(&old));
        self.bytes
            .0
            .fetch_add(analysis_bytes(&analysis), Ordering::Relaxed);
        self.cache.insert(id, analysis.clone());
        self.bytes.0.fetch_sub(replaced, Ordering::Relaxed);
        analysis
    }

    /// Estimated bytes held by the cached analyses.
    pub fn bytes(&self) -> usize {
        self.bytes.0.load(Ordering::Relaxed)
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

#[cfg(test)]
mod byte_tests {
    use super::*;

    #[test]
    fn the_cache_counts_the_bytes_it_holds_and_frees() {
        let a = Analyzer::new(16);
        assert_eq!(a.bytes(), 0);
        let one = a.analyze("SELECT email FROM users WHERE id = 1");
        assert_eq!(a.bytes(), analysis_bytes(&one));
        a.analyze("SELECT email FROM users WHERE id = 2");
        assert_eq!(a.bytes(), analysis_bytes(&one), "a hit adds nothing");
        for i in 0..1000 {
            a.analyze(&format!("SELECT c{i} FROM t{i}"));
        }
        let held: usize = a.cache.iter().map(|(_, v)| analysis_bytes(&v)).sum();
        assert_eq!(a.bytes(), held, "evictions subtract what they free");
    }
}

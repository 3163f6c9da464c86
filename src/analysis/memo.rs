//! A small per-thread memo in front of the shared analysis cache, keyed by
//! [`shape_key`](super::shape_key::shape_key).
//!
//! A session thread sees the same few statement shapes over and over; this
//! answers them without normalizing the text, hashing the fingerprint or
//! touching the shared cache's locks. It holds each shape's
//! [`Template`], which the session keeps to recognize its next statement
//! without even this lookup. It is bounded (cleared when full) and belongs
//! to one analyzer at a time.

use super::shape_key::{shape_key, ShapeKey};
use super::template::Template;
use super::Analysis;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Statements longer than this skip the memo: one that long is rarely
/// repeated, and a miss lexes it twice (key, then fingerprint). ORM
/// statements of a few KiB (long column lists) are memoized.
const MAX_SQL: usize = 16 * 1024;
/// Shapes remembered per thread.
const CAPACITY: usize = 256;

struct Memo {
    /// The analyzer the entries came from.
    owner: u64,
    map: HashMap<ShapeKey, Arc<Template>, ahash::RandomState>,
    /// The seed of this thread's shape keys.
    seed: ahash::RandomState,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        owner: 0,
        map: HashMap::default(),
        seed: ahash::RandomState::new(),
    });
}

/// The template of `sql`'s shape remembered for analyzer `owner` on this
/// thread, else one of `sql` with `compute`'s analysis, then remembered.
/// Says whether it was remembered.
pub(super) fn memoized(
    owner: u64,
    sql: &str,
    compute: impl FnOnce() -> Arc<Analysis>,
) -> (Arc<Template>, bool) {
    if sql.len() > MAX_SQL {
        return (Arc::new(Template::new(owner, sql, compute())), false);
    }
    // One access to the thread's memo on a hit.
    let miss = MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let m = &mut *m;
        if m.owner != owner {
            m.map.clear();
            m.owner = owner;
        }
        let key = shape_key(sql, &m.seed);
        match m.map.get(&key) {
            Some(hit) => Err(hit.clone()),
            None => Ok(key),
        }
    });
    let key = match miss {
        Ok(key) => key,
        Err(hit) => return (hit, true),
    };
    let template = Arc::new(Template::new(owner, sql, compute()));
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.owner == owner {
            if m.map.len() >= CAPACITY {
                m.map.clear();
            }
            m.map.insert(key, template.clone());
        }
    });
    (template, false)
}

#[cfg(test)]
mod tests {
    use crate::analysis::{fingerprint, Analyzer};
    use std::sync::Arc;

    #[test]
    fn a_remembered_shape_is_the_shared_caches_analysis() {
        let a = Analyzer::new(16);
        let first = a.analyze("SELECT email FROM users WHERE id = 1");
        let again = a.analyze("SELECT email FROM users WHERE id = 2");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            again.fingerprint,
            fingerprint("SELECT email FROM users WHERE id = 2")
        );
        assert_eq!(a.stats.hits.get(), 1);
    }

    #[test]
    fn an_analyzer_never_gets_anothers_entries() {
        let a = Analyzer::new(16);
        let b = Analyzer::new(16);
        a.analyze("SELECT email FROM users WHERE id = 1");
        // Same thread, same shape, another analyzer: analysed (and cached)
        // by that analyzer, not taken from the memo `a` filled.
        b.analyze("SELECT email FROM users WHERE id = 2");
        assert_eq!(b.len(), 1);
        assert_eq!(b.stats.misses.get(), 1);
    }
}

//! A small per-thread memo in front of the shared analysis cache, keyed by
//! [`shape_key`](super::shape_key::shape_key).
//!
//! A session thread sees the same few statement shapes over and over; this
//! answers them without normalizing the text, hashing the fingerprint or
//! touching the shared cache's locks. It is bounded (cleared when full) and
//! belongs to one analyzer at a time.

use super::shape_key::shape_key;
use super::Analysis;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Statements longer than this skip the memo (their keys would be large,
/// and they are rarely the hot ones).
const MAX_SQL: usize = 1024;
/// Shapes remembered per thread.
const CAPACITY: usize = 256;

struct Memo {
    /// The analyzer the entries came from.
    owner: u64,
    map: HashMap<Box<[u8]>, Arc<Analysis>, ahash::RandomState>,
    /// The key being looked up (its buffer is reused).
    key: Vec<u8>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        owner: 0,
        map: HashMap::default(),
        key: Vec::new(),
    });
}

/// The analysis of `sql` remembered for analyzer `owner` on this thread,
/// else `compute`'s, then remembered. Says whether it was remembered.
pub(super) fn memoized(
    owner: u64,
    sql: &str,
    compute: impl FnOnce() -> Arc<Analysis>,
) -> (Arc<Analysis>, bool) {
    if sql.len() > MAX_SQL {
        return (compute(), false);
    }
    let (key, hit) = MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.owner != owner {
            m.map.clear();
            m.owner = owner;
        }
        let mut key = std::mem::take(&mut m.key);
        shape_key(sql, &mut key);
        let hit = m.map.get(key.as_slice()).cloned();
        (key, hit)
    });
    if let Some(hit) = hit {
        MEMO.with(|m| m.borrow_mut().key = key);
        return (hit, true);
    }
    let analysis = compute();
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.owner == owner {
            if m.map.len() >= CAPACITY {
                m.map.clear();
            }
            m.map.insert(key.as_slice().into(), analysis.clone());
        }
        m.key = key;
    });
    (analysis, false)
}

//! Byte estimates of what the usage registry holds. Each is computed once,
//! when a thing is added or removed (never by walking the maps), and kept
//! in atomics that `/metrics` reads and `usage.max_memory` is checked
//! against.

use super::entry::Entry;
use super::timeline::MinuteSlot;
use super::ClientIdentity;
use crate::analysis::{QualifiedName, ResolvedUse};
use std::mem::size_of;

/// Bytes a hash map spends per element besides the element itself: one
/// control byte, and free slots (maps double when 7/8 full, so on average
/// about a third of the slots are free).
pub fn map_slot(element: usize) -> usize {
    (element + 1) * 3 / 2
}

use crate::analysis::heap_bytes as heap;

/// A minute slot of a shape's timeline with its sparse histogram (a
/// handful of buckets: the first allocation holds four).
pub const SLOT_BYTES: usize = size_of::<MinuteSlot>() + 4 * 4 + 16;

/// A shape's own allocations besides its analysis: the all-time histogram
/// and the timeline's buffer (four slots from the first one on).
pub const SHAPE_BYTES: usize = 128 * 4 + 16 + 4 * size_of::<MinuteSlot>() + 16;

/// An entry: its map slot and its per-SQLSTATE vectors (the analysis is
/// counted once per shape, not per entry).
pub fn entry_bytes(e: &Entry) -> usize {
    map_slot(size_of::<((u64, u64), Entry)>())
        + codes_bytes(e)
        + e.pinned.as_ref().map_or(0, |p| uses_bytes(&p.uses))
}

/// The per-SQLSTATE vectors of an entry.
pub fn codes_bytes(e: &Entry) -> usize {
    let per = size_of::<([u8; 5], u64)>();
    heap(e.error_codes.capacity() * per)
        + heap(e.error_last_ms.capacity() * per)
        + heap(e.flushed.error_codes.capacity() * per)
}

fn name_bytes(n: &QualifiedName) -> usize {
    size_of::<QualifiedName>() + heap(n.schema.len()) + heap(n.name.len())
}

/// A resolution pinned to an entry.
pub fn uses_bytes(uses: &[ResolvedUse]) -> usize {
    heap(
        uses.iter()
            .map(|u| {
                size_of::<ResolvedUse>()
                    + heap(u.relations.iter().map(name_bytes).sum())
                    + u.column.as_ref().map_or(0, |c| heap(c.len()))
            })
            .sum(),
    )
}

/// A client identity with its `search_path`, held in two maps.
pub fn identity_bytes(identity: &ClientIdentity, path: &str) -> usize {
    let strings = heap(identity.application_name.len())
        + heap(identity.user.len())
        + heap(identity.database.len())
        + heap(identity.client_addr.len())
        + heap(path.len());
    // The key is stored twice (by key, and by id) plus a shared slot.
    2 * (map_slot(size_of::<(ClientIdentity, String, usize)>()) + strings) + 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;

    #[test]
    fn estimates_grow_with_what_is_held() {
        let analyzer = Analyzer::new(16);
        let mut e = Entry::new(analyzer.analyze("SELECT a FROM t"), 1);
        let empty = entry_bytes(&e);
        assert!(empty >= size_of::<Entry>(), "{empty}");
        e.add_runs(&crate::usage::runs::Runs::one(5, Some(*b"42703"), 2));
        assert!(entry_bytes(&e) > empty);
        let who = ClientIdentity {
            application_name: "a".repeat(100),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        };
        assert!(identity_bytes(&who, "") > 200);
    }
    /// VmRSS of this process, bytes.
    fn rss() -> usize {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            * 1024
    }

    /// The estimates against what the process really grows by. Ignored:
    /// other tests allocating in parallel would blur it; run it alone with
    /// `cargo test --lib estimates_track_rss -- --ignored`.
    #[test]
    #[ignore]
    fn estimates_track_rss() {
        use crate::usage::identity::test_identity;
        use crate::usage::UsageRegistry;
        let analyzer = Analyzer::new(16);
        let texts: Vec<String> = (0..50_000)
            .map(|n| format!("SELECT a, b AS x{n} FROM t{} WHERE id = {n}", n % 500))
            .collect();
        let before = rss();
        let reg = UsageRegistry::new(1_000_000);
        let c = reg.client_id(&test_identity("a"), "");
        for t in &texts {
            reg.record(&c, &analyzer.analyze(t), 10, None);
        }
        let ratio = (rss() - before) as f64 / reg.memory_bytes() as f64;
        assert!(
            (0.6..1.6).contains(&ratio),
            "RSS grew {ratio:.2} times the estimate"
        );
    }
}

//! Keeping the registry under `usage.max_memory`: the background pass
//! evicts the least recently used entries (by `last_seen`), handing back
//! what they had not flushed yet so the store still gets every count, and
//! drops client identities nobody uses any more.

use super::memory::entry_bytes;
use super::registry::{add_bytes, UsageRecord, UsageRegistry};
use std::sync::atomic::Ordering;

/// What one pass removed.
#[derive(Debug, Default)]
pub struct Eviction {
    /// Entries evicted.
    pub entries: usize,
    /// Idle client identities dropped.
    pub clients: usize,
    /// The increments evicted entries had not flushed: the caller writes
    /// them to the store.
    pub unflushed: Vec<UsageRecord>,
}

impl UsageRegistry {
    /// Evicts least recently used entries while memory is above 7/8 of
    /// the bound, down to 3/4 of it, then drops idle identities. Runs off
    /// the relay path (the flusher task); the walk only copies keys and
    /// times, so `record` waits at most for one shard's copy.
    pub fn evict(&self) -> Eviction {
        let mut out = Eviction::default();
        if self.bytes_now() > self.high_water() {
            let target = self.max_bytes / 4 * 3;
            let mut candidates: Vec<(u64, (u64, u64))> = self
                .entries
                .iter()
                .map(|item| (item.value().last_seen_ms, *item.key()))
                .collect();
            candidates.sort_unstable();
            for (seen, key) in candidates {
                if self.bytes_now() <= target {
                    break;
                }
                // Not if it ran again since the walk.
                let Some((_, e)) = self.entries.remove_if(&key, |_, e| e.last_seen_ms == seen)
                else {
                    continue;
                };
                add_bytes(&self.bytes, -(entry_bytes(&e) as isize));
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                self.forgotten_ms.fetch_max(seen, Ordering::Relaxed);
                out.entries += 1;
                if e.has_unflushed() {
                    if let Some((identity, path)) = self.clients.key_of(key.0) {
                        out.unflushed.push(e.delta(identity, &path, key.1));
                    }
                }
                self.clients.entry_removed(key.0);
                self.release_shape(key.1);
            }
        }
        out.clients = self.clients.evict_idle();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;

    use crate::usage::identity::test_identity as who;

    #[test]
    fn memory_stays_under_the_bound_and_old_entries_go_first() {
        let max = 256 * 1024;
        let reg = UsageRegistry::with_max_memory(1_000_000, max);
        let analyzer = Analyzer::new(64);
        let c = reg.client_id(&who("a"), "");
        let mut evicted = 0;
        let mut unflushed = 0u64;
        for i in 0..20_000 {
            let a = analyzer.analyze(&format!("SELECT c{i}, d, e FROM t{} WHERE x = 1", i % 500));
            reg.record(&c, &a, 10, None);
            assert!(
                reg.memory_bytes() <= max + 4096,
                "{} bytes after {i} shapes",
                reg.memory_bytes()
            );
            if i % 10 == 9 {
                let e = reg.evict();
                evicted += e.entries;
                unflushed += e.unflushed.iter().map(|r| r.calls).sum::<u64>();
            }
        }
        let stats = reg.stats();
        assert!(evicted > 10_000, "{evicted}");
        assert_eq!(stats.evicted, evicted as u64);
        // Every execution is either held, handed back for the store, or counted as dropped.
        let held: u64 = reg.statements().iter().map(|r| r.calls).sum();
        assert_eq!(held + unflushed + stats.dropped, 20_000);
        // The newest shapes are the ones held.
        let newest = analyzer.analyze("SELECT c19999, d, e FROM t499 WHERE x = 1");
        assert!(reg.latency(newest.fingerprint.id).is_some());
        let oldest = analyzer.analyze("SELECT c0, d, e FROM t0 WHERE x = 1");
        assert!(
            reg.latency(oldest.fingerprint.id).is_none(),
            "its shape went with it"
        );
    }

    #[test]
    fn evicted_history_is_not_loaded_back_from_the_store() {
        let reg = UsageRegistry::with_max_memory(1_000_000, 64 * 1024);
        let analyzer = Analyzer::new(64);
        let c = reg.client_id(&who("a"), "");
        for i in 0..2_000 {
            reg.record(
                &c,
                &analyzer.analyze(&format!("SELECT c{i} FROM t")),
                1,
                None,
            );
        }
        let gone = reg.evict().unflushed;
        assert!(!gone.is_empty());
        let held = reg.stats().entries;
        reg.merge_stored(gone, |t| analyzer.analyze(t));
        assert_eq!(
            reg.stats().entries,
            held,
            "evicted rows stay in the store only"
        );
    }
}

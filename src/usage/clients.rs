//! The client identities usage is recorded under, interned to small ids.
//!
//! A session holds a [`ClientId`] handle for as long as it may record under
//! it; an identity with no handle outside this table and no usage entry is
//! idle and is dropped by the background pass, so the table follows the
//! clients that exist (the identity includes the client address).

use super::memory::identity_bytes;
use super::ClientIdentity;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A client identity together with the `search_path` its statements ran
/// under: unqualified names of the same text can mean different tables.
pub type SessionKey = (ClientIdentity, String);

/// Longest `search_path` text kept apart; longer ones count as the default.
const MAX_PATH_LEN: usize = 512;

struct Slot {
    id: u64,
    key: SessionKey,
    /// Usage entries recorded under this id.
    entries: AtomicUsize,
    bytes: usize,
}

/// What a session records under: an interned (identity, `search_path`).
/// Cloning is cheap; while a clone exists the identity is never dropped.
#[derive(Clone)]
pub struct ClientId(Arc<Slot>);

impl ClientId {
    /// The number entries are keyed by (never reused).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The identity and `search_path`.
    pub fn key(&self) -> &SessionKey {
        &self.0.key
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientId({}, {})", self.0.id, self.0.key.0)
    }
}

/// Interned identities, by key and by id.
#[derive(Default)]
pub struct ClientTable {
    by_key: DashMap<SessionKey, ClientId, ahash::RandomState>,
    by_id: DashMap<u64, ClientId, ahash::RandomState>,
    next: AtomicU64,
    bytes: AtomicUsize,
}

/// Handles the table itself keeps of each identity (by key and by id).
const OWN_HANDLES: usize = 2;

impl ClientTable {
    /// The id `identity` records under with `search_path`. Past `cap`
    /// identities (and for absurdly long paths) a session's path counts as
    /// the default, so a client cycling through endless paths cannot grow
    /// the table; the id is as stable as any other.
    pub fn intern(&self, identity: &ClientIdentity, search_path: &str, cap: usize) -> ClientId {
        let search_path = if search_path.len() > MAX_PATH_LEN
            || (self.by_key.len() >= cap && !search_path.is_empty())
        {
            ""
        } else {
            search_path
        };
        self.intern_exact(identity, search_path)
    }

    /// The id of exactly (`identity`, `search_path`), created if needed
    /// (rows loaded from the store keep the path they were recorded under).
    pub fn intern_exact(&self, identity: &ClientIdentity, search_path: &str) -> ClientId {
        let key = (identity.clone(), search_path.to_string());
        if let Some(id) = self.by_key.get(&key) {
            return id.clone();
        }
        let entry = self.by_key.entry(key.clone()).or_insert_with(|| {
            let bytes = identity_bytes(identity, search_path);
            let slot = ClientId(Arc::new(Slot {
                id: self.next.fetch_add(1, Ordering::Relaxed),
                key,
                entries: AtomicUsize::new(0),
                bytes,
            }));
            self.by_id.insert(slot.id(), slot.clone());
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            slot
        });
        entry.clone()
    }

    /// The identity and path of `id`, if it is still interned.
    pub fn key_of(&self, id: u64) -> Option<SessionKey> {
        self.by_id.get(&id).map(|c| c.value().key().clone())
    }

    /// Counts an entry added under `client`.
    pub fn entry_added(&self, client: &ClientId) {
        client.0.entries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an entry removed from `id`.
    pub fn entry_removed(&self, id: u64) {
        if let Some(c) = self.by_id.get(&id) {
            let _ =
                c.0.entries
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Drops every identity that has no entry and no handle outside the
    /// table (no live session and no execution waiting to be recorded).
    /// Returns how many were dropped.
    pub fn evict_idle(&self) -> usize {
        let idle: Vec<SessionKey> = self
            .by_key
            .iter()
            .filter(|c| is_idle(c.value()))
            .map(|c| c.key().clone())
            .collect();
        let mut dropped = 0;
        for key in idle {
            // Checked again under the shard's write lock: `intern` clones
            // under the read lock, so no new handle can appear meanwhile.
            if let Some((_, c)) = self.by_key.remove_if(&key, |_, c| is_idle(c)) {
                self.by_id.remove(&c.id());
                self.bytes.fetch_sub(c.0.bytes, Ordering::Relaxed);
                dropped += 1;
            }
        }
        dropped
    }

    /// Identities held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

fn is_idle(c: &ClientId) -> bool {
    Arc::strong_count(&c.0) <= OWN_HANDLES && c.0.entries.load(Ordering::Relaxed) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(addr: &str) -> ClientIdentity {
        ClientIdentity {
            application_name: "app".into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: addr.into(),
        }
    }

    #[test]
    fn idle_identities_go_and_held_ones_stay() {
        let t = ClientTable::default();
        let held = t.intern(&who("10.0.0.1"), "", 100);
        for i in 0..50 {
            t.intern(&who(&format!("10.1.0.{i}")), "", 100);
        }
        let with_entry = t.intern(&who("10.0.0.2"), "", 100);
        t.entry_added(&with_entry);
        let id = with_entry.id();
        drop(with_entry);
        assert_eq!(t.len(), 52);
        let before = t.bytes();
        assert_eq!(t.evict_idle(), 50);
        assert_eq!(t.len(), 2);
        assert!(t.bytes() < before / 10, "{} of {before}", t.bytes());
        // The held and the used ones keep their ids.
        assert_eq!(t.intern(&who("10.0.0.1"), "", 100).id(), held.id());
        assert_eq!(t.key_of(id).map(|k| k.0), Some(who("10.0.0.2")));
        t.entry_removed(id);
        drop(held);
        assert_eq!(t.evict_idle(), 2);
        assert_eq!(t.len(), 0);
        assert_eq!(t.bytes(), 0);
        // A new identity never reuses an old id.
        assert!(t.intern(&who("10.0.0.2"), "", 100).id() > id);
    }

    #[test]
    fn past_the_cap_paths_count_as_the_default_with_a_stable_id() {
        let t = ClientTable::default();
        let a = t.intern(&who("a"), "x", 1);
        assert_eq!(a.key().1, "x");
        let b = t.intern(&who("a"), "y", 1);
        assert_eq!(b.key().1, "", "past the cap");
        assert_eq!(t.intern(&who("a"), "z", 1).id(), b.id(), "one overflow id");
        // The exact form (store rows) keeps the path.
        assert_eq!(t.intern_exact(&who("a"), "x").id(), a.id());
    }
}

//! What every session's prepared-statement recovery did, for `/metrics`
//! and `SHOW CLIENTS`.

use dashmap::DashMap;
use std::sync::atomic::AtomicU64;

/// Shared by all sessions.
#[derive(Debug, Default)]
pub struct Registry {
    /// Statements re-prepared with their old shape after
    /// "cached plan must not change result type".
    pub recovered: AtomicU64,
    /// Such errors passed to the client because no equivalent statement
    /// could be proven.
    pub passed_through: AtomicU64,
    /// Per open session (by id): how many of its statements run a shape
    /// pinned by the proxy.
    old_shapes: DashMap<u64, u64>,
}

impl Registry {
    /// Records that `session` runs `n` statements on old shapes.
    pub fn set_old_shapes(&self, session: u64, n: u64) {
        if n == 0 {
            self.old_shapes.remove(&session);
        } else {
            self.old_shapes.insert(session, n);
        }
    }

    /// Statements on old shapes, per open session id.
    pub fn old_shapes(&self) -> Vec<(u64, u64)> {
        self.old_shapes
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect()
    }
}

//! One catalog snapshot per database, loaded in the background on first use,
//! refreshed on an interval and after DDL (coalesced: see [`super::refresh`]).

use super::refresh::{lock, Reload, ReloadCounters, Slot};
use super::snapshot::{self, ServiceLogin};
use super::Catalog;
use crate::net::upstream::Upstream;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

/// Catalog snapshots by database name.
pub struct Catalogs {
    slots: DashMap<String, Arc<Slot>>,
    login: Option<ServiceLogin>,
    refresh: Duration,
    warned: AtomicBool,
    counters: Arc<ReloadCounters>,
}

/// Reloads since start, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadStats {
    /// Snapshots taken (successful or not).
    pub reloads: u64,
    /// Snapshots that failed.
    pub failures: u64,
    /// Service connections opened for snapshots.
    pub connects: u64,
}

impl Catalogs {
    /// Snapshots through `login` (none: resolution degrades), refreshed every `refresh`.
    pub fn new(login: Option<ServiceLogin>, refresh: Duration) -> Catalogs {
        Catalogs {
            slots: DashMap::new(),
            login,
            refresh,
            warned: AtomicBool::new(false),
            counters: Arc::default(),
        }
    }

    /// The current snapshot of `database` (empty until one is loaded).
    pub fn get(&self, database: &str) -> Arc<Catalog> {
        self.slots
            .get(database)
            .map(|s| lock(&s.catalog).clone())
            .unwrap_or_default()
    }

    /// Reloads, failures and service connections since start.
    pub fn stats(&self) -> ReloadStats {
        let c = &self.counters;
        ReloadStats {
            reloads: c.reloads.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
        }
    }

    /// Marks `database`'s snapshot stale (a DDL statement went through);
    /// the next [`Catalogs::ensure`] reloads it once invalidations pause.
    pub fn invalidate(&self, database: &str) {
        if let Some(slot) = self.slots.get(database) {
            *lock(&slot.invalidated_at) = Some(Instant::now());
            slot.stale.store(true, Ordering::SeqCst);
        }
    }

    /// Starts a background reload when `database` has no fresh snapshot
    /// and none is running (a running one picks up a new invalidation
    /// itself, with exactly one more reload).
    pub fn ensure(self: &Arc<Self>, database: &str, upstream: &Arc<Upstream>) {
        let Some(login) = self.login.clone() else {
            if !self.warned.swap(true, Ordering::Relaxed) {
                warn!("no [upstream] user configured: columns are resolved without a catalog (a column in a single-table scope goes to that table; others stay ambiguous)");
            }
            return;
        };
        let slot = self.slots.entry(database.to_string()).or_default().clone();
        let fresh = lock(&slot.loaded_at).is_some_and(|t| t.elapsed() < self.refresh);
        if fresh && !slot.stale.load(Ordering::SeqCst) {
            return;
        }
        if slot.loading.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(
            Reload {
                slot,
                upstream: upstream.clone(),
                login,
                database: database.to_string(),
                counters: self.counters.clone(),
                refresh: self.refresh,
            }
            .run(),
        );
    }

    /// Loads `database`'s snapshot now (tests, reports that need it fresh),
    /// through the same kept service connection.
    pub async fn load_now(
        &self,
        database: &str,
        upstream: &Arc<Upstream>,
    ) -> Result<(), snapshot::CatalogError> {
        let login = self.login.clone().ok_or(snapshot::CatalogError::NoLogin)?;
        let slot = self.slots.entry(database.to_string()).or_default().clone();
        let reload = Reload {
            slot: slot.clone(),
            upstream: upstream.clone(),
            login,
            database: database.to_string(),
            counters: self.counters.clone(),
            refresh: self.refresh,
        };
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let catalog = reload.load().await.inspect_err(|_| {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        })?;
        *lock(&slot.catalog) = Arc::new(catalog);
        *lock(&slot.loaded_at) = Some(Instant::now());
        slot.stale.store(false, Ordering::SeqCst);
        Ok(())
    }
}

//! The background task of the usage registry: loads the store's history at
//! start, adds this proxy's increments every `flush_interval` and at
//! shutdown, takes the store's totals back so that proxies sharing a store
//! see each other's usage, pins each entry's resolution as recorded, and
//! keeps memory under `usage.max_memory` (woken early when it passes the
//! high-water mark). It also measures the impact of recent DDL on their
//! tables' traffic, writes the DDL log to the store and merges the rows
//! other proxies wrote there. Store errors are logged and retried; traffic
//! never waits on this.

use super::registry::now_ms;
use super::store::{Store, StoreSpec};
use super::{ClientIdentity, DdlLog, UsageRecord, UsageRegistry};
use crate::analysis::Analyzer;
use crate::catalog::Catalogs;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Increments of evicted entries kept while the store is unreachable;
/// beyond this the oldest are dropped and counted.
const MAX_CARRIED: usize = 200_000;

/// What the flusher needs.
pub struct Flusher {
    /// The configured store.
    pub spec: StoreSpec,
    /// The aggregate to flush.
    pub usage: Arc<UsageRegistry>,
    /// Re-analyses stored fingerprints.
    pub analyzer: Arc<Analyzer>,
    /// Catalog snapshots, to pin each entry's resolution as recorded.
    pub catalogs: Arc<Catalogs>,
    /// Time between flushes.
    pub interval: Duration,
    /// The DDL log: impacts measured and events written every flush.
    pub ddl: Arc<DdlLog>,
}

/// Why the loop woke up.
enum Wake {
    Tick,
    Pressure,
}

impl Flusher {
    /// Runs until `stop` turns true, then flushes once more and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let persistent = self.spec != StoreSpec::Memory;
        let mut store: Option<Store> = None;
        let mut last_sync: Option<u64> = None;
        let mut last_ddl_sync: Option<u64> = None;
        // Increments of evicted entries not written yet.
        let mut carried: Vec<UsageRecord> = Vec::new();
        let mut wake = Wake::Tick;
        // Pressure wake-ups (evict only) come in between; the ticks keep their pace.
        let mut next_tick = tokio::time::Instant::now() + self.interval;
        loop {
            let stopping = *stop.borrow();
            if stopping {
                // The last pass always syncs, whatever woke it.
                wake = Wake::Tick;
            }
            if persistent && store.is_none() {
                match Store::open(&self.spec).await {
                    Ok(s) => {
                        info!(store = %self.spec.display(), "usage store opened");
                        store = Some(s);
                    }
                    Err(e) => {
                        self.usage.store_errors.fetch_add(1, Ordering::Relaxed);
                        warn!("usage store unavailable, will retry: {e}")
                    }
                }
            }
            // Before evicting too: evicted increments go to the store resolved.
            let catalogs = &self.catalogs;
            self.usage.pin_resolutions(|db| catalogs.get(db));
            let evicted = self.usage.evict();
            if evicted.entries > 0 || evicted.clients > 0 {
                debug!(
                    entries = evicted.entries,
                    clients = evicted.clients,
                    bytes = self.usage.memory_bytes(),
                    "usage evicted to stay under usage.max_memory"
                );
            }
            if persistent {
                carried.extend(evicted.unflushed);
                self.bound_carried(&mut carried);
            }
            if matches!(wake, Wake::Tick) {
                self.measure_ddl_impacts();
            }
            if let Some(s) = &store {
                let result = match wake {
                    Wake::Tick => self.sync(s, &mut last_sync, &mut carried).await,
                    // Kept quick: carried increments go with the next tick.
                    Wake::Pressure => Ok(()),
                };
                match result {
                    Ok(()) => {
                        self.usage.store_flushes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.usage.store_errors.fetch_add(1, Ordering::Relaxed);
                        warn!("usage flush failed, will retry: {e}");
                    }
                }
                if matches!(wake, Wake::Tick) {
                    if let Err(e) = self.sync_ddl(s, &mut last_ddl_sync).await {
                        self.usage.store_errors.fetch_add(1, Ordering::Relaxed);
                        warn!("DDL log flush failed, will retry: {e}");
                    }
                }
            }
            self.usage.prune_minutes(now_ms());
            if stopping {
                if !carried.is_empty() {
                    self.drop_carried(carried.len());
                }
                return;
            }
            wake = tokio::select! {
                _ = tokio::time::sleep_until(next_tick) => Wake::Tick,
                _ = stop.changed() => Wake::Tick,
                _ = self.usage.under_pressure() => Wake::Pressure,
            };
            if matches!(wake, Wake::Tick) {
                next_tick = tokio::time::Instant::now() + self.interval;
            }
        }
    }

    /// Keeps at most `MAX_CARRIED` increments, dropping (and counting) the oldest.
    fn bound_carried(&self, carried: &mut Vec<UsageRecord>) {
        if carried.len() > MAX_CARRIED {
            let excess = carried.len() - MAX_CARRIED;
            carried.drain(..excess);
            self.drop_carried(excess);
        }
    }

    fn drop_carried(&self, n: usize) {
        self.usage
            .store_dropped
            .fetch_add(n as u64, Ordering::Relaxed);
        warn!(
            increments = n,
            "usage increments of evicted entries could not be written to the store and were dropped"
        );
    }

    /// Measures again the traffic on the tables of this proxy's recent
    /// DDL (until their "after" window has ended).
    fn measure_ddl_impacts(&self) {
        let now = now_ms();
        // A migration's DDL on one table share their shapes: found once.
        let mut shapes: HashMap<(String, ClientIdentity), Vec<u64>> = HashMap::new();
        self.ddl.refresh_impacts(|e| {
            let Some(relation) = e.relation() else {
                return Default::default();
            };
            let fps = shapes
                .entry((relation.to_string(), e.client.clone()))
                .or_insert_with(|| self.usage.shapes_of_others(relation, &e.client));
            self.usage
                .impact_of_shapes(fps, e.started_ms(), e.at_ms, now)
        });
    }

    /// Loads the DDL log (first time: the newest rows), writes this
    /// proxy's new and changed events, and merges the rows other proxies
    /// wrote or changed since the last sync.
    async fn sync_ddl(
        &self,
        store: &Store,
        last_sync: &mut Option<u64>,
    ) -> Result<(), super::store::StoreError> {
        let started = now_ms();
        let limit = self.ddl.capacity();
        if last_sync.is_none() {
            let history = store.read_ddl(0, limit).await?;
            info!(rows = history.len(), "DDL log loaded from the store");
            self.ddl.merge_stored(history);
            *last_sync = Some(started);
        }
        let unwritten = self.ddl.take_unwritten();
        if !unwritten.is_empty() {
            let n = unwritten.len();
            if let Err(e) = store.write_ddl(unwritten.clone(), started).await {
                self.ddl.unwritten_again(unwritten);
                return Err(e);
            }
            debug!(events = n, "DDL log flushed");
        }
        // Rows other proxies wrote since the last sync (with a margin for clocks).
        let since = last_sync
            .unwrap_or(0)
            .saturating_sub(2 * self.interval.as_millis() as u64 + 1000);
        self.ddl.merge_stored(store.read_ddl(since, limit).await?);
        *last_sync = Some(started);
        Ok(())
    }

    /// Loads (first time: everything), writes increments (carried ones
    /// first), reads back totals.
    async fn sync(
        &self,
        store: &Store,
        last_sync: &mut Option<u64>,
        carried: &mut Vec<UsageRecord>,
    ) -> Result<(), super::store::StoreError> {
        let started = now_ms();
        if last_sync.is_none() {
            let history = store.read_since(0).await?;
            let n = history.len();
            self.usage
                .merge_stored(history, |t| self.analyzer.analyze(t));
            info!(
                rows = n,
                entries = self.usage.stats().entries,
                "usage history loaded from the store"
            );
            *last_sync = Some(started);
        }
        let deltas = self.usage.deltas();
        if !deltas.is_empty() || !carried.is_empty() {
            let mut records = carried.clone();
            records.extend(deltas.records.iter().cloned());
            let n = records.len();
            store.add(records).await?;
            carried.clear();
            self.usage.mark_flushed(&deltas);
            debug!(entries = n, "usage flushed");
        }
        // Rows other proxies touched since the last sync (with a margin for clocks).
        let since = last_sync
            .unwrap_or(0)
            .saturating_sub(2 * self.interval.as_millis() as u64 + 1000);
        let recent = store.read_since(since).await?;
        self.usage
            .merge_stored(recent, |t| self.analyzer.analyze(t));
        *last_sync = Some(started);
        Ok(())
    }
}

//! The flush task: loads the store's history at start, adds this proxy's
//! increments every `flush_interval` and at shutdown, and takes the store's
//! totals back so that proxies sharing a store see each other's usage.
//! Store errors are logged and retried; traffic never waits on this.

use super::registry::now_ms;
use super::store::{Store, StoreSpec};
use super::UsageRegistry;
use crate::analysis::Analyzer;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// What the flusher needs.
pub struct Flusher {
    /// The configured store.
    pub spec: StoreSpec,
    /// The aggregate to flush.
    pub usage: Arc<UsageRegistry>,
    /// Re-analyses stored fingerprints.
    pub analyzer: Arc<Analyzer>,
    /// Time between flushes.
    pub interval: Duration,
}

impl Flusher {
    /// Runs until `stop` turns true, then flushes once more and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if self.spec == StoreSpec::Memory {
            loop {
                self.usage.prune_minutes(now_ms());
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
        let mut store: Option<Store> = None;
        let mut last_sync: Option<u64> = None;
        loop {
            let stopping = *stop.borrow();
            if store.is_none() {
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
            if let Some(s) = &store {
                match self.sync(s, &mut last_sync).await {
                    Ok(()) => {
                        self.usage.store_flushes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.usage.store_errors.fetch_add(1, Ordering::Relaxed);
                        warn!("usage flush failed, will retry: {e}");
                    }
                }
            }
            self.usage.prune_minutes(now_ms());
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Loads (first time: everything), writes increments, reads back totals.
    async fn sync(
        &self,
        store: &Store,
        last_sync: &mut Option<u64>,
    ) -> Result<(), super::store::StoreError> {
        let started = now_ms();
        if last_sync.is_none() {
            let history = store.read_since(0).await?;
            let n = history.len();
            self.usage
                .merge_stored(history, |t| self.analyzer.analyze(t));
            info!(entries = n, "usage history loaded from the store");
            *last_sync = Some(started);
        }
        let deltas = self.usage.deltas();
        if !deltas.is_empty() {
            store.add(deltas.clone()).await?;
            self.usage.mark_flushed(&deltas);
            debug!(entries = deltas.len(), "usage flushed");
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

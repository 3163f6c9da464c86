//! Reloading one database's snapshot: at most one reload in flight,
//! debounced after DDL (a burst of statements costs one reload, and a
//! request that arrives during a reload costs exactly one more), through
//! one service connection kept between reloads.

use super::snapshot::{self, CatalogError, ServiceConn, ServiceLogin};
use super::Catalog;
use crate::net::upstream::Upstream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Quiet time after the last invalidation before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a reload waits for invalidations to stop (a steady DDL stream
/// still gets a current snapshot).
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// A service connection unused this long is closed.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// Reload counters, exported in `/metrics`.
#[derive(Default)]
pub struct ReloadCounters {
    /// Snapshots taken.
    pub reloads: AtomicU64,
    /// Snapshots that failed (retried later).
    pub failures: AtomicU64,
    /// Service connections opened.
    pub connects: AtomicU64,
}

/// One database's snapshot and the state of its reloads.
#[derive(Default)]
pub struct Slot {
    /// The current snapshot.
    pub catalog: Mutex<Arc<Catalog>>,
    /// When the last reload ended (`None`: never).
    pub loaded_at: Mutex<Option<Instant>>,
    /// A reload task is running.
    pub loading: AtomicBool,
    /// A DDL went through since the running reload started (or since the
    /// last one ended).
    pub stale: AtomicBool,
    /// When the last invalidation arrived.
    pub invalidated_at: Mutex<Option<Instant>>,
    conn: tokio::sync::Mutex<Option<ServiceConn>>,
    /// Bumped at each use of the connection (the idle closer compares it).
    uses: AtomicU64,
}

/// What a reload needs.
pub struct Reload {
    /// The database's slot.
    pub slot: Arc<Slot>,
    /// Where to connect.
    pub upstream: Arc<Upstream>,
    /// As whom.
    pub login: ServiceLogin,
    /// Which database.
    pub database: String,
    /// Counters to bump.
    pub counters: Arc<ReloadCounters>,
    /// `usage.catalog_refresh` (a failed reload is retried 10 s later).
    pub refresh: Duration,
}

/// Locks a std mutex, surviving a panic of another holder.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Reload {
    /// Runs reloads until no invalidation is pending; the caller has set
    /// `slot.loading`.
    pub async fn run(self) {
        loop {
            self.debounce().await;
            self.slot.stale.store(false, Ordering::SeqCst);
            self.reload_once().await;
            if self.slot.stale.load(Ordering::SeqCst) {
                continue;
            }
            self.slot.loading.store(false, Ordering::SeqCst);
            // An invalidation between the check and the store: take it,
            // unless a new task already did.
            if self.slot.stale.load(Ordering::SeqCst)
                && !self.slot.loading.swap(true, Ordering::SeqCst)
            {
                continue;
            }
            break;
        }
        self.close_when_idle();
    }

    async fn debounce(&self) {
        let started = Instant::now();
        loop {
            let quiet = lock(&self.slot.invalidated_at).map(|t| t.elapsed());
            match quiet {
                Some(q) if q < DEBOUNCE && started.elapsed() < MAX_DEBOUNCE => {
                    tokio::time::sleep(DEBOUNCE - q).await;
                }
                _ => return,
            }
        }
    }

    async fn reload_once(&self) {
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        match self.load().await {
            Ok(catalog) => {
                info!(database = %self.database, relations = catalog.len(), "catalog snapshot loaded");
                *lock(&self.slot.catalog) = Arc::new(catalog);
                *lock(&self.slot.loaded_at) = Some(Instant::now());
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                warn!(database = %self.database, "catalog snapshot failed, will retry: {e}");
                // Retry at a use 10 s from now, not in a tight loop.
                let retry = self.refresh.saturating_sub(Duration::from_secs(10));
                *lock(&self.slot.loaded_at) =
                    Instant::now().checked_sub(retry).or(Some(Instant::now()));
            }
        }
    }

    /// A snapshot through the kept connection; a connection that failed is
    /// dropped and the read tried once more on a new one.
    pub async fn load(&self) -> Result<Catalog, CatalogError> {
        let mut conn = self.slot.conn.lock().await;
        self.slot.uses.fetch_add(1, Ordering::Relaxed);
        if let Some(kept) = conn.take().filter(ServiceConn::is_open) {
            match snapshot::read(&kept, &self.login, &self.database).await {
                Ok(catalog) => {
                    *conn = Some(kept);
                    return Ok(catalog);
                }
                Err(e) => {
                    warn!(database = %self.database, "catalog service connection failed, reconnecting: {e}")
                }
            }
        }
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        let fresh = snapshot::connect(&self.upstream, &self.login, &self.database).await?;
        let catalog = snapshot::read(&fresh, &self.login, &self.database).await?;
        *conn = Some(fresh);
        Ok(catalog)
    }

    /// Closes the service connection after [`IDLE_CLOSE`] without a reload.
    fn close_when_idle(&self) {
        let slot = self.slot.clone();
        let used = slot.uses.load(Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(IDLE_CLOSE).await;
            if let Ok(mut conn) = slot.conn.try_lock() {
                if slot.uses.load(Ordering::Relaxed) == used {
                    conn.take();
                }
            }
        });
    }
}

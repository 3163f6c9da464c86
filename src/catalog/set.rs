//! One catalog snapshot per database, loaded in the background on first use,
//! refreshed on an interval and after DDL.

use super::snapshot::{self, ServiceLogin};
use super::Catalog;
use crate::proxy::upstream::Upstream;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

#[derive(Default)]
struct Slot {
    catalog: Mutex<Arc<Catalog>>,
    loaded_at: Mutex<Option<Instant>>,
    loading: AtomicBool,
    stale: AtomicBool,
}

/// Catalog snapshots by database name.
pub struct Catalogs {
    slots: DashMap<String, Arc<Slot>>,
    login: Option<ServiceLogin>,
    refresh: Duration,
    warned: AtomicBool,
}

impl Catalogs {
    /// Snapshots through `login` (none: resolution degrades), refreshed every `refresh`.
    pub fn new(login: Option<ServiceLogin>, refresh: Duration) -> Catalogs {
        Catalogs {
            slots: DashMap::new(),
            login,
            refresh,
            warned: AtomicBool::new(false),
        }
    }

    /// The current snapshot of `database` (empty until one is loaded).
    pub fn get(&self, database: &str) -> Arc<Catalog> {
        self.slots
            .get(database)
            .map(|s| lock(&s.catalog).clone())
            .unwrap_or_default()
    }

    /// Marks `database`'s snapshot stale (a DDL statement went through).
    pub fn invalidate(&self, database: &str) {
        if let Some(slot) = self.slots.get(database) {
            slot.stale.store(true, Ordering::Relaxed);
        }
    }

    /// Starts a background load when `database` has no fresh snapshot.
    pub fn ensure(self: &Arc<Self>, database: &str, upstream: &Arc<Upstream>) {
        let Some(login) = self.login.clone() else {
            if !self.warned.swap(true, Ordering::Relaxed) {
                warn!("no [upstream] user configured: columns are resolved without a catalog (a column in a single-table scope goes to that table; others stay ambiguous)");
            }
            return;
        };
        let slot = self.slots.entry(database.to_string()).or_default().clone();
        let fresh = lock(&slot.loaded_at).is_some_and(|t| t.elapsed() < self.refresh);
        if fresh && !slot.stale.load(Ordering::Relaxed) {
            return;
        }
        if slot.loading.swap(true, Ordering::AcqRel) {
            return;
        }
        slot.stale.store(false, Ordering::Relaxed);
        let upstream = upstream.clone();
        let database = database.to_string();
        let refresh = self.refresh;
        tokio::spawn(async move {
            match snapshot::load(&upstream, &login, &database).await {
                Ok(catalog) => {
                    info!(database = %database, relations = catalog.len(), "catalog snapshot loaded");
                    *lock(&slot.catalog) = Arc::new(catalog);
                    *lock(&slot.loaded_at) = Some(Instant::now());
                }
                Err(e) => {
                    warn!(database = %database, "catalog snapshot failed, will retry: {e}");
                    // Retry at a use 10 s from now, not in a tight loop.
                    let retry = refresh.saturating_sub(Duration::from_secs(10));
                    *lock(&slot.loaded_at) =
                        Instant::now().checked_sub(retry).or(Some(Instant::now()));
                }
            }
            slot.loading.store(false, Ordering::Release);
        });
    }

    /// Loads `database`'s snapshot now (tests, reports that need it fresh).
    pub async fn load_now(
        &self,
        database: &str,
        upstream: &Upstream,
    ) -> Result<(), snapshot::CatalogError> {
        let login = self.login.as_ref().ok_or(snapshot::CatalogError::NoLogin)?;
        let catalog = snapshot::load(upstream, login, database).await?;
        let slot = self.slots.entry(database.to_string()).or_default().clone();
        *lock(&slot.catalog) = Arc::new(catalog);
        *lock(&slot.loaded_at) = Some(Instant::now());
        slot.stale.store(false, Ordering::Relaxed);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

//! State shared by the listener and all sessions: live settings, the cancel
//! key registry, the shutdown phase and a few counters.

use super::gate::{self, ForwardAll, GatePolicy, GateStats};
use super::judge;
use super::tracker::TrackingContext;
use crate::analysis::Analyzer;
use crate::catalog::{Catalogs, ServiceLogin};
use crate::config::Config;
pub use crate::counters::Counters;
use crate::counters::Traffic;
use crate::net::tls::{self, TlsError};
use crate::net::upstream::Upstream;
use crate::usage::{ClientIdentity, DdlLog, UsageRegistry};
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

/// Settings derived from one loaded configuration; replaced whole on reload.
/// A session keeps the snapshot it started with.
pub struct Settings {
    /// The configuration as loaded.
    pub config: Config,
    /// The upstream and its TLS connector.
    pub upstream: Arc<Upstream>,
    /// The client-facing TLS acceptor, when `tls_cert`/`tls_key` are set.
    pub acceptor: Option<TlsAcceptor>,
    /// The `tls-server-end-point` hash of `tls_cert` (SCRAM-SHA-256-PLUS).
    pub end_point: Option<Vec<u8>>,
    /// What the statement gate applies (the DDL policy and guarded
    /// execution of this configuration).
    pub gate: Arc<GatePolicy>,
}

impl Settings {
    /// Builds the TLS objects a configuration needs.
    pub fn new(config: Config) -> Result<Settings, TlsError> {
        let (acceptor, end_point) = match (&config.server.tls_cert, &config.server.tls_key) {
            (Some(cert), Some(key)) => {
                let (acceptor, end_point) = tls::acceptor_and_end_point(cert, key)?;
                (Some(acceptor), Some(end_point))
            }
            _ => (None, None),
        };
        let upstream = Arc::new(Upstream::new(config.upstream.clone())?);
        Ok(Settings {
            config,
            upstream,
            acceptor,
            end_point,
            // Replaced by the configured policy when the settings are
            // installed (`Shared::new`, `replace_settings`).
            gate: Arc::new(GatePolicy {
                judge: Arc::new(ForwardAll),
                guard: None,
            }),
        })
    }
}

/// Where the process is in its life; sessions watch this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and relaying.
    Running,
    /// No longer accepting; existing sessions may finish.
    Draining,
    /// Remaining sessions are being closed with 57P01.
    Closing,
}

/// DDL statements kept for `SHOW DDL`.
const DDL_LOG_CAPACITY: usize = 1000;

/// The configuration file `RELOAD` (and SIGHUP) read, and what applies
/// `[log] level` again after a reload.
pub struct ReloadSource {
    /// The file the proxy was started with.
    pub path: std::path::PathBuf,
    /// Sets the log filter (the process-wide subscriber lives in `main`).
    pub set_log_level: Box<dyn Fn(&str) + Send + Sync>,
}

/// Everything the listener hands to each session.
pub struct Shared {
    settings: RwLock<Arc<Settings>>,
    /// Backend keys of live sessions, for forwarding CancelRequests.
    pub cancels: CancelRegistry,
    /// Counters.
    pub counters: Counters,
    /// Analysis cache and usage aggregate (sized at start).
    pub tracking: TrackingContext,
    /// Who each authenticated relayed session is, by session id
    /// (`SHOW CLIENTS`).
    pub live: DashMap<u64, ClientIdentity>,
    /// Bytes relayed by all sessions.
    pub traffic: Arc<Traffic>,
    /// Admin console connections open now (they take no client slot).
    console_sessions: AtomicUsize,
    /// Where `RELOAD` and SIGHUP read the configuration from.
    pub reload_source: RwLock<Option<ReloadSource>>,
    /// What the statement gates did.
    pub gate_stats: Arc<GateStats>,
    /// Prepared statements re-prepared after ADD COLUMN, and who runs old shapes.
    pub prepared: Arc<super::prepared::Registry>,
    /// The function name prefix refused statements are replaced with.
    pub marker_prefix: Arc<str>,
    /// Verifiers read for `auth.mode = "proxy"`, cached per user.
    pub verifiers: crate::auth::Verifiers,
    /// Throttled backfill jobs (issue 19).
    pub backfills: Arc<crate::backfill::Backfills>,
    phase: watch::Sender<Phase>,
    active: AtomicUsize,
    clients: AtomicUsize,
    idle: Notify,
    next_id: AtomicU64,
}

/// The service login of `[upstream]` (`user`, `password_env`), if configured.
pub fn service_login(config: &Config) -> Option<ServiceLogin> {
    config.upstream.user.clone().map(|user| ServiceLogin {
        user,
        password_env: config.upstream.password_env.clone(),
    })
}

impl Shared {
    /// Creates the shared state for the first configuration.
    pub fn new(settings: Settings) -> Arc<Shared> {
        let usage = &settings.config.usage;
        let login = service_login(&settings.config);
        let tracking = TrackingContext {
            analyzer: Arc::new(Analyzer::new(usage.analysis_cache)),
            usage: Arc::new(UsageRegistry::with_max_memory(
                usage.max_entries,
                usage.max_memory.0,
            )),
            catalogs: Arc::new(Catalogs::new(login, usage.catalog_refresh.0)),
            ddl: Arc::new(DdlLog::new(DDL_LOG_CAPACITY)),
        };
        let backfills = crate::backfill::Backfills::new(
            backfill_context(&settings),
            tracking.usage.clone(),
            usage.store.clone(),
            settings.config.server.listen.to_string(),
        );
        let mut settings = settings;
        let gate_stats: Arc<GateStats> = Arc::default();
        settings.gate = Arc::new(judge::gate_policy(&settings.config, &tracking, &gate_stats));
        Arc::new(Shared {
            tracking,
            settings: RwLock::new(Arc::new(settings)),
            cancels: CancelRegistry::default(),
            counters: Counters::default(),
            live: DashMap::new(),
            traffic: Arc::default(),
            reload_source: RwLock::new(None),
            gate_stats,
            prepared: Arc::default(),
            marker_prefix: gate::marker_prefix(),
            verifiers: crate::auth::Verifiers::default(),
            backfills,
            console_sessions: AtomicUsize::new(0),
            phase: watch::channel(Phase::Running).0,
            active: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            idle: Notify::new(),
            next_id: AtomicU64::new(1),
        })
    }

    /// The current settings snapshot.
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings for sessions that start from now on.
    pub fn replace_settings(&self, mut settings: Settings) {
        self.backfills.configure(backfill_context(&settings));
        settings.gate = Arc::new(judge::gate_policy(
            &settings.config,
            &self.tracking,
            &self.gate_stats,
        ));
        let settings = Arc::new(settings);
        match self.settings.write() {
            Ok(mut s) => *s = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }

    /// Registers a new session; the guard counts it until dropped.
    pub fn open_session(self: &Arc<Self>) -> SessionGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.counters.sessions_total.fetch_add(1, Ordering::Relaxed);
        SessionGuard {
            shared: self.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Takes one of `limit` client slots for a connection that sent a startup
    /// packet (bare TCP probes do not count), or `None` when all are taken.
    pub fn claim_client_slot(self: &Arc<Self>, limit: usize) -> Option<ClientSlot> {
        self.claim(SlotKind::Client, limit)
    }

    /// Takes one of `limit` admin console slots (separate from the client
    /// slots, so operators get in when the proxy is full).
    pub fn claim_console_slot(self: &Arc<Self>, limit: usize) -> Option<ClientSlot> {
        self.claim(SlotKind::Console, limit)
    }

    fn claim(self: &Arc<Self>, kind: SlotKind, limit: usize) -> Option<ClientSlot> {
        let taken = kind.counter(self).fetch_add(1, Ordering::AcqRel) + 1;
        let slot = ClientSlot {
            shared: self.clone(),
            kind,
        };
        (taken <= limit).then_some(slot)
    }

    /// Sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no session is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active_sessions() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Moves to a later phase (never back).
    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that sees phase changes.
    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }
}

/// What backfill jobs started under `settings` connect with.
fn backfill_context(settings: &Settings) -> crate::backfill::Context {
    let config = &settings.config;
    crate::backfill::Context {
        upstream: settings.upstream.clone(),
        login: service_login(config),
        settings: config.backfill.clone(),
    }
}

/// Waits until the phase is `at_least` (or the sender is gone).
pub async fn reached(rx: &mut watch::Receiver<Phase>, at_least: Phase) {
    let _ = rx.wait_for(|p| *p >= at_least).await.map(|_| ());
}

/// Counts one open session; dropping it wakes `wait_idle` on the last one.
pub struct SessionGuard {
    shared: Arc<Shared>,
    /// Session id for logs.
    pub id: u64,
}

/// Which connection limit a slot counts against.
#[derive(Clone, Copy)]
enum SlotKind {
    /// `max_client_connections`.
    Client,
    /// The admin console's own limit.
    Console,
}

impl SlotKind {
    fn counter(self, shared: &Shared) -> &AtomicUsize {
        match self {
            SlotKind::Client => &shared.clients,
            SlotKind::Console => &shared.console_sessions,
        }
    }
}

/// One slot of a connection limit; freed when dropped.
pub struct ClientSlot {
    shared: Arc<Shared>,
    kind: SlotKind,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.kind
            .counter(&self.shared)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.shared.live.remove(&self.id);
        if self.shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

/// Maps backend keys (pid + secret, exactly as in BackendKeyData) to the
/// upstream that issued them, so a CancelRequest reaches the right server.
#[derive(Default)]
pub struct CancelRegistry {
    keys: Mutex<HashMap<Vec<u8>, CancelTarget>>,
}

/// Where a cancel for one backend key goes: the upstream that owns the
/// backend, and the session's wake-up for waits the proxy does itself.
type CancelTarget = (Arc<Upstream>, Arc<Notify>);

impl CancelRegistry {
    /// Records a live session's key; `held` wakes the session's held work
    /// (a wait the proxy does on the client's behalf) when a cancel comes.
    pub fn insert(&self, key: Vec<u8>, upstream: Arc<Upstream>, held: Arc<Notify>) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(key, (upstream, held));
        }
    }

    /// Forgets a key when its session ends.
    pub fn remove(&self, key: &[u8]) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(key);
        }
    }

    /// The upstream that owns `key`, and the session's held-work wake-up,
    /// if a live session has it.
    pub fn lookup(&self, key: &[u8]) -> Option<CancelTarget> {
        self.keys.lock().ok()?.get(key).cloned()
    }
}

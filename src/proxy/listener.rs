//! The accept loop, reload and graceful shutdown.

use super::session;
use super::shared::{reached, Phase, Settings, Shared};
use super::workers::Workers;
use crate::config::Config;
use crate::net::tls::TlsError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tracing::{error, info, warn};

/// Why the proxy could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error} (server.listen)")]
    Bind { addr: SocketAddr, error: io::Error },
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a reload from the configuration file did not happen.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// The proxy was started without a file (embedded in a test or program).
    #[error("the proxy was not started from a configuration file; start it with `ddlguard serve --config FILE` to reload")]
    NoFile,
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Its TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A bound, not yet running proxy.
pub struct Server {
    listener: TcpListener,
    http: Option<TcpListener>,
    shared: Arc<Shared>,
}

/// A handle to a running proxy: reload its settings or stop it.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `server.listen` and prepares the shared state.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let addr = config.server.listen;
        let http_addr = config.admin.http_listen;
        let settings = Settings::new(config)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| ServeError::Bind { addr, error })?;
        let http = match http_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|error| ServeError::Bind { addr, error })?,
            ),
            None => None,
        };
        Ok(Server {
            listener,
            http,
            shared: Shared::new(settings),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The HTTP API's address, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle for reloads and shutdown.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts sessions until shutdown is requested, then drains: sessions
    /// may finish within `server.shutdown_grace`, the rest get 57P01.
    pub async fn run(self) {
        let shared = self.shared;
        let mut phase = shared.phase();
        let (stop_flush, stop_rx) = tokio::sync::watch::channel(false);
        let http = self.http.map(|listener| {
            let config = &shared.settings().config;
            let token = config.admin.http_token_env.as_ref().map(|var| {
                let value = std::env::var(var).ok().filter(|v| !v.is_empty());
                if value.is_none() {
                    warn!("{var} (admin.http_token_env) is not set: /api/v1 refuses every request");
                }
                value
            });
            info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "HTTP API listening");
            let state = crate::admin::http::HttpState {
                handle: Arc::new(ServerHandle {
                    shared: shared.clone(),
                }),
                token,
            };
            crate::admin::http::spawn(listener, state)
                .inspect_err(|e| error!("cannot start the HTTP API thread: {e}"))
                .ok()
        });
        let usage_cfg = shared.settings().config.usage.clone();
        let flusher = tokio::spawn(
            crate::usage::Flusher {
                spec: usage_cfg.store.clone(),
                usage: shared.tracking.usage.clone(),
                analyzer: shared.tracking.analyzer.clone(),
                catalogs: shared.tracking.catalogs.clone(),
                interval: usage_cfg.flush_interval.0,
                ddl: shared.tracking.ddl.clone(),
            }
            .run(stop_rx),
        );
        tokio::spawn(shared.backfills.clone().start());
        let threads = shared.settings().config.server.worker_threads;
        let workers = match threads {
            1 => None,
            n => match Workers::start(n, &shared) {
                Ok(w) => Some(w),
                Err(e) => {
                    error!("cannot start {n} session threads (server.worker_threads): {e}; sessions run on one thread");
                    None
                }
            },
        };
        // With one session thread (this one), its epoll relay.
        let direct = match workers {
            None => super::direct::start_for(&shared, "ddlguard-relay"),
            Some(_) => None,
        };
        info!(listen = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "ddlguard accepting connections");
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let guard = shared.open_session();
                        match &workers {
                            Some(w) => w.dispatch(tcp, peer, guard),
                            None => {
                                tokio::spawn(session::run(tcp, peer, shared.clone(), guard, direct.clone()));
                            }
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        error!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = reached(&mut phase, Phase::Draining) => break,
            }
        }
        drop(self.listener);
        let grace = shared.settings().config.server.shutdown_grace.0;
        let open = shared.active_sessions();
        info!(sessions = open, grace = ?grace, "shutting down: no longer accepting; waiting for sessions to finish");
        if timeout(grace, shared.wait_idle()).await.is_err() {
            warn!(
                sessions = shared.active_sessions(),
                "grace period over; closing remaining sessions with 57P01"
            );
            shared.set_phase(Phase::Closing);
            if timeout(std::time::Duration::from_secs(10), shared.wait_idle())
                .await
                .is_err()
            {
                warn!(
                    sessions = shared.active_sessions(),
                    "sessions still open at exit"
                );
            }
        }
        shared.backfills.stop();
        if let Some(workers) = workers {
            workers.stop();
        }
        if let Some(http) = http.flatten() {
            http.stop();
        }
        // Last flush, so a graceful restart loses nothing.
        let _ = stop_flush.send(true);
        if timeout(std::time::Duration::from_secs(10), flusher)
            .await
            .is_err()
        {
            warn!("final usage flush did not finish within 10 s");
        }
        info!("ddlguard stopped");
    }
}

impl ServerHandle {
    /// Stops accepting and lets sessions finish within the grace period.
    pub fn shutdown(&self) {
        self.shared.set_phase(Phase::Draining);
    }

    /// Closes all sessions now (a second signal during shutdown).
    pub fn terminate(&self) {
        self.shared.set_phase(Phase::Closing);
    }

    /// Sessions currently open.
    pub fn active_sessions(&self) -> usize {
        self.shared.active_sessions()
    }

    /// The usage aggregate (what reports read).
    pub fn usage(&self) -> Arc<crate::usage::UsageRegistry> {
        self.shared.tracking.usage.clone()
    }

    /// Catalog snapshots per database.
    pub fn catalogs(&self) -> Arc<crate::catalog::Catalogs> {
        self.shared.tracking.catalogs.clone()
    }

    /// The upstream new sessions connect to.
    pub fn upstream(&self) -> Arc<crate::net::upstream::Upstream> {
        self.shared.settings().upstream.clone()
    }

    /// Usage rows resolved with each database's catalog snapshot.
    pub fn usage_rows(&self) -> Vec<crate::usage::UsageRow> {
        <Self as crate::admin::view::ReportView>::usage_rows(self)
    }

    /// A handle on existing shared state (the admin console's sessions).
    pub(crate) fn from_shared(shared: Arc<Shared>) -> ServerHandle {
        ServerHandle { shared }
    }

    /// Who each authenticated relayed session is, now.
    pub fn live_sessions(&self) -> Vec<crate::usage::ClientIdentity> {
        self.shared.live.iter().map(|e| e.value().clone()).collect()
    }

    /// Throttled backfill jobs.
    pub fn backfills(&self) -> Arc<crate::backfill::Backfills> {
        self.shared.backfills.clone()
    }

    /// The DDL statements that passed through.
    pub fn ddl_log(&self) -> Arc<crate::usage::DdlLog> {
        self.shared.tracking.ddl.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.shared.settings().config.clone()
    }

    /// Counters of the proxy itself (sessions, protocol surprises).
    pub fn counters(&self) -> &super::shared::Counters {
        &self.shared.counters
    }

    /// What the statement gates did: policy findings, refusals, rewrites,
    /// guarded DDL.
    pub fn gate_stats(&self) -> &super::gate::GateStats {
        &self.shared.gate_stats
    }

    /// Prepared statements re-prepared with their old result shape after
    /// ADD COLUMN, and such errors passed to the client unchanged.
    pub fn prepared_recoveries(&self) -> (u64, u64) {
        let r = &self.shared.prepared;
        (
            r.recovered.load(std::sync::atomic::Ordering::Relaxed),
            r.passed_through.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Per open session's client: its statements kept on an old shape.
    pub fn old_shapes(&self) -> Vec<(crate::usage::ClientIdentity, u64)> {
        let live = &self.shared.live;
        let of = |session: u64| live.get(&session).map(|e| e.value().clone());
        self.shared
            .prepared
            .old_shapes()
            .into_iter()
            .filter_map(|(session, n)| Some((of(session)?, n)))
            .collect()
    }

    /// Bytes relayed, each way.
    pub fn traffic(&self) -> Arc<super::Traffic> {
        self.shared.traffic.clone()
    }

    /// Remembers the file the proxy was started from, so that `RELOAD` in
    /// the admin console (and SIGHUP) can read it again; `set_log_level`
    /// applies `[log] level` after a reload.
    pub fn set_config_file(
        &self,
        path: std::path::PathBuf,
        set_log_level: Box<dyn Fn(&str) + Send + Sync>,
    ) {
        let source = super::shared::ReloadSource {
            path,
            set_log_level,
        };
        match self.shared.reload_source.write() {
            Ok(mut s) => *s = Some(source),
            Err(p) => *p.into_inner() = Some(source),
        }
    }

    /// The configuration file, when the proxy was started from one.
    pub fn config_file(&self) -> Option<std::path::PathBuf> {
        let source = match self.shared.reload_source.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        source.as_ref().map(|s| s.path.clone())
    }

    /// Reads the configuration file again and applies it (SIGHUP, RELOAD).
    /// Returns the changed keys that need a restart; a bad file changes
    /// nothing.
    pub fn reload_from_file(&self) -> Result<Vec<&'static str>, ReloadError> {
        let source = match self.shared.reload_source.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let source = source.as_ref().ok_or(ReloadError::NoFile)?;
        let config = super::load_config(&source.path)?;
        let level = config.log.level.clone();
        let restart = self.reload(config)?;
        (source.set_log_level)(&level);
        Ok(restart)
    }

    /// The analysis cache and its hit/miss counters.
    pub fn analyzer(&self) -> Arc<crate::analysis::Analyzer> {
        self.shared.tracking.analyzer.clone()
    }

    /// Applies a new configuration to sessions started from now on. Returns
    /// the keys whose change needs a restart to take effect.
    pub fn reload(&self, config: Config) -> Result<Vec<&'static str>, TlsError> {
        let old = self.shared.settings();
        let restart = crate::admin::report::restart_keys_changed(&old.config, &config);
        let auth_changed = old.config.auth != config.auth || old.config.upstream != config.upstream;
        let settings = Settings::new(config)?;
        self.shared.replace_settings(settings);
        if auth_changed {
            self.shared.verifiers.clear();
        }
        Ok(restart)
    }
}

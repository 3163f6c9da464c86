//! `ddlguard serve`: builds the runtime the configuration asks for, runs the
//! proxy, and turns signals into reloads (SIGHUP) and shutdowns (SIGTERM,
//! SIGINT; a second one closes every session at once).

use crate::config::Config;
use crate::proxy::{ServeError, Server, ServerHandle};
use std::path::PathBuf;
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Why the proxy stopped other than by a graceful shutdown.
#[derive(Debug, Error)]
pub enum RunError {
    /// The tokio runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The proxy could not start (listen address, TLS, store).
    #[error("starting ddlguard: {0}")]
    Start(#[from] ServeError),
    /// A signal handler could not be installed.
    #[error("installing {name} handler: {source}")]
    Signal {
        /// The signal.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The proxy task panicked or was cancelled.
    #[error("proxy task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the proxy read from `path` until it shuts down. The main thread
/// accepts, flushes usage and handles signals; sessions run on it too with
/// `server.worker_threads = 1`, else on that many session threads (0 = one
/// per core), each a single-thread runtime (see `proxy::workers`).
pub fn run(path: PathBuf, config: Config) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime
        .block_on(serve(path, config))
        .inspect_err(|e| error!("{e}"))
}

async fn serve(path: PathBuf, config: Config) -> Result<(), RunError> {
    let log = crate::logging::init(&config.log.level);
    let server = Server::bind(config).await?;
    let handle = server.handle();
    handle.set_config_file(
        path.clone(),
        Box::new(move |level: &str| log.set_level(level)),
    );
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| RunError::Signal { name, source })
    };
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let run = tokio::spawn(server.run());
    let mut stopping = false;
    let signals = async {
        loop {
            tokio::select! {
                _ = hup.recv() => match handle.reload_from_file() {
                    Ok(restart) => {
                        info!(file = %path.display(), "configuration reloaded");
                        for key in restart {
                            warn!("{key} changed: takes effect after a restart");
                        }
                    }
                    Err(e) => error!("reload refused, keeping the old settings: {e}"),
                },
                _ = term.recv() => stop(&handle, &mut stopping, "SIGTERM"),
                _ = int.recv() => stop(&handle, &mut stopping, "SIGINT"),
            }
        }
    };
    tokio::select! {
        _ = signals => {}
        joined = run => joined?,
    }
    Ok(())
}

fn stop(handle: &ServerHandle, stopping: &mut bool, name: &str) {
    if *stopping {
        warn!("{name} again: closing all sessions now");
        handle.terminate();
    } else {
        info!("{name}: graceful shutdown");
        *stopping = true;
        handle.shutdown();
    }
}

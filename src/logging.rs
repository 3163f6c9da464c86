//! `tracing` setup: the level comes from `[log] level`, `RUST_LOG` wins, and
//! the filter can be swapped on reload.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter of a running process.
pub struct LogHandle {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogHandle {
    /// Applies `[log] level` again, unless `RUST_LOG` fixes the filter.
    pub fn set_level(&self, level: &str) {
        if let (Some(handle), Ok(filter)) = (&self.handle, EnvFilter::try_new(level)) {
            let _ = handle.reload(filter);
        }
    }
}

/// Installs the global subscriber writing to stderr.
pub fn init(level: &str) -> LogHandle {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init();
    LogHandle {
        handle: if from_env.is_some() {
            None
        } else {
            Some(handle)
        },
    }
}

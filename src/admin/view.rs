//! What the reports and the admin surfaces (console, HTTP API, metrics) see
//! of a running proxy. The proxy implements these traits; `admin` never
//! imports `proxy`, and a report can be built from a fake in a unit test.

use crate::analysis::Analyzer;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::counters::{Counters, GateStats, Traffic};
use crate::net::upstream::Upstream;
use crate::usage::{ClientIdentity, DdlLog, UsageRegistry, UsageRow};
use std::path::PathBuf;
use std::sync::Arc;

/// The read-only view the reports are built from.
pub trait ReportView: Send + Sync {
    /// The usage aggregate.
    fn usage(&self) -> Arc<UsageRegistry>;
    /// Catalog snapshots per database.
    fn catalogs(&self) -> Arc<Catalogs>;
    /// The DDL statements that passed through.
    fn ddl_log(&self) -> Arc<DdlLog>;
    /// Who each authenticated relayed session is, now.
    fn live_sessions(&self) -> Vec<ClientIdentity>;
    /// The configuration in force.
    fn config(&self) -> Config;
    /// The file the configuration was read from, when there is one.
    fn config_file(&self) -> Option<PathBuf>;
    /// Usage rows resolved with each database's catalog snapshot.
    fn usage_rows(&self) -> Vec<UsageRow> {
        let catalogs = self.catalogs();
        self.usage().rows(|db| catalogs.get(db))
    }
    /// Per open session's client: how many of its prepared statements the
    /// proxy keeps on the result shape they had before a schema change
    /// (`SHOW CLIENTS` old_shapes).
    fn old_shapes(&self) -> Vec<(ClientIdentity, u64)> {
        Vec::new()
    }
}

/// Why a reload asked from an admin surface changed nothing.
pub type ReloadFailure = Box<dyn std::error::Error + Send + Sync>;

/// The reports' view plus what the console, `/metrics` and `/readyz` need:
/// the proxy's own counters, the upstream, and `RELOAD`.
pub trait AdminView: ReportView {
    /// Sessions open now.
    fn active_sessions(&self) -> usize;
    /// Counters of the proxy itself (sessions, protocol surprises).
    fn counters(&self) -> &Counters;
    /// What the statement gates did (policy findings, guarded DDL).
    fn gate_stats(&self) -> &GateStats;
    /// Bytes relayed, each way.
    fn traffic(&self) -> Arc<Traffic>;
    /// The analysis cache and its counters.
    fn analyzer(&self) -> Arc<Analyzer>;
    /// The upstream new sessions connect to (`/readyz` probes it).
    fn upstream(&self) -> Arc<Upstream>;
    /// Reads the configuration file again and applies it; returns the
    /// changed keys that need a restart.
    fn reload_from_file(&self) -> Result<Vec<&'static str>, ReloadFailure>;
    /// Throttled backfill jobs (`None`: a view without the engine).
    fn backfills(&self) -> Option<Arc<crate::backfill::Backfills>> {
        None
    }
    /// An owned handle on the same proxy (the metrics collector keeps one).
    fn shared_view(&self) -> Arc<dyn AdminView>;
    /// Prepared statements re-prepared with their old shape after "cached
    /// plan must not change result type", and such errors passed through.
    fn prepared_recoveries(&self) -> (u64, u64) {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::report::{self, Cell, Page};
    use std::time::Duration;

    fn client(app: &str) -> ClientIdentity {
        ClientIdentity {
            application_name: app.into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        }
    }

    /// A proxy that is not running: what a report reads, and nothing else.
    struct FakeProxy {
        usage: Arc<UsageRegistry>,
        catalogs: Arc<Catalogs>,
        ddl: Arc<DdlLog>,
        live: Vec<ClientIdentity>,
    }

    impl ReportView for FakeProxy {
        fn usage(&self) -> Arc<UsageRegistry> {
            self.usage.clone()
        }
        fn catalogs(&self) -> Arc<Catalogs> {
            self.catalogs.clone()
        }
        fn ddl_log(&self) -> Arc<DdlLog> {
            self.ddl.clone()
        }
        fn live_sessions(&self) -> Vec<ClientIdentity> {
            self.live.clone()
        }
        fn config(&self) -> Config {
            Config::default()
        }
        fn config_file(&self) -> Option<PathBuf> {
            None
        }
    }

    #[test]
    fn a_report_is_built_from_a_view_without_a_running_proxy() {
        let fake = FakeProxy {
            usage: Arc::new(UsageRegistry::new(100)),
            catalogs: Arc::new(Catalogs::new(None, Duration::from_secs(60))),
            ddl: Arc::new(DdlLog::new(16)),
            live: vec![client("billing"), client("billing"), client("api")],
        };
        let r = report::clients(&fake, &Page::default());
        let sessions: Vec<(Cell, Cell)> = r
            .rows
            .iter()
            .map(|row| (row[0].clone(), row[4].clone()))
            .collect();
        assert_eq!(
            sessions,
            vec![
                (Cell::text("api"), Cell::Int(1)),
                (Cell::text("billing"), Cell::Int(2)),
            ]
        );
        assert!(report::ddl(&fake, 0, &Page::default()).rows.is_empty());
    }
}

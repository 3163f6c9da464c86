//! The proxy as the admin surfaces see it: [`ServerHandle`] implements the
//! views `admin` defines, so reports never depend on the proxy.

use super::ServerHandle;
use crate::admin::view::{AdminView, ReloadFailure, ReportView};
use crate::analysis::Analyzer;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::counters::{Counters, GateStats, Traffic};
use crate::net::upstream::Upstream;
use crate::usage::{ClientIdentity, DdlLog, UsageRegistry};
use std::path::PathBuf;
use std::sync::Arc;

impl ReportView for ServerHandle {
    fn usage(&self) -> Arc<UsageRegistry> {
        ServerHandle::usage(self)
    }
    fn catalogs(&self) -> Arc<Catalogs> {
        ServerHandle::catalogs(self)
    }
    fn ddl_log(&self) -> Arc<DdlLog> {
        ServerHandle::ddl_log(self)
    }
    fn live_sessions(&self) -> Vec<ClientIdentity> {
        ServerHandle::live_sessions(self)
    }
    fn config(&self) -> Config {
        ServerHandle::config(self)
    }
    fn config_file(&self) -> Option<PathBuf> {
        ServerHandle::config_file(self)
    }
    fn old_shapes(&self) -> Vec<(ClientIdentity, u64)> {
        ServerHandle::old_shapes(self)
    }
}

impl AdminView for ServerHandle {
    fn active_sessions(&self) -> usize {
        ServerHandle::active_sessions(self)
    }
    fn counters(&self) -> &Counters {
        ServerHandle::counters(self)
    }
    fn gate_stats(&self) -> &GateStats {
        ServerHandle::gate_stats(self)
    }
    fn traffic(&self) -> Arc<Traffic> {
        ServerHandle::traffic(self)
    }
    fn analyzer(&self) -> Arc<Analyzer> {
        ServerHandle::analyzer(self)
    }
    fn upstream(&self) -> Arc<Upstream> {
        ServerHandle::upstream(self)
    }
    fn reload_from_file(&self) -> Result<Vec<&'static str>, ReloadFailure> {
        ServerHandle::reload_from_file(self).map_err(Into::into)
    }
    fn backfills(&self) -> Option<Arc<crate::backfill::Backfills>> {
        Some(ServerHandle::backfills(self))
    }
    fn shared_view(&self) -> Arc<dyn AdminView> {
        Arc::new(self.clone())
    }
    fn prepared_recoveries(&self) -> (u64, u64) {
        ServerHandle::prepared_recoveries(self)
    }
}

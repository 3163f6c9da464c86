//! Reports on usage (DESIGN section 7): one typed table per report, served
//! by the admin console (pgwire) and the HTTP API (JSON and Prometheus).

pub mod client;
pub mod command;
pub mod console;
/// "Who depends on this?" lives with the usage it reads; re-exported for the reports.
pub use crate::usage::dependents;
pub mod http;
mod http_backfills;
pub mod metrics;
pub mod report;
pub mod table;
pub mod view;

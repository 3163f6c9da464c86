//! Reports on usage (DESIGN section 7): one typed table per report, served
//! by the admin console (pgwire) and the HTTP API (JSON and Prometheus).

pub mod command;
pub mod console;
pub mod dependents;
pub mod http;
pub mod metrics;
pub mod report;

//! Per-client usage: who ran which statement shapes, touching which tables
//! and columns, how often, how fast, with which errors (DESIGN section 5).
//!
//! Recording is a cheap in-memory update keyed by (client, fingerprint); the
//! tables and columns of a fingerprint come from its analysis when a report
//! or a flush expands the entries.

mod flusher;
mod histogram;
mod identity;
mod registry;
pub mod store;

pub use flusher::Flusher;
pub use histogram::LatencyHistogram;
pub use identity::ClientIdentity;
pub use registry::{now_ms, UsageRecord, UsageRegistry, UsageRow, UsageStats};

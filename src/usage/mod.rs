//! Per-client usage: who ran which statement shapes, touching which tables
//! and columns, how often, how fast, with which errors (DESIGN section 5).
//!
//! Recording is a cheap in-memory update keyed by (client, fingerprint); the
//! tables and columns of a fingerprint come from its analysis when a report
//! or a flush expands the entries.

mod clients;
pub mod ddl_log;
pub mod dependents;
mod entry;
mod evict;
mod flusher;
pub mod held;
mod histogram;
mod identity;
pub mod impact;
pub mod kinds;
mod memory;
mod recorded;
mod registry;
mod runs;
pub mod store;
pub mod timeline;
mod wall;

pub use clients::ClientId;
pub use ddl_log::{DdlEvent, DdlLog, DdlNotes, RuleHit};
pub use evict::Eviction;
pub use flusher::Flusher;
pub use histogram::{LatencyHistogram, SparseHistogram};
pub use identity::ClientIdentity;
pub use registry::{now_ms, Deltas, ErrorRow, UsageRecord, UsageRegistry, UsageRow, UsageStats};
pub use wall::Tick;

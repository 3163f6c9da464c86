//! Counters the relay bumps and `/metrics` reads: plain atomics with no
//! behaviour, below both the proxy that writes them and the admin surfaces
//! that read them.

use std::sync::atomic::AtomicU64;

/// Counters exported in logs now and as metrics later.
#[derive(Default)]
pub struct Counters {
    /// Sessions accepted since start.
    pub sessions_total: AtomicU64,
    /// Sessions refused for `max_client_connections`.
    pub sessions_refused: AtomicU64,
    /// Client messages of a type the proxy does not know, relayed unchanged.
    pub unknown_client_messages: AtomicU64,
    /// Server messages of a type the proxy does not know, relayed unchanged.
    pub unknown_server_messages: AtomicU64,
    /// Sessions ended for a protocol violation by the client.
    pub protocol_violations: AtomicU64,
}

/// Bytes relayed by all sessions, each way.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from clients.
    pub from_clients: AtomicU64,
    /// Bytes read from the upstream.
    pub from_server: AtomicU64,
}

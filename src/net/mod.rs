//! The network layer below both the proxy and the catalog: the client/server
//! byte stream (plain or TLS), TLS acceptors and connectors, and the upstream
//! connector. It owns its `[upstream]` settings and knows nothing of
//! sessions, reports, catalogs or the rest of the configuration.

pub mod pg_tls;
pub mod settings;
pub mod stream;
pub mod tls;
pub mod upstream;

//! The network layer below both the proxy and the catalog: the client/server
//! byte stream (plain or TLS), TLS acceptors and connectors, and the upstream
//! connector. It reads plain settings from `config` and knows nothing of
//! sessions, reports or catalogs.

pub mod stream;
pub mod tls;
pub mod upstream;

//! Authentication at the proxy (`[auth] mode = "proxy"`): ddlguard checks
//! the client's SCRAM-SHA-256 (-PLUS over TLS) or md5 answer against the
//! verifier read from the upstream through the service login, then logs in
//! upstream as that user with the ClientKey recovered from the client's
//! proof, as PgBouncer does. No plain password is ever known to the proxy.
//!
//! Layer: above `net`, `wire` and `catalog` (the service connection);
//! `config` embeds [`settings`], `proxy` drives the exchange.

pub mod client_leg;
pub mod lookup;
pub mod md5;
pub mod scram;
pub mod scram_server;
pub mod scram_upstream;
pub mod secret;
pub mod settings;
pub mod upstream_leg;

pub use lookup::{Lookup, Verifiers};
pub use settings::{AuthConfig, AuthMode};

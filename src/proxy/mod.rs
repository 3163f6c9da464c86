//! The proxy itself: listener, sessions, upstream connections and TLS.

mod handshake;
mod listener;
mod relay;
mod session;
mod shared;
pub mod stream;
pub mod tls;
pub mod tracker;
pub mod upstream;

pub use listener::{ServeError, Server, ServerHandle};

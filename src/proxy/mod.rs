//! The proxy itself: listener, sessions, upstream connections and TLS.

mod exchange;
pub mod gate;
mod handshake;
mod held;
mod judge;
mod listener;
mod path_state;
mod relay;
mod session;
pub(crate) mod shared;
pub mod stream;
pub mod tls;
pub mod tracker;
pub mod upstream;

pub use listener::{ReloadError, ServeError, Server, ServerHandle};
pub use relay::{Traffic, COPY_ABANDONED};

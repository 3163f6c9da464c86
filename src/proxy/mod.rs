//! The proxy itself: listener, sessions and the relay (the upstream
//! connector and TLS live in [`crate::net`]).

mod buffers;
mod closing;
pub mod direct;
mod exchange;
pub mod gate;
mod handshake;
mod held;
mod judge;
mod listener;
mod load;
mod login;
mod path_state;
pub mod prepared;
mod relay;
mod session;
pub(crate) mod shared;
pub mod tracker;
mod view;
mod workers;

pub use listener::{ReloadError, ServeError, Server, ServerHandle};
pub use load::{load_config, parse_config, CHECKS};
pub use relay::{Traffic, COPY_ABANDONED};

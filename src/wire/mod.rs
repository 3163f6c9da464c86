//! Postgres frontend/backend protocol types, kept apart from any I/O.
//!
//! Only what the proxy inspects is decoded here; everything else is handled as
//! opaque framed bytes (`frame`).

pub mod error;
pub mod frame;
pub mod messages;
pub mod startup;

pub use error::WireError;
pub use frame::{FrameHeader, HEADER_LEN};
pub use startup::{StartupPacket, StartupParams};

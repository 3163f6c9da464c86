//! ddlguard: a Postgres wire-protocol proxy that relays sessions
//! transparently, records schema usage per client and guards DDL.
//!
//! The binary (`main.rs`) is a thin command line over this library, so that
//! tests can start a proxy in process.

pub mod admin;
pub mod analysis;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod counters;
pub mod guard;
pub mod lint;
pub mod logging;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod units;
pub mod usage;
pub mod wire;

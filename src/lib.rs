//! ddlguard: a Postgres wire-protocol proxy that relays sessions
//! transparently, records schema usage per client and guards DDL.
//!
//! The binary (`main.rs`) is a thin command line over this library, so that
//! tests can start a proxy in process.
//!
//! Layers, lowest first (a module imports only from layers below it; a unit
//! test keeps it so): `wire`, `units`, `counters`; `net` (stream, TLS,
//! upstream connector, `[upstream]` settings); `catalog`; `auth`
//! (client authentication at the proxy, `[auth]` settings); `analysis`;
//! `usage`, `policy`, `guard`; `config` (parses plain values and embeds the
//! sections the modules own); `admin` (reports over a read-only view) and
//! `lint`; `proxy` (implements the view, loads and checks the
//! configuration); `cli`.

pub mod admin;
pub mod analysis;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod counters;
pub mod guard;
#[cfg(test)]
mod layering_tests;
pub mod lint;
pub mod logging;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod units;
pub mod usage;
pub mod wire;

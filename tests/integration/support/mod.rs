//! The integration test harness: a real Postgres cluster and ddlguard in front of it.

#![allow(dead_code)]

pub mod certs;
pub mod cluster;
pub mod http;
pub mod items;
pub mod notices;
pub mod pg_bin;
pub mod proxy;
pub mod raw;
pub mod scenario;
pub mod scram_cluster;
pub mod spawn;

pub use cluster::Cluster;
pub use proxy::{connect, BinProxy, TestProxy};

//! Integration tests: real Postgres (started by `support`), real clients,
//! ddlguard in between. One binary, one shared cluster; tests isolate
//! themselves by database.

mod support;

mod auth;
mod cli;
mod clients;
mod console;
mod faults;
mod policy_rewrites;
mod relay;
mod reports;
mod tls;
mod usage;

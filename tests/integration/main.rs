//! Integration tests: real Postgres (started by `support`), real clients,
//! ddlguard in between. One binary, one shared cluster; tests isolate
//! themselves by database.

mod support;

mod after_commit;
mod auth;
mod backfill;
mod cancel;
mod catalog_refresh;
mod cli;
mod clients;
mod console;
mod ddl_log;
mod epoll_relay;
mod examples;
mod extended_ddl;
mod faults;
mod guard;
mod guard_options;
mod lint;
mod memory;
mod objects_in_use;
mod playbook;
mod policy;
mod policy_rewrites;
mod prepared_shapes;
mod relay;
mod report_load;
mod report_rows;
mod reports;
mod tls;
mod usage;
mod windows;
mod workers;

//! The commands of the `ddlguard` binary, as library functions: `main.rs`
//! only parses arguments and dispatches here (ripgrep's shape), so each
//! command can be read and tested without the argument parser.

pub mod backfill;
pub mod report;
pub mod serve;

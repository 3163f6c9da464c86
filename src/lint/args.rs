//! The command line of `ddlguard lint` (DESIGN section 2), kept in the
//! library so that `main.rs` only forwards to [`super::run`].

use super::model::{Level, LintFinding};
use std::path::PathBuf;

/// `ddlguard lint [--config F] [--format ...] [--usage-from URL] [--fail-on
/// warn|block] [--pg-version N] [--assume-in-transaction] FILE|DIR...`
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Configuration file whose [policy] applies (default: the built-in policy).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// A running proxy's HTTP address (e.g. http://proxy:9187): usage-aware
    /// rules ask it who still depends on what the files drop or rename, and
    /// table sizes come from its catalog. Token from DDLGUARD_HTTP_TOKEN.
    #[arg(long, value_name = "URL")]
    pub usage_from: Option<String>,
    /// Exit 1 when a finding at or above this level is reported.
    #[arg(long, value_enum, default_value = "block")]
    pub fail_on: FailOn,
    /// Postgres major version the migrations run on (default 15).
    #[arg(long, value_name = "N")]
    pub pg_version: Option<u32>,
    /// The migration tool wraps each file in a transaction (Rails, Django,
    /// Flyway, sqlx): statements run inside one, and a BEGIN in the file nests.
    #[arg(long)]
    pub assume_in_transaction: bool,
    /// Migration files, or directories walked for `*.sql` in name order.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

impl Args {
    /// `server_version_num` for the rules (`15` and `150000` both mean 15.0).
    pub fn server_version(&self) -> u32 {
        match self.pg_version {
            None => 150000,
            Some(n) if n < 1000 => n * 10000,
            Some(n) => n,
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compiler-style lines with a hint and a summary.
    Text,
    /// One JSON document: findings, notes and a summary, stable keys.
    Json,
    /// GitHub Actions workflow commands (`::error file=...::`).
    Github,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

/// The lowest level that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any finding.
    Warn,
    /// Findings the proxy would block or rewrite.
    Block,
}

impl FailOn {
    /// True when `f` makes the run fail.
    pub fn reached(self, f: &LintFinding) -> bool {
        match self {
            FailOn::Warn => true,
            FailOn::Block => f.level == Level::Error,
        }
    }
}

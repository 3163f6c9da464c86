//! `ddlguard lint`: the proxy's DDL policy (same rules, ids, actions and
//! `[policy]` configuration) run offline on migration files, for CI and
//! review. Files are split as psql reads them, judged statement by
//! statement with the transaction and the tables created so far in the run
//! as context, and reported as text, JSON, GitHub annotations or SARIF.

pub mod args;
pub mod check;
pub mod error;
pub mod files;
pub mod model;
pub mod output;
pub mod usage;
pub mod verdict;

pub use args::{Args, FailOn, Format};
pub use error::LintError;
pub use model::{Level, LintFinding, Note, NoteKind, Outcome};

use crate::config::PolicySettings;
use std::process::ExitCode;

/// Exit status when no finding reaches `--fail-on`.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status when some finding reaches `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status for I/O, configuration or usage lookup errors.
pub const EXIT_ERROR: u8 = 2;

/// Runs the command: lints, prints in the chosen format, and returns the
/// exit status (errors go to stderr with status 2).
pub fn run(args: &Args) -> ExitCode {
    match lint(args) {
        Ok(outcome) => {
            print!("{}", output::render(args.format, &outcome));
            let failed = outcome.findings.iter().any(|f| args.fail_on.reached(f));
            ExitCode::from(if failed { EXIT_FINDINGS } else { EXIT_CLEAN })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Lints the files and directories of `args` and returns what was found.
pub fn lint(args: &Args) -> Result<Outcome, LintError> {
    let settings = match &args.config {
        Some(path) => {
            crate::proxy::load_config(path)
                .map_err(|e| LintError::Config(e.to_string()))?
                .policy
        }
        None => PolicySettings::default(),
    };
    let files = files::collect(&args.paths)?;
    let remote = match &args.usage_from {
        Some(url) => Some(usage::Remote::connect(url)?),
        None => None,
    };
    let options = check::Options {
        server_version: args.server_version(),
        assume_in_transaction: args.assume_in_transaction,
    };
    check::run(&files, &settings, &options, remote.as_ref())
}

//! Why a lint run could not judge its files (exit status 2).

use std::path::PathBuf;

/// A lint run that failed before or while judging.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A path given on the command line names neither a file nor a directory with `*.sql`.
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    /// The configuration file was refused.
    #[error("{0}")]
    Config(String),
    /// `--usage-from` was given but the proxy could not answer.
    #[error("usage lookup failed: {0}")]
    Usage(String),
}

impl From<crate::admin::client::ClientError> for LintError {
    fn from(e: crate::admin::client::ClientError) -> Self {
        LintError::Usage(e.to_string())
    }
}

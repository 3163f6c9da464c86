//! Why a backfill request was refused or a job could not go on. Every
//! refusal says what, why and what to do instead, with a SQLSTATE.

use thiserror::Error;

/// A refused request or a failed operation on a job.
#[derive(Debug, Error)]
pub enum BackfillError {
    /// The request is incomplete or malformed (42601 / 22023).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// What to write instead.
        hint: String,
    },
    /// The table cannot be backfilled safely as asked (55000).
    #[error("{message}")]
    Unsafe {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The table or a column does not exist (42P01 / 42703).
    #[error("{message}")]
    Missing {
        /// SQLSTATE.
        code: &'static str,
        /// What is missing.
        message: String,
    },
    /// No job has this id (42704).
    #[error("no backfill job {0}")]
    NoJob(u64),
    /// The job is not in a state that allows this (55000).
    #[error("backfill job {id} is {state}: cannot {action} it")]
    State {
        /// The job.
        id: u64,
        /// Its state.
        state: String,
        /// What was asked.
        action: &'static str,
    },
    /// The proxy cannot reach or log in to the upstream (08001 / 28000).
    #[error("{0}")]
    Upstream(String),
    /// A query of the job's own failed (SQLSTATE from the server).
    #[error("{message}")]
    Server {
        /// The server's SQLSTATE.
        code: String,
        /// The server's message (never a value from the table).
        message: String,
    },
    /// The engine is not running (proxy shutting down).
    #[error("the backfill engine is stopped (the proxy is shutting down)")]
    Stopped,
}

impl BackfillError {
    /// The SQLSTATE the console sends.
    pub fn sqlstate(&self) -> &str {
        match self {
            BackfillError::Invalid { .. } => "42601",
            BackfillError::Unsafe { .. } | BackfillError::State { .. } => "55000",
            BackfillError::Missing { code, .. } => code,
            BackfillError::NoJob(_) => "42704",
            BackfillError::Upstream(_) => "08001",
            BackfillError::Server { code, .. } => code,
            BackfillError::Stopped => "57P01",
        }
    }

    /// What to do instead, when there is advice.
    pub fn hint(&self) -> Option<String> {
        match self {
            BackfillError::Invalid { hint, .. } | BackfillError::Unsafe { hint, .. } => {
                Some(hint.clone())
            }
            BackfillError::Missing { .. } => {
                Some("check the table and column names (and --database)".into())
            }
            BackfillError::NoJob(_) => Some("SHOW BACKFILLS lists the jobs".into()),
            BackfillError::State { .. } => Some(
                "PAUSE a running job, RESUME a paused one; done and cancelled jobs are final"
                    .into(),
            ),
            BackfillError::Upstream(_) => Some(
                "backfills run through the service login: set [upstream] user (and password_env)"
                    .into(),
            ),
            BackfillError::Server { .. } | BackfillError::Stopped => None,
        }
    }

    /// An HTTP status for the API.
    pub fn http_status(&self) -> u16 {
        match self {
            BackfillError::Invalid { .. } => 400,
            BackfillError::Missing { .. } | BackfillError::NoJob(_) => 404,
            BackfillError::Unsafe { .. } | BackfillError::State { .. } => 409,
            BackfillError::Upstream(_) | BackfillError::Stopped => 503,
            BackfillError::Server { .. } => 502,
        }
    }

    /// A server error, with its SQLSTATE when the server sent one.
    pub fn server(e: &tokio_postgres::Error) -> BackfillError {
        match e.as_db_error() {
            Some(db) => BackfillError::Server {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => BackfillError::Upstream(format!("upstream connection: {e}")),
        }
    }
}

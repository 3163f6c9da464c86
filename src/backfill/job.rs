//! A backfill job: what was asked, where it stands, and the state machine
//! (running -> paused -> running, running -> done, any live state ->
//! cancelled). A job is one row of the store and one of `SHOW BACKFILLS`.

use super::error::BackfillError;
use serde::{Deserialize, Serialize};

/// What a client asks for (console `BACKFILL`, `POST /api/v1/backfills`,
/// `ddlguard backfill`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// `table` or `schema.table`.
    pub table: String,
    /// The assignments: `col = expr[, col2 = expr2]`.
    pub set: String,
    /// Rows to update; default `(cols) IS DISTINCT FROM (exprs)`, so a rerun
    /// redoes nothing.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_clause: Option<String>,
    /// Rows per batch at most (default `backfill.batch_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// The unique key to walk (default: the primary key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Rows per second at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// The database (default: the one the table was seen in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Allow subqueries in the expressions (they run once per row).
    #[serde(default)]
    pub allow_subquery: bool,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Batches are running (or the job waits between them).
    Running,
    /// Stopped by PAUSE or by a batch error (then `error` says which).
    Paused,
    /// Every key range was visited.
    Done,
    /// Stopped for good by CANCEL.
    Cancelled,
}

impl JobState {
    /// The name shown and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "done" => JobState::Done,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Done and cancelled jobs never run again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Cancelled)
    }
}

/// An operator's action on a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop after the batch in flight; RESUME continues.
    Pause,
    /// Continue a paused job from its last committed key.
    Resume,
    /// Stop for good after the batch in flight.
    Cancel,
}

impl Action {
    /// The verb, as in the URL and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Cancel => "cancel",
        }
    }

    /// The state after the action, or why it is refused.
    pub fn apply(self, id: u64, from: JobState) -> Result<JobState, BackfillError> {
        let refuse = || BackfillError::State {
            id,
            state: from.as_str().into(),
            action: self.as_str(),
        };
        match (self, from) {
            (Action::Pause, JobState::Running) => Ok(JobState::Paused),
            (Action::Resume, JobState::Paused) => Ok(JobState::Running),
            (Action::Cancel, JobState::Running | JobState::Paused) => Ok(JobState::Cancelled),
            _ => Err(refuse()),
        }
    }
}

/// One job as stored and shown: the plan, the progress and the throttle.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// Database.
    pub database: String,
    /// Schema of the table.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The unique key column walked in order.
    pub key: String,
    /// Its SQL type (`bigint`, `uuid`, ...).
    pub key_type: String,
    /// The assignments, normalized by the parser.
    pub set: String,
    /// The row filter, normalized by the parser.
    #[serde(rename = "where")]
    pub where_clause: String,
    /// Largest batch.
    pub max_batch: u64,
    /// Rows per second at most (0: no limit).
    pub max_rate: f64,
    /// Where the job is.
    pub state: JobState,
    /// Rows updated so far.
    pub rows_done: u64,
    /// Keys visited so far (updated or already right).
    pub rows_scanned: u64,
    /// The table's row estimate when the job started.
    pub rows_estimated: u64,
    /// The last key of the last committed batch (as text); `None` before
    /// the first batch.
    pub current_key: Option<String>,
    /// Keys visited per second over the last batches.
    pub rate: f64,
    /// Seconds left at the current rate, when it can be told.
    pub eta_seconds: Option<f64>,
    /// Current batch size.
    pub batch_size: u64,
    /// Current pause between batches, ms.
    pub pause_ms: u64,
    /// Why the job is slower than it could be (`none` when it is not).
    pub throttle_reason: String,
    /// The other clients' p95 on the table before the job, ms.
    pub baseline_p95_ms: Option<f64>,
    /// Their p95 over the last measured window, ms.
    pub traffic_p95_ms: Option<f64>,
    /// The error that paused the job (SQLSTATE and message).
    pub error: Option<String>,
    /// When the job was created, ms since the epoch.
    pub created_ms: u64,
    /// Last progress or state change, ms since the epoch.
    pub updated_ms: u64,
    /// The proxy that runs it (its listen address): after a restart a
    /// proxy resumes its own running jobs only.
    pub owner: String,
}

impl Job {
    /// `schema.table`.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// Recomputes the ETA from the rate and what is left of the estimate.
    pub fn update_eta(&mut self) {
        self.eta_seconds = if self.state == JobState::Done {
            Some(0.0)
        } else if self.rate > 0.0 {
            let left = self.rows_estimated.saturating_sub(self.rows_scanned);
            Some(left as f64 / self.rate)
        } else {
            None
        };
    }
}

/// A job as tests need one.
#[cfg(test)]
pub(crate) fn sample() -> Job {
    Job {
        id: 0,
        database: "app".into(),
        schema: "public".into(),
        table: "users".into(),
        key: "id".into(),
        key_type: "bigint".into(),
        set: "x = 1".into(),
        where_clause: "x IS DISTINCT FROM (1)".into(),
        max_batch: 1000,
        max_rate: 0.0,
        state: JobState::Running,
        rows_done: 0,
        rows_scanned: 0,
        rows_estimated: 10,
        current_key: None,
        rate: 0.0,
        eta_seconds: None,
        batch_size: 250,
        pause_ms: 0,
        throttle_reason: "none".into(),
        baseline_p95_ms: None,
        traffic_p95_ms: None,
        error: None,
        created_ms: 1,
        updated_ms: 1,
        owner: "127.0.0.1:6432".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_state_machine() {
        use Action::*;
        use JobState::*;
        assert_eq!(Pause.apply(1, Running).unwrap(), Paused);
        assert_eq!(Resume.apply(1, Paused).unwrap(), Running);
        assert_eq!(Cancel.apply(1, Paused).unwrap(), Cancelled);
        assert_eq!(Cancel.apply(1, Running).unwrap(), Cancelled);
        for (a, s) in [
            (Pause, Paused),
            (Resume, Running),
            (Resume, Done),
            (Cancel, Done),
        ] {
            let e = a.apply(7, s).unwrap_err();
            assert_eq!(e.sqlstate(), "55000");
            assert!(e.to_string().contains("job 7"), "{e}");
        }
        for s in [Running, Paused, Done, Cancelled] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
    }
}

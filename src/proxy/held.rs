//! The work a session does itself for a held statement, on its own
//! upstream connection: a rewrite's safe sequence, or a DDL statement run
//! under guarded execution (pre-flight, lock timeout, retries, blockers
//! named). The client is answered as if its statement had run: the
//! server's own replies where the statement ran, notices for what the proxy
//! did, then ReadyForQuery.

use super::exchange;
use super::gate::{self, Gate, GateStats, Guarded, HeldWork, Rewrite};
use super::relay::{Relay, RelayEnd};
use crate::guard::{self, backoff, blockers};
use crate::policy::tokens::literal;
use crate::usage::DdlNotes;
use crate::wire::messages::{self, ErrorFields, ProxyError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How the attempts of a guarded statement ended.
struct Attempts {
    /// The last attempt's replies.
    outcome: exchange::Outcome,
    /// Transaction status after the proxy's own clean-up statements.
    status: u8,
    /// The last attempt hit its lock timeout.
    timed_out: bool,
    /// Attempts made.
    attempts: u32,
    /// The lock timeout of each attempt.
    timeout_ms: u64,
    /// A CancelRequest ended a wait; the statement did not run then.
    cancelled: bool,
}

impl Attempts {
    /// The attempts ended by a cancel while waiting (nothing of the
    /// statement is left running or half done).
    fn cancelled(status: u8, attempts: u32, timeout_ms: u64) -> Attempts {
        Attempts {
            outcome: exchange::Outcome::default(),
            status,
            timed_out: false,
            attempts,
            timeout_ms,
            cancelled: true,
        }
    }
}

/// The error a client gets when it cancelled a statement ddlguard was
/// waiting to run, as Postgres words a cancel.
fn cancelled_error() -> ProxyError {
    ProxyError::error("57014", "canceling statement due to user request").with_detail(
        "ddlguard was waiting to run it (pre-flight or a pause between lock attempts); it did not run",
    )
}

/// What guarded execution did for one held statement, for the DDL log.
#[derive(Debug, Default, Clone)]
pub struct HeldRecord {
    /// Attempts made (all guarded statements of the held work).
    pub attempts: u32,
    /// Time spent waiting in pre-flight, ms.
    pub preflight_wait_ms: u64,
    /// Time attempts spent waiting for their lock before timing out, ms.
    pub lock_wait_ms: u64,
    /// The blockers seen, one line each (fingerprints, never literals).
    pub blockers: Vec<String>,
    /// pids ended by `policy.terminate_idle_blockers_after`.
    pub terminated: Vec<String>,
}

/// How a rewrite's steps ended.
enum StepsEnd {
    /// Every step ran.
    Done,
    /// Step `n` (`sql`) failed with `error`; the steps after it did not run.
    Failed {
        n: usize,
        sql: String,
        error: ErrorFields,
    },
    /// A CancelRequest ended a wait of a guarded step; it did not run.
    Cancelled,
}

/// The steps' end and the transaction status after them.
struct Steps {
    status: u8,
    end: StepsEnd,
}

/// A rewrite's steps, `; `-separated, for a notice or hint.
fn steps_text(rewrite: &Rewrite) -> String {
    let steps: Vec<&str> = rewrite.steps.iter().map(|s| s.sql.as_str()).collect();
    steps.join("; ")
}

/// The tag of the first CommandComplete among `frames`.
fn command_tag(frames: &[u8]) -> Option<String> {
    let mut found = None;
    for_each_frame(frames, |tag, frame| {
        if tag == b'C' && found.is_none() {
            found = Some(String::from_utf8_lossy(messages::cstr(&frame[5..]).0).into_owned());
        }
    });
    found
}

/// Longest pause between two pre-flight looks at the blockers (each is one
/// query on pg_locks): the DDL starts at most this long after they ended.
const PREFLIGHT_POLL_MAX: Duration = Duration::from_millis(250);

/// The savepoint guarded execution retries from inside a transaction block.
const SAVEPOINT: &str = "ddlguard_attempt";

impl Relay {
    /// Runs a rewrite's steps; returns the client's answer.
    pub(super) async fn run_rewrite(&mut self, rewrite: &Rewrite) -> Result<Vec<u8>, RelayEnd> {
        let mut for_client = Vec::new();
        for notice in &rewrite.notices {
            notice.encode(&mut for_client);
        }
        let steps = self.run_steps(rewrite, &mut for_client).await?;
        match steps.end {
            StepsEnd::Done => {
                for_client.extend_from_slice(&exchange::command_complete(&rewrite.tag))
            }
            StepsEnd::Cancelled => cancelled_error().encode(&mut for_client),
            StepsEnd::Failed { n, sql, error } => {
                let total = rewrite.steps.len();
                ProxyError::error(
                    error.code,
                    format!("ddlguard: step {n}/{total} of the safe sequence failed: {}", error.message),
                )
                .with_detail(format!("the failed step: {sql}"))
                .with_hint("the steps before it are done; fix the cause and run the same statement again: ddlguard finishes the sequence (steps that are done are skipped or repeated safely)")
                .encode(&mut for_client);
            }
        }
        for_client.extend_from_slice(&exchange::ready_for_query(steps.status));
        Ok(for_client)
    }

    /// Answers a rewrite that must run outside a transaction block but came
    /// inside one (a prepared statement judged when the session was idle):
    /// in a failed transaction as Postgres would (25P02), else refused.
    pub(super) async fn rewrite_refused(&mut self, rewrite: &Rewrite) -> Result<Vec<u8>, RelayEnd> {
        let mut for_client = Vec::new();
        let status = if self.state.tx_status == b'E' {
            let outcome = self.client_statement(&rewrite.original).await?;
            for_client.extend_from_slice(&outcome.frames);
            outcome.status
        } else {
            // Like a failing statement, it leaves the transaction failed.
            let status = self.fail_transaction(&mut for_client).await?;
            gate::cannot_rewrite_here(rewrite, true).encode(&mut for_client);
            status
        };
        for_client.extend_from_slice(&exchange::ready_for_query(status));
        Ok(for_client)
    }

    /// Answers a statement whose safe sequence waits for its transaction's
    /// COMMIT as if it ran (its tag), telling the client so; the gate keeps
    /// the sequence.
    pub(super) fn run_defer(&mut self, rewrite: &Rewrite) -> Vec<u8> {
        let mut for_client = Vec::new();
        for notice in &rewrite.notices {
            notice.encode(&mut for_client);
        }
        ProxyError::notice(format!(
            "ddlguard: {} is deferred until this transaction commits (policy.in_transaction = \"after-commit\"); its safe sequence runs right after COMMIT, before COMMIT is answered",
            rewrite.tag
        ))
        .with_detail(steps_text(rewrite))
        .encode(&mut for_client);
        for_client.extend_from_slice(&exchange::command_complete(&rewrite.tag));
        for_client.extend_from_slice(&exchange::ready_for_query(self.state.tx_status));
        if let Some(gate) = self.gate.as_mut() {
            gate.defer(rewrite.clone());
        }
        for_client
    }

    /// Runs the client's COMMIT; when the transaction committed, runs the
    /// sequences deferred in it, reporting each in a notice, then answers
    /// the COMMIT. When it did not commit (a failed transaction's COMMIT
    /// rolls back), the gate drops them and says so.
    pub(super) async fn run_commit(&mut self, sql: &str) -> Result<Vec<u8>, RelayEnd> {
        let deferred = self
            .gate
            .as_mut()
            .map(Gate::take_deferred)
            .unwrap_or_default();
        let outcome = self.client_statement(sql).await?;
        let committed = outcome.error.is_none()
            && outcome.status == b'I'
            && command_tag(&outcome.frames).as_deref() == Some("COMMIT");
        let mut for_client = Vec::new();
        let mut status = outcome.status;
        if committed {
            for rewrite in &deferred {
                status = self.after_commit(rewrite, &mut for_client).await?;
            }
        } else if let Some(gate) = self.gate.as_mut() {
            // Still in a transaction (COMMIT AND CHAIN) they wait for the
            // next COMMIT; else the ReadyForQuery drops them, with a warning.
            for rewrite in deferred {
                gate.defer(rewrite);
            }
        }
        for_client.extend_from_slice(&outcome.frames);
        for_client.extend_from_slice(&exchange::ready_for_query(status));
        Ok(for_client)
    }

    /// Runs one deferred sequence after its transaction committed and
    /// reports the outcome; returns the transaction status after it.
    async fn after_commit(
        &mut self,
        rewrite: &Rewrite,
        for_client: &mut Vec<u8>,
    ) -> Result<u8, RelayEnd> {
        self.held_record = Default::default();
        let started = Instant::now();
        let steps = self.run_steps(rewrite, for_client).await?;
        let record = std::mem::take(&mut self.held_record);
        if let Some(tracker) = &self.tracker {
            let error = match &steps.end {
                StepsEnd::Done => None,
                StepsEnd::Cancelled => Some(*b"57014"),
                StepsEnd::Failed { error, .. } => error.code.as_bytes().try_into().ok(),
            };
            let notes = DdlNotes {
                rules: Vec::new(),
                action: "after-commit".into(),
                attempts: record.attempts.max(1),
                preflight_wait_ms: record.preflight_wait_ms,
                lock_wait_ms: record.lock_wait_ms,
                blockers: record.blockers,
                terminated: record.terminated,
            };
            let us = started.elapsed().as_micros() as u64;
            tracker.record_ddl(&rewrite.original, us, error, &notes);
        }
        let total = rewrite.steps.len();
        let report = match steps.end {
            StepsEnd::Done => ProxyError::notice(format!(
                "ddlguard: after COMMIT, the safe sequence of the deferred {} finished ({total} steps)",
                rewrite.tag
            ))
            .with_detail(steps_text(rewrite)),
            StepsEnd::Cancelled => ProxyError::warning(
                "01000",
                format!(
                    "ddlguard: after COMMIT, the safe sequence of the deferred {} was cancelled; it did not finish",
                    rewrite.tag
                ),
            )
            .with_hint(format!("run it yourself: {}", steps_text(rewrite))),
            StepsEnd::Failed { n, sql, error } => {
                tracing::warn!(step = n, code = %error.code, tag = %rewrite.tag, "deferred sequence failed after COMMIT: {}", error.message);
                ProxyError::warning(
                    "01000",
                    format!(
                        "ddlguard: after COMMIT, step {n}/{total} of the safe sequence of the deferred {} failed ({}: {}); the transaction itself committed",
                        rewrite.tag, error.code, error.message
                    ),
                )
                .with_detail(format!("the failed step: {sql}"))
                .with_hint(format!(
                    "fix the cause and run the original statement again, outside a transaction block: ddlguard finishes the sequence; the steps: {}",
                    steps_text(rewrite)
                ))
            }
        };
        report.encode(for_client);
        Ok(steps.status)
    }

    /// Runs a rewrite's steps in order, each as its own statement (guarded
    /// when it takes a strong lock), a notice per step done; stops at the
    /// first failure or a cancel.
    async fn run_steps(
        &mut self,
        rewrite: &Rewrite,
        for_client: &mut Vec<u8>,
    ) -> Result<Steps, RelayEnd> {
        let total = rewrite.steps.len();
        let mut status = self.state.tx_status;
        for (i, step) in rewrite.steps.iter().enumerate() {
            let n = i + 1;
            let failed = |error| StepsEnd::Failed {
                n,
                sql: step.sql.clone(),
                error,
            };
            if let Some(condition) = &step.only_if {
                let o = self.own_statement(condition, for_client).await?;
                status = o.status;
                if let Some(e) = o.error {
                    return Ok(Steps {
                        status,
                        end: failed(e),
                    });
                }
                if o.rows.is_empty() {
                    // A cleanup step with nothing to clean up.
                    continue;
                }
            }
            // A step that takes a strong lock (ADD CONSTRAINT ... NOT VALID,
            // SET NOT NULL, ...) runs guarded like any such DDL; a long
            // build under the build statement_timeout.
            let work = rewrite
                .guard
                .as_ref()
                .and_then(|settings| gate::guard_work(&step.sql, false, settings));
            let o = match work {
                Some(HeldWork::Guard(g)) => {
                    match self.guarded_attempts(&g, false, for_client).await? {
                        Some(done) if done.cancelled => {
                            return Ok(Steps {
                                status: done.status,
                                end: StepsEnd::Cancelled,
                            });
                        }
                        Some(done) => {
                            copy_async_frames(&done.outcome.frames, for_client);
                            let mut o = done.outcome;
                            o.status = done.status;
                            o
                        }
                        None => self.own_statement(&step.sql, for_client).await?,
                    }
                }
                Some(HeldWork::Build { timeout, .. }) => {
                    self.run_build(&step.sql, timeout, false, false, for_client)
                        .await?
                }
                _ => self.own_statement(&step.sql, for_client).await?,
            };
            status = o.status;
            match o.error {
                Some(e) => {
                    tracing::warn!(step = n, code = %e.code, "rewrite step failed: {}", e.message);
                    return Ok(Steps {
                        status,
                        end: failed(e),
                    });
                }
                None => ProxyError::notice(format!(
                    "ddlguard: step {n}/{total} done: {}",
                    step.description
                ))
                .with_detail(step.sql.clone())
                .encode(for_client),
            }
        }
        Ok(Steps {
            status,
            end: StepsEnd::Done,
        })
    }

    /// Runs a guarded statement; returns the client's answer (the
    /// statement's own replies from the attempt that counted, and
    /// ReadyForQuery). Notices about waits and retries go out at once.
    pub(super) async fn run_guarded(&mut self, g: &Guarded) -> Result<Vec<u8>, RelayEnd> {
        let mut for_client = Vec::new();
        // Everything before the statement has been answered: the status of
        // the last ReadyForQuery is the session's (the gate could only guess
        // from what was pipelined).
        let in_transaction = match self.state.tx_status {
            b'T' => true,
            b'I' => false,
            _ => {
                // A failed transaction: Postgres refuses the statement (25P02).
                let outcome = self.client_statement(&g.sql).await?;
                for_client.extend_from_slice(&outcome.frames);
                for_client.extend_from_slice(&exchange::ready_for_query(outcome.status));
                return Ok(for_client);
            }
        };
        let Some(done) = self
            .guarded_attempts(g, in_transaction, &mut for_client)
            .await?
        else {
            // Cannot read the setting back: run the statement as sent.
            let outcome = self.client_statement(&g.sql).await?;
            for_client.extend_from_slice(&outcome.frames);
            for_client.extend_from_slice(&exchange::ready_for_query(outcome.status));
            return Ok(for_client);
        };
        if done.cancelled {
            let mut status = done.status;
            if in_transaction {
                // A cancelled statement leaves its transaction failed, as in
                // Postgres: fail one there.
                status = self.fail_transaction(&mut for_client).await?;
            }
            cancelled_error().encode(&mut for_client);
            for_client.extend_from_slice(&exchange::ready_for_query(status));
            return Ok(for_client);
        }
        if done.timed_out {
            let blockers = self.blockers(g, 0, &mut for_client).await?;
            let detail = if blockers.is_empty() {
                "the sessions that held the lock had ended when ddlguard looked".to_string()
            } else {
                format!("blocked by {}", blockers::list(&blockers))
            };
            copy_frames_but_errors(&done.outcome.frames, &mut for_client);
            ProxyError::error(
                "55P03",
                format!(
                    "ddlguard: {} on {} could not get its {} lock in {} attempts of {}ms {}",
                    g.command,
                    g.target_names.join(", "),
                    g.lock.as_sql(),
                    done.attempts,
                    done.timeout_ms,
                    if g.settings.lock_timeout_schedule.is_empty() {
                        "each"
                    } else {
                        "at most (policy.lock_timeout_schedule)"
                    }
                ),
            )
            .with_detail(detail)
            .with_hint("end or wait for the sessions named (pg_terminate_backend(pid) ends one), then run the statement again; policy.lock_timeout and policy.max_attempts set how long ddlguard tries")
            .encode(&mut for_client);
        } else {
            for_client.extend_from_slice(&done.outcome.frames);
        }
        for_client.extend_from_slice(&exchange::ready_for_query(done.status));
        Ok(for_client)
    }

    /// The attempt loop of guarded execution: pre-flight, the attempt under
    /// its lock timeout (from a savepoint inside a transaction block),
    /// retries with backoff on 55P03, the client's lock_timeout restored.
    /// `None` when the session's lock_timeout cannot be read (nothing ran).
    async fn guarded_attempts(
        &mut self,
        g: &Guarded,
        in_transaction: bool,
        for_client: &mut Vec<u8>,
    ) -> Result<Option<Attempts>, RelayEnd> {
        let s = &g.settings;
        let shown = self.own_statement("SHOW lock_timeout", for_client).await?;
        let saved = shown
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .filter(|_| shown.error.is_none());
        let Some(saved) = saved else {
            return Ok(None);
        };
        let client_ms = guard::parse_setting_ms(&saved);
        let scope = if in_transaction { "LOCAL" } else { "SESSION" };
        let restore = format!("SET {scope} lock_timeout = {}", literal(&saved));
        let targets = g.target_names.join(", ");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timeout_ms = s.attempt_timeout_ms(attempt, client_ms);
            let last = attempt >= s.max_attempts.max(1);
            if !self.preflight(g, for_client).await? {
                return Ok(Some(Attempts::cancelled(
                    self.state.tx_status,
                    attempt,
                    timeout_ms,
                )));
            }
            if in_transaction {
                self.own_statement(&format!("SAVEPOINT {SAVEPOINT}"), for_client)
                    .await?;
            }
            self.own_statement(
                &format!("SET {scope} lock_timeout = '{timeout_ms}ms'"),
                for_client,
            )
            .await?;
            let started = Instant::now();
            let outcome = self.client_statement(&g.sql).await?;
            let mut status = outcome.status;
            let timed_out = outcome.error.as_ref().is_some_and(|e| e.code == "55P03");
            self.held_record.attempts += 1;
            if timed_out {
                self.count(|s| &s.lock_timeouts);
                self.held_record.lock_wait_ms += started.elapsed().as_millis() as u64;
            }
            let retry = timed_out && !last;
            if !in_transaction {
                status = self.own_statement(&restore, for_client).await?.status;
            } else if retry {
                // Undoes the attempt and the SET LOCAL made after the savepoint.
                for sql in [
                    format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    format!("RELEASE SAVEPOINT {SAVEPOINT}"),
                ] {
                    status = self.own_statement(&sql, for_client).await?.status;
                }
            } else if outcome.error.is_none() {
                for sql in [format!("RELEASE SAVEPOINT {SAVEPOINT}"), restore.clone()] {
                    status = self.own_statement(&sql, for_client).await?.status;
                }
            }
            // Else the statement failed in the transaction, which is now
            // aborted as Postgres leaves it; its end undoes the SET LOCAL.
            if !retry {
                return Ok(Some(Attempts {
                    outcome,
                    status,
                    timed_out,
                    attempts: attempt,
                    timeout_ms,
                    cancelled: false,
                }));
            }
            // Notifications and parameter changes of the failed attempt
            // still belong to the client.
            copy_async_frames(&outcome.frames, for_client);
            let mut blockers = self.blockers(g, 0, for_client).await?;
            if let Some(limit) = s.terminate_idle_after {
                blockers = self.terminate_idle(g, blockers, limit, for_client).await?;
            }
            let pause = backoff::pause(attempt, s.retry_backoff_max, backoff::unit());
            let mut notice = ProxyError::notice(format!(
                "ddlguard: {} on {targets} gave up waiting for its {} lock after {timeout_ms}ms (attempt {attempt} of {}), so that other sessions do not queue behind it; retrying in {:.1}s",
                g.command,
                g.lock.as_sql(),
                s.max_attempts,
                pause.as_secs_f64()
            ));
            if !blockers.is_empty() {
                notice = notice.with_detail(format!("blocked by {}", blockers::list(&blockers)));
            }
            notice.encode(for_client);
            self.send_client(for_client).await?;
            if !self.pause(pause).await {
                return Ok(Some(Attempts::cancelled(status, attempt, timeout_ms)));
            }
        }
    }

    /// Fails the open transaction block as a failing statement would (the
    /// proxy answered the client's statement with an error of its own);
    /// returns the status after it.
    async fn fail_transaction(&mut self, for_client: &mut Vec<u8>) -> Result<u8, RelayEnd> {
        Ok(self.own_statement("SELECT 1/0", for_client).await?.status)
    }

    /// Runs a long build (CREATE INDEX CONCURRENTLY, ...) under `timeout`
    /// as its statement_timeout (zero: none) instead of the session's, and
    /// puts the session's back. `keep`: the client's own statement, whose
    /// replies go in the outcome's frames (else a step of the proxy's own).
    /// Asynchronous messages of the proxy's statements go to `for_client`.
    pub(super) async fn run_build(
        &mut self,
        sql: &str,
        timeout: Duration,
        in_transaction: bool,
        keep: bool,
        for_client: &mut Vec<u8>,
    ) -> Result<exchange::Outcome, RelayEnd> {
        let shown = self
            .own_statement("SHOW statement_timeout", for_client)
            .await?;
        let saved = shown
            .rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .filter(|_| shown.error.is_none());
        let wanted = timeout.as_millis() as u64;
        let differs = saved
            .as_deref()
            .is_some_and(|s| guard::parse_setting_ms(s) != Some(wanted));
        let scope = if in_transaction { "LOCAL" } else { "SESSION" };
        if differs {
            self.own_statement(
                &format!("SET {scope} statement_timeout = '{wanted}ms'"),
                for_client,
            )
            .await?;
        }
        let mut o = if keep {
            self.client_statement(sql).await?
        } else {
            self.own_statement(sql, for_client).await?
        };
        if let (true, Some(saved)) = (differs, saved) {
            // A failed statement inside a transaction block leaves it
            // aborted; its end undoes the SET LOCAL.
            if !(in_transaction && o.error.is_some()) {
                let restore = format!("SET {scope} statement_timeout = {}", literal(&saved));
                o.status = self.own_statement(&restore, for_client).await?.status;
            }
        }
        Ok(o)
    }

    /// Ends the blockers that sit idle in transaction for longer than
    /// `limit` (`policy.terminate_idle_blockers_after`), telling the client
    /// and the log about each; returns the blockers left.
    async fn terminate_idle(
        &mut self,
        g: &Guarded,
        blockers: Vec<blockers::Blocker>,
        limit: Duration,
        for_client: &mut Vec<u8>,
    ) -> Result<Vec<blockers::Blocker>, RelayEnd> {
        let mut left = Vec::new();
        for b in blockers {
            if !b.idle_in_transaction_longer_than(limit) || b.pid.parse::<i32>().is_err() {
                left.push(b);
                continue;
            }
            let o = self
                .own_statement(
                    &format!("SELECT pg_terminate_backend({})::text", b.pid),
                    for_client,
                )
                .await?;
            let ended = o.error.is_none()
                && o.rows
                    .first()
                    .and_then(|r| r.first())
                    .cloned()
                    .flatten()
                    .as_deref()
                    == Some("true");
            if !ended {
                let why = o
                    .error
                    .map_or("it had already ended".to_string(), |e| e.message);
                tracing::warn!(pid = %b.pid, "could not end an idle blocker: {why}");
                left.push(b);
                continue;
            }
            self.count(|s| &s.terminated);
            tracing::warn!(
                pid = %b.pid,
                application_name = %b.application_name,
                user = %b.user,
                idle_ms = b.state_ms,
                command = %g.command,
                "ended a blocker idle in transaction (policy.terminate_idle_blockers_after)"
            );
            ProxyError::notice(format!(
                "ddlguard: ended pid {} ({}), idle in transaction for {:.1}s and blocking {} on {} (policy.terminate_idle_blockers_after = {}s)",
                b.pid,
                b.application_name,
                b.state_ms as f64 / 1000.0,
                g.command,
                g.target_names.join(", "),
                limit.as_secs_f64()
            ))
            .with_detail(b.describe())
            .encode(for_client);
            self.held_record.terminated.push(b.pid.clone());
        }
        Ok(left)
    }

    /// Waits, outside the lock queue, while transactions older than the
    /// pre-flight age hold or wait for a conflicting lock on the targets;
    /// tells the client whom it waits for. Gives up after `preflight_wait`
    /// and lets the attempt's lock timeout decide.
    /// `Ok(false)`: a cancel for the session came while it waited.
    async fn preflight(&mut self, g: &Guarded, for_client: &mut Vec<u8>) -> Result<bool, RelayEnd> {
        let s = &g.settings;
        if s.preflight_wait.is_zero() || g.targets.is_empty() {
            return Ok(true);
        }
        let min_age = s.preflight_min_age.as_millis() as u64;
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut announced = false;
        loop {
            let found = self.blockers(g, min_age, for_client).await?;
            if found.is_empty() {
                self.held_record.preflight_wait_ms += started.elapsed().as_millis() as u64;
                if announced {
                    ProxyError::notice(format!(
                        "ddlguard: waited {:.1}s; {} goes ahead",
                        started.elapsed().as_secs_f64(),
                        g.command
                    ))
                    .encode(for_client);
                }
                return Ok(true);
            }
            if started.elapsed() >= s.preflight_wait {
                self.held_record.preflight_wait_ms += started.elapsed().as_millis() as u64;
                ProxyError::notice(format!(
                    "ddlguard: still blocked after {:.0}s (policy.preflight_wait); {} tries its lock now, with lock_timeout",
                    s.preflight_wait.as_secs_f64(),
                    g.command
                ))
                .with_detail(format!("blocked by {}", blockers::list(&found)))
                .encode(for_client);
                return Ok(true);
            }
            if !announced {
                self.count(|s| &s.preflight_waits);
                ProxyError::notice(format!(
                    "ddlguard: {} waits, outside the lock queue, for {} older transaction(s) using {}",
                    g.command,
                    found.len(),
                    g.target_names.join(", ")
                ))
                .with_detail(format!("waiting for {}", blockers::list(&found)))
                .encode(for_client);
                self.send_client(for_client).await?;
                announced = true;
            }
            if !self.pause(pause).await {
                return Ok(false);
            }
            // Polls stay short so the DDL goes soon after the blocker ends.
            pause = (pause * 2).min(PREFLIGHT_POLL_MAX);
        }
    }

    /// The sessions holding or awaiting a lock that conflicts with the
    /// guarded statement's, in transactions at least `min_age_ms` old.
    async fn blockers(
        &mut self,
        g: &Guarded,
        min_age_ms: u64,
        for_client: &mut Vec<u8>,
    ) -> Result<Vec<blockers::Blocker>, RelayEnd> {
        let o = self
            .own_statement(&blockers::query(&g.targets, min_age_ms), for_client)
            .await?;
        if let Some(e) = &o.error {
            tracing::warn!(code = %e.code, "blocker lookup failed: {}", e.message);
            return Ok(Vec::new());
        }
        let found = blockers::from_rows(&o.rows, g.lock);
        for b in &found {
            let line = b.describe();
            let known = self
                .held_record
                .blockers
                .iter()
                .any(|l| l.starts_with(&format!("pid {} ", b.pid)));
            if !known && self.held_record.blockers.len() < 20 {
                self.held_record.blockers.push(line);
            }
        }
        Ok(found)
    }

    /// Waits `d`; `false` when a CancelRequest for the session came first.
    async fn pause(&self, d: Duration) -> bool {
        let cancel = self.held_cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = cancel.notified() => false,
        }
    }

    /// Adds one to a gate counter.
    fn count(&self, which: impl Fn(&GateStats) -> &AtomicU64) {
        if let Some(gate) = &self.gate {
            which(gate.stats()).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends `bytes` to the client now (notices while it waits) and empties it.
    async fn send_client(&mut self, bytes: &mut Vec<u8>) -> Result<(), RelayEnd> {
        let write = async {
            self.client.write_all(bytes).await?;
            self.client.flush().await
        };
        write.await.map_err(RelayEnd::ClientIo)?;
        bytes.clear();
        Ok(())
    }
}

/// Appends the frames of `frames` except ErrorResponses.
fn copy_frames_but_errors(frames: &[u8], out: &mut Vec<u8>) {
    copy_frames(frames, out, |tag| tag != b'E');
}

/// Appends the NotificationResponse and ParameterStatus frames of `frames`.
fn copy_async_frames(frames: &[u8], out: &mut Vec<u8>) {
    copy_frames(frames, out, |tag| matches!(tag, b'A' | b'S'));
}

/// Appends the frames of `frames` whose type `keep` accepts.
fn copy_frames(frames: &[u8], out: &mut Vec<u8>, keep: impl Fn(u8) -> bool) {
    for_each_frame(frames, |tag, frame| {
        if keep(tag) {
            out.extend_from_slice(frame);
        }
    });
}

/// Calls `f` with the type and bytes of each whole frame of `frames`.
fn for_each_frame(frames: &[u8], mut f: impl FnMut(u8, &[u8])) {
    let mut rest = frames;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize + 1;
        let Some(frame) = rest.get(..len) else {
            break;
        };
        f(frame[0], frame);
        rest = &rest[len..];
    }
}

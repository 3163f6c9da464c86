//! The work a session does itself for a held statement, on its own
//! upstream connection: a rewrite's safe sequence, or a DDL statement run
//! under guarded execution (pre-flight, lock timeout, retries, blockers
//! named). The client is answered as if its statement had run: the
//! server's own replies where the statement ran, notices for what the proxy
//! did, then ReadyForQuery.

use super::exchange;
use super::gate::{self, GateStats, Guarded, Rewrite};
use super::relay::{Relay, RelayEnd};
use crate::guard::{self, backoff, blockers};
use crate::policy::tokens::literal;
use crate::wire::messages::ProxyError;
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

/// The savepoint guarded execution retries from inside a transaction block.
const SAVEPOINT: &str = "ddlguard_attempt";

impl Relay {
    /// Runs a rewrite's steps; returns the client's answer.
    pub(super) async fn run_rewrite(&mut self, rewrite: &Rewrite) -> Result<Vec<u8>, RelayEnd> {
        let mut for_client = Vec::new();
        for notice in &rewrite.notices {
            notice.encode(&mut for_client);
        }
        let total = rewrite.steps.len();
        let mut status = self.state.tx_status;
        let mut failure = None;
        for (i, step) in rewrite.steps.iter().enumerate() {
            let n = i + 1;
            if let Some(condition) = &step.only_if {
                let o = self.own_statement(condition, &mut for_client).await?;
                status = o.status;
                if let Some(e) = o.error {
                    failure = Some((n, step, e));
                    break;
                }
                if o.rows.is_empty() {
                    // A cleanup step with nothing to clean up.
                    continue;
                }
            }
            // A step that takes a strong lock (ADD CONSTRAINT ... NOT VALID,
            // SET NOT NULL, ...) runs guarded like any such DDL.
            let guarded = rewrite
                .guard
                .as_ref()
                .and_then(|settings| gate::guarded(&step.sql, false, settings));
            let o = match guarded {
                Some(g) => match self.guarded_attempts(&g, false, &mut for_client).await? {
                    Some(done) if done.cancelled => {
                        cancelled_error().encode(&mut for_client);
                        for_client.extend_from_slice(&exchange::ready_for_query(done.status));
                        return Ok(for_client);
                    }
                    Some(done) => {
                        copy_async_frames(&done.outcome.frames, &mut for_client);
                        let mut o = done.outcome;
                        o.status = done.status;
                        o
                    }
                    None => self.own_statement(&step.sql, &mut for_client).await?,
                },
                None => self.own_statement(&step.sql, &mut for_client).await?,
            };
            status = o.status;
            match o.error {
                Some(e) => {
                    failure = Some((n, step, e));
                    break;
                }
                None => ProxyError::notice(format!(
                    "ddlguard: step {n}/{total} done: {}",
                    step.description
                ))
                .with_detail(step.sql.clone())
                .encode(&mut for_client),
            }
        }
        match failure {
            None => for_client.extend_from_slice(&exchange::command_complete(&rewrite.tag)),
            Some((n, step, e)) => {
                tracing::warn!(step = n, code = %e.code, "rewrite step failed: {}", e.message);
                ProxyError::error(
                    e.code,
                    format!("ddlguard: step {n}/{total} of the safe sequence failed: {}", e.message),
                )
                .with_detail(format!("the failed step: {}", step.sql))
                .with_hint("the steps before it are done; fix the cause and run the same statement again: ddlguard finishes the sequence (steps that are done are skipped or repeated safely)")
                .encode(&mut for_client);
            }
        }
        for_client.extend_from_slice(&exchange::ready_for_query(status));
        Ok(for_client)
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
                status = self
                    .own_statement("SELECT 1/0", &mut for_client)
                    .await?
                    .status;
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
                    "ddlguard: {} on {} could not get its {} lock in {} attempts of {}ms each",
                    g.command,
                    g.target_names.join(", "),
                    g.lock.as_sql(),
                    done.attempts,
                    done.timeout_ms
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
        let timeout_ms = s.attempt_timeout_ms(guard::parse_setting_ms(&saved));
        let scope = if in_transaction { "LOCAL" } else { "SESSION" };
        let restore = format!("SET {scope} lock_timeout = {}", literal(&saved));
        let targets = g.target_names.join(", ");
        let mut attempt = 0;
        loop {
            attempt += 1;
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
            let outcome = self.client_statement(&g.sql).await?;
            let mut status = outcome.status;
            let timed_out = outcome.error.as_ref().is_some_and(|e| e.code == "55P03");
            if timed_out {
                self.count(|s| &s.lock_timeouts);
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
            let blockers = self.blockers(g, 0, for_client).await?;
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
            pause = (pause * 2).min(Duration::from_secs(1));
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
        Ok(blockers::from_rows(&o.rows, g.lock))
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
    let mut rest = frames;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize + 1;
        let Some(frame) = rest.get(..len) else {
            break;
        };
        if keep(frame[0]) {
            out.extend_from_slice(frame);
        }
        rest = &rest[len..];
    }
}

//! One job's task inside the proxy: batches on a connection of its own,
//! each a short transaction under `lock_timeout` and `statement_timeout`,
//! the progress written to the store after each commit, the pace set by the
//! throttle, and control (pause, cancel, shutdown) obeyed between batches.

use super::conn;
use super::error::BackfillError;
use super::job::{Job, JobState};
use super::signals::{TableLatency, LOCK_WAITS_SQL, REPLICA_LAG_SQL};
use super::sql::{batch_sql, BatchShape};
use super::throttle::{Limits, Reason, Signals, Throttle};
use super::{Cell, Context, Control};
use crate::usage::{now_ms, UsageRegistry};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tracing::{info, warn};

/// Batches in a row that may hit a timeout before the job pauses.
const MAX_TIMEOUTS_IN_A_ROW: u32 = 3;
/// How often the sessions blocked by the job are counted during a batch.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// What a runner needs from the engine.
pub struct Runner {
    /// The job.
    pub cell: Arc<Cell>,
    /// Connection settings and limits as the job starts.
    pub ctx: Context,
    /// Where the other clients' latency comes from.
    pub usage: Arc<UsageRegistry>,
    /// Where progress is written.
    pub store: Arc<super::store::JobStore>,
}

/// What one batch did.
struct BatchResult {
    last_key: Option<String>,
    scanned: u64,
    updated: u64,
}

/// An error message without the values Postgres quotes after a colon
/// (`invalid input syntax for type integer: "abc"`): no value from the
/// table reaches the job's error, the store or the log.
pub fn redact(message: &str) -> String {
    match message.find(": \"") {
        Some(i) => format!("{}: (value withheld)", &message[..i]),
        None => message.to_string(),
    }
}

impl Runner {
    fn snapshot(&self) -> Job {
        self.cell.lock().clone()
    }

    async fn save(&self) {
        let job = self.snapshot();
        if let Err(e) = self.store.update(&job).await {
            warn!(job = job.id, "backfill progress not stored: {e}");
        }
    }

    /// Pauses the job with `error` shown (never retried by itself).
    async fn pause_on_error(&self, error: String) {
        {
            let mut job = self.cell.lock();
            warn!(job = job.id, table = %job.qualified_table(), "backfill paused on error: {error}");
            if job.state == JobState::Running {
                job.state = JobState::Paused;
            }
            job.error = Some(error);
            job.updated_ms = now_ms();
        }
        self.cell.control.send_replace(Control::Pause);
        self.save().await;
    }

    /// Runs batches until the job is done, paused, cancelled or stopped.
    pub async fn run(self) {
        let mut control = self.cell.control.subscribe();
        let job = self.snapshot();
        let Some(login) = self.ctx.login.clone() else {
            self.pause_on_error("no service login: set [upstream] user".into())
                .await;
            return;
        };
        let purpose = format!("ddlguard backfill {}", job.id);
        let connected = async {
            let worker = conn::connect(&self.ctx.upstream, &login, &job.database, &purpose).await?;
            let monitor =
                conn::connect(&self.ctx.upstream, &login, &job.database, &purpose).await?;
            let pid: i32 = worker
                .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| BackfillError::server(&e))?;
            Ok::<_, BackfillError>((worker, monitor, pid))
        }
        .await;
        let (worker, monitor, pid) = match connected {
            Ok(c) => c,
            Err(e) => {
                self.pause_on_error(format!("{}: {}", e.sqlstate(), redact(&e.to_string())))
                    .await;
                return;
            }
        };
        info!(job = job.id, table = %job.qualified_table(), from_key = job.current_key.is_some(), "backfill running");
        let s = &self.ctx.settings;
        let mut throttle = Throttle::new(Limits {
            max_batch: job.max_batch,
            max_latency_increase: s.max_latency_increase.fraction(),
            max_replica_lag: s.max_replica_lag.0,
            max_batch_time: s.statement_timeout.0 / 5,
        });
        if job.batch_size > 0 {
            throttle.batch = job.batch_size.min(job.max_batch.max(1));
        }
        let mut latency = TableLatency::new(self.usage.clone(), &job.schema, &job.table);
        let baseline_us = job.baseline_p95_ms.map(|ms| (ms * 1000.0) as u64);
        let set_local = format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
            s.lock_timeout.0.as_millis().max(1),
            s.statement_timeout.0.as_millis().max(1)
        );
        let mut timeouts = 0u32;
        let mut last_end = Instant::now();
        loop {
            let now = *control.borrow_and_update();
            match now {
                Control::Run => {}
                Control::Pause | Control::Cancel | Control::Stop => {
                    let job = self.snapshot();
                    info!(job = job.id, state = job.state.as_str(), "backfill stopped");
                    self.save().await;
                    return;
                }
            }
            let job = self.snapshot();
            let shape = BatchShape {
                schema: &job.schema,
                table: &job.table,
                key: &job.key,
                key_type: &job.key_type,
                set_sql: &job.set,
                where_sql: &job.where_clause,
            };
            let sql = batch_sql(&shape, job.current_key.is_none(), throttle.batch);
            let started = Instant::now();
            let (result, lock_waits) = batch_watched(
                &worker,
                &monitor,
                pid,
                &set_local,
                &sql,
                job.current_key.as_deref(),
            )
            .await;
            let batch_time = started.elapsed();
            let mut signals = Signals {
                baseline_p95_us: baseline_us,
                traffic_p95_us: latency.window_p95_us(),
                lock_waits,
                replica_lag: None,
                batch_time,
                timed_out: None,
            };
            let mut scanned_now = 0u64;
            match result {
                Ok(b) if b.scanned == 0 => {
                    {
                        let mut job = self.cell.lock();
                        if job.state == JobState::Running {
                            job.state = JobState::Done;
                        }
                        job.throttle_reason = Reason::Calm.describe();
                        job.updated_ms = now_ms();
                        job.update_eta();
                        info!(job = job.id, rows = job.rows_done, "backfill done");
                    }
                    self.save().await;
                    return;
                }
                Ok(b) => {
                    timeouts = 0;
                    scanned_now = b.scanned;
                    // Keys per second over the pause before and this batch.
                    let since_last = last_end.elapsed().max(Duration::from_millis(1));
                    last_end = Instant::now();
                    {
                        let mut job = self.cell.lock();
                        tracing::debug!(
                            job = job.id,
                            limit = throttle.batch,
                            scanned = b.scanned,
                            updated = b.updated,
                            "backfill batch committed"
                        );
                        job.rows_done += b.updated;
                        job.rows_scanned += b.scanned;
                        job.current_key = b.last_key.or(job.current_key.take());
                        let instant = b.scanned as f64 / since_last.as_secs_f64();
                        job.rate = if job.rate > 0.0 {
                            0.7 * job.rate + 0.3 * instant
                        } else {
                            instant
                        };
                    }
                    // Recorded right after the commit: a crash between the
                    // two redoes at most this batch.
                    self.save().await;
                }
                Err(e) => {
                    let code = e.sqlstate().to_string();
                    let what = match code.as_str() {
                        "55P03" => Some("lock_timeout"),
                        "57014" => Some("statement_timeout"),
                        _ => None,
                    };
                    match what {
                        Some(what) if timeouts + 1 < MAX_TIMEOUTS_IN_A_ROW => {
                            timeouts += 1;
                            signals.timed_out = Some(what);
                        }
                        _ => {
                            let message = redact(&e.to_string());
                            let suffix = if what.is_some() {
                                format!(" ({MAX_TIMEOUTS_IN_A_ROW} batches in a row, each halved)")
                            } else {
                                String::new()
                            };
                            self.pause_on_error(format!("{code}: {message}{suffix}"))
                                .await;
                            return;
                        }
                    }
                }
            }
            signals.replica_lag = replica_lag(&monitor).await;
            throttle.observe(&signals);
            let mut wait = throttle.pause;
            let mut reason = throttle.reason.clone();
            {
                let mut job = self.cell.lock();
                if job.max_rate > 0.0 {
                    // The batch just run may not come sooner than the rate allows.
                    let min_interval = Duration::from_secs_f64(scanned_now as f64 / job.max_rate);
                    let hold = min_interval.saturating_sub(batch_time);
                    if hold > wait {
                        wait = hold;
                        if reason == Reason::Calm {
                            reason = Reason::MaxRate;
                        }
                    }
                }
                job.batch_size = throttle.batch;
                job.pause_ms = wait.as_millis() as u64;
                let described = reason.describe();
                let word = |r: &str| r.split(':').next().unwrap_or("").to_string();
                if word(&described) != word(&job.throttle_reason) {
                    info!(
                        job = job.id,
                        batch = job.batch_size,
                        pause_ms = job.pause_ms,
                        "backfill pace: {described}"
                    );
                }
                job.throttle_reason = described;
                job.traffic_p95_ms = signals.traffic_p95_us.map(|us| us as f64 / 1000.0);
                job.updated_ms = now_ms();
                job.update_eta();
            }
            self.save().await;
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = control.changed() => {}
                }
            }
        }
    }
}

/// One batch in its own transaction: `SET LOCAL` timeouts, the keyset
/// update, commit.
async fn run_batch(
    client: &Client,
    set_local: &str,
    sql: &str,
    after: Option<&str>,
) -> Result<BatchResult, BackfillError> {
    let server = |e: tokio_postgres::Error| BackfillError::server(&e);
    client.batch_execute("BEGIN").await.map_err(server)?;
    let run = async {
        client.batch_execute(set_local).await?;
        let row = match after {
            Some(k) => client.query_one(sql, &[&k]).await?,
            None => client.query_one(sql, &[]).await?,
        };
        let last_key: Option<String> = row.try_get(0)?;
        let scanned: i64 = row.try_get(1)?;
        let updated: i64 = row.try_get(2)?;
        client.batch_execute("COMMIT").await?;
        Ok::<_, tokio_postgres::Error>(BatchResult {
            last_key,
            scanned: scanned.max(0) as u64,
            updated: updated.max(0) as u64,
        })
    }
    .await;
    match run {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(server(e))
        }
    }
}

/// Runs the batch while counting, every [`LOCK_POLL`], the sessions that
/// wait for a lock of the job's backend `pid`; returns the batch's result
/// and the most waiters seen.
async fn batch_watched(
    worker: &Client,
    monitor: &Client,
    pid: i32,
    set_local: &str,
    sql: &str,
    after: Option<&str>,
) -> (Result<BatchResult, BackfillError>, u64) {
    let batch = run_batch(worker, set_local, sql, after);
    tokio::pin!(batch);
    let mut ticker = tokio::time::interval(LOCK_POLL);
    // The first tick is immediate: a batch that ends sooner blocked nobody
    // long enough to matter.
    ticker.tick().await;
    let mut most = 0u64;
    loop {
        tokio::select! {
            r = &mut batch => return (r, most),
            _ = ticker.tick() => {
                if let Ok(row) = monitor.query_one(LOCK_WAITS_SQL, &[&pid]).await {
                    let n: i64 = row.try_get(0).unwrap_or(0);
                    most = most.max(n.max(0) as u64);
                }
            }
        }
    }
}

/// The replicas' largest replay lag, when there are replicas.
async fn replica_lag(monitor: &Client) -> Option<Duration> {
    let row = monitor.query_one(REPLICA_LAG_SQL, &[]).await.ok()?;
    let secs: Option<f64> = row.try_get(0).ok()?;
    secs.filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_never_reach_the_error() {
        assert_eq!(
            redact("invalid input syntax for type integer: \"4111 1111\""),
            "invalid input syntax for type integer: (value withheld)"
        );
        assert_eq!(redact("division by zero"), "division by zero");
    }
}

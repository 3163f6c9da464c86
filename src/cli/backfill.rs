//! `ddlguard backfill`: asks a running proxy to start a throttled backfill
//! job (`POST /api/v1/backfills`) and, with `--follow`, draws its progress
//! with an ETA on stderr until it ends. A thin HTTP client: the job runs in
//! the proxy and survives this command.

use crate::admin::client::{base_url, TOKEN_ENV};
use crate::backfill::{BackfillRequest, Job, JobState};
use std::io::Write;
use std::time::Duration;
use thiserror::Error;

/// How often `--follow` asks for the job.
const POLL: Duration = Duration::from_millis(500);

/// Why the command could not do its work (exit code 2).
#[derive(Debug, Error)]
pub enum BackfillCliError {
    /// The proxy could not be reached.
    #[error("asking {url} (is ddlguard running with [admin] http_listen there, and {TOKEN_ENV} set if it needs one?): {source}")]
    Request {
        /// The URL.
        url: String,
        /// What the HTTP client saw.
        source: ureq::Error,
    },
    /// The proxy refused the request.
    #[error("{0}")]
    Refused(String),
    /// The answer was not a job.
    #[error("{url}: unexpected answer ({source})")]
    Decode {
        /// The URL.
        url: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// How the job ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Started (no `--follow`) or done.
    Ok,
    /// Paused on an error, or cancelled.
    Failed,
}

struct Http {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Http {
    fn new(address: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Http {
            base: base_url(address),
            token: std::env::var(TOKEN_ENV).ok(),
            agent,
        }
    }

    /// Sends a request and reads a job, or the proxy's refusal.
    fn job(&self, path: &str, body: Option<String>) -> Result<Job, BackfillCliError> {
        let url = format!("{}{path}", self.base);
        let request_error = |source| BackfillCliError::Request {
            url: url.clone(),
            source,
        };
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut response = match body {
            Some(body) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(b) = &bearer {
                    req = req.header("authorization", b);
                }
                req.send(body).map_err(request_error)?
            }
            None => {
                let mut req = self.agent.get(&url);
                if let Some(b) = &bearer {
                    req = req.header("authorization", b);
                }
                req.call().map_err(request_error)?
            }
        };
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(request_error)?;
        if status >= 400 {
            return Err(BackfillCliError::Refused(refusal_text(status, &text)));
        }
        serde_json::from_str(&text).map_err(|source| BackfillCliError::Decode { url, source })
    }
}

/// The proxy's refusal as the user reads it: message, SQLSTATE, hint.
fn refusal_text(status: u16, body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match field("error") {
        Some(e) => {
            let mut text = match field("sqlstate") {
                Some(code) => format!("{e} (SQLSTATE {code})"),
                None => e,
            };
            if let Some(h) = field("hint") {
                text.push_str(&format!("\nhint: {h}"));
            }
            text
        }
        None => format!("HTTP {status}: {}", body.trim()),
    }
}

/// Starts the job; with `follow`, waits for its end drawing progress.
pub fn run(http: &str, req: &BackfillRequest, follow: bool) -> Result<Outcome, BackfillCliError> {
    let api = Http::new(http);
    let body = serde_json::to_string(req).map_err(|source| BackfillCliError::Decode {
        url: "request".into(),
        source,
    })?;
    let job = api.job("/api/v1/backfills", Some(body))?;
    println!(
        "backfill {} started on {}.{} in {} (key {}, about {} rows)",
        job.id, job.schema, job.table, job.database, job.key, job.rows_estimated
    );
    if !follow {
        println!(
            "follow it: SHOW BACKFILLS in the admin console, or GET /api/v1/backfills/{}",
            job.id
        );
        return Ok(Outcome::Ok);
    }
    let path = format!("/api/v1/backfills/{}", job.id);
    let mut stderr = std::io::stderr();
    loop {
        let job = api.job(&path, None)?;
        let _ = write!(stderr, "\r{}\x1b[K", progress_line(&job));
        let _ = stderr.flush();
        match (job.state, &job.error) {
            (JobState::Done, _) => {
                let _ = writeln!(stderr);
                println!(
                    "backfill {} done: {} rows updated, {} visited",
                    job.id, job.rows_done, job.rows_scanned
                );
                return Ok(Outcome::Ok);
            }
            (JobState::Cancelled, _) => {
                let _ = writeln!(stderr);
                println!("backfill {} cancelled at key {}", job.id, key_text(&job));
                return Ok(Outcome::Failed);
            }
            (JobState::Paused, Some(e)) => {
                let _ = writeln!(stderr);
                println!(
                    "backfill {} paused on an error at key {}: {e}\nfix the cause, then RESUME BACKFILL {} (or POST {path}/resume)",
                    job.id,
                    key_text(&job),
                    job.id
                );
                return Ok(Outcome::Failed);
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

fn key_text(job: &Job) -> &str {
    job.current_key.as_deref().unwrap_or("(none yet)")
}

/// `[#######.............]  35%  70000/200000 rows  4100 rows/s  ETA 0:31  latency: ...`
pub fn progress_line(job: &Job) -> String {
    const WIDTH: usize = 24;
    let fraction = if job.state == JobState::Done {
        1.0
    } else if job.rows_estimated > 0 {
        (job.rows_scanned as f64 / job.rows_estimated as f64).min(0.99)
    } else {
        0.0
    };
    let filled = (fraction * WIDTH as f64).round() as usize;
    let eta = match job.eta_seconds {
        Some(s) if job.state == JobState::Running => {
            let s = s.round() as u64;
            format!("ETA {}:{:02}", s / 60, s % 60)
        }
        _ => "ETA -".into(),
    };
    let state = match job.state {
        JobState::Running => String::new(),
        other => format!("  [{}]", other.as_str()),
    };
    format!(
        "[{}{}] {:>3.0}%  {}/{} rows  {:.0} rows/s  {eta}  throttle: {}{state}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        fraction * 100.0,
        job.rows_scanned,
        job.rows_estimated,
        job.rate,
        job.throttle_reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_message_code_and_hint() {
        let body =
            r#"{"error":"users has no usable unique key","sqlstate":"55000","hint":"add one"}"#;
        assert_eq!(
            refusal_text(409, body),
            "users has no usable unique key (SQLSTATE 55000)\nhint: add one"
        );
        assert_eq!(refusal_text(502, "bad gateway"), "HTTP 502: bad gateway");
    }

    #[test]
    fn the_progress_line_has_a_bar_the_rate_and_the_eta() {
        let mut job = crate::backfill::job::sample();
        job.rows_estimated = 1000;
        job.rows_scanned = 250;
        job.rate = 50.0;
        job.throttle_reason = "latency: p95".into();
        job.update_eta();
        let line = progress_line(&job);
        assert!(line.starts_with("[######..................]  25%  250/1000 rows  50 rows/s  ETA 0:15  throttle: latency: p95"), "{line}");
        job.state = JobState::Done;
        job.update_eta();
        assert!(
            progress_line(&job).contains("100%"),
            "{}",
            progress_line(&job)
        );
    }
}

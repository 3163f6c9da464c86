//! `/api/v1/backfills`: list and create jobs, read one, and pause, resume
//! or cancel it (`POST /api/v1/backfills/{id}/pause|resume|cancel`). The
//! answers are jobs as JSON objects; a refusal is
//! `{"error", "sqlstate", "hint"}` with a 4xx status. Same token as the
//! rest of /api/v1.

use super::http::{authorized, HttpState};
use crate::backfill::{Action, BackfillError, BackfillRequest, Backfills};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

/// A refusal as the API sends it.
#[derive(Serialize)]
struct Refusal {
    error: String,
    sqlstate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn refuse(e: &BackfillError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(Refusal {
            error: e.to_string(),
            sqlstate: e.sqlstate().to_string(),
            hint: e.hint(),
        }),
    )
        .into_response()
}

/// The engine after the token check, or the response that refuses.
fn engine(st: &HttpState, headers: &HeaderMap) -> Result<Arc<Backfills>, Box<Response>> {
    authorized(st, headers).map_err(|r| Box::new(r.into_response()))?;
    st.handle
        .backfills()
        .ok_or_else(|| Box::new(refuse(&BackfillError::Stopped)))
}

/// A request that starts or controls a job: besides the token (when one is
/// configured), it must say `Content-Type: application/json` (a web page
/// cannot send that to another site without a CORS preflight, which this
/// API never answers, so a browser on the operator's machine cannot be made
/// to start a job), and an API open to the network needs a token: a job
/// runs SQL as the service login.
fn writable(st: &HttpState, headers: &HeaderMap) -> Result<Arc<Backfills>, Box<Response>> {
    let engine = engine(st, headers)?;
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(Box::new(refuse(&BackfillError::Invalid {
            message: "a request that starts or controls a backfill needs Content-Type: application/json".into(),
            hint: "send the header (ddlguard backfill does); browsers cannot send it to another site, which keeps web pages from starting jobs".into(),
        })));
    }
    let open = st.token.is_none();
    let loopback = st
        .handle
        .config()
        .admin
        .http_listen
        .is_none_or(|a| a.ip().is_loopback());
    if open && !loopback {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                Json(Refusal {
                    error: "starting or controlling backfills over HTTP on a non-loopback address needs a token: a job runs SQL as the service login".into(),
                    sqlstate: "28000".into(),
                    hint: Some("set [admin] http_token_env (and send Authorization: Bearer <token>), or use the admin console".into()),
                }),
            )
                .into_response(),
        ));
    }
    Ok(engine)
}

/// `GET /api/v1/backfills`: every job, oldest first.
pub async fn list(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    match engine(&st, &headers) {
        Ok(b) => {
            b.ready().await;
            Json(b.list()).into_response()
        }
        Err(r) => *r,
    }
}

/// `GET /api/v1/backfills/{id}`: one job.
pub async fn one(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    match engine(&st, &headers) {
        Ok(b) => {
            b.ready().await;
            match b.get(id) {
                Ok(job) => Json(job).into_response(),
                Err(e) => refuse(&e),
            }
        }
        Err(r) => *r,
    }
}

/// `POST /api/v1/backfills` with a JSON request: starts a job (201).
pub async fn create(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let b = match writable(&st, &headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let req: BackfillRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(&BackfillError::Invalid {
                message: format!("the request body is not a backfill request: {e}"),
                hint: "send {\"table\": \"users\", \"set\": \"email_lower = lower(email)\"} with optional where, batch, key, max_rate, database, allow_subquery".into(),
            })
        }
    };
    match b.create(req).await {
        Ok(job) => (StatusCode::CREATED, Json(job)).into_response(),
        Err(e) => refuse(&e),
    }
}

/// `POST /api/v1/backfills/{id}/{pause|resume|cancel}`.
pub async fn act(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path((id, verb)): Path<(u64, String)>,
) -> Response {
    let b = match writable(&st, &headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let action = match verb.as_str() {
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "cancel" => Action::Cancel,
        other => {
            return refuse(&BackfillError::Invalid {
                message: format!("unknown action {other:?}"),
                hint: "POST /api/v1/backfills/ID/pause, /resume or /cancel".into(),
            })
        }
    };
    match b.act(id, action).await {
        Ok(job) => Json(job).into_response(),
        Err(e) => refuse(&e),
    }
}

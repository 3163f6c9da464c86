//! The HTTP API on `[admin] http_listen`: /healthz, /readyz and the JSON
//! reports under /api/v1 (bearer token when `http_token_env` is set).

use super::dependents::{dependents, Target};
use crate::proxy::ServerHandle;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the handlers share.
pub struct HttpState {
    /// The running proxy.
    pub handle: ServerHandle,
    /// Default `since` of reports (`[usage] window`).
    pub window: Duration,
    /// `None`: open; `Some(Some(t))`: bearer `t` required; `Some(None)`:
    /// a token is configured but its variable is unset, so nobody gets in.
    pub token: Option<Option<String>>,
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/dependents", get(api_dependents))
        .route("/api/v1/usage", get(api_usage))
        .route("/api/v1/errors", get(api_errors))
        .with_state(Arc::new(state));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("HTTP server stopped: {e}");
    }
}

#[derive(Serialize)]
struct ApiError {
    error: String,
}

/// A refused request: status and what to do instead, sent as JSON.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

fn authorized(st: &HttpState, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &st.token else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_some() && given == token.as_deref() {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (see [admin] http_token_env)",
        ))
    }
}

async fn readyz(State(st): State<Arc<HttpState>>) -> Response {
    let upstream = st.handle.upstream();
    match upstream.connect().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct DependentsQuery {
    table: Option<String>,
    column: Option<String>,
    since: Option<String>,
}

fn since_ms(since: Option<&str>, window: Duration) -> Result<u64, Refusal> {
    let span = match since {
        Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("invalid since {s:?} ({e}); write e.g. 30m, 1h, 7d"),
            )
        })?,
        None => window,
    };
    let now = crate::usage::now_ms();
    Ok(now.saturating_sub(span.as_millis() as u64))
}

async fn api_dependents(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<DependentsQuery>,
) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r.into_response();
    }
    let Some(table) = q.table.filter(|t| !t.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing table: /api/v1/dependents?table=users&column=email&since=1h",
        )
        .into_response();
    };
    let since = match since_ms(q.since.as_deref(), st.window) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let target = Target::new(&table, q.column.as_deref());
    Json(dependents(&st.handle.usage_rows(), &target, since)).into_response()
}

#[derive(Serialize)]
struct UsageJson {
    application_name: String,
    user: String,
    database: String,
    client_addr: String,
    schema: String,
    table: String,
    column: Option<String>,
    mode: &'static str,
    dependency: &'static str,
    fingerprint: String,
    calls: u64,
    errors: u64,
    error_codes: Vec<(String, u64)>,
    mean_us: u64,
    max_us: u64,
}

async fn api_usage(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r.into_response();
    }
    let rows: Vec<UsageJson> = st
        .handle
        .usage_rows()
        .into_iter()
        .map(|r| UsageJson {
            application_name: r.client.application_name,
            user: r.client.user,
            database: r.client.database,
            client_addr: r.client.client_addr,
            schema: r.schema,
            table: r.table,
            column: r.column,
            mode: match r.mode {
                crate::analysis::Mode::Read => "read",
                crate::analysis::Mode::Write => "write",
            },
            dependency: r.dependency.as_str(),
            fingerprint: r.fingerprint,
            calls: r.calls,
            errors: r.errors,
            error_codes: r.error_codes,
            mean_us: r.total_us.checked_div(r.calls).unwrap_or(0),
            max_us: r.max_us,
        })
        .collect();
    Json(rows).into_response()
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<String>,
}

/// One client's failing statement shape and SQLSTATE.
#[derive(Serialize)]
struct ErrorJson {
    application_name: String,
    user: String,
    database: String,
    client_addr: String,
    fingerprint: String,
    sqlstate: String,
    count: u64,
    calls: u64,
    last_seen: String,
}

/// Errors by client x fingerprint x SQLSTATE of statements run since `since`
/// (default: the window): after a migration, 42703 and 42P01 show who broke.
async fn api_errors(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<SinceQuery>,
) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r.into_response();
    }
    let since = match since_ms(q.since.as_deref(), st.window) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mut out: Vec<ErrorJson> = Vec::new();
    for r in st.handle.usage().statements() {
        if r.errors == 0 || r.last_seen_ms < since {
            continue;
        }
        for (code, n) in &r.error_codes {
            out.push(ErrorJson {
                application_name: r.client.application_name.clone(),
                user: r.client.user.clone(),
                database: r.client.database.clone(),
                client_addr: r.client.client_addr.clone(),
                fingerprint: r.fingerprint.clone(),
                sqlstate: code.clone(),
                count: *n,
                calls: r.calls,
                last_seen: super::dependents::rfc3339(r.last_seen_ms),
            });
        }
    }
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    Json(out).into_response()
}

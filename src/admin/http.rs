//! The HTTP API on `[admin] http_listen`: /healthz, /readyz, /metrics and
//! the JSON of every console report under /api/v1 (bearer token when
//! `http_token_env` is set; /metrics holds no statement text and stays open
//! for scrapers).

use super::dependents::Target;
use super::report::{self, Report};
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
    /// `None`: open; `Some(Some(t))`: bearer `t` required; `Some(None)`:
    /// a token is configured but its variable is unset, so nobody gets in.
    pub token: Option<Option<String>>,
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/clients", get(api_clients))
        .route("/api/v1/tables", get(api_tables))
        .route("/api/v1/usage", get(api_usage))
        .route("/api/v1/unresolved", get(api_unresolved))
        .route("/api/v1/dependents", get(api_dependents))
        .route("/api/v1/queries", get(api_queries))
        .route("/api/v1/errors", get(api_errors))
        .route("/api/v1/ddl", get(api_ddl))
        .route("/api/v1/rules", get(api_rules))
        .route("/api/v1/config", get(api_config))
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
struct ReportQuery {
    table: Option<String>,
    column: Option<String>,
    since: Option<String>,
}

fn since_ms(since: Option<&str>, window: Duration) -> Result<u64, Refusal> {
    let span = match since {
        Some(s) => crate::admin::command::parse_interval(s)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid since {s:?}: {e}")))?,
        None => window,
    };
    Ok(report::since_ms(span))
}

/// `table` (optionally `schema.table`) and `column` from the query string.
fn target_of(q: &ReportQuery) -> Option<Target> {
    q.table
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| Target::new(t, q.column.as_deref()))
}

/// Answers with a report as JSON after the token check; the report is
/// built on a blocking thread (it walks the whole usage aggregate).
async fn answer(
    st: Arc<HttpState>,
    headers: HeaderMap,
    build: impl FnOnce(&HttpState) -> Result<Report, Refusal> + Send + 'static,
) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r.into_response();
    }
    match tokio::task::spawn_blocking(move || build(&st)).await {
        Ok(Ok(report)) => Json(report.to_json()).into_response(),
        Ok(Err(r)) => r.into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the report failed: {e}; see the proxy log"),
        )
        .into_response(),
    }
}

async fn metrics(State(st): State<Arc<HttpState>>) -> Response {
    match crate::admin::metrics::render(&st.handle) {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("encoding /metrics failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed; see the proxy log",
            )
            .into_response()
        }
    }
}

async fn api_clients(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    answer(st, headers, |st| Ok(report::clients(&st.handle))).await
}

async fn api_tables(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    answer(st, headers, |st| Ok(report::tables(&st.handle))).await
}

async fn api_usage(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    answer(st, headers, move |st| {
        Ok(report::usage(&st.handle, target_of(&q).as_ref()))
    })
    .await
}

async fn api_unresolved(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    answer(st, headers, move |st| {
        Ok(report::unresolved(&st.handle, target_of(&q).as_ref()))
    })
    .await
}

async fn api_dependents(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    answer(st, headers, move |st| {
        let target = target_of(&q).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "missing table: /api/v1/dependents?table=users&column=email&since=1h",
            )
        })?;
        let since = since_ms(q.since.as_deref(), st.handle.config().usage.window.0)?;
        Ok(report::dependents(&st.handle, &target, since))
    })
    .await
}

async fn api_queries(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    answer(st, headers, move |st| {
        Ok(report::queries(&st.handle, target_of(&q).as_ref()))
    })
    .await
}

/// Errors by client x fingerprint x SQLSTATE since `since` (default: the
/// window): after a migration, 42703 and 42P01 show who broke.
async fn api_errors(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    answer(st, headers, move |st| {
        let since = since_ms(q.since.as_deref(), st.handle.config().usage.window.0)?;
        Ok(report::errors(&st.handle, since))
    })
    .await
}

async fn api_ddl(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    answer(st, headers, |st| Ok(report::ddl(&st.handle))).await
}

async fn api_rules(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    answer(st, headers, |st| Ok(report::rules(&st.handle.config()))).await
}

async fn api_config(State(st): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    answer(st, headers, |st| {
        Ok(report::config(
            &st.handle.config(),
            st.handle.config_file().as_deref(),
        ))
    })
    .await
}

//! The HTTP API on `[admin] http_listen`: /healthz, /readyz, /metrics and
//! the JSON of every console report under /api/v1 (bearer token when
//! `http_token_env` is set; /metrics holds no statement text and stays open
//! for scrapers).

use super::dependents::Target;
use super::report::{self, Page, PageError, Report};
use super::view::{AdminView, ReportView};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
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
    pub handle: Arc<dyn AdminView>,
    /// `None`: open; `Some(Some(t))`: bearer `t` required; `Some(None)`:
    /// a token is configured but its variable is unset, so nobody gets in.
    pub token: Option<Option<String>>,
}

/// The HTTP API running on its own thread; dropping it stops the server.
pub struct HttpServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpServer {
    /// Stops serving (open connections are closed with the thread's runtime).
    pub fn stop(mut self) {
        self.signal_stop();
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Serves the API on `listener` from a thread of its own with its own
/// runtime, so that building, encoding and writing a report never runs on
/// the thread(s) that relay sessions (`server.worker_threads` defaults to
/// one). Reports are built and encoded one at a time on that runtime's
/// single blocking thread, so concurrent requests queue instead of
/// multiplying the memory a report takes; /metrics and the health checks
/// do not wait for them.
pub fn spawn(listener: TcpListener, state: HttpState) -> std::io::Result<HttpServer> {
    let listener = listener.into_std()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("ddlguard-http")
        .max_blocking_threads(1)
        .build()?;
    std::thread::Builder::new()
        .name("ddlguard-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("HTTP server cannot use its listener: {e}");
                        return;
                    }
                };
                tokio::select! {
                    _ = serve(listener, state) => {}
                    _ = stopped => {}
                }
            });
            // Reports still being built finish in the background.
            runtime.shutdown_background();
        })?;
    Ok(HttpServer { stop: Some(stop) })
}

/// Serves the API on `listener` until the task is dropped (on the calling
/// runtime: the proxy uses [`spawn`]).
pub async fn serve(listener: TcpListener, state: HttpState) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/clients", paged_route(report::clients))
        .route("/api/v1/tables", paged_route(report::tables))
        .route("/api/v1/usage", paged_route(report::usage))
        .route("/api/v1/unresolved", paged_route(report::unresolved))
        .route("/api/v1/dependents", get(api_dependents))
        .route("/api/v1/queries", paged_route(report::queries))
        .route("/api/v1/errors", since_route(report::errors, true))
        .route("/api/v1/ddl", since_route(report::ddl, false))
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
    limit: Option<String>,
    after: Option<String>,
    client: Option<String>,
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

/// `limit`, `after`, `client` and `table` (with `column`) as a page.
fn page_of(q: &ReportQuery) -> Result<Page, Refusal> {
    let bad = |e: String| error(StatusCode::BAD_REQUEST, e);
    let limit = q
        .limit
        .as_deref()
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| bad(format!("invalid limit {l:?}: {}", PageError::Limit)))
        })
        .transpose()?;
    let mut page = Page::parse(limit, q.after.as_deref()).map_err(|e| bad(e.to_string()))?;
    page.client = q.client.clone().filter(|c| !c.is_empty());
    page.table = target_of(q);
    Ok(page)
}

/// The request's query string with `after` set to `cursor` (the `Link`
/// to the next page).
fn next_link(uri: &Uri, cursor: &str) -> String {
    let mut pairs: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("after="))
        .collect();
    let after = format!("after={cursor}");
    pairs.push(&after);
    format!("<{}?{}>; rel=\"next\"", uri.path(), pairs.join("&"))
}

/// Answers with a report as a JSON array after the token check. The
/// report is built and encoded on a blocking thread of the HTTP runtime
/// (it walks the whole usage aggregate); when rows follow, the cursor of
/// the next page is in `X-Next-Cursor` and in a `Link: <...>; rel="next"`.
async fn answer(
    st: Arc<HttpState>,
    headers: HeaderMap,
    uri: Uri,
    build: impl FnOnce(&HttpState) -> Result<Report, Refusal> + Send + 'static,
) -> Response {
    if let Err(r) = authorized(&st, &headers) {
        return r.into_response();
    }
    let encoded = tokio::task::spawn_blocking(move || {
        build(&st).map(|report| {
            let body = report.json_bytes();
            (body, report.next)
        })
    })
    .await;
    match encoded {
        Ok(Ok((Ok(body), next))) => {
            let mut response = (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            if let Some(cursor) = next {
                let h = response.headers_mut();
                for (name, value) in [
                    ("x-next-cursor", cursor.clone()),
                    ("link", next_link(&uri, &cursor)),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
            }
            response
        }
        Ok(Ok((Err(e), _))) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the report failed: {e}"),
        )
        .into_response(),
        Ok(Err(r)) => r.into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the report failed: {e}; see the proxy log"),
        )
        .into_response(),
    }
}

/// The route of a report that takes only a page (`limit`, `after`,
/// `client`, `table`).
fn paged_route(
    build: fn(&dyn ReportView, &Page) -> Report,
) -> axum::routing::MethodRouter<Arc<HttpState>> {
    get(
        move |State(st): State<Arc<HttpState>>,
              headers: HeaderMap,
              uri: Uri,
              Query(q): Query<ReportQuery>| async move {
            paged(st, headers, uri, q, move |st, _, page| {
                Ok(build(&*st.handle, page))
            })
            .await
        },
    )
}

/// The route of a paged report that also takes `since` (an interval).
/// Without it: `usage.window` when `window` (errors: after a migration,
/// 42703 and 42P01 show who broke), else every row held (the DDL log).
fn since_route(
    build: fn(&dyn ReportView, u64, &Page) -> Report,
    window: bool,
) -> axum::routing::MethodRouter<Arc<HttpState>> {
    get(
        move |State(st): State<Arc<HttpState>>,
              headers: HeaderMap,
              uri: Uri,
              Query(q): Query<ReportQuery>| async move {
            paged(st, headers, uri, q, move |st, q, page| {
                let since = match (q.since.as_deref(), window) {
                    (None, false) => 0,
                    (since, _) => since_ms(since, st.handle.config().usage.window.0)?,
                };
                Ok(build(&*st.handle, since, page))
            })
            .await
        },
    )
}

/// A paged report endpoint: `limit`, `after`, `client`, `table`.
async fn paged(
    st: Arc<HttpState>,
    headers: HeaderMap,
    uri: Uri,
    q: ReportQuery,
    build: impl FnOnce(&HttpState, &ReportQuery, &Page) -> Result<Report, Refusal> + Send + 'static,
) -> Response {
    answer(st, headers, uri, move |st| {
        let page = page_of(&q)?;
        build(st, &q, &page)
    })
    .await
}

async fn metrics(State(st): State<Arc<HttpState>>) -> Response {
    match crate::admin::metrics::render(&*st.handle) {
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

/// The DESIGN section 7 contract: a JSON array, one object per client
/// (paged like the others; `ddlguard report` follows the cursor).
async fn api_dependents(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<ReportQuery>,
) -> Response {
    paged(st, headers, uri, q, |st, q, page| {
        let target = target_of(q).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "missing table: /api/v1/dependents?table=users&column=email&since=1h",
            )
        })?;
        let since = since_ms(q.since.as_deref(), st.handle.config().usage.window.0)?;
        Ok(report::dependents(&*st.handle, &target, since, page))
    })
    .await
}

async fn api_rules(State(st): State<Arc<HttpState>>, headers: HeaderMap, uri: Uri) -> Response {
    answer(st, headers, uri, |st| {
        Ok(report::rules(&st.handle.config()))
    })
    .await
}

async fn api_config(State(st): State<Arc<HttpState>>, headers: HeaderMap, uri: Uri) -> Response {
    answer(st, headers, uri, |st| {
        Ok(report::config(
            &st.handle.config(),
            st.handle.config_file().as_deref(),
        ))
    })
    .await
}

//! A client for a running proxy's HTTP API, as the `ddlguard report`
//! command uses it: builds the URL, sends the bearer token, and follows the
//! page cursors (`X-Next-Cursor`) to the last page.

use crate::usage::dependents::Target;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The environment variable holding the bearer token for the HTTP API.
pub const TOKEN_ENV: &str = "DDLGUARD_HTTP_TOKEN";

/// Why a question to the proxy got no answer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The request failed (proxy down, refused, HTTP error status).
    #[error("asking {url} (is ddlguard running with [admin] http_listen = {http:?}?): {source}")]
    Request {
        /// The URL asked.
        url: String,
        /// The address as the user gave it.
        http: String,
        /// What the HTTP client saw.
        source: ureq::Error,
    },
    /// The body could not be read.
    #[error("reading the answer: {0}")]
    Read(ureq::Error),
    /// The body was not the JSON the contract describes.
    #[error("unexpected answer from {url}: {body}: {source}")]
    Decode {
        /// The URL asked.
        url: String,
        /// The body received.
        body: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// One row of the dependents contract (DESIGN section 7).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct DependentRow {
    /// The client's `application_name`.
    pub application_name: String,
    /// Login user.
    pub user: String,
    /// Database.
    pub database: String,
    /// Client address.
    pub client_addr: String,
    /// How the client used the object (explicit, implicit, ...).
    pub dependency: String,
    /// Calls within the window.
    pub calls: u64,
    /// First use within the window.
    pub first_seen: String,
    /// Last use within the window.
    pub last_seen: String,
    /// Fingerprint of the query shape (never literal values).
    pub fingerprint: String,
}

/// The base URL for an address written as `host:port` or as a URL.
pub fn base_url(http: &str) -> String {
    if http.starts_with("http://") || http.starts_with("https://") {
        http.trim_end_matches('/').to_string()
    } else {
        format!("http://{http}")
    }
}

/// Asks the proxy at `http` who depended on `target` (within `since`, else
/// the proxy's window), following the page cursors to the last page.
/// `token` is sent as a bearer token when given.
pub fn dependents(
    http: &str,
    target: &Target,
    since: Option<&str>,
    token: Option<&str>,
) -> Result<Vec<DependentRow>, ClientError> {
    let url = format!("{}/api/v1/dependents", base_url(http));
    let mut rows: Vec<DependentRow> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut req = ureq::get(&url).query("table", format!("{}.{}", target.schema, target.table));
        if let Some(c) = &target.column {
            req = req.query("column", c);
        }
        if let Some(s) = since {
            req = req.query("since", s);
        }
        if let Some(a) = &after {
            req = req.query("after", a);
        }
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = req.call().map_err(|source| ClientError::Request {
            url: url.clone(),
            http: http.to_string(),
            source,
        })?;
        let next = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(ClientError::Read)?;
        let page: Vec<DependentRow> =
            serde_json::from_str(&body).map_err(|source| ClientError::Decode {
                url: url.clone(),
                body: body.clone(),
                source,
            })?;
        rows.extend(page);
        match next {
            Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
            _ => break,
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_base_urls() {
        assert_eq!(base_url("127.0.0.1:9187"), "http://127.0.0.1:9187");
        assert_eq!(base_url("https://proxy:9187/"), "https://proxy:9187");
    }
}

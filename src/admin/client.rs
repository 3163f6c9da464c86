//! A client for a running proxy's paged HTTP API (`/api/v1/...`), as
//! `ddlguard report` and `ddlguard lint --usage-from` use it: JSON arrays,
//! with `X-Next-Cursor` when more rows follow, and the bearer token from
//! [`TOKEN_ENV`].

use crate::usage::dependents::Target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// The environment variable holding the bearer token for the HTTP API.
pub const TOKEN_ENV: &str = "DDLGUARD_HTTP_TOKEN";

/// Why a question to the proxy got no answer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The request failed (proxy down, refused, HTTP error status).
    #[error("asking {url} (is ddlguard running with [admin] http_listen there, and {TOKEN_ENV} set if it needs one?): {source}")]
    Request {
        /// The URL asked.
        url: String,
        /// What the HTTP client saw.
        source: ureq::Error,
    },
    /// The body could not be read.
    #[error("{url}: reading the answer: {source}")]
    Read {
        /// The URL asked.
        url: String,
        /// What the HTTP client saw.
        source: ureq::Error,
    },
    /// The body was not the JSON the contract describes.
    #[error("{url}: unexpected answer ({source})")]
    Decode {
        /// The URL asked.
        url: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The proxy's HTTP API at one base address.
pub struct Api {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    /// `http://host:port`, `host:port` (http assumed), with or without a
    /// trailing `/`; the bearer token comes from [`TOKEN_ENV`].
    pub fn new(address: &str) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            base: base_url(address),
            token: std::env::var(TOKEN_ENV).ok(),
            agent,
        }
    }

    /// The base address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every row of `path` with `query`, following the cursor to the last page.
    pub fn rows<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = self.agent.get(&url);
            for (k, v) in query {
                req = req.query(*k, *v);
            }
            if let Some(a) = &after {
                req = req.query("after", a);
            }
            if let Some(t) = &self.token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let mut response = req.call().map_err(|source| ClientError::Request {
                url: url.clone(),
                source,
            })?;
            let next = response
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body =
                response
                    .body_mut()
                    .read_to_string()
                    .map_err(|source| ClientError::Read {
                        url: url.clone(),
                        source,
                    })?;
            let page: Vec<T> =
                serde_json::from_str(&body).map_err(|source| ClientError::Decode {
                    url: url.clone(),
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
        format!("http://{}", http.trim_end_matches('/'))
    }
}

/// Asks who depended on `target` (within `since`, else the proxy's window).
pub fn dependents(
    api: &Api,
    target: &Target,
    since: Option<&str>,
) -> Result<Vec<DependentRow>, ClientError> {
    let table = format!("{}.{}", target.schema, target.table);
    let mut query = vec![("table", table.as_str())];
    if let Some(c) = &target.column {
        query.push(("column", c));
    }
    if let Some(s) = since {
        query.push(("since", s));
    }
    api.rows("/api/v1/dependents", &query)
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

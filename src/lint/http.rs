//! A small client for the proxy's paged HTTP API (`/api/v1/...`): JSON
//! arrays, with `X-Next-Cursor` when more rows follow; the token comes
//! from `DDLGUARD_HTTP_TOKEN`.

use super::error::LintError;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The proxy's HTTP API at one base address.
pub struct Api {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    /// `http://host:port`, `host:port` (http assumed), with or without a trailing `/`.
    pub fn new(address: &str) -> Api {
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            base,
            token: std::env::var("DDLGUARD_HTTP_TOKEN").ok(),
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
    ) -> Result<Vec<T>, LintError> {
        let url = format!("{}{path}", self.base);
        let fail = |what: String| LintError::Usage(format!("{url}: {what}"));
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
            let mut response = req.call().map_err(|e| {
                fail(format!(
                    "{e} (is ddlguard running with [admin] http_listen there, and DDLGUARD_HTTP_TOKEN set if it needs one?)"
                ))
            })?;
            let next = response
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| fail(format!("reading the answer: {e}")))?;
            let page: Vec<T> = serde_json::from_str(&body)
                .map_err(|e| fail(format!("unexpected answer ({e})")))?;
            rows.extend(page);
            match next {
                Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => break,
            }
        }
        Ok(rows)
    }
}

//! Reading one page of an HTTP report: rows, and the headers that point to
//! the next page.

/// A report page as the client sees it.
pub struct Page {
    /// The body (a JSON array).
    pub body: String,
    /// `X-Next-Cursor`: pass it as `after` for the next page.
    pub next: Option<String>,
    /// `Link: <...>; rel="next"`.
    pub link: Option<String>,
}

/// GETs `url` (any body size); a refusal gives its status code.
pub fn get_page(url: &str) -> Result<Page, u16> {
    let mut response = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(code)) => return Err(code),
        Err(e) => panic!("{url}: {e}"),
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (next, link) = (header("x-next-cursor"), header("link"));
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap();
    Ok(Page { body, next, link })
}

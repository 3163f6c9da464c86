//! Paging and filters of the large reports: at most `limit` rows per
//! answer, in the order of a per-report key, with a `next` cursor (the key
//! of the last row) to ask for the rows after it. A report builder keeps
//! at most `limit + 1` rows while it walks the usage aggregate, so memory
//! and the answer stay bounded however much usage is recorded.

use crate::admin::dependents::Target;
use crate::usage::ClientIdentity;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Rows of one answer when the request does not say.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most rows one answer may hold.
pub const MAX_LIMIT: usize = 10_000;

/// One part of a row's sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyPart {
    /// An absent value (sorts first).
    Null,
    /// A number (times negated for newest-first reports).
    Int(i64),
    /// A name.
    Text(String),
}

/// A row's position in its report: rows are answered in key order.
pub type Key = Vec<KeyPart>;

impl KeyPart {
    /// Text, or `Null` when absent.
    pub fn opt_text(s: Option<&str>) -> KeyPart {
        s.map_or(KeyPart::Null, |s| KeyPart::Text(s.to_string()))
    }

    /// A time for newest-first order (larger times sort first).
    pub fn newest_first(ms: u64) -> KeyPart {
        KeyPart::Int(-i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

/// The four identity parts per-client reports sort by.
pub fn client_key(c: &ClientIdentity) -> [KeyPart; 4] {
    [
        KeyPart::Text(c.application_name.clone()),
        KeyPart::Text(c.user.clone()),
        KeyPart::Text(c.database.clone()),
        KeyPart::Text(c.client_addr.clone()),
    ]
}

/// Why a page request was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PageError {
    /// `limit` out of range.
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    /// `after` is not a cursor this proxy gave out.
    #[error("after is not a cursor from a previous answer's next")]
    Cursor,
}

/// Which rows to answer: the first `limit` after the cursor `after`, of
/// the clients and the table asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows at most.
    pub limit: usize,
    /// Only rows after this key (from a previous answer's `next`).
    pub after: Option<Key>,
    /// Only rows of a client whose application_name, user or address is this.
    pub client: Option<String>,
    /// Only rows about this table (the usage report also takes a column).
    pub table: Option<Target>,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: DEFAULT_LIMIT,
            after: None,
            client: None,
            table: None,
        }
    }
}

impl Page {
    /// A page from request values: `limit` (default [`DEFAULT_LIMIT`], at
    /// most [`MAX_LIMIT`]) and `after` (a cursor).
    pub fn parse(limit: Option<usize>, after: Option<&str>) -> Result<Page, PageError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(PageError::Limit);
        }
        let after = after
            .filter(|a| !a.is_empty())
            .map(decode_cursor)
            .transpose()?;
        Ok(Page {
            limit,
            after,
            ..Page::default()
        })
    }

    /// Whether `c` passes the client filter.
    pub fn wants_client(&self, c: &ClientIdentity) -> bool {
        self.client.as_deref().is_none_or(|want| {
            want == c.application_name || want == c.user || want == c.client_addr
        })
    }

    /// Whether `schema.table` passes the table filter.
    pub fn wants_table(&self, schema: &str, table: &str) -> bool {
        self.table
            .as_ref()
            .is_none_or(|t| t.schema == schema && t.table == table)
    }
}

/// The cursor text of `key` (URL-safe, no escaping needed).
pub fn encode_cursor(key: &Key) -> String {
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(text: &str) -> Result<Key, PageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| PageError::Cursor)?;
    serde_json::from_slice(&bytes).map_err(|_| PageError::Cursor)
}

/// Collects the first `limit` values by key after the cursor (keeping
/// `limit + 1`, to know whether more follow).
pub struct Pager<V> {
    after: Option<Key>,
    limit: usize,
    kept: BTreeMap<Key, V>,
}

impl<V> Pager<V> {
    /// A pager for `page`'s cursor and limit.
    pub fn new(page: &Page) -> Pager<V> {
        Pager {
            after: page.after.clone(),
            limit: page.limit.max(1),
            kept: BTreeMap::new(),
        }
    }

    /// Whether a value under `key` could be in the answer (after the
    /// cursor, and not past `limit + 1` values already kept).
    pub fn wants(&self, key: &Key) -> bool {
        if self.after.as_ref().is_some_and(|a| key <= a) {
            return false;
        }
        self.kept.len() <= self.limit
            || self.kept.contains_key(key)
            || self.kept.last_key_value().is_some_and(|(k, _)| key < k)
    }

    /// The value kept under `key` (made by `init` if new), or `None` when
    /// the key is not in the answer. Several rows with one key merge here.
    pub fn slot(&mut self, key: Key, init: impl FnOnce() -> V) -> Option<&mut V> {
        if !self.wants(&key) {
            return None;
        }
        if !self.kept.contains_key(&key) {
            self.kept.insert(key.clone(), init());
            if self.kept.len() > self.limit + 1 {
                self.kept.pop_last();
            }
        }
        self.kept.get_mut(&key)
    }

    /// Offers `value` under `key`: kept if it is in the answer, merged
    /// into the value already kept under an equal key.
    pub fn merge(&mut self, key: Key, value: V, merge: impl FnOnce(&mut V, V)) {
        if let Some(kept) = self.kept.get_mut(&key) {
            merge(kept, value);
        } else {
            self.offer(key, || value);
        }
    }

    /// Offers a row under `key` (built only if kept); a second row under
    /// an equal key replaces the first.
    pub fn offer(&mut self, key: Key, value: impl FnOnce() -> V) {
        if self.wants(&key) {
            self.kept.insert(key, value());
            if self.kept.len() > self.limit + 1 {
                self.kept.pop_last();
            }
        }
    }

    /// The values in key order, and the cursor of the next page when more
    /// rows follow.
    pub fn finish(mut self) -> (Vec<V>, Option<String>) {
        let more = self.kept.len() > self.limit;
        if more {
            self.kept.pop_last();
        }
        let next = more
            .then(|| self.kept.last_key_value().map(|(k, _)| encode_cursor(k)))
            .flatten();
        (self.kept.into_values().collect(), next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> Key {
        vec![KeyPart::Int(n)]
    }

    fn page(limit: usize, after: Option<String>) -> Page {
        Page::parse(Some(limit), after.as_deref()).unwrap()
    }

    #[test]
    fn pages_cover_every_row_once_in_key_order_whatever_the_offer_order() {
        let offered: Vec<i64> = (0..25).map(|i| (i * 7) % 25).collect();
        let mut after = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let mut p = Pager::new(&page(10, after.clone()));
            for n in &offered {
                p.offer(key(*n), || *n);
            }
            let (rows, next) = p.finish();
            assert!(rows.len() <= 10);
            seen.extend(rows);
            pages += 1;
            match next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert_eq!(pages, 3);
    }

    #[test]
    fn merged_rows_stay_merged_and_memory_stays_bounded() {
        let mut p: Pager<u64> = Pager::new(&page(2, None));
        for n in [5, 1, 5, 3, 1, 9, 1] {
            if let Some(v) = p.slot(key(n), || 0) {
                *v += 1;
            }
            assert!(p.kept.len() <= 3);
        }
        let (rows, next) = p.finish();
        assert_eq!(rows, vec![3, 1], "key 1 three times, key 3 once");
        assert!(next.is_some());
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        assert_eq!(Page::parse(Some(0), None), Err(PageError::Limit));
        assert_eq!(
            Page::parse(Some(MAX_LIMIT + 1), None),
            Err(PageError::Limit)
        );
        assert_eq!(Page::parse(None, Some("%%")), Err(PageError::Cursor));
        assert_eq!(Page::parse(None, None).map(|p| p.limit), Ok(DEFAULT_LIMIT));
        let c = encode_cursor(&vec![KeyPart::Text("a".into()), KeyPart::Null]);
        assert_eq!(
            Page::parse(None, Some(&c)).map(|p| p.after),
            Ok(Some(vec![KeyPart::Text("a".into()), KeyPart::Null]))
        );
    }
}

//! The in-memory usage aggregate, bounded, shared by all sessions.

use super::kinds::KindStats;
use super::timeline::{MinuteSlot, ShapeLatency};
use super::{ClientIdentity, LatencyHistogram};
use crate::analysis::search_path;
use crate::analysis::{resolve, Analysis, Dependency, Mode, QualifiedName};
use crate::catalog::Catalog;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Aggregate of one client running one statement shape. `flushed` holds
/// the part of the totals the store already has.
#[derive(Debug, Clone)]
struct Entry {
    analysis: Arc<Analysis>,
    calls: u64,
    errors: u64,
    error_codes: ByCode,
    /// When each SQLSTATE last occurred, ms (for "errors since"); codes
    /// loaded from a store count as last seen with the entry.
    error_last_ms: ByCode,
    total_us: u64,
    max_us: u64,
    first_seen_ms: u64,
    last_seen_ms: u64,
    flushed: Flushed,
}

impl Entry {
    /// The entry's totals as a record (what reports and stores read).
    fn totals(&self, client: ClientIdentity, path: &str, fingerprint_id: u64) -> UsageRecord {
        UsageRecord {
            client,
            search_path: path.to_string(),
            fingerprint_id,
            fingerprint: self.analysis.fingerprint.text.clone(),
            calls: self.calls,
            errors: self.errors,
            total_us: self.total_us,
            max_us: self.max_us,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            error_codes: self
                .error_codes
                .iter()
                .map(|(c, n)| (String::from_utf8_lossy(c).into_owned(), *n))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Flushed {
    calls: u64,
    errors: u64,
    total_us: u64,
    error_codes: ByCode,
}

/// Totals (from a store) or increments (to a store) of one (client, shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The client.
    pub client: ClientIdentity,
    /// The session's `search_path` when it ran the statement, canonical
    /// text; empty for the server default.
    pub search_path: String,
    /// Stable fingerprint id.
    pub fingerprint_id: u64,
    /// Normalized text (re-analysed when loaded).
    pub fingerprint: String,
    /// Executions.
    pub calls: u64,
    /// Failed executions.
    pub errors: u64,
    /// Sum of latencies, µs.
    pub total_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// First execution, ms since the epoch.
    pub first_seen_ms: u64,
    /// Last execution, ms since the epoch.
    pub last_seen_ms: u64,
    /// Errors by SQLSTATE.
    pub error_codes: Vec<(String, u64)>,
}

fn code_bytes(code: &str) -> Option<[u8; 5]> {
    code.as_bytes().try_into().ok()
}

/// Per-SQLSTATE numbers (a count, or a time in ms), few enough per entry
/// that a small vector beats a map.
type ByCode = Vec<([u8; 5], u64)>;

/// Adds `n` to the number of `code`.
fn add_code(codes: &mut ByCode, code: [u8; 5], n: u64) {
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, m)) => *m += n,
        None => codes.push((code, n)),
    }
}

/// Sets the number of `code` to `v`.
fn set_code(codes: &mut ByCode, code: [u8; 5], v: u64) {
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, m)) => *m = v,
        None => codes.push((code, v)),
    }
}

/// The number of `code`, 0 when absent.
fn value_of(codes: &[([u8; 5], u64)], code: &[u8; 5]) -> u64 {
    codes
        .iter()
        .find(|(c, _)| c == code)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// One client's failures of one statement shape with one SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// The client.
    pub client: ClientIdentity,
    /// Normalized statement text.
    pub fingerprint: String,
    /// The SQLSTATE.
    pub sqlstate: String,
    /// How often the shape failed with it (since records began).
    pub errors: u64,
    /// Executions of the shape (since records began).
    pub calls: u64,
    /// When it last failed with this SQLSTATE, ms since the Unix epoch.
    pub last_error_ms: u64,
}

/// One expanded usage row: a client, an object it used, through a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The client.
    pub client: ClientIdentity,
    /// The `search_path` the statements ran under ("" = server default).
    pub search_path: String,
    /// Schema of the table; empty when the column could not be resolved.
    pub schema: String,
    /// Table; empty when the column could not be resolved.
    pub table: String,
    /// The relations that may own the column, when the catalog could not
    /// decide between them (empty for a resolved row): such a row belongs
    /// to the "could not resolve" list of the reports, never to a table.
    pub candidates: Vec<QualifiedName>,
    /// Column, `None` for the table as a whole or all columns (`*`).
    pub column: Option<String>,
    /// Read or write.
    pub mode: Mode,
    /// Explicit, or implicit (all columns).
    pub dependency: Dependency,
    /// Normalized statement text.
    pub fingerprint: String,
    /// Stable id of the fingerprint.
    pub fingerprint_id: u64,
    /// Executions.
    pub calls: u64,
    /// Executions that ended in an error.
    pub errors: u64,
    /// SQLSTATEs of those errors with their counts.
    pub error_codes: Vec<(String, u64)>,
    /// Sum of latencies, µs.
    pub total_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// First execution, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Last execution, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

impl UsageRow {
    /// (schema, table) of the row: one pair, or each candidate when the
    /// column was ambiguous.
    pub fn relations(&self) -> Vec<(&str, &str)> {
        if self.candidates.is_empty() {
            vec![(self.schema.as_str(), self.table.as_str())]
        } else {
            self.candidates
                .iter()
                .map(|q| (q.schema.as_str(), q.name.as_str()))
                .collect()
        }
    }

    /// True when the row names one relation (not a candidate set).
    pub fn is_resolved(&self) -> bool {
        self.candidates.is_empty()
    }
}

/// Counters about the aggregate itself, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageStats {
    /// (client, shape) entries held.
    pub entries: usize,
    /// Executions not recorded because the aggregate was full.
    pub dropped: u64,
    /// Executions recorded.
    pub recorded: u64,
}

/// Minute slots kept by all timelines together (about 150 bytes each).
const MAX_MINUTE_SLOTS: usize = 200_000;

/// Longest `search_path` text kept apart; longer ones count as the default.
const MAX_PATH_LEN: usize = 512;

/// A client identity together with the `search_path` its statements ran
/// under: unqualified names of the same text can mean different tables.
type SessionKey = (ClientIdentity, String);

/// All usage since start (or since the last load from a store).
pub struct UsageRegistry {
    clients: DashMap<SessionKey, u32, ahash::RandomState>,
    client_list: RwLock<Vec<SessionKey>>,
    entries: DashMap<(u32, u64), Entry, ahash::RandomState>,
    latency: DashMap<u64, ShapeLatency, ahash::RandomState>,
    /// Executions by statement kind (for metrics).
    pub kinds: KindStats,
    /// Minute slots held by all shapes' timelines (bounded).
    minute_slots: AtomicUsize,
    /// Successful store syncs (for metrics).
    pub store_flushes: AtomicU64,
    /// Failed store opens and syncs (for metrics).
    pub store_errors: AtomicU64,
    len: AtomicUsize,
    cap: usize,
    dropped: AtomicU64,
    recorded: AtomicU64,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl UsageRegistry {
    /// An empty aggregate holding at most `cap` (client, shape) entries;
    /// beyond that new entries are dropped and counted.
    pub fn new(cap: usize) -> UsageRegistry {
        UsageRegistry {
            clients: DashMap::default(),
            client_list: RwLock::new(Vec::new()),
            entries: DashMap::default(),
            latency: DashMap::default(),
            kinds: KindStats::default(),
            minute_slots: AtomicUsize::new(0),
            store_flushes: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            cap,
            dropped: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
        }
    }

    /// The small integer a session records under (interned once per
    /// session, and again when its `search_path` changes; `search_path` is
    /// canonical text, empty for the server default).
    pub fn client_id(&self, identity: &ClientIdentity, search_path: &str) -> u32 {
        // A client cycling through endless paths must not grow this table
        // without bound: past the caps its usage counts under the default.
        let search_path = if search_path.len() > MAX_PATH_LEN
            || (self.clients.len() >= self.cap && !search_path.is_empty())
        {
            ""
        } else {
            search_path
        };
        let key = (identity.clone(), search_path.to_string());
        if let Some(id) = self.clients.get(&key) {
            return *id;
        }
        let mut list = match self.client_list.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        *self.clients.entry(key.clone()).or_insert_with(|| {
            list.push(key);
            (list.len() - 1) as u32
        })
    }

    fn identity(&self, id: u32) -> Option<SessionKey> {
        let list = match self.client_list.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        list.get(id as usize).cloned()
    }

    /// Records one execution of `analysis` by `client`.
    pub fn record(
        &self,
        client: u32,
        analysis: &Arc<Analysis>,
        latency_us: u64,
        error: Option<[u8; 5]>,
    ) {
        let now = now_ms();
        self.kinds
            .record(analysis.kind, latency_us, error.is_some());
        let key = (client, analysis.fingerprint.id);
        match self.entries.get_mut(&key) {
            Some(mut e) => update(&mut e, latency_us, error, now),
            None => {
                if self.len.load(Ordering::Relaxed) >= self.cap {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut fresh = Entry {
                    analysis: analysis.clone(),
                    calls: 0,
                    errors: 0,
                    error_codes: Vec::new(),
                    error_last_ms: Vec::new(),
                    total_us: 0,
                    max_us: 0,
                    first_seen_ms: now,
                    last_seen_ms: now,
                    flushed: Flushed::default(),
                };
                update(&mut fresh, latency_us, error, now);
                if self.entries.insert(key, fresh).is_none() {
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let may_grow = self.minute_slots.load(Ordering::Relaxed) < MAX_MINUTE_SLOTS;
        let delta = match self.latency.get_mut(&analysis.fingerprint.id) {
            Some(mut h) => h.record(latency_us, now, may_grow),
            None if self.latency.len() < self.cap => self
                .latency
                .entry(analysis.fingerprint.id)
                .or_default()
                .record(latency_us, now, may_grow),
            None => 0,
        };
        self.count_slots(delta);
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters about the aggregate.
    pub fn stats(&self) -> UsageStats {
        UsageStats {
            entries: self.len.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
        }
    }

    /// One record per (client, statement shape), totals as they stand; for
    /// reports that are about statements rather than tables (errors).
    pub fn statements(&self) -> Vec<UsageRecord> {
        self.entries
            .iter()
            .filter_map(|item| {
                let ((client, fp), e) = item.pair();
                let (identity, path) = self.identity(*client)?;
                Some(e.totals(identity, &path, *fp))
            })
            .collect()
    }

    /// Failures by client, shape and SQLSTATE that last happened at or after
    /// `since_ms`: after a migration, 42703 and 42P01 show who broke.
    pub fn errors_since(&self, since_ms: u64) -> Vec<ErrorRow> {
        // Keyed without the search_path: one row per client, shape and code.
        let mut by: std::collections::BTreeMap<(ClientIdentity, u64, [u8; 5]), ErrorRow> =
            std::collections::BTreeMap::new();
        for item in self.entries.iter() {
            let ((client, fp), e) = item.pair();
            if e.errors == 0 || e.last_seen_ms < since_ms {
                continue;
            }
            let Some((identity, _)) = self.identity(*client) else {
                continue;
            };
            for (code, n) in &e.error_codes {
                let last = value_of(&e.error_last_ms, code);
                if last < since_ms {
                    continue;
                }
                let row = by
                    .entry((identity.clone(), *fp, *code))
                    .or_insert_with(|| ErrorRow {
                        client: identity.clone(),
                        fingerprint: e.analysis.fingerprint.text.clone(),
                        sqlstate: String::from_utf8_lossy(code).into_owned(),
                        errors: 0,
                        calls: 0,
                        last_error_ms: 0,
                    });
                row.errors += n;
                row.calls += e.calls;
                row.last_error_ms = row.last_error_ms.max(last);
            }
        }
        let mut out: Vec<ErrorRow> = by.into_values().collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.last_error_ms));
        out
    }

    /// What the store does not have yet: one increment per changed entry.
    pub fn deltas(&self) -> Vec<UsageRecord> {
        let mut out = Vec::new();
        for item in self.entries.iter() {
            let ((client, fp), e) = item.pair();
            if e.calls == e.flushed.calls && e.errors == e.flushed.errors {
                continue;
            }
            let Some((identity, path)) = self.identity(*client) else {
                continue;
            };
            let mut delta = e.totals(identity, &path, *fp);
            delta.calls = delta.calls.saturating_sub(e.flushed.calls);
            delta.errors = delta.errors.saturating_sub(e.flushed.errors);
            delta.total_us = delta.total_us.saturating_sub(e.flushed.total_us);
            for (code, n) in delta.error_codes.iter_mut() {
                if let Some(c) = code_bytes(code) {
                    *n = n.saturating_sub(value_of(&e.flushed.error_codes, &c));
                }
            }
            delta.error_codes.retain(|(_, n)| *n > 0);
            out.push(delta);
        }
        out
    }

    /// Records that `deltas` reached the store.
    pub fn mark_flushed(&self, deltas: &[UsageRecord]) {
        for d in deltas {
            let id = self.client_id(&d.client, &d.search_path);
            if let Some(mut e) = self.entries.get_mut(&(id, d.fingerprint_id)) {
                e.flushed.calls += d.calls;
                e.flushed.errors += d.errors;
                e.flushed.total_us += d.total_us;
                for (code, n) in &d.error_codes {
                    if let Some(c) = code_bytes(code) {
                        add_code(&mut e.flushed.error_codes, c, *n);
                    }
                }
            }
        }
    }

    /// Takes totals from the store as the new baseline (at start, and after
    /// each flush so that proxies sharing a store see each other's usage);
    /// what this proxy has not flushed yet is kept on top.
    pub fn merge_stored(&self, records: Vec<UsageRecord>, analyze: impl Fn(&str) -> Arc<Analysis>) {
        for r in records {
            let id = self.client_id(&r.client, &r.search_path);
            let stored_codes: ByCode = r
                .error_codes
                .iter()
                .filter_map(|(c, n)| code_bytes(c).map(|c| (c, *n)))
                .collect();
            match self.entries.get_mut(&(id, r.fingerprint_id)) {
                Some(mut e) => {
                    let e = &mut *e;
                    e.calls = r.calls + e.calls.saturating_sub(e.flushed.calls);
                    e.errors = r.errors + e.errors.saturating_sub(e.flushed.errors);
                    e.total_us = r.total_us + e.total_us.saturating_sub(e.flushed.total_us);
                    let mut codes = stored_codes.clone();
                    for (c, n) in &e.error_codes {
                        let unflushed = n.saturating_sub(value_of(&e.flushed.error_codes, c));
                        if unflushed > 0 {
                            add_code(&mut codes, *c, unflushed);
                        }
                    }
                    for (c, _) in &codes {
                        if value_of(&e.error_last_ms, c) == 0 {
                            e.error_last_ms.push((*c, r.last_seen_ms));
                        }
                    }
                    e.error_codes = codes;
                    e.max_us = e.max_us.max(r.max_us);
                    e.first_seen_ms = e.first_seen_ms.min(r.first_seen_ms);
                    e.last_seen_ms = e.last_seen_ms.max(r.last_seen_ms);
                    e.flushed = Flushed {
                        calls: r.calls,
                        errors: r.errors,
                        total_us: r.total_us,
                        error_codes: stored_codes,
                    };
                }
                None => {
                    if self.len.load(Ordering::Relaxed) >= self.cap {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let entry = Entry {
                        analysis: analyze(&r.fingerprint),
                        calls: r.calls,
                        errors: r.errors,
                        error_codes: stored_codes.clone(),
                        error_last_ms: stored_codes
                            .iter()
                            .map(|(c, _)| (*c, r.last_seen_ms))
                            .collect(),
                        total_us: r.total_us,
                        max_us: r.max_us,
                        first_seen_ms: r.first_seen_ms,
                        last_seen_ms: r.last_seen_ms,
                        flushed: Flushed {
                            calls: r.calls,
                            errors: r.errors,
                            total_us: r.total_us,
                            error_codes: stored_codes,
                        },
                    };
                    if self.entries.insert((id, r.fingerprint_id), entry).is_none() {
                        self.len.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Latency distribution of one shape across all clients, since start.
    pub fn latency(&self, fingerprint_id: u64) -> Option<LatencyHistogram> {
        self.latency.get(&fingerprint_id).map(|h| h.total.clone())
    }

    fn count_slots(&self, delta: isize) {
        if delta > 0 {
            self.minute_slots
                .fetch_add(delta as usize, Ordering::Relaxed);
        } else if delta < 0 {
            self.minute_slots
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Drops minute slots older than an hour from shapes that stopped
    /// running (the flusher calls it every interval).
    pub fn prune_minutes(&self, now_ms: u64) {
        let mut removed = 0;
        for mut item in self.latency.iter_mut() {
            removed += item.value_mut().prune(now_ms);
        }
        self.count_slots(-(removed as isize));
    }

    /// The minutes of the last hour (before `now_ms`) of every shape that
    /// ran in it.
    pub fn recent_latencies(&self, now_ms: u64) -> Vec<(u64, Vec<MinuteSlot>)> {
        self.latency
            .iter()
            .filter_map(|item| {
                let slots: Vec<MinuteSlot> = item.value().recent(now_ms).cloned().collect();
                (!slots.is_empty()).then_some((*item.key(), slots))
            })
            .collect()
    }

    /// The analysis of every shape recorded (the kind and the tables of a
    /// fingerprint, for reports about statements).
    pub fn shapes(&self) -> std::collections::HashMap<u64, Arc<Analysis>> {
        self.entries
            .iter()
            .map(|item| (item.key().1, item.value().analysis.clone()))
            .collect()
    }

    /// Every entry expanded into one row per table/column use, resolved with
    /// the catalog of the entry's database and the `search_path` the
    /// statement ran under.
    pub fn rows(&self, catalog_of: impl Fn(&str) -> Arc<Catalog>) -> Vec<UsageRow> {
        // Copy out first: resolving while iterating would hold the map's
        // shard locks, and `record` on the relay path would wait for them.
        let snapshot: Vec<(u32, Entry)> = self
            .entries
            .iter()
            .map(|item| (item.key().0, item.value().clone()))
            .collect();
        let mut rows = Vec::new();
        for (client, e) in &snapshot {
            let Some((identity, path)) = self.identity(*client) else {
                continue;
            };
            let catalog = catalog_of(&identity.database);
            let schemas = search_path::effective(&path, &identity.user, |s| catalog.has_schema(s));
            let t = e.totals(identity, &path, e.analysis.fingerprint.id);
            for u in resolve(&e.analysis, &catalog, &schemas) {
                let (schema, table, candidates) = match u.relations.as_slice() {
                    [one] => (one.schema.clone(), one.name.clone(), Vec::new()),
                    _ => (String::new(), String::new(), u.relations.clone()),
                };
                rows.push(UsageRow {
                    client: t.client.clone(),
                    search_path: t.search_path.clone(),
                    schema,
                    table,
                    candidates,
                    column: u.column.clone(),
                    mode: u.mode,
                    dependency: u.dependency,
                    fingerprint: t.fingerprint.clone(),
                    fingerprint_id: t.fingerprint_id,
                    calls: t.calls,
                    errors: t.errors,
                    error_codes: t.error_codes.clone(),
                    total_us: t.total_us,
                    max_us: t.max_us,
                    first_seen_ms: t.first_seen_ms,
                    last_seen_ms: t.last_seen_ms,
                });
            }
        }
        rows
    }
}

fn update(e: &mut Entry, latency_us: u64, error: Option<[u8; 5]>, now: u64) {
    e.calls += 1;
    e.total_us += latency_us;
    e.max_us = e.max_us.max(latency_us);
    e.last_seen_ms = now;
    if let Some(code) = error {
        e.errors += 1;
        add_code(&mut e.error_codes, code, 1);
        set_code(&mut e.error_last_ms, code, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;

    fn client(app: &str) -> ClientIdentity {
        ClientIdentity {
            application_name: app.into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        }
    }

    #[test]
    fn records_expand_into_table_and_column_rows() {
        let reg = UsageRegistry::new(100);
        let analyzer = Analyzer::new(100);
        let a = reg.client_id(&client("a"), "");
        assert_eq!(reg.client_id(&client("a"), ""), a);
        let b = reg.client_id(&client("b"), "");
        assert_ne!(a, b);
        let q = analyzer.analyze("SELECT email FROM users WHERE id = 1");
        reg.record(a, &q, 100, None);
        reg.record(
            a,
            &analyzer.analyze("SELECT email FROM users WHERE id = 2"),
            300,
            Some(*b"42703"),
        );
        reg.record(b, &analyzer.analyze("SELECT * FROM users"), 50, None);
        let rows = reg.rows(|_| Arc::new(Catalog::default()));
        let email: Vec<&UsageRow> = rows
            .iter()
            .filter(|r| r.column.as_deref() == Some("email"))
            .collect();
        assert_eq!(email.len(), 1);
        assert_eq!(email[0].client.application_name, "a");
        assert_eq!(
            (email[0].calls, email[0].errors, email[0].max_us),
            (2, 1, 300)
        );
        assert_eq!(email[0].error_codes, vec![("42703".to_string(), 1)]);
        assert_eq!(
            email[0].fingerprint,
            "select email from users where id = $1"
        );
        let star = rows
            .iter()
            .find(|r| r.client.application_name == "b")
            .unwrap();
        assert_eq!(
            (star.table.as_str(), star.dependency),
            ("users", Dependency::Implicit)
        );
        assert_eq!(reg.latency(q.fingerprint.id).unwrap().count(), 2);
    }

    #[test]
    fn deltas_flush_once_and_stored_totals_become_the_baseline() {
        let reg = UsageRegistry::new(100);
        let analyzer = Analyzer::new(100);
        let c = reg.client_id(&client("a"), "");
        let q = analyzer.analyze("SELECT email FROM users");
        reg.record(c, &q, 10, None);
        reg.record(c, &q, 20, Some(*b"42703"));
        let d = reg.deltas();
        assert_eq!(
            (d.len(), d[0].calls, d[0].errors, d[0].total_us),
            (1, 2, 1, 30)
        );
        reg.mark_flushed(&d);
        assert!(reg.deltas().is_empty());
        reg.record(c, &q, 5, None);
        // Another proxy added 10 calls to the same row in the store.
        let mut stored = d[0].clone();
        stored.calls += 10;
        reg.merge_stored(vec![stored], |t| analyzer.analyze(t));
        let d = reg.deltas();
        assert_eq!(
            (d[0].calls, d[0].errors, d[0].total_us),
            (1, 0, 5),
            "only the unflushed call"
        );
        let rows = reg.rows(|_| Arc::new(Catalog::default()));
        assert_eq!(rows[0].calls, 13);
        // A fresh registry loads the stored totals.
        let fresh = UsageRegistry::new(100);
        fresh.merge_stored(
            reg.deltas()
                .into_iter()
                .map(|mut r| {
                    r.calls = 13;
                    r
                })
                .collect(),
            |t| analyzer.analyze(t),
        );
        assert!(fresh.deltas().is_empty());
        assert!(fresh
            .rows(|_| Arc::new(Catalog::default()))
            .iter()
            .any(|r| r.column.as_deref() == Some("email") && r.calls == 13));
    }

    #[test]
    fn the_cap_bounds_memory_and_counts_what_is_dropped() {
        let reg = UsageRegistry::new(10);
        let analyzer = Analyzer::new(100);
        let c = reg.client_id(&client("a"), "");
        for i in 0..50 {
            reg.record(
                c,
                &analyzer.analyze(&format!("SELECT * FROM t{i}")),
                1,
                None,
            );
        }
        let stats = reg.stats();
        assert_eq!(stats.entries, 10);
        assert_eq!(stats.dropped, 40);
        // Known shapes keep counting when full.
        reg.record(c, &analyzer.analyze("SELECT * FROM t0"), 1, None);
        assert_eq!(reg.stats().dropped, 40);
    }
}

//! The in-memory usage aggregate, bounded, shared by all sessions.
//!
//! Entries are keyed by (client id, fingerprint id); each statement shape
//! keeps its analysis and latency timeline once, however many clients run
//! it. Every byte held is estimated when it is added or removed
//! ([`super::memory`]); past `usage.max_memory` the background pass
//! ([`UsageRegistry::evict`]) drops the least recently used entries.

use super::clients::{ClientId, ClientTable, SessionKey};
use super::entry::{add_code, code_bytes, value_of, ByCode, Entry, Flushed, Pinned};
use super::held;
use super::memory::{codes_bytes, entry_bytes, map_slot, SHAPE_BYTES, SLOT_BYTES};
use super::recorded;
use super::runs::Runs;
use super::timeline::{MinuteSlot, ShapeLatency};
use super::{ClientIdentity, LatencyHistogram};
use crate::analysis::search_path;
use crate::analysis::{analysis_bytes, Analysis, Dependency, Mode, QualifiedName, ResolvedUse};
use crate::catalog::Catalog;
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

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
    /// The tables and columns as resolved when recorded (`None` until a
    /// catalog snapshot resolved them, and for rows of older stores).
    pub resolved: Option<Arc<Vec<ResolvedUse>>>,
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
    /// Entries evicted to stay under `usage.max_memory` (their unflushed
    /// counts go to the store first).
    pub evicted: u64,
    /// Client identities held.
    pub clients: usize,
    /// Estimated bytes held (entries, shapes, identities).
    pub bytes: usize,
}

/// Increments not yet in the store, each with the entry it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Deltas {
    keys: Vec<EntryKey>,
    /// The increments, in the store's form.
    pub records: Vec<UsageRecord>,
}

impl Deltas {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Minute slots kept by all timelines together.
const MAX_MINUTE_SLOTS: usize = 200_000;

/// (client id, fingerprint id).
type EntryKey = (u64, u64);

/// One statement shape: its analysis and latency, held once for all the
/// entries (clients) that ran it.
pub(super) struct Shape {
    pub analysis: Arc<Analysis>,
    pub latency: ShapeLatency,
    /// Entries of this shape; the shape goes with the last one.
    pub entries: usize,
    /// Estimated bytes, minute slots apart.
    pub bytes: usize,
}

impl Shape {
    fn new(analysis: &Arc<Analysis>) -> Shape {
        Shape {
            analysis: analysis.clone(),
            latency: ShapeLatency::default(),
            entries: 0,
            bytes: map_slot(std::mem::size_of::<(u64, Shape)>())
                + analysis_bytes(analysis)
                + SHAPE_BYTES,
        }
    }
}

/// All usage since start (or since the last load from a store).
pub struct UsageRegistry {
    pub(super) clients: ClientTable,
    pub(super) entries: DashMap<EntryKey, Entry, ahash::RandomState>,
    pub(super) shapes: DashMap<u64, Shape, ahash::RandomState>,
    /// Executions by statement kind (read: `kind_counts`).
    kinds: super::kinds::KindStats,
    /// Minute slots held by all shapes' timelines (bounded).
    minute_slots: AtomicUsize,
    /// Successful store syncs (for metrics).
    pub store_flushes: AtomicU64,
    /// Failed store opens and syncs (for metrics).
    pub store_errors: AtomicU64,
    /// Increments of evicted entries dropped because the store stayed
    /// unreachable (for metrics).
    pub store_dropped: AtomicU64,
    pub(super) len: AtomicUsize,
    cap: usize,
    /// `usage.max_memory`.
    pub(super) max_bytes: usize,
    /// Estimated bytes of entries and shapes (identities count apart).
    pub(super) bytes: AtomicUsize,
    /// Entries evicted.
    pub(super) evicted: AtomicU64,
    /// Entries last seen at or before this were evicted: store rows that
    /// old are history this registry does not hold (not loaded back).
    pub(super) forgotten_ms: AtomicU64,
    /// Wakes the background pass when memory passes the high-water mark.
    pub(super) pressure: Notify,
    dropped: AtomicU64,
    recorded: AtomicU64,
    /// Relay threads holding executions for this registry (usage::held).
    pub(super) holders: held::Holders,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Adds a signed change to a byte counter.
pub(super) fn add_bytes(counter: &AtomicUsize, delta: isize) {
    if delta > 0 {
        counter.fetch_add(delta as usize, Ordering::Relaxed);
    } else if delta < 0 {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(delta.unsigned_abs()))
        });
    }
}

impl UsageRegistry {
    /// An empty aggregate holding at most `cap` (client, shape) entries;
    /// beyond that new entries are dropped and counted. No memory bound.
    pub fn new(cap: usize) -> UsageRegistry {
        UsageRegistry::with_max_memory(cap, usize::MAX)
    }

    /// As [`UsageRegistry::new`], holding about `max_bytes` at most: the
    /// background pass evicts the least recently used entries from 7/8 of
    /// it down to 3/4, and new entries are dropped (and counted) while the
    /// bound itself is reached.
    pub fn with_max_memory(cap: usize, max_bytes: usize) -> UsageRegistry {
        UsageRegistry {
            clients: ClientTable::default(),
            entries: DashMap::default(),
            shapes: DashMap::default(),
            kinds: Default::default(),
            minute_slots: AtomicUsize::new(0),
            store_flushes: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            store_dropped: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            cap,
            max_bytes,
            bytes: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            forgotten_ms: AtomicU64::new(0),
            pressure: Notify::new(),
            dropped: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            holders: held::Holders::default(),
        }
    }

    /// Estimated bytes held: entries, shapes (analyses, timelines) and
    /// client identities.
    pub fn memory_bytes(&self) -> usize {
        held::settle(self);
        self.bytes_now()
    }

    /// [`memory_bytes`](Self::memory_bytes) without applying held
    /// executions first: for the recording path itself (which applies
    /// them) and the eviction pass.
    pub(super) fn bytes_now(&self) -> usize {
        self.bytes.load(Ordering::Relaxed) + self.clients.bytes()
    }

    /// Above this the background pass evicts.
    pub(super) fn high_water(&self) -> usize {
        self.max_bytes / 8 * 7
    }

    /// Resolves when memory passed the high-water mark since the last call.
    pub async fn under_pressure(&self) {
        self.pressure.notified().await
    }

    /// What a session records under (once per session, and again when its
    /// `search_path` or `application_name` changes; `search_path` is
    /// canonical text, empty for the server default). Keep the handle while
    /// executions may still be recorded under it.
    pub fn client_id(&self, identity: &ClientIdentity, search_path: &str) -> ClientId {
        self.clients.intern(identity, search_path, self.cap)
    }

    fn identity(&self, id: u64) -> Option<SessionKey> {
        self.clients.key_of(id)
    }

    /// Records one execution of `analysis` by `client`.
    pub fn record(
        &self,
        client: &ClientId,
        analysis: &Arc<Analysis>,
        latency_us: u64,
        error: Option<[u8; 5]>,
    ) {
        self.record_at(client, analysis, latency_us, error, now_ms());
    }

    /// [`record`](Self::record) at `now` (ms since the Unix epoch), for a
    /// caller that has the time already.
    pub fn record_at(
        &self,
        client: &ClientId,
        analysis: &Arc<Analysis>,
        latency_us: u64,
        error: Option<[u8; 5]>,
        now: u64,
    ) {
        self.add_runs(client, analysis, &Runs::one(latency_us, error, now));
    }

    /// Records summed executions of `analysis` by `client` (usage::held
    /// applies what a relay thread held so): one map lookup each for the
    /// entry and the shape, however many executions.
    pub fn add_runs(&self, client: &ClientId, analysis: &Arc<Analysis>, runs: &Runs) {
        if runs.calls == 0 {
            return;
        }
        self.kinds.add(analysis.kind, runs);
        let key = (client.id(), analysis.fingerprint.id);
        // One lookup under the shard's write lock: two sessions racing on
        // a new key both count.
        let fresh = match self.entries.entry(key) {
            MapEntry::Occupied(mut o) => {
                let e = o.get_mut();
                // Only a failure can grow the per-code lists.
                let before = (!runs.failures.is_empty()).then(|| codes_bytes(e) as isize);
                e.add_runs(runs);
                if let Some(before) = before {
                    add_bytes(&self.bytes, codes_bytes(e) as isize - before);
                }
                false
            }
            MapEntry::Vacant(v) => {
                let held = self.bytes_now();
                if self.len.load(Ordering::Relaxed) >= self.cap || held >= self.max_bytes {
                    self.dropped.fetch_add(runs.calls, Ordering::Relaxed);
                    self.pressure.notify_one();
                    return;
                }
                let mut fresh = Entry::new(analysis.clone(), runs.first_ms);
                fresh.add_runs(runs);
                add_bytes(&self.bytes, entry_bytes(&fresh) as isize);
                v.insert(fresh);
                self.len.fetch_add(1, Ordering::Relaxed);
                self.clients.entry_added(client);
                if held > self.high_water() {
                    self.pressure.notify_one();
                }
                true
            }
        };
        let may_grow = self.minute_slots.load(Ordering::Relaxed) < MAX_MINUTE_SLOTS
            && self.bytes_now() < self.max_bytes;
        let slots = {
            let mut shape = self.shape_entry(analysis, fresh);
            shape.latency.add_runs(runs, may_grow)
        };
        self.count_slots(slots);
        self.recorded.fetch_add(runs.calls, Ordering::Relaxed);
    }

    /// The shape of `analysis`, created (and counted) if absent; `fresh`
    /// counts a new entry of it.
    fn shape_entry(
        &self,
        analysis: &Arc<Analysis>,
        fresh: bool,
    ) -> dashmap::mapref::one::RefMut<'_, u64, Shape> {
        let mut shape = self
            .shapes
            .entry(analysis.fingerprint.id)
            .or_insert_with(|| {
                let s = Shape::new(analysis);
                add_bytes(&self.bytes, s.bytes as isize);
                s
            });
        if fresh {
            shape.entries += 1;
        }
        shape
    }

    /// An entry of shape `fp` went: the shape goes with its last entry.
    pub(super) fn release_shape(&self, fp: u64) {
        if let Some(mut s) = self.shapes.get_mut(&fp) {
            s.entries = s.entries.saturating_sub(1);
        }
        if let Some((_, s)) = self.shapes.remove_if(&fp, |_, s| s.entries == 0) {
            add_bytes(&self.bytes, -(s.bytes as isize));
            self.count_slots(-(s.latency.minutes.len() as isize));
        }
    }

    /// Executions by statement kind (for metrics).
    pub fn kind_counts(&self) -> Vec<super::kinds::KindSnapshot> {
        held::settle(self);
        self.kinds.snapshot()
    }

    /// Counters about the aggregate.
    pub fn stats(&self) -> UsageStats {
        held::settle(self);
        UsageStats {
            entries: self.len.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            clients: self.clients.len(),
            bytes: self.bytes_now(),
        }
    }

    /// One record per (client, statement shape), totals as they stand; for
    /// reports that are about statements rather than tables (errors).
    pub fn statements(&self) -> Vec<UsageRecord> {
        held::settle(self);
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
        held::settle(self);
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
    pub fn deltas(&self) -> Deltas {
        held::settle(self);
        let mut out = Deltas::default();
        for item in self.entries.iter() {
            let (key, e) = item.pair();
            if !e.has_unflushed() {
                continue;
            }
            let Some((identity, path)) = self.identity(key.0) else {
                continue;
            };
            out.keys.push(*key);
            out.records.push(e.delta(identity, &path, key.1));
        }
        out
    }

    /// Records that `deltas` reached the store. Entries are found by the
    /// key they were read under, not by re-interning their identity.
    pub fn mark_flushed(&self, deltas: &Deltas) {
        for (key, d) in deltas.keys.iter().zip(&deltas.records) {
            if let Some(mut e) = self.entries.get_mut(key) {
                let before = codes_bytes(&e) as isize;
                e.mark_flushed(d);
                add_bytes(&self.bytes, codes_bytes(&e) as isize - before);
            }
        }
    }

    /// Takes totals from the store as the new baseline (at start, and after
    /// each flush so that proxies sharing a store see each other's usage);
    /// what this proxy has not flushed yet is kept on top. Rows this
    /// registry has no room for, or evicted as least recently used, are
    /// not loaded (the newest are loaded first).
    pub fn merge_stored(
        &self,
        mut records: Vec<UsageRecord>,
        analyze: impl Fn(&str) -> Arc<Analysis>,
    ) {
        records.sort_by_key(|r| std::cmp::Reverse(r.last_seen_ms));
        for r in records {
            let client = self.clients.intern_exact(&r.client, &r.search_path);
            let stored_codes: ByCode = r
                .error_codes
                .iter()
                .filter_map(|(c, n)| code_bytes(c).map(|c| (c, *n)))
                .collect();
            let pinned = r.resolved.clone().map(|uses| Pinned { uses, catalog: 0 });
            let key = (client.id(), r.fingerprint_id);
            // Parsed before the shard is locked: `record` must not wait on it.
            let mut analysis = (!self.entries.contains_key(&key)
                && r.last_seen_ms > self.forgotten_ms.load(Ordering::Relaxed))
            .then(|| analyze(&r.fingerprint));
            match self.entries.entry(key) {
                MapEntry::Occupied(mut o) => {
                    let e = o.get_mut();
                    let before = entry_bytes(e) as isize;
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
                    if e.pinned.is_none() {
                        e.pinned = pinned;
                    }
                    add_bytes(&self.bytes, entry_bytes(e) as isize - before);
                }
                MapEntry::Vacant(v) => {
                    if r.last_seen_ms <= self.forgotten_ms.load(Ordering::Relaxed) {
                        continue;
                    }
                    if self.len.load(Ordering::Relaxed) >= self.cap
                        || self.bytes_now() >= self.high_water()
                    {
                        // Full: this and everything older stays in the store only.
                        self.forgotten_ms
                            .fetch_max(r.last_seen_ms, Ordering::Relaxed);
                        continue;
                    }
                    let analysis = analysis.take().unwrap_or_else(|| analyze(&r.fingerprint));
                    let entry = Entry {
                        analysis: analysis.clone(),
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
                        pinned,
                    };
                    add_bytes(&self.bytes, entry_bytes(&entry) as isize);
                    v.insert(entry);
                    self.len.fetch_add(1, Ordering::Relaxed);
                    self.clients.entry_added(&client);
                    drop(self.shape_entry(&analysis, true));
                }
            }
        }
    }

    /// Latency distribution of one shape across all clients, since start.
    pub fn latency(&self, fingerprint_id: u64) -> Option<LatencyHistogram> {
        held::settle(self);
        self.shapes
            .get(&fingerprint_id)
            .map(|s| s.latency.total.clone())
    }

    fn count_slots(&self, delta: isize) {
        add_bytes(&self.minute_slots, delta);
        add_bytes(&self.bytes, delta * SLOT_BYTES as isize);
    }

    /// Drops minute slots older than an hour from shapes that stopped
    /// running (the flusher calls it every interval).
    pub fn prune_minutes(&self, now_ms: u64) {
        let mut removed = 0;
        for mut item in self.shapes.iter_mut() {
            removed += item.value_mut().latency.prune(now_ms);
        }
        self.count_slots(-(removed as isize));
    }

    /// The minutes of the last hour (before `now_ms`) of every shape that
    /// ran in it.
    pub fn recent_latencies(&self, now_ms: u64) -> Vec<(u64, Vec<MinuteSlot>)> {
        held::settle(self);
        self.shapes
            .iter()
            .filter_map(|item| {
                let slots: Vec<MinuteSlot> = item.value().latency.recent(now_ms).cloned().collect();
                (!slots.is_empty()).then_some((*item.key(), slots))
            })
            .collect()
    }

    /// The analysis of every shape recorded (the kind and the tables of a
    /// fingerprint, for reports about statements).
    pub fn shapes(&self) -> HashMap<u64, Arc<Analysis>> {
        held::settle(self);
        self.shapes
            .iter()
            .map(|item| (*item.key(), item.value().analysis.clone()))
            .collect()
    }

    /// A copy of the entries whose analysis `keep` accepts, with their
    /// client ids. Copied out first: resolving while iterating would hold
    /// the map's shard locks, and `record` on the relay path would wait.
    fn snapshot(&self, keep: impl Fn(&Analysis) -> bool) -> Vec<(u64, Entry)> {
        self.entries
            .iter()
            .filter(|item| keep(&item.value().analysis))
            .map(|item| (item.key().0, item.value().clone()))
            .collect()
    }

    /// The totals and analysis of the entries whose analysis `keep` accepts
    /// (the policy asks who used one function, sequence, type or schema while
    /// a DDL statement waits; it must not copy the whole aggregate).
    pub fn statements_where(
        &self,
        keep: impl Fn(&Analysis) -> bool,
    ) -> Vec<(UsageRecord, Arc<Analysis>)> {
        held::settle(self);
        self.snapshot(keep)
            .into_iter()
            .filter_map(|(client, e)| {
                let (identity, path) = self.identity(client)?;
                let record = e.totals(identity, &path, e.analysis.fingerprint.id);
                Some((record, e.analysis.clone()))
            })
            .collect()
    }

    /// Every entry expanded into one row per table/column use, resolved with
    /// the catalog of the entry's database and the `search_path` the
    /// statement ran under, and as recorded where the catalog does not know
    /// the relations (not loaded yet, or dropped since).
    pub fn rows(&self, catalog_of: impl Fn(&str) -> Arc<Catalog>) -> Vec<UsageRow> {
        self.rows_where(|_| true, catalog_of)
    }

    /// Like [`rows`](Self::rows), for the entries whose analysis `keep`
    /// accepts only (the policy asks about one table while a statement
    /// waits: it must not copy the whole aggregate).
    pub fn rows_where(
        &self,
        keep: impl Fn(&Analysis) -> bool,
        catalog_of: impl Fn(&str) -> Arc<Catalog>,
    ) -> Vec<UsageRow> {
        held::settle(self);
        let snapshot = self.snapshot(keep);
        let mut rows = Vec::new();
        for (client, e) in &snapshot {
            let Some((identity, path)) = self.identity(*client) else {
                continue;
            };
            let catalog = catalog_of(&identity.database);
            let schemas = search_path::effective(&path, &identity.user, |s| catalog.has_schema(s));
            let t = e.totals(identity, &path, e.analysis.fingerprint.id);
            let pinned = e.pinned.as_ref().map(|p| &p.uses[..]);
            for u in recorded::uses(&e.analysis, &catalog, &schemas, pinned) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;

    use crate::usage::identity::test_identity as client;

    #[test]
    fn records_expand_into_table_and_column_rows() {
        let reg = UsageRegistry::new(100);
        let analyzer = Analyzer::new(100);
        let a = reg.client_id(&client("a"), "");
        assert_eq!(reg.client_id(&client("a"), "").id(), a.id());
        let b = reg.client_id(&client("b"), "");
        assert_ne!(a.id(), b.id());
        let q = analyzer.analyze("SELECT email FROM users WHERE id = 1");
        reg.record(&a, &q, 100, None);
        reg.record(
            &a,
            &analyzer.analyze("SELECT email FROM users WHERE id = 2"),
            300,
            Some(*b"42703"),
        );
        reg.record(&b, &analyzer.analyze("SELECT * FROM users"), 50, None);
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
        reg.record(&c, &q, 10, None);
        reg.record(&c, &q, 20, Some(*b"42703"));
        let d = reg.deltas();
        assert_eq!(
            (
                d.records.len(),
                d.records[0].calls,
                d.records[0].errors,
                d.records[0].total_us
            ),
            (1, 2, 1, 30)
        );
        reg.mark_flushed(&d);
        assert!(reg.deltas().is_empty());
        reg.record(&c, &q, 5, None);
        // Another proxy added 10 calls to the same row in the store.
        let mut stored = d.records[0].clone();
        stored.calls += 10;
        reg.merge_stored(vec![stored], |t| analyzer.analyze(t));
        let d = reg.deltas().records;
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
                .records
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
                &c,
                &analyzer.analyze(&format!("SELECT * FROM t{i}")),
                1,
                None,
            );
        }
        let stats = reg.stats();
        assert_eq!(stats.entries, 10);
        assert_eq!(stats.dropped, 40);
        // Known shapes keep counting when full.
        reg.record(&c, &analyzer.analyze("SELECT * FROM t0"), 1, None);
        assert_eq!(reg.stats().dropped, 40);
    }
    #[test]
    fn sessions_racing_on_new_keys_lose_no_update() {
        // The race needs two threads on one new key at the same moment:
        // rounds of many fresh keys make that near certain on the old code.
        const KEYS: usize = 20_000;
        const THREADS: usize = 4;
        let analyzer = Analyzer::new(1000);
        for round in 0..3 {
            let reg = Arc::new(UsageRegistry::new(1_000_000));
            let c = reg.client_id(&client("race"), "");
            let shapes: Arc<Vec<Arc<Analysis>>> = Arc::new(
                (0..KEYS)
                    .map(|i| analyzer.analyze(&format!("SELECT c{i} FROM t{round}")))
                    .collect(),
            );
            let barrier = Arc::new(std::sync::Barrier::new(THREADS));
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (reg, shapes, barrier) = (reg.clone(), shapes.clone(), barrier.clone());
                    let c = c.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        for a in shapes.iter() {
                            reg.record(&c, a, 1, None);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let calls: u64 = reg.statements().iter().map(|r| r.calls).sum();
            assert_eq!(calls, (KEYS * THREADS) as u64, "every execution counted");
            assert_eq!(reg.stats().entries, KEYS);
        }
    }

    #[test]
    fn identities_past_the_cap_are_flushed_once_and_idle_ones_go() {
        let reg = UsageRegistry::new(3);
        let analyzer = Analyzer::new(100);
        let q = analyzer.analyze("SELECT email FROM users");
        let early = reg.client_id(&client("early"), "app, public");
        reg.record(&early, &q, 10, None);
        // More identities than the cap: later paths collapse to the default.
        let late = reg.client_id(&client("late"), "app, public");
        let filler = reg.client_id(&client("filler"), "");
        let past = reg.client_id(&client("past"), "other");
        assert_eq!(past.key().1, "", "past the cap");
        reg.record(&late, &q, 10, None);
        reg.record(&past, &q, 10, None);
        let d = reg.deltas();
        assert_eq!(d.records.len(), 3, "{:?}", d.records);
        reg.mark_flushed(&d);
        assert!(
            reg.deltas().is_empty(),
            "flushed deltas are not sent again: {:?}",
            reg.deltas().records
        );
        // Sessions gone: identities without entries are dropped, the
        // others stay while they hold usage.
        drop((early, late, past, filler));
        for i in 0..20 {
            drop(reg.client_id(&client(&format!("gone{i}")), ""));
        }
        assert_eq!(reg.stats().clients, 24);
        assert_eq!(reg.evict().clients, 21);
        assert_eq!(reg.stats().clients, 3);
    }
}

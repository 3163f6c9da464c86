//! One (client, statement shape) aggregate of the usage registry, and the
//! per-SQLSTATE numbers it keeps.

use super::registry::UsageRecord;
use super::runs::Runs;
use super::ClientIdentity;
use crate::analysis::{Analysis, ResolvedUse};
use std::sync::Arc;

/// Per-SQLSTATE numbers (a count, or a time in ms), few enough per entry
/// that a small vector beats a map.
pub(crate) type ByCode = Vec<([u8; 5], u64)>;

/// A SQLSTATE as its five bytes (`None` when it is not five bytes long).
pub(crate) fn code_bytes(code: &str) -> Option<[u8; 5]> {
    code.as_bytes().try_into().ok()
}

/// Adds `n` to the number of `code`.
pub(crate) fn add_code(codes: &mut ByCode, code: [u8; 5], n: u64) {
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, m)) => *m += n,
        None => codes.push((code, n)),
    }
}

/// Sets the number of `code` to `v`.
pub(crate) fn set_code(codes: &mut ByCode, code: [u8; 5], v: u64) {
    match codes.iter_mut().find(|(c, _)| *c == code) {
        Some((_, m)) => *m = v,
        None => codes.push((code, v)),
    }
}

/// The number of `code`, 0 when absent.
pub(crate) fn value_of(codes: &[([u8; 5], u64)], code: &[u8; 5]) -> u64 {
    codes
        .iter()
        .find(|(c, _)| c == code)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// The part of an entry's totals the store already has.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flushed {
    pub calls: u64,
    pub errors: u64,
    pub total_us: u64,
    pub error_codes: ByCode,
}

/// Where an entry's tables and columns were resolved, as recorded: the
/// uses, and which catalog snapshot produced them (its address; 0 for a
/// resolution loaded from the store).
#[derive(Debug, Clone)]
pub(crate) struct Pinned {
    pub uses: Arc<Vec<ResolvedUse>>,
    pub catalog: usize,
}

/// Aggregate of one client running one statement shape.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub analysis: Arc<Analysis>,
    pub calls: u64,
    pub errors: u64,
    pub error_codes: ByCode,
    /// When each SQLSTATE last occurred, ms (for "errors since"); codes
    /// loaded from a store count as last seen with the entry.
    pub error_last_ms: ByCode,
    pub total_us: u64,
    pub max_us: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub flushed: Flushed,
    /// The resolution as recorded (set off the relay path).
    pub pinned: Option<Pinned>,
}

impl Entry {
    /// An entry with no executions yet.
    pub fn new(analysis: Arc<Analysis>, now: u64) -> Entry {
        Entry {
            analysis,
            calls: 0,
            errors: 0,
            error_codes: Vec::new(),
            error_last_ms: Vec::new(),
            total_us: 0,
            max_us: 0,
            first_seen_ms: now,
            last_seen_ms: now,
            flushed: Flushed::default(),
            pinned: None,
        }
    }

    /// Adds summed executions.
    pub fn add_runs(&mut self, runs: &Runs) {
        self.calls += runs.calls;
        self.total_us += runs.total_us;
        self.max_us = self.max_us.max(runs.max_us);
        self.last_seen_ms = self.last_seen_ms.max(runs.last_ms);
        for &(code, at_ms) in &runs.failures {
            self.errors += 1;
            add_code(&mut self.error_codes, code, 1);
            let last = value_of(&self.error_last_ms, &code).max(at_ms);
            set_code(&mut self.error_last_ms, code, last);
        }
    }

    /// The entry's totals as a record (what reports and stores read).
    pub fn totals(&self, client: ClientIdentity, path: &str, fingerprint_id: u64) -> UsageRecord {
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
            resolved: self.pinned.as_ref().map(|p| p.uses.clone()),
        }
    }

    /// True when the store lacks some of the totals.
    pub fn has_unflushed(&self) -> bool {
        self.calls != self.flushed.calls || self.errors != self.flushed.errors
    }

    /// What the store does not have yet, as an increment.
    pub fn delta(&self, client: ClientIdentity, path: &str, fingerprint_id: u64) -> UsageRecord {
        let mut delta = self.totals(client, path, fingerprint_id);
        delta.calls = delta.calls.saturating_sub(self.flushed.calls);
        delta.errors = delta.errors.saturating_sub(self.flushed.errors);
        delta.total_us = delta.total_us.saturating_sub(self.flushed.total_us);
        for (code, n) in delta.error_codes.iter_mut() {
            if let Some(c) = code_bytes(code) {
                *n = n.saturating_sub(value_of(&self.flushed.error_codes, &c));
            }
        }
        delta.error_codes.retain(|(_, n)| *n > 0);
        delta
    }

    /// Records that `d` (an increment of this entry) reached the store.
    pub fn mark_flushed(&mut self, d: &UsageRecord) {
        self.flushed.calls += d.calls;
        self.flushed.errors += d.errors;
        self.flushed.total_us += d.total_us;
        for (code, n) in &d.error_codes {
            if let Some(c) = code_bytes(code) {
                add_code(&mut self.flushed.error_codes, c, *n);
            }
        }
    }
}

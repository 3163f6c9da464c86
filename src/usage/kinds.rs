//! Executions by statement kind, with a latency histogram in fixed
//! Prometheus buckets: lock-free counters updated on every recorded
//! execution and read by `/metrics`.

use super::runs::Runs;
use crate::analysis::StatementKind;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, µs (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// The bucket of a latency: the first of `BUCKETS_US` at or above it, or
/// +Inf (index 15).
pub(super) fn bucket(latency_us: u64) -> usize {
    BUCKETS_US
        .iter()
        .position(|&upper| latency_us <= upper)
        .unwrap_or(BUCKETS_US.len())
}

/// Every statement kind, in the order counters are kept.
pub const KINDS: [StatementKind; 7] = [
    StatementKind::Transaction,
    StatementKind::Utility,
    StatementKind::Read,
    StatementKind::Write,
    StatementKind::Maintenance,
    StatementKind::Privilege,
    StatementKind::Ddl,
];

/// Counters of one kind.
#[derive(Debug, Default)]
pub struct KindCounters {
    /// Executions.
    pub calls: AtomicU64,
    /// Executions that ended in an error.
    pub errors: AtomicU64,
    /// Sum of latencies, µs.
    pub total_us: AtomicU64,
    /// Executions per bucket (not cumulative); index 15 is +Inf.
    pub buckets: [AtomicU64; 16],
}

/// A snapshot of one kind's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSnapshot {
    /// The kind.
    pub kind: StatementKind,
    /// Executions.
    pub calls: u64,
    /// Executions that ended in an error.
    pub errors: u64,
    /// Sum of latencies, µs.
    pub total_us: u64,
    /// Cumulative counts per bucket of `BUCKETS_US`, then the +Inf total.
    pub cumulative: Vec<u64>,
}

/// Counters for all kinds.
#[derive(Debug, Default)]
pub struct KindStats {
    kinds: [KindCounters; 7],
}

fn index(kind: StatementKind) -> usize {
    match kind {
        StatementKind::Transaction => 0,
        StatementKind::Utility => 1,
        StatementKind::Read => 2,
        StatementKind::Write => 3,
        StatementKind::Maintenance => 4,
        StatementKind::Privilege => 5,
        StatementKind::Ddl => 6,
    }
}

impl KindStats {
    /// Counts summed executions.
    pub(super) fn add(&self, kind: StatementKind, runs: &Runs) {
        let k = &self.kinds[index(kind)];
        k.calls.fetch_add(runs.calls, Ordering::Relaxed);
        k.total_us.fetch_add(runs.total_us, Ordering::Relaxed);
        if runs.errors() > 0 {
            k.errors.fetch_add(runs.errors(), Ordering::Relaxed);
        }
        for (counter, &n) in k.buckets.iter().zip(runs.kind_buckets.iter()) {
            if n > 0 {
                counter.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
    }

    /// The counters of every kind.
    pub fn snapshot(&self) -> Vec<KindSnapshot> {
        KINDS
            .iter()
            .map(|&kind| {
                let k = &self.kinds[index(kind)];
                let mut running = 0;
                let cumulative = k
                    .buckets
                    .iter()
                    .map(|b| {
                        running += b.load(Ordering::Relaxed);
                        running
                    })
                    .collect();
                KindSnapshot {
                    kind,
                    calls: k.calls.load(Ordering::Relaxed),
                    errors: k.errors.load(Ordering::Relaxed),
                    total_us: k.total_us.load(Ordering::Relaxed),
                    cumulative,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_counts_everything() {
        let s = KindStats::default();
        let record = |us, error| s.add(StatementKind::Read, &Runs::one(us, error, 0));
        record(80, None);
        record(3_000, Some(*b"57014"));
        record(99_000_000, None);
        let read = &s.snapshot()[2];
        assert_eq!((read.calls, read.errors), (3, 1));
        assert_eq!(read.cumulative[0], 1);
        assert_eq!(read.cumulative[5], 2, "<= 5 ms");
        assert_eq!(read.cumulative[14], 2);
        assert_eq!(read.cumulative[15], 3);
    }
}

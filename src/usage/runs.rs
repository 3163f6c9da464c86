//! Executions of one client running one shape within one minute, summed the
//! way the registry adds them: what a relay thread holds (usage::held) and
//! applies in one step.
//!
//! Adding an execution here touches a few bytes of one small struct on the
//! thread's own memory; the registry's maps, entry, histograms and kind
//! counters are written once per group when it is applied.

use super::histogram;
use super::kinds::{self, BUCKETS_US};

/// Latency buckets of the statement-kind counters (`BUCKETS_US`, then +Inf).
const KIND_BUCKETS: usize = BUCKETS_US.len() + 1;

/// A sum of executions (see the module doc).
#[derive(Debug, Clone)]
pub struct Runs {
    /// Minutes since the Unix epoch; every execution finished in it.
    pub minute: u64,
    /// Executions.
    pub calls: u64,
    /// Sum of latencies, µs.
    pub total_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// When the first and the last finished, ms since the Unix epoch.
    pub first_ms: u64,
    pub last_ms: u64,
    /// Latency histogram counts by bucket; bit `b` of `present` is set when
    /// bucket `b` is not empty.
    pub present: u128,
    pub buckets: [u32; histogram::BUCKETS],
    /// Counts by statement-kind latency bucket.
    pub kind_buckets: [u32; KIND_BUCKETS],
    /// The failed executions: SQLSTATE and when, ms.
    pub failures: Vec<([u8; 5], u64)>,
}

impl Runs {
    /// One execution.
    pub fn one(latency_us: u64, error: Option<[u8; 5]>, at_ms: u64) -> Runs {
        let mut runs = Runs {
            minute: at_ms / 60_000,
            calls: 0,
            total_us: 0,
            max_us: 0,
            first_ms: at_ms,
            last_ms: at_ms,
            present: 0,
            buckets: [0; histogram::BUCKETS],
            kind_buckets: [0; KIND_BUCKETS],
            failures: Vec::new(),
        };
        runs.add(latency_us, error, at_ms);
        runs
    }

    /// True when an execution finished at `at_ms` belongs here.
    pub fn takes(&self, at_ms: u64) -> bool {
        at_ms / 60_000 == self.minute
    }

    /// Adds an execution of the same minute (see [`takes`](Self::takes)).
    pub fn add(&mut self, latency_us: u64, error: Option<[u8; 5]>, at_ms: u64) {
        self.calls += 1;
        self.total_us += latency_us;
        self.max_us = self.max_us.max(latency_us);
        self.first_ms = self.first_ms.min(at_ms);
        self.last_ms = self.last_ms.max(at_ms);
        let b = histogram::bucket(latency_us);
        self.buckets[b] = self.buckets[b].saturating_add(1);
        self.present |= 1u128 << b;
        let k = kinds::bucket(latency_us);
        self.kind_buckets[k] = self.kind_buckets[k].saturating_add(1);
        if let Some(code) = error {
            self.failures.push((code, at_ms));
        }
    }

    /// Executions that failed.
    pub fn errors(&self) -> u64 {
        self.failures.len() as u64
    }

    /// The non-empty latency buckets with their counts.
    pub fn histogram(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mut bits = self.present;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some((b, self.buckets[b]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::LatencyHistogram;

    #[test]
    fn runs_sum_what_single_records_would() {
        let t = 1_000 * 60_000;
        let mut runs = Runs::one(120, None, t + 5);
        runs.add(7, Some(*b"42703"), t + 3);
        runs.add(120, None, t + 9);
        runs.add(90_000, None, t + 7);
        assert_eq!(
            (runs.calls, runs.total_us, runs.max_us, runs.errors()),
            (4, 90_247, 90_000, 1)
        );
        assert_eq!((runs.first_ms, runs.last_ms), (t + 3, t + 9));
        assert!(runs.takes(t + 59_999) && !runs.takes(t + 60_000));
        let mut one_by_one = LatencyHistogram::default();
        for us in [120, 7, 120, 90_000] {
            one_by_one.record(us);
        }
        let mut summed = LatencyHistogram::default();
        for (b, n) in runs.histogram() {
            summed.add_bucket(b, n);
        }
        assert_eq!(format!("{summed:?}"), format!("{one_by_one:?}"));
        assert_eq!(runs.histogram().count(), 3);
        let kinds: u32 = runs.kind_buckets.iter().sum();
        assert_eq!(kinds, 4);
        assert_eq!(runs.kind_buckets[kinds::bucket(120)], 2);
    }
}

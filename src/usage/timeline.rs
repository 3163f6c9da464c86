//! Latency of each statement shape over time: an all-time histogram plus
//! one-minute buckets for the last hour, so the effect of a migration on
//! read and write latency shows up minute by minute (`SHOW QUERIES`,
//! `/api/v1/queries`).

use super::histogram::{LatencyHistogram, SparseHistogram};
use super::runs::Runs;
use std::collections::VecDeque;

/// Minutes of history kept per shape.
pub const MINUTES: u64 = 60;

/// One minute of one shape.
#[derive(Clone, Debug, Default)]
pub struct MinuteSlot {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// Executions finished in that minute.
    pub calls: u64,
    /// Those that ended in an error.
    pub errors: u64,
    /// Sum of their latencies, µs.
    pub total_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// Their distribution.
    pub histogram: SparseHistogram,
}

/// The latency record of one shape.
#[derive(Clone, Debug, Default)]
pub struct ShapeLatency {
    /// Since the proxy started.
    pub total: LatencyHistogram,
    /// The last hour, oldest first; minutes without executions are absent.
    pub minutes: VecDeque<MinuteSlot>,
}

impl ShapeLatency {
    /// Adds summed executions of one minute. A new minute slot is only
    /// started when `may_grow` (the registry bounds their number). Returns
    /// the change in the number of slots held.
    pub fn add_runs(&mut self, runs: &Runs, may_grow: bool) -> isize {
        for (b, n) in runs.histogram() {
            self.total.add_bucket(b, n);
        }
        let (at, delta) = self.slot(runs.last_ms, may_grow);
        if let Some(slot) = at.and_then(|at| self.minutes.get_mut(at)) {
            slot.calls += runs.calls;
            slot.errors += runs.errors();
            slot.total_us += runs.total_us;
            slot.max_us = slot.max_us.max(runs.max_us);
            for (b, n) in runs.histogram() {
                slot.histogram.add_bucket(b, n);
            }
        }
        delta
    }

    /// The index of the slot of the minute of `now_ms`, made when absent
    /// and `may_grow` (older slots are pruned when a new minute starts),
    /// and the change in the number of slots.
    fn slot(&mut self, now_ms: u64, may_grow: bool) -> (Option<usize>, isize) {
        let minute = now_ms / 60_000;
        match self.minutes.back().map(|s| s.minute) {
            Some(last) if last == minute => (Some(self.minutes.len() - 1), 0),
            // An execution applied after later ones (usage::held, or
            // another thread's): its own minute, kept in order.
            Some(last) if last > minute => {
                let at = self.minutes.partition_point(|s| s.minute < minute);
                if self.minutes.get(at).map(|s| s.minute) == Some(minute) {
                    return (Some(at), 0);
                }
                if !may_grow || minute + MINUTES <= last {
                    return (None, 0);
                }
                self.minutes.insert(
                    at,
                    MinuteSlot {
                        minute,
                        ..MinuteSlot::default()
                    },
                );
                (Some(at), 1)
            }
            _ => {
                let pruned = self.prune(now_ms) as isize;
                if !may_grow {
                    return (None, -pruned);
                }
                self.minutes.push_back(MinuteSlot {
                    minute,
                    ..MinuteSlot::default()
                });
                (Some(self.minutes.len() - 1), 1 - pruned)
            }
        }
    }

    /// Drops the slots older than an hour before `now_ms`; returns how many.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let minute = now_ms / 60_000;
        let before = self.minutes.len();
        while self
            .minutes
            .front()
            .is_some_and(|s| s.minute + MINUTES <= minute)
        {
            self.minutes.pop_front();
        }
        before - self.minutes.len()
    }

    /// The slots of the hour before `now_ms`.
    pub fn recent(&self, now_ms: u64) -> impl Iterator<Item = &MinuteSlot> {
        let minute = now_ms / 60_000;
        self.minutes
            .iter()
            .filter(move |s| s.minute + MINUTES > minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ShapeLatency {
        /// One execution, as the registry adds it.
        fn record(&mut self, latency_us: u64, failed: bool, now_ms: u64, may_grow: bool) -> isize {
            let error = failed.then_some(*b"XX000");
            self.add_runs(&Runs::one(latency_us, error, now_ms), may_grow)
        }
    }

    #[test]
    fn minutes_roll_and_the_hour_is_bounded() {
        let mut s = ShapeLatency::default();
        let t0 = 1_000 * 60_000;
        assert_eq!(s.record(100, false, t0, true), 1);
        assert_eq!(s.record(300, true, t0 + 59_000, true), 0);
        assert_eq!(s.record(50, false, t0 + 60_000, true), 1);
        assert_eq!(s.minutes.len(), 2);
        assert_eq!(
            (
                s.minutes[0].calls,
                s.minutes[0].errors,
                s.minutes[0].total_us,
                s.minutes[0].max_us
            ),
            (2, 1, 400, 300)
        );
        // Ninety minutes later only the new minute is left.
        assert_eq!(s.record(7, false, t0 + 90 * 60_000, true), -1);
        assert_eq!(s.minutes.len(), 1);
        assert_eq!(s.total.count(), 4);
        assert_eq!(s.recent(t0 + 90 * 60_000).count(), 1);
        assert_eq!(s.recent(t0 + 200 * 60_000).count(), 0);
        // Without room for a new slot the all-time histogram still counts.
        assert_eq!(s.record(9, false, t0 + 91 * 60_000, false), 0);
        assert_eq!((s.minutes.len(), s.total.count()), (1, 5));
        assert_eq!(s.prune(t0 + 200 * 60_000), 1);
    }

    #[test]
    fn a_late_execution_goes_to_its_own_minute() {
        let mut s = ShapeLatency::default();
        let t0 = 1_000 * 60_000;
        assert_eq!(s.record(10, false, t0, true), 1);
        assert_eq!(s.record(20, false, t0 + 2 * 60_000, true), 1);
        // Into the slot of its minute, not the newest one.
        assert_eq!(s.record(30, true, t0 + 1_000, true), 0);
        // A minute between two held ones gets its slot, in order.
        assert_eq!(s.record(40, false, t0 + 60_000, true), 1);
        let got: Vec<(u64, u64, u64, u64)> = s
            .minutes
            .iter()
            .map(|m| (m.minute - t0 / 60_000, m.calls, m.errors, m.total_us))
            .collect();
        assert_eq!(got, vec![(0, 2, 1, 40), (1, 1, 0, 40), (2, 1, 0, 20)]);
        // Without room, or older than the hour kept, only the all-time
        // histogram counts it.
        let mut full = s.clone();
        assert_eq!(full.record(50, false, t0 - 60_000, false), 0);
        assert_eq!(s.record(60, false, t0 - 59 * 60_000, true), 0);
        assert_eq!((full.minutes.len(), full.total.count()), (3, 5));
        assert_eq!(s.minutes.len(), 3);
        assert_eq!(s.total.count(), 5);
    }
}

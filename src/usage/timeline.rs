//! Latency of each statement shape over time: an all-time histogram plus
//! one-minute buckets for the last hour, so the effect of a migration on
//! read and write latency shows up minute by minute (`SHOW QUERIES`,
//! `/api/v1/queries`).

use super::histogram::{LatencyHistogram, SparseHistogram};
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
    /// Adds an execution that finished at `now_ms` (`failed`: with an
    /// error). A new minute slot is only started when `may_grow` (the
    /// registry bounds their number). Returns the change in the number of
    /// slots held.
    pub fn record(&mut self, latency_us: u64, failed: bool, now_ms: u64, may_grow: bool) -> isize {
        self.total.record(latency_us);
        let minute = now_ms / 60_000;
        let mut delta = 0;
        if self.minutes.back().map(|s| s.minute) != Some(minute) {
            delta -= self.prune(now_ms) as isize;
            if !may_grow {
                return delta;
            }
            self.minutes.push_back(MinuteSlot {
                minute,
                ..MinuteSlot::default()
            });
            delta += 1;
        }
        if let Some(slot) = self.minutes.back_mut() {
            slot.calls += 1;
            slot.errors += u64::from(failed);
            slot.total_us += latency_us;
            slot.max_us = slot.max_us.max(latency_us);
            slot.histogram.record(latency_us);
        }
        delta
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
}

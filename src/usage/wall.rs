//! Monotonic moments as plain microsecond counts, and the wall-clock time
//! of one without reading the wall clock.
//!
//! The relay reads the monotonic clock once per wakeup; every statement it
//! finishes needs its latency (end minus start) and a wall-clock stamp.
//! With `Instant`s both were `timespec` arithmetic and 128-bit divisions,
//! about 170 instructions a statement; a [`Tick`] is made once per wakeup
//! and makes both a subtraction. The wall time comes from an anchor pair
//! (tick, wall) taken at most once a minute, so a step of the system clock
//! shows up within a minute.

use super::registry::now_ms;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one anchor is used, in microseconds.
const REANCHOR_US: u64 = 60_000_000;
/// "No anchor yet".
const UNSET: u64 = u64::MAX;

/// The instant ticks count from: an hour before the first tick was asked
/// for (or boot), so that instants read a little before that have ticks too.
static START: OnceLock<Instant> = OnceLock::new();
/// The tick when the anchor was taken.
static ANCHOR_TICK: AtomicU64 = AtomicU64::new(UNSET);
/// Milliseconds since the Unix epoch at that moment.
static ANCHOR_WALL: AtomicU64 = AtomicU64::new(0);

/// A monotonic moment: microseconds since the process' clock origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(u64);

impl Tick {
    /// Now.
    pub fn now() -> Tick {
        Tick::at(Instant::now())
    }

    /// The tick of `at`; an instant before the origin is tick 0.
    pub fn at(at: Instant) -> Tick {
        let start = *START.get_or_init(|| {
            let now = Instant::now();
            now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
        });
        let d = at.saturating_duration_since(start);
        Tick(d.as_secs() * 1_000_000 + u64::from(d.subsec_micros()))
    }

    /// Microseconds from `earlier` to this tick (0 if it is later).
    pub fn micros_since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Milliseconds since the Unix epoch at this tick (read recently).
    pub fn wall_ms(self) -> u64 {
        let anchor = ANCHOR_TICK.load(Ordering::Acquire);
        if anchor != UNSET && self.0.abs_diff(anchor) < REANCHOR_US {
            let wall = ANCHOR_WALL.load(Ordering::Relaxed);
            return shift(wall, self.0, anchor);
        }
        // Re-anchor: the wall clock and the monotonic one read back to back.
        let wall = now_ms();
        let now = Tick::now().0;
        // Wall first: a reader that sees the new tick sees this wall time.
        ANCHOR_WALL.store(wall, Ordering::Relaxed);
        ANCHOR_TICK.store(now, Ordering::Release);
        shift(wall, self.0, now)
    }
}

/// `wall` (ms) moved by the microseconds from `anchor` to `tick`.
fn shift(wall: u64, tick: u64, anchor: u64) -> u64 {
    if tick >= anchor {
        wall.saturating_add((tick - anchor) / 1000)
    } else {
        wall.saturating_sub((anchor - tick) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_maps_to_the_wall_clock_within_a_few_milliseconds() {
        for _ in 0..3 {
            let before = now_ms();
            let derived = Tick::now().wall_ms();
            let after = now_ms();
            assert!(
                derived + 5 >= before && derived <= after + 5,
                "{before} <= {derived} <= {after}"
            );
        }
    }

    #[test]
    fn ticks_measure_microseconds() {
        let a = Tick::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = Tick::now();
        assert!(b.micros_since(a) >= 20_000, "{a:?} {b:?}");
        assert_eq!(a.micros_since(b), 0);
        let i = Instant::now();
        let later = i + Duration::from_micros(1500);
        assert_eq!(Tick::at(later).micros_since(Tick::at(i)), 1500);
    }

    #[test]
    fn an_earlier_instant_maps_to_an_earlier_time() {
        let now = Instant::now();
        let Some(earlier) = now.checked_sub(Duration::from_secs(2)) else {
            return;
        };
        let a = Tick::at(now).wall_ms();
        let b = Tick::at(earlier).wall_ms();
        assert!(a.abs_diff(b + 2000) <= 5, "{a} vs {b} + 2000");
    }
}

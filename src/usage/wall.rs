//! Monotonic moments as plain microsecond counts, and the wall-clock time
//! of one without reading the wall clock.
//!
//! The relay reads the monotonic clock once per wakeup; every statement it
//! finishes needs its latency (end minus start) and a wall-clock stamp.
//! With `Instant`s both were `timespec` arithmetic and 128-bit divisions,
//! about 170 instructions a statement; a [`Tick`] is made once per wakeup
//! from a direct read of the monotonic clock, and makes both a
//! subtraction. The wall time comes from an anchor pair
//! (tick, wall) taken at most once a minute, so a step of the system clock
//! shows up within a minute.

use super::registry::now_ms;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long one anchor is used, in microseconds.
const REANCHOR_US: u64 = 60_000_000;
/// "No anchor yet".
const UNSET: u64 = u64::MAX;

/// The tick when the anchor was taken.
static ANCHOR_TICK: AtomicU64 = AtomicU64::new(UNSET);
/// Milliseconds since the Unix epoch at that moment.
static ANCHOR_WALL: AtomicU64 = AtomicU64::new(0);

/// A moment of the monotonic clock, in microseconds; only differences
/// between two mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(u64);

impl Tick {
    /// The monotonic clock now (`CLOCK_MONOTONIC`, the clock `Instant`
    /// reads), read directly: through `Instant` the conversion to
    /// microseconds took a `timespec` subtraction with its normalisation
    /// on top of the read, about 100 instructions of each read's 130.
    #[cfg(unix)]
    pub fn now() -> Tick {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC
        // exists on every unix this builds for, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Tick(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
    }

    /// The monotonic clock now, as microseconds since the first call.
    #[cfg(not(unix))]
    pub fn now() -> Tick {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        // One hour in, so that a wall time computed for a tick before the
        // first call still has room below.
        let d = Instant::now().saturating_duration_since(start);
        Tick(3_600_000_000 + d.as_secs() * 1_000_000 + u64::from(d.subsec_micros()))
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
    use std::time::{Duration, Instant};

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
    fn ticks_measure_microseconds_of_the_clock_instants_read() {
        let a = Tick::now();
        let i = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let j = Instant::now();
        let b = Tick::now();
        // The ticks bracket the instants, on the same clock; a tick drops
        // the nanoseconds, so it may read up to 1 µs short.
        let inner = j.duration_since(i).as_micros() as u64;
        assert!(inner >= 20_000, "{inner}");
        assert!(b.micros_since(a) + 1 >= inner, "{a:?} {b:?} {inner}");
        assert_eq!(a.micros_since(b), 0);
    }

    #[test]
    fn an_earlier_tick_maps_to_an_earlier_time() {
        let now = Tick::now();
        let earlier = Tick(now.0 - 2_000_000);
        let a = now.wall_ms();
        let b = earlier.wall_ms();
        assert!(a.abs_diff(b + 2000) <= 5, "{a} vs {b} + 2000");
    }
}

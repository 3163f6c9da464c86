//! Wall-clock milliseconds for a monotonic instant the caller already has.
//!
//! The tracker reads `Instant::now()` once per socket read (for latency);
//! stamping each recorded statement with the wall clock as well was a third
//! clock read per transaction. The wall time of an instant is derived from
//! an anchor pair (monotonic, wall) taken at most once a minute, so a step
//! of the system clock shows up within a minute.

use super::registry::now_ms;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// How long one anchor is used.
const REANCHOR_MS: u64 = 60_000;
/// "No anchor yet".
const UNSET: i64 = i64::MIN;

static START: OnceLock<Instant> = OnceLock::new();
/// Milliseconds since `START` when the anchor was taken.
static ANCHOR_MONO: AtomicI64 = AtomicI64::new(UNSET);
/// Milliseconds since the Unix epoch at that moment.
static ANCHOR_WALL: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the Unix epoch at `at` (an instant read recently).
pub fn wall_ms_at(at: Instant) -> u64 {
    let start = *START.get_or_init(Instant::now);
    let mono = since(start, at);
    let anchor = ANCHOR_MONO.load(Ordering::Acquire);
    if anchor != UNSET && mono.abs_diff(anchor) < REANCHOR_MS {
        let wall = ANCHOR_WALL.load(Ordering::Relaxed);
        return shift(wall, mono - anchor);
    }
    // Re-anchor: the wall clock and the monotonic one read back to back.
    let wall = now_ms();
    let now = since(start, Instant::now());
    // Wall first: a reader that sees the new monotonic half sees this one.
    ANCHOR_WALL.store(wall, Ordering::Relaxed);
    ANCHOR_MONO.store(now, Ordering::Release);
    shift(wall, mono - now)
}

/// Signed milliseconds from `start` to `at` (an instant may precede the
/// first call).
fn since(start: Instant, at: Instant) -> i64 {
    match at.checked_duration_since(start) {
        Some(d) => d.as_millis() as i64,
        None => -(start.duration_since(at).as_millis() as i64),
    }
}

fn shift(wall: u64, by: i64) -> u64 {
    wall.saturating_add_signed(by)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_instant_maps_to_the_wall_clock_within_a_few_milliseconds() {
        for _ in 0..3 {
            let before = now_ms();
            let derived = wall_ms_at(Instant::now());
            let after = now_ms();
            assert!(
                derived + 5 >= before && derived <= after + 5,
                "{before} <= {derived} <= {after}"
            );
        }
    }

    #[test]
    fn an_earlier_instant_maps_to_an_earlier_time() {
        let now = Instant::now();
        let Some(earlier) = now.checked_sub(Duration::from_secs(2)) else {
            return;
        };
        let a = wall_ms_at(now);
        let b = wall_ms_at(earlier);
        assert!(a.abs_diff(b + 2000) <= 5, "{a} vs {b} + 2000");
    }
}

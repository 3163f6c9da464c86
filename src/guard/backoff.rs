//! Pauses between attempts: exponential backoff with full jitter (a random
//! pause between zero and the exponential bound), so that several
//! migrations retrying against one blocker do not retry in step.

use std::time::Duration;

/// The first bound; attempt `n` (from 1) waits up to `BASE * 2^(n-1)`.
pub const BASE: Duration = Duration::from_millis(100);

/// The pause after failed attempt `attempt` (1-based), at most `max`.
/// `unit` is a uniform random number in [0, 1).
pub fn pause(attempt: u32, max: Duration, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let bound = BASE.saturating_mul(1u32 << exp).min(max);
    bound.mul_f64(unit.clamp(0.0, 1.0))
}

/// A uniform random number in [0, 1), from the process's hash seed.
pub fn unit() -> f64 {
    let r = ahash::RandomState::new().hash_one(std::time::Instant::now());
    (r >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_grow_then_stop_at_the_maximum() {
        let max = Duration::from_secs(30);
        assert_eq!(pause(1, max, 0.999_999), BASE.mul_f64(0.999_999));
        assert_eq!(pause(4, max, 0.5), Duration::from_millis(400));
        assert_eq!(pause(20, max, 0.5), Duration::from_secs(15));
        assert_eq!(pause(1, max, 0.0), Duration::ZERO);
    }

    #[test]
    fn random_units_stay_in_range() {
        for _ in 0..1000 {
            let u = unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}

//! Guarded execution of DDL (DESIGN section 6): a statement that takes a
//! lock stronger than SHARE UPDATE EXCLUSIVE waits outside the lock queue
//! while old transactions hold its table (pre-flight), then runs under a
//! short `lock_timeout`, and on 55P03 is retried with exponential backoff
//! and full jitter, naming the sessions that blocked it. The proxy runs
//! these steps on the client's own upstream connection (see
//! `proxy::relay::Relay::run_held`); this module holds the decisions and
//! the SQL, testable without a socket.

pub mod backoff;
pub mod blockers;
pub mod lock;

use std::time::Duration;

/// How guarded execution behaves (the `[policy]` keys of DESIGN section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// `lock_timeout` of each attempt (a lower one the client set wins).
    pub lock_timeout: Duration,
    /// Attempts before the 55P03 goes to the client.
    pub max_attempts: u32,
    /// Longest pause between two attempts.
    pub retry_backoff_max: Duration,
    /// Longest wait, before each attempt, for old transactions that hold
    /// the table to end.
    pub preflight_wait: Duration,
    /// Transactions younger than this do not count in the pre-flight (the
    /// lock timeout covers the short ones of normal traffic).
    pub preflight_min_age: Duration,
    /// Lock timeout per attempt, growing (the last entry repeats); empty:
    /// `lock_timeout` for every attempt.
    pub lock_timeout_schedule: Vec<Duration>,
    /// End blockers idle in transaction for longer than this, after the
    /// first attempt that timed out (`None`: never).
    pub terminate_idle_after: Option<Duration>,
    /// `statement_timeout` of long builds that take no blocking lock
    /// (`0`: none).
    pub build_statement_timeout: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            lock_timeout: Duration::from_secs(2),
            max_attempts: 10,
            retry_backoff_max: Duration::from_secs(30),
            preflight_wait: Duration::from_secs(30),
            preflight_min_age: Duration::from_secs(1),
            lock_timeout_schedule: Vec::new(),
            terminate_idle_after: None,
            build_statement_timeout: Duration::ZERO,
        }
    }
}

impl GuardSettings {
    /// The lock timeout of attempt `attempt` (from 1), in milliseconds:
    /// the schedule's entry (its last one repeats) or the policy's, unless
    /// the client's own is lower and not 0 (no limit).
    pub fn attempt_timeout_ms(&self, attempt: u32, client_ms: Option<u64>) -> u64 {
        let at = (attempt.max(1) - 1) as usize;
        let planned = self
            .lock_timeout_schedule
            .get(at)
            .or(self.lock_timeout_schedule.last())
            .copied()
            .unwrap_or(self.lock_timeout);
        let ours = planned.as_millis().max(1) as u64;
        match client_ms {
            Some(c) if c > 0 && c < ours => c,
            _ => ours,
        }
    }
}

/// Reads a duration as `SHOW` prints one (`0`, `250ms`, `2s`, `1min`,
/// `1h`, `1d`; a bare number is milliseconds, as for `lock_timeout`).
pub fn parse_setting_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_as_show_prints_them() {
        for (text, ms) in [
            ("0", 0),
            ("250ms", 250),
            ("2s", 2000),
            ("1min", 60_000),
            ("3h", 10_800_000),
            ("15", 15),
        ] {
            assert_eq!(parse_setting_ms(text), Some(ms), "{text}");
        }
        assert_eq!(parse_setting_ms("soon"), None);
    }

    #[test]
    fn a_lower_client_timeout_wins() {
        let s = GuardSettings::default();
        assert_eq!(s.attempt_timeout_ms(1, None), 2000);
        assert_eq!(s.attempt_timeout_ms(1, Some(0)), 2000);
        assert_eq!(s.attempt_timeout_ms(3, Some(500)), 500);
        assert_eq!(s.attempt_timeout_ms(1, Some(5000)), 2000);
    }

    #[test]
    fn a_schedule_grows_the_timeout_and_repeats_its_last_entry() {
        let ms = Duration::from_millis;
        let s = GuardSettings {
            lock_timeout_schedule: vec![ms(100), ms(500), ms(2000)],
            ..GuardSettings::default()
        };
        let got: Vec<u64> = (1..=5).map(|a| s.attempt_timeout_ms(a, None)).collect();
        assert_eq!(got, [100, 500, 2000, 2000, 2000]);
        assert_eq!(
            s.attempt_timeout_ms(3, Some(300)),
            300,
            "the client's lower one wins"
        );
    }
}

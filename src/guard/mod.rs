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
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            lock_timeout: Duration::from_secs(2),
            max_attempts: 10,
            retry_backoff_max: Duration::from_secs(30),
            preflight_wait: Duration::from_secs(30),
            preflight_min_age: Duration::from_secs(1),
        }
    }
}

impl GuardSettings {
    /// The lock timeout of an attempt, in milliseconds: the policy's, or the
    /// client's own when that is lower and not 0 (no limit).
    pub fn attempt_timeout_ms(&self, client_ms: Option<u64>) -> u64 {
        let ours = self.lock_timeout.as_millis().max(1) as u64;
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
        assert_eq!(s.attempt_timeout_ms(None), 2000);
        assert_eq!(s.attempt_timeout_ms(Some(0)), 2000);
        assert_eq!(s.attempt_timeout_ms(Some(500)), 500);
        assert_eq!(s.attempt_timeout_ms(Some(5000)), 2000);
    }
}

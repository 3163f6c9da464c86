//! The pace of a job: additive increase, multiplicative decrease (AIMD) of
//! the batch size; the pause between batches doubles under pressure and
//! halves when calm. Each
//! batch's signals (the other clients' p95 on the table against the level
//! before the job, lock waits the job caused, replica lag, the batch's own
//! time, a lock or statement timeout) either allow a step up or force a
//! halving, and the job says which signal it was.

use std::time::Duration;

/// Longest pause between two batches.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);
/// The pause after the first slow-down.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Below this a shrinking pause ends.
const MIN_PAUSE: Duration = Duration::from_millis(10);
/// A latency rise smaller than this is noise (the histograms have about
/// 19% resolution, and sub-millisecond statements jitter by more).
pub const LATENCY_SLACK_US: u64 = 500;

/// What the job may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest batch (`--batch`, else `backfill.batch_size`).
    pub max_batch: u64,
    /// `backfill.max_latency_increase` as a fraction.
    pub max_latency_increase: f64,
    /// `backfill.max_replica_lag`.
    pub max_replica_lag: Duration,
    /// A batch slower than this is halved (a fifth of `statement_timeout`).
    pub max_batch_time: Duration,
}

/// What one batch saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The other clients' p95 on the table before the job, µs.
    pub baseline_p95_us: Option<u64>,
    /// Their p95 over the window just measured, µs (`None`: too few
    /// statements to judge).
    pub traffic_p95_us: Option<u64>,
    /// Sessions seen waiting for a lock the job held.
    pub lock_waits: u64,
    /// The largest replica's replay lag (`None`: no replica).
    pub replica_lag: Option<Duration>,
    /// How long the batch took.
    pub batch_time: Duration,
    /// The batch hit `lock_timeout` (55P03) or `statement_timeout` (57014).
    pub timed_out: Option<&'static str>,
}

/// Why the job slowed down (or `Calm`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Nothing held it back.
    Calm,
    /// The others' p95 rose beyond the allowance.
    Latency {
        /// Measured p95, µs.
        p95_us: u64,
        /// Allowed p95, µs.
        allowed_us: u64,
    },
    /// Other sessions waited for the job's locks.
    LockWaits(u64),
    /// A replica fell behind.
    ReplicaLag(Duration),
    /// The batch itself took too long.
    SlowBatch(Duration),
    /// The batch hit a timeout and was rolled back.
    Timeout(&'static str),
    /// `--max-rate` holds it back.
    MaxRate,
}

impl Reason {
    /// The text `SHOW BACKFILLS` shows; its first word is stable
    /// (`none`, `latency`, `lock-waits`, `replica-lag`, `slow-batch`,
    /// `timeout`, `max-rate`) for scripts and tests.
    pub fn describe(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        match self {
            Reason::Calm => "none".into(),
            Reason::Latency { p95_us, allowed_us } => format!(
                "latency: other clients' p95 on the table {:.1} ms > {:.1} ms allowed",
                ms(*p95_us),
                ms(*allowed_us)
            ),
            Reason::LockWaits(n) => {
                format!("lock-waits: {n} session(s) waited for the job's locks")
            }
            Reason::ReplicaLag(d) => format!("replica-lag: replay lag {d:?}"),
            Reason::SlowBatch(d) => format!("slow-batch: the last batch took {d:?}"),
            Reason::Timeout(what) => {
                format!("timeout: the last batch hit {what} and was rolled back")
            }
            Reason::MaxRate => "max-rate: held to --max-rate".into(),
        }
    }
}

/// The current pace.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    limits: Limits,
    /// Rows in the next batch.
    pub batch: u64,
    /// Wait before the next batch.
    pub pause: Duration,
    /// Why the last step went down (or `Calm`).
    pub reason: Reason,
}

impl Throttle {
    /// Starts at a quarter of the largest batch, without pause.
    pub fn new(limits: Limits) -> Throttle {
        let max = limits.max_batch.max(1);
        Throttle {
            batch: (max / 4).max(1),
            pause: Duration::ZERO,
            reason: Reason::Calm,
            limits,
        }
    }

    /// The allowance for the others' p95, µs.
    pub fn allowed_p95_us(&self, baseline_us: u64) -> u64 {
        let scaled = (baseline_us as f64 * (1.0 + self.limits.max_latency_increase)) as u64;
        scaled.max(baseline_us + LATENCY_SLACK_US)
    }

    fn pressure(&self, s: &Signals) -> Option<Reason> {
        if let Some(what) = s.timed_out {
            return Some(Reason::Timeout(what));
        }
        if s.lock_waits > 0 {
            return Some(Reason::LockWaits(s.lock_waits));
        }
        if let (Some(base), Some(now)) = (s.baseline_p95_us, s.traffic_p95_us) {
            let allowed = self.allowed_p95_us(base);
            if now > allowed {
                return Some(Reason::Latency {
                    p95_us: now,
                    allowed_us: allowed,
                });
            }
        }
        if let Some(lag) = s.replica_lag {
            if lag > self.limits.max_replica_lag {
                return Some(Reason::ReplicaLag(lag));
            }
        }
        if s.batch_time > self.limits.max_batch_time {
            return Some(Reason::SlowBatch(s.batch_time));
        }
        None
    }

    /// Takes one batch's signals: halves the batch and doubles the pause
    /// under pressure, else grows the batch by a tenth of the largest and
    /// halves the pause (so a calm table gets the full pace back quickly).
    pub fn observe(&mut self, s: &Signals) {
        match self.pressure(s) {
            Some(reason) => {
                self.batch = (self.batch / 2).max(1);
                self.pause = (self.pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
                self.reason = reason;
            }
            None => {
                let max = self.limits.max_batch.max(1);
                self.batch = (self.batch + (max / 10).max(1)).min(max);
                self.pause /= 2;
                if self.pause < MIN_PAUSE {
                    self.pause = Duration::ZERO;
                }
                self.reason = Reason::Calm;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_batch: 1000,
            max_latency_increase: 0.2,
            max_replica_lag: Duration::from_secs(10),
            max_batch_time: Duration::from_secs(2),
        }
    }

    fn calm() -> Signals {
        Signals {
            baseline_p95_us: Some(10_000),
            traffic_p95_us: Some(10_500),
            batch_time: Duration::from_millis(50),
            ..Signals::default()
        }
    }

    #[test]
    fn calm_batches_grow_to_the_limit_and_pressure_halves_them() {
        let mut t = Throttle::new(limits());
        assert_eq!(t.batch, 250);
        for _ in 0..20 {
            t.observe(&calm());
        }
        assert_eq!(
            (t.batch, t.pause, t.reason.clone()),
            (1000, Duration::ZERO, Reason::Calm)
        );
        let slow = Signals {
            traffic_p95_us: Some(15_000),
            ..calm()
        };
        t.observe(&slow);
        assert_eq!(t.batch, 500);
        assert_eq!(t.pause, FIRST_PAUSE);
        assert!(
            t.reason.describe().starts_with("latency: "),
            "{:?}",
            t.reason
        );
        t.observe(&slow);
        assert_eq!((t.batch, t.pause), (250, FIRST_PAUSE * 2));
        for _ in 0..100 {
            t.observe(&slow);
        }
        assert_eq!((t.batch, t.pause), (1, MAX_PAUSE));
        t.observe(&calm());
        assert_eq!(t.batch, 101);
        assert_eq!(t.pause, MAX_PAUSE / 2);
    }

    #[test]
    fn each_signal_names_itself() {
        let cases = [
            (
                Signals {
                    lock_waits: 2,
                    ..calm()
                },
                "lock-waits",
            ),
            (
                Signals {
                    replica_lag: Some(Duration::from_secs(30)),
                    ..calm()
                },
                "replica-lag",
            ),
            (
                Signals {
                    batch_time: Duration::from_secs(3),
                    ..calm()
                },
                "slow-batch",
            ),
            (
                Signals {
                    timed_out: Some("lock_timeout"),
                    ..calm()
                },
                "timeout",
            ),
        ];
        for (signals, word) in cases {
            let mut t = Throttle::new(limits());
            t.observe(&signals);
            assert_eq!(t.batch, 125, "{word}");
            assert!(t.reason.describe().starts_with(word), "{:?}", t.reason);
        }
    }

    #[test]
    fn small_rises_and_unknown_levels_do_not_count() {
        let t = Throttle::new(limits());
        // 300 µs statements: +20% is 60 µs, below the noise floor.
        assert_eq!(t.allowed_p95_us(300), 800);
        assert_eq!(t.allowed_p95_us(10_000), 12_000);
        let mut t = Throttle::new(limits());
        t.observe(&Signals {
            baseline_p95_us: None,
            traffic_p95_us: Some(1_000_000),
            ..calm()
        });
        assert_eq!(t.reason, Reason::Calm);
    }
}

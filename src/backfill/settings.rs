//! `[backfill]`: how far a backfill job may push the traffic it shares a
//! table with, and its batch defaults. Owned here and embedded by `config`.

use crate::units::HumanDuration;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// `[backfill]` in `proxy.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillSettings {
    /// How much the other clients' p95 latency on the table may rise over
    /// the level recorded before the job started (`"20%"`).
    pub max_latency_increase: Percent,
    /// Replication lag (`pg_stat_replication.replay_lag`) above which the
    /// job slows down (only when replicas exist).
    pub max_replica_lag: HumanDuration,
    /// Rows per batch when the job does not say (`--batch`): the job starts
    /// there and never goes above it.
    pub batch_size: usize,
    /// `lock_timeout` of each batch's transaction.
    pub lock_timeout: HumanDuration,
    /// `statement_timeout` of each batch's transaction.
    pub statement_timeout: HumanDuration,
}

impl Default for BackfillSettings {
    fn default() -> Self {
        BackfillSettings {
            max_latency_increase: Percent(20.0),
            max_replica_lag: HumanDuration(Duration::from_secs(10)),
            batch_size: 1000,
            lock_timeout: HumanDuration(Duration::from_secs(1)),
            statement_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

impl BackfillSettings {
    /// Checks what the value parsers cannot: `(key, message)` on failure.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.batch_size == 0 {
            return Err(("batch_size", "must be at least 1".into()));
        }
        if self.max_latency_increase.0 <= 0.0 {
            return Err((
                "max_latency_increase",
                "must be above 0%; write e.g. \"20%\"".into(),
            ));
        }
        for (key, d) in [
            ("lock_timeout", self.lock_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if d.0 < Duration::from_millis(1) {
                return Err((key, "must be at least 1ms".into()));
            }
        }
        Ok(())
    }
}

/// A percentage written `"20%"` (or `20`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Percent {
    /// The fraction (`0.2` for 20%).
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }

    fn parse(s: &str) -> Option<Percent> {
        let n: f64 = s.trim().trim_end_matches('%').trim().parse().ok()?;
        n.is_finite().then_some(Percent(n))
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a percentage such as \"20%\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
                Ok(Percent(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
                Ok(Percent(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percent, E> {
                Ok(Percent(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
                Percent::parse(v).ok_or_else(|| {
                    E::custom(format!("invalid percentage {v:?}; write e.g. \"20%\""))
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_with_or_without_the_sign() {
        let s: BackfillSettings = toml::from_str("max_latency_increase = \"35%\"").unwrap();
        assert_eq!(s.max_latency_increase, Percent(35.0));
        let s: BackfillSettings = toml::from_str("max_latency_increase = 50").unwrap();
        assert!((s.max_latency_increase.fraction() - 0.5).abs() < 1e-9);
        assert!(toml::from_str::<BackfillSettings>("max_latency_increase = \"lots\"").is_err());
        assert_eq!(
            toml::to_string(&BackfillSettings::default())
                .unwrap()
                .lines()
                .next(),
            Some("max_latency_increase = \"20%\"")
        );
    }

    #[test]
    fn a_zero_batch_is_refused() {
        let s = BackfillSettings {
            batch_size: 0,
            ..BackfillSettings::default()
        };
        assert_eq!(s.validate().map_err(|e| e.0), Err("batch_size"));
        assert!(BackfillSettings::default().validate().is_ok());
    }
}

//! Value types that parse from human-friendly strings (`"10s"`, `"64MB"`),
//! shared by `config` and the modules that own their own settings sections.
//!
//! Parsing happens during deserialization so that a bad value is reported by
//! the TOML parser with the exact position of that value.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written as `"10s"`, `"500ms"`, `"2m"`, `"24h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {s:?} ({e}); write e.g. \"500ms\", \"10s\", \"5m\" or \"24h\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// A size in bytes, written as an integer or as `"64kB"`, `"256MB"`, `"1GB"`
/// (the units of `postgresql.conf`, powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl ByteSize {
    fn parse(s: &str) -> Option<usize> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num: usize = num.parse().ok()?;
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" | "KiB" => 1 << 10,
            "MB" | "MiB" => 1 << 20,
            "GB" | "GiB" => 1 << 30,
            _ => return None,
        };
        num.checked_mul(mult)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1048576, \"64kB\", \"256MB\" or \"1GB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                usize::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map(ByteSize).ok_or_else(|| {
                    E::custom(format!(
                        "invalid size {v:?}; write e.g. \"64kB\", \"256MB\" or \"1GB\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let text = if n.is_multiple_of(1 << 30) && n > 0 {
            format!("{}GB", n >> 30)
        } else if n.is_multiple_of(1 << 20) && n > 0 {
            format!("{}MB", n >> 20)
        } else if n.is_multiple_of(1 << 10) && n > 0 {
            format!("{}kB", n >> 10)
        } else {
            format!("{n}B")
        };
        s.serialize_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_postgres_units() {
        assert_eq!(ByteSize::parse("256MB"), Some(256 << 20));
        assert_eq!(ByteSize::parse("64kB"), Some(64 << 10));
        assert_eq!(ByteSize::parse("12"), Some(12));
        assert_eq!(ByteSize::parse("12 parsecs"), None);
    }
}

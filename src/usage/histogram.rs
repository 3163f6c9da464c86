//! A small fixed-size latency histogram: log-linear buckets of microseconds
//! (four per power of two, so quantiles are within about 19%), 512 bytes.

/// Buckets per power of two.
const SUB: usize = 4;
/// Powers of two covered: 1 µs to about 2^31 µs (36 minutes).
const POWERS: usize = 32;
/// Buckets of a histogram.
pub(super) const BUCKETS: usize = SUB * POWERS;

/// Latency distribution of one statement shape.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    counts: Box<[u32; SUB * POWERS]>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; SUB * POWERS]),
            total: 0,
        }
    }
}

/// The bucket of a latency, µs.
pub(super) fn bucket(us: u64) -> usize {
    let us = us.max(1);
    let power = 63 - us.leading_zeros() as usize;
    let sub = if power >= 2 {
        ((us >> (power - 2)) & 0b11) as usize
    } else {
        ((us << (2 - power)) & 0b11) as usize
    };
    (power * SUB + sub).min(SUB * POWERS - 1)
}

fn bucket_upper(index: usize) -> u64 {
    let power = index / SUB;
    let sub = (index % SUB) as u64;
    let base = 1u64 << power;
    base + ((sub + 1) * base) / SUB as u64
}

impl LatencyHistogram {
    /// Adds one observation.
    pub fn record(&mut self, us: u64) {
        self.add_bucket(bucket(us), 1);
    }

    /// Adds `n` observations of bucket `b`.
    pub(super) fn add_bucket(&mut self, b: usize, n: u32) {
        if let Some(c) = self.counts.get_mut(b) {
            *c = c.saturating_add(n);
            self.total += u64::from(n);
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    /// What was recorded after `earlier` was cloned from this histogram
    /// (a backfill measures the latency of a window this way).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut out = LatencyHistogram::default();
        for (o, (a, b)) in out
            .counts
            .iter_mut()
            .zip(self.counts.iter().zip(earlier.counts.iter()))
        {
            *o = a.saturating_sub(*b);
        }
        out.total = out.counts.iter().map(|&c| c as u64).sum();
        out
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds a sparse histogram's counts.
    pub fn merge_sparse(&mut self, other: &SparseHistogram) {
        for (b, n) in other.buckets() {
            self.counts[b] = self.counts[b].saturating_add(n);
            self.total += n as u64;
        }
    }

    /// The latency (µs, bucket upper bound) below which `q` of observations fall.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += *c as u64;
            if seen >= rank {
                return bucket_upper(i);
            }
        }
        bucket_upper(SUB * POWERS - 1)
    }
}

/// The same buckets, holding only the non-empty ones: one minute of one
/// statement shape usually fills a handful, so a slot costs tens of bytes
/// instead of 512. Which buckets are held is a bit set, so that finding a
/// bucket's count is a bit count, not a search (once per statement).
#[derive(Clone, Debug, Default)]
pub struct SparseHistogram {
    /// Bit `b` set: bucket `b` has a count, at the rank of bit `b`.
    present: u128,
    counts: Vec<u32>,
}

const _: () = assert!(SUB * POWERS == 128, "one bit per bucket");

impl SparseHistogram {
    /// Adds one observation.
    pub fn record(&mut self, us: u64) {
        self.add_bucket(bucket(us), 1);
    }

    /// Adds `n` observations of bucket `b` (below [`BUCKETS`]).
    pub(super) fn add_bucket(&mut self, b: usize, n: u32) {
        let bit = 1u128 << (b % BUCKETS);
        let at = (self.present & (bit - 1)).count_ones() as usize;
        if self.present & bit != 0 {
            if let Some(c) = self.counts.get_mut(at) {
                *c = c.saturating_add(n);
            }
        } else {
            self.present |= bit;
            self.counts.insert(at, n);
        }
    }

    /// The non-empty buckets, in order, with their counts.
    fn buckets(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mut bits = self.present;
        self.counts.iter().map(move |&n| {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            (b, n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000 {
            h.record(us);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((450..=620).contains(&p50), "{p50}");
        assert!((950..=1250).contains(&p99), "{p99}");
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn sparse_histograms_merge_into_the_same_quantiles() {
        let mut dense = LatencyHistogram::default();
        let mut sparse = SparseHistogram::default();
        for us in [5, 5, 90, 1000, 40_000] {
            dense.record(us);
            sparse.record(us);
        }
        let mut merged = LatencyHistogram::default();
        merged.merge_sparse(&sparse);
        assert_eq!(merged.count(), 5);
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(merged.quantile(q), dense.quantile(q));
        }
        assert_eq!(sparse.counts.len(), 4);

        // Every bucket, in any order of arrival, 0 and the last one too.
        let mut dense = LatencyHistogram::default();
        let mut sparse = SparseHistogram::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..5000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = match i % 3 {
                0 => x % 100,
                1 => x >> (x % 64),
                _ => x,
            };
            dense.record(us);
            sparse.record(us);
        }
        let mut merged = LatencyHistogram::default();
        merged.merge_sparse(&sparse);
        assert_eq!(merged.counts, dense.counts);
        assert_eq!(merged.count(), 5000);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for us in [1, 2, 3, 5, 8, 13, 100, 1000, 10_000, 1_000_000] {
            let b = bucket(us);
            assert!(b >= last);
            assert!(bucket_upper(b) >= us, "{us}");
            last = b;
        }
    }
}

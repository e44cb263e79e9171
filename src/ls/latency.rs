//! Lock-free latency histograms with fixed buckets, in the shape Prometheus
//! exposes (cumulative `le` buckets, sum, count), plus quantile estimates
//! for the status page; [`micros`], the one conversion of a latency to
//! microseconds on the per-answer path.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

/// Whole microseconds in `d`, saturating at `u64::MAX`: `Duration::as_micros`
/// in 64-bit arithmetic (its 128-bit product and check are measurable on a
/// path taken per answer).
pub fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// A latency histogram.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; index `BUCKETS_US.len()` is +Inf.
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// A copy of a histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Non-cumulative counts per bucket (last = +Inf).
    pub counts: Vec<u64>,
    /// Sum of all samples, microseconds.
    pub sum_us: u64,
    /// Number of samples.
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one sample.
    pub fn record(&self, d: Duration) {
        let us = micros(d);
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
            count: self.count.load(Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// Samples recorded since `earlier` (for rates over an interval).
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// Estimated quantile `q` (0..1), interpolated inside its bucket; `None`
    /// with no samples. Samples past the last bound report that bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lo = if i == 0 {
                    0
                } else {
                    BUCKETS_US.get(i - 1).copied().unwrap_or(0)
                };
                let Some(&hi) = BUCKETS_US.get(i) else {
                    return Some(Duration::from_micros(lo));
                };
                let frac = (rank - seen as f64) / c as f64;
                let us = lo as f64 + frac * (hi - lo) as f64;
                return Some(Duration::from_micros(us as u64));
            }
            seen += c;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_as_micros_in_64_bits_and_saturate() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_nanos(1_001),
            Duration::new(7, 123_456_789),
            Duration::from_secs(u64::MAX / 1_000_000),
        ] {
            assert_eq!(u128::from(micros(d)), d.as_micros(), "{d:?}");
        }
        assert_eq!(
            micros(Duration::from_secs(u64::MAX / 1_000_000 + 1)),
            u64::MAX
        );
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }

    #[test]
    fn buckets_and_quantiles() {
        let h = LatencyHistogram::default();
        for _ in 0..99 {
            h.record(Duration::from_micros(80));
        }
        h.record(Duration::from_millis(40));
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.counts[1], 99); // (50, 100] µs
        assert_eq!(s.counts[9], 1); // (25, 50] ms
        let p50 = s.quantile(0.5).unwrap();
        assert!(p50 > Duration::from_micros(50) && p50 <= Duration::from_micros(100));
        let p999 = s.quantile(0.999).unwrap();
        assert!(p999 > Duration::from_millis(25));
        assert_eq!(LatencySnapshot::default().quantile(0.5), None);
    }

    #[test]
    fn since_subtracts() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(10));
        let a = h.snapshot();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_secs(60));
        let d = h.snapshot().since(&a);
        assert_eq!(d.count, 2);
        assert_eq!(d.counts[0], 1);
        assert_eq!(*d.counts.last().unwrap(), 1);
    }
}

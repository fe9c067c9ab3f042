//! A histogram that takes observations with atomics only. prometheus-client's own `Histogram`
//! holds a mutex that every observation takes; on the request path of every worker thread
//! that would be the one lock they all meet on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// TLS handshakes: 0.5 ms (a resumed or local one) up to 5 s (the handshake deadline's range).
pub const HANDSHAKE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Requests, from arrival to the response head: 1 ms up to a minute (the backend timeout).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Cheap to clone: clones share the counts.
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, plus the `+Inf` bucket; not cumulative (summed when encoded).
    counts: Box<[AtomicU64]>,
    /// The sum of observations, in nanoseconds (seconds would need a float CAS loop).
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        AtomicHistogram {
            inner: Arc::new(Inner {
                bounds,
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records one duration. Two relaxed atomic additions, no lock.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .inner
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.inner.bounds.len());
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Cumulative buckets, the count and the sum in seconds, as one scrape reports them.
    fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut total = 0;
        let bounds = self.inner.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds
            .zip(self.inner.counts.iter())
            .map(|(bound, c)| {
                total += c.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect();
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, total, sum)
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, count, sum) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let h = AtomicHistogram::new(HANDSHAKE_BUCKETS);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(9));
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[3], (0.005, 2));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3)));
        assert!((sum - 9.0033).abs() < 1e-9, "{sum}");
    }
}

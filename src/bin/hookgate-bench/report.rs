//! Latency summaries from HDR histograms, medians over repeated runs, and number formatting.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microseconds from 1 µs to 10 minutes at 3 significant digits: enough for a request stuck
/// behind a 5 s store timeout, and small (a few hundred KiB) per histogram.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Records `micros`, saturating at the histogram's top rather than dropping the sample.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.max(1));
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    /// Field by field median: each percentile is the median of that percentile over the runs.
    pub fn median(runs: &[Latency]) -> Self {
        let m = |f: fn(&Latency) -> f64| median(runs.iter().map(f));
        Self {
            count: runs.iter().map(|l| l.count).sum(),
            p50_ms: m(|l| l.p50_ms),
            p90_ms: m(|l| l.p90_ms),
            p99_ms: m(|l| l.p99_ms),
            p999_ms: m(|l| l.p999_ms),
            max_ms: m(|l| l.max_ms),
            mean_ms: m(|l| l.mean_ms),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// The median (mean of the middle two for an even count); 0 for no values.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

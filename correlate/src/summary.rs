//! A bounded-memory digest of a correlation run for the command line: latency percentiles,
//! the slowest requests, and where requests spent their time per service.

use std::collections::BTreeMap;

use crate::model::Finished;
use crate::Interner;

/// Latency histogram with 16 sub-buckets per power of two (values within 1/16 of the truth).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 * 16],
            total: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < 16 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as usize;
    let sub = ((v >> (exp - 4)) & 15) as usize;
    (exp - 3) * 16 + sub
}

fn lower_bound(b: usize) -> u64 {
    if b < 16 {
        return b as u64;
    }
    let exp = b / 16 + 3;
    let sub = (b % 16) as u64;
    (16 + sub) << (exp - 4)
}

impl Histogram {
    /// Adds one value.
    pub fn add(&mut self, v: u64) {
        let b = bucket(v).min(self.counts.len() - 1);
        self.counts[b] += 1;
        self.total += 1;
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 to 1), as the lower bound of its bucket.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(b);
            }
        }
        0
    }
}

/// Time per service (process name), summed over the spans of all requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTime {
    /// Spans.
    pub spans: u64,
    /// Sum of span durations (ns).
    pub total_ns: i64,
    /// On CPU (ns).
    pub cpu_ns: i64,
    /// Runnable, waiting for a CPU (ns).
    pub runnable_ns: i64,
    /// Blocked (ns).
    pub blocked_ns: i64,
}

/// What the command line shows after correlating.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// Request durations.
    pub latency: Histogram,
    /// The slowest requests: (duration ns, request id, number of spans), slowest first.
    pub slowest: Vec<(i64, u64, usize)>,
    /// Server-span time per service name.
    pub services: BTreeMap<String, ServiceTime>,
}

/// How many slowest requests the digest keeps.
pub const SLOWEST: usize = 5;

impl Digest {
    /// Adds a finished request.
    pub fn add(&mut self, f: &Finished, names: &Interner) {
        let d = f.request.end - f.request.start;
        self.latency.add(d.max(0) as u64);
        if self.slowest.len() < SLOWEST || d > self.slowest[self.slowest.len() - 1].0 {
            self.slowest.push((d, f.request.id, f.spans.len()));
            self.slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
            self.slowest.truncate(SLOWEST);
        }
        for s in f
            .spans
            .iter()
            .filter(|s| s.kind == crate::model::SpanKind::Server)
        {
            let e = self
                .services
                .entry(names.name(s.comm).to_owned())
                .or_default();
            let sp = s.split();
            e.spans += 1;
            e.total_ns += s.end - s.start;
            e.cpu_ns += sp.cpu;
            e.runnable_ns += sp.runnable;
            e.blocked_ns += sp.blocked();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.add(v * 1000);
        }
        for (q, want) in [(0.5, 500_000u64), (0.99, 990_000), (1.0, 1_000_000)] {
            let got = h.quantile(q);
            assert!(
                got <= want && want - got <= want / 16,
                "q{q}: {got} vs {want}"
            );
        }
        assert_eq!(h.count(), 1000);
    }
}

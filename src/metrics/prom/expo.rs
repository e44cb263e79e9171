//! One Prometheus text exposition (0.0.4) being written: families,
//! samples with their labels escaped, counters by label or rcode, and
//! latency histograms.
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ls::latency::{BUCKETS_US, LatencySnapshot};

use super::super::escape;

/// Microseconds as seconds, in the shortest form that reads back exactly.
pub(super) fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// One exposition being written. Writing to a `String` cannot fail, so the
/// `fmt::Result`s below are ignored.
pub(crate) struct Expo(pub(crate) String);

impl Expo {
    /// `# HELP` and `# TYPE` of a family (help text needs no escaping: ours
    /// are constants without backslash or newline).
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape::label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A counter family of reloads (SIGHUP), `result` = `applied` or `refused`.
    pub(crate) fn reloads(
        &mut self,
        name: &str,
        help: &str,
        applied: &AtomicU64,
        refused: &AtomicU64,
    ) {
        self.by_label(
            name,
            help,
            "result",
            [("applied", applied), ("refused", refused)],
        );
    }

    /// A counter family with one label: a sample per `(label value, counter)`.
    pub(crate) fn by_label<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        counters: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
    ) {
        self.family(name, "counter", help);
        for (value, c) in counters {
            self.sample(name, &[(label, value)], c.load(Relaxed));
        }
    }

    /// A counter family by `rcode`, slot `i` of `answers` labelled
    /// `label(i)`: the common rcodes (0 to 5) always, so that rates start
    /// from zero, the others once seen.
    pub(crate) fn by_rcode(
        &mut self,
        name: &str,
        help: &str,
        answers: &[AtomicU64],
        label: fn(usize) -> String,
    ) {
        self.family(name, "counter", help);
        for (i, c) in answers.iter().enumerate() {
            let v = c.load(Relaxed);
            if i <= 5 || v > 0 {
                self.sample(name, &[("rcode", &label(i))], v);
            }
        }
    }

    /// A family with one unlabelled counter.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// A counter family without labels per `(name, help, counter)`.
    pub(crate) fn counters<'a>(
        &mut self,
        counters: impl IntoIterator<Item = (&'a str, &'a str, &'a AtomicU64)>,
    ) {
        for (name, help, c) in counters {
            self.counter(name, help, c.load(Relaxed));
        }
    }

    /// The samples of one histogram series (the family header is written by
    /// the caller). `_count` is the sum of the buckets, so `+Inf` equals it
    /// even when the snapshot raced a recording.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], s: &LatencySnapshot) {
        let bucket = format!("{name}_bucket");
        let les: Vec<String> = BUCKETS_US.iter().map(|&b| seconds(b)).collect();
        let mut cumulative = 0u64;
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        for (i, le) in les.iter().enumerate() {
            cumulative += s.counts.get(i).copied().unwrap_or(0);
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, cumulative);
            with_le.pop();
        }
        cumulative += s
            .counts
            .get(BUCKETS_US.len()..)
            .unwrap_or_default()
            .iter()
            .sum::<u64>();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cumulative);
        self.sample(&format!("{name}_sum"), labels, seconds(s.sum_us));
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

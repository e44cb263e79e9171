//! What the checker shows outside its task: each distinct target's state,
//! last change and probe counts, and the probes in flight (atomics the task
//! writes and readers load), as Prometheus text and as `dnslb status` rows.
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::spec::Label;

/// How one probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeResult {
    /// The endpoint answered as expected.
    Ok,
    /// It refused, closed, or answered otherwise than expected.
    Fail,
    /// No answer within the timeout.
    Timeout,
}

/// One distinct target's counters and state.
#[derive(Debug)]
struct Slot {
    labels: Vec<Label>,
    up: AtomicBool,
    changed_unix: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    timeout: AtomicU64,
}

/// Every distinct target's [`Slot`], in the checker's order, and the probes
/// in flight: now, the most at once so far, and their bound.
#[derive(Debug)]
pub(super) struct Board {
    slots: Vec<Slot>,
    in_flight: AtomicU64,
    peak: AtomicU64,
    bound: AtomicU64,
}

impl Board {
    /// A board for targets known by `labels` (one list per target), all up
    /// since `now_unix`.
    #[must_use]
    pub(super) fn new(labels: Vec<Vec<Label>>, now_unix: u64) -> Self {
        let slots = labels
            .into_iter()
            .map(|labels| Slot {
                labels,
                up: AtomicBool::new(true),
                changed_unix: AtomicU64::new(now_unix),
                ok: AtomicU64::new(0),
                fail: AtomicU64::new(0),
                timeout: AtomicU64::new(0),
            })
            .collect();
        Self {
            slots,
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            bound: AtomicU64::new(0),
        }
    }

    /// The bound on probes in flight the task keeps to.
    pub(super) fn set_bound(&self, bound: usize) {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX);
        self.bound.store(bound, Ordering::Relaxed);
    }

    /// `n` probes are in flight now (the peak kept).
    pub(super) fn set_in_flight(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.in_flight.store(n, Ordering::Relaxed);
        self.peak.fetch_max(n, Ordering::Relaxed);
    }

    /// Appends `dnslb_ts_checks_in_flight`, `..._peak` and `..._bound`.
    pub(super) fn write_in_flight(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "dnslb_ts_checks_in_flight",
                "Endpoint probes in flight now.",
                &self.in_flight,
            ),
            (
                "dnslb_ts_checks_in_flight_peak",
                "The most endpoint probes in flight at once since the checker started.",
                &self.peak,
            ),
            (
                "dnslb_ts_checks_in_flight_bound",
                "The bound on endpoint probes in flight at once.",
                &self.bound,
            ),
        ] {
            let v = v.load(Ordering::Relaxed);
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        }
    }

    /// Counts one probe of target `i`.
    pub(super) fn count(&self, i: usize, result: ProbeResult) {
        if let Some(s) = self.slots.get(i) {
            let c = match result {
                ProbeResult::Ok => &s.ok,
                ProbeResult::Fail => &s.fail,
                ProbeResult::Timeout => &s.timeout,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Target `i` went up or down at `now_unix`.
    pub(super) fn set_up(&self, i: usize, up: bool, now_unix: u64) {
        if let Some(s) = self.slots.get(i) {
            s.up.store(up, Ordering::Relaxed);
            s.changed_unix.store(now_unix, Ordering::Relaxed);
        }
    }

    /// The labels of target `i` (for its log line).
    #[must_use]
    pub(super) fn labels(&self, i: usize) -> &[Label] {
        self.slots.get(i).map_or(&[], |s| &s.labels)
    }

    /// Appends `dnslb_ts_endpoint_up{service,endpoint}` and
    /// `dnslb_ts_endpoint_checks_total{service,endpoint,result}` for every
    /// label of every target (a target shared by several services shows its
    /// one state and counts under each).
    pub(super) fn write_prometheus(&self, out: &mut String) {
        out.push_str("# HELP dnslb_ts_endpoint_up Whether a service endpoint is up (1) or down (0) by its health checks.\n");
        out.push_str("# TYPE dnslb_ts_endpoint_up gauge\n");
        for s in &self.slots {
            let up = u8::from(s.up.load(Ordering::Relaxed));
            for l in &s.labels {
                let _ = writeln!(out, "dnslb_ts_endpoint_up{{{}}} {up}", labels(l));
            }
        }
        out.push_str("# HELP dnslb_ts_endpoint_checks_total Health checks of a service endpoint, by result.\n");
        out.push_str("# TYPE dnslb_ts_endpoint_checks_total counter\n");
        for s in &self.slots {
            for l in &s.labels {
                for (result, c) in [("ok", &s.ok), ("fail", &s.fail), ("timeout", &s.timeout)] {
                    let _ = writeln!(
                        out,
                        "dnslb_ts_endpoint_checks_total{{{},result=\"{result}\"}} {}",
                        labels(l),
                        c.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }

    /// (target index, label, up, last change in unix seconds) for every
    /// label of every target.
    #[must_use]
    pub(super) fn states(&self) -> Vec<(usize, Label, bool, u64)> {
        self.slots
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let up = s.up.load(Ordering::Relaxed);
                let at = s.changed_unix.load(Ordering::Relaxed);
                s.labels.iter().map(move |l| (i, l.clone(), up, at))
            })
            .collect()
    }
}

/// `service="...",endpoint="..."`, the values escaped as Prometheus asks.
fn labels(l: &Label) -> String {
    format!(
        "service=\"{}\",endpoint=\"{}\"",
        escape(&l.service),
        escape(&l.endpoint)
    )
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Board, ProbeResult};
    use crate::ts::service::check::spec::Label;

    fn label(service: &str, endpoint: &str) -> Label {
        Label {
            service: service.into(),
            endpoint: endpoint.into(),
        }
    }

    fn board() -> Board {
        Board::new(
            vec![
                vec![
                    label("www.example.", "192.0.2.1"),
                    label("api.example.", "192.0.2.1"),
                ],
                vec![label("www.example.", "2001:db8::2")],
            ],
            1_000,
        )
    }

    #[test]
    fn every_label_shows_its_targets_state_and_counts() {
        let b = board();
        b.count(0, ProbeResult::Ok);
        b.count(0, ProbeResult::Ok);
        b.count(0, ProbeResult::Timeout);
        b.count(1, ProbeResult::Fail);
        b.set_up(1, false, 1_005);
        let mut out = String::new();
        b.write_prometheus(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                r#"dnslb_ts_endpoint_up{service="www.example.",endpoint="192.0.2.1"} 1"#,
                r#"dnslb_ts_endpoint_up{service="api.example.",endpoint="192.0.2.1"} 1"#,
                r#"dnslb_ts_endpoint_up{service="www.example.",endpoint="2001:db8::2"} 0"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="192.0.2.1",result="ok"} 2"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="192.0.2.1",result="fail"} 0"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="192.0.2.1",result="timeout"} 1"#,
                r#"dnslb_ts_endpoint_checks_total{service="api.example.",endpoint="192.0.2.1",result="ok"} 2"#,
                r#"dnslb_ts_endpoint_checks_total{service="api.example.",endpoint="192.0.2.1",result="fail"} 0"#,
                r#"dnslb_ts_endpoint_checks_total{service="api.example.",endpoint="192.0.2.1",result="timeout"} 1"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="2001:db8::2",result="ok"} 0"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="2001:db8::2",result="fail"} 1"#,
                r#"dnslb_ts_endpoint_checks_total{service="www.example.",endpoint="2001:db8::2",result="timeout"} 0"#,
            ]
        );
        assert!(out.contains("# TYPE dnslb_ts_endpoint_up gauge\n"));
        assert!(out.contains("# TYPE dnslb_ts_endpoint_checks_total counter\n"));
    }

    #[test]
    fn the_probes_in_flight_show_now_their_peak_and_bound() {
        let b = board();
        b.set_bound(64);
        for n in [3, 9, 2] {
            b.set_in_flight(n);
        }
        let mut out = String::new();
        b.write_in_flight(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "dnslb_ts_checks_in_flight 2",
                "dnslb_ts_checks_in_flight_peak 9",
                "dnslb_ts_checks_in_flight_bound 64"
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let b = Board::new(vec![vec![label("a\"b\\c\nd", "x")]], 0);
        let mut out = String::new();
        b.write_prometheus(&mut out);
        assert!(out.contains(r#"dnslb_ts_endpoint_up{service="a\"b\\c\nd",endpoint="x"} 1"#));
    }

    #[test]
    fn states_give_each_label_its_state_and_last_change() {
        let b = board();
        b.set_up(0, false, 1_010);
        b.set_up(0, true, 1_020);
        b.set_up(1, false, 1_030);
        assert_eq!(
            b.states(),
            [
                (0, label("www.example.", "192.0.2.1"), true, 1_020),
                (0, label("api.example.", "192.0.2.1"), true, 1_020),
                (1, label("www.example.", "2001:db8::2"), false, 1_030),
            ]
        );
        assert_eq!(
            Board::new(vec![vec![label("s.", "e")]], 77).states(),
            [(0, label("s.", "e"), true, 77)],
            "up since the start"
        );
    }
}

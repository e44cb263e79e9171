//! The checker task: one per TS, on the TS's runtime, probing every
//! distinct target by its [`ProbePlan`] with at most `max_in_flight` probes
//! at once (a `JoinSet`), moving each by its [`EndpointHealth`] and
//! publishing a new [`LiveSet`] only when some target goes up or down.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::{self, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::board::{Board, ProbeResult};
use super::hysteresis::EndpointHealth;
use super::probe::probe;
use super::schedule::ProbePlan;
use super::spec::{Label, LiveSet, Probe, Target};

/// Owns the checker task: it stops when its `cancel` token is cancelled;
/// [`join`](Self::join) waits for it.
#[derive(Debug)]
pub struct Checker {
    board: Arc<Board>,
    task: JoinHandle<()>,
}

/// The distinct targets and, for each target given, which one it is.
struct Distinct {
    targets: Vec<Target>,
    labels: Vec<Vec<Label>>,
    of_entry: Vec<usize>,
}

/// Folds equal targets into one (its labels every label they came with).
fn distinct(entries: Vec<(Target, Vec<Label>)>) -> Distinct {
    let mut index: HashMap<Target, usize> = HashMap::new();
    let mut d = Distinct {
        targets: Vec::new(),
        labels: Vec::new(),
        of_entry: Vec::with_capacity(entries.len()),
    };
    for (target, labels) in entries {
        let i = match index.get(&target) {
            Some(&i) => i,
            None => {
                let i = d.targets.len();
                index.insert(target.clone(), i);
                d.targets.push(target);
                d.labels.push(Vec::new());
                i
            }
        };
        if let Some(l) = d.labels.get_mut(i) {
            for label in labels {
                if !l.contains(&label) {
                    l.push(label);
                }
            }
        }
        d.of_entry.push(i);
    }
    d
}

/// The live set of the targets as given, from the distinct ones' health.
fn live_set(of_entry: &[usize], health: &[EndpointHealth]) -> LiveSet {
    LiveSet {
        up: of_entry
            .iter()
            .map(|&i| health.get(i).is_none_or(|h| h.up))
            .collect(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checker {
    /// Starts one task checking every target (each distinct target once; its
    /// labels every service/endpoint that uses it), at most `max_in_flight`
    /// probes at once, each target's first probe jittered within its
    /// interval. Every target starts up (fail-open) and moves by rise/fall
    /// hysteresis. Must be called on a Tokio runtime (the TS's).
    pub fn start(
        targets: Vec<(Target, Vec<Label>)>,
        max_in_flight: usize,
        cancel: CancellationToken,
    ) -> (Checker, watch::Receiver<Arc<LiveSet>>) {
        let d = distinct(targets);
        let health = vec![EndpointHealth::START; d.targets.len()];
        let (tx, rx) = watch::channel(Arc::new(live_set(&d.of_entry, &health)));
        let board = Arc::new(Board::new(d.labels, unix_now()));
        let run = Run {
            targets: Arc::new(d.targets),
            of_entry: d.of_entry,
            health,
            board: Arc::clone(&board),
            tx,
        };
        let task = tokio::spawn(run.run(max_in_flight, cancel));
        (Checker { board, task }, rx)
    }

    /// Prometheus lines: `dnslb_ts_endpoint_up{service,endpoint}` 0|1 and
    /// `dnslb_ts_endpoint_checks_total{service,endpoint,result="ok|fail|timeout"}`.
    pub fn write_prometheus(&self, out: &mut String) {
        self.board.write_prometheus(out);
    }

    /// For `dnslb status`: (label, up, last change in unix seconds) per label.
    #[must_use]
    pub fn states(&self) -> Vec<(Label, bool, u64)> {
        self.board.states()
    }

    /// Waits for the task to end (after its token is cancelled).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "endpoint checker task failed");
        }
    }
}

/// The task's state.
struct Run {
    targets: Arc<Vec<Target>>,
    of_entry: Vec<usize>,
    health: Vec<EndpointHealth>,
    board: Arc<Board>,
    tx: watch::Sender<Arc<LiveSet>>,
}

impl Run {
    async fn run(mut self, max_in_flight: usize, cancel: CancellationToken) {
        let start = Instant::now();
        let intervals: Vec<Option<u64>> = self
            .targets
            .iter()
            .map(|t| (t.check.probe != Probe::None).then_some(t.check.interval_ms))
            .collect();
        let mut plan = ProbePlan::new(&intervals, max_in_flight, rand::random);
        let mut probes: JoinSet<ProbeResult> = JoinSet::new();
        // Which target each probe in flight is for.
        let mut running: HashMap<task::Id, usize> = HashMap::new();
        let ms_since = |start: Instant| -> u64 {
            u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        loop {
            let now = ms_since(start);
            while let Some(i) = plan.take_due(now) {
                let targets = Arc::clone(&self.targets);
                let task = probes.spawn(async move {
                    match targets.get(i) {
                        Some(t) => probe(t).await,
                        None => ProbeResult::Ok,
                    }
                });
                running.insert(task.id(), i);
            }
            let wake = plan.next_wake().map(|at| start + Duration::from_millis(at));
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(done) = probes.join_next_with_id(), if !probes.is_empty() => {
                    // A probe that panicked counts as failed: its target
                    // keeps its place in the plan.
                    let (id, result) = match done {
                        Ok((id, result)) => (id, result),
                        Err(e) => {
                            tracing::error!(error = %e, "endpoint probe failed");
                            (e.id(), ProbeResult::Fail)
                        }
                    };
                    if let Some(i) = running.remove(&id) {
                        self.settle(i, result);
                        plan.finished(i, ms_since(start));
                    }
                }
                () = sleep_until(wake) => {}
            }
        }
        probes.shutdown().await;
    }

    /// Counts one probe's result and moves its target's health; on a change,
    /// logs it and publishes the new live set.
    fn settle(&mut self, i: usize, result: ProbeResult) {
        self.board.count(i, result);
        let (Some(h), Some(t)) = (self.health.get_mut(i), self.targets.get(i)) else {
            return;
        };
        let before = *h;
        *h = before.step(result == ProbeResult::Ok, t.check.rise, t.check.fall);
        if h.up == before.up {
            return;
        }
        let up = h.up;
        self.board.set_up(i, up, unix_now());
        let services: Vec<&str> = self
            .board
            .labels(i)
            .iter()
            .map(|l| l.service.as_str())
            .collect();
        tracing::info!(
            endpoint = %t.addr,
            services = %services.join(","),
            probe = ?result,
            "endpoint {}",
            if up { "up" } else { "down" }
        );
        self.tx
            .send_replace(Arc::new(live_set(&self.of_entry, &self.health)));
    }
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{EndpointHealth, distinct, live_set};
    use crate::ts::gslb::check::spec::{CheckSpec, Label, Probe, Target};

    fn target(addr: &str, port: u16) -> Target {
        Target {
            addr: addr.parse().unwrap(),
            check: CheckSpec {
                probe: Probe::Tcp { port },
                interval_ms: 1_000,
                timeout_ms: 500,
                rise: 2,
                fall: 3,
            },
        }
    }

    fn label(service: &str, endpoint: &str) -> Label {
        Label {
            service: service.into(),
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn equal_targets_are_one_with_every_label() {
        let a = target("192.0.2.1", 80);
        let b = target("192.0.2.2", 80);
        let a_other_port = target("192.0.2.1", 81);
        let d = distinct(vec![
            (a.clone(), vec![label("www.", "192.0.2.1")]),
            (b.clone(), vec![label("www.", "192.0.2.2")]),
            (a.clone(), vec![label("api.", "192.0.2.1")]),
            (a_other_port.clone(), vec![label("mail.", "192.0.2.1")]),
            (a.clone(), vec![label("www.", "192.0.2.1")]),
        ]);
        assert_eq!(d.targets, [a, b, a_other_port]);
        assert_eq!(d.of_entry, [0, 1, 0, 2, 0]);
        assert_eq!(
            d.labels,
            [
                vec![label("www.", "192.0.2.1"), label("api.", "192.0.2.1")],
                vec![label("www.", "192.0.2.2")],
                vec![label("mail.", "192.0.2.1")],
            ]
        );
    }

    #[test]
    fn the_live_set_follows_the_entries_as_given() {
        let down = EndpointHealth {
            up: false,
            streak: 0,
        };
        let health = [EndpointHealth::START, down];
        assert_eq!(
            live_set(&[0, 1, 0, 1], &health).up,
            [true, false, true, false]
        );
    }
}

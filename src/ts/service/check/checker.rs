//! The checker task: one per TS, on a thread of its own (a single-threaded
//! runtime: a probe's end wakes no other thread), probing every distinct
//! target by its [`ProbePlan`] with at most `max_in_flight` probes at once
//! (`tcp` probes through the batch driver [`Connects`], the others as
//! futures polled by the task itself, not tasks spawned per probe), moving
//! each by its [`Hysteresis`] and publishing a new [`LiveSet`] only when
//! some target goes up or down.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::board::{Board, ProbeResult};
use super::connect::Connects;
use super::probe::probe;
use super::schedule::ProbePlan;
use super::spec::{CheckSpec, EndpointState, Label, LiveSet, Probe, Target};
use crate::clock::unix_now;
use crate::hysteresis::Hysteresis;

/// Owns the checker's thread: it stops when its `cancel` token is
/// cancelled; [`join`](Self::join) waits for it.
#[derive(Debug)]
pub struct Checker {
    board: Arc<Board>,
    /// Each distinct target's check kind, for [`Checker::states`].
    kinds: Vec<&'static str>,
    /// Told once every probed target's first probe ended (see
    /// [`Checker::first_round`]).
    first_round: Option<oneshot::Receiver<()>>,
    /// The thread (`None`: it could not be started, see [`Checker::start`]).
    thread: Option<std::thread::JoinHandle<()>>,
    /// Told when the thread's runtime is gone (dropped: the thread panicked).
    done: oneshot::Receiver<()>,
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

/// An endpoint's health before its first probe: up (fail-open); its first
/// probe's result is its state (as gdnsd's first round of monitoring), and
/// from then on it changes only after `fall` failures, or `rise` successes,
/// in a row.
fn unprobed(check: &CheckSpec) -> Hysteresis {
    Hysteresis::new(check.rise, check.fall, true).first_result_is_state()
}

/// The live set of the targets as given, from the distinct ones' health.
fn live_set(of_entry: &[usize], health: &[Hysteresis]) -> LiveSet {
    LiveSet {
        up: of_entry
            .iter()
            .map(|&i| health.get(i).is_none_or(Hysteresis::is_up))
            .collect(),
    }
}

/// Until some tcp probe's connect may have ended (never without the driver).
async fn tcp_ready(connects: Option<&Connects>) -> std::io::Result<()> {
    match connects {
        Some(c) => c.ready().await,
        None => std::future::pending().await,
    }
}

impl Checker {
    /// Starts one task checking every target (each distinct target once; its
    /// labels every service/endpoint that uses it), at most `max_in_flight`
    /// probes at once, each target's first probe jittered within its
    /// interval. Every target starts up (fail-open) and moves by rise/fall
    /// hysteresis. The task runs on a thread of its own with a
    /// single-threaded runtime; when the system refuses a thread or a
    /// runtime, that is logged and no target is probed (all stay up:
    /// fail-open).
    pub fn start(
        targets: Vec<(Target, Vec<Label>)>,
        max_in_flight: usize,
        cancel: CancellationToken,
    ) -> (Checker, watch::Receiver<Arc<LiveSet>>) {
        let d = distinct(targets);
        let health: Vec<Hysteresis> = d.targets.iter().map(|t| unprobed(&t.check)).collect();
        let (tx, rx) = watch::channel(Arc::new(live_set(&d.of_entry, &health)));
        let board = Arc::new(Board::new(d.labels, unix_now()));
        let kinds = d.targets.iter().map(|t| t.check.probe.kind()).collect();
        board.set_bound(max_in_flight.max(1));
        let (round_done, first_round) = oneshot::channel();
        let unprobed = d
            .targets
            .iter()
            .filter(|t| t.check.probe != Probe::None)
            .count();
        let run = Run {
            unprobed,
            round_done: Some(round_done),
            targets: Arc::new(d.targets),
            of_entry: d.of_entry,
            health,
            board: Arc::clone(&board),
            tx,
            changed: false,
        };
        let (finished, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("dnslb-checker".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        rt.block_on(run.run(max_in_flight, cancel));
                        drop(rt);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the endpoint checker's runtime: no endpoint is checked");
                    }
                }
                let _ = finished.send(());
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the endpoint checker's thread: no endpoint is checked");
                None
            }
        };
        (
            Checker {
                board,
                kinds,
                first_round: Some(first_round),
                thread,
                done,
            },
            rx,
        )
    }

    /// Prometheus lines: `dnslb_ts_endpoint_up{service,endpoint}` 0|1,
    /// `dnslb_ts_endpoint_checks_total{service,endpoint,result="ok|fail|timeout"}`
    /// and the probes in flight (`dnslb_ts_checks_in_flight`, its `_peak`
    /// and `_bound`).
    pub fn write_prometheus(&self, out: &mut String) {
        self.board.write_prometheus(out);
        self.board.write_in_flight(out);
    }

    /// The end of the first round (once; `None` after): ready when every
    /// probed target's first probe ended, each its state, and the live set
    /// of that round published if it differs from the start's (the round's
    /// probes all start at once);
    /// dropped unsent if the task could not start or ended first.
    pub fn first_round(&mut self) -> Option<oneshot::Receiver<()>> {
        self.first_round.take()
    }

    /// For `dnslb status`: every endpoint of every service, its check's
    /// kind, up or down, and since when.
    #[must_use]
    pub fn states(&self) -> Vec<EndpointState> {
        self.board
            .states()
            .into_iter()
            .map(|(i, label, up, since_unix)| EndpointState {
                label,
                check: self.kinds.get(i).copied().unwrap_or("none"),
                up,
                since_unix,
            })
            .collect()
    }

    /// Waits for the task to end (after its token is cancelled).
    pub async fn join(self) {
        let Some(thread) = self.thread else {
            return;
        };
        // Sent once its runtime is dropped: the thread is ending; dropped
        // unsent when it panicked (`join` then says so).
        let _ = self.done.await;
        if thread.join().is_err() {
            tracing::error!("endpoint checker thread failed");
        }
    }
}

/// The least time between two live sets published: a burst of changes (every
/// endpoint of a TS going down at start, or after a pause) is published
/// once, not once per endpoint (each publication costs the live set's
/// length, and the answer sets' rebuild behind it).
const PUBLISH_GAP: Duration = Duration::from_millis(20);

/// The task's state.
struct Run {
    targets: Arc<Vec<Target>>,
    of_entry: Vec<usize>,
    health: Vec<Hysteresis>,
    board: Arc<Board>,
    tx: watch::Sender<Arc<LiveSet>>,
    /// Some target went up or down since the last live set published.
    changed: bool,
    /// Probed targets whose first probe has not ended yet.
    unprobed: usize,
    /// Told (and taken) when `unprobed` reaches 0.
    round_done: Option<oneshot::Sender<()>>,
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
        // Nothing to probe: the first round is over.
        self.end_round_if_done();
        let targets = Arc::clone(&self.targets);
        // The tcp probes' driver (without it, they run as futures below).
        let mut connects = match Connects::new(targets.len()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the tcp checks' epoll set: each tcp check runs as a task's future");
                None
            }
        };
        // The probes ended and not yet settled (kept: no allocation per batch).
        let mut done: Vec<(usize, ProbeResult)> = Vec::new();
        // Each other probe in flight, with the target it is for.
        let mut probes = FuturesUnordered::new();
        let ms_since = |start: Instant| -> u64 {
            u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        // One timer for the next due probe or deadline, moved only when that
        // changes.
        let sleep = tokio::time::sleep_until(start);
        tokio::pin!(sleep);
        let mut armed: Option<u64> = None;
        // When the last live set was published, and whether the timer for
        // the next (after [`PUBLISH_GAP`]) runs.
        let mut published = Instant::now();
        let publish = tokio::time::sleep_until(start);
        tokio::pin!(publish);
        let mut publish_armed = false;
        loop {
            let now = ms_since(start);
            if let Some(c) = connects.as_mut() {
                c.expire(now, &mut done);
            }
            self.settle_all(&mut done, &mut plan, now);
            while let Some(i) = plan.take_due(now) {
                let target = targets.get(i);
                if let (Some(c), Some(t)) = (connects.as_mut(), target)
                    && let Probe::Tcp { port } = t.check.probe
                {
                    let to = SocketAddr::new(t.addr, port);
                    if let Some(result) = c.start(i, to, now, t.check.timeout_ms) {
                        self.settle(i, result);
                        plan.finished(i, now);
                    }
                    continue;
                }
                probes.push(async move {
                    let result = match target {
                        Some(t) => AssertUnwindSafe(probe(t)).catch_unwind().await,
                        None => Ok(ProbeResult::Ok),
                    };
                    (i, result)
                });
            }
            // Counted from the probes themselves, not from the plan.
            let tcp = connects.as_ref().map_or(0, Connects::in_flight);
            self.board.set_in_flight(probes.len() + tcp);
            let deadline = connects.as_mut().and_then(Connects::next_deadline);
            let wake = match (plan.next_wake(), deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if wake != armed {
                if let Some(at) = wake {
                    sleep.as_mut().reset(start + Duration::from_millis(at));
                }
                armed = wake;
            }
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                ready = tcp_ready(connects.as_ref()), if tcp > 0 => {
                    let read = match ready {
                        Ok(()) => connects.as_mut().map(|c| c.collect(&mut done)),
                        Err(e) => Some(Err(e)),
                    };
                    if let Some(Err(e)) = read {
                        tracing::error!(error = %e, "the tcp checks' epoll set failed: each tcp check runs as a task's future from now on");
                        if let Some(mut c) = connects.take() {
                            c.abandon(&mut done);
                        }
                    }
                }
                Some(first) = probes.next(), if !probes.is_empty() => {
                    // Every probe ended by now, in one go.
                    let mut ended = Some(first);
                    while let Some((i, result)) = ended {
                        // A probe that panicked counts as failed: its target
                        // keeps its place in the plan.
                        let result = result.unwrap_or_else(|_| {
                            tracing::error!(endpoint = ?targets.get(i).map(|t| t.addr), "endpoint probe panicked");
                            ProbeResult::Fail
                        });
                        done.push((i, result));
                        ended = probes.next().now_or_never().flatten();
                    }
                }
                () = &mut sleep, if armed.is_some() => {
                    // Fired: armed again below, even for the same time.
                    armed = None;
                }
                () = &mut publish, if publish_armed => publish_armed = false,
            }
            self.settle_all(&mut done, &mut plan, ms_since(start));
            if self.changed && !publish_armed {
                let at = published + PUBLISH_GAP;
                if Instant::now() >= at {
                    self.publish();
                    published = Instant::now();
                } else {
                    publish.as_mut().reset(at);
                    publish_armed = true;
                }
            }
        }
    }

    /// Settles every probe in `done` (emptied) as ended at `now`: its
    /// result counted, its target's next probe planned.
    fn settle_all(&mut self, done: &mut Vec<(usize, ProbeResult)>, plan: &mut ProbePlan, now: u64) {
        for (i, result) in done.drain(..) {
            self.settle(i, result);
            plan.finished(i, now);
        }
    }

    /// Counts one probe's result and moves its target's health; on a change,
    /// logs it and marks the live set for publication (within
    /// [`PUBLISH_GAP`]).
    fn settle(&mut self, i: usize, result: ProbeResult) {
        self.board.count(i, result);
        let (Some(h), Some(t)) = (self.health.get_mut(i), self.targets.get(i)) else {
            return;
        };
        let first = h.awaits_first();
        if let Some(up) = h.observe(result == ProbeResult::Ok) {
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
            self.changed = true;
        }
        if first {
            self.unprobed = self.unprobed.saturating_sub(1);
            self.end_round_if_done();
        }
    }

    /// When the first round is over (every probed target's first result
    /// in), publishes its live set at once if it changed, and says so, once.
    fn end_round_if_done(&mut self) {
        if self.unprobed > 0 {
            return;
        }
        if let Some(tx) = self.round_done.take() {
            if self.changed {
                self.publish();
            }
            let _ = tx.send(());
        }
    }

    /// Publishes the live set of the targets' health now.
    fn publish(&mut self) {
        self.changed = false;
        self.tx
            .send_replace(Arc::new(live_set(&self.of_entry, &self.health)));
    }
}

#[cfg(test)]
mod tests {
    use super::{Hysteresis, distinct, live_set, unprobed};
    use crate::ts::service::check::spec::{CheckSpec, Label, Probe, Target};

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
        let check = CheckSpec {
            probe: Probe::Tcp { port: 80 },
            interval_ms: 1_000,
            timeout_ms: 500,
            rise: 2,
            fall: 3,
        };
        let mut down = unprobed(&check);
        down.observe(false);
        let health: [Hysteresis; 2] = [unprobed(&check), down];
        assert_eq!(
            live_set(&[0, 1, 0, 1], &health).up,
            [true, false, true, false]
        );
    }
}

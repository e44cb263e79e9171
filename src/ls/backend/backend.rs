//! One backend as the LS sees it: [`Backend`] (address, weight, health,
//! limit, live counters), its plain snapshot ([`BackendView`]) and stats,
//! the clock its stamps count in ([`clock_ms`], [`clock_us`]), whether any
//! of a route's backends has room ([`any_room`]), and one upstream query in
//! flight ([`InFlight`]).
#![allow(clippy::module_inception)]
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::BackendConfig;
use crate::ls::hedge::AdaptiveDelay;
use crate::ls::latency::LatencyHistogram;

use super::health::Health;
use super::{admin, limit};

/// Weight of the newest sample in the latency moving average (1/8, as TCP's SRTT).
const EWMA_SHIFT: u32 = 3;

/// `at` as milliseconds on a process-wide scale (a stamp that fits an
/// atomic), from a base an hour before the first use so that the made-up
/// instants of tests never fall before it.
pub fn clock_ms(at: Instant) -> u64 {
    u64::try_from(since_base(at).as_millis()).unwrap_or(u64::MAX)
}

/// `at` as microseconds on the scale of [`clock_ms`].
pub fn clock_us(at: Instant) -> u64 {
    u64::try_from(since_base(at).as_micros()).unwrap_or(u64::MAX)
}

fn since_base(at: Instant) -> Duration {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    });
    at.saturating_duration_since(*base)
}

/// One upstream server.
#[derive(Debug)]
pub struct Backend {
    /// Name from the config (logs, metrics, EDE text).
    pub name: String,
    /// Where queries go.
    pub addr: SocketAddr,
    /// Share for `weighted-random`.
    pub weight: u32,
    /// Live counters.
    pub stats: BackendStats,
    /// Up or down, and the evidence (probes, lost client queries).
    pub health: Health,
    /// Recent latency, for the adaptive hedge delay.
    pub hedge: AdaptiveDelay,
    /// Its adaptive concurrency limit ([`limit`]).
    pub limit: limit::Limit,
    /// Its state set by hand ([`admin`]).
    pub admin: admin::Admin,
    /// Its probe answers carry an OPT: it speaks EDNS.
    edns: AtomicBool,
    /// How it is reached encrypted (`transport = "tls" | "quic"`); `None`: UDP.
    pub link: Option<Arc<crate::ls::upstream::SecureLink>>,
    /// It is sent a PROXY protocol v2 header (`proxy`).
    pub proxy: bool,
}

/// Counters of one backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Upstream queries sent.
    pub sent: AtomicU64,
    /// Valid responses received.
    pub answered: AtomicU64,
    /// Responses that became the client's answer.
    pub wins: AtomicU64,
    /// Client queries that hit their deadline while this backend was asked.
    pub timeouts: AtomicU64,
    /// Responses with SERVFAIL, or unusable (REFUSED, FORMERR and NOTIMP are
    /// not the backend's errors).
    pub errors: AtomicU64,
    /// Upstream queries in flight now.
    pub outstanding: AtomicU32,
    /// Moving average of response latency, microseconds (0 = no sample yet).
    pub latency_us: AtomicU64,
    /// When it last answered a client query ([`clock_ms`]; 0: never).
    pub last_answer_ms: AtomicU64,
    /// When it last answered a health probe ([`clock_ms`]; 0: never).
    pub last_probe_answer_ms: AtomicU64,
    /// When the newest-sent copy it answered was sent ([`clock_us`]; 0:
    /// none): an answer to a copy sent after another one still unanswered
    /// says that one was lost.
    pub newest_answered_sent_us: AtomicU64,
    /// Response latency histogram.
    pub latency: LatencyHistogram,
}

/// A snapshot of one backend for the ordering functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendView {
    /// Position in the config.
    pub index: usize,
    /// Queries in flight.
    pub outstanding: u32,
    /// Latency average in µs (0 = unknown).
    pub latency_us: u64,
    /// Marked up by health checks.
    pub up: bool,
    /// Configured weight.
    pub weight: u32,
}

impl Backend {
    /// A backend from its config section. With health checks (`probed`) it
    /// starts down and counts as up once a probe has succeeded; without, it
    /// is up from the start.
    pub fn from_config(c: &BackendConfig, probed: bool) -> Self {
        Backend {
            name: c.name.clone(),
            addr: c.addr,
            weight: c.weight,
            stats: BackendStats::default(),
            health: Health::new(probed),
            hedge: AdaptiveDelay::default(),
            limit: limit::Limit::default(),
            admin: admin::Admin::default(),
            edns: AtomicBool::new(false),
            link: crate::ls::upstream::SecureLink::of(c),
            proxy: c.proxy,
        }
    }

    /// Whether it is reached as `c` says (the same transport, and for an
    /// encrypted one the same `tls_name` and `ca`).
    pub fn reached_as(&self, c: &BackendConfig) -> bool {
        let link = match &self.link {
            Some(l) => l.made_from(c),
            None => !c.transport.encrypted(),
        };
        link && self.proxy == c.proxy
    }

    /// Whether its last probe answer carried an OPT (it speaks EDNS).
    pub fn speaks_edns(&self) -> bool {
        self.edns.load(Relaxed)
    }

    /// Notes whether its probe answer carried an OPT.
    pub fn set_speaks_edns(&self, yes: bool) {
        self.edns.store(yes, Relaxed);
    }

    /// A client query it was asked was not answered by its deadline `at`:
    /// timed out, or answered by another backend first and silent since
    /// (rescued, but lost all the same). Counted in `timeouts`, and a
    /// health failure ([`Health::lost`]) unless it answered another client
    /// query or a probe within a query's lifetime of `at` (a query sent while it
    /// restarted, or one the LS's own backlog held up, proves nothing about
    /// a backend that answers).
    pub fn lost(&self, at: Instant) {
        self.stats.timeouts.fetch_add(1, Relaxed);
        // A probe answer is an answer too: a table server back from a
        // restart answers its probes before any client query reaches it
        // (clients that wait for their answers send none meanwhile).
        let last = self
            .stats
            .last_answer_ms
            .load(Relaxed)
            .max(self.stats.last_probe_answer_ms.load(Relaxed));
        let flip = self.health.lost(clock_ms(at), last);
        self.log_flip(flip, "client queries lost");
    }

    /// One health probe's result, applied to its health now ([`Health::observe`]).
    pub fn probed(&self, ok: bool) {
        let now = clock_ms(Instant::now());
        if ok {
            self.stats.last_probe_answer_ms.store(now.max(1), Relaxed);
        }
        let flip = self.health.observe(ok, now);
        self.log_flip(flip, "probe failed");
    }

    /// Logs a change of its health, `why` when it went down.
    fn log_flip(&self, flip: Option<bool>, why: &str) {
        match flip {
            Some(true) => info!(backend = %self.name, addr = %self.addr, "backend up"),
            Some(false) => warn!(backend = %self.name, addr = %self.addr, why, "backend down"),
            None => {}
        }
    }

    /// Whether health checks consider it usable.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// Marks it up or down; returns the previous state.
    pub fn set_up(&self, up: bool) -> bool {
        self.health.set_up(up)
    }

    /// Notes that it answered a copy sent at `sent`.
    pub fn answered_copy_sent(&self, sent: Instant) {
        self.stats
            .newest_answered_sent_us
            .fetch_max(clock_us(sent), Relaxed);
    }

    /// Notes that it answered a client query at `at`.
    pub fn heard_from(&self, at: Instant) {
        self.stats
            .last_answer_ms
            .store(clock_ms(at).max(1), Relaxed);
        self.health.answered();
    }

    /// Whether a probe (or an operator) has ever found it up.
    pub fn is_proven(&self) -> bool {
        self.health.is_proven()
    }

    /// Snapshot for ordering.
    pub fn view(&self, index: usize) -> BackendView {
        BackendView {
            index,
            outstanding: self.stats.outstanding.load(Relaxed),
            latency_us: self.stats.latency_us.load(Relaxed),
            up: self.is_up() && self.admin.get() == admin::AdminState::Auto,
            weight: self.weight,
        }
    }

    /// Records one response latency.
    pub fn observe_latency(&self, rtt: Duration) {
        self.stats.latency.record(rtt);
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.stats.latency_us.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - (old >> EWMA_SHIFT) + (sample >> EWMA_SHIFT)
        };
        self.stats.latency_us.store(new.max(1), Relaxed);
    }

    /// Counts one upstream query in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.begin_at(Instant::now())
    }

    /// [`Backend::begin`] for a query sent at `sent` (the caller's clock).
    pub fn begin_at(self: &Arc<Self>, sent: Instant) -> InFlight {
        self.stats.sent.fetch_add(1, Relaxed);
        self.stats.outstanding.fetch_add(1, Relaxed);
        let slot = self.limit.sent(sent);
        InFlight {
            backend: self.clone(),
            sent,
            slot,
            rescued: false,
            won_by: None,
        }
    }
}

/// Whether a query may be forwarded to one of `backends` at `now`: one
/// that is up has room under its limit ([`limit`]), or none is up (the LS
/// then asks them all anyway).
pub fn any_room(backends: &[Arc<Backend>], now: Instant) -> bool {
    let mut up = backends.iter().filter(|b| b.is_up()).peekable();
    up.peek().is_none() || up.any(|b| b.limit.has_room(now))
}

/// Which backend answered one client query: set by the async driver when
/// one wins, read by that query's other flights when they settle (a copy
/// whose own backend answered the client, a re-ask's lost twin, is no loss
/// of that backend). In the partitioned layout a positive answer excuses
/// every other backend's silence ([`WonBy::set`]). The fast path knows the
/// winner when it retires its flights and needs no cell.
#[derive(Debug, Default)]
pub struct WonBy {
    winner: std::sync::OnceLock<Arc<Backend>>,
    excuses_all: AtomicBool,
}

impl WonBy {
    /// Notes the winner (the first call counts). `excuses_all`: its answer
    /// was positive in the partitioned layout, so the others' silence is
    /// what that layout expects of a backend that does not hold the name
    /// (a TS with `on_miss = "silent"`), not a loss.
    pub fn set(&self, b: &Arc<Backend>, excuses_all: bool) {
        if self.winner.set(b.clone()).is_ok() && excuses_all {
            self.excuses_all.store(true, Relaxed);
        }
    }

    /// Whether backend `b`'s silence is excused by the query's answer.
    fn excuses(&self, b: &Arc<Backend>) -> bool {
        self.excuses_all.load(Relaxed) || self.winner.get().is_some_and(|w| Arc::ptr_eq(w, b))
    }
}

/// One upstream query to a backend, counted in its `outstanding` until the
/// answer arrives or the query's deadline passes — even when the client's
/// query was settled by another backend first (a loser keeps its backend
/// busy, and least-outstanding must see that).
#[derive(Debug)]
pub struct InFlight {
    backend: Arc<Backend>,
    sent: Instant,
    /// The slot its backend's limit counted it in ([`limit::Limit::sent`]:
    /// taken out of that slot when it ends, with no clock arithmetic);
    /// `None` when the limit was off.
    slot: Option<u64>,
    /// Its client was answered by another backend before its deadline.
    rescued: bool,
    /// Who answered its client, when the driver keeps count ([`WonBy`]).
    won_by: Option<Arc<WonBy>>,
}

impl InFlight {
    /// The backend asked.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// When the query was sent (the runtime's clock, like query deadlines).
    pub fn sent(&self) -> Instant {
        self.sent
    }

    /// Notes that its client was answered by another backend before the
    /// deadline (the driver calls this when it abandons the query early):
    /// if it is still unanswered at [`InFlight::settle`]'s deadline, it is a
    /// loss of its backend ([`Backend::lost`]).
    pub fn rescued(&mut self) {
        self.rescued = true;
    }

    /// Ends a query its client no longer waits for (a hedge's loser, one
    /// past its deadline): releases the backend's in-flight count; settled
    /// before `deadline` (its answer came), feeds its latency figures with
    /// how long it took (with `hedge_pct`, its adaptive hedge delay too). At
    /// or past the deadline no answer came: nothing is fed (a timeout is not
    /// a latency; it is counted as one). A [rescued](InFlight::rescued)
    /// query settled at or past its deadline is a loss of its backend
    /// ([`Backend::lost`]) unless its client's answer excuses it
    /// ([`WonBy`]); one settled before it (its answer came, after the
    /// winner's) counts as heard from.
    pub fn settle(self, now: Instant, deadline: Instant, hedge_pct: Option<f64>) {
        let excused = self
            .won_by
            .as_ref()
            .is_some_and(|w| w.excuses(&self.backend));
        let answered = now < deadline;
        if self.rescued && !excused {
            if answered {
                // Its answer came in time, only after another backend's: it
                // answers, however often it loses the race.
                self.backend.heard_from(now);
            } else {
                self.backend.lost(deadline);
            }
        }
        if answered {
            let rtt = now.saturating_duration_since(self.sent);
            self.backend.observe_latency(rtt);
            if let Some(pct) = hedge_pct {
                self.backend.hedge.observe(rtt, pct);
            }
        }
    }

    /// Ties it to its client query's [`WonBy`].
    #[must_use]
    pub fn for_query(mut self, won_by: Arc<WonBy>) -> Self {
        self.won_by = Some(won_by);
        self
    }

    /// Time since the query was sent.
    pub fn elapsed(&self) -> Duration {
        self.sent.elapsed()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.stats.outstanding.fetch_sub(1, Relaxed);
        match self.slot {
            Some(slot) => self.backend.limit.ended_in(slot),
            None => self.backend.limit.ended(self.sent),
        }
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;
    use crate::config::BackendConfig;

    const MS: Duration = Duration::from_millis(1);

    fn backend(fall: u32) -> Arc<Backend> {
        let c = BackendConfig {
            name: "b".into(),
            addr: "127.0.0.1:53".parse().unwrap(),
            weight: 1,
            notify_key: None,
            transport: Default::default(),
            tls_name: None,
            ca: None,
            proxy: false,
        };
        let b = Arc::new(Backend::from_config(&c, false));
        b.health.set_rule(fall, 1, 1500 * MS);
        b
    }

    #[test]
    fn a_rescued_query_still_silent_at_its_deadline_is_a_loss() {
        let b = backend(2);
        let t0 = Instant::now();
        let deadline = t0 + 1500 * MS;
        // Rescued, then its own answer came before the deadline: no loss.
        let mut f = b.begin();
        f.rescued();
        f.settle(t0 + 40 * MS, deadline, None);
        // Given up at the deadline (the driver counted that timeout itself).
        b.begin().settle(deadline, deadline, None);
        assert_eq!(b.stats.timeouts.load(Relaxed), 0);
        // The answer that came in time clears what was heard before it: a
        // loss now is within a query's lifetime of it, so it is counted,
        // not held against the backend. Past that window, losses count.
        let deadline = t0 + 4000 * MS;
        // Rescued and silent until the deadline (or answering after it): losses.
        for late in [0, 700] {
            let mut f = b.begin();
            f.rescued();
            f.settle(deadline + late * MS, deadline, None);
        }
        assert_eq!(b.stats.timeouts.load(Relaxed), 2);
        assert!(!b.is_up(), "fall 2: marked down");
        assert_eq!(b.stats.outstanding.load(Relaxed), 0);
    }

    #[test]
    fn losses_of_a_backend_that_answers_client_queries_are_counted_not_held_against_it() {
        let b = backend(1);
        let t0 = Instant::now();
        b.heard_from(t0);
        b.lost(t0 + 1000 * MS);
        assert_eq!(b.stats.timeouts.load(Relaxed), 1);
        assert!(b.is_up(), "answered within a query's lifetime");
        b.lost(t0 + 1600 * MS);
        assert!(!b.is_up(), "silent for longer");
        // Without health checks a loss is only counted.
        let off = backend(0);
        off.lost(t0);
        assert!(off.is_up());
        assert_eq!(off.stats.timeouts.load(Relaxed), 1);
    }

    /// Hostile read H2: a table server back from a restart answers its
    /// probes before any client query reaches it (clients waiting for the
    /// answers of the queries lost meanwhile send none): the losses of its
    /// restart, counted at their deadlines, must not mark it down then.
    #[test]
    fn a_probe_answer_excuses_the_losses_of_a_restart() {
        let b = backend(1);
        b.probed(true);
        let now = Instant::now();
        b.lost(now);
        b.lost(now);
        assert_eq!(b.stats.timeouts.load(Relaxed), 2);
        assert!(b.is_up(), "answered a probe within a query's lifetime");
    }
}

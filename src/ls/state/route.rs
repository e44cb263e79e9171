//! Where a query goes ([`Route`]): a pool's backends, policy, sticky memory,
//! cache and counters, or every backend under the `[ls]` policy; and what a
//! route does for a query: its candidates in order, its pacing of a
//! [`Resolution`], the judging of one backend response (the one place both
//! drivers account for an answer).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::rr::Name;
use smallvec::SmallVec;

use super::{Job, LsMetrics, Policy, PoolMetrics};
use crate::config::{HedgeDelay, Layout, Order, Strategy};
use crate::dns::{self, WireHeader};
use crate::ls::backend::admin::AdminState;
use crate::ls::backend::{Backend, clock_ms, clock_us, limit};
use crate::ls::cache::PacketCache;
use crate::ls::hedge::{self, HedgeBudget};
use crate::ls::order::{self, OrderKey};
use crate::ls::resolution::{self, Heard, Pacing, Resolution, Verdict};
use crate::ls::sticky::StickyTable;

/// The least wait before a silent copy is looked at for proof of its loss.
const LOSS_AFTER_MIN: Duration = Duration::from_millis(1);

/// Where a query goes: the backends it may be asked of and the policy it is
/// asked by. A pool's ([`LsState::pools`](super::LsState::pools): its `[[ls.pool]]`'s backends, its
/// own keys over `[ls]`'s), or the route of a name under no pool's zone
/// ([`LsState::all`](super::LsState::all): every backend, the `[ls]` policy). Backend indexes in a
/// query's [`Resolution`] are the route's; its backends are the very
/// [`Backend`]s of [`LsState::backends`](super::LsState::backends), so health and counters are one per
/// backend, shared by every route naming it.
pub struct Route {
    /// The pool's name; `None` for [`LsState::all`](super::LsState::all).
    pub name: Option<String>,
    /// The zones the pool serves (none for [`LsState::all`](super::LsState::all)).
    pub zones: Vec<Name>,
    /// Its policy.
    pub policy: Policy,
    /// Its backends, in config order.
    pub backends: Vec<Arc<Backend>>,
    backend_hashes: Vec<u64>,
    /// Only under the `sticky` order.
    pub(in crate::ls) sticky: Option<StickyTable>,
    tick: AtomicU64,
    /// A pool's counters (none for [`LsState::all`](super::LsState::all): the LS's are its).
    pub counters: Option<Arc<PoolMetrics>>,
    /// The packet cache its answers go to: the pool's own, or the
    /// `[ls.cache]` (the same `Arc` as [`LsState::cache`](super::LsState::cache)); `None`: none.
    pub cache: Option<Arc<PacketCache>>,
    /// The LS's hedge budget, shared by every route.
    budget: Arc<HedgeBudget>,
    metrics: Arc<LsMetrics>,
}

impl Route {
    /// The route of `backends` under `policy`, its answers going to `cache`,
    /// hedging from the LS's `budget`, counted in `metrics`; no pool's name,
    /// zones or counters (a pool sets them).
    pub(super) fn new(
        policy: Policy,
        backends: Vec<Arc<Backend>>,
        sticky_size: usize,
        cache: Option<Arc<PacketCache>>,
        budget: Arc<HedgeBudget>,
        metrics: Arc<LsMetrics>,
    ) -> Self {
        Route {
            name: None,
            zones: Vec::new(),
            backend_hashes: backends
                .iter()
                .map(|b| order::name_hash(b.name.as_bytes()))
                .collect(),
            backends,
            // Allocated whole: only when the order reads it.
            sticky: (policy.order == Order::Sticky).then(|| StickyTable::new(sticky_size)),
            policy,
            tick: AtomicU64::new(0),
            counters: None,
            cache,
            budget,
            metrics,
        }
    }

    /// Whether its cache is `ls_cache`, the `[ls.cache]` (no cache of its own).
    pub(super) fn shares_ls_cache(&self, ls_cache: Option<&Arc<PacketCache>>) -> bool {
        match (&self.cache, ls_cache) {
            (Some(mine), Some(ls)) => Arc::ptr_eq(mine, ls),
            (None, _) => true,
            _ => false,
        }
    }

    /// Whether a backend of it is up: while none is, a name whose refresh
    /// failed is answered stale at once (RFC 8767's failure-recheck timer);
    /// while one is, it is asked.
    pub(crate) fn any_up(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.is_up() && b.admin.get() == AdminState::Auto)
    }

    /// The candidate sequence for `job`, written into `c` (a resolution's
    /// own list: none made and copied in); returns how many of them, at
    /// its end, are a last resort ([`Resolution::restart_with`]).
    ///
    /// A backend drained by hand gets no new queries while another is left
    /// under `replicated` (any other holds its names). Under `partitioned`
    /// no other holds its names, so it stays a candidate (if health says
    /// it is up), the last, asked only once the others have answered:
    /// drained, its names are still answered, never made up.
    fn candidates_into(
        &self,
        job: &Job,
        now: tokio::time::Instant,
        c: &mut order::Candidates,
    ) -> usize {
        let views: SmallVec<[_; order::INLINE]> = self
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| b.view(i))
            .collect();
        let key = OrderKey {
            name_hash: job.name_hash,
            tick: self.tick.fetch_add(1, Relaxed),
            sticky: self.sticky.as_ref().and_then(|t| t.get(job.name_hash)),
            random: if self.policy.order == Order::WeightedRandom {
                rand::random()
            } else {
                0
            },
            backend_hashes: &self.backend_hashes,
        };
        order::order_into(self.policy.order, &views, &key, c);
        let drained = |i: usize| {
            self.backends
                .get(i)
                .is_some_and(|b| b.admin.get() == AdminState::Drain)
        };
        // Under overload, those with room first ([`limit`]).
        let room = |i: usize| self.backends.get(i).is_none_or(|b| b.limit.has_room(now));
        if !c.iter().any(|&i| !drained(i)) {
            // Every candidate drained: asked as if none were.
            limit::room_first(c, room);
            return 0;
        }
        if self.policy.layout == Layout::Replicated {
            c.retain(|i| !drained(*i));
            limit::room_first(c, room);
            return 0;
        }
        let mut last: SmallVec<[usize; order::INLINE]> =
            c.iter().copied().filter(|&i| drained(i)).collect();
        c.retain(|i| !drained(*i));
        limit::room_first(c, room);
        for (i, b) in self.backends.iter().enumerate() {
            if drained(i) && b.is_up() && !last.contains(&i) {
                last.push(i);
            }
        }
        c.extend_from_slice(&last);
        last.len()
    }

    /// How long to wait on backend `i` before hedging to the next.
    fn hedge_delay(&self, i: usize) -> Duration {
        let p = &self.policy;
        match p.hedge_delay {
            HedgeDelay::Fixed(ms) => Duration::from_millis(ms),
            HedgeDelay::Adaptive => {
                let measured = self.backends.get(i).and_then(|b| b.hedge.percentile());
                hedge::clamp_delay(measured, p.hedge_min, p.hedge_max)
            }
        }
    }

    /// The percentile of the adaptive hedge delay, when it is in use.
    pub(in crate::ls) fn adaptive_hedge_pct(&self) -> Option<f64> {
        (self.policy.hedge_delay == HedgeDelay::Adaptive).then_some(self.policy.hedge_percentile)
    }

    /// Feeds one latency sample to the adaptive hedge delay.
    fn observe_hedge_sample(&self, i: usize, rtt: Duration, now: tokio::time::Instant) {
        if self.policy.hedge_delay == HedgeDelay::Adaptive
            && let Some(b) = self.backends.get(i)
        {
            b.hedge
                .observe_at(rtt, self.policy.hedge_percentile, now.into_std());
        }
    }

    /// A new query's resolution: its candidates in order, its deadline
    /// `timeout_ms` from `now`.
    pub(crate) fn resolution(&self, job: &Job, now: tokio::time::Instant) -> Resolution {
        let mut candidates = order::Candidates::new();
        let last = self.candidates_into(job, now, &mut candidates);
        let mut res = Resolution::new(
            self.policy.strategy,
            self.policy.layout,
            &candidates,
            self.backends.len(),
            now,
            now + self.policy.timeout,
        );
        res.set_last_resort(last);
        res
    }

    /// [`Route::resolution`] made in `res` (a resolution whose query
    /// ended, reused in place: [`Resolution::restart`]).
    pub(crate) fn restart_resolution(
        &self,
        job: &Job,
        now: tokio::time::Instant,
        res: &mut Resolution,
    ) {
        res.restart_with(
            self.policy.strategy,
            self.policy.layout,
            self.backends.len(),
            (now, now + self.policy.timeout),
            |c| self.candidates_into(job, now, c),
        );
    }

    /// Counts backend `i`'s response to one upstream query — answered, its
    /// latency, the adaptive hedge delay's sample — and judges it by its
    /// header (`None`: unreadable or cut short, a failure). A failure also
    /// counts as an error of the backend. The one place both the UDP fast
    /// path and the async path account for an answer.
    pub(crate) fn judge_response(
        &self,
        i: usize,
        at: tokio::time::Instant,
        rtt: Duration,
        header: Option<WireHeader>,
    ) -> Verdict {
        let Some(b) = self.backends.get(i) else {
            return Verdict::Failed;
        };
        b.stats.answered.fetch_add(1, Relaxed);
        b.heard_from(at);
        b.answered_copy_sent(at.checked_sub(rtt).unwrap_or(at));
        b.observe_latency(rtt);
        b.limit.sample(rtt, at);
        self.observe_hedge_sample(i, rtt, at);
        let v = header.map_or(Verdict::Failed, |h| {
            if dns::rejects_query(&h) {
                // The query may be at fault, not the backend: another
                // backend is asked, and the rejection passed on only when
                // every backend asked rejected it. No error of the backend.
                return Verdict::Rejected;
            }
            resolution::classify(&h, self.policy.layout)
        });
        if v == Verdict::Failed {
            b.stats.errors.fetch_add(1, Relaxed);
        }
        v
    }

    /// Takes a budget token for a delay-triggered hedge; false (and counted)
    /// when the budget is spent.
    fn hedge_allowed(&self) -> bool {
        let ok = self.budget.try_spend();
        if !ok {
            self.metrics.hedges_refused.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Remembers a positive answer's backend for the sticky order.
    pub(in crate::ls) fn remember(&self, job: &Job, backend: usize, resp: &[u8]) {
        if let Some(sticky) = &self.sticky
            && WireHeader::read(resp).is_some_and(|h| h.rcode() == 0)
        {
            sticky.set(job.name_hash, backend);
        }
    }
}

impl Pacing for Route {
    fn spacing(&self, i: usize) -> Option<Duration> {
        match self.policy.strategy {
            Strategy::Hedge => Some(self.hedge_delay(i)),
            Strategy::Sequential => Some(self.policy.try_timeout),
            Strategy::Race => None,
        }
    }

    fn try_timeout(&self) -> Duration {
        self.policy.try_timeout
    }

    fn reask_after(&self, i: usize) -> Duration {
        // Sequential waits its per-try timeout; race has no spacing of its
        // own and re-asks at the hedge delay, as hedge does. Never before
        // twice the backend's measured latency (its moving average, fed by
        // answers only): a copy to a backend that answers, slowly, is not
        // lost yet, and a re-ask would only add to its load.
        let base = self.spacing(i).unwrap_or_else(|| self.hedge_delay(i));
        let typical = self
            .backends
            .get(i)
            .map_or(0, |b| b.stats.latency_us.load(Relaxed));
        base.max(Duration::from_micros(typical.saturating_mul(2)))
    }

    fn loss_after(&self, i: usize) -> Duration {
        let typical = self
            .backends
            .get(i)
            .map_or(0, |b| b.stats.latency_us.load(Relaxed));
        self.hedge_delay(i)
            .max(Duration::from_micros(typical.saturating_mul(2)))
            .max(LOSS_AFTER_MIN)
    }

    fn take_hedge_token(&self) -> bool {
        self.hedge_allowed()
    }

    fn heard(&self, i: usize, sent: tokio::time::Instant) -> Heard {
        let Some(b) = self.backends.get(i) else {
            return Heard::Away;
        };
        if b.stats.newest_answered_sent_us.load(Relaxed) > clock_us(sent) {
            return Heard::Later;
        }
        // An answer that left the backend before `sent` may land just
        // after it: twice its usual latency earlier still counts. One
        // never heard from, or silent for longer than a restart takes
        // (twice the query's deadline), is away: its silence is the
        // mission's "nobody answers", and its re-asks take tokens.
        let typical = Duration::from_micros(b.stats.latency_us.load(Relaxed).saturating_mul(2));
        let from = sent.checked_sub(typical).unwrap_or(sent);
        let away = sent.checked_sub(self.policy.timeout * 2).unwrap_or(sent);
        let last = b.stats.last_answer_ms.load(Relaxed);
        if last == 0 || last < clock_ms(away) {
            Heard::Away
        } else if last >= clock_ms(from) {
            Heard::Earlier
        } else {
            Heard::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::ls::balancer::Balancer;
    use crate::ls::door::Admission;
    use crate::server::Request;

    /// A balancer over backends `b0..b2` (fixed order, all up) under
    /// `layout`, and a query it admitted.
    fn three(layout: &str) -> (Balancer, Job) {
        let mut text = format!("[ls]\nworkers = 1\norder = \"fixed\"\nlayout = \"{layout}\"\n");
        for i in 0..3 {
            text += &format!(
                "[[ls.backend]]\nname = \"b{i}\"\naddr = \"127.0.0.1:{}\"\n",
                20 + i
            );
        }
        let config = Config::from_toml(&text, Path::new("route.toml")).expect("test config");
        let b = Balancer::new(&config.ls.expect("[ls]"));
        for backend in &b.state().backends {
            backend.set_up(true);
        }
        // `www.example.com A`, ID 0x1234, RD.
        let mut raw = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["www", "example", "com"] {
            raw.push(label.len() as u8);
            raw.extend_from_slice(label.as_bytes());
        }
        raw.extend_from_slice(&[0, 0, 1, 0, 1]);
        let req = Request::udp(&raw, SocketAddr::from(([127, 0, 0, 1], 5353)));
        let job = match b.admit(req) {
            Admission::Forward(_, admitted) => admitted.into_job(raw.clone()),
            Admission::Reply(_) => panic!("the test query was not forwarded"),
        };
        (b, job)
    }

    /// The candidates of `job` on `b`'s route, and how many at the end are
    /// a last resort.
    fn candidates(b: &Balancer, job: &Job) -> (Vec<usize>, usize) {
        let mut c = order::Candidates::new();
        let last = b
            .state()
            .all
            .candidates_into(job, tokio::time::Instant::now(), &mut c);
        (c.to_vec(), last)
    }

    #[test]
    fn a_drained_partition_is_the_last_candidate_a_drained_replica_none() {
        let (b, job) = three("partitioned");
        assert_eq!(candidates(&b, &job), (vec![0, 1, 2], 0));
        b.set_admin("b0", AdminState::Drain);
        assert_eq!(
            candidates(&b, &job),
            (vec![1, 2, 0], 1),
            "its names are no one else's: asked last"
        );
        b.set_admin("b2", AdminState::Drain);
        assert_eq!(candidates(&b, &job), (vec![1, 0, 2], 2));
        // Down by health and drained: down (not asked while others are up).
        b.state().backends[0].set_up(false);
        assert_eq!(candidates(&b, &job), (vec![1, 2], 1));
        // Down by hand: not a candidate.
        b.set_admin("b2", AdminState::Down);
        assert_eq!(candidates(&b, &job), (vec![1], 0));
        // Every candidate drained: asked as any.
        let (b, job) = three("partitioned");
        for n in ["b0", "b1", "b2"] {
            b.set_admin(n, AdminState::Drain);
        }
        assert_eq!(candidates(&b, &job), (vec![0, 1, 2], 0));

        let (b, job) = three("replicated");
        b.set_admin("b0", AdminState::Drain);
        assert_eq!(
            candidates(&b, &job),
            (vec![1, 2], 0),
            "any other holds its names"
        );
        for n in ["b1", "b2"] {
            b.set_admin(n, AdminState::Drain);
        }
        assert_eq!(candidates(&b, &job), (vec![0, 1, 2], 0));
    }

    /// The resolution a route makes knows its last resort: a drained
    /// partition is asked once the others have answered.
    #[test]
    fn the_resolution_asks_a_drained_partition_after_the_others_answered() {
        let (b, job) = three("partitioned");
        b.set_admin("b0", AdminState::Drain);
        let state = b.state();
        let route = state.route(&job);
        let t0 = tokio::time::Instant::now();
        let mut res = route.resolution(&job, t0);
        let mut asked = Vec::new();
        while let resolution::Step::Launch { backend, .. } = res.poll(t0, route) {
            asked.push(backend);
        }
        assert!(!asked.contains(&0), "{asked:?}");
        for i in [1, 2] {
            if !asked.contains(&i) {
                assert!(matches!(
                    res.poll(t0, route),
                    resolution::Step::Launch { .. }
                ));
            }
            res.on_outcome(i, Verdict::NxDomain);
        }
        assert_eq!(
            res.poll(t0, route),
            resolution::Step::Launch {
                backend: 0,
                hedge: false
            }
        );
    }
}

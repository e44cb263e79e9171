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
use crate::config::{HedgeDelay, Order, Strategy};
use crate::dns::{self, WireHeader};
use crate::ls::backend::admin::AdminState;
use crate::ls::backend::{Backend, clock_ms, clock_us, limit};
use crate::ls::cache::PacketCache;
use crate::ls::hedge::{self, HedgeBudget};
use crate::ls::order::{self, OrderKey};
use crate::ls::resolution::{self, Heard, Pacing, Resolution, Verdict};
use crate::ls::sticky::StickyTable;

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
    /// own list: none made and copied in).
    fn candidates_into(&self, job: &Job, now: tokio::time::Instant, c: &mut order::Candidates) {
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
        // Drained by hand: no new queries, while another backend is left.
        let drained = |i: &usize| {
            self.backends
                .get(*i)
                .is_some_and(|b| b.admin.get() == AdminState::Drain)
        };
        if c.iter().any(|i| !drained(i)) {
            c.retain(|i| !drained(i));
        }
        // Under overload, those with room first ([`limit`]).
        let room = |i: usize| self.backends.get(i).is_none_or(|b| b.limit.has_room(now));
        limit::room_first(c, room);
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
        self.candidates_into(job, now, &mut candidates);
        Resolution::new(
            self.policy.strategy,
            self.policy.layout,
            &candidates,
            self.backends.len(),
            now,
            now + self.policy.timeout,
        )
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

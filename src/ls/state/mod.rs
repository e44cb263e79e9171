//! The LS's floor: what every other part of the balancer reads. The policy
//! ([`Policy`]), the counters ([`LsMetrics`], and a pool's [`PoolMetrics`]),
//! one client query being resolved ([`Job`]), where a query goes ([`Route`]:
//! a pool's backends and policy, or every backend under the `[ls]` policy),
//! and the snapshot a query runs on ([`LsState`]: policy, backends, routes
//! and the suffix table of the pools' zones, health settings, rate limiter,
//! hedge budget, upstream pool, loop mark, packet cache), replaced whole on
//! reload. Also a route's pacing of a [`Resolution`] and the judging of one
//! backend response, the one place both drivers account for an answer.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::rr::Name;
use smallvec::SmallVec;

use super::backend::health::HealthPolicy;
use super::backend::{Backend, limit};
use super::cache::PacketCache;
use super::hedge::{self, HedgeBudget};
use super::latency::LatencyHistogram;
use super::loopmark::Mark;
use super::order::{self, OrderKey};
use super::pool::UpstreamPool;
use super::resolution::{self, Pacing, Resolution, Verdict};
use super::sticky::StickyTable;
use super::suffix::SuffixTable;
use super::upstream::DropCounters;
use crate::config::{
    CacheConfig, HedgeDelay, Layout, LsConfig, OnTimeout, Order, PoolConfig, Strategy,
};
use crate::dns::{self, HEADER_LEN, Transport, WireHeader};
use crate::guard::rate::RateLimiter;
use crate::logging::QueryLine;
use crate::server::Reply;

/// The LS's policy, read from `[ls]` (or, for a pool, from its `[[ls.pool]]`
/// where it sets a key).
#[derive(Debug, Clone)]
pub struct Policy {
    /// race | hedge | sequential.
    pub strategy: Strategy,
    /// Who goes first.
    pub order: Order,
    /// partitioned | replicated.
    pub layout: Layout,
    /// Deadline of a client query.
    pub timeout: Duration,
    /// What to answer at the deadline.
    pub on_timeout: OnTimeout,
    /// Negative TTL of made-up answers.
    pub synth_ttl: u32,
    /// Per-backend wait in `sequential`.
    pub try_timeout: Duration,
    /// Hedge delay: fixed or adaptive.
    pub hedge_delay: HedgeDelay,
    /// Lower clamp of the adaptive delay.
    pub hedge_min: Duration,
    /// Upper clamp of the adaptive delay (and the delay before enough samples).
    pub hedge_max: Duration,
    /// Latency percentile the adaptive delay waits for.
    pub hedge_percentile: f64,
}

impl Policy {
    /// The policy of an `[ls]` section.
    pub fn from_config(c: &LsConfig) -> Self {
        Policy {
            strategy: c.strategy,
            order: c.order,
            layout: c.layout,
            timeout: Duration::from_millis(c.timeout_ms),
            on_timeout: c.on_timeout,
            synth_ttl: c.synth_ttl,
            try_timeout: Duration::from_millis(c.try_timeout_ms),
            hedge_delay: c.hedge_delay_ms,
            hedge_min: Duration::from_millis(c.hedge_min_ms),
            hedge_max: Duration::from_millis(c.hedge_max_ms),
            hedge_percentile: c.hedge_percentile,
        }
    }

    /// The policy of pool `p` of `[ls]` section `c`: the keys the pool sets,
    /// the `[ls]` values for the others.
    pub fn for_pool(c: &LsConfig, p: &PoolConfig) -> Self {
        Policy {
            strategy: c.strategy_for(p),
            order: c.order_for(p),
            layout: c.layout_for(p),
            timeout: Duration::from_millis(c.timeout_ms_for(p)),
            on_timeout: c.on_timeout_for(p),
            ..Policy::from_config(c)
        }
    }
}

/// Slots of a counter of answers by rcode: every rcode from 0 to 23
/// (BADCOOKIE) by its full value, and [`OTHER_RCODE`] for any above.
pub const RCODE_SLOTS: usize = 25;

/// The slot of an answers-by-rcode counter that counts every rcode above 23.
pub const OTHER_RCODE: usize = RCODE_SLOTS - 1;

/// Answers counted by rcode, one slot per [`RCODE_SLOTS`].
pub type RcodeCounts = [AtomicU64; RCODE_SLOTS];

/// The full rcode of the message `msg` (RFC 6891 §6.1.3): the header's 4
/// bits, and the upper 8 from its OPT's TTL field when it has an OPT (only
/// an answer with additional records is walked). `None` when the header
/// cannot be read.
pub fn full_rcode(msg: &[u8]) -> Option<u16> {
    let low = u16::from(WireHeader::read(msg)?.rcode());
    if dns::u16_at(msg, 10).is_none_or(|ar| ar == 0) {
        return Some(low);
    }
    let high = dns::walk_message(msg)
        .and_then(|w| w.opt)
        .and_then(|opt| opt.ttl_high_byte(msg))
        .unwrap_or(0);
    Some(u16::from(high) << 4 | low)
}

/// Counts the answer `msg` in `answers` by its full rcode.
pub(crate) fn count_answer(answers: &RcodeCounts, msg: &[u8]) {
    if let Some(rcode) = full_rcode(msg) {
        let slot = usize::from(rcode).min(OTHER_RCODE);
        if let Some(c) = answers.get(slot) {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// Counts `reply` in `answers` by its full rcode.
fn count_rcode(answers: &RcodeCounts, reply: &Reply) {
    if let Reply::One(b) = reply {
        count_answer(answers, b);
    }
}

/// Counters of one pool (`[[ls.pool]]`), kept across reloads while a pool of
/// that name exists.
#[derive(Debug, Default)]
pub struct PoolMetrics {
    /// Client queries routed to the pool.
    pub queries: AtomicU64,
    /// Answers sent to those queries, by full rcode ([`RCODE_SLOTS`]).
    pub answers: RcodeCounts,
    /// Of those queries, answered fresh from the pool's cache.
    pub cache_hits: AtomicU64,
    /// Of those queries, looked up in the pool's cache and forwarded.
    pub cache_misses: AtomicU64,
    /// Of those queries, answered stale from the pool's cache.
    pub cache_stale: AtomicU64,
}

impl PoolMetrics {
    /// Counts a reply by its rcode.
    pub(crate) fn count_reply(&self, reply: &Reply) {
        count_rcode(&self.answers, reply);
    }
}

/// Counters of the LS as a whole.
#[derive(Debug, Default)]
pub struct LsMetrics {
    /// Client queries received (well-formed).
    pub queries: AtomicU64,
    /// Answers sent, by full rcode ([`RCODE_SLOTS`]).
    pub answers: RcodeCounts,
    /// Answers made up at the deadline or after every backend failed.
    pub synthesized: AtomicU64,
    /// Hedges sent after the hedge delay.
    pub hedges: AtomicU64,
    /// Hedges whose answer won.
    pub hedge_wins: AtomicU64,
    /// Hedges not sent because the budget was spent.
    pub hedges_refused: AtomicU64,
    /// Queries refused by the ACL.
    pub refused_acl: AtomicU64,
    /// Queries over the rate limit: dropped, or answered TC=1.
    pub rate_limited: AtomicU64,
    /// Queries refused because they carried this LS's own mark: they went
    /// round a forwarding loop ([`super::loopmark`]).
    pub loops_refused: AtomicU64,
    /// Health probe rounds completed.
    pub health_rounds: AtomicU64,
    /// Reloads (SIGHUP) whose `[ls]` was applied.
    pub reloads_applied: AtomicU64,
    /// Reloads refused (a bad config, or no `[ls]` in it): the old one serves on.
    pub reloads_refused: AtomicU64,
    /// Time from a client query's arrival to its answer (deferred answers).
    pub client_latency: LatencyHistogram,
    /// Upstream responses dropped as not matching.
    pub drops: Arc<DropCounters>,
    /// Client queries shed unanswered: they waited in the socket's queue
    /// longer than the LS's queue bound (overload).
    pub shed_queue: AtomicU64,
    /// Client queries shed with SERVFAIL: `max_inflight` reached.
    pub shed_inflight: AtomicU64,
    /// Client queries shed with SERVFAIL: no backend of their route with
    /// room under its adaptive concurrency limit ([`limit`]).
    pub shed_limit: AtomicU64,
    /// Plain TCP connections closed right after `accept`: the connection cap was full.
    pub tcp_cap_refused: AtomicU64,
    /// Plain TCP connections closed right after `accept`: the client is outside `allow`.
    pub tcp_acl_refused: AtomicU64,
    /// The UDP workers' client sockets (inodes): the queries the kernel
    /// dropped on them, their queues full, are shed too ([`LsMetrics::shed_socket`]).
    pub client_sockets: std::sync::Mutex<Vec<u64>>,
    /// The encrypted listeners' counters, set when `[ls.tls]` or `[ls.https]` is served.
    pub tls: std::sync::OnceLock<Arc<crate::server::tls_stats::TlsStats>>,
}

impl LsMetrics {
    /// Client queries the kernel dropped before a worker could read them,
    /// its socket's queue full: overload that never reached the LS, read
    /// from the kernel's counters now.
    pub fn shed_socket(&self) -> u64 {
        let inodes = self
            .client_sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        crate::server::socket::udp_drops(&inodes)
    }

    /// Counts a forwarded query's reply (by rcode) and its latency.
    pub(crate) fn answered(&self, reply: &Reply, arrived: std::time::Instant) {
        self.count_reply(reply);
        self.client_latency.record(arrived.elapsed());
    }

    /// Counts a reply by its rcode.
    pub(crate) fn count_reply(&self, reply: &Reply) {
        count_rcode(&self.answers, reply);
    }
}

/// One client query being resolved.
#[derive(Debug)]
pub struct Job {
    /// The client's message as received.
    pub raw: Vec<u8>,
    /// The client's ID, restored on the answer.
    pub client_id: u16,
    /// End of the question section in `raw`.
    pub question_end: usize,
    /// How the client came.
    pub transport: Transport,
    /// Hash of the lower-cased name (orders, sticky memory).
    pub name_hash: u64,
    /// The pool it was routed to (an index of [`LsState::pools`]); `None`:
    /// under no pool's zone, it goes to every backend.
    pub route: Option<usize>,
    /// Its line for the query log, when that is on (debug).
    pub log: Option<QueryLine>,
    /// Its route's cache's flush generation when it was admitted
    /// ([`super::cache::PacketCache::generation`]): its answer is not kept
    /// if a flush began since.
    pub cache_generation: u64,
}

impl Job {
    /// Whether the client's message ends at its question: no OPT (the LS
    /// may add one of its own for its loop mark, [`super::loopmark`]).
    pub fn ends_at_question(&self) -> bool {
        self.raw.len() == self.question_end
    }

    /// The raw question section.
    pub fn question(&self) -> &[u8] {
        self.raw
            .get(HEADER_LEN..self.question_end)
            .unwrap_or_default()
    }
}

/// Where a query goes: the backends it may be asked of and the policy it is
/// asked by. A pool's ([`LsState::pools`]: its `[[ls.pool]]`'s backends, its
/// own keys over `[ls]`'s), or the route of a name under no pool's zone
/// ([`LsState::all`]: every backend, the `[ls]` policy). Backend indexes in a
/// query's [`Resolution`] are the route's; its backends are the very
/// [`Backend`]s of [`LsState::backends`], so health and counters are one per
/// backend, shared by every route naming it.
pub struct Route {
    /// The pool's name; `None` for [`LsState::all`].
    pub name: Option<String>,
    /// The zones the pool serves (none for [`LsState::all`]).
    pub zones: Vec<Name>,
    /// Its policy.
    pub policy: Policy,
    /// Its backends, in config order.
    pub backends: Vec<Arc<Backend>>,
    backend_hashes: Vec<u64>,
    /// Only under the `sticky` order.
    pub(super) sticky: Option<StickyTable>,
    tick: AtomicU64,
    /// A pool's counters (none for [`LsState::all`]: the LS's are its).
    pub counters: Option<Arc<PoolMetrics>>,
    /// The packet cache its answers go to: the pool's own, or the
    /// `[ls.cache]` (the same `Arc` as [`LsState::cache`]); `None`: none.
    pub cache: Option<Arc<PacketCache>>,
    /// The LS's hedge budget, shared by every route.
    budget: Arc<HedgeBudget>,
    metrics: Arc<LsMetrics>,
}

impl Route {
    /// Whether its cache is `state`'s `[ls.cache]` (no cache of its own).
    fn shares_ls_cache(&self, state: Option<&LsState>) -> bool {
        match (&self.cache, state.and_then(|s| s.cache.as_ref())) {
            (Some(mine), Some(ls)) => Arc::ptr_eq(mine, ls),
            (None, _) => true,
            _ => false,
        }
    }

    /// Whether a backend of it is up: while none is, a name whose refresh
    /// failed is answered stale at once (RFC 8767's failure-recheck timer);
    /// while one is, it is asked.
    pub(crate) fn any_up(&self) -> bool {
        self.backends.iter().any(|b| b.is_up())
    }

    /// The candidate sequence for `job`.
    fn candidates(&self, job: &Job) -> order::Candidates {
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
        let mut c = order::order(self.policy.order, &views, &key);
        // Under overload, those with room first ([`limit`]).
        let now = tokio::time::Instant::now();
        let room = |i: usize| self.backends.get(i).is_none_or(|b| b.limit.has_room(now));
        limit::room_first(&mut c, room);
        c
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
    pub(super) fn adaptive_hedge_pct(&self) -> Option<f64> {
        (self.policy.hedge_delay == HedgeDelay::Adaptive).then_some(self.policy.hedge_percentile)
    }

    /// Feeds one latency sample to the adaptive hedge delay.
    fn observe_hedge_sample(&self, i: usize, rtt: Duration) {
        if self.policy.hedge_delay == HedgeDelay::Adaptive
            && let Some(b) = self.backends.get(i)
        {
            b.hedge.observe(rtt, self.policy.hedge_percentile);
        }
    }

    /// A new query's resolution: its candidates in order, its deadline
    /// `timeout_ms` from `now`.
    pub(crate) fn resolution(&self, job: &Job, now: tokio::time::Instant) -> Resolution {
        let candidates = self.candidates(job);
        Resolution::new(
            self.policy.strategy,
            self.policy.layout,
            &candidates,
            self.backends.len(),
            now,
            now + self.policy.timeout,
        )
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
        b.observe_latency(rtt);
        b.limit.sample(rtt, at);
        self.observe_hedge_sample(i, rtt);
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
    pub(super) fn remember(&self, job: &Job, backend: usize, resp: &[u8]) {
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
}

/// Everything a query needs, as one swappable snapshot.
pub struct LsState {
    /// The `[ls]` policy.
    pub policy: Policy,
    /// The backends, in config order.
    pub backends: Vec<Arc<Backend>>,
    /// The route of a name under no pool's zone: every backend, the `[ls]` policy.
    pub all: Route,
    /// The pools, `[[ls.pool]]`, in config order.
    pub pools: Vec<Route>,
    /// The pools' zones: which pool a name goes to.
    zones: SuffixTable,
    /// Counters shared across reloads.
    pub metrics: Arc<LsMetrics>,
    /// Health checks (the probe question is checked at config load).
    pub health: HealthPolicy,
    /// Clients allowed to query.
    pub(super) allow: Vec<ipnet::IpNet>,
    /// Per-client limit, when set.
    pub(super) rate: Option<RateLimiter>,
    /// IPv6 clients are grouped by this prefix (rate limit, in-flight share).
    v6_prefix: u8,
    /// Delay-triggered hedges left (every route spends from it).
    pub(super) budget: Arc<HedgeBudget>,
    /// Upstream sockets (shared across reloads).
    pub(super) pool: Arc<UpstreamPool>,
    /// This LS's mark on the queries it sends upstream (kept across reloads).
    pub(crate) mark: Mark,
    /// The packet cache, under `[ls.cache]` (kept across reloads that do
    /// not change it), of the names under no pool and of the pools without
    /// a cache of their own.
    pub cache: Option<Arc<PacketCache>>,
}

impl LsState {
    /// The snapshot of `[ls]` section `c`. Backends of `old` with the same
    /// name, address and weight are kept, with their counters and health;
    /// pools of `old` with the same name keep their counters.
    pub(super) fn new(
        c: &LsConfig,
        metrics: Arc<LsMetrics>,
        pool: Arc<UpstreamPool>,
        old: Option<&LsState>,
    ) -> Self {
        let health = HealthPolicy::from_config(&c.health);
        // A backend with the same name and address keeps its counters and health.
        let backends: Vec<Arc<Backend>> = c
            .backend
            .iter()
            .map(|bc| {
                old.and_then(|o| {
                    o.backends
                        .iter()
                        .find(|b| b.name == bc.name && b.addr == bc.addr && b.weight == bc.weight)
                        .cloned()
                })
                .unwrap_or_else(|| Arc::new(Backend::from_config(bc, true)))
            })
            .collect();
        // Probes and lost client queries count against a backend under this
        // policy; a query lives up to the longest deadline, a pool's included.
        let window = Duration::from_millis(c.longest_timeout_ms());
        let bounds = limit::Bounds {
            min: c.backend_limit_min,
            max: c.backend_limit_max,
        };
        for b in &backends {
            b.health.set_rule(health.fall, health.rise, window);
            b.limit.set_bounds(bounds);
        }
        let budget = Arc::new(HedgeBudget::new(c.hedge_budget_pct));
        // A cache is kept across a reload that does not change its config
        // (a pool's by the pool's name).
        let keep = |cc: &CacheConfig, kept: Option<&Arc<PacketCache>>| {
            kept.filter(|k| k.config() == cc)
                .cloned()
                .unwrap_or_else(|| Arc::new(PacketCache::new(cc)))
        };
        let cache = c
            .cache
            .as_ref()
            .map(|cc| keep(cc, old.and_then(|o| o.cache.as_ref())));
        let route = |policy: Policy, members: Vec<Arc<Backend>>| Route {
            name: None,
            zones: Vec::new(),
            backend_hashes: members
                .iter()
                .map(|b| order::name_hash(b.name.as_bytes()))
                .collect(),
            backends: members,
            // Allocated whole: only when the order reads it.
            sticky: (policy.order == Order::Sticky).then(|| StickyTable::new(c.sticky_size)),
            policy,
            tick: AtomicU64::new(0),
            counters: None,
            cache: cache.clone(),
            budget: budget.clone(),
            metrics: metrics.clone(),
        };
        let pools = c
            .pool
            .iter()
            .map(|p| {
                let members = p
                    .backends
                    .iter()
                    .filter_map(|name| backends.iter().find(|b| b.name == *name).cloned())
                    .collect();
                let was =
                    old.and_then(|o| o.pools.iter().find(|r| r.name.as_ref() == Some(&p.name)));
                let own = |r: &&Route| !r.shares_ls_cache(old);
                let pool_cache = match &p.cache {
                    Some(cc) => Some(keep(cc, was.filter(own).and_then(|r| r.cache.as_ref()))),
                    None => cache.clone(),
                };
                Route {
                    name: Some(p.name.clone()),
                    zones: p.zones.clone(),
                    counters: Some(was.and_then(|r| r.counters.clone()).unwrap_or_default()),
                    cache: pool_cache,
                    ..route(Policy::for_pool(c, p), members)
                }
            })
            .collect();
        let zones = SuffixTable::new(
            c.pool
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.zones.iter().map(move |z| (z, i))),
        );
        LsState {
            policy: Policy::from_config(c),
            all: route(Policy::from_config(c), backends.clone()),
            backends,
            pools,
            zones,
            metrics,
            health,
            allow: c.allow.clone(),
            rate: (c.rate_limit_qps > 0)
                .then(|| RateLimiter::new(c.rate_limit_qps, c.rate_limit_v6_prefix)),
            v6_prefix: c.rate_limit_v6_prefix,
            budget,
            pool,
            mark: old.map_or_else(Mark::random, |o| o.mark),
            cache,
        }
    }

    /// Every packet cache, each once: the `[ls.cache]` first, then the
    /// pools' own, with the name of the pool that owns it (`None`: the
    /// `[ls.cache]`).
    pub fn caches(&self) -> impl Iterator<Item = (Option<&str>, &Arc<PacketCache>)> {
        let ls = self.cache.iter().map(|c| (None, c));
        let pools = self
            .pools
            .iter()
            .filter(|r| !r.shares_ls_cache(Some(self)))
            .filter_map(|r| Some((r.name.as_deref(), r.cache.as_ref()?)));
        ls.chain(pools)
    }

    /// Removes the cached answers of `name` (with `zone`, of every name at
    /// or under it) from every packet cache; how many.
    pub fn flush_cache(&self, name: &Name, zone: bool) -> usize {
        self.caches().map(|(_, c)| c.flush(name, zone)).sum()
    }

    /// Removes the cached answers of every name at or under any of `zones`
    /// from every packet cache, one walk of each; how many.
    pub fn flush_zones(&self, zones: &[Name]) -> usize {
        self.caches().map(|(_, c)| c.flush_zones(zones)).sum()
    }

    /// The pool of the query name `name` (its wire form, as in the query):
    /// the one whose zone is the longest suffix of it; `None` for every
    /// backend. Reads `name` in place; allocates nothing.
    pub fn route_of(&self, name: &[u8]) -> Option<usize> {
        self.zones.lookup(name)
    }

    /// The group of client `ip` for per-client limits: the rate limiter's
    /// ([`crate::guard::rate::rate_key`]), also the in-flight share's ([`super::fair`]).
    pub fn client_group(&self, ip: std::net::IpAddr) -> std::net::IpAddr {
        crate::guard::rate::rate_key(ip, self.v6_prefix)
    }

    /// The route `pool` names (as [`Job::route`]): that pool, or
    /// [`LsState::all`].
    pub fn route_at(&self, pool: Option<usize>) -> &Route {
        pool.and_then(|i| self.pools.get(i)).unwrap_or(&self.all)
    }

    /// The route of `job`.
    pub fn route(&self, job: &Job) -> &Route {
        self.route_at(job.route)
    }

    /// A new query's resolution on its route: its candidates in order, its
    /// deadline its route's `timeout_ms` from `now`. The query goes
    /// upstream (the cache missed): it earns the hedge budget its share (a
    /// cache hit earns nothing, so the budget is a share of what the
    /// backends are sent, not of what clients ask).
    pub(crate) fn resolution(&self, job: &Job, now: tokio::time::Instant) -> Resolution {
        self.budget.earn();
        self.route(job).resolution(job, now)
    }
}

//! The snapshot a query runs on: [`LsState`] (policy, backends, routes and
//! the suffix table of the pools' zones, health settings, rate limiter,
//! hedge budget, shared upstream sockets, loop mark, packet cache, ECS
//! mode), built
//! from `[ls]` and replaced whole on reload.
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::{Job, LsMetrics, Policy, Route};
use crate::config::{CacheConfig, EcsMode, LsConfig};
use crate::guard::netset::NetSet;
use crate::guard::rate::RateLimiter;
use crate::ls::backend::health::HealthPolicy;
use crate::ls::backend::{Backend, limit};
use crate::ls::cache::PacketCache;
use crate::ls::hedge::HedgeBudget;
use crate::ls::identity::IdentityAnswers;
use crate::ls::loopmark::Mark;
use crate::ls::notify_peers::NotifyPeers;
use crate::ls::resolution::Resolution;
use crate::ls::rules::{ResponseRules, RuleSet};
use crate::ls::suffix::SuffixTable;
use crate::ls::upstream::shared::SharedSockets;

/// Time beyond the longest deadline a stopping LS gives its queries in
/// flight ([`LsState::drain_grace`]).
pub const DRAIN_MARGIN: Duration = Duration::from_secs(1);

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
    pub(in crate::ls) allow: NetSet,
    /// The same, as `allow` lists them (for the XDP program's filter).
    pub(in crate::ls) allow_nets: Vec<ipnet::IpNet>,
    /// Per-client limit, when set.
    pub(in crate::ls) rate: Option<RateLimiter>,
    /// IPv6 clients are grouped by this prefix (rate limit, in-flight share).
    v6_prefix: u8,
    /// Delay-triggered hedges left (every route spends from it).
    pub(in crate::ls) budget: Arc<HedgeBudget>,
    /// Upstream sockets (shared across reloads).
    pub(in crate::ls) pool: Arc<SharedSockets>,
    /// This LS's mark on the queries it sends upstream (kept across reloads).
    pub(crate) mark: Mark,
    /// The packet cache, under `[ls.cache]` (kept across reloads that do
    /// not change it), of the names under no pool and of the pools without
    /// a cache of their own.
    pub cache: Option<Arc<PacketCache>>,
    /// Who may NOTIFY the LS (the backends' addresses) and the TSIG keys
    /// their NOTIFYs must be signed with.
    pub(in crate::ls) notify_peers: NotifyPeers,
    /// The query rules, `[[ls.rule]]`, checked at the door (their counters
    /// kept across reloads by rule name).
    pub rules: RuleSet,
    /// The rules on the backends' answers, `[[ls.response_rule]]`.
    pub response_rules: ResponseRules,
    /// What the door does with a client's ECS option (`ecs` in `[ls]`,
    /// [`crate::ls::ecs`]).
    pub ecs: EcsMode,
    /// The answers to `id.server.`/`hostname.bind.` (`identity`,
    /// `hide_identity`), the anycast probe's first.
    pub identity: IdentityAnswers,
}

impl LsState {
    /// The snapshot of `[ls]` section `c`. Backends of `old` with the same
    /// name, address and weight are kept, with their counters and health;
    /// pools of `old` with the same name keep their counters.
    pub(in crate::ls) fn new(
        c: &LsConfig,
        metrics: Arc<LsMetrics>,
        pool: Arc<SharedSockets>,
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
                        .find(|b| {
                            b.name == bc.name
                                && b.addr == bc.addr
                                && b.weight == bc.weight
                                && b.reached_as(bc)
                        })
                        .cloned()
                })
                .unwrap_or_else(|| {
                    let b = Backend::from_config(bc, true);
                    // A state set by hand stays with the backend's name.
                    if let Some(was) =
                        old.and_then(|o| o.backends.iter().find(|b| b.name == bc.name))
                    {
                        b.admin.set(was.admin.get());
                    }
                    Arc::new(b)
                })
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
        let route = |policy: Policy, members: Vec<Arc<Backend>>| {
            let (cache, budget, metrics) = (cache.clone(), budget.clone(), metrics.clone());
            Route::new(policy, members, c.sticky_size, cache, budget, metrics)
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
                let own = |r: &&Route| !r.shares_ls_cache(old.and_then(|o| o.cache.as_ref()));
                let pool_cache = match &p.cache {
                    Some(cc) => Some(keep(cc, was.filter(own).and_then(|r| r.cache.as_ref()))),
                    None => cache.clone(),
                };
                let mut r = route(Policy::for_pool(c, p), members);
                r.name = Some(p.name.clone());
                r.zones = p.zones.clone();
                r.counters = Some(was.and_then(|r| r.counters.clone()).unwrap_or_default());
                r.cache = pool_cache;
                r
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
            allow: NetSet::new(&c.allow),
            allow_nets: c.allow.clone(),
            rate: (c.rate_limit_qps > 0)
                .then(|| RateLimiter::new(c.rate_limit_qps, c.rate_limit_v6_prefix)),
            v6_prefix: c.rate_limit_v6_prefix,
            budget,
            pool,
            mark: old.map_or_else(Mark::random, |o| o.mark),
            cache,
            notify_peers: NotifyPeers::from_config(c),
            rules: RuleSet::new(c, old.map(|o| &o.rules)),
            response_rules: ResponseRules::new(c, old.map(|o| &o.response_rules)),
            ecs: c.ecs,
            identity: IdentityAnswers::from_config(c),
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
            .filter(|r| !r.shares_ls_cache(self.cache.as_ref()))
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
    /// ([`crate::guard::rate::rate_key`]), also the in-flight share's ([`crate::guard::fair`]).
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

    /// How long a stopping LS gives the queries in flight on this snapshot:
    /// the longest deadline of its routes (`timeout_ms`, or a pool's when
    /// longer) and [`DRAIN_MARGIN`]. Read at the stop, so that a reload
    /// which lengthened a deadline lengthens the drain with it.
    pub fn drain_grace(&self) -> Duration {
        self.pools
            .iter()
            .map(|r| r.policy.timeout)
            .fold(self.all.policy.timeout, Duration::max)
            + DRAIN_MARGIN
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

    /// [`LsState::resolution`] made in `res`, a resolution whose query
    /// ended (the fast path's, reused in place: no copy of it made).
    pub(crate) fn restart_resolution(
        &self,
        job: &Job,
        now: tokio::time::Instant,
        res: &mut Resolution,
    ) {
        self.budget.earn();
        self.route(job).restart_resolution(job, now, res);
    }
}

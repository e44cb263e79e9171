//! The load balancer (LS): forwards each client query to its backends by the
//! configured strategy and order, and answers with the first useful response
//! or, at the deadline, with the `on_timeout` answer it makes up.
//!
//! [`Balancer`] is the server layer's [`Handler`]. Its state ([`LsState`]:
//! policy, backends, sticky memory) is one `ArcSwap` snapshot, replaced whole
//! on reload; queries in flight keep the snapshot they started with.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{OpCode, ResponseCode};
use smallvec::SmallVec;

use crate::config::{HedgeDelay, Layout, LsConfig, OnTimeout, Order, Strategy};
use crate::dns::{self, HEADER_LEN, Transport, WireHeader};
use crate::logging::QueryLine;
use crate::server::{Action, Handler, Reply, Request};

pub mod backend;
pub mod fast;
pub mod guard;
pub mod health;
pub mod hedge;
pub mod latency;
pub mod loopmark;
pub mod order;
pub mod pool;
pub mod resolution;
pub mod sticky;
pub mod strategy;
pub mod upstream;

#[cfg(test)]
mod timing_tests;

use backend::Backend;
use guard::{RateLimiter, RateVerdict};
use health::{HealthPolicy, QueryTrigger};
use order::OrderKey;
use sticky::StickyTable;
use upstream::DropCounters;

/// The LS's policy, read from `[ls]`.
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
}

/// Counters of the LS as a whole.
#[derive(Debug, Default)]
pub struct LsMetrics {
    /// Client queries received (well-formed).
    pub queries: AtomicU64,
    /// Answers sent, by rcode (low 4 bits).
    pub answers: [AtomicU64; 16],
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
    /// round a forwarding loop ([`loopmark`]).
    pub loops_refused: AtomicU64,
    /// Health probe rounds completed.
    pub health_rounds: AtomicU64,
    /// Time from a client query's arrival to its answer (deferred answers).
    pub client_latency: latency::LatencyHistogram,
    /// Upstream responses dropped as not matching.
    pub drops: Arc<DropCounters>,
    /// Client queries shed unanswered: they waited in the socket's queue
    /// longer than the LS's queue bound (overload).
    pub shed_queue: AtomicU64,
    /// Client queries shed with SERVFAIL: `max_inflight` reached.
    pub shed_inflight: AtomicU64,
    /// The UDP workers' client sockets (inodes): the queries the kernel
    /// dropped on them, their queues full, are shed too ([`LsMetrics::shed_socket`]).
    pub client_sockets: std::sync::Mutex<Vec<u64>>,
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
        Balancer::count_reply(self, reply);
        self.client_latency.record(arrived.elapsed());
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
    /// Its line for the query log, when that is on (debug).
    pub log: Option<QueryLine>,
}

impl Job {
    /// The raw question section.
    pub fn question(&self) -> &[u8] {
        self.raw
            .get(HEADER_LEN..self.question_end)
            .unwrap_or_default()
    }
}

/// Everything a query needs, as one swappable snapshot.
pub struct LsState {
    /// The policy.
    pub policy: Policy,
    /// The backends, in config order.
    pub backends: Vec<Arc<Backend>>,
    backend_hashes: Vec<u64>,
    /// Only under the `sticky` order.
    sticky: Option<StickyTable>,
    tick: AtomicU64,
    /// Counters shared across reloads.
    pub metrics: Arc<LsMetrics>,
    /// Health checks (always `Some`: the probe question is checked at config load).
    pub health: Option<HealthPolicy>,
    /// Clients allowed to query.
    allow: Vec<ipnet::IpNet>,
    /// Per-client limit, when set.
    rate: Option<RateLimiter>,
    /// Delay-triggered hedges left.
    budget: hedge::HedgeBudget,
    /// Upstream sockets (shared across reloads).
    pool: Arc<pool::UpstreamPool>,
    /// This LS's mark on the queries it sends upstream (kept across reloads).
    pub(crate) mark: loopmark::Mark,
}

impl LsState {
    fn new(
        c: &LsConfig,
        metrics: Arc<LsMetrics>,
        pool: Arc<pool::UpstreamPool>,
        old: Option<&LsState>,
    ) -> Self {
        let health = Some(HealthPolicy {
            interval: Duration::from_millis(c.health.interval_ms.max(1)),
            every_queries: c.health.every_queries,
            name: c.health.query.name.clone(),
            rtype: c.health.query.rtype,
            fall: c.health.fall,
            rise: c.health.rise,
            timeout: Duration::from_millis(c.health.timeout_ms.max(1)),
        });
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
                .unwrap_or_else(|| Arc::new(Backend::from_config(bc, health.is_some())))
            })
            .collect();
        // Lost client queries count against a backend under this policy.
        for b in &backends {
            let fall = health.as_ref().map_or(0, |p| p.fall);
            b.set_loss_rule(fall, Duration::from_millis(c.timeout_ms));
        }
        let backend_hashes = backends
            .iter()
            .map(|b| order::name_hash(b.name.as_bytes()))
            .collect();
        LsState {
            policy: Policy::from_config(c),
            backends,
            backend_hashes,
            // Allocated whole: only when the order reads it.
            sticky: (c.order == Order::Sticky).then(|| StickyTable::new(c.sticky_size)),
            tick: AtomicU64::new(0),
            metrics,
            health,
            allow: c.allow.clone(),
            rate: (c.rate_limit_qps > 0)
                .then(|| RateLimiter::new(c.rate_limit_qps, c.rate_limit_v6_prefix)),
            budget: hedge::HedgeBudget::new(c.hedge_budget_pct),
            pool,
            mark: old.map_or_else(loopmark::Mark::random, |o| o.mark),
        }
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
        order::order(self.policy.order, &views, &key)
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
    fn adaptive_hedge_pct(&self) -> Option<f64> {
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
    pub(crate) fn resolution(
        &self,
        job: &Job,
        now: tokio::time::Instant,
    ) -> resolution::Resolution {
        let candidates = self.candidates(job);
        resolution::Resolution::new(
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
    ) -> resolution::Verdict {
        let Some(b) = self.backends.get(i) else {
            return resolution::Verdict::Failed;
        };
        b.stats.answered.fetch_add(1, Relaxed);
        b.heard_from(at);
        b.observe_latency(rtt);
        self.observe_hedge_sample(i, rtt);
        let v = header.map_or(resolution::Verdict::Failed, |h| {
            if dns::rejects_query(&h) {
                // The query may be at fault, not the backend: another
                // backend is asked, and the rejection passed on only when
                // every backend asked rejected it. No error of the backend.
                return resolution::Verdict::Rejected;
            }
            resolution::classify(&h, self.policy.layout)
        });
        if v == resolution::Verdict::Failed {
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
    fn remember(&self, job: &Job, backend: usize, resp: &[u8]) {
        if let Some(sticky) = &self.sticky
            && WireHeader::read(resp).is_some_and(|h| h.rcode() == 0)
        {
            sticky.set(job.name_hash, backend);
        }
    }

    /// A made-up answer with `rcode`.
    fn synthesize(&self, job: &Job, rcode: ResponseCode, text: &str) -> Reply {
        self.metrics.synthesized.fetch_add(1, Relaxed);
        // Decoded only here, off the forwarding path.
        match dns::decode_query(&job.raw) {
            Ok(q) => Reply::One(dns::synthesized(
                &q,
                job.transport,
                rcode,
                self.policy.synth_ttl,
                text,
            )),
            Err(reject) => reject.response().map_or(Reply::Drop, Reply::One),
        }
    }

    /// The `on_timeout` answer.
    fn on_timeout(&self, job: &Job, text: &str) -> Reply {
        match self.policy.on_timeout {
            OnTimeout::Nxdomain => self.synthesize(job, ResponseCode::NXDomain, text),
            OnTimeout::Servfail => self.synthesize(job, ResponseCode::ServFail, text),
            OnTimeout::Drop => {
                self.metrics.synthesized.fetch_add(1, Relaxed);
                Reply::Drop
            }
        }
    }
}

impl resolution::Pacing for LsState {
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

    fn take_hedge_token(&self) -> bool {
        self.hedge_allowed()
    }
}

/// Time beyond `timeout_ms` a stopping LS gives its queries in flight.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// The server-layer limits of an `[ls]` section.
pub fn server_options(c: &LsConfig) -> crate::server::ServerOptions {
    crate::server::ServerOptions {
        workers: c.workers,
        max_inflight: c.max_inflight,
        // A query in flight ends by its deadline at the latest.
        drain_grace: Duration::from_millis(c.timeout_ms) + DRAIN_MARGIN,
        ..crate::server::ServerOptions::default()
    }
}

/// Serves `listeners` with `balancer` and runs its health checks, until
/// `token` is cancelled; returns when both have stopped.
pub async fn serve(
    balancer: Arc<Balancer>,
    listeners: crate::server::Listeners,
    opts: crate::server::ServerOptions,
    token: tokio_util::sync::CancellationToken,
) {
    let mut listeners = listeners;
    let health = tokio::spawn(health::run(balancer.clone(), token.clone()));
    let sweeper = tokio::spawn(sweep_rate_limits(balancer.clone(), token.clone()));
    // UDP clients take the fast path, one worker per socket; TCP the server layer.
    let udp = listeners.take_udp();
    let per_worker = opts.max_inflight / udp.len().max(1);
    let workers = tokio_util::task::TaskTracker::new();
    // A fast-path worker that dies stops the whole server (and the process
    // with it): never UDP half served.
    let died = tokio_util::sync::CancellationToken::new();
    for (i, sock) in udp.into_iter().enumerate() {
        let (b, stop) = (balancer.clone(), token.clone());
        let body = move |sock| fast::run(b, sock, per_worker, stop);
        crate::server::thread::start(&workers, &format!("ls-udp-{i}"), sock, &died, body);
    }
    workers.close();
    let watch = {
        let (died, token) = (died.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = died.cancelled() => {
                    tracing::error!("a udp worker died: stopping the server rather than serve half of it");
                    token.cancel();
                }
            }
        })
    };
    crate::server::serve(listeners, balancer.clone(), opts, token).await;
    let _ = watch.await;
    workers.wait().await;
    let _ = health.await;
    let _ = sweeper.await;
    balancer.pool.shutdown().await;
}

/// Every [`guard::RATE_SWEEP`] until `token` is cancelled: ends (and logs)
/// the rate-limit episodes that have gone quiet. A reload replaces the
/// limiter: the old one's episodes end then.
async fn sweep_rate_limits(balancer: Arc<Balancer>, token: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(guard::RATE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Arc<LsState>> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = balancer.state();
        let now = std::time::Instant::now();
        if let Some(old) = last.take()
            && !Arc::ptr_eq(&old, &state)
            && let Some(rate) = &old.rate
        {
            rate.end_all(now);
        }
        if let Some(rate) = &state.rate {
            rate.sweep(now);
        }
        last = Some(state);
    }
}

/// The LS request handler.
pub struct Balancer {
    state: ArcSwap<LsState>,
    metrics: Arc<LsMetrics>,
    pool: Arc<pool::UpstreamPool>,
    trigger: QueryTrigger,
}

impl Balancer {
    /// A balancer for an `[ls]` section.
    pub fn new(c: &LsConfig) -> Self {
        let metrics = Arc::new(LsMetrics::default());
        let pool = Arc::new(pool::UpstreamPool::new(metrics.drops.clone()));
        Balancer {
            state: ArcSwap::from_pointee(LsState::new(c, metrics.clone(), pool.clone(), None)),
            metrics,
            pool,
            trigger: QueryTrigger::default(),
        }
    }

    /// Swaps in a new policy and backend list; queries in flight finish on
    /// the old snapshot. Backends kept by name and address keep their state.
    pub fn reload(&self, c: &LsConfig) {
        let old = self.state.load_full();
        let new = LsState::new(c, self.metrics.clone(), self.pool.clone(), Some(&old));
        self.state.store(Arc::new(new));
        // New backends are down until probed: probe them now.
        self.trigger.notify.notify_one();
    }

    /// The current snapshot.
    pub fn state(&self) -> Arc<LsState> {
        self.state.load_full()
    }

    /// The LS's counters.
    pub fn metrics(&self) -> &LsMetrics {
        &self.metrics
    }

    fn count_reply(metrics: &LsMetrics, reply: &Reply) {
        if let Reply::One(b) = reply
            && let Some(h) = WireHeader::read(b)
            && let Some(c) = metrics.answers.get(usize::from(h.rcode()))
        {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// What becomes of a client query at the door ([`Balancer::admit`]).
pub enum Admission {
    /// Answered (or dropped) at once: malformed, refused, rate limited.
    Reply(Reply),
    /// To be forwarded, on this snapshot.
    Forward(Arc<LsState>, Admitted),
}

/// A client query admitted for forwarding: what was read of it, not yet
/// its bytes (the caller decides where they go, or to shed it first).
#[derive(Debug)]
pub struct Admitted {
    client_id: u16,
    question_end: usize,
    transport: Transport,
    name_hash: u64,
    log: Option<QueryLine>,
}

impl Admitted {
    /// End of the question section in the query.
    pub fn question_end(&self) -> usize {
        self.question_end
    }

    /// The job, with `raw` holding the query's bytes as received.
    pub fn into_job(self, raw: Vec<u8>) -> Job {
        Job {
            raw,
            client_id: self.client_id,
            question_end: self.question_end,
            transport: self.transport,
            name_hash: self.name_hash,
            log: self.log,
        }
    }
}

impl Balancer {
    /// Reads a client query once (header and question) and decides: an
    /// immediate reply (counted), or a query to forward (not copied yet).
    /// Sends nothing: forwarding is [`Handler::handle`]'s part.
    pub fn admit(&self, req: Request<'_>) -> Admission {
        let now = |bytes: Option<Vec<u8>>| {
            let reply = bytes.map_or(Reply::Drop, Reply::One);
            Self::count_reply(&self.metrics, &reply);
            Admission::Reply(reply)
        };
        // Who may be answered at all, and how often, is decided before a
        // byte of the query is read: a client outside `allow` or over its
        // rate gets no FORMERR or REFUSED beyond the limit either.
        let state = self.state.load_full();
        let verdict = match &state.rate {
            Some(rate) if req.transport == Transport::Udp => rate.check(req.src.ip()),
            _ => RateVerdict::Pass,
        };
        if verdict != RateVerdict::Pass {
            self.metrics.rate_limited.fetch_add(1, Relaxed);
        }
        if !guard::allowed(&state.allow, req.src.ip()) {
            self.metrics.refused_acl.fetch_add(1, Relaxed);
            // REFUSED within the rate limit; past it, nothing (a TC=1 slip
            // would only send it to TCP to be refused there).
            return match verdict {
                RateVerdict::Pass => now(dns::error_for(req.raw, ResponseCode::Refused)),
                RateVerdict::Drop | RateVerdict::Slip => Admission::Reply(Reply::Drop),
            };
        }
        match verdict {
            RateVerdict::Pass => {}
            RateVerdict::Drop => return Admission::Reply(Reply::Drop),
            RateVerdict::Slip => {
                // A query that does not even decode gets no slip either.
                let tc = dns::decode_query(req.raw)
                    .ok()
                    .map(|q| dns::truncated_for(&q));
                return now(tc);
            }
        }
        // Header and question are all the forwarding path reads.
        let (client_id, question_end) = match dns::peek_plain_query(req.raw) {
            Some(x) => x,
            None => match dns::decode_query(req.raw) {
                Err(reject) => return now(reject.response()),
                // NOTIFY and the like are for authoritative servers.
                Ok(q) if q.header.metadata.op_code != OpCode::Query => {
                    return now(dns::error_for(req.raw, ResponseCode::Refused));
                }
                // Well formed but unusual (e.g. a compressed question): forward it.
                Ok(q) => (q.header.metadata.id, q.question_end),
            },
        };
        // A query this LS sent upstream came back: a forwarding loop.
        if state.mark.carried_by(req.raw, question_end) {
            self.metrics.loops_refused.fetch_add(1, Relaxed);
            return now(dns::error_for(req.raw, ResponseCode::Refused));
        }
        let count = self.metrics.queries.fetch_add(1, Relaxed) + 1;
        state.budget.earn();
        if let Some(h) = &state.health {
            self.trigger.on_query(count, h.every_queries);
        }
        let name_end = question_end.saturating_sub(4);
        let name_hash = order::name_hash(req.raw.get(HEADER_LEN..name_end).unwrap_or_default());
        // The query log (debug): read from the question only when it is on.
        let log = QueryLine::enabled().then(|| {
            QueryLine::new(
                req.src,
                req.raw.get(HEADER_LEN..question_end).unwrap_or_default(),
            )
        });
        let admitted = Admitted {
            client_id,
            question_end,
            transport: req.transport,
            name_hash,
            log,
        };
        Admission::Forward(state, admitted)
    }
}

impl Handler for Balancer {
    fn handle(&self, req: Request<'_>) -> Action {
        let raw = req.raw;
        match self.admit(req) {
            Admission::Reply(reply) => Action::Now(reply),
            Admission::Forward(state, admitted) => {
                let job = admitted.into_job(raw.to_vec());
                let metrics = self.metrics.clone();
                let arrived = std::time::Instant::now();
                Action::Later(Box::pin(async move {
                    let (reply, answered) = strategy::resolve(state.clone(), job).await;
                    LsMetrics::answered(&metrics, &reply, arrived);
                    answered.log(&state, &reply, arrived.elapsed());
                    reply
                }))
            }
        }
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    /// The sticky table (allocated whole) exists only under `order = "sticky"`;
    /// a reload to `sticky` builds it.
    #[test]
    fn the_sticky_table_is_built_only_for_the_sticky_order() {
        let mut c = LsConfig {
            sticky_size: crate::config::MAX_STICKY_SIZE,
            ..LsConfig::default()
        };
        let b = Balancer::new(&c);
        assert!(b.state().sticky.is_none());
        c.order = Order::Sticky;
        c.sticky_size = 8;
        b.reload(&c);
        assert!(b.state().sticky.is_some());
    }
}

//! The balancer: the LS's request handler ([`Balancer`]) holding the
//! current [`LsState`] snapshot (swapped whole on reload) and the counters
//! and queues beside it, and the entry to the door every client query
//! passes before either driver forwards it ([`Balancer::admit`]; the door's
//! steps, in order, are [`super::door`]'s). Both drivers start here: the
//! async one ([`super::async_path`], which makes it the server layer's
//! `Handler`) and the UDP fast path ([`super::udp_path`]).
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use super::backend::admin::{self, AdminState};
use super::control::{ControlCounters, ControlSettings};
use super::door::{Admission, Admitted, Parts, QueryAtDoor, note_rule};
use super::dynblock::{DynBlocks, WorkerCounts};
use super::identity::ProbeToken;
use super::invalidate::{self, FlushBy, FlushCounters, FlushQueue};
use super::state::{LsMetrics, LsState};
use super::suffix;
use super::upstream::shared::SharedSockets;
use crate::config::{Layout, LsConfig};
use crate::dns;
use crate::dnstap::{Dnstap, Staged};
use crate::server::detached::Detached;
use crate::server::{Reply, Request};

/// Wakes the probe loop ([`super::probe`]) after every `every_queries`
/// client queries.
#[derive(Debug, Default)]
pub struct QueryTrigger {
    pub(crate) notify: Notify,
}

impl QueryTrigger {
    /// Called per client query with the running count.
    pub fn on_query(&self, count: u64, every: u64) {
        if every > 0 && count.is_multiple_of(every) {
            self.notify.notify_one();
        }
    }
}

/// The LS request handler.
pub struct Balancer {
    state: ArcSwap<LsState>,
    pub(super) metrics: Arc<LsMetrics>,
    pub(super) pool: Arc<SharedSockets>,
    pub(super) trigger: QueryTrigger,
    flushes: FlushCounters,
    flush_queue: FlushQueue,
    dynblocks: Arc<DynBlocks>,
    control: ArcSwap<ControlSettings>,
    control_counters: ControlCounters,
    /// The secret `dnslb anycast`'s probe proves itself with, made at start.
    probe_token: ProbeToken,
    /// DNS Cookies' server secrets of the answers it makes (`cookie_secret`).
    cookies: crate::dns::cookie::ServerSecrets,
    /// Set once the UDP fast path must read no new client query (see
    /// [`Balancer::close_udp_reads`]).
    udp_reads_closed: std::sync::atomic::AtomicBool,
    /// The answers awaited on tasks outside the server layer's drain (the
    /// XDP workers' forwarded queries, the UDP workers' queries for
    /// encrypted backends): the stop waits for them before it closes the
    /// upstream pools they come back through.
    detached: Detached,
    /// Bumped after each swap of the snapshot: a fast-path worker keeps its
    /// snapshot until then ([`Balancer::refresh`]).
    reloads: AtomicU64,
    /// When the queries of the snapshots reloads replaced have all ended
    /// at the latest: each replaced snapshot's drain grace from its
    /// replacement on, the latest of them ([`Balancer::drain_grace`]).
    replaced_end: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// The UDP workers that take the XDP workers' forwarded queries.
    handoffs: Arc<super::handoff::Handoffs>,
    /// Who may put a PROXY v2 header before a query (`proxy_from`, read at
    /// start), and its counters; `None`: nobody.
    pub(crate) proxy_gate: Option<crate::server::proxy_gate::ProxyGate>,
}

/// A fast-path worker's own hold on the snapshot, kept from query to query
/// and taken anew only after a reload ([`Balancer::refresh`]): no
/// `ArcSwap` load per query.
pub(crate) struct KeptState {
    /// The reloads counted when it was taken.
    seen: u64,
    state: Arc<LsState>,
}

impl KeptState {
    /// The snapshot kept (as of the last [`Balancer::refresh`]).
    pub(crate) fn state(&self) -> &Arc<LsState> {
        &self.state
    }
}

impl Balancer {
    /// The UDP workers that take the XDP workers' forwarded queries
    /// ([`super::handoff`]).
    pub(crate) fn handoffs(&self) -> &Arc<super::handoff::Handoffs> {
        &self.handoffs
    }

    /// This balancer writing its dnstap messages to `dnstap` (once: a
    /// second handle is ignored).
    pub fn with_dnstap(self, dnstap: Dnstap) -> Self {
        let _ = self.metrics.dnstap.set(dnstap);
        self
    }

    /// Its dnstap handle: check [`Dnstap::enabled`] before building an event.
    #[inline]
    pub fn dnstap(&self) -> &Dnstap {
        super::tap::of(&self.metrics)
    }

    /// DNS Cookies' server secrets of the answers it makes itself.
    pub(crate) fn cookies(&self) -> &crate::dns::cookie::ServerSecrets {
        &self.cookies
    }

    /// A balancer for an `[ls]` section.
    pub fn new(c: &LsConfig) -> Self {
        let metrics = Arc::new(LsMetrics::default());
        let pool = Arc::new(SharedSockets::new(metrics.drops.clone()));
        Balancer {
            state: ArcSwap::from_pointee(LsState::new(c, metrics.clone(), pool.clone(), None)),
            metrics,
            pool,
            trigger: QueryTrigger::default(),
            flushes: FlushCounters::default(),
            flush_queue: FlushQueue::default(),
            dynblocks: Arc::new(DynBlocks::new(c, std::time::Instant::now())),
            control: ArcSwap::from_pointee(ControlSettings::from_config(c)),
            control_counters: ControlCounters::default(),
            probe_token: ProbeToken::random(),
            cookies: c.cookie_secret.server_secrets(),
            udp_reads_closed: std::sync::atomic::AtomicBool::new(false),
            detached: Detached::default(),
            reloads: AtomicU64::new(0),
            replaced_end: std::sync::Mutex::new(None),
            handoffs: Arc::default(),
            proxy_gate: crate::server::proxy_gate::ProxyGate::new(&c.proxy_from),
        }
    }

    /// The queries of the shared upstream pool (those of the clients the
    /// XDP path serves) sent by the XDP workers to the backends they reach
    /// ([`SharedSockets::attach_xsk`]): the pool's side of `up`, for the
    /// workers. `None`: through the sockets alone again.
    pub fn upstream_through_xdp(
        &self,
        up: Option<Arc<crate::xdp::upstream::XskUpstream>>,
    ) -> Option<Arc<dyn crate::xdp::upstream::UpstreamLink>> {
        match up {
            Some(up) => Some(self.pool.attach_xsk(up)),
            None => {
                self.pool.detach_xsk();
                None
            }
        }
    }

    /// Tells the UDP fast-path workers to read no new client query from now
    /// on: each one sees it at its next round, before it reads its socket,
    /// and stops as on the server's stop (its queries in flight answered).
    /// Called before `/ready` says stopping, so that a query sent once it
    /// says so is never read: the server's stop reaches the workers only
    /// after a task of the runtime has run, later on a loaded machine.
    pub fn close_udp_reads(&self) {
        self.udp_reads_closed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The answers awaited outside the server layer, in flight (see the
    /// field).
    pub fn detached(&self) -> &Detached {
        &self.detached
    }

    /// Whether [`Balancer::close_udp_reads`] was called.
    #[inline]
    pub(super) fn udp_reads_closed(&self) -> bool {
        self.udp_reads_closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Swaps in a new policy and backend list; queries in flight finish on
    /// the old snapshot. Backends kept by name and address keep their state.
    pub fn reload(&self, c: &LsConfig) {
        let old = self.state.load_full();
        let new = LsState::new(c, self.metrics.clone(), self.pool.clone(), Some(&old));
        self.state.store(Arc::new(new));
        self.reloads.fetch_add(1, Release);
        // Queries in flight finish on the old snapshot, by its deadlines.
        let old_end = tokio::time::Instant::now() + old.drain_grace();
        if let Ok(mut end) = self.replaced_end.lock() {
            *end = Some(end.map_or(old_end, |e| e.max(old_end)));
        }
        self.dynblocks.reload(c);
        self.control
            .store(Arc::new(ControlSettings::from_config(c)));
        // New backends are down until probed: probe them now.
        self.trigger.notify.notify_one();
    }

    /// How long a stopping LS gives its queries in flight: the snapshot in
    /// force's drain grace ([`LsState::drain_grace`]), or longer while a
    /// query may still run on a snapshot a reload replaced (it ends by that
    /// snapshot's deadlines: a reload that shortened `timeout_ms` does not
    /// cut off the queries admitted before it).
    pub fn drain_grace(&self) -> std::time::Duration {
        let current = self.state.load().drain_grace();
        let replaced = self.replaced_end.lock().ok().and_then(|end| *end);
        replaced.map_or(current, |end| {
            current.max(end.saturating_duration_since(tokio::time::Instant::now()))
        })
    }

    /// The current snapshot.
    pub fn state(&self) -> Arc<LsState> {
        self.state.load_full()
    }

    /// The current snapshot, for a fast-path worker to keep
    /// ([`Balancer::refresh`]).
    pub(crate) fn keep_state(&self) -> KeptState {
        let seen = self.reloads.load(Acquire);
        KeptState {
            seen,
            state: self.state.load_full(),
        }
    }

    /// The current snapshot, `kept` taken anew when a reload came since it
    /// was taken: one atomic read when none did. A reload swaps the
    /// snapshot before it counts itself, so a worker that sees the count
    /// takes the new one.
    pub(crate) fn refresh<'a>(&self, kept: &'a mut KeptState) -> &'a Arc<LsState> {
        let now = self.reloads.load(Acquire);
        if now != kept.seen {
            *kept = KeptState {
                seen: now,
                state: self.state.load_full(),
            };
        }
        &kept.state
    }

    /// The LS's counters.
    pub fn metrics(&self) -> &LsMetrics {
        &self.metrics
    }

    /// The cache flushes and NOTIFYs counted.
    pub fn flushes(&self) -> &FlushCounters {
        &self.flushes
    }

    /// The zones acknowledged NOTIFYs wait to have flushed.
    pub fn flush_queue(&self) -> &FlushQueue {
        &self.flush_queue
    }

    /// The dynamic blocks, the blocks by hand and `dnslb top`'s counts.
    pub fn dynblocks(&self) -> &Arc<DynBlocks> {
        &self.dynblocks
    }

    /// Who may change state through the metrics listener.
    pub fn control(&self) -> Arc<ControlSettings> {
        self.control.load_full()
    }

    /// The state-changing requests counted.
    pub fn control_counters(&self) -> &ControlCounters {
        &self.control_counters
    }

    /// The anycast probe's token (`GET /probe-token`, behind the live
    /// control's gate).
    pub fn probe_token(&self) -> &ProbeToken {
        &self.probe_token
    }

    /// Sets backend `name`'s state by hand: its state before, or `None`
    /// when no backend has that name. Kept across reloads that keep the
    /// backend (by name).
    pub fn set_admin(&self, name: &str, to: AdminState) -> Option<AdminState> {
        let state = self.state();
        let b = state.backends.iter().find(|b| b.name == name)?;
        let before = b.admin.set(to);
        if before != to {
            tracing::warn!(backend = %name, from = %before, to = %to, "backend state set by hand");
        }
        Some(before)
    }

    /// What setting backend `name` to `to` does for the routes it is in,
    /// in words ([`admin::effect`]).
    pub fn admin_effect(&self, name: &str, to: AdminState) -> String {
        let state = self.state();
        let mut routes = admin::InRoutes::default();
        for r in std::iter::once(&state.all).chain(&state.pools) {
            if !r.backends.iter().any(|b| b.name == name) {
                continue;
            }
            match r.policy.layout {
                Layout::Partitioned => {
                    routes.partitioned.get_or_insert(r.policy.on_timeout);
                }
                Layout::Replicated => routes.replicated = true,
            }
        }
        admin::effect(to, routes)
    }

    /// Counts an answer `bytes` sent to client `ip` for the dynamic blocks
    /// (its rcode and size), into a fast-path worker's own counts `mine`
    /// (`None`: the async path's shards).
    pub fn on_answer(&self, ip: std::net::IpAddr, bytes: &[u8], mine: Option<&mut WorkerCounts>) {
        let rcode = bytes.get(3).map_or(0, |b| b & 0x0f);
        match mine {
            Some(mine) => self.dynblocks.count_answer(mine, ip, rcode, bytes.len()),
            None => self.dynblocks.on_answer(ip, rcode, bytes.len()),
        }
    }

    /// Tallies for `dnslb top` an answer `bytes` the LS made up itself (at
    /// the door, at the deadline, shed): its rcode, into a fast-path
    /// worker's own ring `mine` (`None`: the async path's). Never counted
    /// for the rcode rules, which count the backends' answers.
    pub fn on_made_up(&self, bytes: &[u8], mine: Option<&mut WorkerCounts>) {
        let rcode = bytes.get(3).map_or(0, |b| b & 0x0f);
        match mine {
            Some(mine) => self.dynblocks.count_made_up(mine, rcode),
            None => self.dynblocks.on_made_up(rcode),
        }
    }

    /// Removes the cached entries of `name` (with `zone`, at or under it),
    /// counted as an HTTP flush: how many, or `None` without a cache.
    pub fn flush_cache(&self, name: &hickory_proto::rr::Name, zone: bool) -> Option<usize> {
        invalidate::flush(&self.state(), &self.flushes, name, zone, FlushBy::Http)
    }

    /// Reads a client query once (header and question) and decides: an
    /// immediate reply (counted), or a query to forward (not copied yet).
    /// Sends nothing: forwarding is [`Handler::handle`]'s part.
    pub fn admit(&self, req: Request<'_>) -> Admission {
        self.admit_by(req, None)
    }

    /// [`Balancer::admit`] by a fast-path worker, counting for the dynamic
    /// blocks into its own counts `mine` (`None`: the async path's shards).
    pub fn admit_by(&self, req: Request<'_>, mine: Option<&mut WorkerCounts>) -> Admission {
        self.admit_on(self.state.load_full(), req, (mine, None), false)
    }

    /// [`Balancer::admit_by`] on the snapshot `state` (a fast-path worker's
    /// own, [`Balancer::refresh`]). A `late` query (one the worker's queue
    /// gate would shed, [`crate::server::shed::QueueGate`]) that the door
    /// would answer itself is dropped instead, its answer neither made nor
    /// counted (the worker counts it shed); it is still counted by the
    /// blocks, and one to be forwarded is admitted as usual (the gate
    /// decides).
    pub(crate) fn admit_on(
        &self,
        state: Arc<LsState>,
        req: Request<'_>,
        (mut mine, staged): (Option<&mut WorkerCounts>, Option<&mut Staged>),
        late: bool,
    ) -> Admission {
        let parts = Parts {
            metrics: &self.metrics,
            dynblocks: &self.dynblocks,
            probe_token: &self.probe_token,
            cookies: &self.cookies,
            flushes: (&self.flushes, &self.flush_queue),
            dnstap: self.dnstap(),
        };
        let mut door = QueryAtDoor::new(parts, &state, &req, (mine.as_deref_mut(), staged), late);
        let passed = door.pass();
        let answered = door.answered();
        match passed {
            Ok(admitted) => {
                // A late one is counted once the worker's gate has spared it.
                if !late {
                    self.count_forward(&state, admitted.route());
                }
                Admission::Forward(state, admitted)
            }
            Err(reply) => {
                // Every answer counted goes to `dnslb top` too.
                if answered && let Reply::One(b) = &reply {
                    self.on_made_up(b, mine);
                }
                Admission::Reply(reply)
            }
        }
    }

    /// A late query `req` admitted as `admitted` (by [`Balancer::admit_on`])
    /// that the worker's gate spared: counted now, as a query and by the
    /// rule that acted on it (logged, if it says so), as one on time was
    /// at the door. A late one shed is counted as shed only.
    pub(crate) fn spared(
        &self,
        state: &LsState,
        req: &Request<'_>,
        admitted: &Admitted,
        staged: Option<&mut Staged>,
    ) {
        self.count_forward(state, admitted.route());
        if let Some(hit) = admitted.unnoted {
            // Its name read as the door read it: in place, or decoded.
            let wire = match dns::peek_plain_query(req.raw) {
                Some(_) => None,
                None => dns::decode_query(req.raw)
                    .ok()
                    .map(|q| suffix::lower_wire(q.query.name())),
            };
            let tap = (state, self.dnstap(), staged);
            note_rule(tap, req, admitted.question_end(), wire.as_deref(), hit);
        }
    }

    /// Counts a query admitted for forwarding on `route` (and calls for a
    /// health round every `every_queries`): [`Balancer::admit_on`] does,
    /// or for a late query, [`Balancer::spared`].
    fn count_forward(&self, state: &LsState, route: Option<usize>) {
        let count = self.metrics.queries.fetch_add(1, Relaxed) + 1;
        if let Some(pool) = &state.route_at(route).counters {
            pool.queries.fetch_add(1, Relaxed);
        }
        self.trigger.on_query(count, state.health.every_queries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, Order, PoolConfig, Strategy, parse_name};
    use crate::dns::Transport;
    use crate::dns::fixtures::a_query as query;
    use crate::ls::order;
    use crate::ls::resolution::Step;
    use crate::ls::state::Job;

    /// Backend `name` on 127.0.0.1:`port` (never contacted).
    fn backend(name: &str, port: u16) -> BackendConfig {
        BackendConfig {
            name: name.into(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            weight: 1,
            notify_key: None,
            transport: Default::default(),
            tls_name: None,
            ca: None,
            proxy: false,
        }
    }

    /// A pool `name` of `backends` serving `zone`.
    fn pool(name: &str, backends: &[&str], zone: &str) -> PoolConfig {
        PoolConfig::new(name, backends, vec![parse_name(zone).unwrap()])
    }

    /// A query for `name` admitted by `b`: its snapshot and its job.
    fn admitted(b: &Balancer, name: &str) -> (Arc<LsState>, Job) {
        let raw = query(name);
        let req = Request {
            raw: &raw,
            src: std::net::SocketAddr::from(([127, 0, 0, 1], 5353)),
            transport: Transport::Udp,
            via: crate::server::Via::Udp,
            local: None,
        };
        let Admission::Forward(state, admitted) = b.admit(req) else {
            panic!("{name}: not forwarded");
        };
        (state, admitted.into_job(raw))
    }

    /// The name's hash (case folded) is taken at the door for the orders
    /// that read it, consistent-hash and sticky, and only for those; a
    /// pool's order decides for the names under it.
    #[test]
    fn the_name_hash_is_taken_for_the_orders_that_read_it() {
        let hash = order::name_hash(b"\x03www\x07example\x03org\x00");
        for kind in [
            Order::ConsistentHash,
            Order::Sticky,
            Order::LeastOutstanding,
            Order::RoundRobin,
            Order::Fixed,
            Order::WeightedRandom,
        ] {
            let c = LsConfig {
                order: kind,
                backend: vec![backend("a", 1), backend("b", 2)],
                ..LsConfig::default()
            };
            let b = Balancer::new(&c);
            let (_, job) = admitted(&b, "WWW.Example.org");
            let want = if order::reads_name(kind) { hash } else { 0 };
            assert_eq!(job.name_hash, want, "{kind}");
        }
        assert!(order::reads_name(Order::ConsistentHash) && order::reads_name(Order::Sticky));
        // A pool's own order: consistent-hash under its zone only.
        let mut p = pool("org", &["a", "b"], "example.org");
        p.order = Some(Order::ConsistentHash);
        let c = LsConfig {
            order: Order::RoundRobin,
            backend: vec![backend("a", 1), backend("b", 2)],
            pool: vec![p],
            ..LsConfig::default()
        };
        let b = Balancer::new(&c);
        assert_eq!(admitted(&b, "WWW.Example.org").1.name_hash, hash);
        assert_eq!(admitted(&b, "www.example.com").1.name_hash, 0);
    }

    /// The door routes a name to the pool of its longest zone suffix, and
    /// the query is asked of that pool's backends only (under race, all of
    /// them at once); a name under no zone goes to every backend.
    #[test]
    fn the_door_routes_a_name_to_its_pool_whose_backends_alone_are_asked() {
        let c = LsConfig {
            strategy: Strategy::Race,
            backend: vec![backend("a", 1), backend("b", 2), backend("c", 3)],
            pool: vec![
                pool("org", &["c"], "example.org"),
                pool("sub", &["b", "c"], "Sub.Example.Org."),
            ],
            ..LsConfig::default()
        };
        let b = Balancer::new(&c);
        for (name, route, asked) in [
            ("www.example.org", Some(0), &["c"][..]),
            ("EXAMPLE.org", Some(0), &["c"]),
            ("x.sub.example.org", Some(1), &["b", "c"]),
            ("badexample.org", None, &["a", "b", "c"]),
            ("example.com", None, &["a", "b", "c"]),
        ] {
            let (state, job) = admitted(&b, name);
            assert_eq!(job.route, route, "{name}");
            let now = tokio::time::Instant::now();
            let mut res = state.resolution(&job, now);
            let r = state.route(&job);
            let mut names = Vec::new();
            while let Step::Launch { backend, .. } = res.poll(now, r) {
                names.push(r.backends[backend].name.as_str());
            }
            names.sort_unstable();
            assert_eq!(names, asked, "{name}");
        }
        let s = b.state();
        let queries = |i: usize| s.pools[i].counters.as_ref().unwrap().queries.load(Relaxed);
        assert_eq!((queries(0), queries(1)), (2, 1));
        assert!(s.all.counters.is_none());
        // One Backend (and health) per backend, shared by the routes naming it.
        assert!(Arc::ptr_eq(&s.pools[0].backends[0], &s.backends[2]));
        assert!(Arc::ptr_eq(&s.pools[1].backends[1], &s.backends[2]));
    }

    /// A pool's own keys make its queries' policy: its strategy and order
    /// (who is asked, when the next is), its deadline, its `on_timeout`
    /// answer (naming its backends only), counted in its counters; a name
    /// under no zone keeps the `[ls]` policy.
    #[test]
    fn a_pool_s_own_keys_are_its_queries_policy() {
        let c = LsConfig {
            backend: vec![backend("a", 1), backend("b", 2), backend("c", 3)],
            pool: vec![PoolConfig {
                strategy: Some(Strategy::Sequential),
                order: Some(Order::Fixed),
                timeout_ms: Some(800),
                on_timeout: Some(crate::config::OnTimeout::Servfail),
                ..pool("fast", &["c", "b"], "fast.test")
            }],
            ..LsConfig::default()
        };
        let b = Balancer::new(&c);
        let t0 = tokio::time::Instant::now();
        let ms = std::time::Duration::from_millis;

        let (state, job) = admitted(&b, "www.other.test");
        assert_eq!(state.resolution(&job, t0).deadline(), t0 + ms(1500));

        let (state, job) = admitted(&b, "www.fast.test");
        let route = state.route(&job);
        let mut res = state.resolution(&job, t0);
        assert_eq!(res.deadline(), t0 + ms(800));
        // Sequential, fixed: c first (the pool's order), b after try_timeout_ms.
        let launch = |backend| Step::Launch {
            backend,
            hedge: false,
        };
        assert_eq!(res.poll(t0, route), launch(0));
        assert_eq!(res.poll(t0, route), Step::Wait);
        assert!(res.next_wakeup() <= t0 + ms(500));
        assert_eq!(res.poll(t0 + ms(499), route), Step::Wait);
        assert_eq!(res.poll(t0 + ms(500), route), launch(1));
        assert_eq!(route.backends[1].name, "b");
        assert_eq!(res.poll(t0 + ms(500), route), Step::Wait);
        let end = match res.poll(t0 + ms(800), route) {
            Step::Done(end) => end,
            other => panic!("not over at the pool's deadline: {other:?}"),
        };
        let reply = crate::ls::reply::finish(&state, &job, &res, end, None);
        let Reply::One(bytes) = reply else {
            panic!("no answer: {reply:?}");
        };
        let h = dns::WireHeader::read(&bytes).unwrap();
        assert_eq!(h.rcode(), 2, "the pool's on_timeout: SERVFAIL");
        let counters = route.counters.as_ref().unwrap();
        assert_eq!(counters.answers[2].load(Relaxed), 1);
        assert_eq!(counters.queries.load(Relaxed), 1);
    }

    /// The sticky table (allocated whole) exists only under `order = "sticky"`;
    /// a reload to `sticky` builds it.
    #[test]
    fn the_sticky_table_is_built_only_for_the_sticky_order() {
        let mut c = LsConfig {
            sticky_size: crate::config::MAX_STICKY_SIZE,
            ..LsConfig::default()
        };
        let b = Balancer::new(&c);
        assert!(b.state().all.sticky.is_none());
        c.order = Order::Sticky;
        c.sticky_size = 8;
        b.reload(&c);
        assert!(b.state().all.sticky.is_some());
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::dns::Transport;
    use crate::server::Via;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    /// The door answers a rule's made-up answer at once (counted as a
    /// query and an answer), and a rule that does not apply on a transport
    /// lets the query through.
    #[test]
    fn a_rule_answers_at_the_door_on_its_transports_only() {
        let text = "[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n\
                    [[ls.rule]]\nname = \"no-any\"\n\
                    match = { qtype = [\"ANY\"], transport = [\"udp\", \"dot\"] }\n\
                    action = \"truncate\"\n";
        let c = crate::config::Config::from_toml(text, std::path::Path::new("c.toml")).unwrap();
        let b = Balancer::new(c.ls.as_ref().unwrap());
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::ANY,
        ));
        m.set_edns(Edns::new());
        let raw = m.to_vec().unwrap();
        let admit = |transport, via| {
            b.admit(Request {
                raw: &raw,
                src: std::net::SocketAddr::from(([127, 0, 0, 1], 5353)),
                transport,
                via,
                local: None,
            })
        };
        let Admission::Reply(Reply::One(tc)) = admit(Transport::Udp, Via::Udp) else {
            panic!("not answered at the door");
        };
        let h = dns::WireHeader::read(&tc).unwrap();
        assert!(h.truncated() && h.id == m.metadata.id);
        // Truncation means nothing on a stream: the rule does not apply.
        assert!(matches!(
            admit(Transport::Tcp, Via::Tcp),
            Admission::Forward(..)
        ));
        assert!(matches!(
            admit(Transport::Tcp, Via::Dot),
            Admission::Forward(..)
        ));
        let counts: Vec<_> = b.state().rules.counts().map(|(_, _, n)| n).collect();
        assert_eq!(counts, [1]);
        assert_eq!(b.metrics().queries.load(Relaxed), 3);
    }
}

#[cfg(test)]
mod opcode_tests {
    use super::*;
    use crate::dns::Transport;
    use crate::server::Via;

    /// A rule on UPDATE (or STATUS) acts on such a message, which the
    /// LS otherwise answers NOTIMP; an opcode no rule names stays NOTIMP.
    #[test]
    fn a_rule_on_an_opcode_the_ls_does_not_serve_acts_on_it() {
        let text = "[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n\
                    [[ls.rule]]\nname = \"upd\"\nmatch = { opcode = \"UPDATE\" }\naction = \"refuse\"\n\
                    [[ls.rule]]\nname = \"status\"\nmatch = { opcode = \"STATUS\" }\naction = \"drop\"\n";
        let c = crate::config::Config::from_toml(text, std::path::Path::new("c.toml")).unwrap();
        let b = Balancer::new(c.ls.as_ref().unwrap());
        // example.org. SOA, with opcode `op` (the zone section of an UPDATE).
        let message = |op: u8| {
            let mut m = vec![0, 9, op << 3, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(b"\x07example\x03org\x00\x00\x06\x00\x01");
            m
        };
        let admit = |raw: &[u8]| {
            let req = Request {
                raw,
                src: std::net::SocketAddr::from(([127, 0, 0, 1], 5353)),
                transport: Transport::Udp,
                via: Via::Udp,
                local: None,
            };
            match b.admit(req) {
                Admission::Reply(Reply::One(a)) => Some(dns::WireHeader::read(&a).unwrap().rcode()),
                Admission::Reply(_) => None,
                Admission::Forward(..) => panic!("forwarded"),
            }
        };
        assert_eq!(admit(&message(5)), Some(5), "UPDATE: REFUSED");
        assert_eq!(admit(&message(2)), None, "STATUS: dropped");
        assert_eq!(admit(&message(1)), Some(4), "IQUERY: NOTIMP");
        let hits: Vec<_> = b.state().rules.counts().map(|(_, _, n)| n).collect();
        assert_eq!(hits, [1, 1]);
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use crate::dns::Transport;
    use crate::server::Via;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestRunner};

    /// What the door decided, comparable.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Reply(Option<Vec<u8>>),
        Forward(Option<usize>, Option<std::time::Duration>),
    }

    fn outcome(a: Admission) -> Outcome {
        match a {
            Admission::Reply(Reply::One(b)) => Outcome::Reply(Some(b)),
            Admission::Reply(_) => Outcome::Reply(None),
            Admission::Forward(_, f) => Outcome::Forward(f.route(), f.delay()),
        }
    }

    /// For random rule sets and random queries, the UDP fast path (its
    /// worker's own counts, `admit_by`) and the async path (`admit`) pick
    /// the same action: the same made-up answer, drop, pool or delay.
    #[test]
    fn the_fast_path_and_the_async_path_pick_the_same_action() {
        let action = prop::sample::select(vec![
            "\"drop\"",
            "\"refuse\"",
            "\"nxdomain\"",
            "\"allow\"",
            "\"truncate\"",
            "{ delay_ms = 5 }",
            "{ pool = \"org\" }",
            "{ spoof = [\"192.0.2.1\", \"2001:db8::1\"] }",
            "{ spoof_cname = \"x.example.org.\" }",
        ]);
        let cond = prop::sample::select(vec![
            "suffix = [\"example.org\"]",
            "suffix = [\"org\", \"net\"]",
            "qtype = [\"AAAA\", \"MX\"]",
            "client = [\"192.0.2.0/24\"]",
            "transport = [\"udp\"]",
            "rd = false",
            "min_labels = 3",
        ]);
        let rules = prop::collection::vec((cond, action), 0..8);
        let label = prop::sample::select(vec!["www", "a", "example", "ORG", "net", "x"]);
        let query = (
            prop::collection::vec(label, 1..4),
            prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::MX]),
            prop::sample::select(vec!["192.0.2.9", "10.9.9.9"]),
            any::<bool>(),
        );
        let mut runner = TestRunner::new(Cases::with_cases(64));
        runner
            .run(
                &(rules, prop::collection::vec(query, 1..8)),
                |(rules, queries)| {
                    let mut text = String::from(
                        "[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n\
                         [[ls.pool]]\nname = \"org\"\nbackends = [\"b\"]\nzones = [\"org\"]\n",
                    );
                    for (i, (cond, act)) in rules.iter().enumerate() {
                        text.push_str(&format!(
                            "[[ls.rule]]\nname = \"r{i}\"\nmatch = {{ {cond} }}\naction = {act}\n"
                        ));
                    }
                    let c = crate::config::Config::from_toml(&text, std::path::Path::new("c.toml"))
                        .unwrap();
                    let ls = c.ls.as_ref().unwrap();
                    let (fast, slow) = (Balancer::new(ls), Balancer::new(ls));
                    let mut mine = fast.dynblocks().worker_counts();
                    for (labels, qtype, client, rd) in queries {
                        let mut m = Message::query();
                        m.metadata.recursion_desired = rd;
                        let name = Name::from_ascii(labels.join(".") + ".").unwrap();
                        m.add_query(Query::query(name, qtype));
                        let raw = m.to_vec().unwrap();
                        let req = Request {
                            raw: &raw,
                            src: std::net::SocketAddr::new(client.parse().unwrap(), 5353),
                            transport: Transport::Udp,
                            via: Via::Udp,
                            local: None,
                        };
                        let a = outcome(fast.admit_by(req, Some(&mut mine)));
                        let b = outcome(slow.admit(req));
                        prop_assert_eq!(a, b, "{}", text);
                    }
                    Ok(())
                },
            )
            .unwrap();
    }
}

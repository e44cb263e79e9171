//! The LS's UDP fast path: one worker per SO_REUSEPORT client socket that
//! owns everything a UDP client query needs, so a query never leaves it. Each
//! worker runs alone on a thread of its own (`server::thread`), in a
//! blocking loop of its own over epoll ([`crate::server::event_loop`]): its
//! sockets in its own epoll set, registered for reading (and for writing
//! only while a send is pending), each wait's timeout its own next timer
//! (at most 100 ms), its stop an eventfd in the set. No runtime, no timer
//! wheel, no waker: a wake-up is one `epoll_wait`; or, with nothing in
//! flight and no timer, none at all: the worker then sleeps in its client
//! socket's `recvmmsg` itself (`rounds`: bounded by the same 100 ms, woken
//! by the stop), back to `epoll_wait` once a query goes upstream.
//!
//! A worker owns its client socket, [`UPSTREAM_SOCKETS`] upstream sockets
//! (each on a port the kernel picks at random), a table of queries in flight
//! indexed by upstream ID (one per upstream socket), and one timer heap for
//! every hedge, per-try and deadline timer of its queries. Client queries
//! and upstream responses are read in batches (`recvmmsg`); the upstream
//! queries and the client answers of one round leave in batches
//! (`sendmmsg`); an upstream query the kernel refuses to send (any error
//! but `EAGAIN`) ends its try in that same flush, as a refused send does on
//! the async path (`Worker::on_refused`). No task per query,
//! no channel, no wake-up of another task:
//! the decisions are the pure
//! [`Resolution`](crate::ls::resolution::Resolution) state machine, the
//! replies are made by [`reply::finish`](crate::ls::reply::finish), as
//! on the async path that TCP clients use.
//!
//! Forwarding safety (RFC 5452), by the upstream core's rules
//! ([`crate::ls::upstream`]): every upstream query gets a random ID free
//! on a socket picked at random; a response is accepted only on that socket,
//! with that ID, from the address it was sent to, carrying the same question
//! ([`crate::ls::upstream::accept`]); anything else is dropped and counted.
//! A socket is replaced by one on a new port after about
//! [`ROTATE_AFTER`](crate::ls::upstream::ROTATE_AFTER)
//! queries (a budget drawn at random per socket, so they do not wear out
//! together) at once, and the retired one is still read until no ID is in
//! use on it (see [`crate::ls::upstream::sockets`]). An answer that comes
//! after its query ended (a hedge's loser) is counted as late, and still
//! feeds its backend's latency, until
//! [`LATE_GRACE`](crate::ls::upstream::LATE_GRACE) past the query's
//! deadline.
//!
//! The worker (its state, and everything it does, in one `impl`: a client
//! query, an upstream datagram, its timers) is in `worker`, its loop (its
//! waits and rounds, its sockets' watch in the epoll set) in `rounds`, its
//! flights and late entries in `flight`, which timer entries are live in
//! `timers`, a query for a backend reached over TLS or QUIC handed to the
//! async path in `divert`, an admitted query (the cache, the
//! in-flight bound, a flight; or held by a `delay_ms` rule) in `admitted`. None of them
//! imports from this one.
//!
//! Nothing is allocated per query once a worker is warm: a query's bytes,
//! the response kept for it, and the datagrams of a round live in buffers
//! that are reused (a free list of byte buffers, [`SendQueue`]s); candidate
//! lists are inline. The reply is the kept response patched in place.
//!
//! Overload is shed, not queued. Each datagram carries the time the kernel
//! received it (`SO_TIMESTAMPNS`):
//! - once client queries have waited in the socket longer than
//!   [`queue_bound`] (a tenth of `timeout_ms`, at most
//!   [`MAX_QUEUE_WAIT`](crate::server::shed::MAX_QUEUE_WAIT)) for
//!   [`STANDING`](crate::server::shed::STANDING) on end and for more than
//!   [`BURST`](crate::server::shed::BURST) queries — a
//!   standing queue, not a burst or a scheduling hiccup — each query read
//!   that waited longer is late, until the waits are back under the bound
//!   (CoDel's rule, see [`QueueGate`], in [`crate::server::shed`]).
//!   Answering them would only make every later query wait as long. The
//!   door reads a late one first: one it would answer itself (a block, a
//!   rule, the ACL) is dropped unanswered, one to be forwarded is spared
//!   (answered late) while such are at most a quarter of the late ones
//!   and it waited at most four bounds, else dropped too; either drop is
//!   counted as shed (`queue`). A flood a block has singled out is shed,
//!   not the clients beside it;
//! - an upstream answer is timed by when it arrived, not by when the worker
//!   got round to reading it, and the answers already arrived are read
//!   before any deadline of the round is judged: the LS's own backlog never
//!   makes a backend look slow or dead;
//! - with `max_inflight` (split across workers) reached, or, once half of
//!   it is taken, with the client's group over its share of it
//!   ([`crate::guard::fair`]: one client cannot starve the others), a query is
//!   answered SERVFAIL at once from its header and question, before it is
//!   copied anywhere, counted as shed (`inflight`).
use std::sync::Arc;

use super::balancer::Balancer;
use crate::server::event_loop::LoopStop;
use worker::Worker;

mod admitted;
mod divert;
mod flight;
mod rounds;
mod tap;
mod timers;
mod worker;

pub(crate) use divert::AsyncLane;
pub use worker::UPSTREAM_SOCKETS;

/// Serves UDP clients on `client` until `stop` is set, then answers the
/// queries still in flight (each ends by its deadline) and returns: a
/// blocking loop, for a thread of its own.
///
/// # Errors
/// The OS error of its epoll set: the worker cannot serve.
pub(crate) fn run(
    balancer: Arc<Balancer>,
    client: std::net::UdpSocket,
    max_flights: usize,
    stop: Arc<LoopStop>,
    rt: tokio::runtime::Handle,
) -> std::io::Result<()> {
    let mut w = Worker::new(balancer, client, max_flights, stop)?;
    w.to_async = AsyncLane::new(rt, &w.client, max_flights);
    rounds::run(&mut w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::batch;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;
    use tokio::net::UdpSocket;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    /// With `max_inflight` reached (one query held by a backend that
    /// answers only health probes), further queries get SERVFAIL at once,
    /// each counted as shed; the backend is charged with nothing for them
    /// and stays up.
    #[tokio::test]
    async fn over_max_inflight_is_servfail_at_once_and_counted_as_shed() {
        use crate::config::{BackendConfig, LsConfig};
        // The stalled backend: answers the root probe, never a client query.
        let backend = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let baddr = backend.local_addr().unwrap();
        let stalled = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = backend.recv_from(&mut buf).await {
                if n > 12 && buf[12] == 0 {
                    buf[2] |= 0x84;
                    let _ = backend.send_to(&buf[..n], from).await;
                }
            }
        });
        let cfg = LsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: 1,
            max_inflight: 1,
            timeout_ms: 10_000,
            backend: vec![BackendConfig {
                name: "stalled".into(),
                addr: baddr,
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            }],
            ..LsConfig::default()
        };
        let balancer = Arc::new(Balancer::new(&cfg));
        let listeners = crate::server::Listeners::bind(&cfg.listen, 1).unwrap();
        let ls = listeners.local_addrs()[0];
        super::super::probe::first_round(&balancer, Duration::from_secs(2)).await;
        let token = CancellationToken::new();
        let server = tokio::spawn(super::super::run::serve(
            balancer.clone(),
            listeners,
            super::super::run::server_options(&cfg),
            token.clone(),
        ));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let query = |id: u8| {
            let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            q.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
            q
        };
        // The first query takes the one place in flight (its answer would
        // come at the deadline, long after this test).
        client.send_to(&query(1), ls).await.unwrap();
        let m = balancer.metrics();
        let started = std::time::Instant::now();
        while balancer.state().backends[0].stats.sent.load(Relaxed) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never forwarded"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut buf = [0u8; 512];
        for id in 2..12u8 {
            client.send_to(&query(id), ls).await.unwrap();
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
                .await
                .expect("SERVFAIL at once, not at the deadline")
                .unwrap();
            assert!(n >= 12 && buf[1] == id, "the answer to query {id}");
            assert_eq!(buf[3] & 0x0f, 2, "SERVFAIL");
        }
        assert_eq!(m.shed_inflight.load(Relaxed), 10);
        assert_eq!(m.shed_queue.load(Relaxed), 0);
        let b = &balancer.state().backends[0];
        assert_eq!(
            b.stats.sent.load(Relaxed),
            1,
            "shed queries are not forwarded"
        );
        assert_eq!(b.stats.timeouts.load(Relaxed), 0);
        assert_eq!(b.stats.errors.load(Relaxed), 0);
        assert!(b.is_up(), "the backend is not blamed for the LS's bound");
        // The held query would be answered at its deadline: not waited for.
        token.cancel();
        server.abort();
        stalled.abort();
    }

    // ---- upstream queries the kernel refuses to send ----

    use crate::config::{BackendConfig, HedgeDelay, Layout, LsConfig, Order, Strategy};
    use crate::ls::upstream::LATE_GRACE;
    use crate::ls::upstream::ids::IdUse;

    /// A broadcast address: the kernel refuses to send to it (`EACCES`,
    /// the socket has no `SO_BROADCAST`).
    fn refused_addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 255, 255, 255], port))
    }

    /// A worker over `backends` (asked in this order, all up) under
    /// `async_path`, replicated, with a deadline of 10 s and a hedge delay and
    /// per-try timeout of 8 s, serving `client`.
    fn worker(
        backends: &[std::net::SocketAddr],
        strategy: Strategy,
        client: std::net::UdpSocket,
    ) -> Worker {
        worker_with(backends, strategy, client, |_| {})
    }

    /// A [`worker`] whose config `edit` changed first.
    fn worker_with(
        backends: &[std::net::SocketAddr],
        strategy: Strategy,
        client: std::net::UdpSocket,
        edit: impl FnOnce(&mut LsConfig),
    ) -> Worker {
        worker_tapped(backends, strategy, client, edit, None)
    }

    /// The rig of a round's tests: a [`worker_tapped`] (hedge, its config
    /// `edit`ed, writing to `tap` when given) over one backend socket
    /// (returned: what was forwarded waits there), serving a client socket
    /// of its own (its address returned, for the test's queries).
    fn rig(
        edit: impl FnOnce(&mut LsConfig),
        tap: Option<crate::dnstap::Dnstap>,
    ) -> (Worker, std::net::UdpSocket, std::net::SocketAddr) {
        let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = client.local_addr().unwrap();
        let backends = [backend.local_addr().unwrap()];
        let w = worker_tapped(&backends, Strategy::Hedge, client, edit, tap);
        (w, backend, to)
    }

    /// The `[[ls.rule]]` tables `toml` (under an `[ls]` with one backend),
    /// as the config reads them.
    fn rules(toml: &str) -> Vec<crate::config::RuleConfig> {
        let text = format!("[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n{toml}");
        let cfg = crate::config::Config::from_toml(&text, std::path::Path::new("c.toml"));
        cfg.unwrap().ls.unwrap().rule
    }

    /// A [`worker_with`] writing to `tap` when given.
    fn worker_tapped(
        backends: &[std::net::SocketAddr],
        strategy: Strategy,
        client: std::net::UdpSocket,
        edit: impl FnOnce(&mut LsConfig),
        tap: Option<crate::dnstap::Dnstap>,
    ) -> Worker {
        let mut cfg = LsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: 1,
            strategy,
            order: Order::Fixed,
            layout: Layout::Replicated,
            timeout_ms: 10_000,
            try_timeout_ms: 8_000,
            hedge_delay_ms: HedgeDelay::Fixed(8_000),
            backend: backends
                .iter()
                .enumerate()
                .map(|(i, &addr)| BackendConfig {
                    name: format!("b{i}"),
                    addr,
                    weight: 1,
                    notify_key: None,
                    transport: Default::default(),
                    tls_name: None,
                    ca: None,
                    proxy: false,
                })
                .collect(),
            ..LsConfig::default()
        };
        edit(&mut cfg);
        let balancer = Balancer::new(&cfg);
        let balancer = Arc::new(match tap {
            Some(tap) => balancer.with_dnstap(tap),
            None => balancer,
        });
        for b in &balancer.state().backends {
            b.set_up(true);
        }
        Worker::new(balancer, client, 16, LoopStop::new().unwrap()).unwrap()
    }

    /// A [`worker`] over `backends` that was asked [`wire_query`]`(id)`
    /// by a client socket of its own (returned: the answer goes there) and
    /// flushed its first sends; with the time just before it was asked.
    async fn asked(
        backends: &[std::net::SocketAddr],
        strategy: Strategy,
        id: u8,
    ) -> (Worker, UdpSocket, Instant) {
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_nonblocking(true).unwrap();
        let asker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut w = worker(backends, strategy, client);
        let t0 = Instant::now();
        admitted::on_client(
            &mut w,
            &wire_query(id),
            batch::Peer::from(asker.local_addr().unwrap()),
            t0,
        );
        rounds::flush(&mut w);
        (w, asker, t0)
    }

    /// `www. A` with ID `id`.
    fn wire_query(id: u8) -> Vec<u8> {
        let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
        q
    }

    /// Per backend: (sent, timeouts, errors, outstanding).
    fn counts(w: &Worker) -> Vec<(u64, u64, u64, u32)> {
        w.balancer
            .state()
            .backends
            .iter()
            .map(|b| {
                let s = &b.stats;
                (
                    s.sent.load(Relaxed),
                    s.timeouts.load(Relaxed),
                    s.errors.load(Relaxed),
                    s.outstanding.load(Relaxed),
                )
            })
            .collect()
    }

    /// IDs in use on the worker's upstream sockets.
    fn live_ids(w: &Worker) -> usize {
        (0..w.ups.len())
            .filter_map(|s| w.ups.get(s))
            .map(|u| u.ids.live())
            .sum()
    }

    /// Past the deadline, then past its grace: a refused query's late
    /// entry is settled as a loss of its backend (once), then forgotten;
    /// nothing is left behind.
    fn expire_all(w: &mut Worker) {
        let past = Instant::now() + Duration::from_secs(11);
        rounds::fire_timers(w, past);
        rounds::fire_timers(w, past + LATE_GRACE);
        assert_eq!((w.flights.len, w.late.len), (0, 0), "nothing left");
        assert_eq!(live_ids(w), 0, "every ID free");
    }

    /// Under each strategy, a first backend the kernel refuses to reach
    /// ends its try in the flush that tried it: the second backend is
    /// asked in the same flush (not at the hedge delay or the per-try
    /// timeout, and not as a hedge). The refused try is charged as on the
    /// async path: in flight until the deadline, then one timeout (not a
    /// second one when the query itself times out), its ID held by its
    /// flight, then by a late entry, until then.
    #[tokio::test]
    async fn a_refused_query_asks_the_next_backend_at_once_and_is_charged_at_the_deadline() {
        for strategy in [Strategy::Hedge, Strategy::Sequential, Strategy::Race] {
            // Reads nothing, answers nothing.
            let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let backends = [refused_addr(53), silent.local_addr().unwrap()];
            let (mut w, _asker, _) = asked(&backends, strategy, 1).await;
            assert_eq!(w.flights.len, 1, "{strategy}: still waits for b1");
            assert_eq!(w.late.len, 0, "{strategy}: retired when the flight ends");
            assert_eq!(
                counts(&w),
                [(1, 0, 0, 1), (1, 0, 0, 1)],
                "{strategy}: b1 asked at once; b0 in flight until the deadline"
            );
            assert_eq!(w.balancer.metrics.hedges.load(Relaxed), 0, "{strategy}");
            let f = &w.tracks[0];
            let tries: Vec<_> = f.attempts.iter().map(|a| (a.backend, a.refused)).collect();
            assert_eq!(
                tries,
                [(0, true), (1, false)],
                "{strategy}: b0's try refused, the one left is b1's"
            );
            let held = w
                .ups
                .get(f.attempts[0].sock)
                .map(|u| u.ids.get(f.attempts[0].id));
            assert_eq!(
                held,
                Some(IdUse::Flight(0)),
                "{strategy}: the refused ID stays in use, held by its flight"
            );
            expire_all(&mut w);
            // b0: one loss (its refused try); b1: the query's timeout.
            assert_eq!(
                counts(&w),
                [(1, 1, 0, 0), (1, 1, 0, 0)],
                "{strategy}: each charged once"
            );
        }
    }

    /// Every backend refused: the client's SERVFAIL leaves in the same
    /// flush, not at the deadline; each backend is charged as above.
    #[tokio::test]
    async fn every_backend_refused_is_servfail_at_once() {
        for strategy in [Strategy::Hedge, Strategy::Sequential, Strategy::Race] {
            let backends = [refused_addr(53), refused_addr(54)];
            let (mut w, asker, _) = asked(&backends, strategy, 2).await;
            // Sent by the flush above (the deadline, 10 s, is not waited for).
            let mut buf = [0u8; 512];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), asker.recv_from(&mut buf))
                .await
                .expect("answered in the flush")
                .unwrap();
            assert!(
                n >= 12 && buf[1] == 2,
                "{strategy}: the answer to the query"
            );
            assert_eq!(buf[3] & 0x0f, 2, "{strategy}: SERVFAIL");
            assert_eq!(w.flights.len, 0, "{strategy}");
            assert_eq!(w.late.len, 2, "{strategy}");
            assert_eq!(counts(&w), [(1, 0, 0, 1), (1, 0, 0, 1)], "{strategy}");
            assert_eq!(w.balancer.metrics.hedges.load(Relaxed), 0, "{strategy}");
            expire_all(&mut w);
            assert_eq!(counts(&w), [(1, 1, 0, 0), (1, 1, 0, 0)], "{strategy}");
            assert!(
                w.balancer.state().backends.iter().all(|b| b.is_up()),
                "{strategy}: one loss is below `fall`"
            );
        }
    }

    /// A re-ask's copy the kernel refused is no loss of its backend when
    /// that backend's other copy answers the client (the async path's
    /// `WonBy`): the refusal is simulated on a copy queued, not sent.
    #[tokio::test]
    async fn a_refused_re_ask_is_no_loss_when_its_twin_answers() {
        let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        backend
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let baddr = backend.local_addr().unwrap();
        let (mut w, _asker, t0) = asked(&[baddr], Strategy::Hedge, 3).await;
        let mut first = [0u8; 512];
        let (n, _) = backend.recv_from(&mut first).unwrap();
        // The re-ask (one backend, silent past the 8 s delay), queued.
        rounds::fire_timers(&mut w, t0 + Duration::from_millis(8_100));
        let f = &w.tracks[0];
        assert_eq!(f.attempts.len(), 2, "re-asked");
        let (first_sock, sock, id) = (f.attempts[0].sock, f.attempts[1].sock, f.attempts[1].id);
        for out in &mut w.to_upstream {
            out.clear();
        }
        w.on_refused(sock, id, t0 + Duration::from_millis(8_100));
        let f = &w.tracks[0];
        let tries: Vec<_> = f.attempts.iter().map(|a| a.refused).collect();
        assert_eq!(
            (w.flights.len, w.late.len, tries),
            (1, 0, vec![false, true]),
            "the first copy still waited for, the re-ask refused"
        );
        // The first copy's answer wins.
        first[2] |= 0x80;
        let at = t0 + Duration::from_millis(8_200);
        w.on_upstream(first_sock, &first[..n], baddr, false, at)
            .unwrap();
        assert_eq!(w.flights.len, 0, "answered");
        expire_all(&mut w);
        assert_eq!(
            counts(&w),
            [(2, 0, 0, 0)],
            "both copies sent, no timeout: its backend answered"
        );
    }

    /// A re-ask's copy the kernel refused while the first copy
    /// stays silent to the deadline is charged once, by the query's
    /// timeout, not a second time as the refused copy's loss.
    #[tokio::test]
    async fn a_refused_re_ask_whose_twin_stays_silent_is_charged_once() {
        let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let baddr = backend.local_addr().unwrap();
        let (mut w, _asker, t0) = asked(&[baddr], Strategy::Hedge, 4).await;
        rounds::fire_timers(&mut w, t0 + Duration::from_millis(8_100));
        let f = &w.tracks[0];
        assert_eq!(f.attempts.len(), 2, "re-asked");
        let (sock, id) = (f.attempts[1].sock, f.attempts[1].id);
        for out in &mut w.to_upstream {
            out.clear();
        }
        w.on_refused(sock, id, t0 + Duration::from_millis(8_100));
        assert_eq!(w.flights.len, 1, "the first copy still waited for");
        // Nobody answers: the query times out.
        expire_all(&mut w);
        assert_eq!(counts(&w), [(2, 1, 0, 0)], "two copies, one timeout");
    }

    // ---- read what is readable, then expire ----

    /// Waits (at most 5 s) until a datagram is queued in `sock`: a
    /// readiness wait; the datagram stays there.
    fn queued_in(sock: &std::net::UdpSocket) {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(sock, PollFlags::IN)];
        let five = Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        assert_eq!(poll(&mut fds, Some(&five)).unwrap(), 1, "it arrived");
    }

    /// A backend's answer to `query` (as the backend got it, with its
    /// upstream ID): NOERROR, one A record.
    fn answer_to(query: &[u8]) -> Vec<u8> {
        let mut a = vec![
            query[0],
            query[1],
            query[2] | 0x84,
            0,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            0,
        ];
        a.extend_from_slice(&wire_query(0)[crate::dns::HEADER_LEN..]);
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        a
    }

    /// The upstream socket slot of flight 0's try to `backend`.
    fn try_sock(w: &Worker, backend: usize) -> usize {
        let f = &w.tracks[0];
        f.attempts
            .iter()
            .find(|a| a.backend == backend)
            .unwrap()
            .sock
    }

    /// The real answer wins over a timer due at the round's time (its hedge
    /// delay, then its deadline), although the wait did not report its
    /// socket (the answer came after the wait returned, or after the round's
    /// time was read on a loaded machine): the round reads every socket
    /// with an ID in use before it fires a timer. Without that, the query
    /// was re-asked needlessly, or answered with the LS's own reply and its
    /// backend charged a timeout, the answer left unread in the socket.
    /// The round is driven at a made-up time: no clock waited for.
    #[tokio::test]
    async fn an_answer_the_wait_did_not_report_wins_over_a_timer_due() {
        for (due_ms, timer) in [(8_100, "hedge delay"), (10_100, "deadline")] {
            let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            backend
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let baddr = backend.local_addr().unwrap();
            let (mut w, asker, t0) = asked(&[baddr], Strategy::Hedge, 5).await;
            let mut query = [0u8; 512];
            let (n, from) = backend.recv_from(&mut query).unwrap();
            backend.send_to(&answer_to(&query[..n]), from).unwrap();
            queued_in(&w.ups.get(try_sock(&w, 0)).unwrap().sock);
            // The wait reported nothing; the query's timer is due.
            assert!(w.ups_ready.is_empty() && !w.client_ready);
            rounds::round(
                &mut w,
                &mut rounds::Slots::new(),
                t0 + Duration::from_millis(due_ms),
            );
            assert_eq!((w.flights.len, w.late.len), (0, 0), "{timer}: answered");
            assert_eq!(
                counts(&w),
                [(1, 0, 0, 0)],
                "{timer}: asked once, no timeout charged"
            );
            assert_eq!(w.balancer.metrics.hedges.load(Relaxed), 0, "{timer}");
            let mut buf = [0u8; 512];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), asker.recv_from(&mut buf))
                .await
                .expect("answered in the round")
                .unwrap();
            assert!(
                n >= crate::dns::HEADER_LEN && buf[1] == 5,
                "{timer}: the answer to the query"
            );
            assert_eq!(
                (buf[3] & 0x0f, buf[7]),
                (0, 1),
                "{timer}: the backend's NOERROR and its A record"
            );
        }
    }

    /// A flight's timer left in the heap when its answer came (stale)
    /// does not act on the next flight made in its slot: at the old time
    /// nothing fires (no hedge, no timer armed again), and the new flight's
    /// own timer is the next wake-up and fires at its time. A liveness rule
    /// that looked at the slot only would drive the new flight at the old
    /// time and arm its timer a second time.
    #[tokio::test]
    async fn a_stale_timer_does_not_act_on_the_next_flight_in_its_slot() {
        let b0 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b0.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let b1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addrs = [b0.local_addr().unwrap(), b1.local_addr().unwrap()];
        let (mut w, asker, t0) = asked(&addrs, Strategy::Hedge, 5).await;
        let first = w.flights.get(0).and_then(|f| f.timer_at).unwrap();
        let mut query = [0u8; 512];
        let (n, _) = b0.recv_from(&mut query).unwrap();
        let sock = try_sock(&w, 0);
        let at = t0 + Duration::from_millis(1);
        w.on_upstream(sock, &answer_to(&query[..n]), addrs[0], false, at)
            .unwrap();
        assert_eq!(w.flights.len, 0, "answered: its hedge timer is stale");
        // The next query, 2 s later, takes slot 0; its hedge is due 8 s on.
        let later = t0 + Duration::from_secs(2);
        w.clock = worker::RoundClock::at(later);
        let peer = batch::Peer::from(asker.local_addr().unwrap());
        admitted::on_client(&mut w, &wire_query(6), peer, later);
        let second = w.flights.get(0).and_then(|f| f.timer_at).unwrap();
        assert!(second > first, "its own timer, later");
        let pushes = w.timer_pushes;
        rounds::fire_timers(&mut w, first);
        assert_eq!(w.timer_pushes, pushes, "nothing armed again");
        assert_eq!(w.flights.get(0).and_then(|f| f.timer_at), Some(second));
        assert_eq!(w.balancer.metrics.hedges.load(Relaxed), 0, "no hedge");
        assert_eq!(w.next_timer(), Some(second), "the stale one dropped");
        rounds::fire_timers(&mut w, second);
        assert_eq!(
            w.balancer.metrics.hedges.load(Relaxed),
            1,
            "its hedge at its time"
        );
        assert_eq!(counts(&w)[1].0, 1, "the second backend asked");
    }

    /// A hedge loser's answer that sits unread in its socket when its late
    /// entry's deadline is due settles the entry (a latency, not a loss):
    /// the round reads it before the entry is charged as a timeout of its
    /// backend.
    #[tokio::test]
    async fn a_late_answer_the_wait_did_not_report_is_no_timeout_at_the_deadline() {
        let b0 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b1 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for b in [&b0, &b1] {
            b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let addrs = [b0.local_addr().unwrap(), b1.local_addr().unwrap()];
        let (mut w, _asker, t0) = asked(&addrs, Strategy::Race, 6).await;
        let (mut q0, mut q1) = ([0u8; 512], [0u8; 512]);
        let (n0, _) = b0.recv_from(&mut q0).unwrap();
        let (n1, from1) = b1.recv_from(&mut q1).unwrap();
        // b1's answer waits in its socket, unread.
        b1.send_to(&answer_to(&q1[..n1]), from1).unwrap();
        let (s0, s1) = (try_sock(&w, 0), try_sock(&w, 1));
        queued_in(&w.ups.get(s1).unwrap().sock);
        // b0's answer wins first: b1's try becomes a late entry.
        let at = t0 + Duration::from_millis(1);
        w.on_upstream(s0, &answer_to(&q0[..n0]), addrs[0], false, at)
            .unwrap();
        assert_eq!((w.flights.len, w.late.len), (0, 1));
        rounds::round(
            &mut w,
            &mut rounds::Slots::new(),
            t0 + Duration::from_millis(10_100),
        );
        assert_eq!(w.late.len, 0, "settled by its answer");
        assert_eq!(live_ids(&w), 0);
        assert_eq!(
            counts(&w),
            [(1, 0, 0, 0), (1, 0, 0, 0)],
            "b1 answered (late): no timeout charged"
        );
        let b1_samples = w.balancer.state().backends[1]
            .stats
            .latency
            .snapshot()
            .count;
        assert_eq!(b1_samples, 1, "b1's answer time fed its latency");
    }

    /// A flood on an upstream socket in use does not hold the
    /// worker: one round reads at most [`rounds::UPSTREAM_BATCHES`] batches
    /// of it (each datagram dropped and counted); the rest is left for the
    /// next wait, which reports the socket at once.
    #[tokio::test]
    async fn a_flooded_upstream_socket_is_read_a_bounded_amount_per_round() {
        let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let baddr = backend.local_addr().unwrap();
        let (mut w, _asker, t0) = asked(&[baddr], Strategy::Hedge, 7).await;
        let s = try_sock(&w, 0);
        let port = w.ups.get(s).unwrap().sock.local_addr().unwrap().port();
        let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let bound = rounds::UPSTREAM_BATCHES * worker::UPSTREAM_SLOTS;
        let junk = [0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for _ in 0..bound + 10 {
            flood.send_to(&junk, ("127.0.0.1", port)).unwrap();
        }
        w.ups_ready.push(s);
        // No timer due: only what the wait reported is read.
        rounds::round(
            &mut w,
            &mut rounds::Slots::new(),
            t0 + Duration::from_millis(1),
        );
        let d = &w.balancer.metrics.drops;
        let dropped: u64 = [&d.wrong_source, &d.wrong_id, &d.wrong_question, &d.late]
            .iter()
            .map(|c| c.load(Relaxed))
            .sum();
        assert_eq!(
            dropped, bound as u64,
            "one round's bound read, each dropped"
        );
        let sock = &w.ups.get(s).unwrap().sock;
        let (mut left, mut buf) = (0, [0u8; 64]);
        while sock.recv(&mut buf).is_ok() {
            left += 1;
        }
        assert_eq!(left, 10, "the rest left for the next round");
        assert_eq!(w.flights.len, 1, "its query still waits for its answer");
    }

    /// Once the LS is told to read no new client query (it is stopping:
    /// `/ready` says so right after), the next round reads none, although
    /// the wait reported the client socket readable; the worker is
    /// stopping. The same round without the close reads and forwards it.
    #[tokio::test]
    async fn a_round_after_udp_reads_are_closed_reads_no_client_query() {
        for closed in [false, true] {
            let backend = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            backend.set_nonblocking(true).unwrap();
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.set_nonblocking(true).unwrap();
            let door = client.local_addr().unwrap();
            let mut w = worker(&[backend.local_addr().unwrap()], Strategy::Hedge, client);
            let asker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            asker.send_to(&wire_query(9), door).unwrap();
            queued_in(&w.client);
            if closed {
                w.balancer.close_udp_reads();
            }
            w.client_ready = true;
            rounds::round(&mut w, &mut rounds::Slots::new(), Instant::now());
            assert_eq!(w.flights.len, usize::from(!closed), "closed: {closed}");
            assert_eq!(w.stopping, closed);
            let mut buf = [0u8; 512];
            assert_eq!(
                backend.recv(&mut buf).is_ok(),
                !closed,
                "forwarded only while reads are open (closed: {closed})"
            );
        }
    }

    // ---- the cache-hit path ----

    /// A backend answering `www. A` with one A record, TTL 300: its
    /// address, how many queries it was asked, its task.
    async fn answering_backend() -> (
        std::net::SocketAddr,
        Arc<std::sync::atomic::AtomicU64>,
        tokio::task::JoinHandle<()>,
    ) {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let baddr = backend.local_addr().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = asked.clone();
        let answering = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = backend.recv_from(&mut buf).await {
                seen.fetch_add(1, Relaxed);
                let mut a = buf[..n].to_vec();
                a[2] |= 0x84;
                a[7] = 1;
                a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
                let _ = backend.send_to(&a, from).await;
            }
        });
        (baddr, asked, answering)
    }

    /// A worker with a packet cache over the backend at `baddr` (up),
    /// stopped by `stop`, serving a client socket of its own (its address
    /// returned), for its own loop (`run`) on a thread of its own.
    fn cached_worker(
        baddr: std::net::SocketAddr,
        stop: Arc<LoopStop>,
    ) -> (Worker, std::net::SocketAddr) {
        use crate::config::CacheConfig;
        let cfg = LsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: 1,
            backend: vec![BackendConfig {
                name: "b0".into(),
                addr: baddr,
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            }],
            cache: Some(CacheConfig::default()),
            ..LsConfig::default()
        };
        let balancer = Arc::new(Balancer::new(&cfg));
        for b in &balancer.state().backends {
            b.set_up(true);
        }
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = client.local_addr().unwrap();
        (Worker::new(balancer, client, 16, stop).unwrap(), addr)
    }

    /// Asks `to` [`wire_query`]`(id)` from `asker` and checks its answer
    /// (one A record) came.
    async fn ask(asker: &UdpSocket, to: std::net::SocketAddr, id: u8) {
        asker.send_to(&wire_query(id), to).await.unwrap();
        let mut buf = [0u8; 512];
        tokio::time::timeout(Duration::from_secs(5), asker.recv(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert_eq!((buf[1], buf[7]), (id, 1), "the answer to {id}");
    }

    /// What a worker's loop returned, its error's kind.
    type Ended = tokio::sync::oneshot::Receiver<Result<(), std::io::ErrorKind>>;

    /// Runs `w`'s own loop (`run`) on a thread of its own: the thread, and
    /// what the loop returns once it does.
    fn serving(mut w: Worker) -> (std::thread::JoinHandle<()>, Ended) {
        let (tx, ended) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let _ = tx.send(rounds::run(&mut w).map_err(|e| e.kind()));
        });
        (thread, ended)
    }

    /// Waits for the loop on `thread` to return `Ok` (`why` it should: at
    /// most 10 s, a bound on a hang, not a timing).
    async fn returns((thread, ended): (std::thread::JoinHandle<()>, Ended), why: &str) {
        let ended = tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect(why)
            .unwrap();
        assert_eq!(ended, Ok(()));
        thread.join().unwrap();
    }

    /// A cache hit is served in the round that read it and arms no timer:
    /// nothing is pushed on the worker's timer heap for it (the wait's
    /// timeout is computed anew each time: no sleep to move). Real sockets;
    /// the worker's own blocking loop (`run`) on a thread of its own,
    /// stopped as the server stops it.
    #[tokio::test]
    async fn a_cache_hit_arms_no_timer() {
        let (baddr, asked, answering) = answering_backend().await;
        let stop = LoopStop::new().unwrap();
        let (mut w, addr) = cached_worker(baddr, stop.clone());
        let (tx, pushes) = tokio::sync::oneshot::channel();
        let serving = std::thread::spawn(move || {
            rounds::run(&mut w).unwrap();
            let _ = tx.send((w.timer_pushes, w.timers.len()));
        });
        const HITS: u8 = 40;
        let asker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The miss: forwarded, its answer cached.
        ask(&asker, addr, 0).await;
        let token = CancellationToken::new();
        let stopper = tokio::spawn(crate::server::event_loop::stop_on(token.clone(), stop));
        for id in 1..=HITS {
            ask(&asker, addr, id).await;
        }
        token.cancel();
        stopper.await.unwrap();
        let (pushes, left) = tokio::time::timeout(Duration::from_secs(10), pushes)
            .await
            .expect("the loop returns once stopped")
            .unwrap();
        serving.join().unwrap();
        answering.abort();
        assert_eq!(asked.load(Relaxed), 1, "every query after the first a hit");
        // The miss's flight armed its hedge or deadline timer: that one only.
        assert_eq!(pushes, 1, "timers pushed for 1 miss and {HITS} hits");
        assert_eq!(left, 0, "its stale entry dropped, nothing else armed");
    }

    // ---- the blocking receive ----

    /// With nothing in flight the worker sleeps in its client socket's
    /// receive, not in `epoll_wait`: here with no receive timeout, so that
    /// nothing but a client datagram or the stop ends that sleep. A miss
    /// is answered only if the worker went back to `epoll_wait` while its
    /// query was upstream (the answer comes to an upstream socket); each hit
    /// after it is read by a blocking receive; and the worker, blocked
    /// again after the last one, returns when stopped (the stop shuts the
    /// socket for reading).
    #[tokio::test]
    async fn an_idle_worker_blocks_in_its_receive_and_leaves_it_for_upstream_and_the_stop() {
        let (baddr, asked, answering) = answering_backend().await;
        let stop = LoopStop::new().unwrap();
        let (w, addr) = cached_worker(baddr, stop.clone());
        assert!(w.block_ok, "set up for the blocking receive");
        w.client.set_read_timeout(None).unwrap();
        let blocks = w.blocks.clone();
        let loop_ = serving(w);
        const HITS: u8 = 10;
        let asker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The miss: read by a blocking receive, its answer by `epoll_wait`.
        ask(&asker, addr, 0).await;
        for id in 1..=HITS {
            ask(&asker, addr, id).await;
        }
        // Blocked once for the miss, once for each hit, and once more now.
        let want = u64::from(HITS) + 2;
        let t0 = std::time::Instant::now();
        while blocks.load(Relaxed) < want {
            assert!(t0.elapsed() < Duration::from_secs(10), "blocked again");
            tokio::task::yield_now().await;
        }
        assert_eq!(blocks.load(Relaxed), want, "each query read by one");
        stop.stop();
        returns(loop_, "the blocked worker returns once stopped").await;
        answering.abort();
        assert_eq!(asked.load(Relaxed), 1, "every query after the first a hit");
    }

    /// UDP reads closed while the worker sleeps in its blocking receive
    /// (the LS stopping with no drain: `/ready` says so next): the query
    /// that receive reads next is neither answered nor forwarded, and the
    /// worker, stopping, returns.
    #[tokio::test]
    async fn a_query_read_by_the_blocking_receive_after_reads_closed_is_not_taken() {
        let (baddr, asked, answering) = answering_backend().await;
        let stop = LoopStop::new().unwrap();
        let (w, addr) = cached_worker(baddr, stop);
        w.client.set_read_timeout(None).unwrap();
        let (blocks, balancer) = (w.blocks.clone(), w.balancer.clone());
        let loop_ = serving(w);
        let t0 = std::time::Instant::now();
        while blocks.load(Relaxed) < 1 {
            assert!(t0.elapsed() < Duration::from_secs(10), "blocked");
            tokio::task::yield_now().await;
        }
        balancer.close_udp_reads();
        let asker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        asker.send_to(&wire_query(1), addr).await.unwrap();
        returns(loop_, "the worker returns once it has seen reads closed").await;
        answering.abort();
        assert_eq!(asked.load(Relaxed), 0, "not forwarded");
        let mut buf = [0u8; 512];
        assert!(asker.try_recv(&mut buf).is_err(), "not answered");
        assert_eq!(balancer.metrics().queries.load(Relaxed), 0, "not taken");
    }

    // ---- the snapshot a worker keeps ----

    /// A reload reaches the worker's next query: the worker keeps its
    /// snapshot from query to query (no `ArcSwap` load per query) and
    /// takes the new one once the reload is counted.
    #[tokio::test]
    async fn a_reload_reaches_the_workers_next_query() {
        let old = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let new = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for b in [&old, &new] {
            b.set_nonblocking(true).unwrap();
        }
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut w = worker(&[old.local_addr().unwrap()], Strategy::Hedge, client);
        // Nobody reads the answers: none is sent in this test.
        let asker = batch::Peer::from(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        let mut buf = [0u8; 512];
        admitted::on_client(&mut w, &wire_query(1), asker, Instant::now());
        rounds::flush(&mut w);
        queued_in(&old);
        assert!(old.recv(&mut buf).is_ok(), "asked before the reload");
        w.balancer.reload(&LsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            workers: 1,
            backend: vec![BackendConfig {
                name: "b1".into(),
                addr: new.local_addr().unwrap(),
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            }],
            ..LsConfig::default()
        });
        for b in &w.balancer.state().backends {
            b.set_up(true);
        }
        admitted::on_client(&mut w, &wire_query(2), asker, Instant::now());
        rounds::flush(&mut w);
        queued_in(&new);
        let n = new.recv(&mut buf).unwrap();
        assert!(
            n >= 21 && buf[12..21] == wire_query(2)[12..],
            "the new backend asked the query, after the reload"
        );
        assert!(old.recv(&mut buf).is_err(), "the old one not asked again");
    }

    /// A query that arrived after its round read the clocks (a busy
    /// worker's round reads upstream answers before its client batch) is
    /// timed at its arrival, not before it: its flight's arrival (the
    /// CLIENT_RESPONSE frame's query time) is past the round's reading, as
    /// its CLIENT_QUERY frame's time is (the same reading, taken again).
    /// It was the round's reading, before the client even sent it.
    #[tokio::test]
    async fn a_query_arriving_after_the_rounds_reading_is_timed_at_its_arrival() {
        let (mut w, _backend, to) = rig(|_| {}, None);
        // The wait returned and the round read its clocks; then the query comes.
        let clock = worker::RoundClock::read();
        let asker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        asker.send_to(&wire_query(9), to).unwrap();
        w.client_ready = true;
        rounds::round_read_at(&mut w, &mut rounds::Slots::new(), clock);
        assert_eq!(w.flights.len, 1, "the query is in flight");
        let received = w.flights.get(0).map(|f| f.received).unwrap();
        assert!(
            received > clock.now,
            "timed at its arrival ({received:?}), not at the round's reading ({:?})",
            clock.now
        );
    }

    /// A standing queue of a flood the door refuses (a rule on its zone,
    /// as a name-rate block does), with another client's query among it:
    /// the flood's late queries are dropped unanswered, the other client's
    /// is forwarded (it was shed with them before: the benchmark's normal
    /// client lost 670 queries this way beside a blocked flood).
    #[tokio::test]
    async fn a_late_query_beside_a_refused_flood_is_forwarded_the_flood_shed() {
        let rules = rules(
            "[[ls.rule]]\nname = \"flood\"\n\
             match = { suffix = [\"victim.test\"] }\naction = \"refuse\"\n",
        );
        let mut names: Vec<String> = (0..30).map(|i| format!("r{i}.victim.test.")).collect();
        names.insert(25, "host7.bench.test.".to_owned());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (w, backend, asker) = late_round_rig(|c| c.rule = rules.clone(), &names);
        let m = w.balancer.metrics();
        assert_eq!(m.shed_queue.load(Relaxed), 30, "the flood's late queries");
        assert_eq!(w.flights.len, 1, "the other client's query is forwarded");
        assert_eq!(m.queries.load(Relaxed), 1, "a shed query is not counted");
        asker.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        assert!(
            asker.recv_from(&mut buf).is_err(),
            "the flood gets no answer"
        );
        backend.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = backend.recv_from(&mut buf).unwrap();
        assert!(n > 12, "the backend is asked");
    }

    /// A worker whose gate stands in a queue (shedding), whose config
    /// `edit` changed, and a round reading `names` (each sent from one
    /// socket), every one of them late: what the door's counters made of
    /// them.
    fn late_round(edit: impl Fn(&mut LsConfig), names: &[&str]) -> Worker {
        late_round_rig(edit, names).0
    }

    /// [`late_round`]'s worker, with its backend's socket (what was
    /// forwarded waits there) and the socket that sent `names` (what was
    /// answered waits there).
    ///
    /// The round's realtime clock is put [`SPARE_WAIT`] bounds after the
    /// moment before the first was sent: each one waited past the bound
    /// and not past [`SPARE_WAIT`] bounds (late, not too late to be
    /// spared) only if the sending took less than the window between them.
    /// A busy machine that stops this thread longer than that while it
    /// sends (a loaded CI runner did) makes a round of other queries than
    /// the test's; that setup is made again, with a new worker, and the
    /// test asserts only on a round of the queries it means.
    ///
    /// [`SPARE_WAIT`]: crate::server::shed::SPARE_WAIT
    fn late_round_rig(
        edit: impl Fn(&mut LsConfig),
        names: &[&str],
    ) -> (Worker, std::net::UdpSocket, std::net::UdpSocket) {
        use crate::server::shed::{SPARE_WAIT, STANDING, queue_bound};
        let bound = queue_bound(Duration::from_secs(10));
        // The sending's room: the window less a millisecond for the
        // kernel's stamp of the last one, taken after its send returned.
        let room = (SPARE_WAIT - 1) * bound - Duration::from_millis(1);
        for _ in 0..100 {
            let (mut w, backend, to) = rig(&edit, None);
            let t0 = Instant::now();
            let mut ms = 0u32;
            while !(0..30).any(|_| {
                let at = t0 + ms * Duration::from_millis(1);
                w.gate.shed(Some(5 * bound), at, bound)
            }) {
                ms += 1;
                assert!(Duration::from_millis(ms.into()) <= 2 * STANDING);
            }
            let asker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let before = std::time::SystemTime::now();
            for (i, name) in names.iter().enumerate() {
                let mut q = crate::dns::fixtures::query_bytes(
                    name,
                    hickory_proto::rr::RecordType::A,
                    Some(1232),
                );
                q[..2].copy_from_slice(&u16::try_from(i).unwrap().to_be_bytes());
                asker.send_to(&q, to).unwrap();
            }
            let took = before.elapsed().unwrap_or(Duration::MAX);
            if took >= room {
                continue;
            }
            let now = t0 + Duration::from_millis((ms + 1).into());
            w.client_ready = true;
            rounds::round_read_at(
                &mut w,
                &mut rounds::Slots::new(),
                worker::RoundClock::with_stamps(now, before + SPARE_WAIT * bound),
            );
            return (w, backend, asker);
        }
        panic!("100 tries, each sending took {room:?} or longer: the machine is too busy");
    }

    /// The hits of the rule `name` in `w`'s snapshot.
    fn rule_hits(w: &Worker, name: &str) -> u64 {
        let state = w.balancer.state();
        let hits = state.rules.counts().find(|(n, _, _)| *n == name);
        hits.map(|(_, _, hits)| hits).unwrap()
    }

    /// Late queries the gate sheds are counted as shed and nowhere else
    /// (as before the door read them): not as a rule's hits (a rule that
    /// lets them through acted on none; one that refuses them answered
    /// none), not as refused by the ACL. Here all of them are to be
    /// forwarded (pure overload: every late one shed) or answered at the
    /// door (the ACL, a refusing rule).
    #[tokio::test]
    async fn a_shed_late_query_is_counted_shed_only() {
        let rules = rules(
            "[[ls.rule]]\nname = \"flood\"\n\
             match = { suffix = [\"victim.test\"] }\naction = \"refuse\"\n\
             [[ls.rule]]\nname = \"pass\"\n\
             match = { suffix = [\"bench.test\"] }\naction = \"allow\"\n",
        );
        let names: Vec<String> = (0..20).map(|i| format!("h{i}.bench.test.")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let w = late_round(|c| c.rule = rules.clone(), &names);
        let m = w.balancer.metrics();
        assert_eq!(m.shed_queue.load(Relaxed), 20, "pure overload: all shed");
        assert_eq!(w.flights.len, 0);
        assert_eq!(rule_hits(&w, "pass"), 0, "a shed query was let through");

        let names: Vec<String> = (0..20).map(|i| format!("r{i}.victim.test.")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let w = late_round(|c| c.rule = rules.clone(), &names);
        let m = w.balancer.metrics();
        assert_eq!(m.shed_queue.load(Relaxed), 20);
        assert_eq!(rule_hits(&w, "flood"), 0, "a shed query was refused");

        // One to forward among them is spared: counted once, as a query
        // and by its rule.
        let mut names: Vec<String> = (0..24).map(|i| format!("r{i}.victim.test.")).collect();
        names.push("h1.bench.test.".to_owned());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let w = late_round(|c| c.rule = rules.clone(), &names);
        let m = w.balancer.metrics();
        assert_eq!(m.shed_queue.load(Relaxed), 24);
        assert_eq!(w.flights.len, 1, "spared");
        assert_eq!(m.queries.load(Relaxed), 1);
        assert_eq!(rule_hits(&w, "pass"), 1, "the spared one");
        assert_eq!(rule_hits(&w, "flood"), 0);

        let w = late_round(
            |c| c.allow = vec!["10.0.0.0/8".parse().unwrap()],
            &["a.bench.test.", "b.bench.test."],
        );
        let m = w.balancer.metrics();
        assert_eq!(m.shed_queue.load(Relaxed), 2);
        assert_eq!(m.refused_acl.load(Relaxed), 0, "a shed query was refused");
    }

    /// A `log = true` rule's dnstap frame follows its query's CLIENT_QUERY
    /// in the round's frames (it went to the queue at once, ahead of the
    /// round's staged CLIENT_QUERY, since the rounds were staged), with the
    /// same client and responder (the listener's) addresses and ports.
    #[tokio::test]
    async fn a_rule_logged_to_dnstap_follows_its_query() {
        use crate::dnstap::{RECONNECT, Settings, TapKind, TapTarget};
        let settings = Settings {
            target: TapTarget::Unix(Default::default()),
            kinds: vec![TapKind::ClientQuery],
            identity: None,
            version: None,
            queue_size: 64,
            queue_bytes: crate::config::DNSTAP_QUEUE_BYTES,
            backoff: RECONNECT,
        };
        let tap = crate::dnstap::Dnstap::new(settings).0;
        let rules = rules(
            "[[ls.rule]]\nname = \"seen\"\n\
             match = { suffix = [\"bench.test\"] }\naction = \"allow\"\nlog = true\n",
        );
        let (mut w, _backend, to) = rig(|c| c.rule = rules, Some(tap.clone()));
        let asker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let q = crate::dns::fixtures::query_bytes(
            "h1.bench.test.",
            hickory_proto::rr::RecordType::A,
            Some(1232),
        );
        asker.send_to(&q, to).unwrap();
        w.client_ready = true;
        rounds::round(&mut w, &mut rounds::Slots::new(), Instant::now());
        let frames = tap.take_queued();
        let got: Vec<bool> = frames
            .iter()
            .map(|p| p.message.as_ref().unwrap().policy.is_some())
            .collect();
        assert_eq!(got, [false, true], "CLIENT_QUERY, then the rule's");
        let ends: Vec<_> = frames
            .iter()
            .map(|p| {
                let m = p.message.as_ref().unwrap();
                let (q, r) = (m.query_address.clone(), m.response_address.clone());
                (q, m.query_port, r, m.response_port)
            })
            .collect();
        assert_eq!(ends[1], ends[0], "the rule's frame: both ends");
        assert_eq!(ends[1].3, Some(u32::from(to.port())), "the listener's port");
    }
}

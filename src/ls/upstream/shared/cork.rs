//! Upstream queries held back while one task is polled and sent together when
//! the poll ends. [`corked`] wraps a connection's future (the LS's
//! [`Handler::wrap_connection`](crate::server::Handler::wrap_connection), for DNS over HTTP/2: the
//! requests a client sent in one read are polled in one go), so that the
//! queries its requests ask of the backends in one poll leave from one pool
//! socket in one `sendmmsg(2)`, not a `sendto(2)` each. A backend on the same
//! machine is then woken once for the lot, not once per query (each wake-up of
//! a server that shares the core preempts the LS at its `sendto(2)`: with a
//! `sendto(2)` a query the DoH path spent about 0.4 context switches per query
//! on each side, and the backends twice their batched CPU per query).
//!
//! Forwarding safety (RFC 5452) is what the pool's: each query still has its
//! own random ID, free on its socket, and its answer is checked the same way;
//! the socket is chosen at random per poll instead of per query. A spoofed
//! answer's chance per guess is (queries waiting) / (ports x IDs) however the
//! waiting queries are spread over the sockets, so holding them on fewer
//! sockets costs nothing.
//!
//! A datagram the socket cannot take at the end of the poll (its buffer is
//! full) is sent by a task of the pool once it can; one the kernel refuses
//! ends its query at once ([`UpstreamError::Unusable`](super::UpstreamError))
//! and is charged to its backend as a refused `sendto(2)` is (abandoned: in
//! flight until its deadline, then lost). Nothing is allocated per query once warm: the
//! held datagrams' buffers are kept per thread from poll to poll.
use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::SharedSocket;
use crate::server::batch::{Peer, send_some};

/// What a thread holds while one of its polls is corked.
#[derive(Default)]
struct Cork {
    /// Whether a poll of this thread is corked now.
    on: bool,
    /// The held datagrams (bytes and destination) are the first
    /// `meta.len()`; the rest are spare buffers.
    msgs: Vec<(Vec<u8>, Peer)>,
    /// Each held datagram's socket and query ID.
    meta: Vec<(Arc<SharedSocket>, u16)>,
    /// The socket this poll's queries leave from, by (pool, address family).
    chosen: Vec<((usize, usize), Arc<SharedSocket>)>,
}

thread_local! {
    static CORK: RefCell<Cork> = RefCell::new(Cork::default());
}

/// Runs `fut`, holding back the pool's UDP queries that each of its polls
/// sends until that poll ends, and then sending them together (see the
/// module's header). A poll already corked (a corked future inside another)
/// is sent at the end of the outer one.
pub async fn corked<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let _cork = Guard::begin();
        fut.as_mut().poll(cx)
    })
    .await
}

/// Uncorks (sends what is held) when dropped, if it corked.
struct Guard {
    corked: bool,
}

impl Guard {
    fn begin() -> Self {
        let corked = CORK.with_borrow_mut(|c| !std::mem::replace(&mut c.on, true));
        Guard { corked }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.corked {
            flush();
        }
    }
}

/// The socket chosen for this poll's queries of `pool` to `family`, if the
/// thread is corked and one was chosen.
pub(super) fn chosen(key: (usize, usize)) -> Option<Arc<SharedSocket>> {
    CORK.with_borrow(|c| {
        c.on.then(|| {
            c.chosen
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| s.clone())
        })
        .flatten()
    })
}

/// Makes `ps` the socket of this poll's queries of `pool` to `family` (when
/// the thread is corked).
pub(super) fn choose(key: (usize, usize), ps: &Arc<SharedSocket>) {
    CORK.with_borrow_mut(|c| {
        if c.on {
            c.chosen.retain(|(k, _)| *k != key);
            c.chosen.push((key, ps.clone()));
        }
    });
}

/// Holds `query` (ID `id`, waiting on `ps`) for `to` until the poll ends:
/// `false` when the thread is not corked (the caller sends it itself).
pub(super) fn hold(ps: &Arc<SharedSocket>, id: u16, query: &[u8], to: SocketAddr) -> bool {
    CORK.with_borrow_mut(|c| {
        if !c.on {
            return false;
        }
        let at = c.meta.len();
        if at == c.msgs.len() {
            c.msgs
                .push((Vec::with_capacity(query.len()), Peer::from(to)));
        }
        // In bounds: the list was just made longer than `at`.
        let (buf, dst) = &mut c.msgs[at];
        buf.clear();
        buf.extend_from_slice(query);
        *dst = Peer::from(to);
        c.meta.push((ps.clone(), id));
        true
    })
}

/// Uncorks the thread and sends what it held: the datagrams of each socket
/// in as few `sendmmsg(2)` as the kernel takes them.
fn flush() {
    let (mut msgs, mut meta) = CORK.with_borrow_mut(|c| {
        c.on = false;
        c.chosen.clear();
        (std::mem::take(&mut c.msgs), std::mem::take(&mut c.meta))
    });
    let len = meta.len();
    let mut at = 0;
    while at < len {
        let Some((ps, _)) = meta.get(at).cloned() else {
            break;
        };
        // The datagrams of this socket moved together (queries of two
        // address families interleave): one run, one `sendmmsg(2)` a batch.
        let mut end = at;
        for k in at..len {
            if meta.get(k).is_some_and(|(s, _)| Arc::ptr_eq(s, &ps)) {
                msgs.swap(end, k);
                meta.swap(end, k);
                end += 1;
            }
        }
        at = send_run(&ps, &msgs, &meta, at, end);
    }
    meta.clear();
    keep_spares(&mut msgs);
    CORK.with_borrow_mut(|c| {
        // Kept for the next poll (unless something was held meanwhile).
        if c.meta.is_empty() {
            c.msgs = msgs;
            c.meta = meta;
        }
    });
}

/// Buffers kept for the next poll: at most [`SPARES`], none larger than
/// [`SPARE_BYTES`] (a poll of unusually large queries leaves nothing large
/// held by the thread).
const SPARES: usize = 256;
/// See [`SPARES`].
const SPARE_BYTES: usize = 4096;

/// Trims `msgs` to what [`SPARES`] and [`SPARE_BYTES`] allow.
fn keep_spares(msgs: &mut Vec<(Vec<u8>, Peer)>) {
    msgs.truncate(SPARES);
    for (buf, _) in msgs.iter_mut() {
        if buf.capacity() > SPARE_BYTES {
            *buf = Vec::new();
        }
    }
}

/// Sends held datagrams `at..end`, all on `ps`; returns `end`.
fn send_run(
    ps: &Arc<SharedSocket>,
    msgs: &[(Vec<u8>, Peer)],
    meta: &[(Arc<SharedSocket>, u16)],
    mut at: usize,
    end: usize,
) -> usize {
    while at < end {
        let run = msgs.get(at..end).unwrap_or_default();
        // Tried at once, not through tokio's readiness (`try_io`): a new
        // socket is not yet known writable, and would always take the slow
        // path below. The kernel says when it is full (EAGAIN), and the
        // task below then waits for it properly.
        match send_some(&ps.sock, run) {
            Ok(n) => at += n.max(1),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let rest: Vec<(Vec<u8>, SocketAddr, u16)> = run
                    .iter()
                    .zip(meta.get(at..end).unwrap_or_default())
                    .map(|((bytes, to), (_, id))| (bytes.clone(), to.addr, *id))
                    .collect();
                ps.tracker.spawn(send_later(ps.clone(), rest));
                return end;
            }
            Err(_) => {
                if let Some((_, id)) = meta.get(at) {
                    fail(ps, *id);
                }
                at += 1;
            }
        }
    }
    end
}

/// Sends `rest` on `ps` as it becomes writable (its reader's stop ends it).
async fn send_later(ps: Arc<SharedSocket>, rest: Vec<(Vec<u8>, SocketAddr, u16)>) {
    for (bytes, to, id) in rest {
        tokio::select! {
            () = ps.stop.cancelled() => return,
            r = ps.sock.send_to(&bytes, to) => if r.is_err() {
                fail(&ps, id);
            },
        }
    }
}

/// Ends the query `id` on `ps` whose datagram could not be sent: its asker
/// hears at once ([`UpstreamError::Unusable`](super::UpstreamError)), and its
/// backend is charged as for a `sendto(2)` refused outside a cork (the
/// query abandoned: in flight until its deadline, then lost).
fn fail(ps: &SharedSocket, id: u16) {
    let mut t = ps.table();
    // Its waiter's sender is dropped here: the asker hears at once.
    t.abandon(id, tokio::time::Instant::now());
    ps.has_late.store(!t.late.is_empty(), Relaxed);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use futures_util::future::join_all;
    use tokio::time::Instant;

    use super::super::{DropCounters, SharedSockets, UpstreamError};
    use super::*;
    use crate::ls::upstream::ids::tests::{backend, outstanding};

    const QUERIES: usize = 40;

    /// A query for `www.test. A` with ID 0, and where its question ends.
    fn wire_query() -> (Vec<u8>, usize) {
        let mut q = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        let end = q.len();
        (q, end)
    }

    /// A backend on a thread of its own that answers `n` queries (each
    /// echoed with QR set) and returns the source ports they came from.
    fn echo(n: usize) -> (SocketAddr, std::thread::JoinHandle<Vec<u16>>) {
        echo_on("127.0.0.1:0", n)
    }

    /// [`echo`] on `at`.
    fn echo_on(at: &str, n: usize) -> (SocketAddr, std::thread::JoinHandle<Vec<u16>>) {
        let sock = std::net::UdpSocket::bind(at).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let answering = std::thread::spawn(move || {
            let mut ports = Vec::new();
            let mut buf = [0u8; 512];
            for _ in 0..n {
                let (len, from) = sock.recv_from(&mut buf).unwrap();
                buf[2] |= 0x80;
                sock.send_to(&buf[..len], from).unwrap();
                ports.push(from.port());
            }
            ports
        });
        (addr, answering)
    }

    /// `QUERIES` exchanges with `addr`, all started in one poll.
    async fn ask_all(
        pool: &SharedSockets,
        addr: SocketAddr,
    ) -> Vec<Result<Vec<u8>, UpstreamError>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        join_all((0..QUERIES).map(|_| async move {
            let (mut q, end) = wire_query();
            pool.exchange(addr, &mut q, end, (deadline, None)).await
        }))
        .await
    }

    #[tokio::test]
    async fn the_queries_of_one_corked_poll_leave_from_one_socket_and_are_answered() {
        let pool = SharedSockets::new(Arc::new(DropCounters::default()));
        let (addr, answering) = echo(QUERIES);
        let answers = corked(ask_all(&pool, addr)).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let ports: HashSet<u16> = answering.join().unwrap().into_iter().collect();
        assert_eq!(ports.len(), 1, "one socket for the poll: {ports:?}");

        // Not corked, each query picks its socket: 40 picks of 64 sockets
        // all landing on one has a chance of 64^-39.
        let (addr, answering) = echo(QUERIES);
        let answers = ask_all(&pool, addr).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let ports: HashSet<u16> = answering.join().unwrap().into_iter().collect();
        assert!(ports.len() > 1, "{ports:?}");
        pool.shutdown().await;
    }

    #[tokio::test]
    async fn the_ls_handler_corks_the_connections_the_server_layer_wraps() {
        // What server/doh.rs does with an HTTP/2 connection's future.
        let balancer = crate::ls::Balancer::new(&crate::config::LsConfig::default());
        let (addr, answering) = echo(QUERIES);
        let conn = ask_all(&balancer.pool, addr);
        let answers = crate::server::Handler::wrap_connection(&balancer, conn).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let ports: HashSet<u16> = answering.join().unwrap().into_iter().collect();
        assert_eq!(ports.len(), 1, "one socket for the poll: {ports:?}");
        balancer.pool.shutdown().await;
    }

    #[tokio::test]
    async fn interleaved_queries_to_both_families_leave_from_one_socket_each() {
        let pool = SharedSockets::new(Arc::new(DropCounters::default()));
        let (v4, answering4) = echo(QUERIES / 2);
        let (v6, answering6) = echo_on("[::1]:0", QUERIES / 2);
        let deadline = Instant::now() + Duration::from_secs(30);
        let asks = (0..QUERIES).map(|i| {
            let (pool, to) = (&pool, if i % 2 == 0 { v4 } else { v6 });
            async move {
                let (mut q, end) = wire_query();
                pool.exchange(to, &mut q, end, (deadline, None)).await
            }
        });
        let answers = corked(join_all(asks)).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        for answering in [answering4, answering6] {
            let ports: HashSet<u16> = answering.join().unwrap().into_iter().collect();
            assert_eq!(ports.len(), 1, "{ports:?}");
        }
        pool.shutdown().await;
    }

    #[tokio::test]
    async fn a_held_query_the_kernel_refuses_ends_at_once_and_the_others_still_go() {
        let pool = SharedSockets::new(Arc::new(DropCounters::default()));
        // Port 0: sendmmsg(2) refuses it (EINVAL).
        let b = backend("127.0.0.1:0".parse().unwrap());
        let (addr, answering) = echo(1);
        let deadline = Instant::now() + Duration::from_secs(60);
        let refused = async {
            let (mut q, end) = wire_query();
            pool.exchange(b.addr, &mut q, end, (deadline, Some(b.begin())))
                .await
        };
        let fine = async {
            let (mut q, end) = wire_query();
            pool.exchange(addr, &mut q, end, (deadline, None)).await
        };
        let (refused, fine) = corked(async { tokio::join!(refused, fine) }).await;
        assert!(
            matches!(refused, Err(UpstreamError::Unusable)),
            "not left to time out: {refused:?}"
        );
        assert!(
            fine.is_ok(),
            "the other query of the poll still went: {fine:?}"
        );
        // Charged as a refused send outside a cork: in flight until its deadline.
        assert_eq!(outstanding(&b), 1);
        assert_eq!(answering.join().unwrap().len(), 1);
        assert!(
            pool.sockets
                .current()
                .all(|ps| ps.table().waiting.is_empty())
        );
        pool.shutdown().await;
    }

    /// A refused datagram is charged to its backend the same way whether it
    /// was held or sent at once: the query ends at once for its asker, but
    /// the backend keeps it in flight until the deadline and then counts it
    /// lost (a timeout, and a health loss), as an unanswered query. Released
    /// early and never counted, a backend the kernel refuses to reach would
    /// look idle to least-outstanding and never be charged by DoH clients.
    #[tokio::test]
    async fn a_refused_held_query_is_charged_to_its_backend_as_a_refused_unheld_one() {
        let pool = SharedSockets::new(Arc::new(DropCounters::default()));
        // Port 0: the kernel refuses it (EINVAL), held or not.
        let b = backend("127.0.0.1:0".parse().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let ask = || async {
            let (mut q, end) = wire_query();
            pool.exchange(b.addr, &mut q, end, (deadline, Some(b.begin())))
                .await
        };
        // Both end for their asker at once (an error, not the timeout).
        let unheld = ask().await;
        assert!(matches!(unheld, Err(UpstreamError::Io(_))), "{unheld:?}");
        let held = corked(ask()).await;
        assert!(matches!(held, Err(UpstreamError::Unusable)), "{held:?}");
        assert_eq!(
            outstanding(&b),
            2,
            "both in flight for their backend until the deadline"
        );
        // The sweep at the deadline settles both: lost, each a timeout.
        pool.sockets.sweep(deadline);
        assert_eq!(outstanding(&b), 0);
        assert_eq!(
            b.stats.timeouts.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        pool.shutdown().await;
    }

    #[test]
    fn the_buffers_kept_between_polls_are_few_and_small() {
        let to = Peer::from(SocketAddr::from(([127, 0, 0, 1], 53)));
        let mut msgs: Vec<(Vec<u8>, Peer)> = (0..300)
            .map(|i| {
                (
                    Vec::with_capacity(if i % 2 == 0 { 512 } else { 65_535 }),
                    to,
                )
            })
            .collect();
        keep_spares(&mut msgs);
        assert_eq!(msgs.len(), SPARES);
        assert!(msgs.iter().all(|(b, _)| b.capacity() <= SPARE_BYTES));
        assert!(
            msgs.iter().any(|(b, _)| b.capacity() == 512),
            "small ones kept"
        );
    }

    #[test]
    fn a_cork_inside_a_cork_is_sent_by_the_outer_one() {
        let outer = Guard::begin();
        let inner = Guard::begin();
        assert!(outer.corked && !inner.corked);
        drop(inner);
        assert!(
            CORK.with_borrow(|c| c.on),
            "still corked after the inner one"
        );
        drop(outer);
        assert!(CORK.with_borrow(|c| !c.on));
    }
}

//! The `tcp` checks' driver: every TCP connect probe of the checker as a raw
//! non-blocking socket whose connect ends in one epoll set of the checker's
//! own (tokio watches that set's descriptor as one readable source), each
//! probe's deadline in a queue of its timeout's (probes start in time order:
//! each queue is sorted as it is filled, no heap), the ended probes
//! collected a batch at a time.
//! Per probe: `socket`, `connect`, one `EPOLL_CTL_ADD` and `close` (closing
//! the socket takes it out of the set), the result read from the event's
//! flags; no task, no timer and no allocation of its own (a connected probe
//! is closed with `SO_LINGER` 0: a reset, no TIME_WAIT left behind).
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::epoll;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::board::ProbeResult;

/// The most ended probes read from the set in one `epoll_wait`.
const BATCH: usize = 512;

/// The connect probes in flight, by target index.
pub(super) struct Connects {
    /// The checker's epoll set, watched by tokio for readability.
    set: AsyncFd<OwnedFd>,
    /// Each target's probe in flight: its socket and deadline (ms).
    pending: Vec<Option<(Socket, u64)>>,
    /// Per timeout (ms), the deadlines (ms, target) of the probes started
    /// with it, earliest first; an entry whose probe ended before it is
    /// dropped when reached.
    deadlines: Vec<(u64, VecDeque<(u64, usize)>)>,
    in_flight: usize,
    /// `epoll_wait`'s buffer.
    events: Vec<epoll::Event>,
}

/// How a probe whose connect ended went, from its event's flags: an error or
/// hang-up is a refusal (or a reset: see [`accepted_then_reset`]),
/// otherwise the socket is writable: connected.
fn judged(flags: epoll::EventFlags) -> ProbeResult {
    if flags.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP) {
        ProbeResult::Fail
    } else {
        ProbeResult::Ok
    }
}

/// Whether a socket's pending error `errno` says its connect had succeeded
/// before the peer reset it: a reset in SYN-SENT is ECONNREFUSED, only an
/// established connection's is ECONNRESET (or EPIPE). An endpoint that
/// accepts and at once resets (or closes with unread data) passed the
/// connect: `Ok` whether its reset arrived before the event was read or
/// after (else its result would follow a race with the peer's process).
fn accepted_then_reset(errno: Option<i32>) -> bool {
    let reset = [rustix::io::Errno::CONNRESET, rustix::io::Errno::PIPE];
    errno.is_some_and(|e| reset.iter().any(|r| r.raw_os_error() == e))
}

/// Whether target `i`'s probe in flight (in `pending`) is the one due at `at`.
fn live(pending: &[Option<(Socket, u64)>], i: usize, at: u64) -> bool {
    matches!(pending.get(i), Some(Some((_, d))) if *d == at)
}

/// A connected probe's end: closed with a reset (`SO_LINGER` 0), as health
/// checkers do, so that no TIME_WAIT socket is left per check.
fn connected(sock: Socket) -> ProbeResult {
    let _ = sock.set_linger(Some(Duration::ZERO));
    ProbeResult::Ok
}

impl Connects {
    /// An empty driver for `targets` targets (its epoll set registered with
    /// the current tokio runtime).
    pub(super) fn new(targets: usize) -> io::Result<Self> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        // `with_interest` is deprecated for a `T` that could close its fd
        // while registered (tokio#8587); an `OwnedFd` closes it only when the
        // `AsyncFd` drops it, after deregistering it (`register`, the
        // replacement, is `unsafe`, which this crate forbids).
        #[allow(deprecated)]
        let set = AsyncFd::with_interest(fd, Interest::READABLE)?;
        let empty = epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        };
        Ok(Self {
            set,
            pending: std::iter::repeat_with(|| None).take(targets).collect(),
            deadlines: Vec::new(),
            in_flight: 0,
            events: vec![empty; BATCH],
        })
    }

    /// Probes in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts target `i`'s probe of `to` at `now` (ms), given `timeout_ms`:
    /// `None` while it is in flight, or its result when the connect ended at
    /// once (a refusal, a local error: `Fail`; connected: `Ok`).
    pub(super) fn start(
        &mut self,
        i: usize,
        to: SocketAddr,
        now: u64,
        timeout_ms: u64,
    ) -> Option<ProbeResult> {
        let Some(slot) = self.pending.get_mut(i) else {
            return Some(ProbeResult::Fail);
        };
        let sock = match Socket::new(
            Domain::for_address(to),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(endpoint = %to, error = %e, "cannot open a socket for a tcp check");
                return Some(ProbeResult::Fail);
            }
        };
        match sock.connect(&SockAddr::from(to)) {
            Ok(()) => return Some(connected(sock)),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
            Err(_) => return Some(ProbeResult::Fail),
        }
        let data = epoll::EventData::new_u64(u64::try_from(i).unwrap_or(u64::MAX));
        if let Err(e) = epoll::add(self.set.get_ref(), &sock, data, epoll::EventFlags::OUT) {
            tracing::debug!(endpoint = %to, error = %e, "cannot watch a tcp check's socket");
            return Some(ProbeResult::Fail);
        }
        let timeout_ms = timeout_ms.max(1);
        let deadline = now.saturating_add(timeout_ms);
        if slot.replace((sock, deadline)).is_none() {
            self.in_flight += 1;
        }
        let queue = match self.deadlines.iter().position(|(t, _)| *t == timeout_ms) {
            Some(q) => q,
            None => {
                self.deadlines.push((timeout_ms, VecDeque::new()));
                self.deadlines.len() - 1
            }
        };
        if let Some((_, q)) = self.deadlines.get_mut(queue) {
            q.push_back((deadline, i));
        }
        None
    }

    /// The earliest deadline of a probe in flight (ms), the entries of
    /// probes ended before theirs dropped first.
    pub(super) fn next_deadline(&mut self) -> Option<u64> {
        let mut next: Option<u64> = None;
        for (_, q) in &mut self.deadlines {
            while let Some(&(at, i)) = q.front() {
                if live(&self.pending, i, at) {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                q.pop_front();
            }
        }
        next
    }

    /// Every probe in flight past its deadline at `now` (ms) ends as a
    /// `Timeout`, pushed to `done`.
    pub(super) fn expire(&mut self, now: u64, done: &mut Vec<(usize, ProbeResult)>) {
        for (_, q) in &mut self.deadlines {
            while let Some(&(at, i)) = q.front() {
                if at > now {
                    break;
                }
                q.pop_front();
                if live(&self.pending, i, at)
                    && let Some(slot) = self.pending.get_mut(i)
                {
                    *slot = None;
                    self.in_flight -= 1;
                    done.push((i, ProbeResult::Timeout));
                }
            }
        }
    }

    /// Waits until some probe's connect may have ended (then
    /// [`collect`](Self::collect) reads them all).
    pub(super) async fn ready(&self) -> io::Result<()> {
        let mut guard = self.set.readable().await?;
        // Cleared before the set is read to its end: an event after this
        // point makes it readable again.
        guard.clear_ready();
        Ok(())
    }

    /// Every probe whose connect ended, with its result, pushed to `done`.
    pub(super) fn collect(&mut self, done: &mut Vec<(usize, ProbeResult)>) -> io::Result<()> {
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            let n = match epoll::wait(self.set.get_ref(), &mut self.events[..], Some(&zero)) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for &epoll::Event { flags, data } in self.events.iter().take(n) {
                let i = usize::try_from(data.u64()).unwrap_or(usize::MAX);
                let Some((sock, _)) = self.pending.get_mut(i).and_then(Option::take) else {
                    continue;
                };
                self.in_flight -= 1;
                let result = match judged(flags) {
                    ProbeResult::Ok => connected(sock),
                    other => {
                        let errno = sock.take_error().ok().flatten();
                        if accepted_then_reset(errno.and_then(|e| e.raw_os_error())) {
                            ProbeResult::Ok
                        } else {
                            other
                        }
                    }
                };
                done.push((i, result));
            }
            if n < self.events.len() {
                return Ok(());
            }
        }
    }

    /// Ends every probe in flight as a `Fail` (the set failed: the checker
    /// goes on without it), pushed to `done`.
    pub(super) fn abandon(&mut self, done: &mut Vec<(usize, ProbeResult)>) {
        for (i, slot) in self.pending.iter_mut().enumerate() {
            if slot.take().is_some() {
                done.push((i, ProbeResult::Fail));
            }
        }
        self.in_flight = 0;
        self.deadlines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{Connects, ProbeResult, accepted_then_reset, judged};
    use rustix::event::epoll::EventFlags;
    use rustix::io::Errno;

    #[test]
    fn the_events_flags_give_the_result() {
        assert_eq!(judged(EventFlags::OUT), ProbeResult::Ok);
        assert_eq!(judged(EventFlags::OUT | EventFlags::IN), ProbeResult::Ok);
        let refused = EventFlags::OUT | EventFlags::ERR | EventFlags::HUP;
        assert_eq!(judged(refused), ProbeResult::Fail);
        assert_eq!(judged(EventFlags::ERR), ProbeResult::Fail);
    }

    #[test]
    fn only_a_reset_after_the_handshake_counts_as_connected() {
        assert!(accepted_then_reset(Some(Errno::CONNRESET.raw_os_error())));
        assert!(accepted_then_reset(Some(Errno::PIPE.raw_os_error())));
        for refused in [
            Errno::CONNREFUSED,
            Errno::HOSTUNREACH,
            Errno::NETUNREACH,
            Errno::TIMEDOUT,
        ] {
            assert!(!accepted_then_reset(Some(refused.raw_os_error())));
        }
        assert!(!accepted_then_reset(None));
    }

    /// An endpoint that accepts and resets every connection at once. Its
    /// reset may land before the event is read here: the probe's result
    /// does not depend on that race (else `Fail` when the reset came first,
    /// `Ok` when the event was read first).
    #[tokio::test]
    async fn an_endpoint_that_accepts_and_resets_passes_the_connect() {
        let (listener, addr) = listening();
        let mut c = Connects::new(1).unwrap();
        assert_eq!(c.start(0, addr, 0, 5_000), None);
        let (conn, _) = listener.accept().unwrap();
        socket2::SockRef::from(&conn)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(conn);
        let done = ended(&mut c, 1).await;
        assert_eq!(done, [(0, ProbeResult::Ok)]);
    }

    /// Polls `c` until `want` probes ended (bounded).
    /// A TCP listener on 127.0.0.1 and its address.
    fn listening() -> (std::net::TcpListener, std::net::SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    async fn ended(c: &mut Connects, want: usize) -> Vec<(usize, ProbeResult)> {
        let mut done = Vec::new();
        for _ in 0..100 {
            if done.len() >= want {
                break;
            }
            let waited = tokio::time::timeout(std::time::Duration::from_secs(5), c.ready()).await;
            assert!(matches!(waited, Ok(Ok(()))), "the set became readable");
            c.collect(&mut done).unwrap();
        }
        done.sort_by_key(|&(i, _)| i);
        done
    }

    #[tokio::test]
    async fn a_listener_is_ok_and_a_closed_port_fails() {
        let (listener, open) = listening();
        // Its listener dropped at once: a port nobody listens on.
        let closed = listening().1;
        let mut c = Connects::new(3).unwrap();
        assert_eq!(c.start(0, open, 0, 5_000), None);
        assert_eq!(c.start(2, closed, 0, 5_000), None);
        assert_eq!(c.in_flight(), 2);
        let done = ended(&mut c, 2).await;
        assert_eq!(done, [(0, ProbeResult::Ok), (2, ProbeResult::Fail)]);
        assert_eq!(c.in_flight(), 0);
        assert_eq!(
            c.next_deadline(),
            None,
            "ended probes' deadlines are dropped"
        );
        // The listener saw the probe's connection.
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_ok());
    }

    #[tokio::test]
    async fn a_probe_past_its_deadline_times_out_once() {
        // The deadlines are judged on the clock given, whether or not the
        // connect ended meanwhile (its end is read only by `collect`).
        let (_listener, addr) = listening();
        let mut c = Connects::new(2).unwrap();
        assert_eq!(c.start(1, addr, 100, 50), None);
        assert_eq!(c.next_deadline(), Some(150));
        let mut done = Vec::new();
        c.expire(149, &mut done);
        assert!(done.is_empty());
        // Ended before its deadline: the deadline no longer counts.
        let _ = ended(&mut c, 1).await;
        c.expire(150, &mut done);
        assert!(done.is_empty(), "an ended probe does not time out");
        // A second probe of the same target, left to its deadline.
        assert_eq!(c.start(1, addr, 200, 50), None);
        c.expire(250, &mut done);
        assert_eq!(done, [(1, ProbeResult::Timeout)]);
        assert_eq!(c.in_flight(), 0);
        c.expire(10_000, &mut done);
        assert_eq!(done.len(), 1);
    }

    #[tokio::test]
    async fn deadlines_of_different_timeouts_come_in_time_order() {
        let (_listener, addr) = listening();
        let mut c = Connects::new(3).unwrap();
        assert_eq!(c.start(0, addr, 0, 500), None);
        assert_eq!(c.start(1, addr, 10, 100), None);
        assert_eq!(c.start(2, addr, 20, 500), None);
        assert_eq!(c.next_deadline(), Some(110));
        let mut done = Vec::new();
        c.expire(110, &mut done);
        assert_eq!(done, [(1, ProbeResult::Timeout)]);
        assert_eq!(c.next_deadline(), Some(500));
        c.expire(519, &mut done);
        assert_eq!(done, [(1, ProbeResult::Timeout), (0, ProbeResult::Timeout)]);
        assert_eq!(c.next_deadline(), Some(520));
        assert_eq!(c.in_flight(), 1);
    }
}

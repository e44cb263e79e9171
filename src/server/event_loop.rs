//! A blocking event loop of our own over epoll, for a worker that owns an
//! OS thread (the LS's UDP fast path): the epoll set ([`Poller`]), what one
//! wait found ([`Poller::wait`]), and the loop's stop ([`LoopStop`]: an
//! eventfd in the set, and a flag). The server layer's UDP workers (the
//! TS's) use the stop alone, to wake the receive they wait in (`udp`).
//!
//! Why not tokio's current-thread runtime: a wake-up there is its epoll
//! turn, its timer wheel, the task's waker and the cancellation token's
//! poll, ~3,900 user instructions against ~330 for this loop
//! (`docs/BENCHMARKS.md`, "The worker loop"). Here a wake-up is one
//! `epoll_wait` whose timeout is the worker's own next timer, and nothing
//! else: no timer wheel, no waker, no task.
//!
//! Sockets are registered level-triggered for reading only (`EPOLLIN`):
//! a socket with datagrams left after a batch is reported again by the next
//! wait, so every socket is looked at each round without a yield.
//! `EPOLLOUT` is asked for ([`Poller::set`] with `write`) only while a send
//! on the socket got `EAGAIN` and is pending, and dropped once it drained.
//! Each registered descriptor carries a token of the caller's choosing; the
//! stop's eventfd has [`STOP_TOKEN`].
//!
//! The stop: [`LoopStop::stop`] sets a flag and writes the eventfd once, so
//! a loop asleep in `epoll_wait` wakes. The loop reads the flag once per
//! wake-up ([`LoopStop::is_set`]), not a token's poll; the
//! eventfd is read (emptied) by the wait that saw it, so a stopping loop
//! that still drains does not spin on it. [`stop_on`] is the small task on
//! a tokio runtime that stops a loop when a cancellation token fires.
//!
//! A loop may also sleep in a blocking receive on one socket instead of
//! `epoll_wait` (the LS's UDP worker with nothing in flight: one system
//! call a wake-up fewer). The eventfd cannot wake that: the socket named
//! by [`LoopStop::wake_reader`] is shut down for reading by the stop
//! (`shutdown(2)`, `SHUT_RD`: on Linux it wakes a receive blocked on a UDP
//! socket, which returns at once from then on), after the flag is set. The
//! loop reads no client datagram once stopping, so the shut socket loses
//! nothing it would have read.
use std::io;
use std::mem::MaybeUninit;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
use tokio_util::sync::CancellationToken;

/// The token of the stop's eventfd: no caller's token may be this one.
pub(crate) const STOP_TOKEN: u64 = u64::MAX;

/// Events one wait takes at most (more ready descriptors are reported by
/// the next wait, at once).
pub(crate) const EVENTS: usize = 64;

/// A loop's stop: a flag, an eventfd that wakes the loop's wait, and the
/// socket the loop may block in a receive on (a duplicate of its
/// descriptor: the same socket), shut down for reading by the stop.
#[derive(Debug)]
pub(crate) struct LoopStop {
    flag: AtomicBool,
    fd: OwnedFd,
    reader: Mutex<Option<UdpSocket>>,
}

impl LoopStop {
    /// A stop not yet set.
    ///
    /// # Errors
    /// The OS error of `eventfd(2)`.
    pub(crate) fn new() -> io::Result<Arc<Self>> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Arc::new(LoopStop {
            flag: AtomicBool::new(false),
            fd,
            reader: Mutex::new(None),
        }))
    }

    /// Sets the flag, then wakes the loop (once: the eventfd's count only
    /// grows, and a full one is as good as written), and a receive blocked
    /// on the socket [`LoopStop::wake_reader`] named.
    pub(crate) fn stop(&self) {
        // Release: a loop woken by either sees the flag (`is_set`).
        self.flag.store(true, Ordering::Release);
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sock) = reader.as_ref() {
            shut_reads(sock);
        }
    }

    /// Whether [`LoopStop::stop`] was called.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Names the socket the loop may block in a receive on: the stop shuts
    /// it down for reading, which wakes that receive (at once, if it was
    /// called already). `None`: none any more (the loop has returned).
    ///
    /// # Errors
    /// The OS error of duplicating its descriptor.
    pub(crate) fn wake_reader(&self, sock: Option<&UdpSocket>) -> io::Result<()> {
        let dup = sock.map(UdpSocket::try_clone).transpose()?;
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        *reader = dup;
        if let Some(sock) = reader.as_ref()
            && self.flag.load(Ordering::Acquire)
        {
            shut_reads(sock);
        }
        Ok(())
    }
}

/// Shuts `sock` down for reading: a receive blocked on it returns 0 bytes
/// (no datagram), and so does at once every later receive that would
/// wait (`recvmmsg`: one empty message). On an unconnected UDP socket Linux
/// answers `ENOTCONN`, having done it all the same (`inet_shutdown`: "to
/// wake up other listeners"): not an error here.
fn shut_reads(sock: &UdpSocket) {
    let _ = nix::sys::socket::shutdown(sock.as_raw_fd(), nix::sys::socket::Shutdown::Read);
}

/// Stops `stop`'s loop once `token` is cancelled: a task of the caller's
/// runtime, ended by the token. It stops the loop too when it is dropped
/// first (its runtime shut down): a loop never outlives its owner's runtime.
pub(crate) async fn stop_on(token: CancellationToken, stop: Arc<LoopStop>) {
    /// Stops the loop however the task ends.
    struct OnDrop(Arc<LoopStop>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = OnDrop(stop);
    token.cancelled().await;
}

/// One ready descriptor: its token, and what it is ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) token: u64,
    /// Readable (or in error: a read tells which).
    pub(crate) read: bool,
    /// Writable (asked for only while a send is pending).
    pub(crate) write: bool,
}

/// An epoll set with a stop in it.
pub(crate) struct Poller {
    epoll: OwnedFd,
    stop: Arc<LoopStop>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .finish()
    }
}

/// The interest of a registered descriptor.
fn flags(read: bool, write: bool) -> epoll::EventFlags {
    let mut f = epoll::EventFlags::empty();
    if read {
        f |= epoll::EventFlags::IN;
    }
    if write {
        f |= epoll::EventFlags::OUT;
    }
    f
}

impl Poller {
    /// A new epoll set, `stop`'s eventfd in it.
    ///
    /// # Errors
    /// The OS error of `epoll_create1(2)` or `epoll_ctl(2)`.
    pub(crate) fn new(stop: Arc<LoopStop>) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let data = epoll::EventData::new_u64(STOP_TOKEN);
        epoll::add(&epoll, &stop.fd, data, epoll::EventFlags::IN)?;
        Ok(Poller { epoll, stop })
    }

    /// The loop's stop.
    pub(crate) fn stop(&self) -> &Arc<LoopStop> {
        &self.stop
    }

    /// Registers `fd` for reading, as `token`.
    ///
    /// # Errors
    /// The OS error of `epoll_ctl(2)`.
    pub(crate) fn add(&self, fd: impl AsFd, token: u64) -> io::Result<()> {
        let data = epoll::EventData::new_u64(token);
        Ok(epoll::add(&self.epoll, fd, data, flags(true, false))?)
    }

    /// Sets what a registered `fd` (as `token`) is watched for: reading
    /// (not while the loop leaves it unread: a level-triggered socket would
    /// wake every wait), writing (only while a send on it is pending);
    /// neither still reports its errors.
    ///
    /// # Errors
    /// The OS error of `epoll_ctl(2)`.
    pub(crate) fn set(&self, fd: impl AsFd, token: u64, read: bool, write: bool) -> io::Result<()> {
        let data = epoll::EventData::new_u64(token);
        Ok(epoll::modify(&self.epoll, fd, data, flags(read, write))?)
    }

    /// Takes `fd` out of the set (before it is closed).
    ///
    /// # Errors
    /// The OS error of `epoll_ctl(2)`.
    pub(crate) fn remove(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(epoll::delete(&self.epoll, fd)?)
    }

    /// Waits until a descriptor is ready, the stop is set, or `timeout`
    /// has passed (`None`: no timeout; rounded up to the millisecond), and
    /// tells `each` every ready descriptor but the stop's (whose eventfd is
    /// emptied here). An interrupted wait returns having told nothing.
    ///
    /// # Errors
    /// The OS error of `epoll_wait(2)` other than `EINTR`.
    #[inline(never)] // its own entry in a profile: the wake-ups counted
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut each: impl FnMut(Ready),
    ) -> io::Result<()> {
        let spec = timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        // On the stack, left uninitialised: the kernel writes what it reports.
        let mut buf = [const { MaybeUninit::<epoll::Event>::uninit() }; EVENTS];
        let events = match epoll::wait(&self.epoll, &mut buf[..], spec.as_ref()) {
            Ok((events, _)) => events,
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        for ev in events.iter() {
            let (token, f) = (ev.data.u64(), ev.flags);
            if token == STOP_TOKEN {
                let mut count = [0u8; 8];
                let _ = rustix::io::read(&self.stop.fd, &mut count);
                continue;
            }
            let err = f.intersects(epoll::EventFlags::ERR | epoll::EventFlags::HUP);
            each(Ready {
                token,
                read: err || f.contains(epoll::EventFlags::IN),
                write: f.contains(epoll::EventFlags::OUT),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ready(p: &mut Poller, timeout: Option<Duration>) -> Vec<Ready> {
        let mut got = Vec::new();
        p.wait(timeout, |r| got.push(r)).unwrap();
        got
    }

    /// A socket is reported readable while a datagram waits in it (level
    /// triggered), writable only while asked for; a wait with nothing ready
    /// returns at its timeout with nothing.
    #[test]
    fn reads_are_reported_while_data_waits_and_writes_only_when_asked() {
        let mut p = Poller::new(LoopStop::new().unwrap()).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        p.add(&sock, 7).unwrap();
        assert_eq!(ready(&mut p, Some(Duration::ZERO)), []);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        let r = Ready {
            token: 7,
            read: true,
            write: false,
        };
        assert_eq!(ready(&mut p, Some(Duration::from_secs(5))), [r]);
        assert_eq!(ready(&mut p, Some(Duration::ZERO)), [r], "still there");
        let mut buf = [0u8; 8];
        sock.recv(&mut buf).unwrap();
        assert_eq!(ready(&mut p, Some(Duration::ZERO)), []);
        p.set(&sock, 7, true, true).unwrap();
        let w = Ready {
            token: 7,
            read: false,
            write: true,
        };
        assert_eq!(ready(&mut p, Some(Duration::ZERO)), [w]);
        p.set(&sock, 7, true, false).unwrap();
        assert_eq!(ready(&mut p, Some(Duration::ZERO)), []);
        p.remove(&sock).unwrap();
        peer.send_to(b"y", sock.local_addr().unwrap()).unwrap();
        assert_eq!(ready(&mut p, Some(Duration::from_millis(20))), []);
    }

    /// A stop from another thread wakes a wait with no timeout; the flag
    /// is set, and the eventfd, emptied, wakes no later wait.
    #[test]
    fn a_stop_wakes_a_wait_without_timeout_once() {
        let stop = LoopStop::new().unwrap();
        let mut p = Poller::new(stop.clone()).unwrap();
        let waiter = std::thread::spawn(move || {
            let got = ready(&mut p, None);
            (got, p)
        });
        assert!(!stop.is_set());
        stop.stop();
        let (got, mut p) = waiter.join().unwrap();
        assert_eq!(got, [], "the stop is no descriptor of the caller's");
        assert!(p.stop().is_set());
        let t0 = std::time::Instant::now();
        assert_eq!(ready(&mut p, Some(Duration::from_millis(20))), []);
        assert!(t0.elapsed() >= Duration::from_millis(20), "not woken again");
    }

    /// A stop wakes a receive blocked on the socket named to it (in
    /// blocking mode, no receive timeout: nothing else would), and a
    /// receive that comes after the stop returns at once, as one that
    /// comes after the socket is named to a stop already set.
    #[test]
    fn a_stop_wakes_a_receive_blocked_on_its_reader() {
        let stop = LoopStop::new().unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(None).unwrap();
        stop.wake_reader(Some(&sock)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            let first = sock.recv(&mut buf).map_err(|e| e.kind());
            let again = sock.recv(&mut buf).map_err(|e| e.kind());
            tx.send((first, again)).unwrap();
        });
        stop.stop();
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the blocked receive returned once stopped");
        assert_eq!(got, (Ok(0), Ok(0)), "no datagram, at once, both times");
        reader.join().unwrap();

        // Named after the stop: shut at once.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        stop.wake_reader(Some(&sock)).unwrap();
        assert_eq!(sock.recv(&mut [0u8; 8]).unwrap(), 0);
        stop.wake_reader(None).unwrap();
    }
}

//! The client queries the XDP workers forward, handed to the UDP path's
//! workers ([`Handoffs`]): a query the XDP path admitted and did not find
//! in the cache goes to the UDP worker of the address it came to, which
//! forwards it as one its own socket read (its upstream sockets, its
//! timer heap, its flights: no task per query) and answers through its
//! client socket, from that same address. The XDP worker and the UDP
//! worker meet only in a bounded channel and an eventfd, written only when
//! the UDP worker may be asleep (the XDP workers' [`Doorbell`]); a full channel sheds the query
//! (counted as shed by the queue, as a late query on the socket is), and a
//! query with no UDP worker for its address takes the async path.
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::door::Admitted;
use super::state::LsState;
use crate::server::batch::Peer;
use crate::xdp::doorbell::Doorbell;

/// Queries one UDP worker holds handed and unread, at most.
pub(crate) const HANDOFF_MAX: usize = 2048;

/// One forwarded query handed over.
pub(crate) struct HandedQuery {
    /// The query as the client sent it.
    pub(crate) raw: Vec<u8>,
    /// The client, and the address it asked (the answer leaves from it).
    pub(crate) client: Peer,
    /// When the XDP worker read it.
    pub(crate) received: Instant,
    /// The snapshot it was admitted on.
    pub(crate) state: Arc<LsState>,
    /// What the door made of it.
    pub(crate) admitted: Admitted,
}

/// What became of a query offered to the UDP workers.
pub(crate) enum Handed<T> {
    /// A UDP worker has it.
    Taken,
    /// The worker of its address is behind: shed.
    Full,
    /// No UDP worker serves its address: given back.
    NoWorker(Box<T>),
}

/// One UDP worker's way in.
struct Door<T> {
    /// The address its client socket is bound to.
    local: SocketAddr,
    tx: SyncSender<T>,
    /// Its eventfd (in its epoll set), rung only when it may be asleep.
    bell: Doorbell,
}

impl<T> Door<T> {
    /// Whether it serves queries to `to` (its own address, or `to`'s port
    /// on the unspecified address of `to`'s family).
    fn serves(&self, to: SocketAddr) -> bool {
        self.local.port() == to.port()
            && (self.local.ip() == to.ip()
                || (self.local.ip().is_unspecified() && self.local.is_ipv4() == to.is_ipv4()))
    }
}

/// The UDP workers taking the XDP workers' forwarded queries; on only when
/// the LS has an XDP path ([`Handoffs::turn_on`], before its UDP workers
/// start).
pub(crate) struct Handoffs<T = HandedQuery> {
    on: AtomicBool,
    doors: ArcSwap<Vec<Arc<Door<T>>>>,
    /// Held while the doors are changed (a worker starting or stopping).
    change: Mutex<()>,
}

impl<T> Default for Handoffs<T> {
    fn default() -> Self {
        Handoffs {
            on: AtomicBool::new(false),
            doors: ArcSwap::default(),
            change: Mutex::new(()),
        }
    }
}

impl<T> Handoffs<T> {
    /// The UDP workers started from now on take handed queries.
    pub(crate) fn turn_on(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    /// Hands `q` to a UDP worker serving `to` (the one `pick`, its client's
    /// port, picks when there are several, so a client's queries keep to one).
    pub(crate) fn hand(&self, to: SocketAddr, pick: u16, q: T) -> Handed<T> {
        let doors = self.doors.load();
        let serving = doors.iter().filter(|d| d.serves(to)).count();
        let pick = usize::from(pick) % serving.max(1);
        let Some(door) = doors.iter().filter(|d| d.serves(to)).nth(pick) else {
            return Handed::NoWorker(Box::new(q));
        };
        match door.bell.hand(&door.tx, q) {
            Ok(()) => Handed::Taken,
            Err(TrySendError::Full(_)) => Handed::Full,
            Err(TrySendError::Disconnected(q)) => Handed::NoWorker(Box::new(q)),
        }
    }

    /// The way in of a UDP worker whose client socket is bound to `local`,
    /// when handing is on; it is taken out when the [`Inbox`] drops.
    ///
    /// # Errors
    /// The OS error of `eventfd(2)`.
    pub(crate) fn open(self: &Arc<Self>, local: SocketAddr) -> std::io::Result<Option<Inbox<T>>> {
        if !self.on.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let bell = Doorbell::new()?;
        let (tx, rx) = sync_channel(HANDOFF_MAX);
        let door = Arc::new(Door { local, tx, bell });
        let _one = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let mut doors = Vec::clone(&self.doors.load());
        doors.push(door.clone());
        self.doors.store(Arc::new(doors));
        Ok(Some(Inbox {
            rx,
            door,
            all: self.clone(),
        }))
    }
}

/// A UDP worker's side: the queries handed to it.
pub(crate) struct Inbox<T = HandedQuery> {
    rx: Receiver<T>,
    door: Arc<Door<T>>,
    all: Arc<Handoffs<T>>,
}

impl<T> Inbox<T> {
    /// The eventfd to watch for reading.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.door.bell.fd()
    }

    /// The next query handed, if any (no system call).
    pub(crate) fn take(&self) -> Option<T> {
        let q = self.rx.try_recv().ok()?;
        self.door.bell.took(1);
        Some(q)
    }

    /// Before the worker waits: the next query handed will wake it. False
    /// when one came meanwhile (the worker must not sleep then).
    pub(crate) fn arm(&self) -> bool {
        if self.door.bell.arm() {
            return true;
        }
        self.door.bell.woke(false);
        false
    }

    /// The eventfd reported readable: emptied (level-triggered).
    pub(crate) fn woken(&self) {
        self.door.bell.woke(true);
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        let _one = (self.all.change.lock()).unwrap_or_else(PoisonError::into_inner);
        let mut doors = Vec::clone(&self.all.doors.load());
        doors.retain(|d| !Arc::ptr_eq(d, &self.door));
        self.all.doors.store(Arc::new(doors));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(local: &str) -> Door<()> {
        let (tx, _rx) = sync_channel(1);
        Door {
            local: local.parse().unwrap(),
            tx,
            bell: Doorbell::new().unwrap(),
        }
    }

    #[test]
    fn a_worker_serves_its_own_address_or_its_port_on_a_wildcard_of_the_family() {
        let to = |a: &str| a.parse::<SocketAddr>().unwrap();
        let bound = door("198.18.0.1:53");
        assert!(bound.serves(to("198.18.0.1:53")));
        assert!(!bound.serves(to("198.18.0.2:53")));
        assert!(!bound.serves(to("198.18.0.1:54")));
        let any4 = door("0.0.0.0:53");
        assert!(any4.serves(to("198.18.0.9:53")));
        assert!(!any4.serves(to("[2001:2::1]:53")));
        let any6 = door("[::]:53");
        assert!(any6.serves(to("[2001:2::1]:53")));
        assert!(!any6.serves(to("198.18.0.9:53")));
    }

    /// The hand-over between two threads: every query handed reaches the
    /// worker, in order; a worker that armed its door before waiting is
    /// woken by the next query (its eventfd written), one that did not arm
    /// it is not (it looks at its inbox each round anyway); a query handed
    /// between its last look and its arming keeps it from sleeping.
    #[test]
    fn a_handed_query_is_never_left_unseen_and_wakes_only_an_armed_worker() {
        let all: Arc<Handoffs<u32>> = Arc::default();
        let to: SocketAddr = "198.18.0.1:53".parse().unwrap();
        assert!(all.open(to).unwrap().is_none(), "off until turned on");
        assert!(matches!(all.hand(to, 1, 7), Handed::NoWorker(_)));
        all.turn_on();
        let inbox = all.open(to).unwrap().unwrap();
        let readable = |inbox: &Inbox<u32>| {
            let fd = inbox.fd();
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let now = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            rustix::event::poll(&mut fds, Some(&now)).unwrap_or(0) > 0
        };
        // Not armed: handed without a wake.
        assert!(matches!(all.hand(to, 1, 1), Handed::Taken));
        assert!(!readable(&inbox));
        // Arming with one waiting: refused (no sleep), and still no wake.
        assert!(!inbox.arm());
        assert_eq!(inbox.take(), Some(1));
        assert_eq!(inbox.take(), None);
        // Armed and empty: the next one writes the eventfd, once.
        assert!(inbox.arm());
        assert!(matches!(all.hand(to, 1, 2), Handed::Taken));
        assert!(readable(&inbox));
        assert!(matches!(all.hand(to, 1, 3), Handed::Taken));
        inbox.woken();
        assert!(!readable(&inbox));
        assert_eq!(
            (inbox.take(), inbox.take(), inbox.take()),
            (Some(2), Some(3), None)
        );
        // Another address is not this worker's.
        let other: SocketAddr = "198.18.0.2:53".parse().unwrap();
        assert!(matches!(all.hand(other, 1, 4), Handed::NoWorker(_)));
        // Full: shed, and the count of waiting ones is not left raised.
        for i in 0..HANDOFF_MAX as u32 {
            assert!(matches!(all.hand(to, 1, i), Handed::Taken));
        }
        assert!(matches!(all.hand(to, 1, 0), Handed::Full));
        while inbox.take().is_some() {}
        assert!(inbox.arm(), "nothing waits once all are taken");
        // Many threads handing at once while the worker takes and arms:
        // every one arrives.
        let n = 4 * HANDOFF_MAX as u32;
        let senders: Vec<_> = (0..2)
            .map(|t| {
                let all = all.clone();
                std::thread::spawn(move || {
                    let mut sent = 0;
                    for i in 0..n / 2 {
                        while !matches!(all.hand(to, 1, t * n + i), Handed::Taken) {
                            std::thread::yield_now();
                        }
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        let mut got = 0;
        while got < n {
            match inbox.take() {
                Some(_) => got += 1,
                None if inbox.arm() => {
                    let fd = inbox.fd();
                    let mut fds = [rustix::event::PollFd::new(
                        &fd,
                        rustix::event::PollFlags::IN,
                    )];
                    let limit = rustix::event::Timespec {
                        tv_sec: 10,
                        tv_nsec: 0,
                    };
                    let ready = rustix::event::poll(&mut fds, Some(&limit)).unwrap();
                    assert!(ready > 0, "armed, and never woken: {got} of {n}");
                    inbox.woken();
                }
                None => {}
            }
        }
        let sent: u32 = senders.into_iter().map(|s| s.join().unwrap()).sum();
        assert_eq!(sent, n);
        drop(inbox);
        assert!(
            matches!(all.hand(to, 1, 9), Handed::NoWorker(_)),
            "its door goes with it"
        );
    }
}

//! Batched UDP system calls: up to [`BATCH`] datagrams per `recvmmsg(2)` and
//! per `sendmmsg(2)` (Linux), through `nix`'s safe wrappers.
//!
//! On loopback the kernel's per-datagram work dominates a DNS server's CPU;
//! one system call per batch instead of one per datagram is how NSD keeps
//! ahead. Nothing is allocated per call once warm: [`RecvBatch`] owns the
//! receive slots, [`SendQueue`] reuses its message buffers, the I/O vectors
//! and address lists live on the stack, and the kernel's message headers
//! (`nix`'s `MultiHeaders`, which holds raw pointers and so cannot live in a
//! task) are kept per thread. Receive headers are kept per address family
//! and per "with timestamps" (the kernel writes the address and control
//! lengths back into them, so a header set serves sockets of one kind
//! only). Both calls are non-blocking (`MSG_DONTWAIT`, whatever the
//! socket's mode): the caller waits for readiness; but
//! [`RecvBatch::recv_waiting`], which waits in the call itself for the
//! first datagram on a socket in blocking mode.
//! Addresses are read and written as their family's own `sockaddr_in` or
//! `sockaddr_in6` (16 or 28 bytes), not a 128-byte `sockaddr_storage`
//! made, copied and checked per datagram; a batch of 8 slots sets up 8 I/O
//! vectors, not [`BATCH`].
//!
//! A [`RecvBatch`] made [`RecvBatch::with_timestamps`] reads each datagram's
//! kernel receive time (`SO_TIMESTAMPNS`, which the socket must have on:
//! [`enable_timestamps`]): how long it waited in the socket's queue.
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `::`) has the kernel
//! say which local address each datagram came to (`IP_PKTINFO`,
//! `IPV6_RECVPKTINFO`: [`enable_pktinfo`]); the batch reads it into
//! [`Received::dst`], and the answer to it, queued for that [`Peer`], leaves
//! from that address (a `sendmmsg(2)` per run of answers from the same
//! address), as a client expects: a reply from another address is not an
//! answer to it. A socket bound to one address has nothing of this to do.
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, SystemTime};

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrLike, SockaddrStorage, recvmmsg, sendmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use smallvec::SmallVec;
use std::io::{IoSlice, IoSliceMut};

/// Datagrams per system call (NSD's figure).
pub(crate) const BATCH: usize = 32;
/// Size of one receive slot. A query longer than this is no query a DNS
/// client sends over UDP; it arrives truncated and is dropped.
pub(crate) const SLOT: usize = 4096;

/// One received datagram: its length in its slot, its source, and whether
/// it was cut short (longer than the slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// Bytes in the slot.
    pub(crate) len: usize,
    /// Where it came from (`None` for an address family we do not speak).
    pub(crate) src: Option<SocketAddr>,
    /// Longer than [`SLOT`]: the slot holds only its start.
    pub(crate) truncated: bool,
    /// When the kernel received it (realtime clock), for a batch made
    /// [`RecvBatch::with_timestamps`] on a socket with timestamps on.
    pub(crate) stamp: Option<SystemTime>,
    /// The local address it came to, on a wildcard socket (see
    /// [`enable_pktinfo`]); `None` on a socket bound to one address.
    pub(crate) dst: Option<IpAddr>,
}

impl Received {
    /// Whom to answer: its source, from the address it came to.
    pub(crate) fn peer(&self) -> Option<Peer> {
        Some(Peer {
            addr: self.src?,
            local: self.dst,
        })
    }
}

/// Where a datagram goes: the remote address and, for an answer on a
/// wildcard socket, the local address it must leave from (the one the query
/// came to). `None`: the socket's own address (or the kernel's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The remote address.
    pub(crate) addr: SocketAddr,
    /// The local address to send from.
    pub(crate) local: Option<IpAddr>,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer { addr, local: None }
    }
}

/// Has the kernel tell, for each datagram `sock` receives, the local
/// address it came to (`IP_PKTINFO` or `IPV6_RECVPKTINFO`), when `sock` is
/// bound to a wildcard address; nothing otherwise.
///
/// # Errors
/// The OS error.
pub(crate) fn enable_pktinfo(sock: &impl AsFd, local: SocketAddr) -> io::Result<()> {
    match local {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            setsockopt(sock, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)
        }
        _ => Ok(()),
    }
}

/// Turns on `SO_TIMESTAMPNS`: each datagram read carries the time the
/// kernel received it.
///
/// # Errors
/// The OS error.
pub(crate) fn enable_timestamps(sock: &impl AsFd) -> io::Result<()> {
    setsockopt(sock, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Which per-thread receive headers a socket uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    v6: bool,
    stamps: bool,
    /// A wildcard socket: read each datagram's local address.
    pktinfo: bool,
}

thread_local! {
    /// Receive headers per address family, each per [`Kind`] (without,
    /// with timestamps × without, with packet info: [`Kind::index`]).
    static RECV_V4: RefCell<[Option<MultiHeaders<SockaddrIn>>; 4]> =
        const { RefCell::new([None, None, None, None]) };
    static RECV_V6: RefCell<[Option<MultiHeaders<SockaddrIn6>>; 4]> =
        const { RefCell::new([None, None, None, None]) };
    /// Send headers per destination family (the kernel writes nothing back
    /// into them): without control messages, and with room for one v4 or
    /// v6 packet info (a header's control length is sent as it is, so each
    /// set fits exactly what it carries).
    static SEND_V4: RefCell<[Option<MultiHeaders<SockaddrIn>>; 3]> =
        const { RefCell::new([None, None, None]) };
    static SEND_V6: RefCell<[Option<MultiHeaders<SockaddrIn6>>; 3]> =
        const { RefCell::new([None, None, None]) };
}

impl Kind {
    /// Its header set among its family's.
    fn index(self) -> usize {
        usize::from(self.pktinfo) * 2 + usize::from(self.stamps)
    }
}

/// A socket address of one family as the kernel reads and writes it
/// (`sockaddr_in`, `sockaddr_in6`).
trait Addr: SockaddrLike + Copy {
    /// As a std address; `None` when the kernel wrote another family.
    fn into_std(self) -> Option<SocketAddr>;
    /// `addr` in this family's form; `None` for the other family.
    fn of(addr: SocketAddr) -> Option<Self>;
}

impl Addr for SockaddrIn {
    fn into_std(self) -> Option<SocketAddr> {
        let raw = libc::sockaddr_in::from(self);
        (raw.sin_family == libc::AF_INET as libc::sa_family_t).then(|| SocketAddr::from(self))
    }

    fn of(addr: SocketAddr) -> Option<Self> {
        match addr {
            SocketAddr::V4(a) => Some(SockaddrIn::from(a)),
            SocketAddr::V6(_) => None,
        }
    }
}

impl Addr for SockaddrIn6 {
    fn into_std(self) -> Option<SocketAddr> {
        let raw = libc::sockaddr_in6::from(self);
        (raw.sin6_family == libc::AF_INET6 as libc::sa_family_t).then(|| SocketAddr::from(self))
    }

    fn of(addr: SocketAddr) -> Option<Self> {
        match addr {
            SocketAddr::V6(a) => Some(SockaddrIn6::from(a)),
            SocketAddr::V4(_) => None,
        }
    }
}

/// Reusable receive slots for sockets of one address family.
pub(crate) struct RecvBatch {
    slots: Vec<[u8; SLOT]>,
    got: Vec<Received>,
    stamps: bool,
    /// The family of the sockets read, and whether they have packet info on
    /// ([`enable_pktinfo`]), learnt on the first read.
    v6: Option<(bool, bool)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::with_slots(BATCH)
    }
}

impl RecvBatch {
    /// Room for `n` datagrams per call (at least one, at most [`BATCH`]).
    pub(crate) fn with_slots(n: usize) -> Self {
        let n = n.clamp(1, BATCH);
        RecvBatch {
            slots: vec![[0u8; SLOT]; n],
            got: Vec::with_capacity(n),
            stamps: false,
            v6: None,
        }
    }

    /// The same, also reading each datagram's kernel receive time (the
    /// sockets read must have [`enable_timestamps`] on).
    pub(crate) fn with_timestamps(n: usize) -> Self {
        RecvBatch {
            stamps: true,
            ..RecvBatch::with_slots(n)
        }
    }

    /// Receives what is queued on `sock` (at most [`BATCH`]) without
    /// blocking; the number received. Every socket one batch reads is of
    /// the same address family.
    ///
    /// # Errors
    /// The socket's error; `WouldBlock` when nothing is queued.
    pub(crate) fn recv(&mut self, sock: &(impl AsRawFd + AsFd)) -> io::Result<usize> {
        self.recv_with(sock, MsgFlags::MSG_DONTWAIT)
    }

    /// Receives a batch from `sock`, a socket in blocking mode, waiting for
    /// its first datagram (at most the socket's `SO_RCVTIMEO`), then taking
    /// whatever else is queued without waiting (`MSG_WAITFORONE`); the
    /// number received.
    ///
    /// Not `recvmmsg(2)`'s own timeout: that one is checked only after each
    /// datagram received, so a call that got fewer than a full batch would
    /// wait for the rest with no bound (the man page's BUGS). With
    /// `MSG_WAITFORONE` the call returns as soon as it has one datagram and
    /// the queue is empty; with none, when the socket's receive timeout
    /// passes (`WouldBlock`) or a signal comes (`Interrupted`). A socket
    /// shut down for reading (`shutdown(2)`, [`crate::server::event_loop`]'s
    /// stop) returns at once, one empty datagram whose source is stale:
    /// the caller knows it is stopping and reads none of it.
    ///
    /// # Errors
    /// The socket's error; `WouldBlock` at the receive timeout.
    pub(crate) fn recv_waiting(&mut self, sock: &(impl AsRawFd + AsFd)) -> io::Result<usize> {
        self.recv_with(sock, MsgFlags::MSG_WAITFORONE)
    }

    /// [`RecvBatch::recv`] with the call's `flags`.
    #[inline(never)] // one entry in a profile for both kinds of receive
    fn recv_with(&mut self, sock: &(impl AsRawFd + AsFd), flags: MsgFlags) -> io::Result<usize> {
        self.got.clear();
        let fd = sock.as_raw_fd();
        let (v6, pktinfo) = match self.v6 {
            Some(known) => known,
            None => {
                let local: SockaddrStorage =
                    nix::sys::socket::getsockname(fd).map_err(io::Error::from)?;
                let v6 = local.as_sockaddr_in6().is_some();
                // Whether the kernel adds packet info: asked of the socket,
                // not judged from its address (the LS's upstream sockets are
                // bound to a wildcard address without it). Sockets of one
                // kind share headers whose control length the kernel writes
                // back: one that carries less would shrink it for the others.
                let fd = sock.as_fd();
                let pktinfo = if v6 {
                    nix::sys::socket::getsockopt(&fd, sockopt::Ipv6RecvPacketInfo)
                } else {
                    nix::sys::socket::getsockopt(&fd, sockopt::Ipv4PacketInfo)
                }
                .unwrap_or(false);
                let known = (v6, pktinfo);
                self.v6 = Some(known);
                known
            }
        };
        let kind = Kind {
            v6,
            stamps: self.stamps,
            pktinfo,
        };
        recv_into(fd, (kind, flags), &mut self.slots, &mut self.got)?;
        Ok(self.got.len())
    }

    /// Receives a batch from `sock` once tokio has seen it readable
    /// (`Ok(0)`: nothing was queued after all). When the batch does not fill
    /// the slots the queue is empty, so the socket's readiness is cleared at
    /// once: no extra call only to hear `EAGAIN`. (tokio keeps it set if a
    /// datagram arrived meanwhile.)
    ///
    /// # Errors
    /// The socket's error.
    pub(crate) fn recv_ready(&mut self, sock: &tokio::net::UdpSocket) -> io::Result<usize> {
        let mut got = 0;
        let slots = self.slots.len();
        match sock.try_io(tokio::io::Interest::READABLE, || {
            got = self.recv(sock)?;
            if got < slots {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(got),
            r => r,
        }
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: its bytes and metadata.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], Received)> {
        let r = *self.got.get(i)?;
        let bytes = self.slots.get(i)?.get(..r.len)?;
        Some((bytes, r))
    }
}

fn recv_into(
    fd: RawFd,
    (kind, flags): (Kind, MsgFlags),
    slots: &mut [[u8; SLOT]],
    got: &mut Vec<Received>,
) -> io::Result<()> {
    let at = kind.index();
    let call = (fd, kind, flags);
    // A batch of at most 8 slots (an upstream socket's) sets up 8 I/O
    // vectors, not 32.
    match (kind.v6, slots.len() <= 8) {
        (false, true) => {
            RECV_V4.with_borrow_mut(|all| recv_as::<_, 8>(call, all.get_mut(at), slots, got))
        }
        (false, false) => {
            RECV_V4.with_borrow_mut(|all| recv_as::<_, BATCH>(call, all.get_mut(at), slots, got))
        }
        (true, true) => {
            RECV_V6.with_borrow_mut(|all| recv_as::<_, 8>(call, all.get_mut(at), slots, got))
        }
        (true, false) => {
            RECV_V6.with_borrow_mut(|all| recv_as::<_, BATCH>(call, all.get_mut(at), slots, got))
        }
    }
}

/// [`recv_into`] with the headers `set` of the socket's family and kind,
/// into at most `N` of `slots`.
fn recv_as<S: Addr, const N: usize>(
    (fd, kind, flags): (RawFd, Kind, MsgFlags),
    set: Option<&mut Option<MultiHeaders<S>>>,
    slots: &mut [[u8; SLOT]],
    got: &mut Vec<Received>,
) -> io::Result<()> {
    let Some(set) = set else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // An array, not a growable list: nothing to allocate, nothing to drop.
    // Made empty, then pointed at the slots in one plain loop (an iterator
    // drawn from inside `from_fn` cost ~20 instructions a slot, 32 slots
    // per client batch, whatever the batch brings).
    let n = slots.len().min(N);
    let mut iovs: [[IoSliceMut<'_>; 1]; N] = std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
    for (iov, s) in iovs.iter_mut().zip(slots.iter_mut()) {
        *iov = [IoSliceMut::new(&mut s[..])];
    }
    let headers = set.get_or_insert_with(|| {
        let cmsg = match (kind.stamps, kind.pktinfo) {
            (false, false) => None,
            (true, false) => Some(nix::cmsg_space!(TimeSpec)),
            (false, true) => Some(nix::cmsg_space!(libc::in6_pktinfo)),
            (true, true) => Some(nix::cmsg_space!(TimeSpec, libc::in6_pktinfo)),
        };
        MultiHeaders::preallocate(BATCH, cmsg)
    });
    let results = recvmmsg(fd, headers, iovs.iter_mut().take(n), flags, None)?;
    for msg in results {
        let (mut stamp, mut dst) = (None, None);
        if kind.stamps || kind.pktinfo {
            for m in msg.cmsgs().into_iter().flatten() {
                match m {
                    ControlMessageOwned::ScmTimestampns(ts) => stamp = system_time(ts),
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        dst = Some(IpAddr::from(
                            u32::from_be(info.ipi_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        dst = Some(IpAddr::from(info.ipi6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
        }
        got.push(Received {
            len: msg.bytes.min(SLOT),
            src: msg.address.and_then(S::into_std),
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            stamp,
            dst,
        });
    }
    Ok(())
}

/// A kernel timestamp as a `SystemTime` (`None` before the epoch).
fn system_time(ts: TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Sends as many of `msgs` (bytes, destination) as the socket takes now, in
/// one `sendmmsg(2)`; returns how many were sent from the front (0 is never
/// returned for a non-empty list: an error is). One call sends a run of
/// messages from the same local address (see [`Peer`]).
///
/// # Errors
/// The error of the first message (`WouldBlock` when the socket is full):
/// the caller skips a message that fails for any other reason.
pub(crate) fn send_some(sock: &impl AsRawFd, msgs: &[(Vec<u8>, Peer)]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(BATCH)).unwrap_or_default();
    let Some((_, first)) = msgs.first() else {
        return Ok(0);
    };
    // A run from one local address to one address family (a socket sends
    // to one family: the run is cut only for a mixed list).
    let (local, v4) = (first.local, first.addr.is_ipv4());
    let run = msgs
        .iter()
        .take_while(|(_, p)| p.local == local && p.addr.is_ipv4() == v4)
        .count();
    let msgs = msgs.get(..run).unwrap_or_default();
    // The packet info naming the source address (interface 0: the
    // routing picks it, from that address).
    let pktinfo4 = match local {
        Some(IpAddr::V4(ip)) => Some(libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        }),
        _ => None,
    };
    let pktinfo6 = match local {
        Some(IpAddr::V6(ip)) => Some(libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            ipi6_ifindex: 0,
        }),
        _ => None,
    };
    let (at, cmsg) = match (&pktinfo4, &pktinfo6) {
        (Some(i), _) => (1, Some(ControlMessage::Ipv4PacketInfo(i))),
        (_, Some(i)) => (2, Some(ControlMessage::Ipv6PacketInfo(i))),
        _ => (0, None),
    };
    let cmsgs: &[ControlMessage<'_>] = match &cmsg {
        Some(c) => std::slice::from_ref(c),
        None => &[],
    };
    let fd = sock.as_raw_fd();
    if v4 {
        SEND_V4.with_borrow_mut(|all| send_as(fd, (all.get_mut(at), at), msgs, cmsgs))
    } else {
        SEND_V6.with_borrow_mut(|all| send_as(fd, (all.get_mut(at), at), msgs, cmsgs))
    }
}

/// [`send_some`] of a run of `msgs` to addresses of `S`'s family, with the
/// headers `set` (number `at` of that family's: which control message
/// they have room for), each message carrying `cmsgs`.
fn send_as<S: Addr>(
    fd: RawFd,
    (set, at): (Option<&mut Option<MultiHeaders<S>>>, usize),
    msgs: &[(Vec<u8>, Peer)],
    cmsgs: &[ControlMessage<'_>],
) -> io::Result<usize> {
    let Some(set) = set else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let addrs: SmallVec<[Option<S>; BATCH]> = msgs.iter().map(|(_, p)| S::of(p.addr)).collect();
    let iovs: SmallVec<[[IoSlice<'_>; 1]; BATCH]> =
        msgs.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
    let headers = set.get_or_insert_with(|| {
        let space = match at {
            1 => Some(nix::cmsg_space!(libc::in_pktinfo)),
            2 => Some(nix::cmsg_space!(libc::in6_pktinfo)),
            _ => None,
        };
        MultiHeaders::preallocate(BATCH, space)
    });
    let results = sendmmsg(
        fd,
        headers,
        iovs.iter(),
        &addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(results.count())
}

/// Sends `msgs` (bytes, destination) on `sock` in batches, waiting when
/// its buffer is full. A message the kernel refuses for any other reason is
/// skipped (and logged at debug).
pub(crate) async fn send_all(sock: &tokio::net::UdpSocket, msgs: &[(Vec<u8>, Peer)]) {
    send_noting(sock, msgs, |_| {}).await;
}

/// [`send_all`], telling `refused` each message the kernel refused (any
/// error but `EAGAIN`, e.g. `EACCES` for a broadcast address, `ENETUNREACH`,
/// `EPERM` from a firewall): it was skipped, never sent.
pub(crate) async fn send_noting(
    sock: &tokio::net::UdpSocket,
    msgs: &[(Vec<u8>, Peer)],
    mut refused: impl FnMut(&[u8]),
) {
    let mut done = 0;
    while done < msgs.len() {
        let rest = msgs.get(done..).unwrap_or_default();
        let sent = sock.try_io(tokio::io::Interest::WRITABLE, || send_some(sock, rest));
        match advance(sent, rest, &mut refused) {
            Some(n) => done += n,
            None => {
                if sock.writable().await.is_err() {
                    break;
                }
            }
        }
    }
}

/// How far one [`send_some`] of `rest` went: the messages it sent, or the
/// one it skipped because the kernel refused it (told to `refused`);
/// `None` when the socket is full (`EAGAIN`).
fn advance(
    sent: io::Result<usize>,
    rest: &[(Vec<u8>, Peer)],
    refused: &mut impl FnMut(&[u8]),
) -> Option<usize> {
    match sent {
        Ok(n) => Some(n.max(1)),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
        Err(err) => {
            if let Some((bytes, dst)) = rest.first() {
                tracing::debug!(dst = %dst.addr, ?err, "udp send failed");
                refused(bytes);
            }
            Some(1)
        }
    }
}

/// Outgoing datagrams of one round, in buffers kept from round to round:
/// once warm, queueing a message copies its bytes and allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Messages `sent..len` are queued; the rest are spare buffers.
    msgs: Vec<(Vec<u8>, Peer)>,
    len: usize,
    /// Messages before it have left (a [`SendQueue::send_now`] that the
    /// socket stopped short: the rest is pending).
    sent: usize,
    /// Messages before it were queued before the last send (what
    /// [`SendQueue::queued`] no longer lists).
    told: usize,
    /// When the query each queued message answers arrived, where the queuer
    /// said ([`SendQueue::stamp`]); by index, as `msgs`.
    arrived: Vec<Option<std::time::Instant>>,
}

impl SendQueue {
    /// A queue with `n` buffers ready (of a typical DNS message's size), so
    /// that a round of up to `n` messages allocates nothing even the first
    /// time.
    pub(crate) fn with_buffers(n: usize, to: SocketAddr) -> Self {
        SendQueue {
            msgs: (0..n)
                .map(|_| (Vec::with_capacity(512), Peer::from(to)))
                .collect(),
            len: 0,
            sent: 0,
            told: 0,
            arrived: vec![None; n],
        }
    }

    /// A cleared buffer for a message to `to`, queued: the caller writes
    /// the message into it.
    pub(crate) fn push(&mut self, to: impl Into<Peer>) -> &mut Vec<u8> {
        let to = to.into();
        if self.len == self.msgs.len() {
            self.msgs.push((Vec::with_capacity(512), to));
        }
        self.len += 1;
        // In bounds: the list was just made at least `len` long.
        let (buf, dst) = &mut self.msgs[self.len - 1];
        buf.clear();
        *dst = to;
        match self.arrived.get_mut(self.len - 1) {
            Some(at) => *at = None,
            None => self.arrived.push(None),
        }
        buf
    }

    /// [`SendQueue::push`] of the answer to a query that arrived `arrived`.
    pub(crate) fn push_at(
        &mut self,
        to: impl Into<Peer>,
        arrived: std::time::Instant,
    ) -> &mut Vec<u8> {
        self.push(to);
        self.stamp(arrived);
        // In bounds: `push` made the list at least `len` long.
        &mut self.msgs[self.len - 1].0
    }

    /// Says when the query the message queued last answers arrived.
    pub(crate) fn stamp(&mut self, arrived: std::time::Instant) {
        if let Some(at) = self
            .len
            .checked_sub(1)
            .and_then(|i| self.arrived.get_mut(i))
        {
            *at = Some(arrived);
        }
    }

    /// Queues a copy of `bytes` for `to`.
    pub(crate) fn push_copy(&mut self, bytes: &[u8], to: impl Into<Peer>) {
        self.push(to).extend_from_slice(bytes);
    }

    /// The messages queued since the last send, with where each goes.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (&[u8], Peer)> {
        let queued = self.msgs.get(self.told..self.len).unwrap_or_default();
        queued.iter().map(|(b, p)| (b.as_slice(), *p))
    }

    /// [`SendQueue::queued`], with when each one's query arrived when
    /// stamped.
    pub(crate) fn queued_stamped(
        &self,
    ) -> impl Iterator<Item = (&[u8], Peer, Option<std::time::Instant>)> {
        let (told, at) = (self.told, |i| self.arrived.get(i).copied().flatten());
        self.queued()
            .enumerate()
            .map(move |(i, (b, p))| (b, p, at(told + i)))
    }

    /// Messages queued and not sent yet.
    pub(crate) fn len(&self) -> usize {
        self.len - self.sent
    }

    /// Takes back the message queued last (not one already sent).
    pub(crate) fn pop(&mut self) {
        self.len = self.len.saturating_sub(1).max(self.sent);
        self.told = self.told.min(self.len);
    }

    /// Forgets every message queued.
    pub(crate) fn clear(&mut self) {
        (self.len, self.sent, self.told) = (0, 0, 0);
    }

    /// Sends what `sock` takes now without waiting, as [`send_noting`]
    /// does (`refused` told each message the kernel refused): true when
    /// the queue is empty, false when the socket is full and messages are
    /// pending (the next call sends them first; queued since, they count
    /// as sent for [`SendQueue::queued`]).
    pub(crate) fn send_now(&mut self, sock: &impl AsRawFd, mut refused: impl FnMut(&[u8])) -> bool {
        self.told = self.len;
        while self.sent < self.len {
            let rest = self.msgs.get(self.sent..self.len).unwrap_or_default();
            match advance(send_some(sock, rest), rest, &mut refused) {
                Some(n) => self.sent += n,
                None => return false,
            }
        }
        self.clear();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_in_and_a_batch_out() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (s, c) = (server.local_addr().unwrap(), client.local_addr().unwrap());
        let mut batch = RecvBatch::default();
        assert_eq!(
            batch.recv(&server).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..40u8 {
            client.send_to(&[i; 3], s).unwrap();
        }
        client.send_to(&[9u8; SLOT + 10], s).unwrap();
        let mut seen = Vec::new();
        let mut truncated = 0;
        while seen.len() + truncated < 41 {
            let n = batch.recv(&server).unwrap();
            assert!(n <= BATCH);
            for i in 0..n {
                let (bytes, r) = batch.get(i).unwrap();
                assert_eq!(r.src, Some(c));
                if r.truncated {
                    truncated += 1;
                    assert_eq!(bytes.len(), SLOT);
                } else {
                    seen.push(bytes.to_vec());
                }
            }
        }
        assert_eq!(truncated, 1, "the oversized datagram is flagged");
        assert_eq!(seen, (0..40u8).map(|i| vec![i; 3]).collect::<Vec<_>>());

        let replies: Vec<(Vec<u8>, Peer)> = (0..40u8).map(|i| (vec![i; 5], c.into())).collect();
        let mut sent = 0;
        while sent < replies.len() {
            sent += send_some(&server, &replies[sent..]).unwrap();
        }
        let mut buf = [0u8; 16];
        for i in 0..40u8 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 5][..], s));
        }
    }

    /// A waiting receive on a socket in blocking mode returns with the
    /// datagrams queued, fewer than a batch, not waiting for the rest (no
    /// receive timeout here: `recvmmsg`'s own timeout would not end such a
    /// wait); with nothing queued it waits, at most the receive timeout.
    #[test]
    fn a_waiting_receive_returns_with_what_came_not_a_full_batch() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = server.local_addr().unwrap();
        server.set_read_timeout(None).unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 4], s).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut batch = RecvBatch::default();
            let n = batch.recv_waiting(&server).unwrap();
            let got: Vec<Vec<u8>> = (0..n).map(|i| batch.get(i).unwrap().0.to_vec()).collect();
            tx.send(got).unwrap();
            server
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            batch.recv_waiting(&server).map_err(|e| e.kind())
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("returned with three of 32");
        assert_eq!(got, (0..3u8).map(|i| vec![i; 4]).collect::<Vec<_>>());
        assert_eq!(reader.join().unwrap(), Err(io::ErrorKind::WouldBlock));
    }

    /// A message the kernel refuses (a broadcast address: `EACCES`) is
    /// told to the caller and skipped; those around it are sent.
    #[tokio::test]
    async fn a_refused_message_is_told_and_the_others_still_go() {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        let refused_to = SocketAddr::from(([127, 255, 255, 255], 53));
        let mut q = SendQueue::default();
        q.push_copy(b"one", to);
        q.push_copy(b"two", refused_to);
        q.push_copy(b"three", to);
        let mut told = Vec::new();
        assert!(q.send_now(&sock, |bytes| told.push(bytes.to_vec())));
        assert_eq!(told, [b"two".to_vec()]);
        assert_eq!(q.len(), 0);
        let mut buf = [0u8; 16];
        for want in [&b"one"[..], b"three"] {
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }
}

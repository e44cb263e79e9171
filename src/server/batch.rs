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
//! only). Both calls are non-blocking: the caller waits for readiness.
//!
//! A [`RecvBatch`] made [`RecvBatch::with_timestamps`] reads each datagram's
//! kernel receive time (`SO_TIMESTAMPNS`, which the socket must have on:
//! [`enable_timestamps`]): how long it waited in the socket's queue.
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt,
    sockopt,
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
}

thread_local! {
    /// Receive headers per [`Kind`] (v4, v6 × without, with timestamps).
    static RECV_HEADERS: RefCell<[Option<MultiHeaders<SockaddrStorage>>; 4]> =
        const { RefCell::new([None, None, None, None]) };
    /// Send headers (the kernel writes nothing back into them).
    static SEND_HEADERS: RefCell<Option<MultiHeaders<SockaddrStorage>>> =
        const { RefCell::new(None) };
}

/// Reusable receive slots for sockets of one address family.
pub(crate) struct RecvBatch {
    slots: Vec<[u8; SLOT]>,
    got: Vec<Received>,
    stamps: bool,
    /// The family of the sockets read, learnt on the first read.
    v6: Option<bool>,
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
    pub(crate) fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        let fd = sock.as_raw_fd();
        let v6 = match self.v6 {
            Some(v6) => v6,
            None => {
                let local: SockaddrStorage =
                    nix::sys::socket::getsockname(fd).map_err(io::Error::from)?;
                let v6 = local.as_sockaddr_in6().is_some();
                self.v6 = Some(v6);
                v6
            }
        };
        let kind = Kind {
            v6,
            stamps: self.stamps,
        };
        recv_into(fd, kind, &mut self.slots, &mut self.got)?;
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
    kind: Kind,
    slots: &mut [[u8; SLOT]],
    got: &mut Vec<Received>,
) -> io::Result<()> {
    RECV_HEADERS.with_borrow_mut(|all| {
        // An array, not a growable list: nothing to allocate, nothing to drop.
        let n = slots.len().min(BATCH);
        let mut each = slots.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [match each.next() {
                Some(s) => IoSliceMut::new(&mut s[..]),
                None => IoSliceMut::new(&mut []),
            }]
        });
        let at = usize::from(kind.v6) * 2 + usize::from(kind.stamps);
        let Some(slot) = all.get_mut(at) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let headers = slot.get_or_insert_with(|| {
            let cmsg = kind.stamps.then(|| nix::cmsg_space!(TimeSpec));
            MultiHeaders::preallocate(BATCH, cmsg)
        });
        let results = recvmmsg(
            fd,
            headers,
            iovs.iter_mut().take(n),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for msg in results {
            let stamp = if kind.stamps {
                msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmTimestampns(ts) => system_time(ts),
                        _ => None,
                    })
                })
            } else {
                None
            };
            got.push(Received {
                len: msg.bytes.min(SLOT),
                src: msg.address.and_then(|a| to_std(&a)),
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                stamp,
            });
        }
        Ok(())
    })
}

/// A kernel timestamp as a `SystemTime` (`None` before the epoch).
fn system_time(ts: TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Sends as many of `msgs` (bytes, destination) as the socket takes now, in
/// one `sendmmsg(2)`; returns how many were sent from the front (0 is never
/// returned for a non-empty list: an error is).
///
/// # Errors
/// The error of the first message (`WouldBlock` when the socket is full):
/// the caller skips a message that fails for any other reason.
pub(crate) fn send_some(sock: &impl AsRawFd, msgs: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(BATCH)).unwrap_or_default();
    if msgs.is_empty() {
        return Ok(0);
    }
    let addrs: SmallVec<[Option<SockaddrStorage>; BATCH]> = msgs
        .iter()
        .map(|(_, a)| Some(SockaddrStorage::from(*a)))
        .collect();
    SEND_HEADERS.with_borrow_mut(|slot| {
        let iovs: SmallVec<[[IoSlice<'_>; 1]; BATCH]> =
            msgs.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
        let headers = slot.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
        let results = sendmmsg(
            sock.as_raw_fd(),
            headers,
            iovs.iter(),
            &addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        )?;
        Ok(results.count())
    })
}

/// Sends `msgs` (bytes, destination) on `sock` in batches, waiting when
/// its buffer is full. A message the kernel refuses for any other reason is
/// skipped (and logged at debug).
pub(crate) async fn send_all(sock: &tokio::net::UdpSocket, msgs: &[(Vec<u8>, SocketAddr)]) {
    let mut done = 0;
    while done < msgs.len() {
        let rest = msgs.get(done..).unwrap_or_default();
        match sock.try_io(tokio::io::Interest::WRITABLE, || send_some(sock, rest)) {
            Ok(n) => done += n.max(1),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if sock.writable().await.is_err() {
                    break;
                }
            }
            Err(err) => {
                if let Some((_, dst)) = rest.first() {
                    tracing::debug!(%dst, ?err, "udp send failed");
                }
                done += 1;
            }
        }
    }
}

/// Outgoing datagrams of one round, in buffers kept from round to round:
/// once warm, queueing a message copies its bytes and allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Messages `..len` are queued; the rest are spare buffers.
    msgs: Vec<(Vec<u8>, SocketAddr)>,
    len: usize,
}

impl SendQueue {
    /// A queue with `n` buffers ready (of a typical DNS message's size), so
    /// that a round of up to `n` messages allocates nothing even the first
    /// time.
    pub(crate) fn with_buffers(n: usize, to: SocketAddr) -> Self {
        SendQueue {
            msgs: (0..n).map(|_| (Vec::with_capacity(512), to)).collect(),
            len: 0,
        }
    }

    /// A cleared buffer for a message to `to`, queued: the caller writes
    /// the message into it.
    pub(crate) fn push(&mut self, to: SocketAddr) -> &mut Vec<u8> {
        if self.len == self.msgs.len() {
            self.msgs.push((Vec::with_capacity(512), to));
        }
        self.len += 1;
        // In bounds: the list was just made at least `len` long.
        let (buf, dst) = &mut self.msgs[self.len - 1];
        buf.clear();
        *dst = to;
        buf
    }

    /// Queues a copy of `bytes` for `to`.
    pub(crate) fn push_copy(&mut self, bytes: &[u8], to: SocketAddr) {
        self.push(to).extend_from_slice(bytes);
    }

    /// Messages queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes back the message queued last.
    pub(crate) fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Forgets every message queued.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Sends what is queued on `sock` (see [`send_all`]) and empties the queue.
    pub(crate) async fn flush(&mut self, sock: &tokio::net::UdpSocket) {
        if self.len > 0 {
            send_all(sock, self.msgs.get(..self.len).unwrap_or_default()).await;
        }
        self.len = 0;
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

        let replies: Vec<(Vec<u8>, SocketAddr)> = (0..40u8).map(|i| (vec![i; 5], c)).collect();
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
}

//! Batched UDP system calls: up to [`BATCH`] datagrams per `recvmmsg(2)` and
//! per `sendmmsg(2)` (Linux), through `nix`'s safe wrappers.
//!
//! On loopback the kernel's per-datagram work dominates a DNS server's CPU;
//! one system call per batch instead of one per datagram is how NSD keeps
//! ahead. [`RecvBatch`] owns the receive slots (reused, nothing allocated per
//! datagram); [`send_all`] sends a list of replies in as few calls as the
//! socket takes. Both are non-blocking: the caller waits for readiness.
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
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
}

/// Reusable receive slots for one socket.
pub(crate) struct RecvBatch {
    slots: Vec<[u8; SLOT]>,
    got: Vec<Received>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::with_slots(BATCH)
    }
}

impl RecvBatch {
    /// Room for `n` datagrams per call (at least one).
    pub(crate) fn with_slots(n: usize) -> Self {
        RecvBatch {
            slots: vec![[0u8; SLOT]; n.max(1)],
            got: Vec::with_capacity(n.max(1)),
        }
    }

    /// Receives what is queued on `sock` (at most [`BATCH`]) without
    /// blocking; the number received.
    ///
    /// # Errors
    /// The socket's error; `WouldBlock` when nothing is queued.
    pub(crate) fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        recv_into(sock.as_raw_fd(), &mut self.slots, &mut self.got)?;
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

fn recv_into(fd: RawFd, slots: &mut [[u8; SLOT]], got: &mut Vec<Received>) -> io::Result<()> {
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = slots
        .iter_mut()
        .map(|s| [IoSliceMut::new(&mut s[..])])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
    let results = recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    for msg in results {
        got.push(Received {
            len: msg.bytes.min(SLOT),
            src: msg.address.and_then(|a| to_std(&a)),
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        });
    }
    Ok(())
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
    let iovs: Vec<[IoSlice<'_>; 1]> = msgs.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = msgs
        .iter()
        .map(|(_, a)| Some(SockaddrStorage::from(*a)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(msgs.len(), None);
    let results = sendmmsg(
        sock.as_raw_fd(),
        &mut headers,
        iovs.iter(),
        &addrs,
        [],
        MsgFlags::MSG_DONTWAIT,
    )?;
    Ok(results.count())
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

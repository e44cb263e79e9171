//! The work every loop does per query: answer it from a tiny fixed table
//! (bench/bench.py's names `hostN.bench.test`, N < 10,000, one A record
//! each; anything else NXDOMAIN), and the `recvmmsg`/`sendmmsg` batch that
//! reads queries and sends answers on one socket.
use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::RawFd;

/// Datagrams read per system call (the product's `batch::BATCH`).
pub const BATCH: usize = 32;
/// Bytes of a receive slot.
pub const SLOT: usize = 1232;

/// Names (lowercase wire format) to their address.
pub struct Table(HashMap<Box<[u8]>, [u8; 4]>);

impl Table {
    pub fn bench() -> Self {
        let mut m = HashMap::new();
        for i in 0..10_000u32 {
            let name = format!("host{i}.bench.test");
            let mut wire = Vec::new();
            for l in name.split('.') {
                wire.push(l.len() as u8);
                wire.extend_from_slice(l.as_bytes());
            }
            wire.push(0);
            m.insert(
                wire.into_boxed_slice(),
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            );
        }
        Table(m)
    }

    /// The answer to `q` in `out` (its length), or None for what is not
    /// a plain query.
    pub fn answer(&self, q: &[u8], out: &mut [u8]) -> Option<usize> {
        if q.len() < 12 || q[2] & 0x80 != 0 || q[4..6] != [0, 1] {
            return None;
        }
        let mut pos = 12;
        let mut lower = [0u8; 255];
        loop {
            let l = *q.get(pos)? as usize;
            if l > 63 || pos - 12 + l + 1 > 255 {
                return None;
            }
            if l == 0 {
                lower[pos - 12] = 0;
                pos += 1;
                break;
            }
            lower[pos - 12] = l as u8;
            for k in 1..=l {
                lower[pos - 12 + k] = q.get(pos + k)?.to_ascii_lowercase();
            }
            pos += l + 1;
        }
        let name_len = pos - 12;
        let qtype = q.get(pos..pos + 2)?;
        let qend = pos + 4;
        if q.len() < qend || out.len() < qend + 16 {
            return None;
        }
        out[..qend].copy_from_slice(&q[..qend]);
        out[2] = 0x84 | (q[2] & 0x01);
        out[6..12].copy_from_slice(&[0; 6]);
        match self.0.get(&lower[..name_len]) {
            Some(ip) => {
                out[3] = 0;
                if qtype == [0, 1] {
                    out[7] = 1;
                    out[qend..qend + 12]
                        .copy_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
                    out[qend + 12..qend + 16].copy_from_slice(ip);
                    return Some(qend + 16);
                }
                Some(qend)
            }
            None => {
                out[3] = 3;
                Some(qend)
            }
        }
    }
}

/// One socket's receive and send batch: the `mmsghdr`s point into the
/// slots of this (boxed, so never moved) value.
pub struct Batch {
    bufs: [[u8; SLOT]; BATCH],
    outs: [[u8; SLOT]; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    iov_in: [libc::iovec; BATCH],
    iov_out: [libc::iovec; BATCH],
    msgs_in: [libc::mmsghdr; BATCH],
    msgs_out: [libc::mmsghdr; BATCH],
}

impl Batch {
    pub fn new() -> Box<Self> {
        // SAFETY: every field is plain data for which zeroes are valid.
        let mut b: Box<Self> = unsafe { Box::new(zeroed()) };
        for i in 0..BATCH {
            b.iov_in[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            b.msgs_in[i].msg_hdr.msg_iov = &mut b.iov_in[i];
            b.msgs_in[i].msg_hdr.msg_iovlen = 1;
            b.msgs_in[i].msg_hdr.msg_name = (&mut b.names[i] as *mut libc::sockaddr_storage).cast();
            b.iov_out[i] = libc::iovec {
                iov_base: b.outs[i].as_mut_ptr().cast(),
                iov_len: 0,
            };
            b.msgs_out[i].msg_hdr.msg_iov = &mut b.iov_out[i];
            b.msgs_out[i].msg_hdr.msg_iovlen = 1;
        }
        b
    }

    /// One `recvmmsg` (non-blocking), each query answered, one `sendmmsg`:
    /// the datagrams read (`Ok(0)`: none queued).
    pub fn serve(&mut self, fd: RawFd, table: &Table) -> io::Result<usize> {
        for m in &mut self.msgs_in {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: the headers point at this batch's slots, of the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs_in.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        let mut k = 0;
        for i in 0..n {
            let len = self.msgs_in[i].msg_len as usize;
            let (q, out) = (&self.bufs[i][..len], &mut self.outs[k]);
            if let Some(alen) = table.answer(q, out) {
                self.iov_out[k].iov_len = alen;
                self.msgs_out[k].msg_hdr.msg_name =
                    (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                self.msgs_out[k].msg_hdr.msg_namelen = self.msgs_in[i].msg_hdr.msg_namelen;
                k += 1;
            }
        }
        let mut sent = 0;
        while sent < k {
            // SAFETY: as above, for the first k answers.
            let r = unsafe {
                libc::sendmmsg(fd, self.msgs_out[sent..].as_mut_ptr(), (k - sent) as u32, 0)
            };
            if r <= 0 {
                break; // dropped, as a full socket buffer drops
            }
            sent += r as usize;
        }
        Ok(n)
    }
}

/// A non-blocking UDP socket bound to `addr`.
pub fn bind(addr: &str) -> io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

//! (c) io_uring: one multishot `recvmsg` on the socket reading into a ring
//! of provided buffers (no system call per receive), each answer sent by a
//! `sendmsg` entry from a slot of its own, and one `io_uring_enter` per
//! wake-up that submits the round's sends and waits for the next
//! completion; the 100 ms hand-in timer is a timeout entry in the ring,
//! armed again only when it fires (as (b)'s heap entry is).
//! [`setup`] fails where io_uring is disabled (`io_uring_disabled`, a
//! seccomp filter, an old kernel): the caller then falls back to (b).
use std::alloc::{Layout, alloc_zeroed};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, RecvMsgOut, Timespec};
use io_uring::{IoUring, cqueue, opcode};

use crate::dns::{SLOT, Table};

const ENTRIES: usize = 256;
const BUF: usize = 2048;
const BGID: u16 = 7;
const SENDS: usize = 256;
const RECV: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;

/// A ring, or why io_uring cannot be used here.
pub fn setup() -> io::Result<IoUring> {
    IoUring::new(512)
}

/// Pushes `e`, first submitting what the queue holds if it is full.
///
/// # Safety
/// What `e` points at lives until its completion.
unsafe fn push(
    sq: &mut io_uring::SubmissionQueue<'_>,
    submitter: &io_uring::Submitter<'_>,
    e: &io_uring::squeue::Entry,
) -> bool {
    // SAFETY: the caller's.
    if unsafe { sq.push(e) }.is_ok() {
        return true;
    }
    sq.sync();
    let _ = submitter.submit();
    sq.sync();
    // SAFETY: the caller's.
    unsafe { sq.push(e) }.is_ok()
}

struct Send {
    out: [u8; SLOT],
    name: libc::sockaddr_storage,
    iov: libc::iovec,
    hdr: libc::msghdr,
}

pub fn run(mut ring: IoUring, sock: std::net::UdpSocket, table: &Table) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    // The provided buffers: a page-aligned ring of entries, and their bytes.
    let layout = Layout::from_size_align(ENTRIES * size_of::<BufRingEntry>(), 4096)
        .map_err(|_| io::Error::other("layout"))?;
    // SAFETY: a non-zero layout; the memory lives as long as the process.
    let ring_mem = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
    let bufs: &'static mut [u8] = Box::leak(vec![0u8; ENTRIES * BUF].into_boxed_slice());
    let base = bufs.as_mut_ptr();
    // SAFETY: the ring's memory and the buffers outlive the ring (leaked).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(ring_mem as u64, ENTRIES as u16, BGID, 0)?;
        for i in 0..ENTRIES {
            let e = &mut *ring_mem.add(i);
            e.set_addr(base.add(i * BUF) as u64);
            e.set_len(BUF as u32);
            e.set_bid(i as u16);
        }
    }
    // SAFETY: the tail lives in the first entry's reserved field.
    let tail = unsafe { &*(BufRingEntry::tail(ring_mem).cast::<AtomicU16>()) };
    let mut tail_v = ENTRIES as u16;
    tail.store(tail_v, Ordering::Release);

    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
    let recv = || {
        opcode::RecvMsgMulti::new(Fd(fd), &msg, BGID)
            .build()
            .user_data(RECV)
    };

    let mut sends: Vec<Box<Send>> = (0..SENDS)
        .map(|_| {
            // SAFETY: plain data.
            let mut s: Box<Send> = Box::new(unsafe { zeroed() });
            s.iov.iov_base = s.out.as_mut_ptr().cast();
            s.hdr.msg_iov = &mut s.iov;
            s.hdr.msg_iovlen = 1;
            s.hdr.msg_name = (&mut s.name as *mut libc::sockaddr_storage).cast();
            s
        })
        .collect();
    let mut free: Vec<usize> = (0..SENDS).collect();

    let (submitter, mut sq, mut cq) = ring.split();
    // SAFETY: `msg` outlives the ring's use of it.
    unsafe { sq.push(&recv()) }.map_err(|_| io::Error::other("sq full"))?;
    sq.sync();

    let hand_in = Duration::from_millis(100);
    let tts = Box::new(Timespec::new().sec(0).nsec(hand_in.subsec_nanos()));
    let timer = || opcode::Timeout::new(&*tts).build().user_data(TIMER);
    // SAFETY: `tts` outlives the ring's use of it.
    unsafe { sq.push(&timer()) }.map_err(|_| io::Error::other("sq full"))?;
    sq.sync();
    // The sends pushed since the last wait: their completions are posted at
    // once (a datagram's send is done inline), so the wait asks for one more
    // than them. Measured on 6.18 (bench/wake/run), the wait still returns
    // early: with the send's completion alone, then once with none (the
    // arriving datagram's task work not yet run), then with the datagram:
    // about three `io_uring_enter` per query at a low rate, with or without
    // `IORING_SETUP_DEFER_TASKRUN`.
    let mut pushed = 0;
    loop {
        match submitter.submit_and_wait(pushed + 1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        pushed = 0;
        cq.sync();
        let mut rearm = false;
        let mut fired = false;
        for cqe in &mut cq {
            let (res, flags, data) = (cqe.result(), cqe.flags(), cqe.user_data());
            if data == TIMER {
                // The hand-in's work would go here; it re-arms itself.
                fired = true;
                continue;
            }
            if data != RECV {
                free.push(data as usize);
                continue;
            }
            if !cqueue::more(flags) {
                rearm = true;
            }
            if res < 0 {
                continue; // ENOBUFS: every buffer in use; re-armed below
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                continue;
            };
            let start = bid as usize * BUF;
            let got = &bufs[start..start + res as usize];
            if let Ok(out) = RecvMsgOut::parse(got, &msg) {
                let name = out.name_data();
                // A send slot for the answer (none free: every one in
                // flight, and the query is dropped).
                if let Some(k) = free.pop() {
                    let s = &mut sends[k];
                    if let Some(len) = table.answer(out.payload_data(), &mut s.out) {
                        let nl = name.len().min(size_of::<libc::sockaddr_storage>());
                        // SAFETY: nl bytes fit in the storage.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                name.as_ptr(),
                                (&mut s.name as *mut libc::sockaddr_storage).cast::<u8>(),
                                nl,
                            );
                        }
                        s.hdr.msg_namelen = nl as u32;
                        s.iov.iov_len = len;
                        let e = opcode::SendMsg::new(Fd(fd), &s.hdr)
                            .build()
                            .user_data(k as u64);
                        // SAFETY: the slot is not reused before its completion.
                        if !unsafe { push(&mut sq, &submitter, &e) } {
                            free.push(k);
                        } else {
                            pushed += 1;
                        }
                    } else {
                        free.push(k);
                    }
                }
            }
            // The buffer back to the kernel.
            // SAFETY: the entry at the tail is the kernel's to fill no more.
            unsafe {
                let e = &mut *ring_mem.add(tail_v as usize % ENTRIES);
                e.set_addr(base.add(start) as u64);
                e.set_len(BUF as u32);
                e.set_bid(bid);
            }
            tail_v = tail_v.wrapping_add(1);
        }
        tail.store(tail_v, Ordering::Release);
        if rearm {
            // SAFETY: as at the start.
            let _ = unsafe { push(&mut sq, &submitter, &recv()) };
        }
        if fired {
            // SAFETY: as at the start.
            let _ = unsafe { push(&mut sq, &submitter, &timer()) };
        }
        sq.sync();
    }
}

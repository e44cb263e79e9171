//! (b) A loop of our own over epoll: the socket registered level-triggered
//! (no extra `recvmmsg` only to hear `EAGAIN`), an eventfd for stop, a
//! binary heap of deadlines whose top is `epoll_wait`'s timeout; one
//! `recvmmsg` and one `sendmmsg` per wake-up, and the same 100 ms hand-in
//! timer as the product's, re-armed only when it fires.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::dns::{Batch, Table};

const SOCK: u64 = 1;
const STOP: u64 = 2;

fn check(r: i32) -> io::Result<i32> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn run(sock: std::net::UdpSocket, table: &Table) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    // SAFETY: plain system calls on descriptors this function owns.
    let ep = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let stop = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    for (f, tag) in [(fd, SOCK), (stop, STOP)] {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: tag,
        };
        check(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, f, &mut ev) })?;
    }
    let hand_in = Duration::from_millis(100);
    let mut timers: BinaryHeap<Reverse<Instant>> = BinaryHeap::new();
    timers.push(Reverse(Instant::now() + hand_in));
    let mut batch = Batch::new();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
    loop {
        let now = Instant::now();
        while let Some(&Reverse(at)) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            // The hand-in's work would go here; it re-arms itself.
            timers.push(Reverse(now + hand_in));
        }
        let timeout = timers.peek().map_or(-1, |Reverse(at)| {
            let d = at.saturating_duration_since(now);
            (d.as_micros().div_ceil(1000)) as i32
        });
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            match ev.u64 {
                SOCK => {
                    batch.serve(fd, table)?;
                }
                _ => return Ok(()),
            }
        }
    }
}

//! (a) The product's shape: a current-thread tokio runtime, the socket's
//! readiness from tokio's reactor (`poll_recv_ready`), a stop token and a
//! sleep polled in the same wait (`poll_fn`), one `recvmmsg` per wake-up
//! through `try_io` (a partial batch clears the readiness), `sendmmsg`, and
//! the sleep re-armed 100 ms ahead after every round (the worker's
//! dynamic-block hand-in wake), as src/ls/udp_path/worker.rs does.
//!
//! [`run_readable`] is the same loop with the socket registered for
//! reading only (`AsyncFd` with `Interest::READABLE`, as a tokio
//! `UdpSocket` is not: it asks for both), so that the `EPOLLOUT` edge each
//! send raises does not make the runtime's next `epoll_wait` return at once.
use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::task::Poll;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dns::{BATCH, Batch, Table};

pub fn run(sock: std::net::UdpSocket, table: &Table) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let fd = sock.as_raw_fd();
        let stop = CancellationToken::new();
        let _keep = stop.clone();
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut batch = Batch::new();
        loop {
            let _ = poll_fn(|cx| {
                let mut ready = false;
                if stopped.as_mut().poll(cx).is_ready() {
                    ready = true;
                }
                if sock.poll_recv_ready(cx).is_ready() {
                    ready = true;
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    ready = true;
                }
                if ready {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            if stop.is_cancelled() {
                return Ok(());
            }
            let mut got = 0;
            let _ = sock.try_io(tokio::io::Interest::READABLE, || {
                got = batch.serve(fd, table)?;
                if got < BATCH {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(got)
                }
            });
            let next = Instant::now() + Duration::from_millis(100);
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if got == BATCH {
                tokio::task::yield_now().await;
            }
        }
    })
}

/// [`run`] with the socket in tokio's epoll for reading only.
pub fn run_readable(sock: std::net::UdpSocket, table: &Table) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let fd = sock.as_raw_fd();
        // SAFETY: the socket is owned here and outlives nothing it lends.
        let sock = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let stop = CancellationToken::new();
        let _keep = stop.clone();
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut batch = Batch::new();
        loop {
            let mut guard = None;
            let _ = poll_fn(|cx| {
                let mut ready = false;
                if stopped.as_mut().poll(cx).is_ready() {
                    ready = true;
                }
                if let Poll::Ready(g) = sock.poll_read_ready(cx) {
                    guard = g.ok();
                    ready = true;
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    ready = true;
                }
                if ready {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            if stop.is_cancelled() {
                return Ok(());
            }
            let mut got = 0;
            if let Some(mut g) = guard {
                let _ = g.try_io(|_| {
                    got = batch.serve(fd, table)?;
                    if got < BATCH {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(got)
                    }
                });
            }
            let next = Instant::now() + Duration::from_millis(100);
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if got == BATCH {
                tokio::task::yield_now().await;
            }
        }
    })
}

//! UDP workers on threads of their own.
//!
//! Each SO_REUSEPORT UDP socket is served by one OS thread running a
//! single-threaded runtime: the socket (and whatever the worker opens, such
//! as the LS's upstream sockets) is registered with that thread's own epoll,
//! its timers live in that thread's own timer wheel, and a datagram's
//! arrival wakes the thread that will read it; a worker never migrates, and
//! nothing of it is shared with another thread's scheduler. (Measured against
//! tasks on the shared multi-threaded runtime, this costs and saves nothing
//! per query at 20,000 QPS: `docs/BENCHMARKS.md`.)
//!
//! A worker on such a thread must yield when it keeps finding work, since
//! only then does its runtime read epoll again (see the LS fast path).
//!
//! [`start`] runs a worker and hands its end to a [`TaskTracker`]: waiting
//! on the tracker waits until the worker's future has ended (it watches the
//! same cancellation token as every other task) and the thread's runtime,
//! with any task the worker spawned on it, is gone. It returns the runtime's
//! [`Handle`]: [`ConnThreads`] (the LS's workers) takes the connections an
//! acceptor hands over, one thread each, so that a TCP, DoT or DoH
//! connection, its queries and their upstream exchanges all live on the
//! worker thread it was given (the worker's own upstream sockets).
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::runtime::Handle;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

/// Starts `body` on a new thread named `name` (see [`spawn`]) and tracks its
/// end in `tracker`. A worker that cannot start, or that panics, is logged
/// and cancels `died`: the server stops whole rather than serve without it.
/// The worker's runtime, when it started: tasks spawned on it run on that
/// thread, beside the worker, until `body` returns.
pub fn start<F, Fut>(
    tracker: &TaskTracker,
    name: &str,
    sock: UdpSocket,
    died: &CancellationToken,
    body: F,
) -> Option<Handle>
where
    F: FnOnce(Arc<UdpSocket>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    match spawn(name, sock, body) {
        Ok((done, handle)) => {
            let name = name.to_owned();
            let died = died.clone();
            tracker.spawn(async move {
                if done.await.is_err() {
                    error!(worker = %name, "udp worker thread ended abnormally");
                    died.cancel();
                }
            });
            Some(handle)
        }
        Err(err) => {
            error!(worker = %name, ?err, "cannot start a udp worker thread");
            died.cancel();
            None
        }
    }
}

/// The worker threads an acceptor hands its connections to, in turn (none:
/// a connection is served where it was accepted). A connection taken over
/// runs on that thread's runtime to its end, with every task it spawns (its
/// queries), so it never wakes another thread per query; one hand-over per
/// connection is its only crossing.
#[derive(Debug, Clone, Default)]
pub struct ConnThreads {
    handles: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
}

impl ConnThreads {
    /// Connections go to `handles`, in turn.
    pub fn new(handles: Vec<Handle>) -> Self {
        ConnThreads {
            handles: handles.into(),
            next: Arc::default(),
        }
    }

    /// The thread the next connection goes to; `None` when there is none.
    pub fn next(&self) -> Option<&Handle> {
        let n = self.handles.len();
        if n == 0 {
            return None;
        }
        self.handles.get(self.next.fetch_add(1, Relaxed) % n)
    }
}

/// Starts `body` on a new thread named `name`, with `sock` registered with
/// that thread's single-threaded runtime; the receiver hears when the thread
/// is done (and errs if it panicked), the handle spawns tasks on it. `body`
/// is called on the thread before its runtime runs any task (what it sets
/// up for the thread is there before a task handed over runs). It should
/// return once its cancellation token is cancelled and whatever it started
/// has finished: tasks it spawned and left running end with the thread's
/// runtime.
fn spawn<F, Fut>(
    name: &str,
    sock: UdpSocket,
    body: F,
) -> io::Result<(oneshot::Receiver<()>, Handle)>
where
    F: FnOnce(Arc<UdpSocket>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    // Taken off the caller's runtime here, registered with the worker's there.
    let sock = sock.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let work = {
                let _in = runtime.enter();
                match UdpSocket::from_std(sock) {
                    Ok(sock) => Some(body(Arc::new(sock))),
                    Err(err) => {
                        error!(?err, "cannot register a udp socket with its worker");
                        None
                    }
                }
            };
            if let Some(work) = work {
                runtime.block_on(work);
            }
            drop(runtime);
            let _ = tx.send(());
        })?;
    Ok((done, handle))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A worker that panics cancels `died` (the server then stops whole);
    /// one that ends normally does not.
    #[tokio::test]
    async fn a_panicking_worker_cancels_died() {
        let tracker = TaskTracker::new();
        let died = CancellationToken::new();
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        start(&tracker, "ok", sock, &died, |_| async {});
        tracker.close();
        tracker.wait().await;
        assert!(!died.is_cancelled());

        let tracker = TaskTracker::new();
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        start(&tracker, "boom", sock, &died, |_| async { panic!("boom") });
        tracker.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), died.cancelled())
            .await
            .expect("died cancelled");
    }
}

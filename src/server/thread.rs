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
//! with any task the worker spawned on it, is gone.
use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

/// Starts `body` on a new thread named `name` (see [`spawn`]) and tracks its
/// end in `tracker`. A worker that cannot start, or that panics, is logged
/// and cancels `died`: the server stops whole rather than serve without it.
pub fn start<F, Fut>(
    tracker: &TaskTracker,
    name: &str,
    sock: UdpSocket,
    died: &CancellationToken,
    body: F,
) where
    F: FnOnce(Arc<UdpSocket>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    match spawn(name, sock, body) {
        Ok(done) => {
            let name = name.to_owned();
            let died = died.clone();
            tracker.spawn(async move {
                if done.await.is_err() {
                    error!(worker = %name, "udp worker thread ended abnormally");
                    died.cancel();
                }
            });
        }
        Err(err) => {
            error!(worker = %name, ?err, "cannot start a udp worker thread");
            died.cancel();
        }
    }
}

/// Starts `body` on a new thread named `name`, with `sock` registered with
/// that thread's single-threaded runtime; the receiver hears when the thread
/// is done (and errs if it panicked). `body` should return once its
/// cancellation token is cancelled and whatever it started has finished:
/// tasks it spawned and left running end with the thread's runtime.
fn spawn<F, Fut>(name: &str, sock: UdpSocket, body: F) -> io::Result<oneshot::Receiver<()>>
where
    F: FnOnce(Arc<UdpSocket>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    // Taken off the caller's runtime here, registered with the worker's there.
    let sock = sock.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                match UdpSocket::from_std(sock) {
                    Ok(sock) => body(Arc::new(sock)).await,
                    Err(err) => error!(?err, "cannot register a udp socket with its worker"),
                }
            });
            drop(runtime);
            let _ = tx.send(());
        })?;
    Ok(done)
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

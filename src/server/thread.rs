//! Workers on threads of their own.
//!
//! Each SO_REUSEPORT UDP socket is served by one OS thread. The TS's UDP
//! workers (and the server layer's, `udp`) run a single-threaded tokio
//! runtime there ([`start`]): the socket is registered with that thread's
//! own epoll, its timers live in that thread's own timer wheel, and a
//! datagram's arrival wakes the thread that will read it (in the socket's
//! own receive while no deferred answer runs: `udp`); a worker never
//! migrates, and nothing of it is shared with another thread's scheduler.
//! The LS's UDP fast-path workers run no runtime at all ([`start_blocking`]):
//! a blocking loop of their own over epoll (`server::event_loop`, measured
//! cheaper per wake-up: `docs/BENCHMARKS.md`, "The worker loop"), so
//! such a thread can host no task.
//!
//! A worker on a runtime thread must yield when it keeps finding work,
//! since only then does its runtime read epoll again.
//!
//! [`start`], [`start_runtime`] and [`start_blocking`] hand a thread's end
//! to a [`TaskTracker`]: waiting on the tracker waits until the thread's body
//! has ended (it watches the same cancellation token as every other task)
//! and the thread's runtime, with any task spawned on it, is gone. The two
//! with a runtime return its [`Handle`]. [`ConnThreads`] takes the
//! connections an acceptor hands over, one thread each: the LS starts one
//! connection thread per UDP worker ([`start_runtime`], a current-thread
//! runtime with the thread's own upstream pool), so that a TCP, DoT or DoH
//! connection, its queries and their upstream exchanges all live on the
//! thread it was given.
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
    // Taken off the caller's runtime here, registered with the worker's there.
    let sock = match sock.into_std() {
        Ok(sock) => sock,
        Err(err) => return not_started(name, &err, died),
    };
    let setup = move || match UdpSocket::from_std(sock) {
        Ok(sock) => Some(body(Arc::new(sock))),
        Err(err) => {
            error!(?err, "cannot register a udp socket with its worker");
            None
        }
    };
    started(tracker, name, died, spawn(name, setup))
}

/// As [`start`], with no socket: a thread whose runtime only hosts what is
/// handed to it (the LS's connection threads: [`ConnThreads`]) while `body`
/// runs.
pub fn start_runtime<F, Fut>(
    tracker: &TaskTracker,
    name: &str,
    died: &CancellationToken,
    body: F,
) -> Option<Handle>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    started(tracker, name, died, spawn(name, move || Some(body())))
}

/// Runs `body` on a new thread named `name`, no runtime there (a blocking
/// loop of its own: the LS's UDP fast path), tracked in `tracker` as
/// [`start`]'s are: one that cannot start, panics or returns an error is
/// logged and cancels `died`.
pub fn start_blocking<F>(tracker: &TaskTracker, name: &str, died: &CancellationToken, body: F)
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    let (tx, done) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let ended = body();
            if let Err(err) = &ended {
                error!(?err, "udp worker failed");
            }
            if ended.is_ok() {
                let _ = tx.send(());
            }
        });
    match thread {
        Ok(_) => track(tracker, name, died, done),
        Err(err) => {
            not_started(name, &err, died);
        }
    }
}

/// A thread that could not start: logged, and `died` cancelled.
fn not_started(name: &str, err: &io::Error, died: &CancellationToken) -> Option<Handle> {
    error!(worker = %name, ?err, "cannot start a udp worker thread");
    died.cancel();
    None
}

/// [`spawn`]'s outcome, tracked: its handle when it started.
fn started(
    tracker: &TaskTracker,
    name: &str,
    died: &CancellationToken,
    spawned: io::Result<(oneshot::Receiver<()>, Handle)>,
) -> Option<Handle> {
    match spawned {
        Ok((done, handle)) => {
            track(tracker, name, died, done);
            Some(handle)
        }
        Err(err) => not_started(name, &err, died),
    }
}

/// Tracks a thread's end in `tracker`: `done` dropped unsent (a panic, an
/// error) cancels `died`.
fn track(tracker: &TaskTracker, name: &str, died: &CancellationToken, done: oneshot::Receiver<()>) {
    let name = name.to_owned();
    let died = died.clone();
    tracker.spawn(async move {
        if done.await.is_err() {
            error!(worker = %name, "udp worker thread ended abnormally");
            died.cancel();
        }
    });
}

/// The threads an acceptor hands its connections to, in turn (none:
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

/// Runs `fut` on `thread`'s runtime (on the caller's when there is none),
/// tracked by `tracker` as its own tasks are.
pub(crate) fn spawn_tracked<F>(
    tracker: &TaskTracker,
    thread: Option<&Handle>,
    fut: F,
) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    match thread {
        Some(thread) => thread.spawn(tracker.track_future(fut)),
        None => tracker.spawn(fut),
    }
}

/// Starts a new thread named `name` with a single-threaded runtime of its
/// own; the receiver hears when the thread is done (and errs if it
/// panicked), the handle spawns tasks on it. `setup` is called on the
/// thread, in its runtime's context, before the runtime runs any task (what
/// it sets up for the thread is there before a task handed over runs); the
/// future it gives is the thread's body. It should return once its
/// cancellation token is cancelled and whatever it started has finished:
/// tasks it spawned and left running end with the thread's runtime.
fn spawn<S, Fut>(name: &str, setup: S) -> io::Result<(oneshot::Receiver<()>, Handle)>
where
    S: FnOnce() -> Option<Fut> + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
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
                setup()
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

//! UDP workers on threads of their own.
//!
//! Each SO_REUSEPORT UDP socket is served by one OS thread running a
//! single-threaded runtime: the socket (and whatever the worker opens, such
//! as the LS's upstream sockets) is registered with that thread's own epoll,
//! its timers live in that thread's own timer wheel, and a datagram's
//! arrival wakes exactly the thread that will read it. On a multi-threaded
//! runtime the same wake-up went through the thread that happened to poll
//! the I/O driver, which queued the task and woke an idle worker to steal it:
//! a futex and a context switch or two per wake-up, at moderate rates more
//! than the work of the query itself.
//!
//! The caller owns each worker through its [`WorkerThread`]: awaiting
//! [`WorkerThread::wait`] returns once the worker's future has ended (it
//! watches the same cancellation token as every other task) and the
//! thread's runtime, with any task the worker spawned on it, is gone.
use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::error;

/// One UDP worker's thread, as its owner sees it.
#[derive(Debug)]
pub struct WorkerThread {
    name: String,
    done: oneshot::Receiver<()>,
}

impl WorkerThread {
    /// Waits until the worker has ended. A worker that panicked is logged
    /// (its socket is closed with it; the other workers go on).
    pub async fn wait(self) {
        if self.done.await.is_err() {
            error!(worker = %self.name, "udp worker thread ended abnormally");
        }
    }
}

/// Starts `body` on a new thread named `name`, with `sock` registered with
/// that thread's single-threaded runtime. `body` should return once its
/// cancellation token is cancelled and whatever it started has finished:
/// tasks it spawned and left running end with the thread's runtime.
pub fn spawn<F, Fut>(name: &str, sock: UdpSocket, body: F) -> io::Result<WorkerThread>
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
    Ok(WorkerThread {
        name: name.to_owned(),
        done,
    })
}

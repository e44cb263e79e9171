//! One socket of the shared pool: [`SharedSocket`] (the socket, its table
//! of queries waiting and late, its wear) and [`WaitGuard`], which turns a
//! waiter whose exchange ended unanswered into a late entry.
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ls::upstream::ids::IdTable;

/// One pooled socket and the queries waiting on it.
pub(super) struct SharedSocket {
    pub(super) sock: UdpSocket,
    /// Its address (read once, when opened; for dnstap).
    pub(super) local: Option<std::net::SocketAddr>,
    pub(super) table: Mutex<IdTable>,
    pub(super) uses: AtomicU64,
    /// Queries it sends before it is replaced (around [`ROTATE_AFTER`](crate::ls::upstream::ROTATE_AFTER),
    /// drawn at random so that sockets do not all wear out together).
    pub(super) budget: u64,
    /// Whether `table.late` may hold entries (read without the lock).
    pub(super) has_late: AtomicBool,
    /// Stops the socket's reader (a child of the pool's token).
    pub(super) stop: CancellationToken,
    /// The pool's tasks (a corked send the socket could not take at once
    /// is finished by one).
    pub(super) tracker: TaskTracker,
    /// Whether its pool is a worker thread's own: every answer it reads
    /// should be for a query asked on that thread (one that is not is counted).
    pub(super) thread_owned: bool,
}

impl SharedSocket {
    pub(super) fn table(&self) -> MutexGuard<'_, IdTable> {
        // A panic while holding the lock cannot leave the maps inconsistent.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles and forgets what expired of its late queries, if it has any.
    pub(super) fn sweep(&self, now: Instant) {
        if self.has_late.load(Relaxed) {
            let mut t = self.table();
            t.expire(now);
            self.has_late.store(!t.late.is_empty(), Relaxed);
        }
    }
}

/// Removes a waiter when its exchange ends, however it ends.
pub(super) struct WaitGuard<'a> {
    pub(super) sock: &'a SharedSocket,
    pub(super) id: u16,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        // Still waiting means nobody answered in time: its answer may yet come.
        let mut t = self.sock.table();
        if t.waiting.contains_key(&self.id) {
            t.abandon(self.id, Instant::now());
            self.sock.has_late.store(!t.late.is_empty(), Relaxed);
        }
    }
}

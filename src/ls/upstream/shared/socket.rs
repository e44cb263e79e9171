//! One socket of the shared pool: [`SharedSocket`] (the socket, its table
//! of queries waiting and late, its wear, the RFC 5452 check of what comes
//! to it: [`SharedSocket::deliver`]) and [`WaitGuard`], which turns a
//! waiter whose exchange ended unanswered into a late entry.
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ls::upstream::accept::{self, DropCounters, DropReason};
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
    /// A socket just opened, its reader to stop with a child of `token`
    /// under `tracker`; its wear budget drawn at random.
    pub(super) fn fresh(
        sock: UdpSocket,
        token: &CancellationToken,
        tracker: &TaskTracker,
        thread_owned: bool,
    ) -> Self {
        SharedSocket {
            local: sock.local_addr().ok(),
            sock,
            table: Mutex::new(IdTable::default()),
            uses: AtomicU64::new(1),
            budget: crate::ls::upstream::sockets::wear_budget(
                crate::ls::upstream::ROTATE_AFTER,
                rand::random::<f64>(),
            ),
            has_late: AtomicBool::new(false),
            stop: token.child_token(),
            tracker: tracker.clone(),
            thread_owned,
        }
    }

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

    /// One sweep of a retired socket at `now` ([`SharedSocket::sweep`]):
    /// true, and its reader stopped, once no answer is expected on it (no
    /// query waiting, none late).
    pub(super) fn sweep_retired(&self, now: Instant) -> bool {
        self.sweep(now);
        let done = {
            let t = self.table();
            t.waiting.is_empty() && t.late.is_empty()
        };
        if done {
            self.stop.cancel();
        }
        done
    }

    /// Checks one datagram from `from` against the waiting queries (RFC
    /// 5452, [`accept`]) and delivers it, or counts why not in `drops`.
    pub(super) fn deliver(
        &self,
        resp: &[u8],
        from: SocketAddr,
        oversized: bool,
        drops: &DropCounters,
    ) {
        if let Err(why) = self.judge(resp, from, oversized, drops) {
            drops.count(why);
        }
    }

    /// [`SharedSocket::deliver`]'s work: `Ok` when delivered (counted in
    /// `drops.off_thread` when read on another thread than the one that
    /// asked), else why not.
    fn judge(
        &self,
        resp: &[u8],
        from: SocketAddr,
        oversized: bool,
        drops: &DropCounters,
    ) -> Result<(), DropReason> {
        let h = accept::header(resp)?;
        let mut table = self.table();
        let Some(w) = table.waiting.get(&h.id) else {
            let Some(l) = table.late.get(&h.id) else {
                return Err(DropReason::WrongId);
            };
            let why = accept::late(from, l.addr);
            if why == DropReason::Late
                && let Some(mut l) = table.late.remove(&h.id)
            {
                l.settle(Instant::now());
            }
            return Err(why);
        };
        accept::check(&h, resp, from, w.addr, &w.question)?;
        if let Some(w) = table.waiting.remove(&h.id) {
            drop(table);
            if self.thread_owned && w.thread != std::thread::current().id() {
                drops.off_thread.fetch_add(1, Relaxed);
            }
            let mut resp = crate::server::recycle::copy_of(resp);
            if oversized {
                // Cut short by its slot: a truncated answer (TC=1), which a
                // TCP client's query asks again of the backend over TCP.
                let _ = crate::dns::cut_to_truncated(&mut resp, w.question.len());
            }
            if let Err(resp) = w.tx.send(resp) {
                crate::server::recycle::give(resp);
            }
        }
        Ok(())
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

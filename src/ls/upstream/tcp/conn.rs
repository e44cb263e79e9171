//! One pooled TCP connection to a backend: the queries waiting on it by
//! ID, the IDs of ended queries kept reserved (their answers count as late),
//! registering a query where its connection is picked ([`register`]) and writing it ([`send`]), and handing a response read
//! on it to its query ([`deliver`]). What a try on it came to is [`TryError`].
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::unmatched;
use crate::ls::upstream::accept::{self, DropCounters};
use crate::ls::upstream::error::UpstreamError;
use crate::ls::upstream::ids::{LATE_GRACE, LATE_MAX, random_free_id};

/// Late IDs a connection keeps before it forgets the stale ones.
const LATE_PRUNE: usize = 64;

/// A query waiting on a connection.
pub(super) struct Pending {
    pub(super) question: Vec<u8>,
    pub(super) tx: oneshot::Sender<Vec<u8>>,
}

/// One TCP connection to a backend.
pub(super) struct Conn {
    pub(super) writer: tokio::sync::Mutex<super::dial::ConnWrite>,
    pub(super) waiting: Mutex<HashMap<u16, Pending>>,
    /// IDs of queries that ended unanswered, reserved until when (their
    /// answer, if it comes, is late): locked after `waiting` when both are.
    pub(super) late: Mutex<HashMap<u16, Instant>>,
    /// Broken, closed by the backend, stalled or idle: takes no more queries.
    pub(super) closed: AtomicBool,
    /// When a query was last sent on it ([`crate::ls::backend::clock_ms`]).
    pub(super) last_used: AtomicU64,
    /// Reads that returned bytes so far (a stall shows as no change).
    pub(super) reads: AtomicU64,
    /// Queries sent on it so far (counted when it is picked).
    pub(super) sent: AtomicUsize,
    /// Answers delivered on it so far.
    pub(super) answered: AtomicUsize,
    /// Suspected stalled: takes no new queries, waits for those it has.
    pub(super) retired: AtomicBool,
    /// Stops its reader (the connection was given up).
    pub(super) stop: CancellationToken,
}

impl Conn {
    /// Why a query could not be answered on this closed connection: shed
    /// when it answered others first, closed otherwise.
    pub(super) fn closed_under_query(&self) -> TryError {
        if self.answered.load(Relaxed) > 0 {
            TryError::Shed
        } else {
            TryError::Closed
        }
    }

    pub(super) fn waiting(&self) -> MutexGuard<'_, HashMap<u16, Pending>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn late(&self) -> MutexGuard<'_, HashMap<u16, Instant>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.late.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends query `id`'s wait: still unanswered, its ID stays reserved
    /// until `forget_at` (at most [`LATE_MAX`] such, the stale ones
    /// forgotten first).
    pub(super) fn ended(&self, id: u16, forget_at: Instant) {
        let mut waiting = self.waiting();
        if waiting.remove(&id).is_none() || self.closed.load(Relaxed) {
            return;
        }
        let mut late = self.late();
        if late.len() >= LATE_PRUNE {
            let now = Instant::now();
            late.retain(|_, t| now < *t);
        }
        if late.len() < LATE_MAX {
            late.insert(id, forget_at);
        }
    }

    /// Whether it took its `limit` of queries and answered them all (or was
    /// retired as stalled with nothing left on it): of no more use.
    pub(super) fn used_up(&self, limit: usize) -> bool {
        let spent = self.sent.load(Relaxed) >= limit || self.retired.load(Relaxed);
        spent && self.waiting().is_empty()
    }

    /// Fails every query in flight (their senders dropped), takes no more,
    /// and stops its reader, which closes it.
    pub(super) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.waiting().clear();
        self.stop.cancel();
    }
}

/// Closes a connection whose write was cut off mid-frame (dropped before
/// [`Self::done`]).
struct Writing<'a>(Option<&'a Conn>);

impl Writing<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            conn.close();
        }
    }
}

/// Removes a query from its connection's table however its exchange ends
/// (unanswered, its ID reserved: [`Conn::ended`]).
pub(super) struct Registered {
    pub(super) conn: Arc<Conn>,
    pub(super) id: u16,
    /// Its deadline plus [`LATE_GRACE`].
    pub(super) forget_at: Instant,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conn.ended(self.id, self.forget_at);
    }
}

/// A query written on a connection, waiting for its answer.
pub(super) struct Sent {
    pub(super) registered: Registered,
    pub(super) rx: oneshot::Receiver<Vec<u8>>,
    pub(super) written: Instant,
    /// The connection's reads when it was written.
    pub(super) reads: u64,
}

impl Sent {
    /// Whether nothing was read on its connection since its write.
    pub(super) fn nothing_read(&self) -> bool {
        self.registered.conn.reads.load(Relaxed) == self.reads
    }
}

/// Why one try on a connection gave no answer.
pub(super) enum TryError {
    /// The connection closed or broke before the answer: try another.
    Closed,
    /// The connection closed before the answer after answering others (the
    /// backend's per-connection limit, not a failure): try another without
    /// spending a try (a bounded number of times).
    Shed,
    /// Nothing read on the connection for too long: try another.
    Stalled,
    /// Anything else.
    Failed(UpstreamError),
}

/// A query registered on a connection under a free random ID, not yet
/// written: registered where the connection was picked (or before a new
/// one is shown to other queries and its reader), so that nobody finds the
/// connection used up and closes it in between.
pub(super) struct Ticket {
    registered: Registered,
    rx: oneshot::Receiver<Vec<u8>>,
}

/// Registers a query with `question`, due by `deadline`, on `conn`.
pub(super) fn register(
    conn: &Arc<Conn>,
    question: &[u8],
    deadline: Instant,
) -> Result<Ticket, TryError> {
    let (tx, rx) = oneshot::channel();
    let mut waiting = conn.waiting();
    if conn.closed.load(Relaxed) {
        return Err(conn.closed_under_query());
    }
    let id = {
        let late = conn.late();
        random_free_id(|id| !waiting.contains_key(&id) && !late.contains_key(&id))
    }
    .ok_or(TryError::Failed(UpstreamError::Unusable))?;
    waiting.insert(
        id,
        Pending {
            question: question.to_vec(),
            tx,
        },
    );
    let registered = Registered {
        conn: conn.clone(),
        id,
        forget_at: deadline + LATE_GRACE,
    };
    Ok(Ticket { registered, rx })
}

/// Writes the query of `ticket` (`query`, `len` bytes, its ID replaced by
/// the ticket's) on its connection.
pub(super) async fn send(ticket: Ticket, len: u16, query: &[u8]) -> Result<Sent, TryError> {
    let Ticket { registered, rx } = ticket;
    let conn = &registered.conn;
    conn.last_used
        .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    if let Some(b) = framed.get_mut(2..4) {
        b.copy_from_slice(&registered.id.to_be_bytes());
    }
    {
        let mut writer = conn.writer.lock().await;
        let writing = Writing(Some(conn));
        if writer.write_all(&framed).await.is_err() {
            return Err(TryError::Closed); // `writing` closes it
        }
        writing.done();
    }
    let reads = conn.reads.load(Relaxed);
    Ok(Sent {
        registered,
        rx,
        written: Instant::now(),
        reads,
    })
}

/// Hands one response to the query on `conn` with its ID, if it carries
/// that query's question; drops it (counted) otherwise.
pub(super) fn deliver(conn: &Conn, resp: &[u8], drops: &DropCounters) {
    let h = match accept::header(resp) {
        Ok(h) => h,
        Err(why) => return drops.count(why),
    };
    let mut waiting = conn.waiting();
    let Some(p) = waiting.get(&h.id) else {
        // Its query gave up (deadline, a hedge won, its other copy won)
        // before the answer came, or the ID was never sent.
        let forget_at = conn.late().remove(&h.id);
        return drops.count(unmatched(forget_at, Instant::now()));
    };
    if let Err(why) = accept::answers(&h, resp, &p.question) {
        return drops.count(why);
    }
    if let Some(p) = waiting.remove(&h.id) {
        conn.answered.fetch_add(1, Relaxed);
        let _ = p.tx.send(resp.to_vec());
    }
}

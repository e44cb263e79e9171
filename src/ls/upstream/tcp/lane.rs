//! The connections to one backend ([`Lane`]): which one a query goes to
//! ([`Lane::pick`]), the per-connection limit the backend shows, the RFC
//! 6298 estimators of its round trip, and the reader of each connection
//! ([`read_loop`]).
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::conn::{Conn, Sent, Ticket, TryError, deliver, register};
use super::policy::{
    Choice, PER_CONN_TTL, TCP_CONNS, TCP_IDLE, TCP_PIPELINE, choose, full, learnt_limit,
    rtt_sample, stall_after,
};
use crate::ls::upstream::accept::DropCounters;

/// The connections to one backend.
pub(super) struct Lane {
    pub(super) conns: Mutex<Vec<Arc<Conn>>>,
    /// One connection opened at a time (a burst of queries waits for it
    /// rather than opening one each).
    pub(super) opening: tokio::sync::Mutex<()>,
    /// Queries the backend takes per connection ([`learnt_limit`];
    /// `usize::MAX` until learnt, and again [`PER_CONN_TTL`] after).
    pub(super) per_conn: AtomicUsize,
    /// Answers before its last early close (`usize::MAX`: none yet).
    pub(super) early_close: AtomicUsize,
    /// When `per_conn` was learnt ([`crate::ls::backend::clock_ms`]).
    pub(super) learnt_ms: AtomicU64,
    /// RFC 6298 estimators of its TCP round trip, µs (`u64::MAX`: none yet).
    pub(super) srtt_us: AtomicU64,
    pub(super) rttvar_us: AtomicU64,
    /// A connection closed: a query waiting for one may go on.
    pub(super) closed: tokio::sync::Notify,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            conns: Mutex::default(),
            opening: tokio::sync::Mutex::default(),
            per_conn: AtomicUsize::new(usize::MAX),
            early_close: AtomicUsize::new(usize::MAX),
            learnt_ms: AtomicU64::new(0),
            srtt_us: AtomicU64::new(u64::MAX),
            rttvar_us: AtomicU64::new(0),
            closed: tokio::sync::Notify::new(),
        }
    }
}

/// Where a query goes on a lane now.
pub(super) enum Pick {
    /// Registered on an open connection.
    Use(Ticket),
    Open,
    /// Every connection is used up (its per-connection limit reached) and
    /// no more may be opened: wait for one to close.
    Wait,
    /// A capped pool's connections are all full and no more may be opened
    /// ([`full`]): the query is refused at once.
    Full,
}

impl Lane {
    pub(super) fn conns(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection [`choose`] picks among those that take queries
    /// (counted as sent on it, the query registered on it: [`register`]),
    /// or to open one, or to wait; with a `depth` cap, refused when full
    /// (never to wait).
    ///
    /// # Errors
    /// [`TryError`] when the query cannot be registered on the picked one.
    pub(super) fn pick(
        &self,
        question: &[u8],
        deadline: Instant,
        depth: Option<usize>,
    ) -> Result<Pick, TryError> {
        let mut conns = self.conns();
        let limit = self.limit();
        for c in conns.iter().filter(|c| c.used_up(limit)) {
            c.close(); // nothing more to send or to wait for on it
        }
        conns.retain(|c| !c.closed.load(Relaxed));
        let usable: Vec<&Arc<Conn>> = conns
            .iter()
            .filter(|c| !c.retired.load(Relaxed) && c.sent.load(Relaxed) < limit)
            .collect();
        let spent = conns.len() - usable.len();
        let loads: Vec<usize> = usable.iter().map(|c| c.waiting().len()).collect();
        if let Some(depth) = depth
            && full(&loads, spent, TCP_CONNS, depth)
        {
            return Ok(Pick::Full);
        }
        if usable.is_empty() && conns.len() >= TCP_CONNS {
            return Ok(Pick::Wait);
        }
        match choose(&loads, TCP_CONNS.saturating_sub(spent), TCP_PIPELINE) {
            Choice::Use(i) => match usable.get(i) {
                Some(&c) => {
                    c.sent.fetch_add(1, Relaxed);
                    register(c, question, deadline).map(Pick::Use)
                }
                None => Ok(Pick::Open),
            },
            Choice::Open => Ok(Pick::Open),
        }
    }

    /// Adds `conn`, just opened (its first query registered on it).
    pub(super) fn add(&self, conn: Arc<Conn>) {
        self.conns().push(conn);
    }

    /// The per-connection limit now: forgotten [`PER_CONN_TTL`] after it
    /// was learnt.
    pub(super) fn limit(&self) -> usize {
        let limit = self.per_conn.load(Relaxed);
        let age = crate::ls::backend::clock_ms(Instant::now())
            .saturating_sub(self.learnt_ms.load(Relaxed));
        if limit != usize::MAX && Duration::from_millis(age) >= PER_CONN_TTL {
            self.per_conn.store(usize::MAX, Relaxed);
            self.early_close.store(usize::MAX, Relaxed);
            return usize::MAX;
        }
        limit
    }

    /// The backend closed a connection with queries unanswered after
    /// answering `answered` on it.
    pub(super) fn closed_early(&self, answered: usize) {
        let before = self.early_close.swap(answered, Relaxed);
        if let Some(n) = learnt_limit(before, answered) {
            self.learnt_ms
                .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
            self.per_conn.fetch_min(n, Relaxed);
        }
    }

    /// The connection of a query with `time_left` is suspected stalled
    /// after this long, if any yet.
    pub(super) fn stall_after(&self, time_left: Duration) -> Option<Duration> {
        let srtt = self.srtt_us.load(Relaxed);
        let rtt = (srtt != u64::MAX).then(|| {
            let var = self.rttvar_us.load(Relaxed);
            (Duration::from_micros(srtt), Duration::from_micros(var))
        });
        stall_after(rtt, time_left)
    }

    /// Feeds an answer's round trip to the estimators (racing updates may
    /// lose a sample: harmless).
    pub(super) fn observe_rtt(&self, rtt: Duration) {
        let srtt = self.srtt_us.load(Relaxed);
        let est = (srtt != u64::MAX).then(|| (srtt, self.rttvar_us.load(Relaxed)));
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        let (srtt, rttvar) = rtt_sample(est, sample);
        self.rttvar_us.store(rttvar, Relaxed);
        self.srtt_us.store(srtt.min(u64::MAX - 1), Relaxed);
    }

    /// The left copy's answer `resp` won: its round trip observed.
    pub(super) fn answered(&self, left: &mut Option<Sent>, resp: Vec<u8>) -> Vec<u8> {
        if let Some(l) = left.as_ref() {
            self.observe_rtt(l.written.elapsed());
        }
        resp
    }
}

/// Reads `conn`'s responses and hands each to the query it answers, until
/// the backend closes it, it breaks, it has been idle for [`TCP_IDLE`], or
/// it is stopped (given up, or the pool shut down); then fails the queries
/// still in flight on it.
pub(super) async fn read_loop(
    lane: Arc<Lane>,
    conn: Arc<Conn>,
    mut rd: super::dial::ConnRead,
    drops: Arc<DropCounters>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Whole frames first.
        while let Some(&[hi, lo]) = buf.get(..2) {
            let n = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(resp) = buf.get(2..2 + n) else {
                break;
            };
            deliver(&conn, resp, &drops);
            buf.drain(..2 + n);
        }
        let since = Duration::from_millis(
            crate::ls::backend::clock_ms(Instant::now())
                .saturating_sub(conn.last_used.load(Relaxed)),
        );
        let idle = since >= TCP_IDLE && conn.waiting().is_empty();
        if idle || conn.used_up(lane.limit()) {
            break;
        }
        let idle_at = Instant::now() + TCP_IDLE.saturating_sub(since).max(Duration::from_millis(1));
        tokio::select! {
            () = conn.stop.cancelled() => break,
            // `read` is cancel-safe: a byte is either in `chunk` or still in the socket.
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => {
                    // Closed by the backend with queries unanswered, after
                    // answering some: its limit per connection.
                    if !conn.waiting().is_empty() {
                        lane.closed_early(conn.answered.load(Relaxed));
                    }
                    break;
                }
                Ok(n) => {
                    conn.reads.fetch_add(1, Relaxed);
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
            },
            () = tokio::time::sleep_until(idle_at) => {}
        }
    }
    conn.close();
    lane.closed.notify_waiters();
    // Dropping the write half (with the last reference) closes the connection.
    let _ = conn.writer.lock().await.shutdown().await;
}

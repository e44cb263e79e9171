//! Upstream IDs: which are in use on a socket, and the late entries of
//! queries that ended before their answer came. Sync: no lock here, the
//! callers hold their socket's.
//!
//! [`Ids`] is the fast path's table of one socket (a worker owns its
//! sockets): every one of the 65,536 IDs is a slot saying what it stands
//! for ([`IdUse`]), so a response is looked up by indexing, never by
//! hashing, and an ID is reused only once it is free again. [`IdTable`] is
//! the async pool's table of one socket: its waiting queries and its late
//! entries by ID (at most [`LATE_MAX`] late ones), shared by the socket's
//! reader and its askers behind the socket's lock.
//!
//! A [`LateEntry`] is kept, on both paths, for a query whose asker stopped
//! waiting (a hedge's loser, a query given up at its deadline): its ID stays
//! in use, its backend's answer is counted `late` rather than as a forgery
//! until [`LATE_GRACE`] past the query's deadline, and it is settled once:
//! its backend's in-flight count released and its latency sample taken,
//! when the answer comes or at the deadline, whichever is first. IDs are
//! drawn at random, the same way on every path ([`random_free_id`]).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::ls::backend::InFlight;

/// How long after its query's deadline an answer is still expected (and
/// counted as late, not as a forgery).
pub const LATE_GRACE: Duration = Duration::from_secs(3);

/// Abandoned queries remembered per socket.
pub const LATE_MAX: usize = 4096;

/// What an upstream ID stands for on its socket (the fast path's numbers:
/// indexes of its flights and late entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdUse {
    Free,
    /// Flight `.0` waits for it.
    Flight(u32),
    /// The flight ended; late entry `.0` remembers it.
    Late(u32),
}

/// The IDs of one socket; see the module docs.
pub(crate) struct Ids {
    ids: Box<[IdUse]>,
    /// IDs in use.
    live: usize,
}

impl Ids {
    pub(crate) fn new() -> Self {
        Ids {
            ids: vec![IdUse::Free; 1 << 16].into_boxed_slice(),
            live: 0,
        }
    }

    pub(crate) fn set(&mut self, id: u16, to: IdUse) {
        if let Some(slot) = self.ids.get_mut(usize::from(id)) {
            match (*slot == IdUse::Free, to == IdUse::Free) {
                (true, false) => self.live += 1,
                (false, true) => self.live = self.live.saturating_sub(1),
                _ => {}
            }
            *slot = to;
        }
    }

    pub(crate) fn get(&self, id: u16) -> IdUse {
        self.ids
            .get(usize::from(id))
            .copied()
            .unwrap_or(IdUse::Free)
    }

    /// IDs in use.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// A random ID free here, drawn from `rng` (a CSPRNG; a few tries;
    /// `None` if it is that full).
    pub(crate) fn free_id(&self, rng: &mut impl rand::Rng) -> Option<u16> {
        random_free_id_from(rng, |id| self.get(id) == IdUse::Free)
    }
}

/// A random ID that `free` accepts, in a few tries (`None` if the table is
/// that full): how every upstream query's ID is drawn (from the thread's
/// generator).
pub(crate) fn random_free_id(free: impl Fn(u16) -> bool) -> Option<u16> {
    random_free_id_from(&mut rand::rng(), free)
}

/// [`random_free_id`] drawn from `rng` (a caller's own CSPRNG).
pub(crate) fn random_free_id_from(
    rng: &mut impl rand::Rng,
    free: impl Fn(u16) -> bool,
) -> Option<u16> {
    use rand::RngExt;
    (0..16).map(|_| rng.random::<u16>()).find(|&id| free(id))
}

/// A query whose asker stopped waiting before its backend answered; see
/// the module docs.
pub(crate) struct LateEntry {
    /// Where the query went: its answer comes from there.
    pub(crate) addr: SocketAddr,
    /// Keeps the backend's `outstanding` count until the answer or the deadline.
    inflight: Option<InFlight>,
    /// The query's deadline.
    pub(crate) deadline: Instant,
    /// Percentile for the adaptive hedge delay, when it is in use.
    hedge_pct: Option<f64>,
}

impl LateEntry {
    /// The entry of a query to `addr` due by `deadline`, abandoned at
    /// `now`. Given up at or past its deadline, it is no longer in flight:
    /// settled at once. Before it, another backend answered the client: if
    /// this one is still silent at the deadline it is a loss of its
    /// backend, unless `excused` (its backend answered the client by
    /// another copy, a re-ask's lost twin; or the answer was positive in
    /// the partitioned layout, which excuses every other backend).
    pub(crate) fn abandoned(
        addr: SocketAddr,
        inflight: Option<InFlight>,
        deadline: Instant,
        hedge_pct: Option<f64>,
        now: Instant,
        excused: bool,
    ) -> Self {
        let mut late = LateEntry {
            addr,
            inflight,
            deadline,
            hedge_pct,
        };
        if now >= deadline {
            late.settle(now);
        } else if let Some(f) = late.inflight.as_mut()
            && !excused
        {
            f.rescued();
        }
        late
    }

    /// Releases the query's in-flight count and feeds its backend's latency
    /// figures with how long it waited: until `now` (its answer came), but
    /// never past its deadline, however late this runs. Once only.
    pub(crate) fn settle(&mut self, now: Instant) {
        if let Some(f) = self.inflight.take() {
            f.settle(now, self.deadline, self.hedge_pct);
        }
    }

    /// When the entry is forgotten: its answer is no longer expected.
    pub(crate) fn forget_at(&self) -> Instant {
        self.deadline + LATE_GRACE
    }

    /// The entry at `now`: settled once its deadline has come; whether it
    /// is still kept (its grace period not over).
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        if now >= self.deadline {
            self.settle(now);
        }
        now < self.forget_at()
    }
}

/// A question section this long or shorter is kept in its [`Waiter`] itself.
pub(crate) const QUESTION_IN_PLACE: usize = 64;

/// A query waiting for its response on a socket of the async pool
/// ([`crate::ls::upstream::shared`]).
pub(crate) struct Waiter {
    pub(crate) addr: SocketAddr,
    /// Its question section, as sent (in place up to a usual question's
    /// length: no allocation per query).
    pub(crate) question: smallvec::SmallVec<[u8; QUESTION_IN_PLACE]>,
    pub(crate) tx: super::mailbox::Sender,
    /// Keeps the backend's `outstanding` count until the answer or the deadline.
    pub(crate) inflight: Option<InFlight>,
    pub(crate) deadline: Instant,
    /// Percentile for the adaptive hedge delay, when it is in use.
    pub(crate) hedge_pct: Option<f64>,
    /// The thread that asked (its answer should be read there too).
    pub(crate) thread: std::thread::ThreadId,
}

/// The queries of one socket of the async pool (behind the socket's lock:
/// its reader and its askers share it): waiting ones, and recently
/// abandoned ones whose answer may still arrive (a hedge's loser, a query
/// past its deadline).
#[derive(Default)]
pub(crate) struct IdTable {
    pub(crate) waiting: HashMap<u16, Waiter>,
    pub(crate) late: HashMap<u16, LateEntry>,
}

impl IdTable {
    pub(crate) fn id_in_use(&self, id: u16) -> bool {
        self.waiting.contains_key(&id) || self.late.contains_key(&id)
    }

    /// Remembers an abandoned query until [`LATE_GRACE`] past its deadline
    /// (the sweeper forgets it then). Constant time: the table is never
    /// scanned here. When it already holds [`LATE_MAX`] queries (abandoned
    /// faster than they expire: a flood), this one is not remembered: its
    /// in-flight count is released at once, without a latency sample (it
    /// neither answered nor reached its deadline), and its answer, if it
    /// comes, is dropped as unexpected.
    pub(crate) fn abandon(&mut self, id: u16, now: Instant) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        // The pool does not know who answered the client: a loss if silent.
        let late = LateEntry::abandoned(w.addr, w.inflight, w.deadline, w.hedge_pct, now, false);
        if self.late.len() < LATE_MAX {
            self.late.insert(id, late);
        }
        // Otherwise `late` is dropped here, and its in-flight count with it.
    }

    /// Settles the abandoned queries that reached their deadline and
    /// forgets those past the grace period.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.late.retain(|_, l| l.expire(now));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use crate::config::BackendConfig;
    use crate::ls::backend::Backend;

    pub(crate) const MS: Duration = Duration::from_millis(1);

    pub(crate) fn backend(addr: SocketAddr) -> Arc<Backend> {
        Arc::new(Backend::from_config(
            &BackendConfig {
                name: "b".into(),
                addr,
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            },
            false,
        ))
    }

    /// Puts a waiting query for `b` with `deadline` into `t` under `id`;
    /// returns when it was sent.
    fn wait_on(t: &mut IdTable, id: u16, b: &Arc<Backend>, deadline: Duration) -> Instant {
        let f = b.begin();
        let sent = f.sent();
        let (tx, _rx) = crate::ls::upstream::mailbox::channel();
        t.waiting.insert(
            id,
            Waiter {
                addr: b.addr,
                question: smallvec::SmallVec::new(),
                tx,
                inflight: Some(f),
                deadline: sent + deadline,
                hedge_pct: Some(95.0),
                thread: std::thread::current().id(),
            },
        );
        sent
    }

    /// A table with query 7 to a backend, due 300 ms after it was sent
    /// and abandoned `after` it was sent; the backend, the table, when sent.
    fn abandoned_after(after: Duration) -> (Arc<Backend>, IdTable, Instant) {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = IdTable::default();
        let sent = wait_on(&mut t, 7, &b, 300 * MS);
        t.abandon(7, sent + after);
        (b, t, sent)
    }

    pub(crate) fn outstanding(b: &Backend) -> u32 {
        b.stats.outstanding.load(Relaxed)
    }

    pub(crate) fn samples(b: &Backend) -> u64 {
        b.stats.latency.snapshot().count
    }

    /// A timeout is not a latency (it was fed as one,
    /// and a backend answering in 100 µs showed a p50 of 1.75 s after a
    /// restart); it is counted as a timeout instead.
    #[test]
    fn an_abandoned_query_is_settled_at_its_deadline_without_a_latency_sample() {
        let (b, mut t, sent) = abandoned_after(10 * MS);
        assert_eq!((t.late.len(), outstanding(&b), samples(&b)), (1, 1, 0));
        t.expire(sent + 299 * MS);
        assert_eq!(
            (outstanding(&b), samples(&b)),
            (1, 0),
            "before its deadline"
        );
        // Released at the sweep after the deadline; no latency recorded.
        t.expire(sent + 2_000 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 0));
        assert_eq!(b.stats.latency_us.load(Relaxed), 0);
        // Remembered until the grace period ends (so its answer counts as late)...
        assert!(t.late.contains_key(&7));
        t.expire(sent + 300 * MS + LATE_GRACE);
        // ...then forgotten.
        assert!(t.late.is_empty());
        assert_eq!(samples(&b), 0);
    }

    #[test]
    fn deadline_timeouts_leave_the_adaptive_hedge_delay_alone() {
        let b = backend("127.0.0.1:53".parse().unwrap());
        let mut t = IdTable::default();
        let mut last = Instant::now();
        for id in 0..crate::ls::hedge::MIN_SAMPLES as u16 {
            let sent = wait_on(&mut t, id, &b, 300 * MS);
            t.abandon(id, sent + MS);
            last = sent;
        }
        t.expire(last + 10_000 * MS);
        assert_eq!(b.hedge.percentile(), None, "no answer, no sample");
    }

    #[test]
    fn a_query_abandoned_after_its_deadline_is_settled_at_the_deadline() {
        let (b, t, _) = abandoned_after(900 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 0));
        assert!(t.late.contains_key(&7), "its answer may still come");
    }

    #[test]
    fn a_late_answer_before_the_deadline_records_its_own_latency() {
        let (b, mut t, sent) = abandoned_after(10 * MS);
        let mut l = t.late.remove(&7).unwrap();
        l.settle(sent + 42 * MS);
        assert_eq!((outstanding(&b), samples(&b)), (0, 1));
        assert_eq!(b.stats.latency_us.load(Relaxed), 42_000);
        // Settling twice records nothing more.
        l.settle(sent + 50 * MS);
        assert_eq!(samples(&b), 1);
    }

    #[test]
    fn a_full_table_is_not_scanned_and_releases_the_newcomer_without_a_sample() {
        let old = backend("127.0.0.1:53".parse().unwrap());
        let new = backend("127.0.0.1:54".parse().unwrap());
        let mut t = IdTable::default();
        for id in 0..LATE_MAX {
            let id = u16::try_from(id).unwrap();
            let sent = wait_on(&mut t, id, &old, 100 * MS);
            t.abandon(id, sent);
        }
        // Abandoned before its deadline: released, but no sample (it has
        // neither answered nor waited its full time).
        let early = u16::try_from(LATE_MAX).unwrap();
        let early_sent = wait_on(&mut t, early, &new, 100 * MS);
        t.abandon(early, early_sent + 50 * MS);
        assert_eq!((outstanding(&new), samples(&new)), (0, 0));
        // Abandoned at its deadline: settled there, as always (no sample).
        let timed_out = early + 1;
        let timed_out_sent = wait_on(&mut t, timed_out, &new, 100 * MS);
        t.abandon(timed_out, timed_out_sent + 200 * MS);
        assert_eq!((outstanding(&new), samples(&new)), (0, 0));
        // Neither is remembered, and the remembered ones, all past their
        // deadline by now, were not swept: that is the sweeper's job.
        assert_eq!(t.late.len(), LATE_MAX);
        assert!(!t.late.contains_key(&early) && !t.late.contains_key(&timed_out));
        assert_eq!(outstanding(&old), u32::try_from(LATE_MAX).unwrap());
        assert_eq!(samples(&old), 0);
    }
}

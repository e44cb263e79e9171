//! Invalidation that beats TTLs: what removes packet cache entries before
//! they expire, and the counters that show it.
//!
//! - A NOTIFY (RFC 1996) from one of the LS's backends (by IP address: a
//!   table server sends from an ephemeral port) removes every cached entry
//!   at or under its zone and is acknowledged as RFC 1996 §4.7 says. The
//!   removal is a walk over every entry, so it never runs where the NOTIFY
//!   is read: the zone joins a [`FlushQueue`] (a zone already waiting, or
//!   under one, joins nothing; past [`PENDING_MAX`] zones the root stands for
//!   them all, as flushing more than asked is always right) and the
//!   flusher ([`run_flusher`](super::run::run_flusher)) removes every waiting zone's entries in one
//!   walk, then rests [`WALK_GAP`]: a flood of NOTIFYs from a backend's
//!   address costs a walk every 100 ms at most, and a lone NOTIFY's entries
//!   are gone as soon as the walk ends. From
//!   any other address it is REFUSED, as NSD refuses one outside its
//!   `allow-notify`. It is never forwarded nor cached. [`judge`] is the
//!   pure decision, [`acknowledgement`] the answer. Each sender has a
//!   budget ([`SenderBudget`]: [`NOTIFY_BURST`] at once, then
//!   [`NOTIFY_RATE`] a second): past it a NOTIFY is dropped unanswered and
//!   counted, so a process on a backend's address (any local one, when the
//!   backends are on 127.0.0.1) cannot keep the cache empty, and a table
//!   server that overran it sends its NOTIFY again (RFC 1996 §3.6) once
//!   the budget has refilled. NOTIFYs are not TSIG-checked: a TS that
//!   signs them (`xfr_key`) gets an unsigned acknowledgement.
//! - `POST /cache/flush` on the metrics listener and `dnslb cache flush`
//!   flush by name or zone through [`flush`], one walk at a time
//!   ([`FlushCounters::http_walk`]).
//!
//! [`FlushCounters`] (on the balancer, kept across reloads) count both ways,
//! and the refused NOTIFYs, whose log lines are kept within a budget.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::state::LsState;
use crate::dns::{self, ClientQuery};
use crate::guard::log_budget::{Change, LimitLog};

/// Most zones waiting for the flusher; past it the root is flushed.
pub const PENDING_MAX: usize = 64;
/// The flusher's rest after each walk.
pub const WALK_GAP: Duration = Duration::from_millis(100);

/// NOTIFYs a sender may have acknowledged at once.
pub const NOTIFY_BURST: f64 = 50.0;
/// NOTIFYs a second a sender's budget refills by.
pub const NOTIFY_RATE: f64 = 10.0;

/// Interval of the refused-NOTIFY log's budget.
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Refused-NOTIFY lines written per [`LOG_INTERVAL`] at most.
const LOG_LINES: u64 = 5;

/// Who asked for a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushBy {
    /// A backend's NOTIFY.
    Notify,
    /// `POST /cache/flush` (and so `dnslb cache flush`).
    Http,
}

impl FlushBy {
    /// Both, in the order the metrics list them.
    pub const ALL: [FlushBy; 2] = [FlushBy::Notify, FlushBy::Http];

    /// The `by` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushBy::Notify => "notify",
            FlushBy::Http => "http",
        }
    }
}

/// Flushes and NOTIFYs counted since the LS started.
#[derive(Debug)]
pub struct FlushCounters {
    /// Flushes of a cache, by [`FlushBy`] (index: its place in `ALL`).
    pub flushes: [AtomicU64; 2],
    /// Entries those flushes removed, by [`FlushBy`].
    pub entries: [AtomicU64; 2],
    /// NOTIFYs acknowledged (from a backend), with or without a cache.
    pub notify_accepted: AtomicU64,
    /// NOTIFYs refused (not from a backend).
    pub notify_refused: AtomicU64,
    /// NOTIFYs from a backend dropped: past their sender's budget.
    pub notify_limited: AtomicU64,
    /// The budget of the refused-NOTIFY log lines.
    log: LimitLog,
    /// Each sender's NOTIFY budget (only backends' addresses get one: at
    /// most one per backend).
    senders: Mutex<HashMap<IpAddr, SenderBudget>>,
    /// Held by the HTTP flush walking the caches: one walk at a time.
    pub http_walk: tokio::sync::Mutex<()>,
}

impl Default for FlushCounters {
    fn default() -> Self {
        FlushCounters {
            flushes: Default::default(),
            entries: Default::default(),
            notify_accepted: AtomicU64::new(0),
            notify_refused: AtomicU64::new(0),
            notify_limited: AtomicU64::new(0),
            log: LimitLog::new(Instant::now(), LOG_INTERVAL, LOG_LINES),
            senders: Mutex::new(HashMap::new()),
            http_walk: tokio::sync::Mutex::new(()),
        }
    }
}

impl FlushCounters {
    /// Counts a flush by `by` that removed `removed` entries.
    pub(super) fn count(&self, by: FlushBy, removed: usize) {
        let i = usize::from(by == FlushBy::Http);
        self.flushes[i].fetch_add(1, Relaxed);
        self.count_entries(by, removed);
    }

    /// Counts `removed` entries removed by `by`'s flushes.
    pub(super) fn count_entries(&self, by: FlushBy, removed: usize) {
        let i = usize::from(by == FlushBy::Http);
        self.entries[i].fetch_add(u64::try_from(removed).unwrap_or(u64::MAX), Relaxed);
    }

    /// Whether a NOTIFY from `src` (a backend's address) at `now` is within
    /// its sender's budget; one taken from it if so.
    fn admit(&self, src: IpAddr, now: Instant) -> bool {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        senders
            .entry(src.to_canonical())
            .or_insert_with(|| SenderBudget::full(now))
            .take(now)
    }

    /// Counts, and logs within the budget, a NOTIFY for `zone` refused from `src`.
    fn refused(&self, src: IpAddr, zone: &Name) {
        self.notify_refused.fetch_add(1, Relaxed);
        if let Some(more) = self.log.roll(Instant::now()) {
            tracing::warn!(
                more = more.started,
                "more NOTIFYs from addresses that are not backends refused"
            );
        }
        if self.log.admit(Change::Started) {
            tracing::warn!(%src, %zone, "NOTIFY refused: not from a backend's address");
        }
    }
}

/// One sender's NOTIFY budget: a token bucket of [`NOTIFY_BURST`]
/// refilled at [`NOTIFY_RATE`] a second. Pure: the caller gives the time.
#[derive(Debug, Clone, Copy)]
pub struct SenderBudget {
    /// Tokens left.
    tokens: f64,
    /// When they were counted.
    at: Instant,
}

impl SenderBudget {
    /// A full budget at `now`.
    pub fn full(now: Instant) -> Self {
        SenderBudget {
            tokens: NOTIFY_BURST,
            at: now,
        }
    }

    /// Refills for the time since the last call and takes one token:
    /// whether there was one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * NOTIFY_RATE).min(NOTIFY_BURST);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The zones whose NOTIFY was acknowledged and whose entries are still to
/// be removed (see the module header).
#[derive(Debug, Default)]
pub struct FlushQueue {
    zones: Mutex<Vec<Name>>,
    wake: tokio::sync::Notify,
}

impl FlushQueue {
    /// Adds `zone` (nothing when it or a zone above it waits already) and
    /// wakes the flusher.
    pub fn push(&self, zone: Name) {
        let mut zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        if !zones.iter().any(|z| z.zone_of(&zone)) {
            zones.retain(|z| !zone.zone_of(z));
            if zones.len() >= PENDING_MAX {
                zones.clear();
                zones.push(Name::root());
            } else {
                zones.push(zone);
            }
        }
        drop(zones);
        self.wake.notify_one();
    }

    /// Until a zone is pushed (at once if one was since the last wait).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// The zones waiting, taken.
    pub fn take(&self) -> Vec<Name> {
        std::mem::take(&mut *self.zones.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What the door does with a NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// From a backend, for a zone: flush it and acknowledge.
    Flush(Name),
    /// Not from a backend: REFUSED.
    Refuse,
    /// From a backend, but its question is not `<zone> SOA IN`: NOTIMP (no
    /// other NOTIFY is defined for an LS to act on).
    NotImplemented,
}

/// The decision on NOTIFY `q` (already decoded: one question) from `src`,
/// given the LS's backends' addresses. IPv4-mapped IPv6 addresses compare
/// as IPv4.
pub fn judge(q: &ClientQuery, src: IpAddr, mut backends: impl Iterator<Item = IpAddr>) -> Verdict {
    let src = src.to_canonical();
    if !backends.any(|b| b.to_canonical() == src) {
        return Verdict::Refuse;
    }
    if q.query.query_type() != RecordType::SOA || q.query.query_class() != DNSClass::IN {
        return Verdict::NotImplemented;
    }
    Verdict::Flush(q.query.name().clone())
}

/// The acknowledgement of NOTIFY `q` (RFC 1996 §4.7): QR=1, AA=1, its ID,
/// opcode NOTIFY, its question echoed, NOERROR.
pub fn acknowledgement(q: &ClientQuery) -> Vec<u8> {
    let mut bytes = dns::rcode_answer(q, ResponseCode::NoError);
    if let Some(flags) = bytes.get_mut(2) {
        *flags |= 0x04; // AA
    }
    bytes
}

/// Removes the cached entries of `name` (with `zone`, at or under it) from
/// every cache of `state`, counting the flush as `by`'s: how many, or
/// `None` when the LS keeps no cache.
pub fn flush(
    state: &LsState,
    counters: &FlushCounters,
    name: &Name,
    zone: bool,
    by: FlushBy,
) -> Option<usize> {
    if !has_cache(state) {
        return None;
    }
    let removed = state.flush_cache(name, zone);
    counters.count(by, removed);
    Some(removed)
}

/// Whether `state` keeps a packet cache (the `[ls.cache]` or a pool's own).
fn has_cache(state: &LsState) -> bool {
    state.caches().next().is_some()
}

/// The answer to NOTIFY `q` from `src` on snapshot `state`: its zone
/// queued for the flusher (`queue`) when it comes from a backend within
/// its budget and the LS keeps a cache; `None` (no answer) past the
/// budget.
pub fn answer(
    state: &LsState,
    (counters, queue): (&FlushCounters, &FlushQueue),
    q: &ClientQuery,
    src: IpAddr,
) -> Option<Vec<u8>> {
    debug_assert_eq!(q.header.metadata.op_code, OpCode::Notify);
    let backends = state.backends.iter().map(|b| b.addr.ip());
    match judge(q, src, backends) {
        Verdict::Flush(_) if !counters.admit(src, Instant::now()) => {
            // Unanswered: the sender sends it again later.
            counters.notify_limited.fetch_add(1, Relaxed);
            None
        }
        Verdict::Flush(zone) => {
            counters.notify_accepted.fetch_add(1, Relaxed);
            if has_cache(state) {
                queue.push(zone);
            }
            Some(acknowledgement(q))
        }
        Verdict::Refuse => {
            counters.refused(src, q.query.name());
            Some(dns::rcode_answer(q, ResponseCode::Refused))
        }
        Verdict::NotImplemented => Some(dns::rcode_answer(q, ResponseCode::NotImp)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, Query};

    fn notify(zone: &str, qtype: RecordType) -> (Vec<u8>, ClientQuery) {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Notify);
        m.add_query(Query::query(Name::from_ascii(zone).unwrap(), qtype));
        let raw = m.to_vec().unwrap();
        let q = dns::decode_query(&raw).unwrap();
        (raw, q)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_notify_flushes_only_from_a_backend_s_address_and_for_soa_in() {
        let backends = [ip("127.0.0.1"), ip("::1")];
        let (_, q) = notify("Example.", RecordType::SOA);
        let zone = Name::from_ascii("Example.").unwrap();
        assert_eq!(
            judge(&q, ip("127.0.0.1"), backends.into_iter()),
            Verdict::Flush(zone.clone())
        );
        // Any port, and the IPv4-mapped form of a backend's address.
        assert_eq!(
            judge(&q, ip("::ffff:127.0.0.1"), backends.into_iter()),
            Verdict::Flush(zone)
        );
        assert_eq!(
            judge(&q, ip("127.0.0.2"), backends.into_iter()),
            Verdict::Refuse
        );
        assert_eq!(
            judge(&q, ip("127.0.0.1"), std::iter::empty()),
            Verdict::Refuse
        );
        let (_, q) = notify("example.", RecordType::A);
        assert_eq!(
            judge(&q, ip("::1"), backends.into_iter()),
            Verdict::NotImplemented
        );
        // Not from a backend is refused whatever the question.
        assert_eq!(
            judge(&q, ip("10.0.0.1"), backends.into_iter()),
            Verdict::Refuse
        );
    }

    #[test]
    fn a_sender_s_budget_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = SenderBudget::full(t0);
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, NOTIFY_BURST as usize);
        assert!(!b.take(t0 + Duration::from_millis(50)), "half a token");
        assert!(b.take(t0 + Duration::from_millis(100)), "one a 100 ms");
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // Ten seconds of a flood at 1,000 a second: the rate gets through.
        let mut passed = 0;
        for ms in 0..10_000 {
            if b.take(t0 + Duration::from_millis(100 + ms)) {
                passed += 1;
            }
        }
        assert!((99..=100).contains(&passed), "10 a second: {passed}");
        // Refilled, never above the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| b.take(later)).count(), 50);
    }

    #[test]
    fn the_acknowledgement_is_as_rfc_1996_says() {
        let (raw, q) = notify("eXample.", RecordType::SOA);
        let ack = acknowledgement(&q);
        let m = Message::from_vec(&ack).unwrap();
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative);
        assert_eq!(m.metadata.op_code, OpCode::Notify);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.queries, Message::from_vec(&raw).unwrap().queries);
        assert_eq!(m.queries[0].name().to_ascii(), "eXample.");
        assert!(m.answers.is_empty());
    }

    #[test]
    fn the_flush_queue_keeps_a_zone_once_drops_those_under_it_and_is_bounded() {
        let q = FlushQueue::default();
        let name = |s: &str| Name::from_ascii(s).unwrap();
        q.push(name("a.example."));
        q.push(name("A.Example."));
        q.push(name("b.a.example."));
        assert_eq!(q.take(), vec![name("a.example.")], "once, and not under it");
        q.push(name("b.a.example."));
        q.push(name("c.a.example."));
        q.push(name("a.example."));
        assert_eq!(
            q.take(),
            vec![name("a.example.")],
            "the zone above stands for both"
        );
        for i in 0..PENDING_MAX + 1 {
            q.push(name(&format!("z{i}.example.")));
        }
        assert_eq!(
            q.take(),
            vec![Name::root()],
            "past the bound, the root for all"
        );
        assert!(q.take().is_empty());
    }
}

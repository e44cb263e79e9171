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
//!   the budget has refilled.
//! - TSIG (RFC 8945): a backend may need its NOTIFYs signed ([`NotifyPeers`](super::notify_peers::NotifyPeers):
//!   its `notify_key`, or the `xfr_key` of the `[[ts]]` of this config it
//!   is). A signed NOTIFY is checked against the keys of its sender's
//!   address with the crate's TSIG code ([`crate::dns::tsig`]): one that
//!   verifies flushes and is acknowledged signed on its MAC (so the sender
//!   takes the acknowledgement and stops sending it again); one that does
//!   not (BADSIG, BADKEY, BADTIME, or a key the LS does not hold for that
//!   address) gets NOTAUTH with the TSIG error, FORMERR when the record
//!   cannot be read, and flushes nothing; an unsigned one is REFUSED when
//!   every backend at its address needs a key (a backend without one at the
//!   same address lets unsigned NOTIFYs from there through, as NSD's
//!   `allow-notify` entries with and without a key do).
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::notify_peers::NotifyPeers;
use super::state::LsState;
use crate::dns::tsig::{self, Checked, Key, Rejected, Signer, TsigError, Verified};
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
    /// NOTIFYs from a backend refused for their TSIG: unsigned where a key
    /// is needed, or a TSIG that does not verify.
    pub notify_tsig_refused: AtomicU64,
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
            notify_tsig_refused: AtomicU64::new(0),
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

    /// Counts, and logs within the budget, a NOTIFY for `zone` refused from
    /// `src`: not from a backend (`tsig` `None`), or for its TSIG (`tsig`
    /// says what was wrong).
    fn refused(&self, src: IpAddr, zone: &Name, tsig: Option<&str>) {
        let counter = match tsig {
            None => &self.notify_refused,
            Some(_) => &self.notify_tsig_refused,
        };
        counter.fetch_add(1, Relaxed);
        if let Some(more) = self.log.roll(Instant::now()) {
            tracing::warn!(more = more.started, "more NOTIFYs refused");
        }
        if self.log.admit(Change::Started) {
            match tsig {
                None => tracing::warn!(%src, %zone, "NOTIFY refused: not from a backend's address"),
                Some(error) => {
                    tracing::warn!(%src, %zone, error, "NOTIFY refused for its TSIG; nothing flushed");
                }
            }
        }
    }
}

/// What a NOTIFY's TSIG came to, checked against the keys of its sender.
enum Tsig {
    /// None (or a message that cannot be walked to one).
    Unsigned,
    /// Verified with this key.
    Signed(Signed),
    /// Refused, with the key whose name it bears (none: no such key here).
    Rejected(Rejected, Option<Arc<Key>>),
}

/// A NOTIFY whose TSIG verified: what its answer is signed on.
#[derive(Debug, Clone)]
pub struct Signed {
    key: Arc<Key>,
    verified: Verified,
}

impl Signed {
    /// Signs `answer` on the NOTIFY's MAC (RFC 8945 §5.3).
    fn sign(&self, answer: &mut Vec<u8>) {
        Signer::answer(Arc::clone(&self.key), &self.verified).sign(answer);
    }
}

/// The TSIG of `raw` checked at `now` against `keys`: the key whose name
/// and algorithm the record bears decides; when none does, BADKEY (RFC
/// 8945 §5.2.1), as a server without that key answers.
fn check_tsig(raw: &[u8], keys: &[Arc<Key>], now: u64) -> Tsig {
    let mut checked = None;
    for key in keys {
        match tsig::verify_request(raw, key, now) {
            Checked::Rejected(r) if r.error == Some(TsigError::BadKey) => {}
            c => {
                checked = Some((c, Some(Arc::clone(key))));
                break;
            }
        }
    }
    let (checked, key) = checked.unwrap_or_else(|| (tsig::verify_without_key(raw), None));
    match (checked, key) {
        (Checked::Signed(verified), Some(key)) => Tsig::Signed(Signed { key, verified }),
        (Checked::Rejected(r), key) => Tsig::Rejected(r, key),
        (Checked::Unsigned | Checked::Unreadable | Checked::Signed(_), _) => Tsig::Unsigned,
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
#[derive(Debug, Clone)]
pub enum NotifyVerdict {
    /// From a backend, for a zone, signed as that backend must: flush it
    /// and acknowledge (signed when the NOTIFY was).
    Flush(Name, Option<Signed>),
    /// Not from a backend: REFUSED.
    Refuse,
    /// Unsigned, from an address whose backends all need a TSIG: REFUSED.
    Unsigned,
    /// A TSIG that does not verify (NOTAUTH with its error) or cannot be
    /// read (FORMERR), with the key whose name it bears.
    BadTsig(Rejected, Option<Arc<Key>>),
    /// From a backend, signed as it must be, but its question is not
    /// `<zone> SOA IN`: NOTIMP (no other NOTIFY is defined for an LS to act
    /// on).
    NotImplemented(Option<Signed>),
}

/// The decision on NOTIFY `q` (decoded from `raw`: one question) from
/// `src` at `now` (seconds since the epoch), given who may NOTIFY
/// (`peers`): the address first, then the TSIG, then the question.
pub fn judge(
    raw: &[u8],
    q: &ClientQuery,
    src: IpAddr,
    peers: &NotifyPeers,
    now: u64,
) -> NotifyVerdict {
    let Some((open, keys)) = peers.at(src) else {
        return NotifyVerdict::Refuse;
    };
    let signed = match check_tsig(raw, &keys, now) {
        Tsig::Signed(s) => Some(s),
        Tsig::Rejected(r, key) => return NotifyVerdict::BadTsig(r, key),
        Tsig::Unsigned if open => None,
        Tsig::Unsigned => return NotifyVerdict::Unsigned,
    };
    if q.query.query_type() != RecordType::SOA || q.query.query_class() != DNSClass::IN {
        return NotifyVerdict::NotImplemented(signed);
    }
    NotifyVerdict::Flush(q.query.name().clone(), signed)
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

/// The answer to NOTIFY `q` (decoded from `raw`) from `src` on snapshot
/// `state`: its zone queued for the flusher (`queue`) when it comes from a
/// backend, signed as that backend must, within its budget, and the LS
/// keeps a cache; `None` (no answer) past the budget.
pub fn answer(
    state: &LsState,
    (counters, queue): (&FlushCounters, &FlushQueue),
    (raw, q): (&[u8], &ClientQuery),
    src: IpAddr,
) -> Option<Vec<u8>> {
    debug_assert_eq!(q.header.metadata.op_code, OpCode::Notify);
    let now = crate::clock::unix_now();
    let sign = |mut msg: Vec<u8>, signed: Option<Signed>| {
        if let Some(s) = signed {
            s.sign(&mut msg);
        }
        msg
    };
    match judge(raw, q, src, &state.notify_peers, now) {
        NotifyVerdict::Flush(..) if !counters.admit(src, Instant::now()) => {
            // Unanswered: the sender sends it again later.
            counters.notify_limited.fetch_add(1, Relaxed);
            None
        }
        NotifyVerdict::Flush(zone, signed) => {
            counters.notify_accepted.fetch_add(1, Relaxed);
            if has_cache(state) {
                queue.push(zone);
            }
            Some(sign(acknowledgement(q), signed))
        }
        NotifyVerdict::Refuse => {
            counters.refused(src, q.query.name(), None);
            Some(dns::rcode_answer(q, ResponseCode::Refused))
        }
        NotifyVerdict::Unsigned => {
            counters.refused(src, q.query.name(), Some("unsigned"));
            Some(dns::rcode_answer(q, ResponseCode::Refused))
        }
        NotifyVerdict::BadTsig(rejected, key) => {
            let (error, rcode) = match rejected.error {
                Some(e) => (e.as_str(), ResponseCode::NotAuth),
                None => ("FORMERR", ResponseCode::FormErr),
            };
            counters.refused(src, q.query.name(), Some(error));
            let mut msg = dns::rcode_answer(q, rcode);
            rejected.answer(key.as_deref(), &mut msg, now);
            Some(msg)
        }
        NotifyVerdict::NotImplemented(signed) => {
            Some(sign(dns::rcode_answer(q, ResponseCode::NotImp), signed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LsConfig;
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

    /// Who may NOTIFY: `open` addresses without a key, `keyed` ones with it.
    fn peers(open: &[&str], keyed: &[(&str, &Arc<Key>)]) -> NotifyPeers {
        let open = open.iter().map(|a| (ip(a), None));
        let keyed = keyed.iter().map(|(a, k)| (ip(a), Some(Arc::clone(k))));
        NotifyPeers::new(open.chain(keyed))
    }

    fn key(name: &str, byte: u8) -> Arc<Key> {
        Arc::new(Key::new(name, tsig::Algorithm::HmacSha256, &[byte; 32]).unwrap())
    }

    /// A NOTIFY for `zone` signed with `key` at `at`, and its MAC.
    fn signed_notify(zone: &str, key: &Arc<Key>, at: u64) -> (Vec<u8>, ClientQuery, Vec<u8>) {
        let (mut raw, _) = notify(zone, RecordType::SOA);
        let mut signer = Signer::request(Arc::clone(key));
        signer.sign_at(&mut raw, at);
        let q = dns::decode_query(&raw).unwrap();
        (raw, q, signer.last_mac().to_vec())
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_notify_flushes_only_from_a_backend_s_address_and_for_soa_in() {
        let backends = peers(&["127.0.0.1", "::1"], &[]);
        let judge = |raw: &[u8], q: &ClientQuery, src: &str, peers: &NotifyPeers| {
            judge(raw, q, ip(src), peers, NOW)
        };
        let (raw, q) = notify("Example.", RecordType::SOA);
        let zone = Name::from_ascii("Example.").unwrap();
        assert!(matches!(
            judge(&raw, &q, "127.0.0.1", &backends),
            NotifyVerdict::Flush(z, None) if z == zone
        ));
        // Any port, and the IPv4-mapped form of a backend's address.
        assert!(matches!(
            judge(&raw, &q, "::ffff:127.0.0.1", &backends),
            NotifyVerdict::Flush(z, None) if z == zone
        ));
        assert!(matches!(
            judge(&raw, &q, "127.0.0.2", &backends),
            NotifyVerdict::Refuse
        ));
        assert!(matches!(
            judge(&raw, &q, "127.0.0.1", &NotifyPeers::default()),
            NotifyVerdict::Refuse
        ));
        let (raw, q) = notify("example.", RecordType::A);
        assert!(matches!(
            judge(&raw, &q, "::1", &backends),
            NotifyVerdict::NotImplemented(None)
        ));
        // Not from a backend is refused whatever the question.
        assert!(matches!(
            judge(&raw, &q, "10.0.0.1", &backends),
            NotifyVerdict::Refuse
        ));
    }

    /// Where a backend's NOTIFYs must be signed, only one whose TSIG
    /// verifies flushes (the address alone does not decide); a bad MAC is
    /// BADSIG, a key the LS does not hold for that address BADKEY, a stale
    /// time BADTIME, and an unsigned one is refused.
    #[test]
    fn a_keyed_backend_s_notify_flushes_only_when_its_tsig_verifies() {
        let xfr = key("xfr", 1);
        let backends = peers(&["127.0.0.9"], &[("127.0.0.1", &xfr)]);
        let zone = Name::from_ascii("example.").unwrap();
        let (raw, q, _) = signed_notify("example.", &xfr, NOW);
        assert!(matches!(
            judge(&raw, &q, ip("127.0.0.1"), &backends, NOW),
            NotifyVerdict::Flush(z, Some(_)) if z == zone
        ));
        // Within the fudge either side, not past it.
        assert!(matches!(
            judge(&raw, &q, ip("127.0.0.1"), &backends, NOW + 300),
            NotifyVerdict::Flush(_, Some(_))
        ));
        let error = |v: NotifyVerdict| match v {
            NotifyVerdict::BadTsig(r, _) => r.error,
            other => panic!("not a TSIG refusal: {other:?}"),
        };
        assert_eq!(
            error(judge(&raw, &q, ip("127.0.0.1"), &backends, NOW + 301)),
            Some(TsigError::BadTime)
        );
        // A flipped MAC byte.
        let mut forged = raw.clone();
        let last = forged.len() - 7; // the MAC's end: original ID, error, other length follow
        forged[last] ^= 1;
        assert_eq!(
            error(judge(&forged, &q, ip("127.0.0.1"), &backends, NOW)),
            Some(TsigError::BadSig)
        );
        // The same name, another secret: BADSIG; another name: BADKEY.
        let (raw2, q2, _) = signed_notify("example.", &key("xfr", 2), NOW);
        assert_eq!(
            error(judge(&raw2, &q2, ip("127.0.0.1"), &backends, NOW)),
            Some(TsigError::BadSig)
        );
        let (raw3, q3, _) = signed_notify("example.", &key("other", 1), NOW);
        assert_eq!(
            error(judge(&raw3, &q3, ip("127.0.0.1"), &backends, NOW)),
            Some(TsigError::BadKey)
        );
        // Unsigned from the keyed address: refused.
        let (plain, pq) = notify("example.", RecordType::SOA);
        assert!(matches!(
            judge(&plain, &pq, ip("127.0.0.1"), &backends, NOW),
            NotifyVerdict::Unsigned
        ));
        // From an address without a key: unsigned flushes, a signed one
        // gets BADKEY (the LS holds no key for it), as NSD answers.
        assert!(matches!(
            judge(&plain, &pq, ip("127.0.0.9"), &backends, NOW),
            NotifyVerdict::Flush(_, None)
        ));
        assert_eq!(
            error(judge(&raw, &q, ip("127.0.0.9"), &backends, NOW)),
            Some(TsigError::BadKey)
        );
        // Two backends at one address, one with a key and one without: both
        // kinds of NOTIFY pass, as NSD's two allow-notify entries would.
        let mixed = peers(&["127.0.0.1"], &[("127.0.0.1", &xfr)]);
        assert!(matches!(
            judge(&plain, &pq, ip("127.0.0.1"), &mixed, NOW),
            NotifyVerdict::Flush(_, None)
        ));
        assert!(matches!(
            judge(&raw, &q, ip("127.0.0.1"), &mixed, NOW),
            NotifyVerdict::Flush(_, Some(_))
        ));
    }

    /// The acknowledgement of a signed NOTIFY is signed on its MAC, so the
    /// sender verifies it and stops sending (RFC 8945 §5.3); a BADSIG
    /// answer is NOTAUTH with an unsigned TSIG naming the error (§5.3.2).
    #[test]
    fn a_signed_notify_is_answered_signed_and_a_forged_one_notauth() {
        let xfr = key("xfr", 1);
        // The key as config.toml gives it, resolved for the backend.
        let kc = crate::config::KeyConfig {
            name: "xfr".into(),
            algorithm: crate::config::KeyAlgorithm::HmacSha256,
            secret: Some(data_encoding::BASE64.encode(&[1u8; 32])),
            secret_file: None,
        };
        let c = LsConfig {
            backend: vec![crate::config::BackendConfig {
                name: "ts1".into(),
                addr: "127.0.0.1:5301".parse().unwrap(),
                weight: 1,
                notify_key: Some("xfr".into()),
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            }],
            notify_tsig: vec![("ts1".into(), kc)],
            ..LsConfig::default()
        };
        let state = super::super::Balancer::new(&c).state();
        let counters = FlushCounters::default();
        let queue = FlushQueue::default();
        let (raw, q, mac) = signed_notify("example.", &xfr, crate::clock::unix_now());
        let ack = answer(&state, (&counters, &queue), (&raw, &q), ip("127.0.0.1")).unwrap();
        assert_eq!(ack[3] & 0x0f, 0, "NOERROR");
        assert_eq!(
            tsig::verify_response(&ack, &xfr, &mac, crate::clock::unix_now()),
            Ok(tsig::ResponseCheck::Signed(0))
        );
        assert_eq!(counters.notify_accepted.load(Relaxed), 1);
        let mut forged = raw.clone();
        let at = forged.len() - 7;
        forged[at] ^= 1;
        let refusal = answer(&state, (&counters, &queue), (&forged, &q), ip("127.0.0.1")).unwrap();
        assert_eq!(refusal[3] & 0x0f, 9, "NOTAUTH");
        let t = tsig::find(&refusal).unwrap().expect("a TSIG");
        assert_eq!(t.error, TsigError::BadSig.code());
        assert!(t.mac.is_empty());
        let (plain, pq) = notify("example.", RecordType::SOA);
        let refused = answer(&state, (&counters, &queue), (&plain, &pq), ip("127.0.0.1")).unwrap();
        assert_eq!(refused[3] & 0x0f, 5, "REFUSED");
        assert_eq!(counters.notify_accepted.load(Relaxed), 1);
        assert_eq!(counters.notify_tsig_refused.load(Relaxed), 2);
        assert_eq!(counters.notify_refused.load(Relaxed), 0);
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

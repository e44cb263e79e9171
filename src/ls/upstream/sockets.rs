//! Upstream UDP sockets: opening one ([`open`]), the address [`Family`]
//! (the one place v4 and v6 become an index), and the rotation rule (pure:
//! [`Sockets`] is generic over the socket, no system call there).
//!
//! A socket is worn once it has sent its budget of queries, a number drawn
//! at random around the rotation figure ([`wear_budget`]) so that sockets
//! opened together do not all wear out together. The next query that picks
//! a worn socket opens a fresh one in its place at once and the worn one is
//! retired: no new query goes to it, but it stays open (and read) until no
//! ID is in use on it any more — neither a query in flight nor a late entry
//! waiting out its grace period — and only then is it closed. A socket is
//! never the reason a query is not sent: if no fresh socket can be opened,
//! the worn one keeps serving, and a socket with no free ID left hands the
//! query to the next one.
//!
//! Sockets are known by a slot index that stays the same for their whole
//! life (attempts and late entries name it); a slot is reused only once its
//! socket is closed.
//!
//! The socket and the ID of each query are drawn from the set's own
//! generator (ChaCha12, [`StdRng`], seeded from the thread's
//! OS-seeded generator when the set is made): as unpredictable as RFC 5452
//! asks, without fetching the thread's generator per query.
//!
//! The socket is drawn once per round of the worker that owns the set
//! ([`Sockets::new_round`]) and per family, not once per query: the queries
//! a round sends then leave from one socket in one `sendmmsg(2)` and their
//! answers come back to one socket, read by one `recvmmsg(2)`, where a
//! socket drawn per query spread a round over up to eight of each (and, on
//! a core the backend shares, woke it once per call). Each round's socket
//! is drawn at random, so each query still leaves from a socket on a random
//! port with a random ID: an off-path forger who sends a datagram to one of
//! the family's ports hits the round's socket one time in eight, and then
//! every query of the round, where a draw per query put an eighth of them
//! on each socket: the same odds per forged datagram (eight: the fast
//! path's sockets per family, `udp_path::UPSTREAM_SOCKETS`). The async path's
//! cork (`shared/cork.rs`) sends a poll's queries the same way.
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;

use super::ids::{IdUse, Ids};

/// Queries one upstream socket sends before it is replaced by one on a new
/// port (on average: see [`wear_budget`]).
pub const ROTATE_AFTER: u64 = 20_000;

/// An address family: which sockets a backend's queries leave from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both, in index order.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of `addr`.
    pub fn of(addr: SocketAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// 0 for IPv4, 1 for IPv6: the index of per-family arrays.
    pub fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// Its unspecified address, port 0 (the kernel picks a random port).
    pub fn unspecified(self) -> SocketAddr {
        match self {
            Family::V4 => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            Family::V6 => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        }
    }
}

/// A new upstream socket of `family` ([`open_std`]), registered with the
/// caller's runtime.
///
/// # Errors
/// The OS error.
pub fn open(family: Family) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(open_std(family)?)
}

/// A new upstream socket of `family`, on a port the kernel picks at random
/// (IPv6 only for IPv6, a large receive buffer, non-blocking), registered
/// with no runtime.
///
/// # Errors
/// The OS error.
pub fn open_std(family: Family) -> std::io::Result<std::net::UdpSocket> {
    open_std_at(family.unspecified())
}

/// As [`open`], bound to `addr` (its port 0: one the kernel picks at
/// random).
///
/// # Errors
/// The OS error.
pub fn open_at(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(open_std_at(addr)?)
}

/// As [`open_std`], bound to `addr`.
fn open_std_at(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Answers come in bursts (a batch of queries goes out at once):
    // a small buffer would drop them. Best effort, as for client sockets.
    let _ = s.set_recv_buffer_size(crate::server::socket::UDP_RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A socket's budget of queries: uniform in `[rotate_after / 2,
/// rotate_after * 3 / 2)` given `r` uniform in `[0, 1)`; the mean stays
/// `rotate_after`, and sockets opened at the same moment wear out over a
/// span as long as their whole life instead of at once. At least 1.
pub fn wear_budget(rotate_after: u64, r: f64) -> u64 {
    let half = rotate_after / 2;
    // `r` < 1, so the product stays below `rotate_after`; saturating casts.
    let extra = (rotate_after as f64 * r.clamp(0.0, 1.0)) as u64;
    (half + extra.min(rotate_after.saturating_sub(1))).max(1)
}

/// One upstream socket and the IDs in use on it.
pub(crate) struct Upstream<S> {
    pub(crate) sock: S,
    pub(crate) family: Family,
    /// The IDs in use on it.
    pub(crate) ids: Ids,
    /// Queries sent since it was opened.
    uses: u64,
    /// Queries it may send before it is replaced.
    budget: u64,
    /// Its own address, once asked (dnstap's FORWARDER_* messages): it
    /// does not change while the socket is open.
    local: std::sync::OnceLock<Option<SocketAddr>>,
}

impl<S> Upstream<S> {
    fn new(sock: S, family: Family, budget: u64) -> Self {
        Upstream {
            sock,
            family,
            ids: Ids::new(),
            uses: 0,
            budget,
            local: std::sync::OnceLock::new(),
        }
    }

    /// Its own address, read by `read` the first time only (a
    /// `getsockname` per dnstap message was one system call per query).
    pub(crate) fn local_addr(
        &self,
        read: impl FnOnce(&S) -> Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        *self.local.get_or_init(|| read(&self.sock))
    }

    fn worn(&self) -> bool {
        self.uses >= self.budget
    }
}

/// Every upstream socket of a worker, by slot; see the module docs.
pub(crate) struct Sockets<S> {
    slots: Vec<Option<Upstream<S>>>,
    /// Per family, the slots new queries go to.
    active: [Vec<usize>; 2],
    /// Slots worn out and replaced, open until no ID is in use on them.
    retired: Vec<usize>,
    /// The mean budget of queries per socket.
    rotate_after: u64,
    /// Per family, the place in `active` of this round's socket, once a
    /// query of the round took one (see [`Sockets::new_round`]).
    round: [Option<usize>; 2],
    /// Draws sockets, IDs and budgets (a CSPRNG: see the module docs).
    rng: StdRng,
}

impl<S> Sockets<S> {
    pub(crate) fn new(rotate_after: u64) -> Self {
        Sockets {
            slots: Vec::new(),
            active: [Vec::new(), Vec::new()],
            retired: Vec::new(),
            rotate_after: rotate_after.max(1),
            round: [None; 2],
            rng: StdRng::from_rng(&mut rand::rng()),
        }
    }

    /// Starts a round: the next query of each family draws its socket at
    /// random, and the round's later queries of that family leave from the
    /// same one (see the module docs).
    pub(crate) fn new_round(&mut self) {
        self.round = [None; 2];
    }

    /// Puts `sock` in a free slot; its index.
    fn insert(&mut self, sock: S, family: Family) -> usize {
        let budget = wear_budget(self.rotate_after, self.rng.random::<f64>());
        let u = Upstream::new(sock, family, budget);
        if let Some(i) = self.slots.iter().position(Option::is_none)
            && let Some(slot) = self.slots.get_mut(i)
        {
            *slot = Some(u);
            return i;
        }
        self.slots.push(Some(u));
        self.slots.len() - 1
    }

    /// Adds a socket new queries of `family` may use.
    pub(crate) fn add(&mut self, family: Family, sock: S) {
        let i = self.insert(sock, family);
        if let Some(list) = self.active.get_mut(family.index()) {
            list.push(i);
        }
    }

    /// Slots that may hold a socket (open ones are `Some` in [`Self::get`]).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&Upstream<S>> {
        self.slots.get(slot)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Upstream<S>> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Every open socket, in use or retired.
    #[cfg(test)]
    pub(crate) fn open(&self) -> impl Iterator<Item = &Upstream<S>> {
        self.slots.iter().flatten()
    }

    /// Retired sockets still open.
    #[cfg(test)]
    pub(crate) fn retired(&self) -> usize {
        self.retired.len()
    }

    /// Takes a socket of `family` and a free random ID on it for a new
    /// query, counting the use; the ID is marked `what`. Starts at the
    /// round's socket, or at one drawn at random for the round's first query
    /// of the family; one that is worn is first replaced by `fresh()` (and
    /// retired), or kept if `fresh` gives none; one with no free ID hands the
    /// query (and the rest of the round) to the next. `None` only when the
    /// family has no socket at all, or none has a free ID.
    pub(crate) fn take(
        &mut self,
        family: Family,
        what: IdUse,
        mut fresh: impl FnMut() -> Option<S>,
    ) -> Option<(usize, u16)> {
        let n = self.active.get(family.index())?.len();
        if n == 0 {
            return None;
        }
        let chosen = self.round.get(family.index()).copied().flatten();
        let start = match chosen {
            Some(pos) if pos < n => pos,
            _ => self.rng.random_range(0..n),
        };
        for k in 0..n {
            let pos = (start + k) % n;
            let mut slot = *self.active.get(family.index())?.get(pos)?;
            if self.get(slot).is_some_and(Upstream::worn)
                && let Some(sock) = fresh()
            {
                let new = self.insert(sock, family);
                let list = self.active.get_mut(family.index());
                if let Some(p) = list.and_then(|l| l.get_mut(pos)) {
                    *p = new;
                }
                self.retired.push(slot);
                slot = new;
            }
            let rng = &mut self.rng;
            let Some(u) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Some(id) = u.ids.free_id(rng) {
                u.ids.set(id, what);
                u.uses += 1;
                if let Some(r) = self.round.get_mut(family.index()) {
                    *r = Some(pos);
                }
                return Some((slot, id));
            }
        }
        None
    }

    /// Closes the retired sockets no ID is in use on any more: each is
    /// passed to `close`, and its slot becomes free.
    pub(crate) fn reap(&mut self, mut close: impl FnMut(usize, S)) {
        let slots = &mut self.slots;
        self.retired.retain(|&i| {
            let Some(entry) = slots.get_mut(i) else {
                return false;
            };
            if entry.as_ref().is_some_and(|u| u.ids.live() > 0) {
                return true;
            }
            if let Some(u) = entry.take() {
                close(i, u.sock);
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn budgets_spread_around_the_rotation_figure() {
        assert_eq!(wear_budget(20_000, 0.0), 10_000);
        assert_eq!(wear_budget(20_000, 0.5), 20_000);
        assert_eq!(wear_budget(20_000, 0.999_999_9), 29_999);
        assert_eq!(wear_budget(20_000, 7.0), 29_999, "clamped");
        assert_eq!(wear_budget(1, 0.9), 1);
        assert_eq!(wear_budget(0, 0.5), 1);
    }

    /// A late entry of the model: its ID and when it is forgotten.
    struct LateId {
        slot: usize,
        id: u16,
        forget_at: Duration,
    }

    /// 200,000 queries on 8 sockets with a budget around 1,000 queries, on
    /// a made-up clock (one query every 50 µs). One query in a hundred is
    /// lost: its ID stays in use (in flight, then late) until 3.5 s after
    /// it was sent — far longer than a socket's life. The others are
    /// answered 1 ms after they were sent. Every query gets a socket; a
    /// worn socket with IDs still in use is replaced at once, kept open
    /// until its last late entry is forgotten, and closed then; the
    /// sockets do not all wear out together.
    #[test]
    fn a_worn_socket_is_replaced_at_once_and_closed_when_its_last_id_clears() {
        const QUERIES: u32 = 200_000;
        const EVERY: Duration = Duration::from_micros(50);
        const ANSWER: Duration = Duration::from_millis(1);
        const LOST_FOR: Duration = Duration::from_millis(3_500);
        let mut s: Sockets<u32> = Sockets::new(1_000);
        let mut opened = 0u32;
        for _ in 0..8 {
            s.add(Family::V4, opened);
            opened += 1;
        }
        // The IDs in use, by when they clear.
        let mut pending: BTreeMap<(Duration, u32), (usize, u16)> = BTreeMap::new();
        let mut late: Vec<LateId> = Vec::new();
        // Sockets closed: (socket, when), and the last time each socket's IDs were in use.
        let mut closed: Vec<(u32, Duration)> = Vec::new();
        let mut last_use: BTreeMap<u32, Duration> = BTreeMap::new();
        let mut first_retired: Vec<Duration> = Vec::new();
        for q in 0..QUERIES {
            let now = EVERY * q;
            // What is due by now clears.
            while let Some((&(at, n), &(slot, id))) = pending.first_key_value() {
                if at > now {
                    break;
                }
                pending.remove(&(at, n));
                let u = s
                    .get_mut(slot)
                    .expect("a socket with an ID in use stays open");
                assert_ne!(u.ids.get(id), IdUse::Free);
                u.ids.set(id, IdUse::Free);
            }
            late.retain(|l| l.forget_at > now);
            s.reap(|_, sock| closed.push((sock, now)));
            let before = s.retired();
            let lost = q % 100 == 37;
            let (slot, id) = s
                .take(Family::V4, IdUse::Flight(q), || {
                    opened += 1;
                    Some(opened - 1)
                })
                .unwrap_or_else(|| panic!("query {q} at {now:?} found no socket"));
            if s.retired() > before && first_retired.len() < 8 {
                first_retired.push(now);
            }
            let sock = s.get(slot).map(|u| u.sock).unwrap();
            let clears = now + if lost { LOST_FOR } else { ANSWER };
            let last = last_use.entry(sock).or_insert(clears);
            *last = (*last).max(clears);
            pending.insert((clears, q), (slot, id));
            if lost {
                late.push(LateId {
                    slot,
                    id,
                    forget_at: clears,
                });
            }
            // Every late entry's socket is still open and still knows it.
            if q % 1000 == 0 {
                for l in &late {
                    assert_ne!(s.get(l.slot).map(|u| u.ids.get(l.id)), Some(IdUse::Free));
                    assert!(s.get(l.slot).is_some());
                }
            }
        }
        assert!(opened > 8 + 100, "sockets were rotated: {opened} opened");
        // A socket is closed only after its last ID cleared, and soon
        // after (the next query, 50 µs later).
        for &(sock, at) in &closed {
            let clear = last_use[&sock];
            assert!(
                at >= clear,
                "socket {sock} closed at {at:?}, in use until {clear:?}"
            );
            assert!(
                at <= clear + EVERY,
                "socket {sock} closed late: {at:?} > {clear:?}"
            );
        }
        assert!(closed.len() > 100, "{} closed", closed.len());
        // Retired sockets waiting out lost queries: about as many as wear
        // out in LOST_FOR (one per 1,000 queries, 50 ms), never piling up.
        assert!(s.retired() <= 140, "{} retired at the end", s.retired());
        assert_eq!(s.open().count(), 8 + s.retired());
        // The first eight to wear out did not go together (with one budget
        // for all, they would within ~15 ms; with budgets spread over
        // 500..1,500 queries, over ~300 ms).
        assert_eq!(first_retired.len(), 8);
        let span = first_retired[7] - first_retired[0];
        assert!(span > Duration::from_millis(50), "worn out within {span:?}");
    }

    /// A round's queries of a family leave from one socket, and each
    /// round's socket is drawn at random: over many rounds every socket
    /// takes about an eighth of them, and a round's socket follows the last
    /// round's no more often than chance.
    #[test]
    fn a_rounds_queries_leave_from_one_socket_drawn_at_random_each_round() {
        const ROUNDS: u32 = 4_000;
        const PER_ROUND: u32 = 5;
        let mut s: Sockets<u8> = Sockets::new(1 << 30);
        for sock in 0..8u8 {
            s.add(Family::V4, sock);
            s.add(Family::V6, 8 + sock);
        }
        let mut per_socket = [0u32; 8];
        let mut same_as_last = 0u32;
        let mut last = None;
        for round in 0..ROUNDS {
            s.new_round();
            let mut this = None;
            for q in 0..PER_ROUND {
                let what = IdUse::Flight(round * PER_ROUND + q);
                let (slot, id) = s.take(Family::V4, what, || None).unwrap();
                let sock = s.get(slot).unwrap().sock;
                assert!(
                    this.is_none_or(|t| t == sock),
                    "round {round}: query {q} left another socket"
                );
                this = Some(sock);
                // The other family draws its own socket.
                let (v6, v6_id) = s.take(Family::V6, what, || None).unwrap();
                assert!(s.get(v6).unwrap().sock >= 8, "a v6 query on a v4 socket");
                s.get_mut(v6).unwrap().ids.set(v6_id, IdUse::Free);
                s.get_mut(slot).unwrap().ids.set(id, IdUse::Free);
            }
            let sock = this.unwrap();
            per_socket[usize::from(sock)] += 1;
            if last == Some(sock) {
                same_as_last += 1;
            }
            last = Some(sock);
        }
        // A new draw lands on the last round's socket one time in eight.
        let expected = f64::from(ROUNDS - 1) / 8.0;
        assert!(
            (f64::from(same_as_last) - expected).abs() < expected * 0.25,
            "{same_as_last} rounds on the last round's socket of {ROUNDS}"
        );
        // Each socket's share of the rounds: 1/8, chi-square with 7 degrees
        // of freedom below its 0.99999 quantile (35.26): a fair draw fails
        // one run in 100,000 (at the 0.999 quantile it failed one CI run in
        // a thousand); a socket never drawn gives about 570.
        let mean = f64::from(ROUNDS) / 8.0;
        let chi: f64 = per_socket
            .iter()
            .map(|&n| (f64::from(n) - mean).powi(2) / mean)
            .sum();
        assert!(
            chi < 35.26,
            "rounds per socket {per_socket:?}: chi-square {chi:.1}"
        );
    }

    /// A round's socket with no free ID found hands the round's later
    /// queries to the next socket, which then stays the round's.
    #[test]
    fn a_full_socket_hands_the_rest_of_the_round_to_another() {
        let mut s: Sockets<u8> = Sockets::new(1 << 30);
        for sock in 0..2u8 {
            s.add(Family::V4, sock);
        }
        s.new_round();
        let (first, _) = s.take(Family::V4, IdUse::Flight(0), || None).unwrap();
        let full = s.get(first).unwrap().sock;
        let mut used = 1u32;
        let next = loop {
            let (slot, _) = s.take(Family::V4, IdUse::Flight(used), || None).unwrap();
            used += 1;
            if slot != first {
                break slot;
            }
            assert!(
                used <= 1 << 16,
                "a socket took more queries than it has IDs"
            );
        };
        // An ID is drawn in a few random tries, so "full" is "most tries
        // hit a used ID": the move comes once most of the socket's IDs are
        // in use (before a quarter, one time in millions).
        let live = s.get(first).unwrap().ids.live();
        assert!(
            live > 1 << 14,
            "the round moved on from a socket with {live} IDs in use"
        );
        assert_ne!(s.get(next).unwrap().sock, full);
        let (again, _) = s
            .take(Family::V4, IdUse::Flight(used + 1), || None)
            .unwrap();
        assert_eq!(again, next, "the round stays on the socket it moved to");
    }

    #[test]
    fn a_worn_socket_is_kept_when_no_fresh_one_opens_and_full_sockets_are_skipped() {
        let mut s: Sockets<&str> = Sockets::new(2);
        s.add(Family::V4, "a");
        // Worn out (budget 1 or 2) and nothing new can be opened: still used.
        for q in 0..5 {
            let (slot, _) = s.take(Family::V4, IdUse::Flight(q), || None).unwrap();
            assert_eq!(s.get(slot).unwrap().sock, "a");
        }
        assert_eq!(s.retired(), 0);
        // No IPv6 socket: no way to send.
        assert_eq!(s.take(Family::V6, IdUse::Flight(9), || Some("x")), None);
        // Every ID of "a" in use: the query goes to "b".
        let mut s: Sockets<&str> = Sockets::new(1 << 30);
        s.add(Family::V4, "a");
        s.add(Family::V4, "b");
        let a = (0..s.len())
            .find(|&i| s.get(i).unwrap().sock == "a")
            .unwrap();
        for id in 0..=u16::MAX {
            s.get_mut(a).unwrap().ids.set(id, IdUse::Flight(0));
        }
        for q in 0..20 {
            let (slot, _) = s.take(Family::V4, IdUse::Flight(q), || None).unwrap();
            assert_eq!(s.get(slot).unwrap().sock, "b");
        }
    }
}

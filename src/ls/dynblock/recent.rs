//! `dnslb top`'s data: each worker's ring of its recent queries
//! ([`Recent`]: client group, query name, type, and the second it came in,
//! [`RECENT`] slots, one slot written per query and nothing else), and its
//! answers' rcodes tallied per second for the last [`TOP_SECS`] seconds.
//! Nothing is added up per query: the rings are read only when `dnslb top`
//! asks ([`Recent::scan`]), as dnsdist's rings are. A busy worker's ring
//! holds less than the seconds asked: the report says so.
use std::net::{IpAddr, Ipv4Addr};

use super::table::name_end;

/// Seconds `dnslb top` may ask for (answers' rcodes tallied per second
/// that far back).
pub const TOP_SECS: usize = 60;
/// Queries each ring keeps (the newest overwrite the oldest).
pub const RECENT: usize = 2048;
/// Queries (and answers) a worker stages before it moves them into its
/// ring ([`RecentStage`]).
const STAGED: usize = 32;

/// One query seen.
#[derive(Clone, Copy)]
pub(super) struct RecentQuery {
    /// The second (the tick's call count) it came in.
    pub(super) epoch: u64,
    pub(super) client: IpAddr,
    pub(super) qtype: u16,
    /// The name's length in `name` (0: an empty slot).
    len: u8,
    /// The name in wire form, as the client sent it.
    name: [u8; 255],
}

impl RecentQuery {
    const EMPTY: RecentQuery = RecentQuery {
        epoch: 0,
        client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        qtype: 0,
        len: 0,
        name: [0; 255],
    };

    /// The name, wire form (case as sent).
    pub(super) fn name(&self) -> &[u8] {
        self.name.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// This slot made the query from `client` for `qname` (wire form;
    /// bytes past the name ignored) of type `qtype` in second `epoch`; false
    /// (the slot left as it was) when `qname` is no name.
    fn set(&mut self, epoch: u64, client: IpAddr, qname: &[u8], qtype: u16) -> bool {
        let Some(end) = name_end(qname) else {
            return false;
        };
        self.epoch = epoch;
        self.client = client;
        self.qtype = qtype;
        let (Some(dst), Some(src)) = (self.name.get_mut(..end), qname.get(..end)) else {
            self.len = 0;
            return false;
        };
        dst.copy_from_slice(src);
        self.len = u8::try_from(end).unwrap_or(0);
        true
    }
}

/// Queries and answers a fast-path worker keeps for its ring until the
/// end of its round ([`Recent::absorb`], under one lock): each written
/// with no lock taken. A lock per query cost more than the rest of its
/// counting: its atomic exchange waited for the ring slot's write, a cache
/// miss, to complete.
pub(super) struct RecentStage {
    queries: Box<[RecentQuery]>,
    /// Queries staged.
    n: usize,
    /// Answers staged: (second, rcode).
    answers: Vec<(u64, u8)>,
}

impl RecentStage {
    /// An empty stage, its room allocated whole.
    pub(super) fn new() -> Self {
        RecentStage {
            queries: vec![RecentQuery::EMPTY; STAGED].into_boxed_slice(),
            n: 0,
            answers: Vec::with_capacity(STAGED),
        }
    }

    /// Stages a query ([`Recent::on_query`]'s arguments); true when the
    /// stage is full (the caller moves it into the ring).
    pub(super) fn on_query(
        &mut self,
        epoch: u64,
        client: IpAddr,
        qname: &[u8],
        qtype: u16,
    ) -> bool {
        if let Some(slot) = self.queries.get_mut(self.n)
            && slot.set(epoch, client, qname, qtype)
        {
            self.n += 1;
        }
        self.n >= STAGED
    }

    /// Stages an answer with `rcode` in second `epoch`; true when full.
    pub(super) fn on_answer(&mut self, epoch: u64, rcode: u8) -> bool {
        if self.answers.len() < STAGED {
            self.answers.push((epoch, rcode));
        }
        self.answers.len() >= STAGED
    }

    /// Whether anything is staged.
    pub(super) fn is_empty(&self) -> bool {
        self.n == 0 && self.answers.is_empty()
    }
}

/// One worker's recent queries and its answers' rcodes by second.
pub(super) struct Recent {
    slots: Box<[RecentQuery]>,
    /// The slot the next query goes to.
    next: usize,
    /// Queries written since start (their count: how full the ring is).
    written: u64,
    /// Answers by rcode, per second: `(epoch, counts)` at `epoch % TOP_SECS`.
    rcodes: Box<[(u64, [u64; 16])]>,
}

impl Recent {
    /// An empty ring, its room allocated whole.
    pub(super) fn new() -> Self {
        Recent {
            slots: vec![RecentQuery::EMPTY; RECENT].into_boxed_slice(),
            next: 0,
            written: 0,
            rcodes: vec![(u64::MAX, [0; 16]); TOP_SECS].into_boxed_slice(),
        }
    }

    /// Keeps a query from `client` for `qname` (wire form; bytes past the
    /// name ignored) of type `qtype` in second `epoch`: one slot written.
    pub(super) fn on_query(&mut self, epoch: u64, client: IpAddr, qname: &[u8], qtype: u16) {
        let Some(slot) = self.slots.get_mut(self.next) else {
            return;
        };
        if slot.set(epoch, client, qname, qtype) {
            self.advance();
        }
    }

    /// Keeps a query a worker staged ([`RecentStage`]): its slot's bytes in use
    /// copied.
    fn push(&mut self, q: &RecentQuery) {
        let Some(slot) = self.slots.get_mut(self.next) else {
            return;
        };
        if slot.set(q.epoch, q.client, q.name(), q.qtype) {
            self.advance();
        }
    }

    /// The next slot on.
    fn advance(&mut self) {
        self.next = if self.next + 1 == RECENT {
            0
        } else {
            self.next + 1
        };
        self.written += 1;
    }

    /// Moves what a worker staged into the ring (one lock taken for them
    /// all, by the caller), the stage emptied.
    pub(super) fn absorb(&mut self, staged: &mut RecentStage) {
        for q in staged.queries.get(..staged.n).unwrap_or_default() {
            self.push(q);
        }
        for &(epoch, rcode) in &staged.answers {
            self.on_answer(epoch, rcode);
        }
        staged.n = 0;
        staged.answers.clear();
    }

    /// Counts an answer with `rcode` in second `epoch`.
    pub(super) fn on_answer(&mut self, epoch: u64, rcode: u8) {
        let at = usize::try_from(epoch % TOP_SECS as u64).unwrap_or(0);
        if let Some((e, counts)) = self.rcodes.get_mut(at) {
            if *e != epoch {
                *e = epoch;
                *counts = [0; 16];
            }
            if let Some(c) = counts.get_mut(usize::from(rcode & 15)) {
                *c += 1;
            }
        }
    }

    /// Every query kept from second `since` on (`each`), and the rcodes
    /// tallied in those seconds added into `rcodes`: whether the ring
    /// wrapped within them (its oldest query is of those seconds: older
    /// ones of them were overwritten).
    pub(super) fn scan(
        &self,
        since: u64,
        rcodes: &mut [u64; 16],
        mut each: impl FnMut(&RecentQuery),
    ) -> bool {
        for (e, counts) in self.rcodes.iter() {
            if *e != u64::MAX && *e >= since {
                for (a, b) in rcodes.iter_mut().zip(counts) {
                    *a += b;
                }
            }
        }
        let kept = usize::try_from(self.written).map_or(RECENT, |w| w.min(RECENT));
        for s in self.slots.iter().filter(|s| s.len > 0 && s.epoch >= since) {
            each(s);
        }
        // The oldest query kept is the next slot to be overwritten.
        kept == RECENT && self.slots.get(self.next).is_some_and(|s| s.epoch >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    /// The queries of the seconds asked, names as sent (bytes past the name
    /// ignored), and the rcodes of those seconds; older seconds left out.
    #[test]
    fn a_scan_sees_the_queries_and_rcodes_of_the_seconds_asked() {
        let mut r = Recent::new();
        r.on_query(3, ip(1), b"\x01a\x00\x00\x01\x00\x01", 1);
        r.on_answer(3, 3);
        r.on_query(5, ip(2), b"\x01B\x07example\x00", 28);
        r.on_answer(5, 0);
        r.on_answer(5, 0);
        let (mut seen, mut rc) = (Vec::new(), [0u64; 16]);
        let wrapped = r.scan(4, &mut rc, |s| {
            seen.push((s.client, s.name().to_vec(), s.qtype))
        });
        assert_eq!(seen, [(ip(2), b"\x01B\x07example\x00".to_vec(), 28)]);
        assert_eq!((rc[0], rc[3]), (2, 0));
        assert!(!wrapped);
        let mut rc = [0u64; 16];
        let mut n = 0;
        r.scan(0, &mut rc, |_| n += 1);
        assert_eq!((n, rc[0], rc[3]), (2, 2, 1));
    }

    /// Bounded: the newest [`RECENT`] queries are kept, and a scan whose
    /// seconds the ring no longer covers whole says so; a second's rcodes
    /// start over when its slot comes round again.
    #[test]
    fn the_ring_keeps_the_newest_and_says_when_it_wrapped() {
        let mut r = Recent::new();
        for i in 0..(RECENT as u64 + 10) {
            r.on_query(1 + i / 1000, ip(1), b"\x00", 1);
        }
        let mut rc = [0u64; 16];
        let mut n = 0;
        assert!(r.scan(1, &mut rc, |_| n += 1), "wrapped within the seconds");
        assert_eq!(n, RECENT);
        let newest = 1 + (RECENT as u64 + 9) / 1000;
        assert!(!r.scan(newest, &mut rc, |_| {}), "that second is whole");
        r.on_answer(2, 1);
        r.on_answer(2 + TOP_SECS as u64, 2);
        let mut rc = [0u64; 16];
        r.scan(0, &mut rc, |_| {});
        assert_eq!((rc[1], rc[2]), (0, 1));
    }
}

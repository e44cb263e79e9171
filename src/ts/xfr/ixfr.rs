//! Incremental zone transfer (IXFR, RFC 1995): the differences between the
//! last versions of each zone ([`Journal`]), found on reload by
//! [`transfer::diff`](crate::ts::zone::transfer::diff), and the choice an IXFR request
//! gets ([`Journal::since`]): the differences since the client's serial,
//! condensed into one deletion and one addition ([`condense`], RFC 1995
//! §4), the whole zone when they are gone, or the SOA alone when the client
//! is up to date.
//!
//! A journal is bounded twice: at most `ixfr_history` versions a zone, and a
//! difference larger than half the compiled zone is not kept (a full
//! transfer is then about as cheap, and the chain of versions before it is
//! dropped, as it no longer leads to the current serial); the differences
//! of one zone together stay under the zone's compiled size, the oldest
//! dropped first. Kept in memory only: after a restart an IXFR gets the
//! whole zone.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::ts::serials::serial_newer;
use crate::ts::zone::Zone;
use crate::ts::zone::rrlist::{RrList, merge, minus};

/// The key of `zone` in the IXFR journal: its origin, lower-cased.
pub fn journal_key(zone: &Zone) -> String {
    zone.origin().to_ascii().to_ascii_lowercase()
}

/// What changed from one version of a zone to a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The serial before.
    pub from: u32,
    /// The serial after.
    pub to: u32,
    /// The SOA record before, whole.
    pub old_soa: Vec<u8>,
    /// The SOA record after, whole.
    pub new_soa: Vec<u8>,
    /// Records removed, the SOA aside, in [`cmp_rr`](crate::ts::zone::rrlist::cmp_rr) order.
    pub deleted: Arc<RrList>,
    /// Records added, the SOA aside, in [`cmp_rr`](crate::ts::zone::rrlist::cmp_rr) order.
    pub added: Arc<RrList>,
}

impl Delta {
    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.old_soa.len() + self.new_soa.len() + self.deleted.bytes() + self.added.bytes()
    }
}

/// One difference for consecutive `deltas` (oldest first, each starting
/// where the one before ends): a record added then deleted, or deleted then
/// added back, appears in neither list (RFC 1995 §4's condensation).
pub fn condense(deltas: &[Arc<Delta>]) -> Option<Arc<Delta>> {
    let (first, rest) = deltas.split_first()?;
    let mut acc = Arc::clone(first);
    for d in rest {
        // d.deleted lies in acc's result, so it shares nothing with acc.deleted;
        // likewise d.added with acc.added.
        let deleted = merge(
            &minus(&acc.deleted, &d.added),
            &minus(&d.deleted, &acc.added),
        );
        let added = merge(
            &minus(&acc.added, &d.deleted),
            &minus(&d.added, &acc.deleted),
        );
        acc = Arc::new(Delta {
            from: acc.from,
            to: d.to,
            old_soa: acc.old_soa.clone(),
            new_soa: d.new_soa.clone(),
            deleted: Arc::new(deleted),
            added: Arc::new(added),
        });
    }
    Some(acc)
}

/// What an IXFR from a client's serial gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The client has the current serial or a newer one: the SOA alone.
    UpToDate,
    /// The differences from the client's serial to the current one, condensed.
    Changes(Arc<Delta>),
    /// No differences lead from the client's serial: the whole zone.
    Unknown,
}

/// The differences kept per zone, oldest first.
#[derive(Debug, Default)]
pub struct Journal {
    zones: Mutex<HashMap<String, VecDeque<Arc<Delta>>>>,
}

/// Whether a difference of `delta_bytes` is worth keeping for a zone of
/// `zone_bytes` compiled: not past half the zone (a full transfer then
/// costs about as much).
pub fn worth_keeping(delta_bytes: usize, zone_bytes: usize) -> bool {
    delta_bytes <= zone_bytes / 2
}

impl Journal {
    /// Records the change of zone `origin` (lower-cased) to a version of
    /// `zone_bytes` compiled bytes: `delta` when known and worth keeping,
    /// else `None`, which drops the zone's history (no chain of differences
    /// leads past this version). Keeps at most `depth` versions (0: none)
    /// and, together, at most `zone_bytes`, dropping the oldest.
    pub fn record(&self, origin: &str, delta: Option<Delta>, zone_bytes: usize, depth: usize) {
        let mut zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = zones.entry(origin.to_owned()).or_default();
        match delta {
            Some(d) if depth > 0 && worth_keeping(d.bytes(), zone_bytes) => {
                if kept.back().is_some_and(|last| last.to != d.from) {
                    kept.clear();
                }
                kept.push_back(Arc::new(d));
            }
            _ => kept.clear(),
        }
        let mut total: usize = kept.iter().map(|d| d.bytes()).sum();
        while kept.len() > depth || total > zone_bytes.max(1) {
            let Some(old) = kept.pop_front() else { break };
            total -= old.bytes();
        }
    }

    /// Drops the history of `origin` (lower-cased): a zone no longer served.
    pub fn forget(&self, origin: &str) {
        let mut zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        zones.remove(origin);
    }

    /// Versions kept for `origin` (lower-cased).
    pub fn depth(&self, origin: &str) -> usize {
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        zones.get(origin).map_or(0, VecDeque::len)
    }

    /// What an IXFR of zone `origin` (lower-cased), served at `current`,
    /// from a client at serial `client` gets.
    pub fn since(&self, origin: &str, client: u32, current: u32) -> Since {
        if client == current || serial_newer(client, current) {
            return Since::UpToDate;
        }
        let zones = self.zones.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(kept) = zones.get(origin) else {
            return Since::Unknown;
        };
        let Some(start) = kept.iter().position(|d| d.from == client) else {
            return Since::Unknown;
        };
        // The chain up to the version served (a reload may have recorded a
        // newer one before swapping it in).
        let mut chain = Vec::new();
        for d in kept.iter().skip(start) {
            chain.push(Arc::clone(d));
            if d.to == current {
                drop(zones);
                return condense(&chain).map_or(Since::Unknown, Since::Changes);
            }
        }
        Since::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::zone::rrlist::testing::{list, rr};

    fn delta(from: u32, to: u32, deleted: &[Vec<u8>], added: &[Vec<u8>]) -> Arc<Delta> {
        Arc::new(Delta {
            from,
            to,
            old_soa: vec![from as u8],
            new_soa: vec![to as u8],
            deleted: Arc::new(list(deleted)),
            added: Arc::new(list(added)),
        })
    }

    #[test]
    fn consecutive_changes_condense_into_one_pair() {
        // v1 {a1, b1} -> v2 {a2, b1, c1} -> v3 {a1, b1, c1, d1}
        let d1 = delta(
            1,
            2,
            &[rr("a.test", 1)],
            &[rr("a.test", 2), rr("c.test", 1)],
        );
        let d2 = delta(
            2,
            3,
            &[rr("a.test", 2)],
            &[rr("a.test", 1), rr("d.test", 1)],
        );
        let c = condense(&[d1.clone(), d2]).unwrap();
        assert_eq!((c.from, c.to), (1, 3));
        assert_eq!((c.old_soa.clone(), c.new_soa.clone()), (vec![1], vec![3]));
        assert!(
            c.deleted.is_empty(),
            "a1 deleted then added back: no change"
        );
        assert_eq!(*c.added, list(&[rr("c.test", 1), rr("d.test", 1)]));
        assert_eq!(condense(std::slice::from_ref(&d1)).unwrap(), d1);
        assert_eq!(condense(&[]), None);
    }

    #[test]
    fn the_journal_answers_from_the_clients_serial() {
        let j = Journal::default();
        let z = "test.";
        j.record(
            z,
            Some((*delta(1, 2, &[rr("a.test", 1)], &[rr("a.test", 2)])).clone()),
            1000,
            10,
        );
        j.record(
            z,
            Some((*delta(2, 3, &[rr("a.test", 2)], &[rr("a.test", 3)])).clone()),
            1000,
            10,
        );
        assert_eq!(j.since(z, 3, 3), Since::UpToDate);
        assert_eq!(j.since(z, 4, 3), Since::UpToDate, "newer than ours");
        assert_eq!(j.since(z, 0, 3), Since::Unknown, "older than the history");
        assert_eq!(j.since("other.", 1, 3), Since::Unknown);
        let Since::Changes(d) = j.since(z, 1, 3) else {
            panic!("changes expected")
        };
        assert_eq!((d.from, d.to), (1, 3));
        assert_eq!(*d.deleted, list(&[rr("a.test", 1)]));
        assert_eq!(*d.added, list(&[rr("a.test", 3)]));
        let Since::Changes(d) = j.since(z, 2, 3) else {
            panic!("changes expected")
        };
        assert_eq!((d.from, d.to), (2, 3));
        // Served at 2 while 3 is recorded, not yet swapped in.
        let Since::Changes(d) = j.since(z, 1, 2) else {
            panic!("changes expected")
        };
        assert_eq!(d.to, 2);
    }

    #[test]
    fn the_journal_is_bounded_in_versions_and_bytes() {
        let j = Journal::default();
        let z = "test.";
        for s in 1..=5u32 {
            let d = delta(
                s,
                s + 1,
                &[rr("a.test", s as u8)],
                &[rr("a.test", s as u8 + 1)],
            );
            j.record(z, Some((*d).clone()), 10_000, 3);
        }
        assert_eq!(j.depth(z), 3, "depth");
        assert_eq!(j.since(z, 2, 6), Since::Unknown, "dropped");
        assert!(matches!(j.since(z, 3, 6), Since::Changes(_)));
        // A difference past half the zone breaks the chain.
        let big = delta(6, 7, &[rr("a.test", 6)], &[rr("a.test", 7)]);
        j.record(z, Some((*big).clone()), big.bytes() * 2 - 1, 3);
        assert_eq!(j.depth(z), 0);
        // Unknown difference: history dropped; depth 0: nothing kept.
        j.record(z, Some((*delta(7, 8, &[], &[])).clone()), 10_000, 3);
        assert_eq!(j.depth(z), 1);
        j.record(z, None, 10_000, 3);
        assert_eq!(j.depth(z), 0);
        j.record(z, Some((*delta(8, 9, &[], &[])).clone()), 10_000, 0);
        assert_eq!(j.depth(z), 0, "ixfr_history = 0");
        // Together under the zone's size: the oldest go first.
        for s in 10..14u32 {
            let d = delta(s, s + 1, &[rr("a.test", 1)], &[rr("a.test", 2)]);
            j.record(z, Some((*d).clone()), d.bytes() * 2, 10);
        }
        assert_eq!(j.depth(z), 2);
    }
}

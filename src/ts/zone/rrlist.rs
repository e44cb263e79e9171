//! Whole resource records in wire form, kept one after another
//! ([`RrList`]), in the order a difference of two versions of a zone is
//! computed in ([`cmp_rr`]: owners canonical, then the rest byte by byte),
//! with the set operations a difference needs ([`minus`], [`merge`]).
//! [`transfer::diff`](super::transfer::diff) builds them; the IXFR journal
//! (`ts/xfr/ixfr.rs`) keeps and condenses them.
use std::cmp::Ordering;

use crate::ts::wire::{cmp_names, uncompressed_len};

/// Whole resource records in wire form (owner uncompressed, then type,
/// class, TTL, RDLENGTH, RDATA), one after another.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RrList {
    bytes: Vec<u8>,
    count: usize,
}

/// `rr` split into its owner and the rest (type, class, TTL, RDLENGTH,
/// RDATA); `None` when it is not one whole record.
pub fn split_rr(rr: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = uncompressed_len(rr)?;
    let (owner, rest) = rr.split_at_checked(n)?;
    let rdlen = usize::from(u16::from_be_bytes([*rest.get(8)?, *rest.get(9)?]));
    (rest.len() == 10 + rdlen).then_some((owner, rest))
}

/// The length of the record at the start of `b`, if one is there whole.
fn rr_len(b: &[u8]) -> Option<usize> {
    let n = uncompressed_len(b)?;
    let rdlen = usize::from(u16::from_be_bytes([*b.get(n + 8)?, *b.get(n + 9)?]));
    let len = n + 10 + rdlen;
    (len <= b.len()).then_some(len)
}

/// The order of records in an [`RrList`]: owners in canonical order, then
/// the rest of the record byte by byte. Two records equal in it are the
/// same record to a secondary (owners compare without case).
pub fn cmp_rr(a: &[u8], b: &[u8]) -> Ordering {
    let (oa, ra) = split_rr(a).unwrap_or((a, &[]));
    let (ob, rb) = split_rr(b).unwrap_or((b, &[]));
    cmp_names(oa, ob).then_with(|| ra.cmp(rb))
}

impl RrList {
    /// Appends the record of `owner` whose type, class, TTL, RDLENGTH and
    /// RDATA are `rest`.
    pub fn push(&mut self, owner: &[u8], rest: &[u8]) {
        self.bytes.extend_from_slice(owner);
        self.bytes.extend_from_slice(rest);
        self.count += 1;
    }

    /// Appends a whole record.
    pub fn push_rr(&mut self, rr: &[u8]) {
        self.bytes.extend_from_slice(rr);
        self.count += 1;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The record starting at byte `pos` and the position after it.
    pub fn rr_at(&self, pos: usize) -> Option<(&[u8], usize)> {
        let rest = self.bytes.get(pos..)?;
        let len = rr_len(rest)?;
        Some((rest.get(..len)?, pos + len))
    }

    /// The same records in [`cmp_rr`] order.
    pub fn sorted(&self) -> RrList {
        let mut rrs: Vec<&[u8]> = self.iter().collect();
        rrs.sort_by(|a, b| cmp_rr(a, b));
        let mut out = RrList::default();
        for rr in rrs {
            out.push_rr(rr);
        }
        out
    }

    /// Every record, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || {
            let (rr, next) = self.rr_at(pos)?;
            pos = next;
            Some(rr)
        })
    }
}

/// The records of `a` not in `b`, both in [`cmp_rr`] order.
pub fn minus(a: &RrList, b: &RrList) -> RrList {
    let mut out = RrList::default();
    let mut theirs = b.iter().peekable();
    for x in a.iter() {
        while theirs.next_if(|y| cmp_rr(y, x) == Ordering::Less).is_some() {}
        if theirs
            .peek()
            .is_none_or(|y| cmp_rr(y, x) != Ordering::Equal)
        {
            out.push_rr(x);
        }
    }
    out
}

/// The records of `a` and `b` (which share none) merged, in [`cmp_rr`] order.
pub fn merge(a: &RrList, b: &RrList) -> RrList {
    let mut out = RrList::default();
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let next = match (x.peek(), y.peek()) {
            (Some(p), Some(q)) if cmp_rr(p, q) != Ordering::Greater => x.next(),
            (Some(_), None) => x.next(),
            (_, Some(_)) => y.next(),
            (None, None) => break,
        };
        if let Some(rr) = next {
            out.push_rr(rr);
        }
    }
    out
}

/// Records for the tests of this file and of the IXFR journal.
#[cfg(test)]
pub(crate) mod testing {
    use super::RrList;
    use crate::dns::fixtures::wire_name as wire;

    /// An A record of `owner` (192.0.2.`last`).
    pub(crate) fn rr(owner: &str, last: u8) -> Vec<u8> {
        let mut b = wire(owner);
        b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, last]);
        b
    }

    /// `rrs` as a list in [`cmp_rr`](super::cmp_rr) order.
    pub(crate) fn list(rrs: &[Vec<u8>]) -> RrList {
        let mut out = RrList::default();
        for r in rrs {
            out.push_rr(r);
        }
        out.sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{list, rr};
    use super::*;
    use crate::dns::fixtures::wire_name as wire;

    #[test]
    fn records_split_and_sort_by_owner_then_data() {
        let a = rr("a.test", 1);
        let (owner, rest) = split_rr(&a).unwrap();
        assert_eq!(owner, wire("a.test"));
        assert_eq!(rest.len(), 14);
        assert_eq!(split_rr(&a[..a.len() - 1]), None, "cut short");
        assert_eq!(cmp_rr(&rr("A.test", 1), &rr("a.test", 1)), Ordering::Equal);
        assert_eq!(cmp_rr(&rr("a.test", 2), &rr("b.test", 1)), Ordering::Less);
        assert_eq!(cmp_rr(&rr("z.test", 1), &rr("a.z.test", 1)), Ordering::Less);
        let l = list(&[rr("b.test", 1), rr("a.test", 1)]);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![&rr("a.test", 1)[..], &rr("b.test", 1)[..]]
        );
    }
}

//! Canonical DNS name order (RFC 4034 §6.1) and the zone's NSEC owners kept
//! in it, so the NSEC that covers a name absent from the zone is found by a
//! binary search (its predecessor, wrapping around to the last owner).
use std::cmp::Ordering;
use std::sync::Arc;

use super::store::{Entry, Store};
use crate::ts::wire::NAME_MAX;

/// NSEC's type code.
const NSEC: u16 = 47;

/// The offsets of each label of the uncompressed wire name `name` (the root
/// label not counted), and how many there are. A malformed name ends early.
fn label_starts(name: &[u8], starts: &mut [u8; NAME_MAX / 2 + 1]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 || len > 63 || n == starts.len() {
            break;
        }
        starts[n] = u8::try_from(pos).unwrap_or(u8::MAX);
        n += 1;
        pos += 1 + usize::from(len);
    }
    n
}

/// The label at `start` in `name`, without its length byte.
fn label(name: &[u8], start: u8) -> &[u8] {
    let at = usize::from(start);
    let len = usize::from(name.get(at).copied().unwrap_or(0));
    name.get(at + 1..at + 1 + len).unwrap_or_default()
}

/// Compares two uncompressed wire names in canonical order (RFC 4034 §6.1):
/// label by label from the root, each label as lower-cased octets, a name
/// sorting before the names below it.
pub(super) fn cmp_names(a: &[u8], b: &[u8]) -> Ordering {
    let (mut sa, mut sb) = ([0u8; NAME_MAX / 2 + 1], [0u8; NAME_MAX / 2 + 1]);
    let (na, nb) = (label_starts(a, &mut sa), label_starts(b, &mut sb));
    for i in 1..=na.min(nb) {
        let (la, lb) = (label(a, sa[na - i]), label(b, sb[nb - i]));
        let ord = la
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(lb.iter().map(u8::to_ascii_lowercase));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// The arena offsets of the entries owning an NSEC RRset, in canonical order.
pub(super) fn nsec_order(store: &Store) -> Arc<[u32]> {
    let mut owners: Vec<u32> = Vec::new();
    let mut off = 0;
    while let Some((e, next)) = Entry::at(&store.arena, off) {
        if e.set(NSEC).is_some()
            && let Ok(at) = u32::try_from(off)
        {
            owners.push(at);
        }
        off = next;
    }
    let owner = |at: &u32| Entry::at(&store.arena, *at as usize).map_or(&[][..], |(e, _)| e.owner);
    owners.sort_unstable_by(|a, b| cmp_names(owner(a), owner(b)));
    owners.into()
}

/// The entry of `order` whose owner is `name` or, when none is, the one
/// before `name` in canonical order (the last one for a name before the
/// first): the NSEC that matches or covers `name` in a closed chain.
pub(super) fn at_or_before<'s>(store: &'s Store, order: &[u32], name: &[u8]) -> Option<Entry<'s>> {
    let owner = |at: u32| Entry::at(&store.arena, at as usize).map(|(e, _)| e);
    let after = order.partition_point(|&at| {
        owner(at).is_some_and(|e| cmp_names(e.owner, name) != Ordering::Greater)
    });
    let i = after
        .checked_sub(1)
        .or_else(|| order.len().checked_sub(1))?;
    owner(*order.get(i)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for l in s.split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn names_sort_as_rfc_4034_lists_them() {
        // RFC 4034 §6.1's example, in its order; \001 and \200 as bytes.
        let mut names: Vec<Vec<u8>> = ["example", "a.example", "yljkjljk.a.example"]
            .iter()
            .map(|s| wire(s))
            .collect();
        names.push(vec![
            1, b'Z', 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            4, b'z', b'A', b'B', b'C', 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(wire("z.example"));
        names.push(vec![
            1, 1, 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            1, b'*', 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            1, 0x80, 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        for pair in names.windows(2) {
            assert_eq!(cmp_names(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(cmp_names(&pair[1], &pair[0]), Ordering::Greater, "{pair:?}");
        }
        assert_eq!(
            cmp_names(&wire("A.Example"), &wire("a.example")),
            Ordering::Equal
        );
    }
}

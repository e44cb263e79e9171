//! The zone's NSEC owners kept in canonical order (RFC 4034 §6.1), so the
//! NSEC that covers a name absent from the zone is found by a binary search
//! (its predecessor, wrapping around to the last owner).
use std::cmp::Ordering;
use std::sync::Arc;

use super::rtype::NSEC;
use super::store::{NameEntry, Store};
use crate::ts::wire::cmp_names;

/// The arena offsets of the entries owning an NSEC RRset, in canonical order
/// (for an unsigned zone, one empty list shared by all: no allocation a zone).
pub(super) fn nsec_order(store: &Store) -> Arc<[u32]> {
    let mut owners: Vec<u32> = Vec::new();
    let mut off = 0;
    while let Some((e, next)) = NameEntry::at(store.arena(), off) {
        if e.set(NSEC).is_some()
            && let Ok(at) = u32::try_from(off)
        {
            owners.push(at);
        }
        off = next;
    }
    let owner =
        |at: &u32| NameEntry::at(store.arena(), *at as usize).map_or(&[][..], |(e, _)| e.owner);
    if owners.is_empty() {
        return no_nsec();
    }
    owners.sort_unstable_by(|a, b| cmp_names(owner(a), owner(b)));
    owners.into()
}

/// The empty order of a zone with no NSEC, one list shared by all (a
/// builder that saw no NSEC record takes it without walking its arena).
pub(super) fn no_nsec() -> Arc<[u32]> {
    static NONE: std::sync::OnceLock<Arc<[u32]>> = std::sync::OnceLock::new();
    Arc::clone(NONE.get_or_init(|| Arc::from(Vec::new())))
}

/// The entry of `order` whose owner is `name` or, when none is, the one
/// before `name` in canonical order (the last one for a name before the
/// first): the NSEC that matches or covers `name` in a closed chain.
pub(super) fn at_or_before<'s>(
    store: &'s Store,
    order: &[u32],
    name: &[u8],
) -> Option<NameEntry<'s>> {
    let owner = |at: u32| NameEntry::at(store.arena(), at as usize).map(|(e, _)| e);
    let after = order.partition_point(|&at| {
        owner(at).is_some_and(|e| cmp_names(e.owner, name) != Ordering::Greater)
    });
    let i = after
        .checked_sub(1)
        .or_else(|| order.len().checked_sub(1))?;
    owner(*order.get(i)?)
}

//! Per-client fairness of the in-flight bound (`max_inflight`): one client
//! cannot take every place and leave the others SERVFAIL.
//!
//! Clients are grouped as the rate limiter groups them
//! ([`crate::guard::rate::rate_key`]: an IPv4 address alone, an IPv6 address by
//! its `rate_limit_v6_prefix`). While fewer than half the places are taken
//! the bound is not contended and every query is admitted up to it, as
//! before. From half on, a group may hold at most an equal share of
//! seven eighths of the places ([`shared`]): `shared / (g + 1)` where `g` is the number of
//! *other* groups holding places now, so a lone client can take seven
//! eighths of the bound and the last eighth stays free for a newcomer; each
//! group that arrives shrinks the shares (a group already over its new
//! share gets no new place until its queries end, by their deadline at the
//! latest). A client flooding names the backends never answer thus holds
//! its share and gets SERVFAIL past it, while a client under its share is
//! admitted ([`admit`], pure). A flood from many addresses (each under its
//! share) can still fill the bound: that is the rate limiter's case, not
//! this one's.
//!
//! [`Holders`] counts each group's places: for one UDP worker of the LS's
//! fast path (its bound is its split of `max_inflight`), and for the server
//! layer's shared bound of the deferred TCP, DoT and DoH queries
//! (`crate::server`'s `Places`); it allocates only for a group it has not
//! seen hold a place since it was last empty (bounded by the places).
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use super::keyed_hash::KeyedState;

/// The places of `max` the groups share once the bound is contended: seven
/// eighths; the last eighth is kept for a group that holds none.
pub const fn shared(max: usize) -> usize {
    max - max / 8
}

/// Whether a query of a group holding `mine` places may take one more,
/// with `held` of `max` taken in all and `others` other groups holding at
/// least one: always below half the bound, never at it, and in between
/// only while the group holds less than its share.
pub fn admit(held: usize, max: usize, mine: usize, others: usize) -> bool {
    if held >= max {
        return false;
    }
    if held < max / 2 {
        return true;
    }
    mine < share(max, others)
}

/// [`admit`] for a bound whose places are held long (connections: an idle
/// one keeps its place until the idle timeout): in the last eighth, kept for
/// groups that hold none, a group takes one place at most. Without it a second
/// flooding group would take the newcomers' room as the first took the rest,
/// and two sources would shut the bound for everyone; with it that takes a
/// flood from as many sources as the eighth has places.
pub fn admit_held_long(held: usize, max: usize, mine: usize, others: usize) -> bool {
    admit(held, max, mine, others) && (held < shared(max) || mine == 0)
}

/// A group's share of `max` places with `others` other groups holding
/// some: at least one place.
pub fn share(max: usize, others: usize) -> usize {
    (shared(max) / others.saturating_add(1)).max(1)
}

/// Places held per client group (one UDP worker's), under a fast keyed
/// hash ([`KeyedState`]: two lookups per forwarded query).
#[derive(Debug, Default)]
pub struct Holders {
    held: HashMap<IpAddr, u32, KeyedState>,
    total: usize,
}

impl Holders {
    /// Places held in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether `group` may take one of `max` places ([`admit`]).
    pub fn admits(&self, group: IpAddr, max: usize) -> bool {
        self.admits_by(group, max, admit)
    }

    /// Whether `group` may take one of `max` places by `policy` ([`admit`]
    /// or [`admit_held_long`]).
    pub fn admits_by(
        &self,
        group: IpAddr,
        max: usize,
        policy: fn(usize, usize, usize, usize) -> bool,
    ) -> bool {
        let mine = self.held.get(&group).copied().unwrap_or(0) as usize;
        let others = self.held.len() - usize::from(mine > 0);
        policy(self.total, max, mine, others)
    }

    /// [`Holders::admits`], and when it does, [`Holders::take`]: whether
    /// `group` took one of `max` places. One lookup of the group, not two.
    pub fn try_take(&mut self, group: IpAddr, max: usize) -> bool {
        let (total, groups) = (self.total, self.held.len());
        match self.held.entry(group) {
            // A group in the table holds at least one place.
            Entry::Occupied(mut e) => {
                if !admit(total, max, *e.get() as usize, groups - 1) {
                    return false;
                }
                *e.get_mut() += 1;
            }
            Entry::Vacant(e) => {
                if !admit(total, max, 0, groups) {
                    return false;
                }
                e.insert(1);
            }
        }
        self.total += 1;
        true
    }

    /// `group` takes one place.
    pub fn take(&mut self, group: IpAddr) {
        *self.held.entry(group).or_insert(0) += 1;
        self.total += 1;
    }

    /// `group` gives one place back.
    pub fn release(&mut self, group: IpAddr) {
        if let Some(n) = self.held.get_mut(&group) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.held.remove(&group);
            }
        }
    }

    /// The places `group` holds.
    pub fn of(&self, group: IpAddr) -> usize {
        self.held.get(&group).copied().unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn below_half_the_bound_everyone_is_admitted_and_never_past_it() {
        // One group holding everything taken so far: still admitted below half.
        assert!(admit(49, 100, 49, 0));
        assert!(admit(0, 1, 0, 0), "a bound of one: the first query goes");
        assert!(!admit(1, 1, 0, 0), "never past the bound");
        assert!(!admit(100, 100, 0, 5), "a newcomer too waits for a place");
    }

    #[test]
    fn a_lone_group_takes_seven_eighths_and_leaves_the_rest_to_newcomers() {
        assert_eq!(share(800, 0), 700);
        assert!(admit(699, 800, 699, 0));
        assert!(!admit(700, 800, 700, 0), "its share is full");
        // A newcomer finds room in the eighth kept free.
        assert!(admit(700, 800, 0, 1));
        // Now two groups: each a share of 350; the first, over it, waits.
        assert_eq!(share(800, 1), 350);
        assert!(!admit(701, 800, 700, 1));
        assert!(admit(701, 800, 1, 1), "the newcomer under its share");
    }

    #[test]
    fn shares_shrink_with_the_groups_but_never_below_one_place() {
        assert_eq!(share(800, 3), 175);
        assert_eq!(share(8, 100), 1);
        assert_eq!(share(1, 0), 1);
        // Many small groups at their one place each: the bound still binds.
        assert!(admit(7, 8, 0, 7));
        assert!(!admit(8, 8, 0, 8));
    }

    /// Places held long: a second flooding group gets one place of the last
    /// eighth, not all of it; each newcomer still gets one.
    #[test]
    fn held_long_a_second_flood_takes_one_place_of_the_newcomers_eighth() {
        let max = 16;
        let mut h = Holders::default();
        let (flood, second) = (ip(2), ip(3));
        while h.admits_by(flood, max, admit_held_long) {
            h.take(flood);
        }
        assert_eq!(h.of(flood), shared(max));
        while h.admits_by(second, max, admit_held_long) {
            h.take(second);
        }
        assert_eq!(h.of(second), 1, "one place of the eighth");
        assert!(h.admits_by(ip(4), max, admit_held_long), "a newcomer");
        h.take(ip(4));
        assert!(
            !h.admits_by(ip(5), max, admit_held_long),
            "the bound is full"
        );
        // Below the eighth, the policy is admit's.
        assert!(admit_held_long(7, 16, 7, 0) && admit_held_long(10, 16, 3, 1));
        assert!(!admit_held_long(16, 16, 0, 5), "never past the bound");
    }

    /// `try_take` decides as `admits` and takes as `take`, step by step
    /// through a bound filling up with groups of every size.
    #[test]
    fn try_take_is_admits_then_take() {
        let max = 16;
        let (mut one, mut two) = (Holders::default(), Holders::default());
        for i in 0..200u8 {
            let group = ip(i % 5 + i % 3);
            let admitted = one.admits(group, max);
            if admitted {
                one.take(group);
            }
            assert_eq!(two.try_take(group, max), admitted, "query {i}");
            if i % 7 == 0 {
                one.release(group);
                two.release(group);
            }
            assert_eq!((two.total(), two.of(group)), (one.total(), one.of(group)));
            assert_eq!(two.held, one.held, "query {i}");
        }
    }

    /// A flood from one group against a trickle from another, by the
    /// counts: the flood is held to its share, the trickle never refused.
    #[test]
    fn a_flooding_group_cannot_starve_another() {
        let max = 64;
        let mut h = Holders::default();
        let (flood, other) = (ip(2), ip(3));
        let mut refused_flood = 0;
        for round in 0..1_000 {
            // The flood's queries never end; it asks ten per round.
            for _ in 0..10 {
                if h.admits(flood, max) {
                    h.take(flood);
                } else {
                    refused_flood += 1;
                }
            }
            // The other asks one, answered by the next round.
            assert!(h.admits(other, max), "round {round}: the other refused");
            h.take(other);
            h.release(other);
        }
        assert_eq!(h.of(flood), shared(max));
        assert_eq!(h.total(), shared(max));
        assert_eq!(refused_flood, 10_000 - shared(max));
        // The flood's queries end: its places come back, its group is forgotten.
        for _ in 0..shared(max) {
            h.release(flood);
        }
        assert_eq!((h.total(), h.held.len()), (0, 0));
        // Releasing what is not held changes nothing.
        h.release(flood);
        assert_eq!(h.total(), 0);
    }
}

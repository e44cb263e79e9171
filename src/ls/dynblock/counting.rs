//! Counting at the door, with no lock shared between workers: what a query
//! and an answer add to one worker's tables ([`CountShard`]), the counts a fast-
//! path worker owns ([`WorkerCounts`]) and hands in once a second, and the
//! merge of a worker's second into the counts the tick judges over the
//! rules' windows ([`merge`], pure).
//!
//! A [`CountShard`] holds one worker's counts since it last handed them in:
//! client groups (one counter per rule that counts clients, plus the
//! queries), names for `name-rate` rules, and for `dnslb top` query names,
//! types and rcodes; all in bounded tables ([`super::table`]). The UDP
//! fast path's workers each own one ([`WorkerCounts`]: no lock at all);
//! the async path's runtime threads count into shards of their own behind
//! a mutex only that thread and the tick take. [`merge`] adds a shard into
//! the [`Window`] (the rules' windows so far, bounded the same way, weights
//! carried over so the heavy keys stay) and into the second's summary for
//! `dnslb top`, and leaves the shard empty, its room kept for reuse.
use std::collections::HashMap;
use std::net::IpAddr;

use super::rules::{Rules, registered};
use super::table::{CountTable, DynName, label_starts};
use crate::config::DynKind;

/// Counting shards (threads share them round-robin).
pub const SHARDS: usize = 8;
/// Sets of a shard's client table.
pub const CLIENT_SETS: usize = 1024;
/// Ways of a shard's client table: [`CLIENT_SETS`] × this client groups per shard.
pub const CLIENT_WAYS: usize = 8;
/// Sets of a shard's `name-rate` table (allocated only with such rules).
pub const NAME_SETS: usize = 512;
/// Ways of a shard's `name-rate` table.
pub const NAME_WAYS: usize = 8;
/// Sets of a shard's table of query names (`dnslb top`).
pub const QNAME_SETS: usize = 256;
/// Ways of the query-name table.
pub const QNAME_WAYS: usize = 4;
/// How many shards' worth of keys the [`Window`] holds.
pub const WINDOW_SHARDS: usize = 8;

/// One worker's counts since it last handed them in.
pub(super) struct CountShard {
    pub(super) generation: u64,
    pub(super) clients: CountTable<IpAddr>,
    pub(super) names: CountTable<DynName>,
    pub(super) qnames: CountTable<DynName>,
    pub(super) qtypes: CountTable<u16>,
    pub(super) rcodes: [u64; 16],
    /// Whether anything was counted since it was last emptied.
    pub(super) used: bool,
}

impl CountShard {
    /// An empty shard laid out for `rules` (nothing allocated before its
    /// first count).
    pub(super) fn new(rules: &Rules) -> Self {
        let name_cols = usize::from(rules.has_names());
        CountShard {
            generation: rules.generation,
            clients: CountTable::new(CLIENT_SETS, CLIENT_WAYS, rules.cols),
            names: CountTable::new(NAME_SETS, NAME_WAYS, name_cols),
            qnames: CountTable::new(QNAME_SETS, QNAME_WAYS, 1),
            qtypes: CountTable::new(16, 4, 1),
            rcodes: [0; 16],
            used: false,
        }
    }

    /// Counts a client query from group `group` for `qname` (wire form;
    /// bytes past the name ignored) of type `qtype`.
    pub(super) fn on_query(&mut self, rules: &Rules, group: IpAddr, qname: &[u8], qtype: u16) {
        self.used = true;
        if let Some(row) = self.clients.row_mut(group) {
            if let Some(c) = row.first_mut() {
                *c += 1;
            }
            for r in &rules.list {
                let Some(col) = r.col else { continue };
                let counts = match r.cfg.kind {
                    DynKind::QueryRate => true,
                    DynKind::QtypeRate => r.cfg.qtype.map(u16::from) == Some(qtype),
                    _ => false,
                };
                if counts && let Some(c) = row.get_mut(col) {
                    *c += 1;
                }
            }
        }
        if rules.has_names() {
            let labels = label_starts(qname);
            for (tag, r) in rules.list.iter().enumerate() {
                if let Some((suffix, n)) = &r.suffix
                    && let Some(key) = registered(qname, &labels, suffix, *n, tag)
                {
                    self.names.add(key, 0, 1);
                }
            }
        }
        if let Some(key) = DynName::new(0, qname) {
            self.qnames.add(key, 0, 1);
        }
        self.qtypes.add(qtype, 0, 1);
    }

    /// Counts an answer to client group `group`: its rcode and size.
    pub(super) fn on_answer(&mut self, rules: &Rules, group: IpAddr, rcode: u8, bytes: usize) {
        self.used = true;
        if let Some(c) = self.rcodes.get_mut(usize::from(rcode & 15)) {
            *c += 1;
        }
        if !rules.counts_answers() {
            return;
        }
        let Some(row) = self.clients.row_mut(group) else {
            return;
        };
        for r in &rules.list {
            let Some(col) = r.col else { continue };
            let hit = r.cfg.rcode.map(|c| c.code()) == Some(rcode);
            let (add, den) = match r.cfg.kind {
                DynKind::RcodeRate => (u64::from(hit), false),
                DynKind::RcodeRatio => (u64::from(hit), true),
                DynKind::ResponseBytesRate => (u64::try_from(bytes).unwrap_or(u64::MAX), false),
                _ => continue,
            };
            if let Some(c) = row.get_mut(col) {
                *c = c.saturating_add(add);
            }
            if den && let Some(c) = row.get_mut(col + 1) {
                *c += 1;
            }
        }
    }
}

/// The counts of a UDP fast-path worker, owned by it: counted with no lock,
/// handed in ([`super::DynBlocks::hand_in`]) at its first event after each
/// call of the tick, a lock taken once a second.
pub struct WorkerCounts {
    pub(super) shard: CountShard,
    /// The tick's call it last answered.
    pub(super) epoch: u64,
}

/// The counts judged over the rules' windows: every shard merged in, kept
/// from tick to tick until a rule's window rolls (bounded as a shard is,
/// [`WINDOW_SHARDS`] times larger).
pub(super) struct Window {
    pub(super) generation: u64,
    pub(super) clients: CountTable<IpAddr>,
    pub(super) names: CountTable<DynName>,
}

impl Window {
    pub(super) fn new(rules: &Rules) -> Self {
        Window {
            generation: rules.generation,
            clients: CountTable::new(CLIENT_SETS * WINDOW_SHARDS, CLIENT_WAYS, rules.cols),
            names: CountTable::new(
                NAME_SETS * WINDOW_SHARDS,
                NAME_WAYS,
                usize::from(rules.has_names()),
            ),
        }
    }
}

/// One second's counts for `dnslb top`, over every shard.
#[derive(Default)]
pub(super) struct SecondCounts {
    pub(super) qnames: HashMap<DynName, u64>,
    pub(super) qtypes: HashMap<u16, u64>,
    pub(super) rcodes: [u64; 16],
}

impl SecondCounts {
    pub(super) fn clear(&mut self) {
        self.qnames.clear();
        self.qtypes.clear();
        self.rcodes = [0; 16];
    }
}

/// Adds `shard`'s counts into `window` (client rows and names, each key's
/// weight carried over) and `second` (query names, types, rcodes), and
/// empties `shard`, its room kept. A shard laid out for other rules than
/// `window` is only emptied. Pure: no clock, no lock.
pub(super) fn merge(window: &mut Window, second: &mut SecondCounts, shard: &mut CountShard) {
    if shard.generation == window.generation {
        shard
            .clients
            .take_each(|k, weight, row| window.clients.add_row(k, weight, row));
        shard
            .names
            .take_each(|k, weight, row| window.names.add_row(k, weight, row));
    } else {
        shard.clients.take_each(|_, _, _| {});
        shard.names.take_each(|_, _, _| {});
    }
    shard.qnames.take_each(|k, _, row| {
        *second.qnames.entry(k).or_default() += row.first().copied().unwrap_or(0);
    });
    shard.qtypes.take_each(|k, _, row| {
        *second.qtypes.entry(k).or_default() += row.first().copied().unwrap_or(0);
    });
    for (a, b) in second.rcodes.iter_mut().zip(shard.rcodes.iter_mut()) {
        *a += std::mem::take(b);
    }
    shard.used = false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DynBlockConfig, DynRcode};
    use std::net::Ipv4Addr;

    fn rules(list: Vec<DynBlockConfig>) -> Rules {
        Rules::new(&list, 0, &mut Default::default())
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn window_rows(w: &mut Window) -> Vec<(IpAddr, Vec<u64>)> {
        let mut out = Vec::new();
        w.clients
            .drain_into(|k, row| out.push((k, row.to_vec())), |_| false);
        out.sort();
        out
    }

    /// Two workers' seconds add up key by key in the window, the second's
    /// summary gets every name, type and rcode, and both shards come out
    /// empty; a shard of an older rule set adds nothing to the window.
    #[test]
    fn merging_adds_every_worker_s_counts_and_empties_the_shards() {
        let mut rcode = DynBlockConfig::new("nx", DynKind::RcodeRate, 1.0);
        rcode.rcode = Some(DynRcode::Nxdomain);
        let r = rules(vec![
            DynBlockConfig::new("q", DynKind::QueryRate, 1.0),
            rcode,
        ]);
        let (mut a, mut b) = (CountShard::new(&r), CountShard::new(&r));
        let name = b"\x01a\x00";
        for _ in 0..3 {
            a.on_query(&r, ip(1), name, 1);
        }
        a.on_answer(&r, ip(1), 3, 40);
        b.on_query(&r, ip(1), name, 28);
        b.on_query(&r, ip(2), name, 1);
        b.on_answer(&r, ip(2), 0, 40);
        let mut w = Window::new(&r);
        let mut s = SecondCounts::default();
        merge(&mut w, &mut s, &mut a);
        merge(&mut w, &mut s, &mut b);
        // Columns: queries, `q`'s count, `nx`'s count.
        assert_eq!(
            window_rows(&mut w),
            [(ip(1), vec![4, 4, 1]), (ip(2), vec![1, 1, 0])]
        );
        assert_eq!(s.qnames.values().sum::<u64>(), 5);
        assert_eq!((s.qtypes[&1], s.qtypes[&28]), (4, 1));
        assert_eq!((s.rcodes[0], s.rcodes[3]), (1, 1));
        for shard in [&mut a, &mut b] {
            assert!(!shard.used);
            let mut left = 0;
            shard.clients.drain_into(|_, _| left += 1, |_| false);
            shard.qnames.drain_into(|_, _| left += 1, |_| false);
            assert_eq!(left, 0, "emptied");
            assert!(shard.clients.allocated() > 0, "its room kept");
        }
        let mut old = CountShard::new(&rules(Vec::new()));
        old.generation = 7;
        old.on_query(&r, ip(3), name, 1);
        merge(&mut w, &mut s, &mut old);
        assert!(window_rows(&mut w).iter().all(|(k, _)| *k != ip(3)));
    }

    /// A heavy client's weight goes with its counts: merged second after
    /// second beside a spray of one-query sources, it keeps its place.
    #[test]
    fn a_heavy_key_keeps_its_place_in_the_window_across_merges() {
        let r = rules(vec![DynBlockConfig::new("q", DynKind::QueryRate, 1.0)]);
        let mut w = Window::new(&r);
        let mut s = SecondCounts::default();
        let mut next = 1000u32;
        for _ in 0..5 {
            let mut shard = CountShard::new(&r);
            for _ in 0..100 {
                shard.on_query(&r, ip(1), b"\x00", 1);
            }
            for _ in 0..20_000 {
                shard.on_query(&r, ip(next), b"\x00", 1);
                next += 1;
            }
            merge(&mut w, &mut s, &mut shard);
        }
        let rows = window_rows(&mut w);
        assert!(rows.len() <= w.clients.capacity());
        let heavy = rows.iter().find(|(k, _)| *k == ip(1)).expect("kept");
        assert_eq!(heavy.1[1], 500);
    }
}

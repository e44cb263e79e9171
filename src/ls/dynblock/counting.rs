//! Counting at the door, with no lock shared between workers: what a query
//! and an answer add to one worker's tables ([`CountShard`]), the counts a fast-
//! path worker owns ([`WorkerCounts`]) and hands in once a second, and the
//! merge of a worker's second into the counts the tick judges over the
//! rules' windows ([`merge`], pure).
//!
//! A [`CountShard`] holds one worker's counts since it last handed them in:
//! client groups (one counter per rule that counts clients, plus the
//! queries) when a rule counts clients, names when a `name-rate` rule is
//! configured: nothing without rules (`dnslb top` reads the rings of
//! [`super::recent`]); all in bounded tables ([`super::table`]). The UDP
//! fast path's workers each own one ([`WorkerCounts`]: no lock at all);
//! the async path's runtime threads count into shards of their own behind
//! a mutex only that thread and the tick take. [`merge`] adds a shard into
//! the [`Window`] (the rules' windows so far, bounded the same way, weights
//! carried over so the heavy keys stay), and leaves the shard empty, its
//! room kept for reuse.
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::recent::{Recent, RecentStage};
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
/// How many shards' worth of keys the [`Window`] holds.
pub const WINDOW_SHARDS: usize = 8;

/// One worker's counts since it last handed them in.
pub(super) struct CountShard {
    pub(super) generation: u64,
    pub(super) clients: CountTable<IpAddr>,
    pub(super) names: CountTable<DynName>,
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
            used: false,
        }
    }

    /// Counts a client query from group `group` for `qname` (wire form;
    /// bytes past the name ignored) of type `qtype`, for the rules that
    /// count clients or names (none: nothing done).
    pub(super) fn on_query(&mut self, rules: &Rules, group: IpAddr, qname: &[u8], qtype: u16) {
        if rules.list.is_empty() {
            return;
        }
        self.used = true;
        if rules.counts_clients()
            && let Some(row) = self.clients.row_mut(group)
        {
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
    }

    /// Counts `n` queries of client group `group` dropped before they were
    /// read (by the XDP program, for a block of the rule `blocked_by`): for
    /// the rules that count a client's queries whatever they ask
    /// (`query-rate`), as [`CountShard::on_query`] counts each, and for
    /// `blocked_by` itself when it counts a type (`qtype-rate`: the flood it
    /// blocked is taken to go on as it was). Their names are not known: the
    /// rules by name do not see them.
    pub(super) fn on_dropped(&mut self, rules: &Rules, group: IpAddr, n: u64, blocked_by: &str) {
        if n == 0 || !rules.counts_clients() {
            return;
        }
        let Some(row) = self.clients.row_mut(group) else {
            return;
        };
        self.used = true;
        if let Some(c) = row.first_mut() {
            *c += n;
        }
        let counts = |r: &&super::rules::BlockRule| {
            r.cfg.kind == DynKind::QueryRate
                || (r.cfg.kind == DynKind::QtypeRate && r.cfg.name == blocked_by)
        };
        for r in rules.list.iter().filter(counts) {
            if let Some(c) = r.col.and_then(|col| row.get_mut(col)) {
                *c += n;
            }
        }
    }

    /// Counts an answer to client group `group`: its rcode and size, for
    /// the rules that count answers (none: nothing done).
    pub(super) fn on_answer(&mut self, rules: &Rules, group: IpAddr, rcode: u8, bytes: usize) {
        if !rules.counts_answers() {
            return;
        }
        self.used = true;
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
/// call of the tick, a lock taken once a second; and its ring of recent
/// queries for `dnslb top` (a lock of its own, taken by `top` only to read).
pub struct WorkerCounts {
    pub(super) shard: CountShard,
    /// The tick's call it last answered.
    pub(super) epoch: u64,
    /// The rules it counts for (renewed when their generation changes).
    pub(super) rules: Arc<Rules>,
    pub(super) recent: Arc<Mutex<Recent>>,
    /// What goes into `recent` at the end of the worker's round.
    pub(super) staged: RecentStage,
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

/// Adds `shard`'s counts into `window` (client rows and names, each key's
/// weight carried over) and empties `shard`, its room kept. A shard laid
/// out for other rules than `window` is only emptied. Pure: no clock, no
/// lock.
pub(super) fn merge(window: &mut Window, shard: &mut CountShard) {
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

    /// Two workers' seconds add up key by key in the window, and both
    /// shards come out empty; a shard of an older rule set adds nothing to
    /// the window.
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
        merge(&mut w, &mut a);
        merge(&mut w, &mut b);
        // Columns: queries, `q`'s count, `nx`'s count.
        assert_eq!(
            window_rows(&mut w),
            [(ip(1), vec![4, 4, 1]), (ip(2), vec![1, 1, 0])]
        );
        for shard in [&mut a, &mut b] {
            assert!(!shard.used);
            let mut left = 0;
            shard.clients.drain_into(|_, _| left += 1, |_| false);
            assert_eq!(left, 0, "emptied");
            assert!(shard.clients.allocated() > 0, "its room kept");
        }
        let mut old = CountShard::new(&r);
        old.generation = 7;
        old.on_query(&r, ip(3), name, 1);
        merge(&mut w, &mut old);
        assert!(window_rows(&mut w).iter().all(|(k, _)| *k != ip(3)));
    }

    /// A heavy client's weight goes with its counts: merged second after
    /// second beside a spray of one-query sources, it keeps its place.
    #[test]
    fn a_heavy_key_keeps_its_place_in_the_window_across_merges() {
        let r = rules(vec![DynBlockConfig::new("q", DynKind::QueryRate, 1.0)]);
        let mut w = Window::new(&r);
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
            merge(&mut w, &mut shard);
        }
        let rows = window_rows(&mut w);
        assert!(rows.len() <= w.clients.capacity());
        let heavy = rows.iter().find(|(k, _)| *k == ip(1)).expect("kept");
        assert_eq!(heavy.1[1], 500);
    }
}

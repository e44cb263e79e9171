//! Dynamic blocks (`[[ls.dynamic_block]]`, docs/CONFIG.md (the LS) "Rules and dynamic
//! blocks") and the blocks added by hand (`dnslb blocks add`): counting,
//! deciding, and the set of blocks every worker reads at the door; and the
//! rings of recent queries `dnslb top` reads.
//!
//! # `dnslb top`: rings of recent queries, read when asked
//! Every query goes into its worker's ring ([`recent`]: [`RECENT`] slots,
//! one slot written per query; every answer's rcode tallied per second,
//! the backends' and those the LS made up alike),
//! and nothing else is done per query for `top`: the rings are added up
//! when `dnslb top` asks ([`DynBlocks::top`]). A worker writes its ring
//! under a lock of its own that only `top` takes to read (the worker skips
//! the query rather than wait while `top` reads).
//!
//! # Counting for the rules: per worker, no shared lock
//! With no rule configured nothing more is counted. Otherwise each worker
//! counts what the configured kinds need into tables of its own
//! ([`counting`]): a UDP
//! fast-path worker owns its [`WorkerCounts`] (no lock at all) and hands
//! them in at its first event after the tick calls for them (a lock taken
//! once a second; an idle worker wakes at least every 100 ms); the async
//! path's runtime threads count into [`SHARDS`] shards, one per thread
//! round-robin, behind a mutex only that thread and the tick take. A
//! shard is bounded tables ([`table`]): client groups ([`CLIENT_SETS`] ×
//! [`CLIENT_WAYS`], one counter per rule that counts clients, plus the
//! second's queries) when a rule counts clients, names for `name-rate`
//! rules ([`NAME_SETS`] × [`NAME_WAYS`]). A full set gives the place of its
//! lightest key to the newcomer, whose counts start at zero: counts are
//! lower bounds, never inherited, so forged sources can neither grow
//! memory nor push anyone over a threshold it did not cross itself.
//! Clients are grouped as the rate limit groups them (IPv4 /32, IPv6 by
//! `rate_limit_v6_prefix`, /64 by default).
//!
//! # Deciding: one tick a second
//! The LS's maintenance task calls for the workers' counts
//! ([`DynBlocks::call_in`]) and a moment later ticks ([`DynBlocks::tick`];
//! tests tick with a made-up clock). The tick ([`tick`]) merges every
//! shard handed in into the counts over the rules' windows (bounded as a
//! shard is, [`counting::WINDOW_SHARDS`] times larger), judges each rule
//! over its window so far (a tumbling window of `window_s`: a key is over
//! once its count reaches `threshold × window_s`, or for `rcode-ratio`
//! once it has `min_responses` answers and the share reaches
//! `threshold`), blocks (or renews) the keys over it, logs those over
//! `warn_threshold` (within a log budget), lifts the blocks whose
//! `block_s` ran out, and publishes a new immutable [`BlockSet`]
//! (`ArcSwap`) that every worker reads at the door ([`DynBlocks::check`],
//! before the query rules): once made, a block is in force on every worker
//! at once. Excluded networks are never blocked. At most [`MAX_BLOCKS`]
//! blocks (and [`MAX_MANUAL`] of them by hand, [`manual`]) are in force:
//! past that a new one is not made, and is counted (`table_full`); blocks
//! in force are never pushed out by newcomers.
use std::net::IpAddr;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use tracing::info;

use crate::config::{DynAction, LsConfig};
use crate::guard::rate::rate_key;

mod counting;
mod manual;
mod recent;
mod rules;
mod set;
mod table;
mod tick;
mod top;

pub use counting::{
    CLIENT_SETS, CLIENT_WAYS, NAME_SETS, NAME_WAYS, SHARDS, WINDOW_SHARDS, WorkerCounts,
};
pub use manual::{BlockInfo, ManualError, ManualTarget};
pub use recent::{RECENT, TOP_SECS};
pub use set::{Block, BlockKey, BlockSet, MANUAL, MAX_BLOCKS, MAX_MANUAL, RuleStats};
pub use tick::{DynEvent, LOG_INTERVAL, LOG_LINES};
pub use top::{TOP_KEEP, TopEntry, TopReport};

use counting::CountShard;
use recent::{Recent, RecentStage};
use rules::{Rules, StatsBook};
use tick::Maint;

/// A query a block in force stops: how, and whether by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockStop {
    /// The block's action.
    pub action: DynAction,
    /// Added by hand (`dnslb blocks add`), not by a rule.
    pub by_hand: bool,
}

/// Shards handed in and waiting for the tick, at most this many (one per
/// worker a second: more means the tick is not running, and the newest
/// counts are dropped rather than kept without bound).
const INBOX_MAX: usize = 256;

/// Rings of recent queries kept at most (the async path's and one per
/// fast-path worker; a ring whose worker is gone is dropped when a new one
/// comes).
const RINGS_MAX: usize = 256;

/// The dynamic blocks of one LS; see the module's docs.
pub struct DynBlocks {
    rules: ArcSwap<Rules>,
    /// `rules`' generation (a fast-path worker's check for new rules).
    generation: AtomicU64,
    v6_prefix: AtomicU8,
    /// The async path's shards.
    shards: Box<[Mutex<CountShard>]>,
    /// The async path's rings of recent queries, one per shard.
    recents: Box<[Arc<Mutex<Recent>>]>,
    /// Every ring of recent queries (the async path's and the workers').
    rings: Mutex<Vec<Arc<Mutex<Recent>>>>,
    /// How many times the tick has called for the workers' counts.
    epoch: AtomicU64,
    /// The fast-path workers' shards handed in, for the tick.
    inbox: Mutex<Vec<CountShard>>,
    /// Emptied shards, their room kept, for the workers to count into next.
    spares: Mutex<Vec<CountShard>>,
    published: ArcSwap<BlockSet>,
    /// Whether the set published last holds a block: read first by every
    /// query's [`DynBlocks::stop`], which loads the set only then (a load
    /// of the `ArcSwap` cost ~100 instructions a query with no block).
    in_force: AtomicBool,
    maint: Mutex<Maint>,
    /// Blocks not made because the table was full.
    pub table_full: AtomicU64,
}

impl std::fmt::Debug for DynBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynBlocks")
            .field("rules", &self.rules.load().list.len())
            .finish_non_exhaustive()
    }
}

/// The async path's shard of the calling thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Relaxed);
    }
    MINE.with(|i| *i) % SHARDS
}

/// Moves a worker's staged queries and answers into its ring, under one
/// lock; while `dnslb top` holds the ring they wait for the next time
/// (a full stage takes no more meanwhile).
fn unstage(mine: &mut WorkerCounts) {
    if let Ok(mut ring) = mine.recent.try_lock() {
        ring.absorb(&mut mine.staged);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DynBlocks {
    /// The dynamic blocks of `c`'s `[[ls.dynamic_block]]` rules, none in force.
    pub fn new(c: &LsConfig, now: Instant) -> Self {
        let mut stats = StatsBook::default();
        let rules = Rules::new(&c.dynamic_block, 0, &mut stats);
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(CountShard::new(&rules)))
            .collect();
        let maint = Maint::new(&rules, stats, now);
        let recents: Box<[_]> = (0..SHARDS)
            .map(|_| Arc::new(Mutex::new(Recent::new())))
            .collect();
        DynBlocks {
            generation: AtomicU64::new(rules.generation),
            rules: ArcSwap::from_pointee(rules),
            v6_prefix: AtomicU8::new(c.rate_limit_v6_prefix),
            shards,
            rings: Mutex::new(recents.to_vec()),
            recents,
            epoch: AtomicU64::new(0),
            inbox: Mutex::new(Vec::new()),
            spares: Mutex::new(Vec::new()),
            published: ArcSwap::from_pointee(BlockSet::default()),
            in_force: AtomicBool::new(false),
            maint: Mutex::new(maint),
            table_full: AtomicU64::new(0),
        }
    }

    /// Takes `c`'s rules: counting starts over for changed rules; the
    /// blocks in force stay until they run out.
    pub fn reload(&self, c: &LsConfig) {
        self.v6_prefix.store(c.rate_limit_v6_prefix, Relaxed);
        let old = self.rules.load_full();
        let same = old.list.len() == c.dynamic_block.len()
            && old
                .list
                .iter()
                .zip(&c.dynamic_block)
                .all(|(r, n)| r.cfg == *n);
        if same {
            return;
        }
        let mut m = lock(&self.maint);
        let rules = Rules::new(&c.dynamic_block, old.generation + 1, &mut m.stats);
        m.restart(&rules, Instant::now());
        for s in self.shards.iter() {
            *lock(s) = CountShard::new(&rules);
        }
        lock(&self.inbox).clear();
        lock(&self.spares).clear();
        let generation = rules.generation;
        self.rules.store(Arc::new(rules));
        self.generation.store(generation, Relaxed);
    }

    /// The client group of `ip`.
    fn group(&self, ip: IpAddr) -> IpAddr {
        rate_key(ip, self.v6_prefix.load(Relaxed))
    }

    /// Counts a client query from `ip` for `qname` (wire form; bytes past
    /// the name ignored) of type `qtype`, in the calling thread's shard
    /// (the async path).
    pub fn on_query(&self, ip: IpAddr, qname: &[u8], qtype: u16) {
        let i = shard_index();
        let group = self.group(ip);
        if let Some(ring) = self.recents.get(i) {
            lock(ring).on_query(self.epoch.load(Relaxed), group, qname, qtype);
        }
        let rules = self.rules.load();
        if rules.list.is_empty() {
            return;
        }
        let mut s = lock(&self.shards[i]);
        if s.generation == rules.generation {
            s.on_query(&rules, group, qname, qtype);
        }
    }

    /// The networks the XDP program may drop for the blocks in force
    /// ([`BlockSet::drop_nets`]).
    pub fn drop_nets(&self) -> Vec<ipnet::IpNet> {
        if !self.in_force.load(Acquire) {
            return Vec::new();
        }
        self.published
            .load()
            .drop_nets(self.v6_prefix.load(Relaxed))
    }

    /// Counts `n` queries of the clients of `net` that the XDP program
    /// dropped for a block: as stopped by the block holding them (its
    /// `queries_blocked`), and, when that block holds one client group
    /// (an address, an IPv6 prefix), as that client's queries for the rules
    /// that count them, as the door counts every query before it stops one
    /// (so a block is renewed while its flood goes on). The drops of a
    /// network blocked by hand are the block's only: which of its addresses
    /// sent them is not known. `net` is a network of the program's blocked
    /// tries.
    pub fn on_dropped(&self, net: ipnet::IpNet, n: u64) {
        if n == 0 || !self.in_force.load(Acquire) {
            return;
        }
        let ip = net.network();
        let group = self.group(ip);
        let set = self.published.load();
        let Some(block) = set.find(group, rate_key(ip, 128), &[]) else {
            return;
        };
        block.hits(n);
        if block.key != set::BlockKey::Client(group) {
            return;
        }
        let rules = self.rules.load();
        let mut s = lock(&self.shards[shard_index()]);
        if s.generation == rules.generation {
            s.on_dropped(&rules, group, n, &block.stats.rule);
        }
    }

    /// Counts an answer to client `ip`: its rcode and size (the async path).
    pub fn on_answer(&self, ip: IpAddr, rcode: u8, bytes: usize) {
        let i = shard_index();
        if let Some(ring) = self.recents.get(i) {
            lock(ring).on_answer(self.epoch.load(Relaxed), rcode);
        }
        let rules = self.rules.load();
        if !rules.counts_answers() {
            return;
        }
        let mut s = lock(&self.shards[i]);
        if s.generation == rules.generation {
            s.on_answer(&rules, self.group(ip), rcode, bytes);
        }
    }

    /// Tallies for `dnslb top` an answer with `rcode` the LS made up itself
    /// (at the door, at the deadline, or shed): the async path's ring only,
    /// never the rules' counts (the rcode rules count the backends' answers).
    pub fn on_made_up(&self, rcode: u8) {
        if let Some(ring) = self.recents.get(shard_index()) {
            lock(ring).on_answer(self.epoch.load(Relaxed), rcode);
        }
    }

    /// Empty counts for a fast-path worker to own, and its ring of recent
    /// queries (allocated whole here).
    pub fn worker_counts(&self) -> WorkerCounts {
        let recent = Arc::new(Mutex::new(Recent::new()));
        let mut rings = lock(&self.rings);
        // The rings of workers gone (only this list holds them) go first.
        rings.retain(|r| Arc::strong_count(r) > 1);
        if rings.len() < RINGS_MAX {
            rings.push(recent.clone());
        }
        let rules = self.rules.load_full();
        WorkerCounts {
            shard: CountShard::new(&rules),
            epoch: self.epoch.load(Relaxed),
            rules,
            recent,
            staged: RecentStage::new(),
        }
    }

    /// A fast-path worker's rules, renewed if a reload changed them, and
    /// its shard laid out for them.
    fn renew_rules(&self, mine: &mut WorkerCounts) {
        if mine.rules.generation != self.generation.load(Relaxed) {
            mine.rules = self.rules.load_full();
        }
        if mine.shard.generation != mine.rules.generation {
            mine.shard = CountShard::new(&mine.rules);
        }
    }

    /// [`DynBlocks::on_query`] into a fast-path worker's own counts `mine`:
    /// with no rule, one slot of its ring written (skipped while `dnslb top`
    /// reads the ring).
    pub fn count_query(&self, mine: &mut WorkerCounts, ip: IpAddr, qname: &[u8], qtype: u16) {
        self.hand_in_shard(mine);
        self.renew_rules(mine);
        let group = self.group(ip);
        if mine.staged.on_query(mine.epoch, group, qname, qtype) {
            unstage(mine);
        }
        if !mine.rules.list.is_empty() {
            mine.shard.on_query(&mine.rules, group, qname, qtype);
        }
    }

    /// [`DynBlocks::on_answer`] into a fast-path worker's own counts `mine`.
    pub fn count_answer(&self, mine: &mut WorkerCounts, ip: IpAddr, rcode: u8, bytes: usize) {
        self.hand_in_shard(mine);
        self.renew_rules(mine);
        if mine.staged.on_answer(mine.epoch, rcode) {
            unstage(mine);
        }
        if mine.rules.counts_answers() {
            let group = self.group(ip);
            mine.shard.on_answer(&mine.rules, group, rcode, bytes);
        }
    }

    /// [`DynBlocks::on_made_up`] into a fast-path worker's own ring.
    pub fn count_made_up(&self, mine: &mut WorkerCounts, rcode: u8) {
        self.hand_in_shard(mine);
        if mine.staged.on_answer(mine.epoch, rcode) {
            unstage(mine);
        }
    }

    /// At the end of a worker's round (and at least every 100 ms when
    /// idle): its staged queries and answers moved into its ring, where
    /// `dnslb top` reads them, and its counts handed in for the tick if it
    /// has called for them since the last time (one atomic read otherwise),
    /// the worker going on with an emptied shard (its room kept from a
    /// second before).
    pub fn hand_in(&self, mine: &mut WorkerCounts) {
        if !mine.staged.is_empty() {
            unstage(mine);
        }
        self.hand_in_shard(mine);
    }

    /// [`DynBlocks::hand_in`] of the counts for the tick alone.
    fn hand_in_shard(&self, mine: &mut WorkerCounts) {
        let epoch = self.epoch.load(Relaxed);
        if mine.epoch == epoch {
            return;
        }
        mine.epoch = epoch;
        if !mine.shard.used {
            return;
        }
        let fresh = lock(&self.spares)
            .pop()
            .filter(|s| s.generation == mine.shard.generation)
            .unwrap_or_else(|| CountShard::new(&self.rules.load()));
        let full = std::mem::replace(&mut mine.shard, fresh);
        let mut inbox = lock(&self.inbox);
        if inbox.len() < INBOX_MAX {
            inbox.push(full);
        }
    }

    /// Calls for the fast-path workers' counts: each hands them in at its
    /// next event (within 100 ms when idle), for the tick that follows.
    pub fn call_in(&self) {
        self.epoch.fetch_add(1, Relaxed);
    }

    /// The action for a query from `ip` for `qname` if a block in force
    /// stops it (counted); `None` to let it through. A `truncate` block
    /// stops UDP queries only (`udp`): over TCP the client's address is
    /// proven, and its query passes.
    pub fn check(&self, ip: IpAddr, qname: &[u8], udp: bool) -> Option<DynAction> {
        self.stop(ip, qname, udp).map(|s| s.action)
    }

    /// As [`DynBlocks::check`], saying whether the block was added by hand.
    pub fn stop(&self, ip: IpAddr, qname: &[u8], udp: bool) -> Option<BlockStop> {
        self.stop_unproven(ip, qname, || udp)
    }

    /// As [`DynBlocks::stop`], `unproven` saying (asked only of a
    /// `truncate` block) whether the query came from an address not proven:
    /// over UDP without a valid server cookie (DNS Cookies).
    pub fn stop_unproven(
        &self,
        ip: IpAddr,
        qname: &[u8],
        unproven: impl FnOnce() -> bool,
    ) -> Option<BlockStop> {
        // Set after the set it tells of is published (and published under
        // the maintenance lock): false, the set in force is empty or being
        // replaced this instant, as a load a moment earlier would find it.
        if !self.in_force.load(Acquire) {
            return None;
        }
        let set = self.published.load();
        if set.is_empty() {
            return None;
        }
        // A network blocked by hand is matched against the address as the
        // client's group reads it: an IPv4-mapped one as its IPv4 address.
        let block = set.find(self.group(ip), rate_key(ip, 128), qname)?;
        if block.exempts(ip) {
            return None;
        }
        let action = block.action();
        if action == DynAction::Truncate && !unproven() {
            return None;
        }
        block.hit();
        Some(BlockStop {
            action,
            by_hand: block.stats.rule == set::MANUAL,
        })
    }

    /// The once-a-second maintenance at `now` ([`tick::tick`]): the shards
    /// handed in and the async path's merged, judged, blocks made and
    /// lifted, the set in force published when it changed. The events of
    /// rules with `log = true` (for dnstap).
    pub fn tick(&self, now: Instant) -> Vec<DynEvent> {
        let rules = self.rules.load_full();
        let mut m = lock(&self.maint);
        let mut handed = std::mem::take(&mut *lock(&self.inbox));
        for s in &mut handed {
            tick::merge_in(&mut m, s);
        }
        for s in self.shards.iter() {
            tick::merge_in(&mut m, &mut lock(s));
        }
        m.v6_prefix = self.v6_prefix.load(Relaxed);
        if tick::tick(&mut m, &rules, now, &self.table_full) {
            self.publish(&m);
        }
        let events = std::mem::take(&mut m.events);
        let mut spares = lock(&self.spares);
        for s in handed {
            if spares.len() < INBOX_MAX && s.generation == rules.generation {
                spares.push(s);
            }
        }
        events
    }

    /// Publishes the blocks of `m` to the workers.
    fn publish(&self, m: &Maint) {
        let set = BlockSet::new(m.blocks.values());
        let in_force = !set.is_empty();
        self.published.store(Arc::new(set));
        self.in_force.store(in_force, Release);
    }

    /// Adds a block by hand (or renews one) of `target` for `secs` with
    /// `action`, in force at once.
    ///
    /// # Errors
    /// A duration out of bounds, or the table of blocks full.
    pub fn add_manual(
        &self,
        target: &ManualTarget,
        secs: u64,
        action: DynAction,
        now: Instant,
    ) -> Result<(), ManualError> {
        let key = manual::key_of(target, self.v6_prefix.load(Relaxed));
        let mut m = lock(&self.maint);
        if manual::add(&mut m, key, (secs, action), now, &self.table_full)? {
            self.publish(&m);
        }
        Ok(())
    }

    /// Lifts every block in force (dynamic and by hand), at once: how many.
    pub fn clear(&self) -> usize {
        let mut m = lock(&self.maint);
        let n = m.blocks.len();
        m.blocks.clear();
        m.judged_in.clear();
        self.publish(&m);
        info!(lifted = n, "every block cleared by hand");
        n
    }

    /// The blocks in force at `now`, most queries blocked first.
    pub fn list(&self, now: Instant) -> Vec<BlockInfo> {
        manual::list(&lock(&self.maint), now, self.v6_prefix.load(Relaxed))
    }

    /// The most keys the counting tables hold at once (the async path's
    /// shards and the window's; each fast-path worker owns one shard more,
    /// and up to two wait between ticks), and the room they have taken so
    /// far: the bound (see the module's docs) never grows, whatever the
    /// traffic.
    pub fn footprint(&self) -> (usize, usize) {
        let m = lock(&self.maint);
        let window = (
            m.window.clients.capacity() + m.window.names.capacity(),
            m.window.clients.allocated() + m.window.names.allocated(),
        );
        self.shards.iter().fold(window, |(cap, now), s| {
            let s = lock(s);
            let tables = [
                (s.clients.capacity(), s.clients.allocated()),
                (s.names.capacity(), s.names.allocated()),
            ];
            tables
                .iter()
                .fold((cap, now), |(c, n), (tc, tn)| (c + tc, n + tn))
        })
    }

    /// The counters of every rule and action (`/metrics`).
    pub fn stats(&self) -> Vec<Arc<RuleStats>> {
        lock(&self.maint).stats.0.clone()
    }

    /// Blocks in force now.
    pub fn in_force(&self) -> usize {
        lock(&self.maint).blocks.len()
    }

    /// `dnslb top`: the last `seconds` (the current one included), `n` of
    /// each list, the names cut to their last `labels` labels when asked
    /// (grouped by zone), added up from every worker's ring of recent
    /// queries (each locked while it is read).
    pub fn top(&self, seconds: usize, n: usize, labels: Option<usize>) -> TopReport {
        let rings = lock(&self.rings).clone();
        let guards: Vec<MutexGuard<'_, Recent>> = rings.iter().map(|r| lock(r)).collect();
        let now = self.epoch.load(Relaxed);
        top::report(guards.iter().map(|g| &**g), (now, seconds), (n, labels))
    }
}

#[cfg(test)]
mod tests;

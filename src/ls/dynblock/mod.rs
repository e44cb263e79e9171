//! Dynamic blocks (`[[ls.dynamic_block]]`, SPEC §5 "Rules and dynamic
//! blocks") and the blocks added by hand (`dnslb blocks add`): counting,
//! deciding, and the set of blocks every worker reads at the door; and the
//! per-second summaries `dnslb top` reads.
//!
//! # Counting: per worker, no shared lock
//! Each thread that runs the door (a fast-path worker, a runtime thread of
//! the async path) counts into a shard of its own ([`SHARDS`] of them, one
//! per thread round-robin), behind a mutex only that thread and the
//! once-a-second tick ever take: no two workers wait for each other. A
//! shard is bounded tables ([`table`]): client groups ([`CLIENT_SETS`] ×
//! [`CLIENT_WAYS`], one counter per rule that counts clients, plus the
//! second's queries), names for `name-rate` rules ([`NAME_SETS`] ×
//! [`NAME_WAYS`]), and for `dnslb top` query names ([`QNAME_SETS`] ×
//! [`QNAME_WAYS`]), types and rcodes. A full set gives the place of its
//! lightest key to the newcomer, whose counts start at zero: counts are
//! lower bounds, never inherited, so forged sources can neither grow
//! memory nor push anyone over a threshold it did not cross itself.
//! Clients are grouped as the rate limit groups them (IPv4 /32, IPv6 by
//! `rate_limit_v6_prefix`, /64 by default).
//!
//! # Deciding: one tick a second
//! [`DynBlocks::tick`] (the LS's maintenance task calls it every second;
//! tests call it with a made-up clock) adds up every shard's counts, judges
//! each rule over its window so far (a tumbling window of `window_s`: a
//! key is over once its count reaches `threshold × window_s`, or for
//! `rcode-ratio` once it has `min_responses` answers and the share reaches
//! `threshold`), blocks (or renews) the keys over it, logs those over
//! `warn_threshold` (within a log budget), lifts the blocks whose
//! `block_s` ran out, and publishes a new immutable [`BlockSet`]
//! (`ArcSwap`) that every worker reads at the door ([`DynBlocks::check`]):
//! a block is in force within one tick of its threshold being crossed.
//! Excluded networks are never blocked. At most [`MAX_BLOCKS`] blocks
//! (and [`MAX_MANUAL`] of them by hand) are in force: past that a new one is
//! not made, and is counted (`table_full`); blocks in force are never
//! pushed out by newcomers.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tracing::{info, warn};

use crate::config::{DynAction, DynKind, LsConfig};
use crate::guard::log_budget::{Change, LimitLog};
use crate::guard::rate::rate_key;

mod rules;
mod set;
mod table;
mod top;

pub use set::{Block, BlockKey, BlockSet, RuleStats};
pub use top::{TOP_KEEP, TOP_SECS, TopEntry, TopReport};

use rules::{BlockVerdict, Rules, StatsBook, judge, registered};
use table::{CountTable, DynName, label_starts, wire_text};
use top::{TopRing, heaviest_into};

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
/// Most blocks in force at once.
pub const MAX_BLOCKS: usize = 10_000;
/// Most blocks added by hand in force at once.
pub const MAX_MANUAL: usize = 1024;
/// The interval of the block log's budget.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Block, warning and release lines per [`LOG_INTERVAL`].
pub const LOG_LINES: u64 = 20;
/// The rule name of blocks added by hand.
pub const MANUAL: &str = "manual";

/// One shard's tables.
struct Shard {
    generation: u64,
    clients: CountTable<IpAddr>,
    names: CountTable<DynName>,
    qnames: CountTable<DynName>,
    qtypes: CountTable<u16>,
    rcodes: [u64; 16],
}

impl Shard {
    fn new(rules: &Rules) -> Self {
        let name_cols = usize::from(rules.has_names());
        Shard {
            generation: rules.generation,
            clients: CountTable::new(CLIENT_SETS, CLIENT_WAYS, rules.cols),
            names: CountTable::new(NAME_SETS, NAME_WAYS, name_cols),
            qnames: CountTable::new(QNAME_SETS, QNAME_WAYS, 1),
            qtypes: CountTable::new(16, 4, 1),
            rcodes: [0; 16],
        }
    }
}

/// What the tick keeps between seconds.
struct Maint {
    /// The blocks in force, by key.
    blocks: HashMap<BlockKey, Arc<Block>>,
    /// When each rule's current window began (by rule name).
    windows: HashMap<String, Instant>,
    /// When windows began that have no entry in `windows` yet (start, reload).
    epoch: Instant,
    /// The window in which each dynamic block was made or last renewed: a
    /// block is renewed only by counts of a later window (the counts that
    /// made it stay in their window until it rolls).
    judged_in: HashMap<BlockKey, Instant>,
    /// Keys warned about in each rule's current window (bounded).
    warned: HashMap<String, Vec<String>>,
    top: TopRing,
    stats: StatsBook,
    log: LimitLog,
    /// The tick's working space, kept from tick to tick (allocation-free once warm).
    scratch: Scratch,
}

/// The tick's working space.
#[derive(Default)]
struct Scratch {
    /// Client group → its row in `rows` (the shards' counts added up).
    index: HashMap<IpAddr, usize>,
    rows: Vec<u64>,
    names: HashMap<DynName, u64>,
    qnames: HashMap<DynName, u64>,
    qtypes: HashMap<u16, u64>,
    clients_top: HashMap<IpAddr, u64>,
    rolling: Vec<bool>,
    /// Seconds each rule's window has run.
    spans: Vec<f64>,
    zero_col: Vec<bool>,
    sort_ips: Vec<(IpAddr, u64)>,
    sort_names: Vec<(DynName, u64)>,
    sort_types: Vec<(u16, u64)>,
}

/// A block added by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualTarget {
    /// A network (a bare address is a /32 or /128).
    Net(IpNet),
    /// A name and every name under it.
    Name(hickory_proto::rr::Name),
}

/// One block in force, as `GET /blocks` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockInfo {
    /// The client group, network or name blocked.
    pub target: String,
    /// `client` or `name`.
    pub kind: String,
    /// The rule (`manual` for blocks added by hand).
    pub rule: String,
    /// Why.
    pub reason: String,
    /// Its action.
    pub action: String,
    /// Seconds until it is lifted.
    pub seconds_left: u64,
    /// Queries it stopped.
    pub queries_blocked: u64,
}

/// Why a block could not be added by hand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManualError {
    /// Too many blocks in force.
    #[error("the table of blocks is full ({0} blocks); clear some first")]
    Full(usize),
    /// A duration of zero or past the longest.
    #[error("--for must be in [1, {max}] seconds, got {got}")]
    Duration {
        /// The longest.
        max: u64,
        /// What was asked.
        got: u64,
    },
}

/// The dynamic blocks of one LS; see the module's docs.
pub struct DynBlocks {
    rules: ArcSwap<Rules>,
    v6_prefix: AtomicU8,
    shards: Box<[Mutex<Shard>]>,
    published: ArcSwap<BlockSet>,
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

/// The shard of the calling thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Relaxed);
    }
    MINE.with(|i| *i) % SHARDS
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
            .map(|_| Mutex::new(Shard::new(&rules)))
            .collect();
        DynBlocks {
            rules: ArcSwap::from_pointee(rules),
            v6_prefix: AtomicU8::new(c.rate_limit_v6_prefix),
            shards,
            published: ArcSwap::from_pointee(BlockSet::default()),
            maint: Mutex::new(Maint {
                blocks: HashMap::new(),
                windows: HashMap::new(),
                epoch: now,
                judged_in: HashMap::new(),
                warned: HashMap::new(),
                top: TopRing::new(),
                stats,
                log: LimitLog::new(now, LOG_INTERVAL, LOG_LINES),
                scratch: Scratch::default(),
            }),
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
        m.windows.clear();
        m.epoch = Instant::now();
        m.warned.clear();
        for s in self.shards.iter() {
            *lock(s) = Shard::new(&rules);
        }
        self.rules.store(Arc::new(rules));
    }

    /// The client group of `ip`.
    fn group(&self, ip: IpAddr) -> IpAddr {
        rate_key(ip, self.v6_prefix.load(Relaxed))
    }

    /// Counts a client query from `ip` for `qname` (wire form; bytes past
    /// the name ignored) of type `qtype`, in the calling thread's shard.
    pub fn on_query(&self, ip: IpAddr, qname: &[u8], qtype: u16) {
        let rules = self.rules.load();
        let group = self.group(ip);
        let mut s = lock(&self.shards[shard_index()]);
        if s.generation != rules.generation {
            return;
        }
        if let Some(row) = s.clients.row_mut(group) {
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
                    s.names.add(key, 0, 1);
                }
            }
        }
        if let Some(key) = DynName::new(0, qname) {
            s.qnames.add(key, 0, 1);
        }
        s.qtypes.add(qtype, 0, 1);
    }

    /// Counts an answer to client `ip`: its rcode and size.
    pub fn on_answer(&self, ip: IpAddr, rcode: u8, bytes: usize) {
        let rules = self.rules.load();
        let group = self.group(ip);
        let mut s = lock(&self.shards[shard_index()]);
        if s.generation != rules.generation {
            return;
        }
        if let Some(c) = s.rcodes.get_mut(usize::from(rcode & 15)) {
            *c += 1;
        }
        let answers = rules.list.iter().any(|r| {
            matches!(
                r.cfg.kind,
                DynKind::RcodeRate | DynKind::RcodeRatio | DynKind::ResponseBytesRate
            )
        });
        if !answers {
            return;
        }
        let Some(row) = s.clients.row_mut(group) else {
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

    /// The action for a query from `ip` for `qname` if a block in force
    /// stops it (counted); `None` to let it through. A `truncate` block
    /// stops UDP queries only (`udp`): over TCP the client's address is
    /// proven, and its query passes.
    pub fn check(&self, ip: IpAddr, qname: &[u8], udp: bool) -> Option<DynAction> {
        let set = self.published.load();
        if set.is_empty() {
            return None;
        }
        let block = set.find(self.group(ip), ip, qname)?;
        let action = block.action();
        if action == DynAction::Truncate && !udp {
            return None;
        }
        block.hit();
        Some(action)
    }

    /// The once-a-second maintenance at `now`; see the module's docs. Its
    /// working space is kept from tick to tick: once warm it allocates
    /// only for what it finds (a block made, a line logged).
    pub fn tick(&self, now: Instant) {
        let rules = self.rules.load_full();
        let mut guard = lock(&self.maint);
        let m = &mut *guard;
        let epoch = m.epoch;
        let mut sc = std::mem::take(&mut m.scratch);
        // Which rules' windows end with this tick.
        sc.rolling.clear();
        sc.spans.clear();
        for r in &rules.list {
            if !m.windows.contains_key(&r.cfg.name) {
                m.windows.insert(r.cfg.name.clone(), epoch);
            }
            let start = m.windows.get(&r.cfg.name).copied().unwrap_or(epoch);
            let span = now.saturating_duration_since(start);
            sc.rolling.push(span >= Duration::from_secs(r.cfg.window_s));
            sc.spans.push(span.as_secs_f64());
        }
        sc.zero_col.clear();
        sc.zero_col.resize(rules.cols, false);
        if let Some(z) = sc.zero_col.first_mut() {
            *z = true;
        }
        for (r, &roll) in rules.list.iter().zip(&sc.rolling) {
            if let Some(col) = r.col.filter(|_| roll) {
                let width = if r.cfg.kind == DynKind::RcodeRatio {
                    2
                } else {
                    1
                };
                for c in sc.zero_col.iter_mut().skip(col).take(width) {
                    *c = true;
                }
            }
        }
        // Add up the shards' counts (and zero what this tick ends).
        sc.index.clear();
        sc.rows.clear();
        sc.names.clear();
        sc.qnames.clear();
        sc.qtypes.clear();
        let mut rcodes = [0u64; 16];
        let cols = rules.cols;
        for shard in self.shards.iter() {
            let mut s = lock(shard);
            if s.generation != rules.generation {
                continue;
            }
            let Scratch {
                index,
                rows,
                zero_col,
                names,
                qnames,
                qtypes,
                rolling,
                ..
            } = &mut sc;
            s.clients.drain_into(
                |k, row| {
                    let at = *index.entry(k).or_insert_with(|| {
                        rows.resize(rows.len() + cols, 0);
                        rows.len() / cols.max(1) - 1
                    });
                    let sum = rows.get_mut(at * cols..(at + 1) * cols).unwrap_or_default();
                    for (a, b) in sum.iter_mut().zip(row) {
                        *a = a.saturating_add(*b);
                    }
                },
                |col| zero_col.get(col).copied().unwrap_or(false),
            );
            // A name's count starts over when its rule's window rolls.
            s.names.drain_into(
                |k, row| {
                    *names.entry(k).or_default() += row.first().copied().unwrap_or(0);
                },
                |_| false,
            );
            if rolling.iter().any(|&r| r) {
                s.names
                    .zero_where(|k| rolling.get(usize::from(k.tag())).copied().unwrap_or(true));
            }
            s.qnames.drain_into(
                |k, row| *qnames.entry(k).or_default() += row.first().copied().unwrap_or(0),
                |_| true,
            );
            s.qtypes.drain_into(
                |k, row| *qtypes.entry(k).or_default() += row.first().copied().unwrap_or(0),
                |_| true,
            );
            for (a, b) in rcodes.iter_mut().zip(s.rcodes.iter_mut()) {
                *a += std::mem::take(b);
            }
        }
        // Judge.
        let mut over: Vec<(usize, BlockKey, String)> = Vec::new();
        let mut warn_of: Vec<(usize, String, String)> = Vec::new();
        for (ip, &at) in &sc.index {
            let row = sc.rows.get(at * cols..(at + 1) * cols).unwrap_or_default();
            for (i, r) in rules.list.iter().enumerate() {
                let Some(col) = r.col else { continue };
                if r.cfg.exclude.iter().any(|n| n.contains(ip)) {
                    continue;
                }
                let count = row.get(col).copied().unwrap_or(0);
                let den = row.get(col + 1).copied().unwrap_or(0);
                let span = sc.spans.get(i).copied().unwrap_or(0.0);
                match judge(&r.cfg, count, den, span) {
                    BlockVerdict::Block(reason) => over.push((i, BlockKey::Client(*ip), reason)),
                    BlockVerdict::Warn(reason) => warn_of.push((i, ip.to_string(), reason)),
                    BlockVerdict::Fine => {}
                }
            }
        }
        for (key, count) in &sc.names {
            let i = usize::from(key.tag());
            let Some(r) = rules.list.get(i) else { continue };
            let span = sc.spans.get(i).copied().unwrap_or(0.0);
            match judge(&r.cfg, *count, 0, span) {
                BlockVerdict::Block(reason) => {
                    over.push((i, BlockKey::Name(key.wire().into()), reason));
                }
                BlockVerdict::Warn(reason) => warn_of.push((i, wire_text(key.wire()), reason)),
                BlockVerdict::Fine => {}
            }
        }
        let mut changed = false;
        for (i, key, reason) in over {
            let Some(r) = rules.list.get(i) else { continue };
            let until = now + Duration::from_secs(r.cfg.block_s);
            let window = m.windows.get(&r.cfg.name).copied().unwrap_or(epoch);
            if let Some(b) = m.blocks.get(&key) {
                if m.judged_in.get(&key) != Some(&window) {
                    b.renew(until);
                    m.judged_in.insert(key, window);
                }
                continue;
            }
            if m.blocks.len() >= MAX_BLOCKS {
                self.table_full.fetch_add(1, Relaxed);
                continue;
            }
            r.stats.blocks.fetch_add(1, Relaxed);
            if m.log.admit(Change::Started) {
                warn!(rule = %r.cfg.name, target = %key, action = %r.cfg.action, block_s = r.cfg.block_s, %reason, "dynamic block");
            }
            let block = Arc::new(Block::new(key.clone(), reason, until, r.stats.clone()));
            m.judged_in.insert(key.clone(), window);
            m.blocks.insert(key, block);
            changed = true;
        }
        for (i, target, reason) in warn_of {
            let Some(r) = rules.list.get(i) else { continue };
            let warned = m.warned.entry(r.cfg.name.clone()).or_default();
            if warned.len() >= MAX_BLOCKS || warned.contains(&target) {
                continue;
            }
            warned.push(target.clone());
            r.stats.warnings.fetch_add(1, Relaxed);
            if m.log.admit(Change::Started) {
                info!(rule = %r.cfg.name, %target, %reason, "dynamic block warning: over warn_threshold, not blocked");
            }
        }
        // Roll the windows that ended.
        for (r, &roll) in rules.list.iter().zip(&sc.rolling) {
            if roll {
                if let Some(w) = m.windows.get_mut(&r.cfg.name) {
                    *w = now;
                }
                m.warned.remove(&r.cfg.name);
            }
        }
        // Lift the blocks that ran out.
        let mut lifted = Vec::new();
        m.blocks.retain(|_, b| {
            let keep = b.until() > now;
            if !keep {
                lifted.push(b.clone());
            }
            keep
        });
        for b in &lifted {
            m.judged_in.remove(&b.key);
            if m.log.admit(Change::Stopped) {
                info!(rule = %b.stats.rule, target = %b.key, queries_blocked = b.blocked.load(Relaxed), "dynamic block lifted");
            }
        }
        if let Some(more) = m.log.roll(now)
            && more.started + more.stopped > 0
        {
            info!(
                more_blocks_or_warnings = more.started,
                more_lifted = more.stopped,
                "dynamic blocks: more lines held back"
            );
        }
        if changed || !lifted.is_empty() {
            self.publish(m);
        }
        // The second's summary for `dnslb top`, written in place.
        sc.clients_top.clear();
        for (ip, &at) in &sc.index {
            if let Some(&q) = sc.rows.get(at * cols)
                && q > 0
            {
                sc.clients_top.insert(*ip, q);
            }
        }
        let second = m.top.next_slot();
        heaviest_into(&sc.clients_top, &mut sc.sort_ips, &mut second.clients);
        heaviest_into(&sc.qnames, &mut sc.sort_names, &mut second.names);
        heaviest_into(&sc.qtypes, &mut sc.sort_types, &mut second.qtypes);
        second.rcodes = rcodes;
        m.scratch = sc;
    }

    /// Publishes the blocks of `m` to the workers.
    fn publish(&self, m: &Maint) {
        self.published
            .store(Arc::new(BlockSet::new(m.blocks.values())));
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
        if !(1..=crate::config::MAX_BLOCK_S).contains(&secs) {
            return Err(ManualError::Duration {
                max: crate::config::MAX_BLOCK_S,
                got: secs,
            });
        }
        let key = match target {
            ManualTarget::Net(net) => match net.trunc() {
                IpNet::V4(n) if n.prefix_len() == 32 => BlockKey::Client(IpAddr::V4(n.addr())),
                IpNet::V6(n) if n.prefix_len() >= self.v6_prefix.load(Relaxed) => {
                    BlockKey::Client(self.group(IpAddr::V6(n.addr())))
                }
                other => BlockKey::Net(other),
            },
            ManualTarget::Name(name) => {
                use hickory_proto::serialize::binary::BinEncodable;
                BlockKey::Name(name.to_lowercase().to_bytes().unwrap_or_default().into())
            }
        };
        let until = now + Duration::from_secs(secs);
        let mut m = lock(&self.maint);
        let stats = m.stats.get(MANUAL, action);
        if let Some(b) = m.blocks.get(&key)
            && b.stats.rule == MANUAL
            && b.action() == action
        {
            b.renew(until);
            return Ok(());
        }
        let manual = m.blocks.values().filter(|b| b.stats.rule == MANUAL).count();
        if manual >= MAX_MANUAL || m.blocks.len() >= MAX_BLOCKS {
            self.table_full.fetch_add(1, Relaxed);
            return Err(ManualError::Full(m.blocks.len()));
        }
        stats.blocks.fetch_add(1, Relaxed);
        info!(target = %key, %action, secs, "block added by hand");
        let block = Block::new(key.clone(), "added by hand".into(), until, stats);
        m.blocks.insert(key, Arc::new(block));
        self.publish(&m);
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
        let m = lock(&self.maint);
        let mut out: Vec<BlockInfo> = m
            .blocks
            .values()
            .map(|b| BlockInfo {
                target: b.key.to_string(),
                kind: match b.key {
                    BlockKey::Name(_) => "name".into(),
                    _ => "client".into(),
                },
                rule: b.stats.rule.clone(),
                reason: b.reason.clone(),
                action: b.action().to_string(),
                seconds_left: b
                    .until()
                    .saturating_duration_since(now)
                    .as_secs_f64()
                    .ceil() as u64,
                queries_blocked: b.blocked.load(Relaxed),
            })
            .collect();
        out.sort_by(|a, b| {
            b.queries_blocked
                .cmp(&a.queries_blocked)
                .then_with(|| a.target.cmp(&b.target))
        });
        out
    }

    /// The most keys the counting tables of every shard hold at once, and
    /// the room they have taken so far: the bound (see the module's docs)
    /// never grows, whatever the traffic.
    pub fn footprint(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(cap, now), s| {
            let s = lock(s);
            let tables = [
                (s.clients.capacity(), s.clients.allocated()),
                (s.names.capacity(), s.names.allocated()),
                (s.qnames.capacity(), s.qnames.allocated()),
                (s.qtypes.capacity(), s.qtypes.allocated()),
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

    /// `dnslb top`: the last `seconds`, `n` of each list.
    pub fn top(&self, seconds: usize, n: usize) -> TopReport {
        lock(&self.maint).top.report(seconds, n)
    }
}

#[cfg(test)]
mod tests;

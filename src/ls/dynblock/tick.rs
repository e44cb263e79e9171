//! Judging, once a second ([`tick`]): what the tick keeps between seconds
//! ([`Maint`]: the blocks in force, the rules' windows and the counts over
//! them, the warnings given, the log budget), and the
//! steps of one tick, each a function: which windows end, the workers'
//! counts merged in, every key judged, blocks made or renewed, warnings
//! logged, windows rolled, blocks run out lifted. Its working space ([`Scratch`]) is kept from tick to tick:
//! once warm it allocates only for what it finds (a block made, a line
//! logged).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::counting::{CountShard, Window, merge};
use super::rules::{BlockVerdict, Rules, StatsBook, judge};
use super::set::{Block, BlockKey, MANUAL, MAX_BLOCKS, MAX_MANUAL};
use super::table::{DynName, wire_text};
use crate::config::DynKind;
use crate::guard::log_budget::{Change, LimitLog};

/// The interval of the block log's budget.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Block, warning and release lines per [`LOG_INTERVAL`].
pub const LOG_LINES: u64 = 20;
/// What the tick keeps between seconds.
pub(super) struct Maint {
    /// The blocks in force, by key.
    pub(super) blocks: HashMap<BlockKey, Arc<Block>>,
    /// When each rule's current window began (by rule name).
    windows: HashMap<String, Instant>,
    /// When windows began that have no entry in `windows` yet (start, reload).
    epoch: Instant,
    /// The window in which each dynamic block was made or last renewed: a
    /// block is renewed only by counts of a later window (the counts that
    /// made it stay in their window until it rolls).
    pub(super) judged_in: HashMap<BlockKey, Instant>,
    /// Keys warned about in each rule's current window (bounded).
    warned: HashMap<String, Vec<String>>,
    /// The counts over the rules' windows, every worker's merged in.
    pub(super) window: Window,
    pub(super) stats: StatsBook,
    log: LimitLog,
    /// The tick's working space.
    scratch: Scratch,
    /// The events of rules with `log = true` since the last tick, for
    /// dnstap (taken by [`DynBlocks::tick`](super::DynBlocks::tick)).
    pub(super) events: Vec<DynEvent>,
    /// The prefix length IPv6 clients are grouped by, for the targets the
    /// log lines and events name (`2001:db8:a::/64`).
    pub(super) v6_prefix: u8,
}

/// What happened to a block of a rule with `log = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynEvent {
    /// `block`, `warn` or `release`.
    pub what: &'static str,
    /// The rule's name.
    pub rule: String,
    /// The client group or name.
    pub target: String,
    /// What was counted (a release: the queries it stopped).
    pub reason: String,
}

impl DynEvent {
    /// Its one-line text: `dnslb dynblock RULE block|warn|release TARGET REASON`.
    pub fn text(&self) -> String {
        format!(
            "dnslb dynblock {} {} {} {}",
            self.rule, self.what, self.target, self.reason
        )
    }
}

/// Bounds the events kept between two ticks.
const MAX_EVENTS: usize = 1024;

/// Keeps `e` for dnstap when there is room.
fn note(m: &mut Maint, e: DynEvent) {
    if m.events.len() < MAX_EVENTS {
        m.events.push(e);
    }
}

impl Maint {
    pub(super) fn new(rules: &Rules, stats: StatsBook, now: Instant) -> Self {
        Maint {
            blocks: HashMap::new(),
            windows: HashMap::new(),
            epoch: now,
            judged_in: HashMap::new(),
            warned: HashMap::new(),
            window: Window::new(rules),
            stats,
            log: LimitLog::new(now, LOG_INTERVAL, LOG_LINES),
            scratch: Scratch::default(),
            events: Vec::new(),
            v6_prefix: 128,
        }
    }

    /// New rules at `now`: every window starts over, counted by them.
    pub(super) fn restart(&mut self, rules: &Rules, now: Instant) {
        self.windows.clear();
        self.epoch = now;
        self.warned.clear();
        self.window = Window::new(rules);
    }
}

/// The tick's working space, kept from tick to tick.
#[derive(Default)]
struct Scratch {
    /// Client group → its row in `rows` (the window's counts).
    index: HashMap<IpAddr, usize>,
    rows: Vec<u64>,
    names: HashMap<DynName, u64>,
    rolling: Vec<bool>,
    /// Seconds each rule's window has run.
    spans: Vec<f64>,
    zero_col: Vec<bool>,
}

/// A key over a rule (its index), and why.
type Over<K> = Vec<(usize, K, String)>;

/// A tick's first step: a worker's counts merged into `m` (`shard`
/// emptied), one shard at a time; then [`tick`].
pub(super) fn merge_in(m: &mut Maint, shard: &mut CountShard) {
    merge(&mut m.window, shard);
}

/// The rest of a tick at `now` of `rules` over `m`, the workers' counts
/// merged in ([`merge_in`]): whether the blocks in force changed (to
/// publish). Blocks not made because the table is full are counted in
/// `full`.
pub(super) fn tick(m: &mut Maint, rules: &Rules, now: Instant, full: &AtomicU64) -> bool {
    let mut sc = std::mem::take(&mut m.scratch);
    windows_ending(m, rules, now, &mut sc);
    read_window(&mut m.window, rules.cols, &mut sc);
    let (over, warn_of) = judge_keys(rules, &sc);
    let made = make_blocks(m, rules, over, now, full);
    log_warnings(m, rules, warn_of);
    roll_windows(m, rules, &sc.rolling, now);
    let lifted = lift_ended(m, rules, now);
    if let Some(more) = m.log.roll(now)
        && more.started + more.stopped > 0
    {
        info!(
            more_blocks_or_warnings = more.started,
            more_lifted = more.stopped,
            "dynamic blocks: more lines held back"
        );
    }
    m.scratch = sc;
    made || lifted
}

/// Which rules' windows end with this tick (`sc.rolling`), how long each
/// has run (`sc.spans`), and so which client columns start over
/// (`sc.zero_col`: the second's queries always).
fn windows_ending(m: &mut Maint, rules: &Rules, now: Instant, sc: &mut Scratch) {
    sc.rolling.clear();
    sc.spans.clear();
    for r in &rules.list {
        if !m.windows.contains_key(&r.cfg.name) {
            m.windows.insert(r.cfg.name.clone(), m.epoch);
        }
        let start = m.windows.get(&r.cfg.name).copied().unwrap_or(m.epoch);
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
}

/// The window's counts into `sc.index`/`sc.rows` and `sc.names`, then the
/// columns and names whose window ends zeroed (weights halved: a tick).
fn read_window(window: &mut Window, cols: usize, sc: &mut Scratch) {
    sc.index.clear();
    sc.rows.clear();
    sc.names.clear();
    let Scratch {
        index,
        rows,
        zero_col,
        names,
        rolling,
        ..
    } = sc;
    window.clients.drain_into(
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
    window.names.drain_into(
        |k, row| {
            *names.entry(k).or_default() += row.first().copied().unwrap_or(0);
        },
        |_| false,
    );
    // A name's count starts over when its rule's window rolls.
    if rolling.iter().any(|&r| r) {
        window
            .names
            .zero_where(|k| rolling.get(usize::from(k.tag())).copied().unwrap_or(true));
    }
}

/// Every client group and name judged by every rule: those over a
/// threshold, and those over a warning threshold only.
fn judge_keys(rules: &Rules, sc: &Scratch) -> (Over<BlockKey>, Over<String>) {
    let cols = rules.cols;
    let mut over = Vec::new();
    let mut warn_of = Vec::new();
    for (ip, &at) in &sc.index {
        let row = sc.rows.get(at * cols..(at + 1) * cols).unwrap_or_default();
        for (i, r) in rules.list.iter().enumerate() {
            let Some(col) = r.col else { continue };
            if r.exclude.contains(*ip) {
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
    (over, warn_of)
}

/// Blocks the keys `over` their rule (a block in force is renewed, once a
/// window), each new one logged once (within the budget): whether any was
/// made. Room: the dynamic blocks share [`MAX_BLOCKS`] less the
/// [`MAX_MANUAL`] kept for blocks by hand, each rule at most an equal share
/// of it ([`rule_share`]): a spray that fills one rule's share (forged
/// sources over a low threshold, say) leaves the other rules and the
/// operator their room. A block not made for want of room is counted in
/// `full` and logged (within the budget).
fn make_blocks(
    m: &mut Maint,
    rules: &Rules,
    over: Over<BlockKey>,
    now: Instant,
    full: &AtomicU64,
) -> bool {
    let mut made = false;
    if over.is_empty() {
        return made;
    }
    let share = rule_share(rules.list.len());
    let mut per_rule = vec![0usize; rules.list.len()];
    let mut dynamic = 0usize;
    for b in m.blocks.values().filter(|b| b.stats.rule != MANUAL) {
        dynamic += 1;
        if let Some(i) = rules.list.iter().position(|r| r.cfg.name == b.stats.rule)
            && let Some(n) = per_rule.get_mut(i)
        {
            *n += 1;
        }
    }
    for (i, key, reason) in over {
        let Some(r) = rules.list.get(i) else { continue };
        let until = now + Duration::from_secs(r.cfg.block_s);
        let window = m.windows.get(&r.cfg.name).copied().unwrap_or(m.epoch);
        if let Some(b) = m.blocks.get(&key) {
            if m.judged_in.get(&key) != Some(&window) {
                b.renew(until);
                m.judged_in.insert(key, window);
            }
            continue;
        }
        let mine = per_rule.get(i).copied().unwrap_or(0);
        if mine >= share || dynamic >= MAX_BLOCKS - MAX_MANUAL {
            full.fetch_add(1, Relaxed);
            if m.log.admit(Change::Started) {
                warn!(rule = %r.cfg.name, target = %BlockKey::text(&key, m.v6_prefix), rule_blocks = mine, share, "dynamic block not made: the rule's share of the table of blocks is full");
            }
            continue;
        }
        if let Some(n) = per_rule.get_mut(i) {
            *n += 1;
        }
        dynamic += 1;
        r.stats.blocks.fetch_add(1, Relaxed);
        if m.log.admit(Change::Started) {
            warn!(rule = %r.cfg.name, target = %BlockKey::text(&key, m.v6_prefix), action = %r.cfg.action, block_s = r.cfg.block_s, %reason, "dynamic block");
        }
        if r.cfg.log {
            let (rule, target) = (r.cfg.name.clone(), BlockKey::text(&key, m.v6_prefix));
            let reason = reason.clone();
            note(
                m,
                DynEvent {
                    what: "block",
                    rule,
                    target,
                    reason,
                },
            );
        }
        let block = Block::new(key.clone(), reason, until, r.stats.clone());
        let block = Arc::new(block.excluding(r.exclude.clone()));
        m.judged_in.insert(key.clone(), window);
        m.blocks.insert(key, block);
        made = true;
    }
    made
}

/// The most dynamic blocks one of `rules` rules may have in force: an equal
/// share of the room left by the blocks by hand.
pub(super) fn rule_share(rules: usize) -> usize {
    (MAX_BLOCKS - MAX_MANUAL) / rules.max(1)
}

/// Logs (within the budget) and counts each key over a warning threshold,
/// once per window.
fn log_warnings(m: &mut Maint, rules: &Rules, warn_of: Over<String>) {
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
        if r.cfg.log {
            let rule = r.cfg.name.clone();
            note(
                m,
                DynEvent {
                    what: "warn",
                    rule,
                    target,
                    reason,
                },
            );
        }
    }
}

/// The windows that ended start again at `now`.
fn roll_windows(m: &mut Maint, rules: &Rules, rolling: &[bool], now: Instant) {
    for (r, &roll) in rules.list.iter().zip(rolling) {
        if roll {
            if let Some(w) = m.windows.get_mut(&r.cfg.name) {
                *w = now;
            }
            m.warned.remove(&r.cfg.name);
        }
    }
}

/// Lifts the blocks whose time ran out by `now`, each logged once (within
/// the budget): whether any was.
fn lift_ended(m: &mut Maint, rules: &Rules, now: Instant) -> bool {
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
            info!(rule = %b.stats.rule, target = %BlockKey::text(&b.key, m.v6_prefix), queries_blocked = b.blocked.load(Relaxed), "dynamic block lifted");
        }
        if rules
            .list
            .iter()
            .any(|r| r.cfg.log && r.cfg.name == b.stats.rule)
        {
            let e = DynEvent {
                what: "release",
                rule: b.stats.rule.clone(),
                target: BlockKey::text(&b.key, m.v6_prefix),
                reason: format!("{} queries blocked", b.blocked.load(Relaxed)),
            };
            note(m, e);
        }
    }
    !lifted.is_empty()
}

//! [`RuleSet`]: the compiled query rules and what a rule that acts does
//! ([`Act`], [`RuleHit`]), checked on a [`QueryView`] (see the folder's map
//! in `mod.rs`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::config::{LsConfig, RuleAction, RuleConfig, RuleMatch, RuleTransport};
use crate::guard::log_budget::LimitLog;
use crate::guard::netset::NetSet;
use crate::guard::rate::{RateLimiter, RateVerdict};

use super::table::RuleSuffixes;
use super::view::QueryView;

/// Lines of `log = true` rules per [`RULE_LOG_INTERVAL`]; the rest are
/// counted and summed up in one line.
pub const RULE_LOG_LINES: u64 = 20;
/// The interval of the rules' log budget.
pub const RULE_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The most rule lists one query is checked against: the rules naming no
/// suffix, and one per suffix of a name (127 labels, and the root).
const MAX_LISTS: usize = 129;

/// What a rule that acts does with the query (the door carries it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// No answer.
    Drop,
    /// REFUSED (made up, with the rule's EDE).
    Refuse,
    /// NXDOMAIN (made up, with the rule's EDE).
    Nxdomain,
    /// SERVFAIL (made up, with the rule's EDE).
    Servfail,
    /// An empty TC=1 answer (UDP only).
    Truncate,
    /// Forwarded as usual, no further rule checked.
    Allow,
    /// Forwarded to this pool (an index of `[[ls.pool]]`, as `LsState::pools`).
    Pool(usize),
    /// The rule's addresses of the query's family (made up).
    Spoof,
    /// The rule's CNAME (made up).
    SpoofCname,
    /// Forwarded after this long (UDP only).
    Delay(Duration),
}

impl Act {
    /// The action's name in metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            Act::Drop => "drop",
            Act::Refuse => "refuse",
            Act::Nxdomain => "nxdomain",
            Act::Servfail => "servfail",
            Act::Truncate => "truncate",
            Act::Allow => "allow",
            Act::Pool(_) => "pool",
            Act::Spoof => "spoof",
            Act::SpoofCname => "spoof_cname",
            Act::Delay(_) => "delay",
        }
    }

    /// Whether the door answers the query itself (or drops it): the act
    /// makes up an answer (see [`answer`](super::answer())) rather than forwarding.
    pub fn answers(self) -> bool {
        !matches!(self, Act::Allow | Act::Pool(_) | Act::Delay(_))
    }

    /// Whether the act means something only over UDP.
    fn udp_only(self) -> bool {
        matches!(self, Act::Truncate | Act::Delay(_))
    }
}

/// The rule that acted on a query, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleHit {
    /// The rule's index, in file order.
    pub rule: usize,
    /// What it does.
    pub act: Act,
}

/// One rule's conditions other than its suffixes (checked by the table).
#[derive(Debug)]
struct Cond {
    qtypes: Box<[u16]>,
    client: NetSet,
    not_client: NetSet,
    /// Bit `1 << transport` per transport allowed; 0: any.
    transports: u8,
    rd: Option<bool>,
    dnssec_ok: Option<bool>,
    opcode: Option<u8>,
    min_labels: usize,
    min_name_len: usize,
    edns_option: Option<u16>,
}

/// The bit of `t` in [`Cond::transports`].
fn transport_bit(t: RuleTransport) -> u8 {
    match t {
        RuleTransport::Udp => 1,
        RuleTransport::Tcp => 2,
        RuleTransport::Dot => 4,
        RuleTransport::Doh => 8,
        RuleTransport::Doq => 16,
    }
}

impl Cond {
    fn new(m: &RuleMatch) -> Self {
        Cond {
            qtypes: m.qtype.iter().map(|t| t.0).collect(),
            client: NetSet::new(&m.client),
            not_client: NetSet::new(&m.not_client),
            transports: m.transport.iter().fold(0, |b, &t| b | transport_bit(t)),
            rd: m.rd,
            dnssec_ok: m.dnssec_ok,
            opcode: m.opcode.map(|o| o.0),
            min_labels: m.min_labels.map_or(0, usize::from),
            min_name_len: m.min_name_len.map_or(0, usize::from),
            edns_option: m.edns_option,
        }
    }

    /// Whether every condition holds for `q`, cheapest first.
    fn holds(&self, q: &QueryView<'_>) -> bool {
        (self.transports == 0 || self.transports & transport_bit(q.transport) != 0)
            && (self.qtypes.is_empty() || self.qtypes.contains(&q.qtype))
            && self.rd.is_none_or(|rd| rd == q.rd)
            && self.dnssec_ok.is_none_or(|d| d == q.dnssec_ok)
            && self.opcode.is_none_or(|o| o == q.opcode)
            && q.name.len() >= self.min_name_len
            && (self.min_labels == 0 || q.labels() >= self.min_labels)
            && self.edns_option.is_none_or(|c| q.has_option(c))
            && (self.client.is_empty() || self.client.contains(q.client))
            && (self.not_client.is_empty() || !self.not_client.contains(q.client))
    }
}

/// How a rule acts once its conditions hold.
#[derive(Debug)]
enum Action {
    /// Always this.
    Always(Act),
    /// Under `limiter`'s rate per client group, not at all; over it, `then`.
    Rate { limiter: RateLimiter, then: Act },
}

/// What a rule's made-up answers hold.
#[derive(Debug, Default)]
pub(super) struct Made {
    pub(super) v4: Box<[Ipv4Addr]>,
    pub(super) v6: Box<[Ipv6Addr]>,
    pub(super) cname: Option<Name>,
    pub(super) ttl: u32,
    pub(super) aa: bool,
    pub(super) ede: u16,
}

/// One compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    name: Box<str>,
    cond: Cond,
    action: Action,
    pub(super) made: Made,
    log: bool,
    /// Queries it acted on.
    hits: AtomicU64,
}

impl Rule {
    /// What the rule does to `q` at `now`, its conditions holding: `None`
    /// when it does not act (under its rate; a UDP-only act on a stream).
    fn act(&self, q: &QueryView<'_>, now: Instant) -> Option<Act> {
        let udp = q.transport == RuleTransport::Udp;
        // A valid server cookie proves the address, as TCP does.
        let acts = |act: Act| (udp || !act.udp_only()) && !(q.cookie_ok && act == Act::Truncate);
        match &self.action {
            Action::Always(act) => acts(*act).then_some(*act),
            Action::Rate { limiter, then } => {
                if !acts(*then) {
                    return None;
                }
                (limiter.check_at(q.client, now) != RateVerdict::Pass).then_some(*then)
            }
        }
    }

    /// The act the rule shows in metrics: its own, or its rate's `then`.
    fn shown_act(&self) -> Act {
        match &self.action {
            Action::Always(act) | Action::Rate { then: act, .. } => *act,
        }
    }
}

/// The query rules of one `[ls]` snapshot.
#[derive(Debug)]
pub struct RuleSet {
    pub(super) rules: Box<[Rule]>,
    /// Every rule's suffixes.
    suffixes: RuleSuffixes,
    /// The rules that name no suffix, ascending.
    plain: Box<[u32]>,
    /// The budget of the `log = true` lines.
    log: LimitLog,
}

impl RuleSet {
    /// The rules of `c` (`c.rule`, validated: its pools exist), each keeping
    /// the count of the rule of the same name in `old`.
    pub fn new(c: &LsConfig, old: Option<&RuleSet>) -> Self {
        let pool_index = |name: &str| c.pool.iter().position(|p| p.name == name);
        let rules: Box<[Rule]> = c
            .rule
            .iter()
            .map(|r| compile(r, c.rate_limit_v6_prefix, &pool_index, old))
            .collect();
        let suffixes = RuleSuffixes::new(
            c.rule
                .iter()
                .zip(0u32..)
                .flat_map(|(r, i)| r.matches.suffix.iter().map(move |s| (s, i))),
        );
        let plain = c
            .rule
            .iter()
            .zip(0u32..)
            .filter(|(r, _)| r.matches.suffix.is_empty())
            .map(|(_, i)| i)
            .collect();
        RuleSet {
            rules,
            suffixes,
            plain,
            log: LimitLog::new(Instant::now(), RULE_LOG_INTERVAL, RULE_LOG_LINES),
        }
    }

    /// Whether there are no rules (the door skips them).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that acts on `q` at `now` (see the module doc), counted, and
    /// logged when the rule says `log = true` (within the log budget);
    /// `None`: no rule acts, the query goes on as usual.
    pub fn judge(&self, q: &QueryView<'_>, now: Instant) -> Option<RuleHit> {
        self.judge_to(q, now, false)
    }

    /// [`RuleSet::judge`], a `log = true` hit logged by the caller when
    /// `tapped` (to dnstap: see [`RuleSet::logged`]), to the log otherwise.
    pub fn judge_to(&self, q: &QueryView<'_>, now: Instant, tapped: bool) -> Option<RuleHit> {
        let hit = self.check(q, now)?;
        self.note(hit, q, now, tapped);
        Some(hit)
    }

    /// The rule that acts on `q` at `now`, neither counted nor logged yet
    /// ([`RuleSet::note`] does, once the query is served: a late query the
    /// queue gate may still shed).
    pub fn judge_unnoted(&self, q: &QueryView<'_>, now: Instant) -> Option<RuleHit> {
        self.check(q, now)
    }

    /// Counts `hit` on `q` and logs it as [`RuleSet::judge_to`] does.
    pub fn note(&self, hit: RuleHit, q: &QueryView<'_>, now: Instant, tapped: bool) {
        let Some(rule) = self.rules.get(hit.rule) else {
            return;
        };
        rule.hits.fetch_add(1, Relaxed);
        if rule.log && !tapped {
            self.log_hit(rule, hit, q, now);
        }
    }

    /// The name of `hit`'s rule when it says `log = true`.
    pub fn logged(&self, hit: RuleHit) -> Option<&str> {
        self.rules.get(hit.rule).filter(|r| r.log).map(|r| &*r.name)
    }

    /// The rule that acts on `q` at `now`, neither counted nor logged.
    fn check(&self, q: &QueryView<'_>, now: Instant) -> Option<RuleHit> {
        if self.rules.is_empty() {
            return None;
        }
        let mut lists: [&[u32]; MAX_LISTS] = [&[]; MAX_LISTS];
        lists[0] = &self.plain;
        let mut n = 1;
        self.suffixes.each_hit(q.name, |rules| {
            if let Some(slot) = lists.get_mut(n) {
                *slot = rules;
                n += 1;
            }
        });
        let lists = lists.get(..n).unwrap_or_default();
        let mut cursors = [0usize; MAX_LISTS];
        let mut last = None;
        loop {
            // The lowest rule index at the head of a list: file order.
            let mut best: Option<(u32, usize)> = None;
            for (i, list) in lists.iter().enumerate() {
                let head = cursors.get(i).and_then(|&c| list.get(c));
                if let Some(&r) = head
                    && best.is_none_or(|(b, _)| r < b)
                {
                    best = Some((r, i));
                }
            }
            let (r, i) = best?;
            if let Some(c) = cursors.get_mut(i) {
                *c += 1;
            }
            if last == Some(r) {
                continue; // a rule naming two suffixes of the name
            }
            last = Some(r);
            let Some(rule) = self.rules.get(r as usize) else {
                continue;
            };
            if rule.cond.holds(q)
                && let Some(act) = rule.act(q, now)
            {
                return Some(RuleHit {
                    rule: r as usize,
                    act,
                });
            }
        }
    }

    /// One `info` line for a hit of `rule`, within the budget.
    fn log_hit(&self, rule: &Rule, hit: RuleHit, q: &QueryView<'_>, now: Instant) {
        if self.log.admit_match(now, "rule") {
            let name = wire_name_text(q.name);
            tracing::info!(
                rule = %rule.name,
                action = hit.act.kind(),
                client = %q.client,
                qname = %name,
                qtype = q.qtype,
                transport = %q.transport,
                "rule matched"
            );
        }
    }

    /// Every rule with the action it shows and how many queries it acted
    /// on, in file order: `dnslb_rule_hits_total{rule,action}`.
    pub fn counts(&self) -> impl Iterator<Item = (&str, &'static str, u64)> + '_ {
        self.rules
            .iter()
            .map(|r| (&*r.name, r.shown_act().kind(), r.hits.load(Relaxed)))
    }

    /// The name of rule `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.rules.get(i).map(|r| &*r.name)
    }
}

/// `r` compiled: its pool by index, its spoofed data, its rate buckets.
fn compile(
    r: &RuleConfig,
    v6_prefix: u8,
    pool_index: &dyn Fn(&str) -> Option<usize>,
    old: Option<&RuleSet>,
) -> Rule {
    let mut made = Made {
        aa: r.aa,
        ede: r.ede,
        ..Made::default()
    };
    let mut act_of = |a: &RuleAction| match a {
        RuleAction::Drop => Act::Drop,
        RuleAction::Refuse => Act::Refuse,
        RuleAction::Nxdomain => Act::Nxdomain,
        RuleAction::Servfail => Act::Servfail,
        RuleAction::Truncate => Act::Truncate,
        RuleAction::Allow | RuleAction::Rate { .. } => Act::Allow,
        // Validation checked the pool exists; a missing one forwards as usual.
        RuleAction::Pool(p) => pool_index(p).map_or(Act::Allow, Act::Pool),
        RuleAction::Spoof { addrs, ttl } => {
            let (mut v4, mut v6) = (Vec::new(), Vec::new());
            for a in addrs {
                match a {
                    IpAddr::V4(a) => v4.push(*a),
                    IpAddr::V6(a) => v6.push(*a),
                }
            }
            (made.v4, made.v6) = (v4.into(), v6.into());
            made.ttl = *ttl;
            Act::Spoof
        }
        RuleAction::SpoofCname { target, ttl } => {
            made.cname = Some(target.clone());
            made.ttl = *ttl;
            Act::SpoofCname
        }
        RuleAction::Delay { ms } => Act::Delay(Duration::from_millis(*ms)),
    };
    let action = match &r.action {
        RuleAction::Rate { qps, then } => Action::Rate {
            limiter: RateLimiter::quiet(*qps, v6_prefix),
            then: act_of(then),
        },
        other => Action::Always(act_of(other)),
    };
    let kept = old
        .and_then(|o| o.rules.iter().find(|o| *o.name == *r.name))
        .map_or(0, |o| o.hits.load(Relaxed));
    Rule {
        name: r.name.clone().into_boxed_str(),
        cond: Cond::new(&r.matches),
        action,
        made,
        log: r.log,
        hits: AtomicU64::new(kept),
    }
}

/// A wire name as text (`www.example.org.`), for logs.
fn wire_name_text(name: &[u8]) -> String {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    Name::read(&mut BinDecoder::new(name)).map_or_else(|_| "?".to_owned(), |n| n.to_ascii())
}

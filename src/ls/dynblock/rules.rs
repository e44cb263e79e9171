//! The rules of `[[ls.dynamic_block]]` as the tick uses them: compiled
//! ([`Rules`]: each rule's counter columns in the client table, a
//! `name-rate` rule's suffix in wire form, its counters), judged ([`judge`]:
//! a key's count in the window so far against the threshold, pure), and
//! the key a `name-rate` rule counts a query name under ([`registered`]).
//! The counters of every rule and action seen since start are in
//! [`StatsBook`].
use std::sync::Arc;

use super::set::RuleStats;
use super::table::{self, DynName};
use crate::config::{DynAction, DynBlockConfig, DynKind};
use crate::guard::netset::NetSet;

/// One rule, compiled.
#[derive(Debug)]
pub(super) struct BlockRule {
    pub(super) cfg: DynBlockConfig,
    /// Its first counter in the client table's rows (`None`: `name-rate`).
    pub(super) col: Option<usize>,
    /// `name-rate`: its suffix, lower-case wire form, and its label count.
    pub(super) suffix: Option<(Vec<u8>, usize)>,
    /// Its `exclude` networks, compiled once (its blocks share them).
    pub(super) exclude: Arc<NetSet>,
    pub(super) stats: Arc<RuleStats>,
}

/// The rules of one config, compiled.
#[derive(Debug, Default)]
pub(super) struct Rules {
    pub(super) list: Vec<BlockRule>,
    /// Counters per client row: the second's queries (column 0), then the rules'.
    pub(super) cols: usize,
    /// Bumped at each reload: a shard laid out for other rules starts over.
    pub(super) generation: u64,
}

impl Rules {
    pub(super) fn new(configs: &[DynBlockConfig], generation: u64, stats: &mut StatsBook) -> Self {
        let mut cols = 1;
        let list = configs
            .iter()
            .map(|cfg| {
                let col = (cfg.kind != DynKind::NameRate).then(|| {
                    let at = cols;
                    cols += if cfg.kind == DynKind::RcodeRatio {
                        2
                    } else {
                        1
                    };
                    at
                });
                let suffix = cfg.suffix.as_ref().map(|s| {
                    let wire: Vec<u8> = s
                        .to_lowercase()
                        .iter()
                        .flat_map(|l| {
                            std::iter::once(u8::try_from(l.len()).unwrap_or(0))
                                .chain(l.iter().copied())
                        })
                        .chain(std::iter::once(0))
                        .collect();
                    (wire, usize::from(s.num_labels()))
                });
                BlockRule {
                    cfg: cfg.clone(),
                    col,
                    suffix,
                    exclude: Arc::new(NetSet::new(&cfg.exclude)),
                    stats: stats.get(&cfg.name, cfg.action),
                }
            })
            .collect();
        Rules {
            list,
            cols,
            generation,
        }
    }

    pub(super) fn has_names(&self) -> bool {
        self.list.iter().any(|r| r.suffix.is_some())
    }

    /// Whether a rule counts client groups (every kind but `name-rate`).
    pub(super) fn counts_clients(&self) -> bool {
        self.cols > 1
    }

    /// Whether a rule counts answers (rcode, ratio, bytes).
    pub(super) fn counts_answers(&self) -> bool {
        self.list.iter().any(|r| {
            matches!(
                r.cfg.kind,
                DynKind::RcodeRate | DynKind::RcodeRatio | DynKind::ResponseBytesRate
            )
        })
    }
}

/// The counters of every rule and action seen since start (kept across
/// reloads, at most 256).
#[derive(Debug, Default)]
pub(super) struct StatsBook(pub(super) Vec<Arc<RuleStats>>);

impl StatsBook {
    pub(super) fn get(&mut self, rule: &str, action: DynAction) -> Arc<RuleStats> {
        if let Some(s) = self.0.iter().find(|s| s.rule == rule && s.action == action) {
            return s.clone();
        }
        let s = Arc::new(RuleStats::new(rule, action));
        if self.0.len() < 256 {
            self.0.push(s.clone());
        }
        s
    }
}

/// What a rule says of a key's counts in its window so far.
#[derive(Debug, PartialEq)]
pub(super) enum BlockVerdict {
    Fine,
    Warn(String),
    Block(String),
}

/// Judges `count` (and for `rcode-ratio`, `den` answers) against `r`, the
/// window having run `span` seconds (more than `window_s` when a tick came
/// late: the rate is judged over the time the counts took, never less
/// than `window_s`). Allocates only for a verdict that is not `Fine`.
pub(super) fn judge(r: &DynBlockConfig, count: u64, den: u64, span: f64) -> BlockVerdict {
    let rcode = || r.rcode.map(|c| c.as_str()).unwrap_or("?");
    if r.kind == DynKind::RcodeRatio {
        if den < r.min_responses || den == 0 {
            return BlockVerdict::Fine;
        }
        let share = count as f64 / den as f64;
        let reason = || {
            format!(
                "{count} of {den} answers {} ({:.0}%) in {} s, threshold {:.0}%",
                rcode(),
                share * 100.0,
                r.window_s,
                r.threshold * 100.0
            )
        };
        return if share >= r.threshold {
            BlockVerdict::Block(reason())
        } else if r.warn_threshold.is_some_and(|w| share >= w) {
            BlockVerdict::Warn(reason())
        } else {
            BlockVerdict::Fine
        };
    }
    let window = (r.window_s as f64).max(span);
    let c = count as f64;
    let reason = |limit: f64| {
        let what = match r.kind {
            DynKind::QueryRate => "queries".to_owned(),
            DynKind::RcodeRate | DynKind::RcodeRatio => format!("{} answers", rcode()),
            DynKind::QtypeRate => format!(
                "{} queries",
                r.qtype.map(|t| t.to_string()).unwrap_or_default()
            ),
            DynKind::ResponseBytesRate => "answer bytes".to_owned(),
            DynKind::NameRate => "queries for the name".to_owned(),
        };
        format!("{count} {what} in {} s, over {limit}/s", window.round())
    };
    if count > 0 && c >= r.threshold * window {
        BlockVerdict::Block(reason(r.threshold))
    } else if let Some(w) = r.warn_threshold.filter(|w| count > 0 && c >= w * window) {
        BlockVerdict::Warn(reason(w))
    } else {
        BlockVerdict::Fine
    }
}

/// The key of `qname` (label offsets `labels`) for a `name-rate` rule
/// (number `tag`) of `suffix` (lower-case wire form, `n` labels): the name
/// made of the label just under the suffix and the suffix, if `qname` is
/// under it.
pub(super) fn registered(
    qname: &[u8],
    labels: &[u8],
    suffix: &[u8],
    n: usize,
    tag: usize,
) -> Option<DynName> {
    // `labels` ends with the root label's offset; the suffix's labels
    // (root included) are the last n + 1.
    let count = labels.len();
    let at = usize::from(*labels.get(count.checked_sub(n + 2)?)?);
    let suffix_at = usize::from(*labels.get(count - n - 1)?);
    let end = table::name_end(qname)?;
    let tail = qname.get(suffix_at..end)?;
    if !tail.eq_ignore_ascii_case(suffix) {
        return None;
    }
    DynName::new(u8::try_from(tag).ok()?, qname.get(at..)?)
}

//! The rules on a backend's answer (`[[ls.response_rule]]`):
//! [`ResponseRules::judge`] reads the answer in place (header rcode, the
//! question's type, the answer section's types, its size) with `dns`'s
//! walker, and says what becomes of it, in file order: the first `drop`,
//! `servfail` or `limit_ttl` rule that matches decides; a `log` rule logs and
//! lets the next rules be checked. [`limit_ttls`] clamps an answer's TTLs in
//! place. Pure but for the counters and the log; the drivers call it after
//! the backend answered and before the cache keeps the answer.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::config::{LsConfig, ResponseAction, ResponseMatch, ResponseRuleConfig};
use crate::dns::{self, HEADER_LEN};
use crate::guard::log_budget::LimitLog;

use super::set::{RULE_LOG_INTERVAL, RULE_LOG_LINES};

/// What becomes of a backend's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// Passed on (and cached) as it is.
    Pass,
    /// Not sent nor cached.
    Drop,
    /// The client gets SERVFAIL instead; nothing is cached.
    Servfail,
    /// Its TTLs clamped to `[min, max]` ([`limit_ttls`]), then passed on.
    LimitTtl {
        /// The lowest TTL.
        min: u32,
        /// The highest TTL.
        max: u32,
    },
}

/// One compiled response rule.
#[derive(Debug)]
struct ResponseRule {
    name: Box<str>,
    m: ResponseMatch,
    action: ResponseAction,
    log: bool,
    hits: AtomicU64,
}

/// The response rules of one `[ls]` snapshot.
#[derive(Debug)]
pub struct ResponseRules {
    rules: Box<[ResponseRule]>,
    log: LimitLog,
}

impl ResponseRules {
    /// The rules of `c` (`c.response_rule`), each keeping the count of the
    /// rule of the same name in `old`.
    pub fn new(c: &LsConfig, old: Option<&ResponseRules>) -> Self {
        let rules = c
            .response_rule
            .iter()
            .map(|r: &ResponseRuleConfig| {
                let kept = old
                    .and_then(|o| o.rules.iter().find(|o| *o.name == *r.name))
                    .map_or(0, |o| o.hits.load(Relaxed));
                ResponseRule {
                    name: r.name.clone().into_boxed_str(),
                    m: r.matches.clone(),
                    action: r.action,
                    log: r.log,
                    hits: AtomicU64::new(kept),
                }
            })
            .collect();
        ResponseRules {
            rules,
            log: LimitLog::new(Instant::now(), RULE_LOG_INTERVAL, RULE_LOG_LINES),
        }
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What becomes of `answer` (a backend's whole message), the matching
    /// rules counted and logged (`log = true`, or the `log` action).
    pub fn judge(&self, answer: &[u8], now: Instant) -> ResponseVerdict {
        for rule in &*self.rules {
            if !matches(&rule.m, answer) {
                continue;
            }
            rule.hits.fetch_add(1, Relaxed);
            if rule.log || rule.action == ResponseAction::Log {
                self.log_hit(rule, answer, now);
            }
            match rule.action {
                ResponseAction::Log => {}
                ResponseAction::Drop => return ResponseVerdict::Drop,
                ResponseAction::Servfail => return ResponseVerdict::Servfail,
                ResponseAction::LimitTtl { min, max } => {
                    return ResponseVerdict::LimitTtl { min, max };
                }
            }
        }
        ResponseVerdict::Pass
    }

    /// One `info` line for an answer `rule` matched, within the budget.
    fn log_hit(&self, rule: &ResponseRule, answer: &[u8], now: Instant) {
        if self.log.admit_match(now, "response rule") {
            let rcode = dns::WireHeader::read(answer).map_or(0, |h| h.rcode());
            tracing::info!(
                rule = %rule.name,
                action = rule.action.kind(),
                rcode,
                qtype = question_type(answer).unwrap_or(0),
                size = answer.len(),
                "response rule matched"
            );
        }
    }

    /// Every rule with its action and how many answers it matched:
    /// `dnslb_response_rule_hits_total{rule,action}`.
    pub fn counts(&self) -> impl Iterator<Item = (&str, &'static str, u64)> + '_ {
        self.rules
            .iter()
            .map(|r| (&*r.name, r.action.kind(), r.hits.load(Relaxed)))
    }
}

/// The type of the first question of `msg`.
fn question_type(msg: &[u8]) -> Option<u16> {
    let qd = dns::u16_at(msg, 4)?;
    if qd == 0 {
        return None;
    }
    dns::u16_at(msg, dns::skip_name(msg, HEADER_LEN)?)
}

/// Whether every condition of `m` holds for `answer`.
fn matches(m: &ResponseMatch, answer: &[u8]) -> bool {
    let Some(h) = dns::WireHeader::read(answer) else {
        return false;
    };
    if m.min_size
        .is_some_and(|min| answer.len() < usize::from(min))
    {
        return false;
    }
    if !m.rcode.is_empty() && !m.rcode.iter().any(|r| r.0 == h.rcode()) {
        return false;
    }
    if !m.qtype.is_empty() {
        let qtype = question_type(answer);
        if !m.qtype.iter().any(|t| Some(t.0) == qtype) {
            return false;
        }
    }
    if !m.answer_type.is_empty() {
        let count = |i: usize| dns::u16_at(answer, 4 + 2 * i).map_or(0, usize::from);
        let Some(pos) = dns::skip_questions(answer, HEADER_LEN, count(0)) else {
            return false;
        };
        let found = dns::records(answer, pos, count(1))
            .map_while(|r| r)
            .any(|r| m.answer_type.iter().any(|t| t.0 == r.rtype));
        if !found {
            return false;
        }
    }
    true
}

/// Clamps the TTL of every record of `answer` (answer, authority and
/// additional sections; the OPT's field is not a TTL and is left alone) to
/// `[min, max]`, in place. False, with nothing changed past the record it
/// could not read, when the message does not walk.
pub fn limit_ttls(answer: &mut [u8], min: u32, max: u32) -> bool {
    let count = |m: &[u8], i: usize| dns::u16_at(m, 4 + 2 * i).map_or(0, usize::from);
    let Some(pos) = dns::skip_questions(answer, HEADER_LEN, count(answer, 0)) else {
        return false;
    };
    let n = count(answer, 1) + count(answer, 2) + count(answer, 3);
    let mut pos = pos;
    for _ in 0..n {
        let Some(r) = dns::RecordAt::read(answer, pos) else {
            return false;
        };
        pos = r.rdata_end;
        if r.rtype == dns::TYPE_OPT {
            continue;
        }
        let Some(field) = answer.get_mut(r.fixed + 4..r.fixed + 8) else {
            return false;
        };
        let Ok(bytes) = <[u8; 4]>::try_from(&*field) else {
            return false;
        };
        let ttl = u32::from_be_bytes(bytes).clamp(min, max.max(min));
        field.copy_from_slice(&ttl.to_be_bytes());
    }
    true
}

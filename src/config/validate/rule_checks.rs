//! The rules `[[ls.rule]]` and `[[ls.response_rule]]` must follow, beside the
//! rest of `[ls]`'s (`check_ls` records what [`rule_problems`] finds, and
//! checks the rules' names itself): a pool action naming an `[[ls.pool]]`, a spoof with an
//! address, a rate of at least one query a second whose `then` is not itself a
//! rate, a delay in `[1, MAX_DELAY_MS]`, TTLs within RFC 2181, an `ede` of 15,
//! 16 or 17, bounds that a name can reach, and `limit_ttl`'s `min <= max`.

use super::super::LsConfig;
use super::super::rules::{
    EDE_BLOCKED, EDE_CENSORED, EDE_FILTERED, MAX_DELAY_MS, MAX_RULE_RATE, ResponseAction,
    RuleAction, RuleConfig,
};
use super::super::values::MAX_TTL;

/// One problem: the key paths to find its line by (the first named), and
/// what is wrong.
pub(super) type Problem = (Vec<String>, String);

/// The problems found so far.
#[derive(Default)]
struct Found(Vec<Problem>);

impl Found {
    fn push(&mut self, paths: &[&str], msg: String) {
        self.0
            .push((paths.iter().map(|p| (*p).to_owned()).collect(), msg));
    }

    fn require(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.push(&[path], msg());
        }
    }

    fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, v: T, max: T, path: &str) {
        if v > max {
            self.push(&[path], format!("must be at most {max}, got {v}"));
        }
    }
}

/// The most labels a name can have (255 bytes of wire form).
const MAX_LABELS: u8 = 127;
/// The longest wire form of a name, root byte included (RFC 1035 §3.1).
const MAX_NAME_LEN: u16 = 255;

/// What breaks the rules of `[[ls.rule]]` and `[[ls.response_rule]]`
/// (their names aside).
pub(super) fn rule_problems(ls: &LsConfig) -> Vec<Problem> {
    let mut check = Found::default();
    let check = &mut check;
    for (i, rule) in ls.rule.iter().enumerate() {
        check_rule(ls, i, rule, check);
    }
    for (i, rule) in ls.response_rule.iter().enumerate() {
        let key = format!("ls.response_rule.{i}.action");
        if let ResponseAction::LimitTtl { min, max } = rule.action {
            let at = [
                format!("{key}.limit_ttl.min"),
                format!("{key}.limit_ttl.max"),
            ];
            check.require(min <= max, &at[0], || {
                format!("min ({min}) must not exceed max ({max})")
            });
            check.require(max <= MAX_TTL, &at[1], || {
                format!("must be at most {MAX_TTL} (RFC 2181), got {max}")
            });
        }
    }
    std::mem::take(&mut check.0)
}

/// The rules for the `[[ls.rule]]` at index `i`.
fn check_rule(ls: &LsConfig, i: usize, rule: &RuleConfig, check: &mut Found) {
    let key = |k: &str| format!("ls.rule.{i}.{k}");
    let who = &rule.name;
    check.require(
        [EDE_BLOCKED, EDE_CENSORED, EDE_FILTERED].contains(&rule.ede),
        &key("ede"),
        || {
            format!(
                "must be 15 (Blocked), 16 (Censored) or 17 (Filtered), got {}",
                rule.ede
            )
        },
    );
    if let Some(n) = rule.matches.min_labels {
        check.at_most(n, MAX_LABELS, &key("match.min_labels"));
    }
    if let Some(n) = rule.matches.min_name_len {
        check.at_most(n, MAX_NAME_LEN, &key("match.min_name_len"));
    }
    check_action(ls, who, &rule.action, &key("action"), false, check);
}

/// The rules for one action at `path` (`then` when `nested`).
fn check_action(
    ls: &LsConfig,
    who: &str,
    action: &RuleAction,
    path: &str,
    nested: bool,
    check: &mut Found,
) {
    let key = |k: &str| format!("{path}.{k}");
    match action {
        RuleAction::Pool(pool) => {
            if !ls.pool.iter().any(|p| &p.name == pool) {
                let known: Vec<&str> = ls.pool.iter().map(|p| p.name.as_str()).collect();
                let known = if known.is_empty() {
                    "there are none".to_owned()
                } else {
                    format!("pools: {}", known.join(", "))
                };
                check.push(
                    &[&key("pool"), path],
                    format!(
                        "rule {who:?} names pool {pool:?}, which is not an [[ls.pool]] ({known})"
                    ),
                );
            }
        }
        RuleAction::Spoof { addrs, ttl } => {
            check.require(!addrs.is_empty(), &key("spoof"), || {
                format!("rule {who:?} needs at least one address to spoof")
            });
            check.require(*ttl <= MAX_TTL, &key("ttl"), || {
                format!("must be at most {MAX_TTL} (RFC 2181), got {ttl}")
            });
        }
        RuleAction::SpoofCname { ttl, .. } => {
            check.require(*ttl <= MAX_TTL, &key("ttl"), || {
                format!("must be at most {MAX_TTL} (RFC 2181), got {ttl}")
            });
        }
        RuleAction::Delay { ms } => {
            check.require((1..=MAX_DELAY_MS).contains(ms), &key("delay_ms"), || {
                format!("must be in [1, {MAX_DELAY_MS}], got {ms}")
            });
        }
        RuleAction::Rate { qps, then } => {
            check.require(*qps >= 1, &key("rate"), || "must be at least 1".into());
            check.at_most(*qps, MAX_RULE_RATE, &key("rate"));
            if nested {
                check.push(
                    &[&key("rate"), path],
                    format!("rule {who:?}: a rate's then cannot itself be a rate"),
                );
            } else {
                check_action(ls, who, then, &key("then"), true, check);
            }
        }
        RuleAction::Drop
        | RuleAction::Refuse
        | RuleAction::Nxdomain
        | RuleAction::Servfail
        | RuleAction::Truncate
        | RuleAction::Allow => {}
    }
}

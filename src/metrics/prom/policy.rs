//! The traffic policy's families: the query and response rules' hits, the
//! dynamic blocks (started, queries blocked, warnings, in force, table full)
//! and the live control's state-changing requests by outcome.

use std::sync::atomic::Ordering::Relaxed;

use super::expo::Expo;
use crate::ls::{Balancer, LsState};

/// The rules' families (none without rules): the queries each
/// `[[ls.rule]]` acted on and the answers each `[[ls.response_rule]]`
/// matched, by rule and action.
pub(super) fn write_rules(e: &mut Expo, state: &LsState) {
    let families = [
        (
            "dnslb_rule_hits_total",
            "Queries each query rule acted on, by the action it took.",
            state.rules.counts().collect::<Vec<_>>(),
        ),
        (
            "dnslb_response_rule_hits_total",
            "Backend answers each response rule matched, by its action.",
            state.response_rules.counts().collect(),
        ),
    ];
    for (family, help, counts) in families {
        if counts.is_empty() {
            continue;
        }
        e.family(family, "counter", help);
        for (rule, action, n) in counts {
            e.sample(family, &[("rule", rule), ("action", action)], n);
        }
    }
}

/// The dynamic blocks (by rule and action), blocks in force, and the live
/// control's state-changing requests by outcome.
#[rustfmt::skip]
pub(super) fn write_dynblocks(e: &mut Expo, balancer: &Balancer) {
    let d = balancer.dynblocks();
    let stats = d.stats();
    type Read = fn(&crate::ls::dynblock::RuleStats) -> u64;
    let families: [(&str, &str, Read); 3] = [
        ("dnslb_dynblock_blocks_total", "Blocks started, by rule (manual: added by hand) and action.", |s| s.blocks.load(Relaxed)),
        ("dnslb_dynblock_queries_blocked_total", "Client queries stopped by a block in force, by rule and action.", |s| s.queries_blocked.load(Relaxed)),
        ("dnslb_dynblock_warnings_total", "Keys over a rule's warn_threshold (logged, not blocked), by rule and action.", |s| s.warnings.load(Relaxed)),
    ];
    for (name, help, value) in families {
        e.family(name, "counter", help);
        for s in &stats {
            e.sample(name, &[("rule", &s.rule), ("action", s.action.as_str())], value(s));
        }
    }
    let (gauge, help) = ("dnslb_dynblock_in_force", "Blocks in force now (dynamic and by hand).");
    e.family(gauge, "gauge", help);
    e.sample(gauge, &[], d.in_force());
    let full = "Blocks not made because the table of blocks was full.";
    e.counter("dnslb_dynblock_table_full_total", full, d.table_full.load(Relaxed));
    let c = balancer.control_counters();
    let by_result = [
        ("accepted", &c.accepted),
        ("unauthorized", &c.unauthorized),
        ("forbidden", &c.forbidden),
        ("invalid", &c.invalid),
        ("not_found", &c.not_found),
        ("failed", &c.failed),
    ];
    e.by_label(
        "dnslb_control_requests_total",
        "State-changing requests to the metrics listener, by result: accepted (done), unauthorized (401: no api_key or a wrong one), forbidden (403: outside control_allow, a missing X-Dnslb-Control/X-Dnslb-Flush header, or from a web page), invalid (400: a bad parameter), not_found (404: no such backend, no cache), failed (409: the table of blocks full; 503: another flush walking).",
        "result",
        by_result,
    );
}

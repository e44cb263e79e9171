//! `rrl` in `[[ts]]`: the rate within what the LS's limits take, prefix
//! lengths an address has, `slip` as Knot bounds it, and `log_only` only
//! with a rate to count against.
use super::checker::ConfigChecker;
use super::limits::MAX_RATE_QPS;
use crate::config::RrlConfig;

/// Highest `slip` (Knot's bound: one answer in a hundred still slips).
const MAX_SLIP: u32 = 100;

/// The rules of `rrl` at `at` (`ts.N.rrl`).
pub(super) fn check_rrl(rrl: &RrlConfig, at: &str, check: &mut ConfigChecker<'_>) {
    let key = |k: &str| format!("{at}.{k}");
    check.at_most(rrl.responses_per_s, MAX_RATE_QPS, &key("responses_per_s"));
    check.at_most(rrl.slip, MAX_SLIP, &key("slip"));
    for (name, len, max) in [
        ("ipv4_prefix", rrl.ipv4_prefix, 32),
        ("ipv6_prefix", rrl.ipv6_prefix, 128),
    ] {
        check.require((1..=max).contains(&len), &key(name), || {
            format!("must be 1 to {max}, got {len}")
        });
    }
    check.require(!rrl.log_only || rrl.is_on(), &key("log_only"), || {
        "counts what responses_per_s would limit: set responses_per_s above 0".into()
    });
}

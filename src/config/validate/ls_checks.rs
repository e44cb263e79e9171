//! The rules for `[ls]` (those of its rules, TLS and HTTPS apart:
//! `rule_checks.rs`, `encrypted_checks.rs`), its pools and its caches.
use crate::config::values::MAX_TTL;
use crate::config::{CacheConfig, HedgeDelay, LsConfig, Order, zone_text};

use super::checker::{ConfigChecker, check_names};
use super::limits::{
    MAX_BACKEND_LIMIT, MAX_CACHE_ENTRIES, MAX_EVERY_QUERIES, MAX_FALL_RISE, MAX_INFLIGHT, MAX_MS,
    MAX_RATE_QPS, MAX_STICKY_SIZE, MAX_WEIGHT, MAX_WORKERS,
};
use super::{encrypted_checks, rule_checks};

/// The rules for `[ls]`.
pub(super) fn check_ls(ls: &LsConfig, check: &mut ConfigChecker<'_>) {
    for (path, msg) in ls.cookie_secret.problems("ls.cookie_secret") {
        check.push(&[&path], msg);
    }
    if ls.backend.is_empty() {
        check.push(
            &["ls.backend", "ls"],
            "[ls] needs at least one [[ls.backend]]".into(),
        );
    }
    check_names(
        ls.backend.iter().map(|b| b.name.as_str()),
        "ls.backend",
        "backend",
        check,
    );
    for (i, backend) in ls.backend.iter().enumerate() {
        let addr = backend.addr;
        check.require(
            addr.port() != 0 && !addr.ip().is_unspecified(),
            &format!("ls.backend.{i}.addr"),
            || format!("{addr} is not an address queries can be sent to"),
        );
    }
    if ls.order == Order::WeightedRandom && !ls.backend.is_empty() {
        check.require(ls.backend.iter().any(|b| b.weight > 0), "ls.order", || {
            "weighted-random needs a backend with weight > 0".into()
        });
    }
    check.require(!ls.listen.is_empty(), "ls.listen", || {
        "needs at least one address".into()
    });
    check.require(ls.workers >= 1, "ls.workers", || {
        "must be at least 1".into()
    });
    check.at_most(ls.workers, MAX_WORKERS, "ls.workers");
    for (path, ms) in [
        ("ls.timeout_ms", ls.timeout_ms),
        ("ls.try_timeout_ms", ls.try_timeout_ms),
        ("ls.hedge_min_ms", ls.hedge_min_ms),
        ("ls.hedge_max_ms", ls.hedge_max_ms),
        ("ls.health.interval_ms", ls.health.interval_ms),
        ("ls.health.timeout_ms", ls.health.timeout_ms),
    ] {
        check.at_most(ms, MAX_MS, path);
    }
    if let HedgeDelay::Fixed(ms) = ls.hedge_delay_ms {
        check.at_most(ms, MAX_MS, "ls.hedge_delay_ms");
    }
    check.at_most(ls.max_inflight, MAX_INFLIGHT, "ls.max_inflight");
    check.at_most(ls.sticky_size, MAX_STICKY_SIZE, "ls.sticky_size");
    check.at_most(ls.rate_limit_qps, MAX_RATE_QPS, "ls.rate_limit_qps");
    check.require(
        (1..=128).contains(&ls.rate_limit_v6_prefix),
        "ls.rate_limit_v6_prefix",
        || format!("must be in [1, 128], got {}", ls.rate_limit_v6_prefix),
    );
    check.at_most(ls.health.fall, MAX_FALL_RISE, "ls.health.fall");
    check.at_most(ls.health.rise, MAX_FALL_RISE, "ls.health.rise");
    check.at_most(
        ls.health.every_queries,
        MAX_EVERY_QUERIES,
        "ls.health.every_queries",
    );
    for (i, backend) in ls.backend.iter().enumerate() {
        check.at_most(
            backend.weight,
            MAX_WEIGHT,
            &format!("ls.backend.{i}.weight"),
        );
    }
    check.require(ls.timeout_ms > 0, "ls.timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(ls.try_timeout_ms > 0, "ls.try_timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(ls.synth_ttl <= MAX_TTL, "ls.synth_ttl", || {
        format!("must be at most {MAX_TTL} (RFC 2181), got {}", ls.synth_ttl)
    });
    let pct = ls.hedge_percentile;
    check.require(pct > 0.0 && pct <= 100.0, "ls.hedge_percentile", || {
        format!("must be in (0, 100], got {pct}")
    });
    if ls.hedge_min_ms > ls.hedge_max_ms {
        check.push(
            &["ls.hedge_min_ms", "ls.hedge_max_ms"],
            format!(
                "hedge_min_ms ({}) must not exceed hedge_max_ms ({})",
                ls.hedge_min_ms, ls.hedge_max_ms
            ),
        );
    }
    let budget = ls.hedge_budget_pct;
    check.require(
        (0.0..=100.0).contains(&budget),
        "ls.hedge_budget_pct",
        || format!("must be in [0, 100], got {budget}"),
    );
    if let Some(xdp) = &ls.xdp {
        super::xdp_checks::check_xdp(xdp, check);
    }
    check.require(ls.max_inflight >= 1, "ls.max_inflight", || {
        "must be at least 1".into()
    });
    check.at_most(
        ls.backend_limit_max,
        MAX_BACKEND_LIMIT,
        "ls.backend_limit_max",
    );
    check.require(ls.backend_limit_min >= 1, "ls.backend_limit_min", || {
        "must be at least 1".into()
    });
    if ls.backend_limit_max > 0 && ls.backend_limit_min > ls.backend_limit_max {
        check.push(
            &["ls.backend_limit_min", "ls.backend_limit_max"],
            format!(
                "backend_limit_min ({}) must not exceed backend_limit_max ({}) (0 turns the limit off)",
                ls.backend_limit_min, ls.backend_limit_max
            ),
        );
    }
    if let Some(cache) = &ls.cache {
        check_cache(
            cache,
            "ls.cache",
            "omit [ls.cache] to turn the cache off",
            check,
        );
    }
    let health = &ls.health;
    check.require(health.interval_ms > 0, "ls.health.interval_ms", || {
        "must be at least 1".into()
    });
    check.require(health.timeout_ms > 0, "ls.health.timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(health.fall >= 1, "ls.health.fall", || {
        "must be at least 1".into()
    });
    check.require(health.rise >= 1, "ls.health.rise", || {
        "must be at least 1".into()
    });
    check_pools(ls, check);
    check_names(
        ls.rule.iter().map(|r| r.name.as_str()),
        "ls.rule",
        "rule",
        check,
    );
    check_names(
        ls.response_rule.iter().map(|r| r.name.as_str()),
        "ls.response_rule",
        "response rule",
        check,
    );
    for (paths, msg) in rule_checks::rule_problems(ls) {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        check.push(&paths, msg);
    }
    encrypted_checks::check_encrypted(ls, check);
    let identity = crate::config::anycast::identity_problem(ls.identity.as_deref());
    let blocks = crate::config::dynblock::problems(
        &ls.dynamic_block,
        ls.api_key.as_deref(),
        &ls.control_allow,
    );
    for (path, msg) in blocks.into_iter().chain(identity) {
        // A key left out: the line of its table.
        let table = path.rsplit_once('.').map_or("ls", |(t, _)| t);
        check.push(&[&path, table, "ls"], msg);
    }
}

/// The rules for `[[ls.pool]]`: names, members, zones, and the keys of its own policy.
fn check_pools(ls: &LsConfig, check: &mut ConfigChecker<'_>) {
    check_names(
        ls.pool.iter().map(|p| p.name.as_str()),
        "ls.pool",
        "pool",
        check,
    );
    // Every zone so far, lower case without the final dot, with its pool's index.
    let mut zones: Vec<(String, usize)> = Vec::new();
    for (i, pool) in ls.pool.iter().enumerate() {
        let key = |k: &str| format!("ls.pool.{i}.{k}");
        let who = &pool.name;
        for (list, empty, what) in [
            ("backends", pool.backends.is_empty(), "backend"),
            ("zones", pool.zones.is_empty(), "zone"),
        ] {
            if empty {
                // At the key when written (`[]`), else at the pool's name.
                check.push(
                    &[&key(list), &key("name")],
                    format!("pool {who:?} needs at least one {what}"),
                );
            }
        }
        for (j, name) in pool.backends.iter().enumerate() {
            let at = [key(&format!("backends.{j}")), key("backends")];
            let at = [at[0].as_str(), at[1].as_str()];
            if !ls.backend.iter().any(|b| &b.name == name) {
                let known: Vec<&str> = ls.backend.iter().map(|b| b.name.as_str()).collect();
                check.push(
                    &at,
                    format!(
                        "pool {who:?} names backend {name:?}, which is not an [[ls.backend]] (backends: {})",
                        known.join(", ")
                    ),
                );
            } else if pool.backends[..j].contains(name) {
                check.push(&at, format!("pool {who:?} names backend {name:?} twice"));
            }
        }
        for (j, zone) in pool.zones.iter().enumerate() {
            let text = zone_text(zone);
            let at = [key(&format!("zones.{j}")), key("zones")];
            let at = [at[0].as_str(), at[1].as_str()];
            match zones.iter().find(|(z, _)| *z == text) {
                Some(&(_, owner)) if owner == i => {
                    check.push(&at, format!("pool {who:?} lists zone {text:?} twice"));
                }
                Some(&(_, owner)) => {
                    let owner = ls.pool.get(owner).map_or("", |p| p.name.as_str());
                    check.push(
                        &at,
                        format!("zone {text:?} is already served by pool {owner:?}"),
                    );
                }
                None => zones.push((text, i)),
            }
        }
        if let Some(cache) = &pool.cache {
            let hint = "omit the pool's cache to use [ls.cache]";
            check_cache(cache, &key("cache"), hint, check);
        }
        if let Some(ms) = pool.timeout_ms {
            check.require(ms > 0, &key("timeout_ms"), || "must be at least 1".into());
            check.at_most(ms, MAX_MS, &key("timeout_ms"));
        }
        if ls.policy_of(pool).order == Order::WeightedRandom {
            let weighted = ls
                .backend
                .iter()
                .any(|b| b.weight > 0 && pool.backends.contains(&b.name));
            let at = if pool.order.is_some() {
                key("order")
            } else {
                key("name")
            };
            check.require(weighted || pool.backends.is_empty(), &at, || {
                format!("weighted-random needs a backend of pool {who:?} with weight > 0")
            });
        }
    }
}

/// The rules for a cache table (`[ls.cache]`, or a pool's at `table`);
/// `off` says how to do without it.
fn check_cache(cache: &CacheConfig, table: &str, off: &str, check: &mut ConfigChecker<'_>) {
    let key = |k: &str| format!("{table}.{k}");
    check.require(cache.max_entries >= 1, &key("max_entries"), || {
        format!("must be at least 1 ({off})")
    });
    check.at_most(cache.max_entries, MAX_CACHE_ENTRIES, &key("max_entries"));
    check.require(cache.max_ttl >= 1, &key("max_ttl"), || {
        format!("must be at least 1 ({off})")
    });
    for (k, ttl) in [
        ("max_ttl", cache.max_ttl),
        ("neg_ttl", cache.neg_ttl),
        ("stale_ttl", cache.stale_ttl),
    ] {
        check.require(ttl <= MAX_TTL, &key(k), || {
            format!("must be at most {MAX_TTL} (RFC 2181), got {ttl}")
        });
    }
    if cache.neg_ttl > cache.max_ttl {
        check.push(
            &[&key("neg_ttl"), &key("max_ttl")],
            format!(
                "neg_ttl ({}) must not exceed max_ttl ({})",
                cache.neg_ttl, cache.max_ttl
            ),
        );
    }
}

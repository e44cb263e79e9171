//! The rules a parsed [`Config`] must follow (see [`Config::problems`]), each problem
//! reported with the line of its key when the text is known.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::error::ConfigError;
use super::source_map::{SourceMap, display_path};
use super::ts::NSID_MAX_LEN;
use super::values::MAX_TTL;
use super::{CacheConfig, Config, HedgeDelay, LsConfig, Order, TsConfig, zone_text};

mod encrypted_checks;
mod rule_checks;

/// The longest any `*_ms` key may be: one hour. Past that a deadline is a typo,
/// and near 2^64 ms adding it to a clock overflows.
pub(crate) const MAX_MS: u64 = 3_600_000;
/// Most worker threads (and SO_REUSEPORT sockets per address).
pub(crate) const MAX_WORKERS: usize = 1024;
/// Most client queries in flight (`max_inflight`): 16 Mi. The semaphore that
/// holds them panics past 2^61 - 1.
pub(crate) const MAX_INFLIGHT: usize = 1 << 24;
/// Highest adaptive concurrency limit of a backend (`backend_limit_max`).
pub(crate) const MAX_BACKEND_LIMIT: u32 = 1 << 24;
/// Most names the `sticky` order remembers: 16 Mi slots, 128 MiB. The table is
/// allocated whole, at start and at each reload.
pub(crate) const MAX_STICKY_SIZE: usize = 1 << 24;
/// Highest per-client rate limit, in queries per second.
pub(crate) const MAX_RATE_QPS: u32 = 10_000_000;
/// Most probes in a row for `fall` and `rise`.
pub(crate) const MAX_FALL_RISE: u32 = 1000;
/// Highest `every_queries`.
pub(crate) const MAX_EVERY_QUERIES: u64 = 1_000_000_000;
/// Highest backend `weight` (weights are summed).
pub(crate) const MAX_WEIGHT: u32 = 1_000_000;
/// Most answers the packet cache may keep (`ls.cache.max_entries`): 16 Mi. Its index is
/// allocated whole, at start and at each reload.
pub(crate) const MAX_CACHE_ENTRIES: usize = 1 << 24;

/// The rules of [`Config::problems`] over `config`, with lines looked up in `map` when
/// given.
pub(super) fn problems_in(config: &Config, map: Option<&SourceMap<'_>>) -> Vec<ConfigError> {
    let mut check = Checker {
        file: &config.path,
        map,
        out: Vec::new(),
    };
    if config.ls.is_none() && config.ts.is_empty() {
        check.push(
            &[""],
            "nothing to run: the config has neither [ls] nor [[ts]]".into(),
        );
    }
    if let Some(ls) = &config.ls {
        check_ls(ls, &mut check);
    }
    check_names(
        config.ts.iter().map(|ts| ts.name.as_str()),
        "ts",
        "table server",
        &mut check,
    );
    for (i, ts) in config.ts.iter().enumerate() {
        check_ts(i, ts, &mut check);
    }
    check_keys(config, &mut check);
    check_listeners(config, &mut check);
    check_transfers_behind_ls(config, &mut check);
    let ls_tap = config.ls.as_ref().and_then(|l| l.dnstap.as_ref());
    let ts_taps = config.ts.iter().map(|t| t.dnstap.as_ref());
    for (path, table, msg) in super::dnstap::problems(ls_tap, ts_taps) {
        check.push(&[&path, &table], msg);
    }
    if let Some((a, metrics)) = config
        .ls
        .as_ref()
        .and_then(|l| Some((l.anycast.as_ref()?, l.metrics)))
    {
        for (key, msg) in super::anycast::problems(a, metrics) {
            check.push(&[key, "ls.anycast"], msg);
        }
    }
    check.out.sort_by_key(|e| e.line().unwrap_or(usize::MAX));
    check.out
}

/// A problem `msg` with the key at `path` (dotted, with array indices, e.g.
/// `ts.1.zones`), at the key's line in `text` (the contents of `file`),
/// for the rules that need more than the config to check (`dnslb check` reads the
/// zones too): `config.toml:14: ts.zones: msg`.
pub(super) fn problem_at(file: &Path, text: &str, path: &str, msg: String) -> ConfigError {
    let map = SourceMap::new(text);
    let check = Checker {
        file,
        map: Some(&map),
        out: Vec::new(),
    };
    check.problem(&[path], msg)
}

/// Collects validation problems, finding each one's line.
struct Checker<'a> {
    /// The config file.
    file: &'a Path,
    /// Where keys are in the file, when the text is known.
    map: Option<&'a SourceMap<'a>>,
    /// The problems found so far.
    out: Vec<ConfigError>,
}

impl Checker<'_> {
    /// Records a problem with the key at `paths[0]` (dotted, with array indices, e.g.
    /// `ts.1.name`); the line is that of the first path found in the file, else of the
    /// nearest enclosing table.
    fn push(&mut self, paths: &[&str], msg: String) {
        let problem = self.problem(paths, msg);
        self.out.push(problem);
    }

    /// The problem `msg` with the key at `paths[0]`, as [`Checker::push`] records it.
    fn problem(&self, paths: &[&str], msg: String) -> ConfigError {
        let line = self.map.and_then(|map| map.line_of_any(paths));
        let key = paths.first().map(|p| display_path(p)).unwrap_or_default();
        let msg = if key.is_empty() {
            msg
        } else {
            format!("{key}: {msg}")
        };
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            msg,
        }
    }

    /// Records "must be at most `max`" when `v` exceeds it.
    fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, v: T, max: T, path: &str) {
        if v > max {
            self.push(&[path], format!("must be at most {max}, got {v}"));
        }
    }

    /// Records `msg` unless `ok`.
    fn require(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.push(&[path], msg());
        }
    }
}

/// The rules for `[ls]`.
fn check_ls(ls: &LsConfig, check: &mut Checker<'_>) {
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
    let identity = super::anycast::identity_problem(ls.identity.as_deref());
    let blocks =
        super::dynblock::problems(&ls.dynamic_block, ls.api_key.as_deref(), &ls.control_allow);
    for (path, msg) in blocks.into_iter().chain(identity) {
        // A key left out: the line of its table.
        let table = path.rsplit_once('.').map_or("ls", |(t, _)| t);
        check.push(&[&path, table, "ls"], msg);
    }
}

/// The rules for `[[ls.pool]]`: names, members, zones, and the keys of its own policy.
fn check_pools(ls: &LsConfig, check: &mut Checker<'_>) {
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
fn check_cache(cache: &CacheConfig, table: &str, off: &str, check: &mut Checker<'_>) {
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

/// The rules for the `[[ts]]` at index `i`.
fn check_ts(i: usize, ts: &TsConfig, check: &mut Checker<'_>) {
    let key = |k: &str| format!("ts.{i}.{k}");
    let who = &ts.name;
    check.require(
        !ts.zones.is_empty() || !ts.zones.secondaries.is_empty() || ts.catalog_from.is_some(),
        &key("zones"),
        || format!("table server {who:?} needs at least one zone file"),
    );
    check.require(ts.ttl <= MAX_TTL, &key("ttl"), || {
        format!("must be at most {MAX_TTL} (RFC 2181), got {}", ts.ttl)
    });
    check.require(ts.workers != Some(0), &key("workers"), || {
        "must be at least 1".into()
    });
    if let Some(workers) = ts.workers {
        check.at_most(workers, MAX_WORKERS, &key("workers"));
    }
    check.at_most(ts.fault.delay_ms, MAX_MS, &key("fault.delay_ms"));
    if let Some(nsid) = &ts.nsid {
        check.require(
            (1..=NSID_MAX_LEN).contains(&nsid.len()),
            &key("nsid"),
            || format!("must be 1 to {NSID_MAX_LEN} bytes, got {}", nsid.len()),
        );
    }
    for (name, ratio) in [
        ("delay_ratio", ts.fault.delay_ratio),
        ("drop_ratio", ts.fault.drop_ratio),
    ] {
        check.require(
            (0.0..=1.0).contains(&ratio),
            &key(&format!("fault.{name}")),
            || format!("must be in [0, 1], got {ratio}"),
        );
    }
    // A zone given twice (case and the final dot aside), and a primary
    // that is this TS itself: refused, as NSD and Knot refuse them.
    let mut seen = std::collections::HashSet::new();
    for s in ts.secondary_zones() {
        let mut name = s.name.to_lowercase();
        name.set_fqdn(true);
        if !seen.insert(name) {
            check.push(
                &[&key("zones"), &key("catalog_from")],
                format!("the zone {} is given twice: give each zone once", s.name),
            );
        }
        let own = s.primary == ts.listen
            || (s.primary.port() == ts.listen.port()
                && ts.listen.ip().is_unspecified()
                && (s.primary.ip().is_loopback() || s.primary.ip().is_unspecified()));
        if own {
            check.push(&[&key("zones"), &key("catalog_from")], format!("the primary of {} is {}, this TS's own listen address: a TS cannot be its own primary", s.name, s.primary));
        }
    }
    for (path, msg) in super::service_checks::problems(i, ts) {
        check.push(&[&path], msg);
    }
}

/// The rules for `[[key]]` and the `xfr_key` that name them: unique names,
/// secrets that can be read and used (this rule reads files).
fn check_keys(config: &Config, check: &mut Checker<'_>) {
    let names = config.key.iter().map(|k| k.name.as_str());
    check_names(names, "key", "key", check);
    for (i, key) in config.key.iter().enumerate() {
        if key.name.trim().is_empty() {
            continue;
        }
        if let Err(e) = key.load() {
            let at = format!("key.{i}.{}", e.key);
            check.push(&[&at, &format!("key.{i}.name")], e.msg);
        }
    }
    let known: Vec<&str> = config.key.iter().map(|k| k.name.as_str()).collect();
    let known = if known.is_empty() {
        "there is none".to_owned()
    } else {
        format!("keys: {}", known.join(", "))
    };
    let names_a_key = |check: &mut Checker<'_>, name: &String, path: String| {
        if !config.key.iter().any(|k| &k.name == name) {
            check.push(
                &[&path],
                format!("names key {name:?}, which is not a [[key]] ({known})"),
            );
        }
    };
    for (i, ts) in config.ts.iter().enumerate() {
        for (j, sz) in ts.zones.secondaries.iter().enumerate() {
            if let Some(name) = &sz.xfr_key {
                names_a_key(check, name, format!("ts.{i}.zones.{j}.xfr_key"));
            }
        }
        if let Some(name) = ts.catalog_from.as_ref().and_then(|c| c.xfr_key.as_ref()) {
            names_a_key(check, name, format!("ts.{i}.catalog_from.xfr_key"));
        }
        if let Some(name) = &ts.xfr_key {
            names_a_key(check, name, format!("ts.{i}.xfr_key"));
        }
    }
    let backends = config
        .ls
        .iter()
        .flat_map(|ls| ls.backend.iter().enumerate());
    for (i, b) in backends {
        let Some(name) = &b.notify_key else {
            continue;
        };
        let path = format!("ls.backend.{i}.notify_key");
        names_a_key(check, name, path.clone());
        // A table server of this file signs its NOTIFYs with its xfr_key,
        // or sends them unsigned: any other key would refuse them all.
        if let Some(ts) = config.ts_at(b.addr)
            && ts.xfr_key.as_ref() != Some(name)
        {
            let signs = match &ts.xfr_key {
                Some(k) => format!("signs its NOTIFYs with its xfr_key {k:?}"),
                None => "sends its NOTIFYs unsigned (it has no xfr_key)".into(),
            };
            check.push(
                &[&path],
                format!(
                    "backend {:?} is table server {:?} of this file, which {signs}: leave notify_key out (it follows the table server's xfr_key)",
                    b.name, ts.name
                ),
            );
        }
    }
}

/// Names under `table` (an array of tables) must be non-empty and unique.
fn check_names<'n>(
    names: impl Iterator<Item = &'n str>,
    table: &str,
    what: &str,
    check: &mut Checker<'_>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.enumerate() {
        let path = format!("{table}.{i}.name");
        if name.trim().is_empty() {
            check.push(&[&path], format!("a {what} name must not be empty"));
        } else if seen.contains(&name) {
            check.push(&[&path], format!("duplicate {what} name {name:?}"));
        }
        seen.push(name);
    }
}

/// No two listeners on one address (DNS and metrics alike, whoever owns them), and no
/// backend pointing at the LS's own listener.
fn check_listeners(config: &Config, check: &mut Checker<'_>) {
    let mut listeners: Vec<(String, String, SocketAddr)> = Vec::new();
    if let Some(ls) = &config.ls {
        for (i, addr) in ls.listen.iter().enumerate() {
            listeners.push((format!("ls.listen.{i}"), "ls.listen".into(), *addr));
        }
        if let Some(addr) = ls.metrics {
            listeners.push(("ls.metrics".into(), "ls.metrics".into(), addr));
        }
        let encrypted = [
            ("ls.tls.listen", ls.tls.as_ref().map(|t| &t.listen)),
            ("ls.https.listen", ls.https.as_ref().map(|h| &h.listen)),
        ];
        for (key, addrs) in encrypted {
            for (i, addr) in addrs.into_iter().flatten().enumerate() {
                listeners.push((format!("{key}.{i}"), key.into(), *addr));
            }
        }
    }
    for (i, ts) in config.ts.iter().enumerate() {
        let owner = format!("table server {:?}", ts.name);
        listeners.push((format!("ts.{i}.listen"), owner.clone(), ts.listen));
        if let Some(addr) = ts.metrics {
            let owner = format!("the metrics of {owner}");
            listeners.push((format!("ts.{i}.metrics"), owner, addr));
        }
    }
    for (j, (path, _, addr)) in listeners.iter().enumerate() {
        if let Some((_, owner, _)) = listeners[..j].iter().find(|l| overlap(l.2, *addr)) {
            check.push(&[path], format!("{addr} is already used by {owner}"));
        }
    }
    if let Some(ls) = &config.ls {
        for (i, backend) in ls.backend.iter().enumerate() {
            if ls.listen.iter().any(|l| overlap(*l, backend.addr)) {
                check.push(
                    &[&format!("ls.backend.{i}.addr")],
                    format!(
                        "{} is the LS's own listener; it would forward to itself",
                        backend.addr
                    ),
                );
            }
        }
    }
}

/// The address an LS on this host sends from to reach a backend at `ip`
/// (it binds no source address): 127.0.0.1 for all of 127/8 (Linux's source
/// for the loopback route), the address itself for another local one.
fn ls_source_toward(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Ipv4Addr::LOCALHOST.into(),
        ip => ip,
    }
}

/// No `[[ts]]` behind this config's LS hands zone transfers to the LS's own
/// address without a key: the LS forwards its clients' queries from that
/// address, so every client of the LS could read the zones (an IXFR over
/// UDP, say) through it. The secondaries are named by their own addresses,
/// or `xfr_key` makes a transfer need the key whatever its source.
fn check_transfers_behind_ls(config: &Config, check: &mut Checker<'_>) {
    let Some(ls) = &config.ls else {
        return;
    };
    for (i, ts) in config.ts.iter().enumerate() {
        if ts.xfr_key.is_some() {
            continue;
        }
        let behind = ls.backend.iter().filter(|b| overlap(b.addr, ts.listen));
        for b in behind {
            let from = ls_source_toward(b.addr.ip());
            if let Some(net) = ts.axfr_allow.iter().find(|n| n.contains(&from)) {
                check.push(
                    &[&format!("ts.{i}.axfr_allow")],
                    format!(
                        "{net} holds {from}, the address the LS of this config forwards its clients' queries to table server {:?} from (backend {:?}): every client of the LS could transfer its zones; list the secondaries' own addresses, or set xfr_key",
                        ts.name, b.name
                    ),
                );
                break;
            }
        }
    }
}

/// Whether sockets bound to `a` and `b` would compete for the same port.
pub(super) fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

//! The rules `[[ts.service]]` must follow, beside the rest of `[[ts]]`'s:
//! endpoints, weights, the check's values, views naming groups some endpoint
//! has, names unique in their TS. (The rules that need the zones, a name
//! inside a zone of the TS with no other data at that owner, are the TS's.)

use super::service::{CheckKind, ServiceConfig, WhenAllDown};
use super::ts::TsConfig;
use super::values::MAX_TTL;

/// Most addresses one answer of a service may hold (`max_answers`, `pick`).
pub const MAX_SERVICE_ANSWERS: u32 = 64;
/// The longest `interval_ms` and `timeout_ms` (as the other `*_ms` keys).
const MAX_MS: u64 = 3_600_000;
/// Most probes in a row for `rise` and `fall` (as `[ls.health]`'s).
const MAX_FALL_RISE: u32 = 1000;
/// Highest endpoint `weight` (as a backend's).
const MAX_WEIGHT: u32 = 1_000_000;

/// The problems found, each as (key path, message), in the order found.
#[derive(Default)]
pub(super) struct Found(pub(super) Vec<(String, String)>);

impl Found {
    fn require(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push((path.to_owned(), msg()));
        }
    }
    fn at_most(&mut self, v: u32, max: u32, path: &str) {
        self.require(v <= max, path, || format!("must be at most {max}, got {v}"));
    }
}

/// The problems of the `[[ts.service]]` of the `i`th `[[ts]]`.
pub(super) fn problems(i: usize, ts: &TsConfig) -> Vec<(String, String)> {
    let mut found = Found::default();
    let check = &mut found;
    // The names seen so far: a set, not a scan of the earlier services (a
    // TS of 100,000 services is read in linear time).
    let mut seen = std::collections::HashSet::with_capacity(ts.service.len());
    for (j, s) in ts.service.iter().enumerate() {
        let first = !seen.insert(&s.name);
        check.require(!first, &format!("ts.{i}.service.{j}.name"), || {
            format!("{} is the name of an earlier [[ts.service]]", s.name)
        });
        check_service(&format!("ts.{i}.service.{j}"), s, check);
    }
    found.0
}

/// The rules for one service at `at` (`ts.0.service.1`).
fn check_service(at: &str, s: &ServiceConfig, check: &mut Found) {
    let key = |k: &str| format!("{at}.{k}");
    check.require(s.ttl <= MAX_TTL, &key("ttl"), || {
        format!("must be at most {MAX_TTL} (RFC 2181), got {}", s.ttl)
    });
    for (name, v) in [
        ("max_answers", s.max_answers),
        ("pick", s.pick),
        ("min_live", s.min_live),
    ] {
        check.require(v >= 1, &key(name), || "must be at least 1".into());
        check.at_most(v, MAX_SERVICE_ANSWERS, &key(name));
    }
    check.require(!s.endpoint.is_empty(), &key("endpoint"), || {
        format!("service {} needs at least one endpoint", s.name)
    });
    for (k, e) in s.endpoint.iter().enumerate() {
        let path = key(&format!("endpoint.{k}.weight"));
        check.require(e.weight >= 1, &path, || "must be at least 1".into());
        check.at_most(e.weight, MAX_WEIGHT, &path);
        let twice = s.endpoint[..k].iter().any(|o| o.addr == e.addr);
        check.require(!twice, &key(&format!("endpoint.{k}.addr")), || {
            format!("{} is an endpoint of this service already", e.addr)
        });
    }
    let groups = s.groups();
    for (v, view) in s.view.iter().enumerate() {
        let path = key(&format!("view.{v}"));
        check.require(!view.clients.is_empty(), &format!("{path}.clients"), || {
            "needs at least one network".into()
        });
        check.require(!view.groups.is_empty(), &format!("{path}.groups"), || {
            "needs at least one group".into()
        });
        for g in &view.groups {
            check.require(
                groups.contains(&g.as_str()),
                &format!("{path}.groups"),
                || {
                    let known: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
                    format!(
                        "names group {g:?}, which no endpoint has (groups: {})",
                        known.join(", ")
                    )
                },
            );
        }
    }
    if let WhenAllDown::Fallback(name) = &s.when_all_down {
        check.require(*name != s.name, &key("when_all_down"), || {
            "the fallback cannot be the service's own name".into()
        });
    }
    let c = &s.check;
    if c.kind != CheckKind::None {
        check.require(c.port.is_some_and(|p| p != 0), &key("check"), || {
            format!("a {} check needs a port (1 to 65535)", c.kind)
        });
        for (name, v) in [("interval_ms", c.interval_ms), ("timeout_ms", c.timeout_ms)] {
            check.require(v >= 1, &key("check"), || {
                format!("{name} must be at least 1")
            });
            check.require(v <= MAX_MS, &key("check"), || {
                format!("{name} must be at most {MAX_MS}, got {v}")
            });
        }
        for (name, v) in [("rise", c.rise), ("fall", c.fall)] {
            check.require((1..=MAX_FALL_RISE).contains(&v), &key("check"), || {
                format!("{name} must be 1 to {MAX_FALL_RISE}, got {v}")
            });
        }
    }
    if c.kind == CheckKind::Http {
        check.require((100..=599).contains(&c.expect), &key("check"), || {
            format!(
                "expect must be an HTTP status (100 to 599), got {}",
                c.expect
            )
        });
        check.require(c.path.starts_with('/'), &key("check"), || {
            format!("path must start with '/', got {:?}", c.path)
        });
    }
}

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
    fallback_loops(i, ts, &mut found);
    found.0
}

/// Fallback chains that come back to where they began through services of
/// this TS (`a` falls back to `b`, `b` to `a`): with their endpoints all
/// down the CNAMEs would point at each other, a loop every resolver gives
/// up on (SERVFAIL). Reported once per loop, at its first service. A chain
/// that leaves the TS's services (a name in a zone, or elsewhere) is the
/// operator's to keep sound; a service falling back to itself is reported
/// by [`check_service`]. Linear in the services (each is walked once).
fn fallback_loops(i: usize, ts: &TsConfig, found: &mut Found) {
    let index: std::collections::HashMap<&hickory_proto::rr::Name, usize> = ts
        .service
        .iter()
        .enumerate()
        .map(|(j, s)| (&s.name, j))
        .collect();
    // The next service of each service's chain, if its fallback is one.
    let next = |j: usize| match ts.service.get(j).map(|s| &s.when_all_down) {
        Some(WhenAllDown::Fallback(n)) => index.get(n).copied().filter(|&k| k != j),
        _ => None,
    };
    // 0: not walked yet, 1: on the chain being walked, 2: done.
    let mut state = vec![0u8; ts.service.len()];
    for start in 0..ts.service.len() {
        let mut chain = Vec::new();
        let mut at = Some(start);
        while let Some(j) = at {
            match state.get(j) {
                Some(0) => {
                    state[j] = 1;
                    chain.push(j);
                    at = next(j);
                }
                Some(1) => {
                    let from = chain.iter().position(|&k| k == j).unwrap_or(0);
                    let looped = chain.get(from..).unwrap_or_default();
                    let first = looped.iter().copied().min().unwrap_or(j);
                    let mut names: Vec<String> = looped
                        .iter()
                        .map(|&k| ts.service[k].name.to_string())
                        .collect();
                    let turn = looped.iter().position(|&k| k == first).unwrap_or(0);
                    names.rotate_left(turn);
                    names.push(ts.service[first].name.to_string());
                    found.require(
                        false,
                        &format!("ts.{i}.service.{first}.when_all_down"),
                        || {
                            format!(
                                "the fallbacks loop ({}): with their endpoints all down the \
                                 CNAMEs would point at each other",
                                names.join(" -> ")
                            )
                        },
                    );
                    break;
                }
                _ => break,
            }
        }
        for k in chain {
            state[k] = 2;
        }
    }
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
        check.require(
            reachable(e.addr),
            &key(&format!("endpoint.{k}.addr")),
            || {
                format!(
                    "{} is no address a client can reach (unspecified, multicast, broadcast, \
                 or IPv4 written as IPv6: give the IPv4 address)",
                    e.addr
                )
            },
        );
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
        // They go into the request as they are: a space or a control
        // character would end the line early (every probe would fail).
        check.require(header_safe(&c.path), &key("check"), || {
            format!(
                "path must hold no space or control character, got {:?}",
                c.path
            )
        });
        if let Some(host) = &c.host {
            check.require(header_safe(host), &key("check"), || {
                format!("host must be a name or address with no space or control character, got {host:?}")
            });
        }
    }
}

/// Whether `text` can go into an HTTP request line or header as it is.
fn header_safe(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b > b' ' && b != 0x7f)
}

/// Whether `addr` can be a service's answer: not unspecified, multicast or
/// the IPv4 broadcast, and not an IPv4 address written as IPv6 (it would be
/// answered to AAAA queries).
fn reachable(addr: std::net::IpAddr) -> bool {
    match addr {
        std::net::IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        std::net::IpAddr::V6(a) => {
            !(a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some())
        }
    }
}

//! The rules a parsed [`Config`] must follow (see [`Config::problems`]), each problem
//! reported with the line of its key when the text is known.
//!
//! The folder: `checker` (the problems found so far, and unique names),
//! `limits` (the largest value of each numeric key), `ls_checks` (`[ls]`,
//! its pools and caches), `rule_checks` (`[[ls.rule]]`,
//! `[[ls.response_rule]]`), `encrypted_checks` (`[ls.tls]`, `[ls.https]`),
//! `xdp_checks` (`xdp` in `[[ts]]`, `[ls.xdp]`), `rrl_checks` (`rrl` in `[[ts]]`),
//! `quic_checks` (`quic` in `[[ts]]`, the QUIC addresses);
//! the `[[ts]]`, `[[key]]` and listener rules are here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::error::ConfigError;
use super::source_map::SourceMap;
use super::ts::NSID_MAX_LEN;
use super::values::MAX_TTL;
use super::{Config, TsConfig};

mod checker;
mod encrypted_checks;
mod limits;
mod ls_checks;
mod quic_checks;
mod rrl_checks;
mod rule_checks;
mod xdp_checks;

pub(super) use checker::overlap;
use checker::{ConfigChecker, check_names};
use limits::{MAX_MS, MAX_WORKERS};
use ls_checks::check_ls;

pub(crate) use limits::MAX_STICKY_SIZE;

/// The rules of [`Config::problems`] over `config`, with lines looked up in `map` when
/// given.
pub(super) fn problems_in(config: &Config, map: Option<&SourceMap<'_>>) -> Vec<ConfigError> {
    let mut check = ConfigChecker {
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
    quic_checks::check_quic(config, &mut check);
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
    let check = ConfigChecker {
        file,
        map: Some(&map),
        out: Vec::new(),
    };
    check.problem(&[path], msg)
}

/// The rules for the `[[ts]]` at index `i`.
fn check_ts(i: usize, ts: &TsConfig, check: &mut ConfigChecker<'_>) {
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
    xdp_checks::check_interfaces(&ts.xdp, &key("xdp"), check);
    rrl_checks::check_rrl(&ts.rrl, &key("rrl"), check);
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
        let own = ts.listen.iter().any(|l| {
            s.primary == *l
                || (s.primary.port() == l.port()
                    && l.ip().is_unspecified()
                    && (s.primary.ip().is_loopback() || s.primary.ip().is_unspecified()))
        });
        if own {
            check.push(&[&key("zones"), &key("catalog_from")], format!("the primary of {} is {}, this TS's own listen address: a TS cannot be its own primary", s.name, s.primary));
        }
    }
    for (path, msg) in ts.cookie_secret.problems(&key("cookie_secret")) {
        check.push(&[&path], msg);
    }
    for (path, msg) in super::service_checks::problems(i, ts) {
        check.push(&[&path], msg);
    }
    // The zone control's gate, as the LS's (`api_key`, `control_allow`).
    let min = super::dynblock::MIN_API_KEY_LEN;
    if let Some(k) = &ts.api_key {
        check.require(
            k.chars().count() >= min && k.trim() == k,
            &key("api_key"),
            || {
                format!(
                    "must be at least {min} characters, without leading or trailing white space"
                )
            },
        );
    }
    check.require(!ts.control_allow.is_empty(), &key("control_allow"), || {
        "needs at least one network (loopback is [\"127.0.0.0/8\", \"::1/128\"])".into()
    });
}

/// The rules for `[[key]]` and the `xfr_key` that name them: unique names,
/// secrets that can be read and used (this rule reads files).
fn check_keys(config: &Config, check: &mut ConfigChecker<'_>) {
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
    let names_a_key = |check: &mut ConfigChecker<'_>, name: &String, path: String| {
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
        for (key, msg) in
            super::link_problems(b.transport, b.tls_name.as_deref(), b.ca.as_deref(), b.addr)
        {
            check.push(
                &[&format!("ls.backend.{i}.{key}"), &format!("ls.backend.{i}")],
                msg,
            );
        }
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

/// A listener's sockets: UDP, TCP or both at its address.
const UDP: u8 = 1;
const TCP: u8 = 2;
const BOTH: u8 = UDP | TCP;

/// No two listeners on one address and protocol (DNS and metrics alike,
/// whoever owns them: DoQ's UDP may share DoT's port), and no backend
/// pointing at the LS's own listener.
fn check_listeners(config: &Config, check: &mut ConfigChecker<'_>) {
    let mut listeners: Vec<(String, String, SocketAddr, u8)> = Vec::new();
    if let Some(ls) = &config.ls {
        for (i, addr) in ls.listen.iter().enumerate() {
            listeners.push((format!("ls.listen.{i}"), "ls.listen".into(), *addr, BOTH));
        }
        if let Some(addr) = ls.metrics {
            listeners.push(("ls.metrics".into(), "ls.metrics".into(), addr, TCP));
        }
        let https_sockets = if ls.https.as_ref().is_some_and(|h| h.http3) {
            BOTH
        } else {
            TCP
        };
        let encrypted = [
            ("ls.tls.listen", ls.tls.as_ref().map(|t| &t.listen), TCP),
            // HTTP/3 takes UDP at the same port numbers.
            (
                "ls.https.listen",
                ls.https.as_ref().map(|h| &h.listen),
                https_sockets,
            ),
            ("ls.quic.listen", ls.quic.as_ref().map(|q| &q.listen), UDP),
        ];
        for (key, addrs, sockets) in encrypted {
            for (i, addr) in addrs.into_iter().flatten().enumerate() {
                listeners.push((format!("{key}.{i}"), key.into(), *addr, sockets));
            }
        }
    }
    for (i, ts) in config.ts.iter().enumerate() {
        let owner = format!("table server {:?}", ts.name);
        for (j, addr) in ts.listen.iter().enumerate() {
            listeners.push((format!("ts.{i}.listen.{j}"), owner.clone(), *addr, BOTH));
        }
        if let Some(addr) = ts.metrics {
            let owner = format!("the metrics of {owner}");
            listeners.push((format!("ts.{i}.metrics"), owner, addr, TCP));
        }
        if let Some(addr) = ts.control {
            let owner = format!("the zone control of {owner}");
            listeners.push((format!("ts.{i}.control"), owner, addr, TCP));
        }
        for (j, addr) in ts.quic.iter().flat_map(|q| &q.listen).enumerate() {
            let who = format!("the DNS over QUIC of {owner}");
            listeners.push((format!("ts.{i}.quic.listen.{j}"), who, *addr, UDP));
        }
    }
    for (j, (path, _, addr, sockets)) in listeners.iter().enumerate() {
        let clash =
            |l: &&(String, String, SocketAddr, u8)| l.3 & sockets != 0 && overlap(l.2, *addr);
        if let Some((_, owner, _, theirs)) = listeners[..j].iter().find(clash) {
            // The protocol they share, when one takes more than the other.
            let on = match theirs & sockets {
                _ if theirs == sockets => "",
                UDP => " (UDP)",
                TCP => " (TCP)",
                _ => "",
            };
            check.push(&[path], format!("{addr} is already used by {owner}{on}"));
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
fn check_transfers_behind_ls(config: &Config, check: &mut ConfigChecker<'_>) {
    let Some(ls) = &config.ls else {
        return;
    };
    for (i, ts) in config.ts.iter().enumerate() {
        if ts.xfr_key.is_some() {
            continue;
        }
        let behind = (ls.backend.iter()).filter(|b| ts.listen.iter().any(|l| overlap(b.addr, *l)));
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

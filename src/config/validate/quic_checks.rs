//! The DNS over QUIC keys of the table servers, `quic` in `[[ts]]`: at
//! least one address, a certificate and key that can be read, parse and
//! belong together; and every QUIC address (the LS's `[ls.quic]` and each
//! TS's) used once among the UDP ports: neither another QUIC listener's nor
//! a DNS `listen` address's (UDP too). A TCP-only listener (DoT, metrics)
//! may share its port number.

use std::net::SocketAddr;

use super::super::{Config, load_certified_key};
use super::checker::{ConfigChecker, overlap};

/// The rules of `quic` in each `[[ts]]`, and the UDP addresses' clashes.
pub(super) fn check_quic(config: &Config, check: &mut ConfigChecker<'_>) {
    for (i, ts) in config.ts.iter().enumerate() {
        let Some(quic) = &ts.quic else { continue };
        let table = format!("ts.{i}.quic");
        check.require(!quic.listen.is_empty(), &format!("{table}.listen"), || {
            "needs at least one address (omit quic to turn DNS over QUIC off)".into()
        });
        if let Err(e) = load_certified_key(&quic.cert, &quic.key) {
            check.push(&[&format!("{table}.{}", e.key), &table], e.to_string());
        }
    }
    let (quic, dns) = udp_listeners(config);
    for (j, (path, _, addr)) in quic.iter().enumerate() {
        let earlier = quic[..j].iter().chain(&dns);
        if let Some((_, owner, _)) = earlier.into_iter().find(|l| overlap(l.2, *addr)) {
            check.push(&[path], format!("{addr} is already used by {owner} (UDP)"));
        }
    }
}

/// A listener: the key path of its address, who owns it, the address.
type Listener = (String, String, SocketAddr);

/// The QUIC listeners of `config` (the LS's, then each TS's) and its DNS
/// `listen` addresses (UDP as well as TCP).
fn udp_listeners(config: &Config) -> (Vec<Listener>, Vec<Listener>) {
    let (mut quic, mut dns) = (Vec::new(), Vec::new());
    if let Some(ls) = &config.ls {
        for (i, addr) in ls.listen.iter().enumerate() {
            dns.push((format!("ls.listen.{i}"), "ls.listen".into(), *addr));
        }
        for (i, addr) in ls.quic.iter().flat_map(|q| &q.listen).enumerate() {
            quic.push((format!("ls.quic.listen.{i}"), "ls.quic".into(), *addr));
        }
    }
    for (i, ts) in config.ts.iter().enumerate() {
        let owner = format!("table server {:?}", ts.name);
        for (j, addr) in ts.listen.iter().enumerate() {
            dns.push((format!("ts.{i}.listen.{j}"), owner.clone(), *addr));
        }
        for (j, addr) in ts.quic.iter().flat_map(|q| &q.listen).enumerate() {
            let who = format!("the DNS over QUIC of {owner}");
            quic.push((format!("ts.{i}.quic.listen.{j}"), who, *addr));
        }
    }
    (quic, dns)
}

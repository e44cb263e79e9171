//! What the LS's XDP program drops ([`LsXdpPolicy`]): clients outside
//! `allow` and clients held by a block whose action is drop (their queries
//! would be refused or dropped at the door anyway; not a block whose rule
//! excludes some of its addresses: the door judges those), read from the
//! snapshot and the blocks in force each time the XDP keeper asks; the program's
//! drops outside `allow` are counted with the ACL's refusals, and its drops
//! of a blocked network as the block's: stopped by it, and queries of the
//! client for the rules that count them (so a block is renewed while its
//! flood goes on, as when the LS's workers drop it).
//!
//! With the upstream queries through the workers, the backends' answers
//! come through the program too: the backends' addresses are then allowed,
//! and a block that holds one is left to the workers (a backend's own
//! queries to the LS are still judged at the door, as on the sockets).
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use std::net::IpAddr;

use ipnet::IpNet;

use super::balancer::Balancer;
use crate::xdp::{Filter, XdpPolicy};

/// The LS's say in what its XDP program drops.
pub struct LsXdpPolicy {
    balancer: Arc<Balancer>,
    /// Whether the backends' answers come through the program.
    backends: bool,
}

impl LsXdpPolicy {
    /// The policy of `balancer`.
    pub fn new(balancer: Arc<Balancer>) -> Self {
        LsXdpPolicy {
            balancer,
            backends: false,
        }
    }

    /// The same, letting the backends' answers through when `on` (the
    /// upstream queries go through the workers).
    pub fn with_backends(self, on: bool) -> Self {
        LsXdpPolicy {
            backends: on,
            ..self
        }
    }
}

impl XdpPolicy for LsXdpPolicy {
    fn filter(&mut self) -> Filter {
        let state = self.balancer.state();
        let filter = Filter {
            allow: Some(state.allow_nets.clone()),
            blocked: self.balancer.dynblocks().drop_nets(),
        };
        if !self.backends {
            return filter;
        }
        let backends: Vec<IpAddr> = state.backends.iter().map(|b| b.addr.ip()).collect();
        with_backends(filter, &backends)
    }

    fn dropped(&mut self, not_allowed: u64, blocked: &[(IpNet, u64)]) {
        if not_allowed > 0 {
            (self.balancer.metrics().refused_acl).fetch_add(not_allowed, Relaxed);
        }
        let blocks = self.balancer.dynblocks();
        for (net, n) in blocked {
            blocks.on_dropped(*net, *n);
        }
    }
}

/// `filter` letting through the datagrams of `backends` (pure): each
/// allowed (when only some networks are), no network that holds one blocked.
fn with_backends(mut filter: Filter, backends: &[IpAddr]) -> Filter {
    if let Some(allow) = filter.allow.as_mut() {
        allow.extend(backends.iter().map(|ip| IpNet::from(*ip)));
    }
    filter
        .blocked
        .retain(|net| !backends.iter().any(|ip| net.contains(ip)));
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backends_answers_pass_the_acl_and_the_blocks() {
        let nets = |s: &[&str]| s.iter().map(|n| n.parse().unwrap()).collect::<Vec<IpNet>>();
        let backends: Vec<IpAddr> =
            vec!["198.18.0.2".parse().unwrap(), "2001:2::2".parse().unwrap()];
        let f = Filter {
            allow: Some(nets(&["10.0.0.0/8"])),
            blocked: nets(&["198.18.0.0/24", "203.0.113.0/24"]),
        };
        let got = with_backends(f, &backends);
        assert_eq!(
            got.allow,
            Some(nets(&["10.0.0.0/8", "198.18.0.2/32", "2001:2::2/128"]))
        );
        assert_eq!(got.blocked, nets(&["203.0.113.0/24"]));
        // Everyone allowed stays everyone.
        let open = Filter::default();
        assert_eq!(with_backends(open, &backends).allow, None);
    }
}

//! What the LS's XDP program drops ([`LsXdpPolicy`]): clients outside
//! `allow` and clients held by a block whose action is drop (their queries
//! would be refused or dropped at the door anyway), read from the snapshot
//! and the blocks in force each time the XDP keeper asks; the program's
//! drops outside `allow` are counted with the ACL's refusals, and its drops
//! of a blocked network as the block's: stopped by it, and queries of the
//! client for the rules that count them (so a block is renewed while its
//! flood goes on, as when the LS's workers drop it).
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use ipnet::IpNet;

use super::balancer::Balancer;
use super::dynblock::BlockInfo;
use crate::xdp::{Filter, XdpPolicy};

/// The LS's say in what its XDP program drops.
pub struct LsXdpPolicy {
    balancer: Arc<Balancer>,
}

impl LsXdpPolicy {
    /// The policy of `balancer`.
    pub fn new(balancer: Arc<Balancer>) -> Self {
        LsXdpPolicy { balancer }
    }
}

impl XdpPolicy for LsXdpPolicy {
    fn filter(&mut self) -> Filter {
        let state = self.balancer.state();
        let blocks = self.balancer.dynblocks().list(Instant::now());
        filter_of(&state.allow_nets, &blocks)
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

/// The filter of `allow` and the client blocks among `blocks` whose action
/// is drop.
fn filter_of(allow: &[IpNet], blocks: &[BlockInfo]) -> Filter {
    let blocked = blocks
        .iter()
        .filter(|b| b.kind == "client" && b.action == "drop")
        .filter_map(|b| {
            b.target
                .parse::<IpNet>()
                .ok()
                .or_else(|| b.target.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect();
    Filter {
        allow: Some(allow.to_vec()),
        blocked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(target: &str, kind: &str, action: &str) -> BlockInfo {
        BlockInfo {
            target: target.into(),
            kind: kind.into(),
            rule: "r".into(),
            reason: "x".into(),
            action: action.into(),
            seconds_left: 1,
            queries_blocked: 0,
        }
    }

    #[test]
    fn only_client_blocks_that_drop_are_dropped_in_xdp() {
        let allow: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let blocks = [
            block("198.18.0.2", "client", "drop"),
            block("2001:db8::/56", "client", "drop"),
            block("198.18.0.3", "client", "truncate"),
            block("198.18.0.4", "client", "refuse"),
            block("example.com", "name", "drop"),
        ];
        let f = filter_of(&allow, &blocks);
        assert_eq!(f.allow, Some(allow));
        let want: Vec<IpNet> = vec![
            "198.18.0.2/32".parse().unwrap(),
            "2001:db8::/56".parse().unwrap(),
        ];
        assert_eq!(f.blocked, want);
    }
}

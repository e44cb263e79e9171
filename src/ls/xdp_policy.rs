//! What the LS's XDP program drops ([`LsXdpPolicy`]): clients outside
//! `allow` and clients held by a block whose action is drop (their queries
//! would be refused or dropped at the door anyway; not a block whose rule
//! excludes some of its addresses: the door judges those), read from the
//! snapshot and the blocks in force each time the XDP keeper asks; the program's
//! drops outside `allow` are counted with the ACL's refusals, and its drops
//! of a blocked network as the block's: stopped by it, and queries of the
//! client for the rules that count them (so a block is renewed while its
//! flood goes on, as when the LS's workers drop it).
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use ipnet::IpNet;

use super::balancer::Balancer;
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
        Filter {
            allow: Some(state.allow_nets.clone()),
            blocked: self.balancer.dynblocks().drop_nets(),
        }
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

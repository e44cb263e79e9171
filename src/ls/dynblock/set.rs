//! The blocks in force: one [`Block`] each (what is blocked, by which rule,
//! why, until when, how many queries it stopped), and the immutable
//! [`BlockSet`] the maintenance tick publishes and every worker reads at
//! the door ([`BlockSet::find`]: the client's group, then the networks
//! blocked by hand, then the query name and each name above it).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use ipnet::IpNet;

use super::table::{label_starts, wire_text};
use crate::config::DynAction;
use crate::guard::netset::NetSet;

/// Most blocks in force at once.
pub const MAX_BLOCKS: usize = 10_000;
/// Most blocks added by hand in force at once.
pub const MAX_MANUAL: usize = 1024;
/// The rule name of blocks added by hand.
pub const MANUAL: &str = "manual";

/// Counters of one rule and action (`/metrics`).
#[derive(Debug)]
pub struct RuleStats {
    /// The rule (`manual` for blocks added by hand).
    pub rule: String,
    /// Its action.
    pub action: DynAction,
    /// Blocks it started.
    pub blocks: AtomicU64,
    /// Queries its blocks stopped.
    pub queries_blocked: AtomicU64,
    /// Warnings it logged (over `warn_threshold`).
    pub warnings: AtomicU64,
}

impl RuleStats {
    /// Zeroed counters of `rule` with `action`.
    pub fn new(rule: &str, action: DynAction) -> Self {
        RuleStats {
            rule: rule.to_owned(),
            action,
            blocks: AtomicU64::new(0),
            queries_blocked: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
        }
    }
}

/// What a block stops.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockKey {
    /// A client group (an IPv4 address, an IPv6 prefix).
    Client(IpAddr),
    /// A network (blocked by hand).
    Net(IpNet),
    /// A name and every name under it (lower-case wire form).
    Name(Box<[u8]>),
}

impl BlockKey {
    /// How a block names `key` (`/blocks`, its log lines and events): an
    /// IPv6 client group with its prefix length (`2001:db8:a::/64`), the
    /// rest as they print.
    pub fn text(key: &BlockKey, v6_prefix: u8) -> String {
        match key {
            BlockKey::Client(ip @ IpAddr::V6(_)) if v6_prefix < 128 => format!("{ip}/{v6_prefix}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for BlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockKey::Client(ip) => write!(f, "{ip}"),
            BlockKey::Net(net) => write!(f, "{net}"),
            BlockKey::Name(wire) => f.write_str(&wire_text(wire)),
        }
    }
}

/// One block in force.
#[derive(Debug)]
pub struct Block {
    /// What it stops.
    pub key: BlockKey,
    /// Why: what was counted, against which threshold.
    pub reason: String,
    /// When it ends (renewed while the key stays over the threshold).
    until: std::sync::Mutex<Instant>,
    /// Queries it stopped.
    pub blocked: AtomicU64,
    /// Its rule's counters (which hold the rule's name and action).
    pub stats: Arc<RuleStats>,
    /// Addresses it never stops (its rule's `exclude`): a client group
    /// blocked as a whole still lets them through.
    exclude: Option<Arc<NetSet>>,
}

impl Block {
    /// A block of `key` by `stats`'s rule until `until`.
    pub fn new(key: BlockKey, reason: String, until: Instant, stats: Arc<RuleStats>) -> Self {
        Block {
            key,
            reason,
            until: std::sync::Mutex::new(until),
            blocked: AtomicU64::new(0),
            stats,
            exclude: None,
        }
    }

    /// The block, letting the addresses of `exclude` through.
    pub fn excluding(mut self, exclude: Arc<NetSet>) -> Self {
        self.exclude = Some(exclude);
        self
    }

    /// Whether it lets a query from `ip` through (an excluded address).
    pub fn exempts(&self, ip: IpAddr) -> bool {
        self.exclude.as_ref().is_some_and(|x| x.contains(ip))
    }

    /// When it ends.
    pub fn until(&self) -> Instant {
        *self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps it in force until `until` at least.
    pub fn renew(&self, until: Instant) {
        let mut u = self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *u = (*u).max(until);
    }

    /// The action of its rule.
    pub fn action(&self) -> DynAction {
        self.stats.action
    }

    /// Counts one query it stopped.
    pub fn hit(&self) {
        self.hits(1);
    }

    /// Counts `n` queries it stopped.
    pub fn hits(&self, n: u64) {
        self.blocked.fetch_add(n, Relaxed);
        self.stats.queries_blocked.fetch_add(n, Relaxed);
    }
}

/// The blocks in force, as published to the workers: immutable, replaced
/// whole.
#[derive(Debug, Default)]
pub struct BlockSet {
    clients: HashMap<IpAddr, Arc<Block>>,
    nets: Vec<(IpNet, Arc<Block>)>,
    names: HashMap<Box<[u8]>, Arc<Block>>,
}

impl BlockSet {
    /// A set of `blocks`.
    pub fn new<'a>(blocks: impl IntoIterator<Item = &'a Arc<Block>>) -> Self {
        let mut set = BlockSet::default();
        for b in blocks {
            match &b.key {
                BlockKey::Client(ip) => {
                    set.clients.insert(*ip, b.clone());
                }
                BlockKey::Net(net) => set.nets.push((*net, b.clone())),
                BlockKey::Name(wire) => {
                    set.names.insert(wire.clone(), b.clone());
                }
            }
        }
        set
    }

    /// The networks of its blocks whose action is drop, as a packet
    /// filter can drop them (sorted): a client group's (an IPv4 address, an
    /// IPv6 prefix of `v6_prefix` bits) and a network blocked by hand; not a
    /// block that lets some of its addresses through (its rule's
    /// `exclude`): those are the door's to judge.
    pub fn drop_nets(&self, v6_prefix: u8) -> Vec<IpNet> {
        let drops = |b: &Arc<Block>| {
            b.action() == DynAction::Drop && b.exclude.as_ref().is_none_or(|x| x.is_empty())
        };
        let groups =
            (self.clients.iter())
                .filter(|(_, b)| drops(b))
                .filter_map(|(ip, _)| match ip {
                    IpAddr::V4(_) => IpNet::new(*ip, 32).ok(),
                    IpAddr::V6(_) => IpNet::new(*ip, v6_prefix.min(128)).ok(),
                });
        let nets = (self.nets.iter())
            .filter(|(_, b)| drops(b))
            .map(|(n, _)| n.trunc());
        let mut all: Vec<IpNet> = groups.chain(nets).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether it blocks nothing.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.nets.is_empty() && self.names.is_empty()
    }

    /// The block that stops a query from client group `group` (address
    /// `ip`) for the name `qname` (wire form, lower case or not), if any.
    pub fn find(&self, group: IpAddr, ip: IpAddr, qname: &[u8]) -> Option<&Arc<Block>> {
        if let Some(b) = self.clients.get(&group) {
            return Some(b);
        }
        if let Some((_, b)) = self.nets.iter().find(|(n, _)| n.contains(&ip)) {
            return Some(b);
        }
        if self.names.is_empty() {
            return None;
        }
        let mut lower = [0u8; 255];
        let end = super::table::name_end(qname)?;
        for (d, s) in lower.iter_mut().zip(qname.get(..end)?) {
            *d = s.to_ascii_lowercase();
        }
        let name = lower.get(..end)?;
        label_starts(name)
            .iter()
            .find_map(|&at| self.names.get(name.get(usize::from(at)..)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_block_stops_the_name_and_those_under_it_only() {
        let stats = Arc::new(RuleStats::new("r", DynAction::Refuse));
        let now = Instant::now();
        let name = Arc::new(Block::new(
            BlockKey::Name(b"\x06victim\x03com\x00".to_vec().into()),
            "test".into(),
            now,
            stats.clone(),
        ));
        let net = Arc::new(Block::new(
            BlockKey::Net("10.1.0.0/16".parse().unwrap()),
            "test".into(),
            now,
            stats,
        ));
        let set = BlockSet::new([&name, &net]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let find = |q: &[u8]| set.find(ip, ip, q).map(|b| b.key.to_string());
        assert_eq!(
            find(b"\x03abc\x06VICTIM\x03com\x00\x00\x01").as_deref(),
            Some("victim.com.")
        );
        assert_eq!(
            find(b"\x06victim\x03com\x00").as_deref(),
            Some("victim.com.")
        );
        assert_eq!(find(b"\x09notvictim\x03com\x00"), None);
        assert_eq!(find(b"\x03com\x00"), None);
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let b = set.find(inside, inside, b"\x00").unwrap();
        assert_eq!(b.key.to_string(), "10.1.0.0/16");
    }
}

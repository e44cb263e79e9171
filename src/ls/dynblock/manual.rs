//! Blocks added by hand (`dnslb blocks add NET|NAME`, [`ManualTarget`]):
//! the key a target is blocked under, their bound ([`super::MAX_MANUAL`],
//! and the table's), and the list of every block in force as `GET
//! /blocks` and `dnslb blocks` show it ([`BlockInfo`]).
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tracing::info;

use super::set::{Block, BlockKey, MANUAL, MAX_BLOCKS, MAX_MANUAL};
use super::tick::Maint;
use crate::config::DynAction;
use crate::guard::rate::rate_key;

/// A block added by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualTarget {
    /// An address written bare: its client group (an IPv4 address, an IPv6
    /// one's `rate_limit_v6_prefix`), as `dnslb top` and `/blocks` show it.
    Addr(IpAddr),
    /// A network, kept as written (an IPv4-mapped IPv6 one is the IPv4
    /// network it names).
    Net(IpNet),
    /// A name and every name under it.
    Name(hickory_proto::rr::Name),
}

/// One block in force, as `GET /blocks` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockInfo {
    /// The client group, network or name blocked.
    pub target: String,
    /// `client` or `name`.
    pub kind: String,
    /// The rule (`manual` for blocks added by hand).
    pub rule: String,
    /// Why.
    pub reason: String,
    /// Its action.
    pub action: String,
    /// Seconds until it is lifted.
    pub seconds_left: u64,
    /// Queries it stopped.
    pub queries_blocked: u64,
}

/// Why a block could not be added by hand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManualError {
    /// Too many blocks in force.
    #[error("the table of blocks is full ({0} blocks); clear some first")]
    Full(usize),
    /// A duration of zero or past the longest.
    #[error("--for must be in [1, {max}] seconds, got {got}")]
    Duration {
        /// The longest.
        max: u64,
        /// What was asked.
        got: u64,
    },
}

/// The key `target` is blocked under: a bare address's client group (IPv6
/// grouped by `v6_prefix`); a network as written (an IPv4-mapped one as
/// the IPv4 network it names, `::ffff:127.0.0.0/104` as `127.0.0.0/8`), a
/// client group when it is exactly one (an IPv4 /32, an IPv6 network of
/// `v6_prefix` bits), never widened; a name in lower-case wire form.
pub(super) fn key_of(target: &ManualTarget, v6_prefix: u8) -> BlockKey {
    match target {
        ManualTarget::Addr(ip) => BlockKey::Client(rate_key(*ip, v6_prefix)),
        ManualTarget::Net(net) => match unmapped(*net).trunc() {
            IpNet::V4(n) if n.prefix_len() == 32 => BlockKey::Client(IpAddr::V4(n.addr())),
            IpNet::V6(n) if n.prefix_len() == v6_prefix => {
                BlockKey::Client(rate_key(IpAddr::V6(n.addr()), v6_prefix))
            }
            other => BlockKey::Net(other),
        },
        ManualTarget::Name(name) => {
            use hickory_proto::serialize::binary::BinEncodable;
            BlockKey::Name(name.to_lowercase().to_bytes().unwrap_or_default().into())
        }
    }
}

/// `net`, an IPv4-mapped IPv6 network (`::ffff:0:0/96` or longer) read as
/// the IPv4 network it names, as the query rules' `client` reads it; any
/// other as it is.
fn unmapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => n
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// Adds to `m` (or renews) a block by hand of `key` for `secs` with
/// `action` from `now`: whether a new block was made (to publish).
///
/// # Errors
/// A duration out of bounds, or the table of blocks full (counted in `full`).
pub(super) fn add(
    m: &mut Maint,
    key: BlockKey,
    (secs, action): (u64, DynAction),
    now: Instant,
    full: &AtomicU64,
) -> Result<bool, ManualError> {
    if !(1..=crate::config::MAX_BLOCK_S).contains(&secs) {
        return Err(ManualError::Duration {
            max: crate::config::MAX_BLOCK_S,
            got: secs,
        });
    }
    let until = now + Duration::from_secs(secs);
    let stats = m.stats.get(MANUAL, action);
    if let Some(b) = m.blocks.get(&key)
        && b.stats.rule == MANUAL
        && b.action() == action
    {
        b.renew(until);
        return Ok(false);
    }
    // The dynamic blocks leave MAX_MANUAL of the table to these.
    let manual = m.blocks.values().filter(|b| b.stats.rule == MANUAL).count();
    if manual >= MAX_MANUAL || m.blocks.len() >= MAX_BLOCKS {
        full.fetch_add(1, Relaxed);
        return Err(ManualError::Full(m.blocks.len()));
    }
    stats.blocks.fetch_add(1, Relaxed);
    info!(target = %key, %action, secs, "block added by hand");
    let block = Block::new(key.clone(), "added by hand".into(), until, stats);
    m.blocks.insert(key, Arc::new(block));
    Ok(true)
}

/// The blocks in force in `m` at `now`, most queries blocked first.
pub(super) fn list(m: &Maint, now: Instant, v6_prefix: u8) -> Vec<BlockInfo> {
    let mut out: Vec<BlockInfo> = m
        .blocks
        .values()
        .map(|b| BlockInfo {
            target: BlockKey::text(&b.key, v6_prefix),
            kind: match b.key {
                BlockKey::Name(_) => "name".into(),
                _ => "client".into(),
            },
            rule: b.stats.rule.clone(),
            reason: b.reason.clone(),
            action: b.action().to_string(),
            seconds_left: b
                .until()
                .saturating_duration_since(now)
                .as_secs_f64()
                .ceil() as u64,
            queries_blocked: b.blocked.load(Relaxed),
        })
        .collect();
    out.sort_by(|a, b| {
        b.queries_blocked
            .cmp(&a.queries_blocked)
            .then_with(|| a.target.cmp(&b.target))
    });
    out
}

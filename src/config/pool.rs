//! `[[ls.pool]]`: [`PoolConfig`], a group of `[[ls.backend]]`s that serves some zones
//! with a policy of its own (docs/CONFIG.md (the LS), "Pools and routes"). Its keys left out take the
//! `[ls]` values ([`LsConfig::policy_of`](super::LsConfig::policy_of)); its rules are checked with
//! the rest of the config (`validate`).

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::cache::CacheConfig;
use super::values::{Layout, OnTimeout, Order, Strategy, de_names};

policy_keys!(pool_struct! {
/// `[[ls.pool]]`: the backends (by name) that answer the names under `zones`, and the
/// policy they are asked by. A key left out is empty (the rules then say what is
/// missing, at the pool's line) or, for the policy keys (first, from `policy_keys!`),
/// the `[ls]` value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Name used in metrics, logs and the status page (unique, non-empty).
    pub name: String,
    /// The `[[ls.backend]]`s of the pool, by name (at least one; a backend may be in
    /// several pools, with one health shared by all).
    pub backends: Vec<String>,
    /// The zones it serves: a query goes to the pool whose zone is the longest suffix
    /// of its name (at least one; no zone in two pools).
    #[serde(deserialize_with = "de_names")]
    pub zones: Vec<Name>,
    /// A packet cache of the pool's own (its own bound and TTL caps, its
    /// entries and counters apart); left out, the pool's answers go to the
    /// `[ls.cache]` (if any). \[the `[ls.cache]`\]
    pub cache: Option<CacheConfig>,
}
});

impl PoolConfig {
    /// A pool of `backends` serving `zones`, every policy key taken from `[ls]`.
    pub fn new(name: &str, backends: &[&str], zones: Vec<Name>) -> Self {
        Self {
            name: name.to_owned(),
            backends: backends.iter().map(|&b| b.to_owned()).collect(),
            zones,
            ..Self::default()
        }
    }
}

/// A zone as people write it: lower case, without the final dot (the root is `.`).
pub fn zone_text(zone: &Name) -> String {
    let text = zone.to_lowercase().to_ascii();
    match text.strip_suffix('.') {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => text,
    }
}

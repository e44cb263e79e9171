//! `[ls.cache]`: [`CacheConfig`], the bounds of the LS's packet cache (docs/CONFIG.md (the LS) "Packet
//! cache", §7). A value, not a global: whoever owns a cache (the LS, later a pool) builds
//! it from one of these.

use serde::Deserialize;

/// `[ls.cache]`: the packet cache; the table omitted = no cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most answers kept (positive and negative together). \[100000\]
    pub max_entries: usize,
    /// Cap on any entry's lifetime, in seconds. \[86400\]
    pub max_ttl: u32,
    /// Cap on the lifetime of an NXDOMAIN or NODATA answer, in seconds; 0 = negative
    /// answers are not kept. \[3600\]
    pub neg_ttl: u32,
    /// How long an expired entry may still be served stale (RFC 8767), in seconds;
    /// 0 = never. \[86400\]
    pub stale_ttl: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_ttl: 86_400,
            neg_ttl: 3_600,
            stale_ttl: 86_400,
        }
    }
}

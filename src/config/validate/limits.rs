//! The largest values the config's numeric keys may take: past them a
//! value is a typo, or would overflow what holds it.

/// The longest any `*_ms` key may be: one hour. Past that a deadline is a typo,
/// and near 2^64 ms adding it to a clock overflows.
pub(crate) const MAX_MS: u64 = 3_600_000;
/// Most worker threads (and SO_REUSEPORT sockets per address).
pub(crate) const MAX_WORKERS: usize = 1024;
/// Most client queries in flight (`max_inflight`): 16 Mi. The semaphore that
/// holds them panics past 2^61 - 1.
pub(crate) const MAX_INFLIGHT: usize = 1 << 24;
/// Highest adaptive concurrency limit of a backend (`backend_limit_max`).
pub(crate) const MAX_BACKEND_LIMIT: u32 = 1 << 24;
/// Most names the `sticky` order remembers: 16 Mi slots, 128 MiB. The table is
/// allocated whole, at start and at each reload.
pub(crate) const MAX_STICKY_SIZE: usize = 1 << 24;
/// Highest per-client rate limit, in queries per second.
pub(crate) const MAX_RATE_QPS: u32 = 10_000_000;
/// Most probes in a row for `fall` and `rise`.
pub(crate) const MAX_FALL_RISE: u32 = 1000;
/// Highest `every_queries`.
pub(crate) const MAX_EVERY_QUERIES: u64 = 1_000_000_000;
/// Highest backend `weight` (weights are summed).
pub(crate) const MAX_WEIGHT: u32 = 1_000_000;
/// Most answers the packet cache may keep (`ls.cache.max_entries`): 16 Mi. Its index is
/// allocated whole, at start and at each reload.
pub(crate) const MAX_CACHE_ENTRIES: usize = 1 << 24;

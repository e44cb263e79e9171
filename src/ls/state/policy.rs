//! The LS's policy ([`Policy`]): the keys of `[ls]` a query is resolved by,
//! or a pool's, its own `[[ls.pool]]` keys over `[ls]`'s (the merge is
//! `LsConfig::policy_of`'s, over the keys `config::PolicyConfig` declares).
use std::time::Duration;

use crate::config::{
    HedgeDelay, Layout, LsConfig, OnTimeout, Order, PolicyConfig, PoolConfig, Strategy,
};

/// The LS's policy, read from `[ls]` (or, for a pool, from its `[[ls.pool]]`
/// where it sets a key).
#[derive(Debug, Clone)]
pub struct Policy {
    /// race | hedge | sequential.
    pub strategy: Strategy,
    /// Who goes first.
    pub order: Order,
    /// partitioned | replicated.
    pub layout: Layout,
    /// Deadline of a client query.
    pub timeout: Duration,
    /// What to answer at the deadline.
    pub on_timeout: OnTimeout,
    /// Negative TTL of made-up answers.
    pub synth_ttl: u32,
    /// Per-backend wait in `sequential`.
    pub try_timeout: Duration,
    /// Hedge delay: fixed or adaptive.
    pub hedge_delay: HedgeDelay,
    /// Lower clamp of the adaptive delay.
    pub hedge_min: Duration,
    /// Upper clamp of the adaptive delay (and the delay before enough samples).
    pub hedge_max: Duration,
    /// Latency percentile the adaptive delay waits for.
    pub hedge_percentile: f64,
}

impl Policy {
    /// The policy of an `[ls]` section.
    pub fn from_config(c: &LsConfig) -> Self {
        Self::new(c, &c.policy())
    }

    /// The policy of pool `p` of `[ls]` section `c`: the keys the pool sets,
    /// the `[ls]` values for the others.
    pub fn for_pool(c: &LsConfig, p: &PoolConfig) -> Self {
        Self::new(c, &c.policy_of(p))
    }

    /// The policy keys `keys` (`[ls]`'s or a pool's), with the rest of `[ls]` `c`.
    fn new(c: &LsConfig, keys: &PolicyConfig) -> Self {
        Policy {
            strategy: keys.strategy,
            order: keys.order,
            layout: keys.layout,
            timeout: Duration::from_millis(keys.timeout_ms),
            on_timeout: keys.on_timeout,
            synth_ttl: c.synth_ttl,
            try_timeout: Duration::from_millis(c.try_timeout_ms),
            hedge_delay: c.hedge_delay_ms,
            hedge_min: Duration::from_millis(c.hedge_min_ms),
            hedge_max: Duration::from_millis(c.hedge_max_ms),
            hedge_percentile: c.hedge_percentile,
        }
    }
}

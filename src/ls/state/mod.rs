//! The LS's floor: what every other part of the balancer reads. The policy
//! ([`Policy`], in `policy.rs`), the counters ([`LsMetrics`], and a pool's
//! [`PoolMetrics`], in `counters.rs`), one client query being resolved
//! ([`Job`], in `job.rs`), where a query goes ([`Route`], in `route.rs`: a pool's backends
//! and policy, or every backend under the `[ls]` policy),
//! and the snapshot a query runs on ([`LsState`], in `snapshot.rs`: policy, backends, routes
//! and the suffix table of the pools' zones, health settings, rate limiter,
//! hedge budget, upstream pool, loop mark, packet cache, query and response
//! rules), replaced whole on
//! reload. A route also paces a [`Resolution`] and judges one backend
//! response, the one place both drivers account for an answer.
mod counters;
mod job;
mod policy;
mod route;
mod snapshot;

pub(crate) use counters::count_answer;
pub use counters::{LsMetrics, OTHER_RCODE, PoolMetrics, RCODE_SLOTS, RcodeCounts, full_rcode};
pub use job::Job;
pub use policy::Policy;
pub use route::Route;
pub use snapshot::{DRAIN_MARGIN, LsState};

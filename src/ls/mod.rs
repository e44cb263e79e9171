//! The load balancer (LS): forwards each client query to its backends by the
//! configured strategy and order, and answers with the first useful response
//! or, at the deadline, with the `on_timeout` answer it makes up; with a
//! packet cache, answers a repeated question from memory, and a failed one
//! stale.
//!
//! Its modules, top to bottom (each imports only modules below it):
//! - [`run`]: [`serve`] — the UDP workers, the server layer for TCP, the
//!   probe loop and the rate-limit sweeper, started and stopped together;
//! - [`probe`]: the probe loop feeding each backend's health;
//! - [`proxy_out`]: the PROXY v2 header sent to backends with `proxy`;
//! - the two drivers of one query: [`udp_path`] (the UDP fast path, a
//!   worker per socket) and [`async_path`] (async, for TCP, DoT and DoH: the
//!   server layer's handler);
//! - [`balancer`]: [`Balancer`], holding the current [`LsState`] snapshot,
//!   and the door every query passes first ([`Balancer::admit`]);
//! - [`control`]: who may change state through the metrics listener
//!   (`api_key`, `control_allow`) and its counters;
//! - [`invalidate`]: the cache's flushes before TTLs run out (a backend's
//!   NOTIFY at the door, `POST /cache/flush`) and their counters;
//!   [`notify_peers`]: whose NOTIFYs are believed, with which TSIG key;
//! - [`reply`]: the client's answer from how a query ended (the winner's,
//!   a negative one passed on, a stale one from the cache, or one made
//!   up), for both drivers, and the cache's answer at the door;
//! - [`state`], the floor: [`Policy`], [`LsMetrics`], [`Job`], [`Route`]
//!   (where a query goes: a pool's backends, policy and sticky memory, or
//!   every backend's) and [`LsState`] (policy, backends, routes, health
//!   settings, rate limiter, hedge budget, shared upstream sockets, loop
//!   mark, packet cache), one `ArcSwap` snapshot replaced whole on reload;
//!   queries in flight keep theirs;
//! - below it, the parts: [`resolution`] (the pure decision machine of one
//!   query), [`suffix`] (the pools' zones: which pool a name goes to),
//!   [`rules`] (the `[[ls.rule]]`s and `[[ls.response_rule]]`s compiled:
//!   which rule acts on a query or an answer, and the answers rules make up),
//!   [`upstream`] (the upstream core both drivers use: the RFC 5452 check,
//!   ID tables, socket rotation, the async driver's shared UDP sockets in
//!   [`upstream::shared`], reused TCP connections in [`upstream::tcp`]),
//!   [`backend`] (each with its [`backend::health::Health`]), [`order`],
//!   [`sticky`], [`hedge`], [`loopmark`], [`latency`], [`ecs`] (EDNS
//!   Client Subnet for `add` and `off`: the query edited at the door, the
//!   answer mended), [`cache`] (the
//!   packet cache), [`dynblock`] (dynamic blocks, blocks by hand and
//!   `dnslb top`'s counts), [`identity`] (what the LS tells of itself, and
//!   the anycast probe's question answered before the blocks and rules),
//!   [`xdp_policy`] (what the XDP program drops: outside `allow`, blocked). The ACL, the rate limit and the in-flight bound's share
//!   per client are [`crate::guard`]'s, shared with the server layer and
//!   the TS.
//!
//! "Pool" means only a `[[ls.pool]]` routing group.
pub mod async_path;
pub mod backend;
pub mod balancer;
mod blocked;
pub mod cache;
pub mod control;
mod cookies;
pub mod door;
pub mod dynblock;
pub mod ecs;
pub mod handoff;
pub mod hedge;
pub mod identity;
pub mod invalidate;
pub mod latency;
pub mod loopmark;
pub mod notify_peers;
pub mod order;
pub mod probe;
pub mod proxy_conns;
pub mod proxy_out;
pub mod reply;
pub mod resolution;
pub mod rules;
pub mod run;
pub mod state;
pub mod sticky;
pub mod suffix;
pub mod tap;
pub mod udp_path;
pub mod upstream;
mod xdp_local;
pub mod xdp_policy;

#[cfg(test)]
mod timing_tests;

pub use balancer::Balancer;
pub use door::{Admission, Admitted};
pub use run::{serve, server_options};
pub use state::{Job, LsMetrics, LsState, Policy, PoolMetrics, Route};

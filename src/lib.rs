//! dnslb: a DNS load balancer (LS) in front of authoritative table servers (TS).
//!
//! # Layout
//! (docs/ARCHITECTURE.md walks one UDP and one TCP query through them.)
//! - [`roles`]: the roles as runners (`ls`, `ts`, `up`), driven by a stream
//!   of [`roles::Control`]s (signals in the binary, a channel in tests);
//!   `main.rs` only dispatches to them (`roles::process`: a role's
//!   runtime, workers and signals).
//! - [`cli`]: the command line; [`config`]: the `config.toml` schema,
//!   defaults, validation, and what a reload may change.
//! - [`server`]: protocol I/O shared by LS and TS (UDP workers on SO_REUSEPORT
//!   sockets, RFC 7766 TCP, batch I/O, load shedding), generic over a
//!   [`server::Handler`].
//! - [`dns`]: wire-format helpers shared by every side: hostile-input
//!   decoding, raw header reads, one walker over a message's sections,
//!   made-up answers, NSID, hostname rules.
//! - [`dnstap`]: the LS's and the TS's messages as dnstap (Frame Streams of
//!   protobuf) to a collector, through a bounded queue and one writer task.
//! - [`clock`]: the wall clock, seconds since the Unix epoch (one type,
//!   `u64`); imports nothing of the crate.
//! - [`guard`]: client protection shared by every side (the `allow` ACL,
//!   the per-client rate limit, a log's budget); imports nothing of the crate.
//! - [`ls`]: the load balancer: its floor ([`ls::state`]), the door
//!   ([`ls::balancer`]), two drivers of one query ([`ls::udp_path`] for UDP,
//!   [`ls::async_path`] for TCP) over one decision machine
//!   ([`ls::resolution`]) and one upstream core ([`ls::upstream`]), the
//!   reply ([`ls::reply`]), backends and their health ([`ls::backend`],
//!   probes in [`ls::probe`]), orders, hedging.
//! - [`ts`]: the table server: zone loading ([`ts::table`] for PROJ tables,
//!   [`ts::zonefile`] for RFC 1035 master files), compiled zones and their
//!   answers, DNSSEC proofs included ([`ts::zone`]), zones it signs itself
//!   ([`ts::dnssec`]: its policy, keys and pre-signed zones), transfers ([`ts::xfr`]).
//! - [`metrics`]: Prometheus `/metrics`, the HTML status page, `/health` and
//!   `/ready` of the LS.
//! - [`status`]: `dnslb status`, the LS's `/health` as a table.
//! - [`control_cmd`]: `dnslb backend`, `dnslb blocks` and `dnslb top`, the live
//!   control of a running LS.
//! - [`zone_cmd`]: `dnslb zone list|status|reload|notify|retransfer|refresh`,
//!   against a TS's zone control (`control` in its `[[ts]]`).
//! - [`resolve`]: the batch client of `dnslb resolve`.
//! - [`supervise`]: `dnslb up`'s table-server children, restarted with backoff.
//! - [`systemd`]: readiness told to the service manager (`Type=notify`).
//! - [`anycast`]: `dnslb anycast`, the probe that tells BIRD to announce the
//!   LS's service address only while the LS answers.
//! - [`check`]: `dnslb check`, validation of a config and every zone it names.
//! - [`shutdown`]: process signals (INT/TERM stop, HUP reload) as a role's controls.
//! - [`logging`]: the log subscriber (text or JSON lines, a table server's
//!   `ts=NAME` on every line) and the LS's per-query `debug` line.
#![deny(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod allocator;
pub mod anycast;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control_cmd;
pub mod dns;
pub mod dnstap;
pub mod guard;
pub mod hysteresis;
pub mod logging;
pub mod ls;
pub mod metrics;
pub mod resolve;
pub mod roles;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod supervise;
pub mod systemd;
pub mod ts;
pub mod xdp;
pub mod zone_cmd;

#[cfg(test)]
mod layering_tests;

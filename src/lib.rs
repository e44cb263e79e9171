//! dnslb: a DNS load balancer (LS) in front of authoritative table servers (TS).
//!
//! # Layout
//! - [`config`]: the `config.toml` schema, defaults and validation.
//! - [`dns`]: hickory-proto helpers shared by every server: safe decoding of the
//!   header and question, and building error and synthesized answers.
//! - [`server`]: protocol I/O shared by LS and TS (UDP workers on SO_REUSEPORT
//!   sockets, RFC 7766 TCP), generic over a [`server::Handler`].
//! - [`ts`]: the table server: zone loading ([`ts::table`] for PROJ tables,
//!   [`ts::zonefile`] for RFC 1035 master files), lookup ([`ts::zone`]) and answers.
//! - [`ls`]: the load balancer: strategies ([`ls::strategy`]), orders
//!   ([`ls::order`]), health ([`ls::health`]), hedging ([`ls::hedge`]), client
//!   protection ([`ls::guard`]), the upstream socket pool ([`ls::pool`]).
//! - [`metrics`]: Prometheus `/metrics`, the HTML status page, `/health` and
//!   `/ready` of the LS.
//! - [`status`]: `dnslb status`, the LS's `/health` as a table.
//! - [`resolve`]: the batch client of `dnslb resolve`.
//! - [`supervise`]: `dnslb up`'s table-server children, restarted with backoff.
//! - [`check`]: `dnslb check`, validation of a config and every zone it names.
//! - [`shutdown`]: signal handling (INT/TERM stop, HUP reload).
//! - [`logging`]: the log subscriber (text or JSON lines, a table server's
//!   `ts=NAME` on every line) and the LS's per-query `debug` line.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod check;
pub mod cli;
pub mod config;
pub mod dns;
pub mod logging;
pub mod ls;
pub mod metrics;
pub mod resolve;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod status;
pub mod supervise;
pub mod ts;

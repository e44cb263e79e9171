//! The table server (TS): authoritative answers from zone tables.
//!
//! [`TableServer`] holds its [`Catalog`] in an `ArcSwap`: queries read a
//! snapshot without locking, and [`TableServer::reload`] swaps in a new one
//! only when every file loaded cleanly. Answers follow docs/CONFIG.md (the TS); the fault
//! knobs delay or drop a share of them for experiments. Each request and
//! reload is counted in [`TsMetrics`] (atomics), served on `/metrics` when
//! `metrics` is set. With an `nsid` configured, every answer that carries an
//! OPT also carries the NSID when the query asked for it (RFC 5001), as NSD
//! and Knot answer; AXFR messages do not.
//!
//! # Map
//! No two rooms import each other, and no room imports an item defined in
//! this file (it holds only the map and what the folder exports).
//! - `table_server.rs`: [`TableServer`]: start, reload, serials;
//!   [`zones_live`]: what a reload that changed `zones` changes (the
//!   settings, the secondary zones to start and stop);
//! - `settings.rs`: [`TsSettings`], what a TS serves and how; `clock.rs`:
//!   the wall clock as signatures and serials count it;
//! - `load/`: loading the zone files, at start and at a reload: read while
//!   nobody rewrites them, compiled into a [`Catalog`] ([`load_catalog`]),
//!   the zones a reload keeps unread, and which version of each zone it
//!   serves (its map is in its `mod.rs`); `publish.rs`: the catalog zone
//!   (RFC 9432) it publishes of them;
//! - `respond.rs`: the request pipeline ([`server::Handler`](crate::server::Handler)):
//!   read, TSIG verified, answered by kind, signed, rate limited (UDP);
//!   `query.rs`: a plain query read in place; [`cookies`]: DNS Cookies on
//!   its answers;
//! - [`rrl`]: response rate limiting (`rrl` in `[[ts]]`), NSD's and Knot's RRL;
//! - [`answer`]: a plain query's answer from its zone ([`answer::plain`]),
//!   the message around a zone's answer; [`wire`]: names as the answer path
//!   reads them ([`wire::NameKey`]);
//! - [`zone`]: compiled zones (store, build, writer, proofs, signing a
//!   compiled zone, the record lists of a diff, catalog);
//! - [`table`], [`zonefile`]: the two source formats, [`source`] a source
//!   file's bytes and records, [`error`] their `file:line` errors;
//! - [`dnssec`]: which zones the TS signs and with which keys
//!   ([`dnssec::policy`], [`dnssec::keys`]), zones signed in their files
//!   (`presigned.rs`), DS records ([`dnssec::ds`]);
//! - [`xfr`]: transfers and their notice: AXFR ([`xfr::axfr`]), the IXFR
//!   journal ([`xfr::ixfr`]), the transfer key's policy ([`xfr::tsig`]), NOTIFY
//!   ([`xfr::notify::policy`] decides, [`xfr::notify::task`] sends);
//! - [`secondary`]: the TS as a secondary: zones transferred from a
//!   primary (AXFR, IXFR), kept by the SOA timers and NOTIFY, their last
//!   good copy on disk;
//! - [`serials`]: SOA serials kept across restarts; [`metrics`]: the TS's
//!   counters;
//! - [`zone_control`]: `dnslb zone list|status|reload|notify|retransfer|
//!   refresh` on a running TS;
//! - [`service`]: service answers, names that follow their endpoints' health
//!   ([`service::check`]: the endpoint checker).
pub mod answer;
pub(crate) mod clock;
pub mod cookies;
pub mod dnssec;
pub mod error;
mod load;
pub mod metrics;
mod publish;
pub mod query;
mod respond;
pub mod rrl;
pub mod secondary;
pub mod serials;
pub mod service;
mod service_reply;
mod settings;
pub mod source;
pub mod table;
mod table_server;
pub mod wire;
pub mod xfr;
pub mod zone;
pub mod zone_control;
pub mod zonefile;
pub mod zones_live;

pub use load::{load_catalog, load_catalog_noting};
pub use respond::looks_like_health_probe;
pub use settings::{OriginError, Secondary, TsSettings, parse_origin};
pub use table_server::{NotifyHook, ReloadReport, SecondaryChange, TableServer};

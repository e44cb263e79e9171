//! The TS as a secondary (RFC 1034 §4.3.5, RFC 1995, RFC 1996, RFC 5936,
//! RFC 8945): a zone given in `zones` as `{ name, primary, xfr_key }` is
//! transferred from its primary by AXFR, then kept current by IXFR on the
//! SOA timers and on NOTIFY; its last good copy is kept in `state_dir` and
//! served at start before the primary answers; past the SOA EXPIRE
//! without contact it answers SERVFAIL. A transfer that fails half-way, or
//! an IXFR that does not apply, changes nothing served. The versions it
//! applies go into the TS's IXFR journal, so it serves AXFR and IXFR to its
//! own secondaries.
//!
//! # Map
//! - [`timers`]: when to ask again (refresh, retry, expire), pure;
//! - [`records`]: a transfer's answer read record by record and an IXFR's
//!   changes applied to a copy, pure;
//! - [`notify`]: what a NOTIFY does (from the primary only, TSIG-checked),
//!   and its answer, pure;
//! - [`compiled`]: a copy compiled into the zone served (whole, or patched
//!   after an IXFR);
//! - [`client`]: one transfer over TCP, TSIG on every message, bounded,
//!   at most [`client::MAX_TRANSFERS_IN`] at once from one primary;
//! - [`install`]: the zones' new versions put into service in batches;
//! - [`state`]: the last good copy on disk;
//! - [`status`]: what a zone's task last did and plans, and the attempts
//!   asked of it by hand (`dnslb zone refresh|retransfer`);
//! - [`writer`]: the one writer of `state_dir`, off the runtime's threads;
//! - [`consumer`]: a catalog zone's members made secondary zones (RFC 9432);
//! - [`listed`]: the zones `zones` lists, started and stopped as a reload
//!   changes the list;
//! - [`driver`]: the zones' shared state ([`driver::Secondaries`]) and the
//!   one task per zone that drives the rest.
pub mod client;
pub mod compiled;
pub mod consumer;
pub mod driver;
pub mod install;
pub mod listed;
pub mod notify;
pub mod records;
pub mod state;
pub mod status;
pub mod timers;
pub mod writer;

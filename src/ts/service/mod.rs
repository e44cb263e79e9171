//! Service answers (`[[ts.service]]`, docs/CONFIG.md (the TS) "Service
//! answers"): names that follow the health of their endpoints.
//!
//! # Map
//! - [`check`]: the endpoint checker: one task per TS probing every distinct
//!   endpoint (tcp, http, dns) with rise/fall hysteresis, publishing the live
//!   set on a `watch` when some endpoint goes up or down.
//! - [`compiled`]: the `[[ts.service]]`s compiled once ([`Services`]): each
//!   endpoint's record in wire form, groups, views, the checker's targets;
//! - [`select`]: which endpoints answer (pure): the answer sets rebuilt on
//!   each live-set change ([`AnswerSets`]), a query's draw from them;
//! - [`ecs`]: the EDNS Client Subnet option (RFC 7871) read and echoed;
//! - [`signed`]: the answer sets signed, in a zone the TS signs, on first
//!   use and kept ([`SignedSets`]);
//! - [`reply`]: a service's answer message, written from the above.
pub mod check;
pub mod compiled;
pub mod ecs;
pub mod reply;
pub mod select;
pub mod signed;

pub use compiled::{AddrFamily, Services};
pub use select::{AnswerSets, Rng, SetChoice};
pub use signed::SignedSets;

//! Service answers (issue 38, SPEC §4 "Service answers"): names that follow
//! the health of their endpoints.
//!
//! # Map
//! - [`check`]: the endpoint checker: one task per TS probing every distinct
//!   endpoint (tcp, http, dns) with rise/fall hysteresis, publishing the live
//!   set on a `watch` when some endpoint goes up or down.
pub mod check;

//! The TS's zone control (`control` in its `[[ts]]`, docs/CONFIG.md (the
//! TS) "Zone control"): what `dnslb zone list|status|reload|notify|
//! retransfer|refresh` asks of a running TS. The HTTP listener, with the
//! LS's gate (`api_key`, `control_allow`, mutating requests by POST only),
//! is `metrics/zone_control.rs`.
//!
//! # Map
//! - `control.rs`: [`ZoneControl`], each command over the TS's zones, its
//!   secondary zones' tasks and its notifier;
//! - `log.rs`: [`ZoneLog`], the events since start the status shows (loads,
//!   reloads, NOTIFYs);
//! - `report.rs`: the answers, as JSON.
mod control;
mod log;
mod report;

pub use control::{ASK_WAIT, ZoneControl, ZoneCtlError};
pub use log::{ZoneLog, outcome_words};
pub use report::{NotifyTally, ZoneAction, ZoneEntry, ZoneEvent, ZoneSource, ZoneStatus};

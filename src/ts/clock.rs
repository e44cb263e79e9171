//! The TS's wall clock: seconds since the Unix epoch, as signatures,
//! serials and key timings count them. Below every other room of ts/, so
//! each takes the time from here (or is given it) rather than from its
//! parent.
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now, 0 before it and `u32::MAX` past 2106.
pub(crate) fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

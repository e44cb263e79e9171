//! The wall clock every side reads: seconds since the Unix epoch, in one
//! type ([`unix_now`], `u64`). The ground floor: it imports nothing of the
//! crate. A certificate's dates (`i64`), TSIG's time signed, the TS's
//! signatures and serials (`u32`, `ts::clock`) and the endpoint checker's
//! last changes take the time from here and convert where they count in
//! another type.
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now; 0 while the system clock is before it.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::unix_now;

    #[test]
    fn now_is_the_system_clock_in_whole_seconds() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = unix_now();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
        // Past 2020-01-01 and within the TS's 32-bit count of seconds.
        assert!(now > 1_577_836_800 && now < u64::from(u32::MAX));
    }
}

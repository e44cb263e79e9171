//! The TS's wall clock: seconds since the Unix epoch ([`crate::clock`]) in
//! the 32 bits signatures, serials and key timings count them in. Below
//! every other room of ts/, so each takes the time from here (or is given
//! it) rather than from its parent.

/// Seconds since the Unix epoch now as the TS counts them: 0 before it and
/// `u32::MAX` past 2106 (RRSIG and serial arithmetic wrap from this value).
pub(crate) fn now_u32() -> u32 {
    secs_u32(crate::clock::unix_now())
}

/// `secs` in 32 bits, held at `u32::MAX` past 2106.
fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::secs_u32;

    #[test]
    fn seconds_past_2106_are_held_at_the_last_32_bit_second() {
        assert_eq!(secs_u32(0), 0);
        assert_eq!(secs_u32(1_764_000_000), 1_764_000_000);
        assert_eq!(secs_u32(u64::from(u32::MAX)), u32::MAX);
        assert_eq!(secs_u32(u64::from(u32::MAX) + 1), u32::MAX);
        assert_eq!(secs_u32(u64::MAX), u32::MAX);
    }
}

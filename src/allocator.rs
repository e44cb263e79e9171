//! The allocator's one setting dnslb makes (the allocator itself, mimalloc,
//! is chosen in `main.rs`, which also makes the `unsafe` call that sets it):
//! freed pages go back to the system at once, unless the operator set
//! mimalloc's purge delay.
//!
//! mimalloc gives the pages a thread freed back to the system only when
//! that thread calls it again after the delay (1,000 ms by default), and the
//! thread that built a table has nothing more to do until the next reload,
//! so a reload's temporaries and the old table stayed resident. Measured
//! (`bench/reload-mem`, a million names, a reload that changes one
//! address): 148-184 MiB resident after it with the default, 73-74 MiB at 0,
//! as much as with glibc's malloc; 100,000 zones started in 2.19 s and
//! 124.8 MiB at 0, 2.76 s and 231.8 MiB with the default (`bench/zones`).
//! An environment variable set by `dnslb up` and the units missed every TS
//! an operator started by hand, hence the setting in the process.
use std::ffi::OsString;

/// mimalloc's own setting of its purge delay, read at a process's start.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// The older name of [`PURGE_DELAY_ENV`], which mimalloc still reads.
pub const RESET_DELAY_ENV: &str = "MIMALLOC_RESET_DELAY";

/// Whether the environment sets mimalloc's purge delay as mimalloc reads
/// it: [`PURGE_DELAY_ENV`] or [`RESET_DELAY_ENV`], in any case, not empty.
pub fn operator_set_purge_delay(mut env: impl Iterator<Item = (OsString, OsString)>) -> bool {
    env.any(|(k, v)| {
        !v.is_empty()
            && [PURGE_DELAY_ENV, RESET_DELAY_ENV]
                .iter()
                .any(|name| k.as_encoded_bytes().eq_ignore_ascii_case(name.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling mimalloc reads is the operator's; an empty value or
    /// another variable is not.
    #[test]
    fn the_operators_delay_is_known_in_every_spelling_mimalloc_reads() {
        let set = |k: &str, v: &str| operator_set_purge_delay([(k.into(), v.into())].into_iter());
        assert!(set("MIMALLOC_PURGE_DELAY", "10"));
        assert!(set("mimalloc_purge_delay", "10"));
        assert!(set("MIMALLOC_RESET_DELAY", "10"));
        assert!(set("Mimalloc_Reset_Delay", "0"));
        assert!(!set("MIMALLOC_PURGE_DELAY", ""));
        assert!(!set("MIMALLOC_PURGE_DELAYS", "10"));
        assert!(!set("MIMALLOC_VERBOSE", "1"));
        assert!(!operator_set_purge_delay(std::iter::empty()));
    }
}

//! The open-file limit (RLIMIT_NOFILE) and what it allows a server.
//!
//! Every TCP connection holds a file descriptor. With the usual soft limit
//! of 1024, a thousand idle clients would take every descriptor before the
//! connection cap is reached: `accept` fails with EMFILE, and so does every
//! socket the server needs for itself (upstream queries, health probes). So
//! a server raises its soft limit to the hard one at start
//! ([`raise_nofile`]), and its connection caps (one each for TCP, DNS over
//! TLS and DNS over HTTPS) together never take more than half of what the
//! limit allows ([`connection_cap`]), leaving the rest for its own sockets.
use rustix::process::{Resource, getrlimit, setrlimit};

/// Descriptors kept out of the TCP connection cap whatever the limit: the
/// listeners, UDP sockets, upstream sockets, log and metrics files.
const RESERVED: u64 = 64;

/// Raises this process's soft open-file limit to its hard limit (best
/// effort); the soft limit in force afterwards, `None` if unlimited.
pub fn raise_nofile() -> Option<u64> {
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        // Refused only under unusual security policies: keep the old limit.
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current
}

/// A server's descriptors made ready at its start, called while the
/// process has one thread: the soft limit raised ([`raise_nofile`]: a
/// server holds a descriptor per TCP client, and the usual 1024 would be
/// reached long before the connection cap) and the table grown to match
/// ([`reserve_table`]).
pub fn prepare_server() {
    reserve_table(raise_nofile());
}

/// Descriptor slots a server's table is given at its start, at most its
/// soft limit: room for a TS's held zone files (an eighth of a limit of
/// 20,000 and more) and a few thousand TCP clients.
const TABLE_AT_START: u64 = 16_384;

/// Grows this process's descriptor table at once to [`TABLE_AT_START`]
/// slots (or the soft limit `soft`, if lower), best effort. The kernel
/// grows the table by doubling as descriptors are opened, and each growth
/// in a process with more than one thread waits for an RCU grace period
/// (`synchronize_rcu`, 4-16 ms each here): a TS holding its zone files at
/// a start waited ~60 ms for five of them, the thread accepting TCP
/// clients stalls at the 256th, 512th, ... connection. Called while the
/// process has one thread, this growth waits for nothing, and the table
/// (8 bytes a slot) is not shrunk after.
pub fn reserve_table(soft: Option<u64>) {
    let slots = soft.map_or(TABLE_AT_START, |s| s.min(TABLE_AT_START));
    let Ok(highest) = i32::try_from(slots.saturating_sub(1)) else {
        return;
    };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // The table grows to hold a descriptor numbered `highest`; that
        // descriptor is closed at once.
        drop(rustix::io::fcntl_dupfd_cloexec(&null, highest));
    }
}

/// The descriptor slots this process's table has now (`FDSize` in
/// `/proc/self/status`), `None` where that cannot be read.
pub fn table_slots() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The connection cap a server can hold to under a soft limit of `soft`
/// descriptors (`None`: unlimited): `wanted`, or half of what the limit
/// leaves after [`RESERVED`] descriptors, whichever is smaller (at least 1).
pub fn cap_for(wanted: usize, soft: Option<u64>) -> usize {
    cap_each(wanted, soft, 1)
}

/// [`cap_for`] for each of `kinds` listeners holding a cap of its own (TCP,
/// DNS over TLS, DNS over HTTPS): they share the half of the limit, so all
/// of them full together still leave the server its own descriptors.
pub fn cap_each(wanted: usize, soft: Option<u64>, kinds: usize) -> usize {
    let Some(soft) = soft else {
        return wanted.max(1);
    };
    let share = soft.saturating_sub(RESERVED) / 2 / u64::try_from(kinds.max(1)).unwrap_or(1);
    wanted
        .min(usize::try_from(share).unwrap_or(usize::MAX))
        .max(1)
}

/// [`cap_each`] under this process's current soft limit.
pub fn connection_cap(wanted: usize, kinds: usize) -> usize {
    cap_each(wanted, getrlimit(Resource::Nofile).current, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_half_the_limit_to_the_server() {
        assert_eq!(cap_for(1024, Some(1024)), 480);
        assert_eq!(cap_for(1024, Some(20_000)), 1024);
        assert_eq!(cap_for(1024, None), 1024);
        assert_eq!(cap_for(1024, Some(10)), 1);
        assert_eq!(cap_for(0, Some(20_000)), 1);
    }

    #[test]
    fn the_descriptor_table_is_grown_at_once_within_the_limit() {
        let soft = raise_nofile();
        reserve_table(soft);
        let want = soft.map_or(TABLE_AT_START, |s| s.min(TABLE_AT_START));
        let slots = table_slots().expect("FDSize in /proc/self/status");
        assert!(slots >= want, "{slots} slots, wanted {want}");
        // Nothing is left open by it.
        let null = std::fs::File::open("/dev/null").unwrap();
        let again = rustix::io::fcntl_dupfd_cloexec(&null, i32::try_from(want - 1).unwrap());
        assert!(
            again.is_ok(),
            "the slot used to grow the table is free again"
        );
    }

    #[test]
    fn listeners_with_caps_of_their_own_share_the_room() {
        assert_eq!(cap_each(1024, Some(1024), 3), 160);
        assert_eq!(cap_each(1024, Some(256), 3), 32);
        assert_eq!(cap_each(1024, Some(20_000), 3), 1024);
        assert_eq!(cap_each(1024, Some(1024), 0), 480);
        assert_eq!(cap_each(1024, None, 3), 1024);
    }
}

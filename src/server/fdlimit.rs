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
    fn listeners_with_caps_of_their_own_share_the_room() {
        assert_eq!(cap_each(1024, Some(1024), 3), 160);
        assert_eq!(cap_each(1024, Some(256), 3), 32);
        assert_eq!(cap_each(1024, Some(20_000), 3), 1024);
        assert_eq!(cap_each(1024, Some(1024), 0), 480);
        assert_eq!(cap_each(1024, None, 3), 1024);
    }
}

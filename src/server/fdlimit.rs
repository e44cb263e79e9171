//! The open-file limit (RLIMIT_NOFILE) and what it allows a server.
//!
//! Every TCP connection holds a file descriptor. With the usual soft limit
//! of 1024, a thousand idle clients would take every descriptor before the
//! connection cap is reached: `accept` fails with EMFILE, and so does every
//! socket the server needs for itself (upstream queries, health probes). So
//! a server raises its soft limit to the hard one at start
//! ([`raise_nofile`]), and its connection cap never takes more than half of
//! what the limit allows ([`connection_cap`]), leaving the rest for its own
//! sockets.
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
    let Some(soft) = soft else {
        return wanted.max(1);
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
}

/// [`cap_for`] under this process's current soft limit.
pub fn connection_cap(wanted: usize) -> usize {
    cap_for(wanted, getrlimit(Resource::Nofile).current)
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
}

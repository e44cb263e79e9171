//! The places of the server's in-flight bound (`max_inflight`) for the
//! deferred answers of the UDP workers' async path, TCP, DoT and DoH: a
//! semaphore for the bound itself, and per client group the places it
//! holds, so that one client (many connections, each pipelining) cannot
//! take every place and leave the others SERVFAIL ([`crate::guard::fair`]:
//! below half the bound everyone is admitted; from half on, a group at most
//! its share).
//!
//! The server's connection caps (`tcp_max_connections`: plain TCP, DoT, DoH)
//! are bounds of the same kind, one place per open connection, so that one
//! source holding idle or half-sent connections cannot shut a transport for
//! everyone ([`Places::for_connections`]: in the last eighth one place a
//! group, so neither can two, nor any number below that eighth): the group is the connecting address (behind a PROXY sender or a
//! trusted DoH proxy, that sender: what is known at `accept`).
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::guard::fair::Holders;

/// The bound's places and who holds them.
#[derive(Debug)]
pub(crate) struct Places {
    permits: Arc<Semaphore>,
    max: usize,
    holders: Arc<Mutex<Holders>>,
    /// Who may take a place ([`crate::guard::fair::admit`], or for
    /// connections [`crate::guard::fair::admit_held_long`]).
    policy: fn(usize, usize, usize, usize) -> bool,
}

/// One place, given back when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
    group: IpAddr,
    holders: Arc<Mutex<Holders>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.group);
    }
}

/// Why [`Places::try_take`] gave no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoPlace {
    /// Every place of the bound is taken.
    Full,
    /// The bound is contended and the client's group holds its share.
    Share,
}

/// A client's group: an IPv4 address alone, an IPv6 address by its /64
/// (one host's addresses together).
fn group_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Places {
    /// `max` places (at most what a semaphore holds; the config asks for
    /// at least one).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Places {
            permits: Arc::new(Semaphore::new(max)),
            max,
            holders: Arc::default(),
            policy: crate::guard::fair::admit,
        }
    }

    /// `max` places for connections, each held as long as its connection
    /// ([`crate::guard::fair::admit_held_long`]: in the last eighth, one
    /// place a group).
    pub(crate) fn for_connections(max: usize) -> Self {
        Places {
            policy: crate::guard::fair::admit_held_long,
            ..Places::new(max)
        }
    }

    /// How many places the bound has.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// How many places are taken now (for connections: how many are open).
    pub(crate) fn held(&self) -> usize {
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total()
    }

    /// A place for a query of `client`, if the bound and its group's
    /// share allow one.
    pub(crate) fn take(&self, client: IpAddr) -> Option<Place> {
        self.try_take(client).ok()
    }

    /// [`Places::take`], saying why when it gives no place.
    pub(crate) fn try_take(&self, client: IpAddr) -> Result<Place, NoPlace> {
        let group = group_of(client);
        let mut holders = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        if holders.total() >= self.max {
            return Err(NoPlace::Full);
        }
        if !holders.admits_by(group, self.max, self.policy) {
            return Err(NoPlace::Share);
        }
        let permit = (self.permits.clone().try_acquire_owned()).map_err(|_| NoPlace::Full)?;
        holders.take(group);
        Ok(Place {
            _permit: permit,
            group,
            holders: self.holders.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One client past half the bound gets at most its share; another
    /// client still gets a place; places come back when dropped.
    #[test]
    fn one_client_cannot_take_every_place() {
        let p = Places::new(16);
        let flood: Vec<Place> = std::iter::from_fn(|| p.take(ip("192.0.2.1"))).collect();
        assert_eq!(flood.len(), 14, "seven eighths of 16 for a lone client");
        assert!(
            p.take(ip("192.0.2.2")).is_some(),
            "another client is served"
        );
        drop(flood);
        let again: Vec<Place> = std::iter::from_fn(|| p.take(ip("192.0.2.3"))).collect();
        assert_eq!(again.len(), 14, "places given back");
        assert_eq!((p.held(), p.max()), (14, 16));
    }

    /// Why no place: the share of a flooding group while others still get
    /// one, then the bound itself once every place is taken.
    #[test]
    fn a_refusal_says_share_or_full() {
        let p = Places::new(8);
        let flood: Vec<Place> = std::iter::from_fn(|| p.take(ip("192.0.2.1"))).collect();
        assert_eq!(flood.len(), 7);
        assert_eq!(p.try_take(ip("192.0.2.1")).err(), Some(NoPlace::Share));
        let other = p
            .try_take(ip("192.0.2.2"))
            .expect("another group gets the last place");
        assert_eq!(p.try_take(ip("192.0.2.3")).err(), Some(NoPlace::Full));
        assert_eq!(p.try_take(ip("192.0.2.1")).err(), Some(NoPlace::Full));
        drop(other);
        assert!(
            p.try_take(ip("192.0.2.3")).is_ok(),
            "a place given back is taken again"
        );
    }

    #[test]
    fn an_ipv6_host_is_one_group_by_its_64() {
        assert_eq!(
            group_of(ip("2001:db8::1")),
            group_of(ip("2001:db8::ffff:2"))
        );
        assert_ne!(group_of(ip("2001:db8::1")), group_of(ip("2001:db8:0:1::1")));
        assert_eq!(group_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}

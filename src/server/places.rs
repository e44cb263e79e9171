//! The places of the server's in-flight bound (`max_inflight`) for the
//! deferred answers of the UDP workers' async path, TCP, DoT and DoH: a
//! semaphore for the bound itself, and per client group the places it
//! holds, so that one client (many connections, each pipelining) cannot
//! take every place and leave the others SERVFAIL ([`crate::guard::fair`]:
//! below half the bound everyone is admitted; from half on, a group at most
//! its share).
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
        }
    }

    /// A place for a query of `client`, if the bound and its group's
    /// share allow one.
    pub(crate) fn take(&self, client: IpAddr) -> Option<Place> {
        let group = group_of(client);
        let mut holders = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        if !holders.admits(group, self.max) {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        holders.take(group);
        Some(Place {
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

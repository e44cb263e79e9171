//! Who may change the LS's state through its metrics listener (`api_key`,
//! `control_allow`, docs/CONFIG.md (the LS) "Live control"), as read from `[ls]` and
//! swapped on reload ([`ControlSettings`]); the decision for one request
//! ([`ControlSettings::authorize`], pure); and its counters
//! ([`ControlCounters`]). The HTTP side is `metrics/control.rs`.
//!
//! With the listener (`ls.metrics`) bound to a loopback address, a request
//! from a loopback peer (127.0.0.0/8 or ::1, an IPv4-mapped ::ffff:127.x
//! too) needs no key: only the machine reaches it. With the listener bound
//! to any other address (`0.0.0.0` included), every request needs the key,
//! whatever the peer: a reverse proxy on the host (nginx → 127.0.0.1) or a
//! local user is no proof of who is asking. Every peer must
//! be inside `control_allow` (loopback by default, so a listener bound to a
//! network address changes nothing for that network until it is allowed).
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use crate::guard::netset::NetSet;

use crate::config::LsConfig;

/// `api_key` and `control_allow`.
#[derive(Clone, Default)]
pub struct ControlSettings {
    api_key: Option<String>,
    allow: NetSet,
    /// The listener is bound to a non-loopback address: the key is needed
    /// from every peer.
    key_from_all: bool,
}

impl std::fmt::Debug for ControlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("allow", &self.allow)
            .field("key_from_all", &self.key_from_all)
            .finish()
    }
}

/// Why a state-changing request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is outside `control_allow` (403).
    NotAllowed,
    /// Without the right key, from a peer that needs it (401).
    Unauthorized,
}

/// Counters of state-changing requests.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Taken and done (2xx).
    pub accepted: AtomicU64,
    /// Let through, then refused for a bad parameter (400).
    pub invalid: AtomicU64,
    /// Let through, then nothing to act on: no such backend, no cache (404).
    pub not_found: AtomicU64,
    /// Let through, then not done: the table of blocks full (409), another
    /// flush walking the cache (503).
    pub failed: AtomicU64,
    /// Refused with 401: no key or a wrong one.
    pub unauthorized: AtomicU64,
    /// Refused with 403: outside `control_allow`, or from a web page.
    pub forbidden: AtomicU64,
}

impl ControlCounters {
    /// Counts the answer of a request the gate let through, by its status.
    pub fn settled(&self, status: u16) {
        let counter = match status {
            200..=299 => &self.accepted,
            400 => &self.invalid,
            404 => &self.not_found,
            _ => &self.failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `ip` is loopback (an IPv4-mapped loopback address too).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only (not on where they differ).
pub fn keys_match(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl ControlSettings {
    /// The settings of `c`.
    pub fn from_config(c: &LsConfig) -> Self {
        let mut s = ControlSettings::new(c.api_key.clone(), &c.control_allow, None);
        s.key_from_all = c.metrics.is_some_and(|m| !is_loopback(m.ip()));
        s
    }

    /// The settings of a listener bound to `bound` (a TS's `control`), with
    /// this `api_key` and `control_allow`.
    pub fn new(
        api_key: Option<String>,
        allow: &[ipnet::IpNet],
        bound: Option<std::net::SocketAddr>,
    ) -> Self {
        ControlSettings {
            api_key,
            allow: NetSet::new(allow),
            key_from_all: bound.is_some_and(|m| !is_loopback(m.ip())),
        }
    }

    /// Whether a state-changing request from `peer` carrying `key` (if any)
    /// is taken.
    ///
    /// # Errors
    /// The refusal: outside `control_allow`, or without the key where it is
    /// needed (a peer not on loopback, or any peer of a listener not bound
    /// to loopback).
    pub fn authorize(&self, peer: IpAddr, key: Option<&[u8]>) -> Result<(), Refusal> {
        if !self.allow.contains(peer) {
            return Err(Refusal::NotAllowed);
        }
        if !self.key_from_all && is_loopback(peer) {
            return Ok(());
        }
        match (&self.api_key, key) {
            (Some(want), Some(got)) if keys_match(want.as_bytes(), got) => Ok(()),
            _ => Err(Refusal::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(key: Option<&str>, allow: &[&str]) -> ControlSettings {
        ControlSettings {
            api_key: key.map(str::to_owned),
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            key_from_all: false,
        }
    }

    /// A listener bound to a non-loopback address wants the key from a
    /// loopback peer too (a same-host proxy, a local user); one bound to
    /// loopback keeps the loopback exemption.
    #[test]
    fn a_listener_not_on_loopback_wants_the_key_from_every_peer() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let key = b"0123456789abcdef".as_slice();
        let mut c = LsConfig {
            api_key: Some("0123456789abcdef".to_owned()),
            ..LsConfig::default()
        };
        for (metrics, from_all) in [
            ("0.0.0.0:5390", true),
            ("192.0.2.1:5390", true),
            ("[::]:5390", true),
            ("127.0.0.1:5390", false),
            ("[::1]:5390", false),
        ] {
            c.metrics = Some(metrics.parse().unwrap());
            let s = ControlSettings::from_config(&c);
            let without = s.authorize(ip("127.0.0.1"), None);
            if from_all {
                assert_eq!(without, Err(Refusal::Unauthorized), "{metrics}");
            } else {
                assert_eq!(without, Ok(()), "{metrics}");
            }
            assert_eq!(s.authorize(ip("127.0.0.1"), Some(key)), Ok(()), "{metrics}");
        }
    }

    #[test]
    fn loopback_needs_no_key_others_need_the_key_and_all_need_control_allow() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let key = b"0123456789abcdef".as_slice();
        let s = settings(
            Some("0123456789abcdef"),
            &["127.0.0.0/8", "::1/128", "10.0.0.0/8"],
        );
        assert_eq!(s.authorize(ip("127.0.0.2"), None), Ok(()));
        assert_eq!(s.authorize(ip("::1"), None), Ok(()));
        assert_eq!(s.authorize(ip("::ffff:127.0.0.1"), None), Ok(()));
        assert_eq!(
            s.authorize(ip("10.1.1.1"), None),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            s.authorize(ip("10.1.1.1"), Some(b"0123456789abcdeX")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            s.authorize(ip("10.1.1.1"), Some(b"0123456789abcdef0")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(s.authorize(ip("10.1.1.1"), Some(key)), Ok(()));
        assert_eq!(
            s.authorize(ip("192.0.2.1"), Some(key)),
            Err(Refusal::NotAllowed)
        );
        // No key configured: only loopback may.
        let s = settings(None, &["0.0.0.0/0"]);
        assert_eq!(
            s.authorize(ip("10.1.1.1"), Some(b"")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(s.authorize(ip("127.0.0.1"), None), Ok(()));
        // Loopback outside control_allow is refused too.
        let s = settings(None, &["10.0.0.0/8"]);
        assert_eq!(s.authorize(ip("127.0.0.1"), None), Err(Refusal::NotAllowed));
    }

    #[test]
    fn keys_match_only_when_equal() {
        assert!(keys_match(b"abc", b"abc"));
        assert!(!keys_match(b"abc", b"abd"));
        assert!(!keys_match(b"abc", b"ab"));
        assert!(!keys_match(b"", b"a"));
        assert!(keys_match(b"", b""));
    }
}

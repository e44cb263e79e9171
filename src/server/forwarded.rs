//! `X-Forwarded-For` on the DNS over HTTPS listeners (`[ls.https] trusted_proxies`):
//! which address a request comes from when a proxy in front of the LS (one that ends
//! TLS, say) forwards it. [`client_of`] is the pure rule: the header is believed only
//! from a trusted proxy, and then the client is the rightmost address in it that is not
//! itself a trusted proxy (the addresses to its right were appended by proxies we
//! trust; the ones to its left were written by the client and prove nothing). A
//! malformed header falls back to the peer. [`TrustedProxies`] holds the networks,
//! swapped in place by a reload.
use std::net::{IpAddr, SocketAddr};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::guard::netset::NetSet;

/// Entries of `X-Forwarded-For` looked at, from the right, before the header is taken
/// as malformed: bounds the work a request can ask for.
pub const MAX_HOPS: usize = 16;

/// The longest entry read (`[` an IPv6 address `]:` a port, with spaces around).
const MAX_ENTRY: usize = 64;

/// Where a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    /// The peer itself: not a trusted proxy, or a trusted one without the header.
    Peer(SocketAddr),
    /// The address a trusted proxy forwarded for (port 0 when it named none).
    Forwarded(SocketAddr),
    /// A trusted proxy sent a header that cannot be read (or has more than
    /// [`MAX_HOPS`] trusted hops): the peer, counted.
    Malformed(SocketAddr),
}

impl ClientAddr {
    /// The address the ACL, the rate limit, the order and the logs see.
    pub fn addr(self) -> SocketAddr {
        match self {
            ClientAddr::Peer(a) | ClientAddr::Forwarded(a) | ClientAddr::Malformed(a) => a,
        }
    }
}

/// The client of a request from `peer` carrying the `X-Forwarded-For` header values
/// `headers` (in the order received; several are one list), with `trusted` the
/// proxies believed.
pub fn client_of<'a>(
    peer: SocketAddr,
    headers: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &NetSet,
) -> ClientAddr {
    if trusted.is_empty() || !trusted.contains(peer.ip()) {
        return ClientAddr::Peer(peer);
    }
    let mut seen = 0usize;
    let mut leftmost = None;
    for value in headers.rev() {
        for entry in value.rsplit(|b| *b == b',') {
            seen += 1;
            if seen > MAX_HOPS {
                return ClientAddr::Malformed(peer);
            }
            let Some(addr) = parse_entry(entry) else {
                return ClientAddr::Malformed(peer);
            };
            if !trusted.contains(addr.ip()) {
                return ClientAddr::Forwarded(addr);
            }
            leftmost = Some(addr);
        }
    }
    // Every hop a trusted proxy: the first of them is the client (none: no header).
    leftmost.map_or(ClientAddr::Peer(peer), ClientAddr::Forwarded)
}

/// One entry of the header: an IPv4 or IPv6 address, bracketed or not, with or
/// without a port (`192.0.2.1`, `192.0.2.1:53`, `2001:db8::1`, `[2001:db8::1]:53`).
fn parse_entry(entry: &[u8]) -> Option<SocketAddr> {
    if entry.len() > MAX_ENTRY {
        return None;
    }
    let entry = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// The networks of `trusted_proxies`, swapped in place by a reload.
#[derive(Debug, Default)]
pub struct TrustedProxies(ArcSwap<NetSet>);

impl TrustedProxies {
    /// Trusting `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(ArcSwap::from_pointee(NetSet::new(&nets)))
    }

    /// Trusts `nets` from now on.
    pub fn set(&self, nets: Vec<IpNet>) {
        let nets = NetSet::new(&nets);
        if **self.0.load() != nets {
            self.0.store(std::sync::Arc::new(nets));
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.0.load().contains(ip)
    }

    /// [`client_of`] with the networks in force.
    pub fn client_of<'a>(
        &self,
        peer: SocketAddr,
        headers: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> ClientAddr {
        client_of(peer, headers, &self.0.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "10.0.0.5:40000";

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The client of a request from `peer` with `headers`, trusting 10.0.0.0/8 and
    /// 2001:db8:ffff::/48.
    fn of(peer: &str, headers: &[&str]) -> ClientAddr {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        client_of(
            sa(peer),
            headers.iter().map(|h| h.as_bytes()),
            &NetSet::new(&trusted),
        )
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let from = |peer| of(peer, &["192.0.2.1"]);
        assert_eq!(from(PROXY), ClientAddr::Forwarded(sa("192.0.2.1:0")));
        assert_eq!(from("192.0.2.9:5"), ClientAddr::Peer(sa("192.0.2.9:5")));
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert!(matches!(
            from("[::ffff:10.1.2.3]:1"),
            ClientAddr::Forwarded(_)
        ));
        // No trusted proxy configured: nobody is believed.
        let none = client_of(
            sa(PROXY),
            [b"192.0.2.1".as_slice()].into_iter(),
            &NetSet::default(),
        );
        assert_eq!(none, ClientAddr::Peer(sa(PROXY)));
        // A trusted proxy without the header: the proxy itself.
        assert_eq!(of(PROXY, &[]), ClientAddr::Peer(sa(PROXY)));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        // The client wrote the leftmost entry itself: it proves nothing.
        let got = of(PROXY, &["198.51.100.7, 192.0.2.1, 10.0.0.4"]);
        assert_eq!(got, ClientAddr::Forwarded(sa("192.0.2.1:0")));
        // Several headers are one list, in order.
        let got = of(PROXY, &["198.51.100.7", "192.0.2.1,10.0.0.4", "10.9.9.9"]);
        assert_eq!(got, ClientAddr::Forwarded(sa("192.0.2.1:0")));
        // All trusted: the leftmost.
        let got = of(PROXY, &["10.0.0.1, 10.0.0.2"]);
        assert_eq!(got, ClientAddr::Forwarded(sa("10.0.0.1:0")));
        // Garbage left of the client is never read.
        let got = of(PROXY, &["nonsense, 192.0.2.1"]);
        assert_eq!(got, ClientAddr::Forwarded(sa("192.0.2.1:0")));
    }

    #[test]
    fn ipv6_ports_brackets_and_spaces() {
        let cases = [
            ("  192.0.2.1  ", "192.0.2.1:0"),
            ("\t192.0.2.1:5353", "192.0.2.1:5353"),
            ("2001:db8::1", "[2001:db8::1]:0"),
            ("[2001:db8::1]", "[2001:db8::1]:0"),
            ("[2001:db8::1]:443", "[2001:db8::1]:443"),
            ("2001:db8::1, [2001:db8:ffff::2]:9", "[2001:db8::1]:0"),
        ];
        for (header, want) in cases {
            assert_eq!(
                of(PROXY, &[header]),
                ClientAddr::Forwarded(sa(want)),
                "{header}"
            );
        }
    }

    #[test]
    fn a_malformed_header_falls_back_to_the_peer() {
        let bad = [
            "unknown",
            "192.0.2.1,",
            "",
            "192.0.2.300",
            "[2001:db8::1",
            "2001:db8::1]:5",
            "_hidden",
            "192.0.2.1 198.51.100.1",
            "10.0.0.1, fe80::1%eth0",
        ];
        for header in bad {
            assert_eq!(
                of(PROXY, &[header]),
                ClientAddr::Malformed(sa(PROXY)),
                "{header:?}"
            );
        }
        let not_utf8 = client_of(
            sa(PROXY),
            [b"\xff\xfe".as_slice()].into_iter(),
            &NetSet::new(&nets(&["10.0.0.0/8"])),
        );
        assert_eq!(not_utf8, ClientAddr::Malformed(sa(PROXY)));
    }

    #[test]
    fn the_work_is_bounded() {
        // MAX_HOPS trusted hops are walked; one more is too many.
        let hops = |n: usize| vec!["10.0.0.1"; n].join(",");
        let at_most = hops(MAX_HOPS);
        assert_eq!(
            of(PROXY, &[&at_most]),
            ClientAddr::Forwarded(sa("10.0.0.1:0"))
        );
        let over = hops(MAX_HOPS + 1);
        assert_eq!(of(PROXY, &[&over]), ClientAddr::Malformed(sa(PROXY)));
        // A huge header is read from the right only as far as the client.
        let huge = format!("{}, 192.0.2.1", "x".repeat(1 << 20));
        assert_eq!(
            of(PROXY, &[&huge]),
            ClientAddr::Forwarded(sa("192.0.2.1:0"))
        );
    }

    #[test]
    fn a_reload_swaps_the_networks() {
        let t = TrustedProxies::new(nets(&["10.0.0.0/8"]));
        let h = || [b"192.0.2.1".as_slice()].into_iter();
        assert!(matches!(
            t.client_of(sa(PROXY), h()),
            ClientAddr::Forwarded(_)
        ));
        t.set(Vec::new());
        assert_eq!(t.client_of(sa(PROXY), h()), ClientAddr::Peer(sa(PROXY)));
    }
}

//! [`NetSet`]: a list of networks compiled once into a lookup whose cost
//! does not grow with the list: each family's networks as sorted, disjoint
//! address ranges (overlapping and adjacent ones merged), a query's address
//! found with one binary search (about 16 steps for 50,000 networks, no
//! allocation). An IPv4-mapped IPv6 address is looked up as its IPv4 one
//! (as [`super::acl`] treats it), and an IPv6 network inside
//! `::ffff:0:0/96` is kept as the IPv4 network it maps, so it matches the
//! clients it names; a wider IPv6 network (`::/0`) matches IPv6 clients
//! only, as it always has.
use std::net::IpAddr;

use ipnet::IpNet;

use super::acl::canonical;

/// A set of networks: whether an address is inside any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSet {
    /// IPv4 ranges, inclusive, sorted and disjoint (not even adjacent).
    v4: Box<[(u32, u32)]>,
    /// IPv6 ranges, the same.
    v6: Box<[(u128, u128)]>,
}

/// The prefix length of `::ffff:0:0/96`, the IPv4-mapped IPv6 addresses.
const MAPPED_PREFIX: u8 = 96;

impl NetSet {
    /// The set of `nets` (any order, overlapping or nested).
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => match n.network().to_ipv4_mapped() {
                    Some(a) if n.prefix_len() >= MAPPED_PREFIX => {
                        let len = n.prefix_len() - MAPPED_PREFIX;
                        let lo = u32::from(a);
                        let hi = lo | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                        v4.push((lo, hi));
                    }
                    _ => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
                },
            }
        }
        NetSet {
            v4: merged(v4),
            v6: merged(v6),
        }
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is inside
    /// one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => inside(&self.v4, u32::from(a)),
            IpAddr::V6(a) => inside(&self.v6, u128::from(a)),
        }
    }

    /// Whether it holds no network (it contains no address).
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// How many disjoint ranges the networks came to.
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

impl FromIterator<IpNet> for NetSet {
    fn from_iter<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        let nets: Vec<IpNet> = nets.into_iter().collect();
        NetSet::new(&nets)
    }
}

/// `ranges` sorted, overlapping and adjacent ones merged.
fn merged<T: Copy + Ord + Adjacent>(mut ranges: Vec<(T, T)>) -> Box<[(T, T)]> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1 || last.1.next() == Some(lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out.into_boxed_slice()
}

/// Whether `x` is inside one of `ranges` (sorted, disjoint).
fn inside<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let after = ranges.partition_point(|&(lo, _)| lo <= x);
    after
        .checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|&(_, hi)| x <= hi)
}

/// The address after this one, if any.
trait Adjacent: Sized {
    fn next(self) -> Option<Self>;
}

impl Adjacent for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Adjacent for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn set(nets: &[&str]) -> NetSet {
        let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
        NetSet::new(&nets)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_contains_nothing() {
        let s = set(&[]);
        assert!(s.is_empty());
        assert!(!s.contains(ip("0.0.0.0")));
        assert!(!s.contains(ip("::")));
    }

    /// Asserts that `s` holds every address of `inside` and none of `outside`.
    #[track_caller]
    fn holds(s: &NetSet, inside: &[&str], outside: &[&str]) {
        for a in inside {
            assert!(s.contains(ip(a)), "{a} should be inside");
        }
        for a in outside {
            assert!(!s.contains(ip(a)), "{a} should be outside");
        }
    }

    #[test]
    fn ipv4_networks_and_their_edges() {
        let s = set(&["10.0.0.0/8", "192.0.2.1/32", "198.51.100.128/25"]);
        holds(
            &s,
            &["10.0.0.0", "10.255.255.255", "192.0.2.1"],
            &["9.255.255.255", "11.0.0.0", "192.0.2.0", "192.0.2.2"],
        );
        holds(
            &s,
            &["198.51.100.128", "198.51.100.255"],
            &["198.51.100.127"],
        );
        // No IPv6 address is inside an IPv4 network (but see the mapped one).
        holds(&s, &[], &["::a00:1"]);
    }

    #[test]
    fn ipv6_networks_and_their_edges() {
        let s = set(&["2001:db8::/32", "::1/128", "fe80::/10"]);
        holds(
            &s,
            &["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
            &["2001:db9::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"],
        );
        holds(&s, &["::1", "febf::1"], &["::2", "fec0::", "127.0.0.1"]);
    }

    #[test]
    fn slash_zero_holds_its_family_only() {
        holds(
            &set(&["0.0.0.0/0"]),
            &["0.0.0.0", "255.255.255.255", "::ffff:203.0.113.9"],
            &["2001:db8::1"],
        );
        holds(
            &set(&["::/0"]),
            &["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            &["203.0.113.9"],
        );
        assert_eq!(set(&["0.0.0.0/0", "::/0", "10.0.0.0/8"]).ranges(), 2);
    }

    #[test]
    fn overlapping_nested_and_adjacent_networks_merge() {
        let s = set(&[
            "10.1.0.0/16",
            "10.0.0.0/8",
            "10.1.2.3/32",
            "11.0.0.0/9",
            "11.128.0.0/9",
            "12.0.0.5/32",
            "12.0.0.0/30",
        ]);
        // 10/8 holds the nested ones; 11/9 and 11.128/9 are adjacent and
        // run on to nothing (12.0.0.0/30 starts at 12.0.0.0, adjacent to
        // 11.255.255.255): one range 10.0.0.0-12.0.0.3, and 12.0.0.5.
        assert_eq!(s.ranges(), 2);
        for a in [
            "10.1.2.3",
            "10.200.0.1",
            "11.0.0.0",
            "11.127.255.255",
            "11.128.0.0",
            "12.0.0.3",
            "12.0.0.5",
        ] {
            assert!(s.contains(ip(a)), "{a}");
        }
        for a in ["9.255.255.255", "12.0.0.4", "12.0.0.6"] {
            assert!(!s.contains(ip(a)), "{a}");
        }
        let v6 = set(&["2001:db8::/48", "2001:db8:0:1::/64", "2001:db8:1::/48"]);
        assert_eq!(v6.ranges(), 1);
        assert!(v6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:2::")));
    }

    #[test]
    fn mapped_ipv6_clients_and_networks_are_their_ipv4_ones() {
        let s = set(&["127.0.0.0/8", "::ffff:192.0.2.0/120"]);
        // A mapped client is looked up as its IPv4 address...
        assert!(s.contains(ip("::ffff:127.0.0.9")));
        // ...and a mapped network holds the IPv4 clients it maps.
        assert!(s.contains(ip("192.0.2.77")));
        assert!(s.contains(ip("::ffff:192.0.2.255")));
        assert!(!s.contains(ip("192.0.3.0")));
        assert_eq!(set(&["::ffff:0:0/96"]), set(&["0.0.0.0/0"]));
        // The IPv4-compatible form (::a.b.c.d) is plain IPv6.
        assert!(!set(&["::10.0.0.0/104"]).contains(ip("10.0.0.1")));
    }

    /// The previous lookup, a scan of every network: the reference.
    fn scan(nets: &[IpNet], ip: IpAddr) -> bool {
        crate::guard::acl::allowed(nets, ip)
    }

    /// A small xorshift generator, for a repeatable list.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn fifty_thousand_networks_answer_as_a_scan_does() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut nets: Vec<IpNet> = Vec::with_capacity(50_000);
        for i in 0..50_000u32 {
            let r = rng.next();
            let net: IpNet = if i % 5 == 4 {
                // IPv6, under 2001:db8::/32, /32 to /128.
                let len = 32 + (r % 97) as u8;
                let a = (0x2001_0db8u128 << 96) | (u128::from(r) << 32) | u128::from(r >> 32);
                ipnet::Ipv6Net::new(Ipv6Addr::from(a), len)
                    .unwrap()
                    .trunc()
                    .into()
            } else {
                // IPv4 anywhere, mostly /32 (a blocklist), some wider.
                let len = [32u8, 32, 32, 24, 16, 28][(r % 6) as usize];
                let a = (r >> 16) as u32;
                ipnet::Ipv4Net::new(Ipv4Addr::from(a), len)
                    .unwrap()
                    .trunc()
                    .into()
            };
            nets.push(net);
        }
        let s = NetSet::new(&nets);
        let mut probes: Vec<IpAddr> = Vec::with_capacity(4_000);
        for n in nets.iter().step_by(500) {
            // Inside a listed network, its edges, and just past it.
            probes.push(n.network());
            probes.push(n.broadcast());
            match n {
                IpNet::V4(n) => {
                    probes.push(Ipv4Addr::from(u32::from(n.broadcast()).wrapping_add(1)).into())
                }
                IpNet::V6(n) => {
                    probes.push(Ipv6Addr::from(u128::from(n.broadcast()).wrapping_add(1)).into())
                }
            }
        }
        for _ in 0..150 {
            let r = rng.next();
            probes.push(Ipv4Addr::from((r >> 16) as u32).into());
            probes.push(Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(r)).into());
            probes.push(Ipv4Addr::from(r as u32).to_ipv6_mapped().into());
        }
        let mut inside = 0;
        for &p in &probes {
            let want = scan(&nets, p);
            assert_eq!(s.contains(p), want, "{p}");
            inside += usize::from(want);
        }
        assert!(
            inside > 150 && inside < probes.len() - 150,
            "{inside} of {}",
            probes.len()
        );
        // Figures for the record (not asserted): a scan against the set.
        let t = std::time::Instant::now();
        let mut hits = 0usize;
        for &p in probes.iter().take(200) {
            hits += usize::from(scan(&nets, p));
        }
        let per_scan = t.elapsed() / 200;
        let t = std::time::Instant::now();
        for _ in 0..200 {
            for &p in &probes {
                hits += usize::from(s.contains(std::hint::black_box(p)));
            }
        }
        let per_set = t.elapsed() / (200 * probes.len() as u32);
        eprintln!(
            "50,000 networks ({} ranges): scan {per_scan:?} a lookup, set {per_set:?} ({hits})",
            s.ranges()
        );
    }
}

//! The `allow` ACL: whether a client address is inside one of the allowed
//! networks, an IPv4-mapped IPv6 address compared as its IPv4 one.
use std::net::IpAddr;

use ipnet::IpNet;

/// `ip`, with an IPv4-mapped IPv6 address turned into the IPv4 one.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is inside one of `allow`.
pub fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    allow.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_matches_networks_and_mapped_v4() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(allowed(&allow, "127.0.0.1".parse().unwrap()));
        assert!(allowed(&allow, "::1".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:127.0.0.9".parse().unwrap()));
        assert!(!allowed(&allow, "192.0.2.1".parse().unwrap()));
        assert!(!allowed(&[], "127.0.0.1".parse().unwrap()));
    }
}

//! What the kernel says of an interface, read from sysfs: how many receive
//! queues it has (one AF_XDP socket each), its MTU (the largest answer an
//! AF_XDP socket sends as one frame), its MAC address (frames to any
//! other are not for this host) and its index (another one under the same
//! name is another interface).
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Receive queues of `iface` (`/sys/class/net/IF/queues/rx-N`); at least 1.
pub fn rx_queues(iface: &str) -> u32 {
    rx_queues_in(&Path::new("/sys/class/net").join(iface))
}

fn rx_queues_in(dir: &Path) -> u32 {
    let n = std::fs::read_dir(dir.join("queues"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0);
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// The MAC address of `iface` (`/sys/class/net/IF/address`), if it reads.
pub fn mac(iface: &str) -> Option<[u8; 6]> {
    let text =
        std::fs::read_to_string(Path::new("/sys/class/net").join(iface).join("address")).ok()?;
    parse_mac(text.trim())
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The addresses the XDP program serves on `iface` for the listen
/// addresses `listen`: each as it is, but an unspecified one (`0.0.0.0`,
/// `::`) stands for the addresses of its family `iface` holds now (the
/// socket path answers only those), with its port.
pub fn served_on(iface: &str, listen: &[SocketAddr]) -> Vec<SocketAddr> {
    expand(listen, &addresses(iface))
}

/// The IP addresses `iface` holds now (none when they cannot be read).
pub fn addresses(iface: &str) -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|all| {
            all.filter(|a| a.interface_name == iface)
                .filter_map(|a| a.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `listen` with each unspecified address replaced by those of `own` of
/// its family.
fn expand(listen: &[SocketAddr], own: &[IpAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for l in listen {
        if l.ip().is_unspecified() {
            let same = own.iter().filter(|ip| ip.is_ipv4() == l.is_ipv4());
            out.extend(same.map(|ip| SocketAddr::new(*ip, l.port())));
        } else {
            out.push(*l);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The index of `iface` (`/sys/class/net/IF/ifindex`); `None` when there is
/// no such interface.
pub fn ifindex(iface: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(iface).join("ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The MTU of `iface`; 1500 when it cannot be read.
pub fn mtu(iface: &str) -> usize {
    std::fs::read_to_string(Path::new("/sys/class/net").join(iface).join("mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_stands_for_the_interface_s_own() {
        let listen: Vec<SocketAddr> = vec![
            "0.0.0.0:53".parse().unwrap(),
            "[2001:2::1]:5353".parse().unwrap(),
        ];
        let own: Vec<IpAddr> = vec![
            "198.18.0.1".parse().unwrap(),
            "198.18.1.1".parse().unwrap(),
            "2001:2::9".parse().unwrap(),
        ];
        let want: Vec<SocketAddr> = vec![
            "198.18.0.1:53".parse().unwrap(),
            "198.18.1.1:53".parse().unwrap(),
            "[2001:2::1]:5353".parse().unwrap(),
        ];
        assert_eq!(expand(&listen, &own), want);
        assert!(expand(&["[::]:53".parse().unwrap()], &own[..2]).is_empty());
        assert!(
            served_on("lo", &["0.0.0.0:53".parse().unwrap()])
                .contains(&"127.0.0.1:53".parse().unwrap())
        );
    }

    #[test]
    fn queues_are_the_rx_folders_and_at_least_one() {
        let dir = std::env::temp_dir().join(format!("dnslb-iface-{}", std::process::id()));
        let q = dir.join("queues");
        std::fs::create_dir_all(q.join("rx-0")).unwrap();
        std::fs::create_dir_all(q.join("rx-1")).unwrap();
        std::fs::create_dir_all(q.join("tx-0")).unwrap();
        assert_eq!(rx_queues_in(&dir), 2);
        assert_eq!(rx_queues_in(&dir.join("none")), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mtu("lo"), 65536);
        assert_eq!(ifindex("lo"), Some(1));
        assert_eq!(ifindex("no-such-if0"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(mac("lo"), Some([0; 6]));
    }
}

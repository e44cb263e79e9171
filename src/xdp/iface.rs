//! What the kernel says of an interface, read from sysfs: how many receive
//! queues it has (one AF_XDP socket each) and its MTU (the largest answer
//! an AF_XDP socket sends as one frame).
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
    }
}

//! What can change under a running XDP path, and what it does then: the
//! interface's MTU and MAC address, re-read by the keeper every second and
//! read by the workers from [`Live`]; and the interface itself, which an
//! operator may delete or create again under its name ([`judge`]): the
//! workers of an interface that is gone stop (the kernel's sockets serve
//! whatever comes), and an interface that is back is attached again.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// What the workers of one interface read of it while they serve.
#[derive(Debug)]
pub struct Live {
    /// The largest frame sent (the MTU plus the Ethernet header).
    max_frame: AtomicUsize,
    /// The interface's MAC address, in the low 48 bits.
    mac: AtomicU64,
    /// Set when the interface is gone: its workers stop.
    gone: AtomicBool,
}

impl Live {
    /// The state of an interface of `max_frame` and `mac`, serving.
    pub fn new(max_frame: usize, mac: [u8; 6]) -> Self {
        Live {
            max_frame: AtomicUsize::new(max_frame),
            mac: AtomicU64::new(mac_bits(mac)),
            gone: AtomicBool::new(false),
        }
    }

    /// The largest frame to send now.
    pub fn max_frame(&self) -> usize {
        self.max_frame.load(Relaxed)
    }

    /// The interface's MAC address now.
    pub fn mac(&self) -> [u8; 6] {
        let b = self.mac.load(Relaxed).to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// The interface's MTU and MAC address as read again.
    pub fn update(&self, max_frame: usize, mac: Option<[u8; 6]>) {
        self.max_frame.store(max_frame, Relaxed);
        if let Some(mac) = mac {
            self.mac.store(mac_bits(mac), Relaxed);
        }
    }

    /// The interface is gone: its workers stop.
    pub fn retire(&self) {
        self.gone.store(true, Relaxed);
    }

    /// Whether the interface is gone.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Relaxed)
    }
}

fn mac_bits(mac: [u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = mac;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

/// What the keeper sees of an interface, each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceNow {
    /// As it was: served, or still gone.
    Unchanged,
    /// The interface served is gone: deleted, or another one now has its
    /// name (its index changed).
    Gone,
    /// An interface has the name again, while none is served under it.
    Back,
}

/// The judgement of an interface served on `attached` (its index, `None`
/// when not served), whose name now has the index `now` (`None`: no such
/// interface).
pub fn judge(attached: Option<u32>, now: Option<u32>) -> IfaceNow {
    match (attached, now) {
        (Some(a), Some(n)) if a == n => IfaceNow::Unchanged,
        (Some(_), _) => IfaceNow::Gone,
        (None, Some(_)) => IfaceNow::Back,
        (None, None) => IfaceNow::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_deleted_or_made_again_is_gone_then_back() {
        assert_eq!(judge(Some(7), Some(7)), IfaceNow::Unchanged);
        assert_eq!(judge(Some(7), None), IfaceNow::Gone);
        // Deleted and created again between two looks: another index.
        assert_eq!(judge(Some(7), Some(9)), IfaceNow::Gone);
        assert_eq!(judge(None, None), IfaceNow::Unchanged);
        assert_eq!(judge(None, Some(9)), IfaceNow::Back);
    }

    #[test]
    fn the_workers_read_what_the_keeper_read_last() {
        let live = Live::new(1514, [2, 0, 0, 0, 0, 1]);
        assert_eq!((live.max_frame(), live.mac()), (1514, [2, 0, 0, 0, 0, 1]));
        live.update(1014, Some([0x2a, 0xef, 1, 2, 3, 0xff]));
        assert_eq!(live.max_frame(), 1014);
        assert_eq!(live.mac(), [0x2a, 0xef, 1, 2, 3, 0xff]);
        live.update(9014, None);
        assert_eq!(live.mac(), [0x2a, 0xef, 1, 2, 3, 0xff]);
        assert!(!live.is_gone());
        live.retire();
        assert!(live.is_gone());
    }
}

//! What `dnslb check` says of an XDP interface before anything attaches:
//! whether it exists here, its queues and MTU, and whether this process
//! has what XDP needs: CAP_NET_ADMIN and CAP_BPF (the program), CAP_NET_RAW
//! (the AF_XDP sockets), and CAP_IPC_LOCK or a locked-memory limit of 16 MiB
//! per queue (each socket's frames).
//! Passive: nothing is loaded or attached (a live server may hold the
//! interface); the driver's native XDP is known only when the server
//! attaches, and it says so in its log.
use std::path::Path;

use super::iface;

/// CAP_NET_ADMIN's bit in a capability set.
const CAP_NET_ADMIN: u32 = 12;
/// CAP_BPF's bit in a capability set.
const CAP_BPF: u32 = 39;
/// CAP_SYS_ADMIN's bit (kernels before CAP_BPF took it for BPF).
const CAP_SYS_ADMIN: u32 = 21;
/// CAP_NET_RAW's bit: an AF_XDP socket needs it.
const CAP_NET_RAW: u32 = 13;
/// CAP_IPC_LOCK's bit: locked memory past RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

/// `Ok(note)` when `name` would run XDP here as far as can be told
/// without attaching, else `Err(why not)`: sockets would serve it.
pub fn preflight(name: &str) -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let memlock = rustix::process::getrlimit(rustix::process::Resource::Memlock).current;
    preflight_with(
        name,
        &Path::new("/sys/class/net").join(name),
        &status,
        memlock,
    )
}

fn preflight_with(
    name: &str,
    dir: &Path,
    status: &str,
    memlock: Option<u64>,
) -> Result<String, String> {
    if !dir.exists() {
        return Err(format!("{name}: no such interface on this host"));
    }
    let caps = effective_caps(status);
    let has = |bit: u32| caps.is_some_and(|c| c & (1u64 << bit) != 0);
    if !has(CAP_NET_ADMIN) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        return Err(format!(
            "{name}: this process lacks CAP_NET_ADMIN and CAP_BPF (run as root, or grant them: docs/DEPLOY.md \"XDP\")"
        ));
    }
    if !has(CAP_NET_RAW) {
        return Err(format!(
            "{name}: this process lacks CAP_NET_RAW, which AF_XDP sockets need (docs/DEPLOY.md \"XDP\")"
        ));
    }
    let queues = iface::rx_queues(name);
    let need = u64::from(queues) * u64::from(super::ring::FRAMES * super::ring::FRAME_SIZE);
    // `None`: unlimited.
    if !has(CAP_IPC_LOCK) && memlock.is_some_and(|m| m < need) {
        return Err(format!(
            "{name}: {queues} AF_XDP socket(s) lock {} MiB and the locked-memory limit is {} KiB: grant CAP_IPC_LOCK or raise it (LimitMEMLOCK=, docs/DEPLOY.md \"XDP\")",
            need >> 20,
            memlock.unwrap_or(0) >> 10
        ));
    }
    let mtu = iface::mtu(name);
    Ok(format!(
        "{name}: XDP with {queues} AF_XDP socket{} (one per receive queue), MTU {mtu}",
        if queues == 1 { "" } else { "s" }
    ))
}

/// The `CapEff:` line of `/proc/self/status`.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_runs_xdp_only_with_every_capability_and_the_memory() {
        let lo = Path::new("/sys/class/net/lo");
        let root = "Name:\tdnslb\nCapEff:\t000001ffffffffff\n";
        let mib8 = Some(8 << 20);
        assert!(preflight_with("lo", lo, root, mib8).is_ok());
        let caps = |bits: &[u32]| {
            format!(
                "CapEff:\t{:016x}\n",
                bits.iter().map(|b| 1u64 << b).sum::<u64>()
            )
        };
        let err = preflight_with("lo", lo, &caps(&[CAP_NET_ADMIN]), None).unwrap_err();
        assert!(err.contains("CAP_BPF"), "{err}");
        let err = preflight_with("lo", lo, &caps(&[CAP_NET_ADMIN, CAP_BPF]), None).unwrap_err();
        assert!(err.contains("CAP_NET_RAW"), "{err}");
        let three = caps(&[CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW]);
        assert!(
            preflight_with("lo", lo, &three, None).is_ok(),
            "no memlock limit"
        );
        let err = preflight_with("lo", lo, &three, mib8).unwrap_err();
        assert!(err.contains("CAP_IPC_LOCK"), "{err}");
        assert!(preflight_with("lo", lo, &three, Some(64 << 20)).is_ok());
        let four = caps(&[CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW, CAP_IPC_LOCK]);
        assert!(preflight_with("lo", lo, &four, mib8).is_ok());
        assert!(preflight_with("lo", lo, "", None).is_err());
        let missing = preflight_with("nope0", Path::new("/sys/class/net/nope0"), root, None);
        assert!(missing.unwrap_err().contains("no such interface"));
    }
}

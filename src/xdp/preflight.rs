//! What `dnslb check` says of an XDP interface before anything attaches:
//! whether it exists here, its queues and MTU, and whether this process
//! has the capabilities XDP needs (CAP_NET_ADMIN and CAP_BPF, or root).
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

/// `Ok(note)` when `name` would run XDP here as far as can be told
/// without attaching, else `Err(why not)`: sockets would serve it.
pub fn preflight(name: &str) -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    preflight_with(name, &Path::new("/sys/class/net").join(name), &status)
}

fn preflight_with(name: &str, dir: &Path, status: &str) -> Result<String, String> {
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
    let queues = iface::rx_queues(name);
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
    fn an_interface_runs_xdp_only_with_both_capabilities() {
        let lo = Path::new("/sys/class/net/lo");
        let root = "Name:\tdnslb\nCapEff:\t000001ffffffffff\n";
        assert!(preflight_with("lo", lo, root).is_ok());
        let net_admin_only = format!("CapEff:\t{:016x}\n", 1u64 << CAP_NET_ADMIN);
        let err = preflight_with("lo", lo, &net_admin_only).unwrap_err();
        assert!(err.contains("CAP_BPF"), "{err}");
        let both = format!(
            "CapEff:\t{:016x}\n",
            (1u64 << CAP_NET_ADMIN) | (1u64 << CAP_BPF)
        );
        assert!(preflight_with("lo", lo, &both).is_ok());
        assert!(preflight_with("lo", lo, "").is_err());
        let missing = preflight_with("nope0", Path::new("/sys/class/net/nope0"), root);
        assert!(missing.unwrap_err().contains("no such interface"));
    }
}

//! The XDP keys: `xdp` in `[[ts]]` and `[ls.xdp]`: interface names as
//! Linux takes them, each given once.
use super::checker::ConfigChecker;

/// `[ls.xdp]`: interfaces named as Linux names them, each once.
pub(super) fn check_xdp(xdp: &crate::config::LsXdpConfig, check: &mut ConfigChecker<'_>) {
    check.require(!xdp.interfaces.is_empty(), "ls.xdp.interfaces", || {
        "must name at least one interface (omit [ls.xdp] for sockets only)".into()
    });
    check_interfaces(&xdp.interfaces, "ls.xdp.interfaces", check);
}

/// Each of `ifaces` (the list at `at`) an interface name, given once.
pub(super) fn check_interfaces(ifaces: &[String], at: &str, check: &mut ConfigChecker<'_>) {
    for (i, iface) in ifaces.iter().enumerate() {
        let key = format!("{at}.{i}");
        check.require(is_interface_name(iface), &key, || {
            format!(
                "{iface:?} is not an interface name (1 to 15 bytes, no '/', ':' or white space)"
            )
        });
        check.require(iface != "lo", &key, || {
            "the loopback interface cannot be served through XDP (its frames carry loopback addresses, which the XDP path refuses as a martian source): leave it out, sockets serve loopback".into()
        });
        check.require(!ifaces[..i].contains(iface), &key, || {
            format!("{iface:?} is given twice")
        });
    }
}

/// A name Linux takes for a network interface (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or white space.
fn is_interface_name(name: &str) -> bool {
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

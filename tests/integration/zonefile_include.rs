//! `$INCLUDE` in a TS's master files, over real sockets:
//!
//! - A zone built from included files (the SOA in one, hosts in another,
//!   with an origin of its own) answers as one zone.
//! - A reload notices a change in an included file alone (the zone file
//!   itself untouched) and serves it; with nothing changed, it keeps the
//!   zone as served, unread.
//! - `dnslb check` reads the included files too and names their bad lines
//!   at `file:line`.
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::kit::{ZoneDir, a_addrs, ask_a, free_port, run_dnslb, start_ts, ts_settings};

/// How long `dnslb check` may run.
const LIMIT: Duration = Duration::from_secs(10);

/// The SOA included, at `serial`.
fn soa(serial: u32) -> String {
    format!("@ 300 SOA ns1 hostmaster {serial} 7200 3600 1209600 300\n  300 NS ns1\n")
}

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
$INCLUDE parts/soa.inc
ns1 A 192.0.2.53
$INCLUDE parts/hosts.inc
$INCLUDE parts/mail.inc mail.example.test. ; the mail hosts
after A 192.0.2.99
";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn a_of(addr: std::net::SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    a_addrs(&ask_a(addr, name).await)
}

#[tokio::test]
async fn a_reload_serves_a_change_made_in_an_included_file_alone() {
    let dir = ZoneDir::new();
    write(dir.path(), "parts/soa.inc", &soa(1));
    write(dir.path(), "parts/hosts.inc", "www A 192.0.2.1\n");
    write(
        dir.path(),
        "parts/mail.inc",
        "@ A 192.0.2.25\nmx1 A 192.0.2.26\n",
    );
    let zone = dir.write("example.zone", ZONE);
    let ts = start_ts(ts_settings(vec![zone.clone()])).await;
    let ip = |s: &str| vec![s.parse::<Ipv4Addr>().unwrap()];
    assert_eq!(a_of(ts.addr, "www.example.test").await, ip("192.0.2.1"));
    assert_eq!(a_of(ts.addr, "mail.example.test").await, ip("192.0.2.25"));
    assert_eq!(
        a_of(ts.addr, "mx1.mail.example.test").await,
        ip("192.0.2.26")
    );
    // Back in the zone file, its own origin again.
    assert_eq!(a_of(ts.addr, "after.example.test").await, ip("192.0.2.99"));

    // Files changed within 2 s of a look are read again whatever their
    // stamps: once they are older, a reload with nothing changed keeps
    // the zone unread.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ts.ts.reload().unwrap();
    let kept = ts.ts.reload().unwrap();
    assert_eq!(kept.compiled, 0, "nothing changed, yet the zone was read");

    // The included files alone change (the serial is in one of them).
    write(dir.path(), "parts/soa.inc", &soa(2));
    write(dir.path(), "parts/hosts.inc", "www A 192.0.2.2\n");
    let report = ts.ts.reload().unwrap();
    assert_eq!(report.changed, 1, "the included files' change was not seen");
    assert_eq!(a_of(ts.addr, "www.example.test").await, ip("192.0.2.2"));

    // A data change without the serial raised is refused, as for the
    // zone file itself: the reload noticed it.
    write(dir.path(), "parts/hosts.inc", "www A 192.0.2.3\n");
    let err = ts.ts.reload().unwrap_err().to_string();
    assert!(err.contains("raise the serial"), "{err}");
    assert_eq!(a_of(ts.addr, "www.example.test").await, ip("192.0.2.2"));
    ts.stop().await;
}

#[test]
fn check_names_the_bad_lines_of_included_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "parts/soa.inc", &soa(1));
    write(
        dir.path(),
        "parts/hosts.inc",
        "www A 192.0.2.1\nbad A 300.1.1.1\n",
    );
    write(dir.path(), "parts/mail.inc", "$INCLUDE ../parts/mail.inc\n");
    write(dir.path(), "example.zone", ZONE);
    let port = free_port();
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"example.zone\"]\n"
    );
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let out = run_dnslb(&["check", "-c", "c.toml"], dir.path(), None, LIMIT);
    assert!(!out.status.success(), "dnslb check passed: {}", out.stderr);
    let lines = out.stderr_lines();
    assert!(
        lines.contains(&"parts/hosts.inc:2: bad IPv4 address '300.1.1.1'"),
        "{}",
        out.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("parts/mail.inc:1: $INCLUDE ")
                && l.ends_with("is a loop: that file is being read already")),
        "{}",
        out.stderr
    );
}

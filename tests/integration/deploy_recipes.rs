//! DEPLOY.md's recipes run as written:
//!
//! - the DS of a zone signed with BIND's tools, from the
//!   block that follows `dnssec-signzone`, run as it stands over a KSK and a
//!   ZSK (`dnssec-dsfromkey` over the glob of both was "fatal: extraneous
//!   arguments");
//! - "Secondaries and catalogs", "Zone control", "Backends in another
//!   site", "On the internet: RRL and cookies", "DNS over QUIC" (its table
//!   server's part), "PROXY protocol" (its dnsdist config a `-- NAME` block)
//!   and "Anycast", each walked as an operator
//!   would in a folder holding a copy of `zones/` (and of `deploy/anycast/`):
//!   each block whose first line names a file (`# primary.toml`,
//!   `; zones/shop.zone`) written there when the walk reaches it, each line
//!   of its ```sh recipe blocks run in turn: `CMD &` started as a job (a
//!   [`Proc`], stopped by PID), `kill %?TEXT` and `kill $(jobs -p)`
//!   stopping those jobs (SIGTERM, each must exit), `kill -s SIG %?TEXT`
//!   only sending the signal (STOP, CONT, TERM) and `wait %?TEXT` waiting
//!   for that job to end (`%?"TWO WORDS"` names a job as sh reads it), a
//!   command with a `# comment` run again (up to [`SETTLE`], the anycast
//!   walk [`ANYCAST_SETTLE`]) until its output shows what the comment says
//!   (an operator asking again until the transfer came, until BGP moved),
//!   any other run once and exiting 0. Rewritten, and only this: the doc's
//!   ports, when one is taken, to free ones; knotd's `/run/knot` and
//!   `/var/lib/knot` to folders of the test (the latter made first, as
//!   Debian's knot package makes it); the anycast walk's namespace names to
//!   names of this run (deleted by the walk, and by a guard if it fails).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::quic::dnspython;
use crate::kit::recipes::{SETTLE, move_ports, walk, walk_ports, with_zones};
use crate::kit::{BIN, RecipeNetns, crate_dir, need, netns_or_skip};

/// The lines of DEPLOY.md from the one starting with `first` to the one
/// starting with `last`, both included.
fn recipe(first: &str, last: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(first).expect("the recipe's first line");
    let end = start + text[start..].find(last).expect("the recipe's last line") + last.len();
    text[start..end].to_owned()
}

#[test]
fn the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds() {
    let Some([keygen, _]) = need(
        "the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds",
        ["dnssec-keygen", "dnssec-dsfromkey"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for flags in [&["-f", "KSK"][..], &[]] {
        let out = Command::new(&keygen)
            .args(["-q", "-a", "ECDSAP256SHA256"])
            .args(flags)
            .args(["-n", "ZONE", "example.test"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let script = recipe("for k in Kexample.test.+013+*.key", "\ndone");
    let out = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("example.test. IN DS "), "{stdout}");
}

/// The ports of the "Secondaries and catalogs" walk: the primary, ts3, Knot.
const WALK_PORTS: [u16; 3] = [5301, 5303, 5353];
#[test]
fn the_secondaries_and_catalogs_recipe_runs_as_written() {
    const TEST: &str = "the_secondaries_and_catalogs_recipe_runs_as_written";
    let Some([knotd, _]) = need(TEST, ["knotd", "dig"]) else {
        return;
    };
    let dir = with_zones();
    let d = dir.path();
    let ports = walk_ports(&WALK_PORTS);
    let rewrite = |text: &str| -> String {
        let t = text
            .replace("/run/knot", &d.join("run-knot").display().to_string())
            .replace("/var/lib/knot", &d.join("lib-knot").display().to_string());
        move_ports(&t, &WALK_PORTS, &ports)
    };
    // /var/lib/knot exists where knot is installed (the package makes it).
    std::fs::create_dir(d.join("lib-knot")).unwrap();
    let programs = [("dnslb", Path::new(BIN)), ("knotd", knotd.as_path())];
    let w = walk(
        "## Secondaries and catalogs",
        d,
        &rewrite,
        &programs,
        SETTLE,
    );
    w.assert_walked(4.., 10);
}

/// The ports of the "Zone control" walk: the primary, the secondary, their
/// control listeners.
const CONTROL_PORTS: [u16; 4] = [5311, 5312, 5391, 5392];
#[test]
fn the_zone_control_recipe_runs_as_written() {
    if need("the_zone_control_recipe_runs_as_written", ["dig"]).is_none() {
        return;
    }
    let dir = with_zones();
    let ports = walk_ports(&CONTROL_PORTS);
    let rewrite = |text: &str| move_ports(text, &CONTROL_PORTS, &ports);
    let programs = [("dnslb", Path::new(BIN))];
    let w = walk("## Zone control", dir.path(), &rewrite, &programs, SETTLE);
    w.assert_walked(2..=2, 11);
}

/// The ports of the "Backends in another site" walk: site B's TS, its
/// LS's plain, DoT and DoQ listeners; site A's LS and its metrics.
const SITES_PORTS: [u16; 6] = [5301, 5400, 5853, 5854, 5353, 5390];

#[test]
fn the_backends_in_another_site_recipe_runs_as_written() {
    const TEST: &str = "the_backends_in_another_site_recipe_runs_as_written";
    let Some(_) = need(TEST, ["dig", "curl", "openssl"]) else {
        return;
    };
    let dir = with_zones();
    let ports = walk_ports(&SITES_PORTS);
    let rewrite = |text: &str| move_ports(text, &SITES_PORTS, &ports);
    let w = walk(
        "## Backends in another site",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    w.assert_walked(2.., 12);
}

/// The ports of the "On the internet" walk: the TS, its metrics.
const RRL_PORTS: [u16; 2] = [5301, 5391];

#[test]
fn the_rrl_recipe_runs_as_written() {
    const TEST: &str = "the_rrl_recipe_runs_as_written";
    let Some(_) = need(TEST, ["dig", "curl"]) else {
        return;
    };
    let dir = with_zones();
    let ports = walk_ports(&RRL_PORTS);
    let rewrite = |text: &str| move_ports(text, &RRL_PORTS, &ports);
    let w = walk(
        "## On the internet: RRL and cookies",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    w.assert_walked(1.., 6);
}

/// The ports of the "DNS over QUIC" walk: the TS, its QUIC, its metrics.
const DOQ_PORTS: [u16; 3] = [5301, 8854, 5391];

#[test]
fn the_doq_recipe_runs_as_written() {
    const TEST: &str = "the_doq_recipe_runs_as_written";
    let Some([openssl, _]) = need(TEST, ["openssl", "curl"]) else {
        return;
    };
    let Some(python) = dnspython(TEST) else {
        return;
    };
    let dir = with_zones();
    let ports = walk_ports(&DOQ_PORTS);
    let rewrite = |text: &str| move_ports(text, &DOQ_PORTS, &ports);
    let programs = [
        ("dnslb", Path::new(BIN)),
        ("python3", Path::new(&python)),
        ("openssl", openssl.as_path()),
    ];
    let w = walk("## DNS over QUIC", dir.path(), &rewrite, &programs, SETTLE);
    w.assert_walked(2..=2, 7);
}

/// The "PROXY protocol" walk's ports: dnsdist's, the TS's, its metrics';
/// then the LS's part: the inner TS's and its metrics', the LS's and its
/// metrics', its dnsdist's.
const PROXY_PORTS: [u16; 8] = [5300, 5301, 5391, 5302, 5392, 5310, 5390, 5320];

#[test]
fn the_proxy_protocol_recipe_runs_as_written() {
    const TEST: &str = "the_proxy_protocol_recipe_runs_as_written";
    let Some(_) = need(TEST, ["dig", "curl", "dnsdist"]) else {
        return;
    };
    let dir = with_zones();
    let ports = walk_ports(&PROXY_PORTS);
    let rewrite = |text: &str| move_ports(text, &PROXY_PORTS, &ports);
    let w = walk(
        "## PROXY protocol",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    w.assert_walked(5.., 19);
}

/// The namespaces of the "Anycast" walk (the router, the LS host); the test
/// gives them names of its own.
const WALK_NETNS: [&str; 2] = ["anycast-r", "anycast-h1"];
/// How long the anycast walk waits for a claim: BIRD's BGP session waits
/// 5 s (`start delay time`) before its first connection, then the probe's
/// `rise` rounds.
const ANYCAST_SETTLE: Duration = Duration::from_secs(40);

#[test]
fn the_anycast_recipe_runs_as_written() {
    const TEST: &str = "the_anycast_recipe_runs_as_written";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    if need(TEST, ["bird", "birdc", "dig"]).is_none() {
        return;
    }
    let dir = with_zones();
    let d = dir.path();
    copy_dir(
        &crate_dir().join("deploy/anycast"),
        &d.join("deploy/anycast"),
    );
    let walk_ns = RecipeNetns::new(&ip, &WALK_NETNS);
    let rewrite = |text: &str| walk_ns.rewrite(text);
    let w = walk(
        "## Anycast",
        d,
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        ANYCAST_SETTLE,
    );
    w.assert_walked(2.., 20);
    for ns in &walk_ns.names {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "the walk left the namespace {ns}"
        );
    }
}

/// `from`'s files copied into `to` (made), as a checkout holds them.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

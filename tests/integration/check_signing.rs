//! `dnslb check` on a table server that signs its zones (`dnssec`): it
//! reads the keys folder and signs each zone as a dry run (writing
//! nothing), so what `dnslb ts` would refuse at start for its signing
//! `check` refuses first, in one line naming the zone and the file, with a
//! non-zero exit: a `.private` with bad base64, keys of
//! which none is active, a published key of an algorithm the TS cannot sign
//! with, an NSEC3 zone whose origin leaves no room for the hash label. A
//! good folder passes, and a missing one stays missing; an `algorithm`
//! none of the keys has is warned about (the keys go on signing).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::{self, free_port, run_dnslb};

/// How long a command that ends on its own may run.
const LIMIT: Duration = Duration::from_secs(20);

/// An unsigned zone of `origin`.
fn zone(origin: &str) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 604800 300\n\
         @ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.10\n"
    )
}

/// A config in `dir` whose ts1 signs `s.zone` with the keys in `keys/`.
fn setup(dir: &Path, origin: &str, denial: &str) {
    std::fs::write(dir.join("s.zone"), zone(origin)).unwrap();
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{}\"\nzones = [\"s.zone\"]\n\
         dnssec = {{ keys = \"keys\", denial = \"{denial}\" }}\n",
        free_port()
    );
    std::fs::write(dir.join("c.toml"), config).unwrap();
}

/// `dnssec-keygen -q ARGS s.test.` in `dir/keys`: the key's file base name.
fn keygen(dir: &Path, args: &[&str]) -> String {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut cmd = Command::new("dnssec-keygen");
    cmd.arg("-q").args(args).arg("s.test.").current_dir(&keys);
    let out = kit::run_ok("dnssec-keygen", cmd, kit::TOOL_LIMIT, "");
    out.stdout.trim().to_owned()
}

/// `dnslb check`'s problems (stderr lines) when it fails; asserts the TS
/// then refuses to start too, with the same reason.
fn refused(dir: &Path) -> Vec<String> {
    let out = run_dnslb(&["check", "-c", "c.toml"], dir, None, LIMIT);
    assert!(!out.status.success(), "check passed: {}", out.stderr);
    let lines: Vec<String> = out.stderr_lines().iter().map(|l| l.to_string()).collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let ts = run_dnslb(&["ts", "-c", "c.toml", "--name", "ts1"], dir, None, LIMIT);
    assert!(!ts.status.success(), "the TS started: {}", ts.stderr);
    lines
}

#[test]
fn check_refuses_what_the_ts_would_refuse_for_its_signing() {
    let test = "check_refuses_what_the_ts_would_refuse_for_its_signing";
    if kit::need(test, ["dnssec-keygen", "dnssec-settime"]).is_none() {
        return;
    }
    // A good folder, and none at all: ok, and nothing written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "s.test.", "nsec");
    let out = run_dnslb(&["check", "-c", "c.toml"], d, None, LIMIT);
    assert!(out.status.success(), "{test}: {}", out.stderr);
    assert!(
        !d.join("keys").exists(),
        "{test}: check made the keys folder"
    );
    keygen(d, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let out = run_dnslb(&["check", "-c", "c.toml"], d, None, LIMIT);
    assert!(out.status.success(), "{test}: {}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{test}: {}", out.stderr);
    // `algorithm` changed with the keys left as they were: ok (the keys
    // go on signing), with a warning that it takes a roll.
    let config = std::fs::read_to_string(d.join("c.toml")).unwrap();
    let ed = config.replace("denial = ", "algorithm = \"ed25519\", denial = ");
    std::fs::write(d.join("c.toml"), ed).unwrap();
    let out = run_dnslb(&["check", "-c", "c.toml"], d, None, LIMIT);
    assert!(out.status.success(), "{test}: {}", out.stderr);
    assert!(
        out.stderr.contains(
            "zone s.test.: warning: algorithm = \"ed25519\" but no key of it is published"
        ),
        "{test}: {}",
        out.stderr
    );

    // Bad base64 in the private key.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "s.test.", "nsec");
    let base = keygen(d, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let private = d.join("keys").join(format!("{base}.private"));
    let text = std::fs::read_to_string(&private).unwrap();
    std::fs::write(&private, text.replace("PrivateKey: ", "PrivateKey: !!")).unwrap();
    let lines = refused(d);
    assert!(
        lines[0].starts_with("[[ts]] ts1: zone s.test.: keys/")
            && lines[0].ends_with(&format!("{base}.private:3: PrivateKey: bad base64")),
        "{test}: {lines:?}"
    );

    // No key active.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "s.test.", "nsec");
    keygen(d, &["-a", "ECDSAP256SHA256", "-f", "KSK", "-I", "now"]);
    let lines = refused(d);
    assert!(
        lines[0].contains("no key of s.test. is active now"),
        "{test}: {lines:?}"
    );

    // A published RSA key beside a good one.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "s.test.", "nsec");
    keygen(d, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let rsa = keygen(d, &["-a", "RSASHA256", "-f", "KSK"]);
    let lines = refused(d);
    assert!(
        lines[0].contains(&format!(
            "{rsa}.key: algorithm 8 is not one the TS signs with"
        )),
        "{test}: {lines:?}"
    );

    // NSEC3 with an origin of 235 bytes: the NSEC3 owners would pass 255.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = format!(
        "{}.{}.{}.{}.test.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(36)
    );
    setup(d, &long, "nsec3");
    let lines = refused(d);
    assert!(
        lines[0].contains("cannot sign: the origin is 235 bytes long")
            && lines[0].contains("denial = \"nsec3\" needs an origin of at most 222 bytes"),
        "{test}: {lines:?}"
    );
}

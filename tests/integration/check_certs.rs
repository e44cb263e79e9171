//! `dnslb check` and the certificates of `[ls.tls]` and `[ls.https]`: one
//! whose leaf expires
//! within 14 days is warned about, the file and its notAfter named at the
//! config line of its `cert`, and the config is good all the same (exit 0),
//! in text and in JSON logs; one with more time left is not. Certificates
//! made by `openssl` as the test runs.
use std::path::Path;
use std::time::Duration;

use crate::kit::{free_ports, need, run_dnslb, run_tool};

/// How long `dnslb check` may run.
const LIMIT: Duration = Duration::from_secs(10);

/// A self-signed P-256 certificate valid for `days` from now, and its key,
/// written as `NAME.pem` and `NAME.key` in `dir`: its notAfter as `openssl
/// x509 -enddate` prints it (without its " GMT").
fn self_signed(openssl: &Path, dir: &Path, name: &str, days: u32) -> String {
    let (pem, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let days = days.to_string();
    let out = run_tool(
        openssl.to_str().unwrap(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
            "-days",
            &days,
            "-subj",
            "/CN=dns.test",
        ],
    );
    assert!(out.status.success(), "openssl req: {}", out.stderr);
    let out = run_tool(
        openssl.to_str().unwrap(),
        &["x509", "-enddate", "-noout", "-in", pem.to_str().unwrap()],
    );
    let text = out.stdout;
    text.trim()
        .strip_prefix("notAfter=")
        .and_then(|t| t.strip_suffix(" GMT"))
        .unwrap_or_else(|| panic!("openssl x509 -enddate: {text}"))
        .to_owned()
}

#[test]
fn check_warns_of_a_certificate_that_expires_within_14_days() {
    let Some([openssl]) = need("check_certs", ["openssl"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let soon_end = self_signed(&openssl, dir.path(), "soon", 5);
    self_signed(&openssl, dir.path(), "later", 60);
    let p = free_ports(4);
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:{}\"]\n\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:{}\"\n\n\
         [ls.tls]\nlisten = [\"127.0.0.1:{}\"]\ncert = \"soon.pem\"\nkey = \"soon.key\"\n\n\
         [ls.https]\nlisten = [\"127.0.0.1:{}\"]\ncert = \"later.pem\"\nkey = \"later.key\"\n",
        p[0], p[1], p[2], p[3]
    );
    std::fs::write(dir.path().join("c.toml"), &config).unwrap();

    let out = run_dnslb(&["check", "-c", "c.toml"], dir.path(), None, LIMIT);
    let stderr = out.stderr.clone();
    assert!(
        out.status.success(),
        "a warning does not make the config bad:\n{stderr}"
    );
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "the 5-day certificate only:\n{stderr}");
    let w = warnings[0];
    // `cert = "soon.pem"` is line 10.
    assert!(w.starts_with("c.toml:10: ls.tls.cert: warning: "), "{w}");
    assert!(w.contains(" soon.pem "), "the file named: {w}");
    assert!(
        w.contains(&soon_end) && w.contains("notAfter"),
        "{soon_end}: {w}"
    );
    assert!(!stderr.contains("later.pem"), "{stderr}");
    assert!(stderr.contains("c.toml: ok"), "{stderr}");

    let out = run_dnslb(
        &["--log-format", "json", "check", "-c", "c.toml"],
        dir.path(),
        None,
        LIMIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let events: Vec<serde_json::Value> = out
        .stderr_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["level"], "WARN");
    assert_eq!(events[0]["fields"]["message"], w, "the same line");
    assert_eq!(events[1]["fields"]["message"], "c.toml: ok");
}

//! `dnslb check` as an operator meets it: every bad line of every zone, as
//! `named-checkzone` lists them; JSON lines with `--log-format json`; a
//! missing zone file named with its config line and `[[ts]]`; a `--name`
//! that names no `[[ts]]` answered with the names there are; a table
//! server's fatal line tagged with its name in text logs too.
use std::path::Path;
use std::time::Duration;

use crate::kit::{Output, free_port, run_dnslb};

/// How long a command that ends on its own may run.
const LIMIT: Duration = Duration::from_secs(10);

/// A master file with bad lines 6, 7 and 8.
const BAD_ZONE: &str = "$ORIGIN t.test.
$TTL 300
@ SOA ns h 1 7200 3600 1209600 300
@ NS ns
ns A 192.0.2.1
x A 300.1.1.1
y A 1.2.3
z BOGUS 1
w A 192.0.2.9
";

/// A PROJ table with bad lines 1, 3 and 4.
const BAD_TABLE: &str = "www.example.com 1.2.3.400 A
ok.example.com 1.2.3.4 A
b..x 1.2.3.4 A
c.example.com 1.2.3.4 XX
";

/// Writes `config` (a `[[ts]]` named ts1 serving `zones`) and the files into `dir`.
fn setup(dir: &Path, zones: &str) {
    let port = free_port();
    std::fs::write(dir.join("bad.zone"), BAD_ZONE).unwrap();
    std::fs::write(dir.join("bad.txt"), BAD_TABLE).unwrap();
    std::fs::write(dir.join("good.txt"), "www.example.com 192.0.2.1 A\n").unwrap();
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\n  {zones}\n]\n\n\
         [[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:{}\"\nzones = [\"good.txt\"]\n",
        port + 1
    );
    std::fs::write(dir.join("c.toml"), config).unwrap();
}

/// `dnslb check` of the [`setup`] serving `zones`, which must fail: its
/// output.
fn check_refuses(zones: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), zones);
    let out = run_dnslb(&["check", "-c", "c.toml"], dir.path(), None, LIMIT);
    assert!(!out.status.success(), "dnslb check passed: {}", out.stderr);
    out
}

#[test]
fn check_lists_every_bad_line_of_every_zone() {
    let out = check_refuses("\"bad.zone\", \"bad.txt\"");
    assert_eq!(
        out.stderr_lines(),
        [
            "bad.zone:6: bad IPv4 address '300.1.1.1'",
            "bad.zone:7: bad IPv4 address '1.2.3'",
            "bad.zone:8: unknown type 'BOGUS'",
            "bad.txt:1: bad IPv4 address '1.2.3.400'",
            "bad.txt:3: bad hostname 'b..x': empty label",
            "bad.txt:4: unknown type 'XX' (PROJ tables hold A, AAAA, CNAME, TXT, NS)",
        ],
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_zone_file_is_named_with_its_config_line_and_ts() {
    let out = check_refuses("\"good.txt\",\n  \"missing.txt\"");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("c.toml:6: ")
            && lines[0].contains("[[ts]] ts1: missing.txt: cannot read: "),
        "{}",
        lines[0]
    );
}

#[test]
fn with_json_logs_every_line_of_check_is_json() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "\"bad.zone\"");
    let json = |args: &[&str]| {
        let out = run_dnslb(args, dir.path(), None, LIMIT);
        let events: Vec<serde_json::Value> = out
            .stderr_lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        (out.status.success(), events)
    };
    let (ok, events) = json(&["--log-format", "json", "check", "-c", "c.toml"]);
    assert!(!ok);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["level"], "ERROR");
    assert_eq!(
        events[0]["fields"]["message"],
        "bad.zone:6: bad IPv4 address '300.1.1.1'"
    );
    std::fs::write(
        dir.path().join("bad.zone"),
        BAD_ZONE
            .replace("300.1.1.1", "192.0.2.2")
            .replace("1.2.3\n", "192.0.2.3\n")
            .replace("BOGUS 1", "A 192.0.2.4"),
    )
    .unwrap();
    let (ok, events) = json(&["--log-format", "json", "check", "-c", "c.toml"]);
    assert!(ok, "{events:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["fields"]["message"], "c.toml: ok");
    // A config that cannot be read: still JSON.
    let (ok, events) = json(&["--log-format", "json", "check", "-c", "nope.toml"]);
    assert!(!ok);
    assert_eq!(events[0]["level"], "ERROR");
}

#[test]
fn a_name_that_is_no_ts_gets_the_names_there_are() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "\"good.txt\"");
    for cmd in ["ts", "ds"] {
        let out = run_dnslb(
            &[cmd, "-c", "c.toml", "--name", "nope"],
            dir.path(),
            None,
            LIMIT,
        );
        assert!(!out.status.success());
        // `dnslb ts` tags its lines with the name it was given.
        let tag = if cmd == "ts" { " ts=nope" } else { "" };
        assert_eq!(
            out.stderr_lines(),
            [format!(
                "dnslb: error: c.toml: no [[ts]] named 'nope' (its table servers: ts1, ts2){tag}"
            )],
            "{cmd}"
        );
    }
}

#[test]
fn a_table_servers_fatal_line_carries_its_name_in_text_logs() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "\"bad.zone\"");
    let out = run_dnslb(
        &["ts", "-c", "c.toml", "--name", "ts1"],
        dir.path(),
        None,
        LIMIT,
    );
    assert!(!out.status.success());
    let last = out
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last, "dnslb: error: bad.zone:6: bad IPv4 address '300.1.1.1' ts=ts1",
        "{}",
        out.stderr
    );
}

/// Every zone given twice is named at once: two
/// secondaries of one name (a rule of the config) and a zone file's zone
/// given again as a secondary (found by reading the file), where `check`
/// named only the first until it was fixed.
#[test]
fn check_names_every_zone_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("a.zone"),
        "$ORIGIN a.test.\n$TTL 300\n@ SOA ns h 1 7200 3600 1209600 300\n@ NS ns\nns A 192.0.2.1\n",
    )
    .unwrap();
    let primary = "127.0.0.1:5300";
    let config = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\n  \"a.zone\",\n  \
         {{ name = \"A.test.\", primary = \"{primary}\" }},\n  \
         {{ name = \"b.test\", primary = \"{primary}\" }},\n  \
         {{ name = \"B.TEST\", primary = \"{primary}\" }},\n]\n"
    );
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let out = run_dnslb(&["check", "-c", "c.toml"], dir.path(), None, LIMIT);
    assert!(!out.status.success());
    let text = out.stderr;
    assert!(text.contains("B.TEST. is given twice"), "{text}");
    assert!(
        text.contains("a.test. is given twice, by a zone file and as a secondary zone"),
        "{text}"
    );
}

//! A pre-signed NSEC3 zone with many hash iterations (RFC 9276 asks for 0):
//! above 500 the TS would answer every NXDOMAIN and NODATA with no proof at
//! all (validators turn them into SERVFAIL; RFC 9276 §3.2 lets them fail
//! such a zone anyway), so the zone is refused at load, at the
//! NSEC3PARAM's `file:line`, by `dnslb ts` and `dnslb check` alike; from
//! 151 to 500 it is served with its proofs and a warning (validators treat
//! it as insecure), as `named-checkzone` warns. NSD and Knot load either.
use std::path::{Path, PathBuf};

use dnslb::ts::TableServer;

use crate::kit::{self, ZoneDir};

/// `n3s.test.` signed by `ldns-signzone` with NSEC3, salt `aabbccdd` and
/// `iterations`, in a folder of its own: the folder, the signed file and
/// the NSEC3PARAM's line. `None` (the test skipped) without the ldns tools.
fn signed(test: &str, iterations: u16) -> Option<(ZoneDir, PathBuf, usize)> {
    kit::need(test, ["ldns-keygen", "ldns-signzone"])?;
    let dir = ZoneDir::new();
    let d = dir.path();
    std::fs::write(d.join("unsigned.zone"), kit::small_zone("n3s.test.", 1)).unwrap();
    let run = |prog: &str, args: &[&str]| kit::stdout_in(d, prog, args);
    let key = run("ldns-keygen", &["-a", "ECDSAP256SHA256", "-k", "n3s.test."]);
    let t = iterations.to_string();
    let file = format!("n3s-{iterations}.zone");
    run(
        "ldns-signzone",
        &[
            "-n",
            "-t",
            &t,
            "-s",
            "aabbccdd",
            "-f",
            &file,
            "unsigned.zone",
            &key,
        ],
    );
    let path = d.join(&file);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l.split_whitespace().nth(3) == Some("NSEC3PARAM"))
        .expect("an NSEC3PARAM line")
        + 1;
    Some((dir, path, line))
}

fn config(dir: &Path, zone: &Path) -> PathBuf {
    let text = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{}\"\nzones = [\"{}\"]\n",
        kit::free_port(),
        kit::path_str(zone)
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn more_than_500_nsec3_iterations_are_refused_at_load_and_by_check() {
    let test = "more_than_500_nsec3_iterations_are_refused_at_load_and_by_check";
    let Some((dir, zone, line)) = signed(test, 600) else {
        return;
    };
    let want = format!(
        "{}:{line}: the NSEC3PARAM of n3s.test. has 600 iterations, above 500: ",
        zone.display()
    );
    let err = TableServer::load(kit::ts_settings(vec![zone.clone()]))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.starts_with(&want), "{test}: {err}");
    let config = config(dir.path(), &zone);
    let out = kit::dnslb_check(&config, dir.path());
    assert!(!out.status.success(), "{test}: {}", out.stderr);
    assert!(
        out.stderr_lines().iter().any(|l| l.starts_with(&want)),
        "{test}: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_500_nsec3_iterations_are_served_with_proofs_and_a_warning() {
    let test = "up_to_500_nsec3_iterations_are_served_with_proofs_and_a_warning";
    let Some((dir, zone, line)) = kit::need(test, ["dig"]).and_then(|_| signed(test, 200)) else {
        return;
    };
    let config = config(dir.path(), &zone);
    let out = kit::dnslb_check(&config, dir.path());
    assert!(out.status.success(), "{test}: {}", out.stderr);
    let warning = format!(
        "{}:{line}: warning: the NSEC3PARAM of n3s.test. has 200 iterations, above 150",
        zone.display()
    );
    assert!(out.stderr.contains(&warning), "{test}: {}", out.stderr);
    let ts = kit::start_ts(kit::ts_settings(vec![zone])).await;
    let port = ts.addr.port().to_string();
    let said = kit::run_tool(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+dnssec",
            "+noall",
            "+authority",
            "nx.n3s.test.",
            "A",
        ],
    );
    let nsec3 = said
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("NSEC3"))
        .count();
    assert!(nsec3 > 0, "{test}: no NSEC3 proof: {}", said.stdout);
    ts.stop().await;
}

/// Hostile read of today's fix: the chain itself is what the TS proves
/// with. An NSEC3PARAM rewritten to say 0 iterations over a chain of 600
/// passed, and every NXDOMAIN went out without proofs; the chain's own
/// NSEC3 records are read too now.
#[test]
fn a_chain_of_more_than_500_iterations_is_refused_whatever_its_nsec3param_says() {
    let test = "a_chain_of_more_than_500_iterations_is_refused_whatever_its_nsec3param_says";
    let Some((_dir, zone, line)) = signed(test, 600) else {
        return;
    };
    let text = std::fs::read_to_string(&zone).unwrap();
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line {
                // `owner ttl IN NSEC3PARAM alg flags iterations salt`
                let mut f: Vec<&str> = l.split_whitespace().collect();
                f[6] = "0";
                f.join(" ")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&zone, edited.join("\n") + "\n").unwrap();
    let err = TableServer::load(kit::ts_settings(vec![zone.clone()]))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("the NSEC3 of n3s.test. has 600 iterations, above 500"),
        "{test}: {err}"
    );
}

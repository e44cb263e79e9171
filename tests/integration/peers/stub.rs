//! The system's stub resolver (glibc, through `getent`) against the LS.
//!
//! The test makes a network namespace of its own (`dnslb-t-PID-XXXX`, only
//! its loopback, up) and runs two `dnslb ts` (partitioned halves of the
//! names, PROJ tables `tests/data/peers/stub_ts*.txt`) and a `dnslb ls` on
//! 127.0.0.1:53 inside it, with `/etc/netns/NAME/resolv.conf` saying
//! `nameserver 127.0.0.1`, which `ip netns exec` puts in place of
//! `/etc/resolv.conf`. No packet leaves the namespace.
//!
//! `getent hosts` (gethostbyname2: AAAA, then A if there is none) and
//! `getent ahosts` (getaddrinfo: A and AAAA sent together on one socket by
//! one `sendmmsg`, a pipelined pair the LS must answer both of) must print
//! the tables' addresses, through a CNAME too; a missing name must fail (exit 2) promptly: the resolver's
//! own timeout is 5 s, so a lost answer would show.
//!
//! The namespace and its `/etc/netns` folder are removed by a guard, after
//! the processes (stopped by PID: `ip netns exec` `execve`s dnslb) are gone.
//! Without the right to create a namespace the test is skipped.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kit::{Output, Proc, pair_backends_toml, poll_until, run};
use crate::kit::{
    PEER_POLL, PEER_READY_LIMIT, need, peers_fixture, start_ls_proc, summary, ts_command,
};

/// A bound on one `getent` run: twice the resolver's default attempts of
/// 5 s, and some.
const GETENT_LIMIT: Duration = Duration::from_secs(15);
/// How long a missing name may take to fail: well under the resolver's own
/// 5 s timeout, so that only a real answer (NXDOMAIN) can explain it.
const MISSING_LIMIT: Duration = Duration::from_secs(3);

/// A network namespace with its loopback up and a resolv.conf of its own;
/// dropping it deletes both.
struct Netns {
    name: String,
    ip: PathBuf,
    /// `/etc/netns/NAME`.
    etc: PathBuf,
    /// `/etc/netns` did not exist before: remove it too (if empty).
    made_etc_netns: bool,
}

impl Netns {
    /// `ip netns add`, `lo` up, `/etc/netns/NAME/resolv.conf` with
    /// `resolv_conf`. `Err` (why) when the namespace cannot be made.
    fn create(ip: &Path, resolv_conf: &str) -> Result<Netns, String> {
        let name = format!(
            "dnslb-t-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        );
        let add = Command::new(ip)
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("ip netns add: {e}"))?;
        if !add.status.success() {
            return Err(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&add.stderr).trim()
            ));
        }
        let etc_netns = Path::new("/etc/netns");
        let ns = Netns {
            etc: etc_netns.join(&name),
            name,
            ip: ip.to_owned(),
            made_etc_netns: !etc_netns.exists(),
        };
        // From here on the guard removes whatever was made.
        crate::kit::netns::ip_in(ip, &ns.name, &["link", "set", "lo", "up"]);
        std::fs::create_dir_all(&ns.etc)
            .map_err(|e| format!("cannot create {}: {e}", ns.etc.display()))?;
        std::fs::write(ns.etc.join("resolv.conf"), resolv_conf).unwrap();
        Ok(ns)
    }

    /// The prefix that runs a command inside: `ip netns exec NAME`.
    fn exec(&self) -> [&str; 4] {
        [self.ip.to_str().unwrap(), "netns", "exec", &self.name]
    }

    /// Runs `prog args` inside the namespace to its end (at most
    /// [`GETENT_LIMIT`]).
    fn run(&self, prog: &str, args: &[&str]) -> (Output, Duration) {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.name, prog])
            .args(args)
            .current_dir("/");
        let t = Instant::now();
        let out = run(
            &format!("{prog} {} (in {})", args.join(" "), self.name),
            cmd,
            None,
            GETENT_LIMIT,
        );
        (out, t.elapsed())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.etc);
        if self.made_etc_netns {
            let _ = std::fs::remove_dir("/etc/netns");
        }
        let del = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .output();
        if !del.is_ok_and(|o| o.status.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

/// `getent DB NAME` in `ns`: it must succeed and print exactly `want`
/// (in that order); its output.
fn getent(ns: &Netns, db: &str, name: &str, want: &[&str]) -> Output {
    let (out, _) = ns.run("getent", &[db, name]);
    assert!(out.status.success(), "getent {db} {name}: {out:?}");
    assert_eq!(addresses(&out), want, "getent {db} {name}: {}", out.stdout);
    out
}

/// The addresses `getent` printed: the first field of each line, in order,
/// without repeats (ahosts prints each for STREAM, DGRAM and RAW).
fn addresses(out: &Output) -> Vec<String> {
    let mut seen = Vec::new();
    for line in out.stdout.lines() {
        if let Some(a) = line.split_whitespace().next()
            && !seen.iter().any(|s| s == a)
        {
            seen.push(a.to_owned());
        }
    }
    seen
}

/// Whether the process `pid` runs the dnslb binary (not `ip`).
fn is_dnslb(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|p| p.file_name().is_some_and(|f| f == "dnslb"))
}

/// The LS on the namespace's 127.0.0.1:53 in front of two `dnslb ts`.
fn ls_config() -> String {
    format!(
        "[ls]\nlisten = [\"127.0.0.1:53\"]\nworkers = 2\n\n[ls.health]\ninterval_ms = 500\n\n{}",
        pair_backends_toml(5301, 5302)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glibc_stub_resolver_in_a_namespace_gets_a_aaaa_and_prompt_nxdomain() {
    const TEST: &str = "glibc_stub_resolver_in_a_namespace";
    let [ip, _getent] = crate::kit::or_skip!(need(TEST, ["ip", "getent"]));
    // Asserts wall-clock upper bounds: never beside a load test.
    let _load = crate::kit::timed().await;
    let ns = match Netns::create(&ip, "nameserver 127.0.0.1\n") {
        Ok(ns) => ns,
        Err(why) => {
            crate::kit::skip(TEST, &format!("cannot make a network namespace ({why})"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let wrap = ns.exec();
    let (z1, z2) = (peers_fixture("stub_ts1.txt"), peers_fixture("stub_ts2.txt"));
    let mut ts1 = Proc::spawn("ts1 (netns)", ts_command(&wrap, 5301, &[&z1], &[]));
    let mut ts2 = Proc::spawn("ts2 (netns)", ts_command(&wrap, 5302, &[&z2], &[]));
    let mut ls = start_ls_proc("ls (netns)", dir.path(), &ls_config(), &wrap);

    // The LS answers the stub resolver (a refused port fails at once).
    let t = Instant::now();
    let ready = poll_until(PEER_READY_LIMIT, PEER_POLL * 5, || {
        for p in [&mut ts1, &mut ts2, &mut ls] {
            p.assert_running();
        }
        let (out, _) = ns.run("getent", &["hosts", "v4.example.test"]);
        out.status.success().then_some(out)
    });
    let ready = ready.unwrap_or_else(|| {
        panic!("getent did not resolve v4.example.test through the LS within {PEER_READY_LIMIT:?}")
    });
    eprintln!(
        "stub: the LS answered getent {:?} after the start",
        t.elapsed()
    );
    for p in [&ts1, &ts2, &ls] {
        assert!(is_dnslb(p.pid()), "the guard holds dnslb's own PID");
    }

    // gethostbyname2: AAAA first (NODATA for v4: ts2 has only A, ts1 has
    // nothing), then A.
    assert_eq!(addresses(&ready), ["192.0.2.20"], "{}", ready.stdout);
    getent(&ns, "hosts", "dual.example.test", &["2001:db8::10"]);
    let out = getent(&ns, "hosts", "alias.example.test", &["192.0.2.20"]);
    assert!(
        out.stdout.contains("alias.example.test"),
        "the CNAME shows as an alias: {}",
        out.stdout
    );

    // getaddrinfo: A and AAAA together; both halves of the pair answered,
    // every time.
    let mut took = Vec::new();
    for round in 0..10 {
        let (out, t) = ns.run("getent", &["ahosts", "dual.example.test"]);
        assert!(
            out.status.success(),
            "round {round}: getent ahosts dual: {out:?}"
        );
        let mut got = addresses(&out);
        got.sort();
        assert_eq!(
            got,
            ["192.0.2.10", "2001:db8::10"],
            "round {round}: {}",
            out.stdout
        );
        took.push(t);
    }
    getent(&ns, "ahosts", "v6.example.test", &["2001:db8::20"]);
    // (Not `ahostsv4`: getent asks with AI_ADDRCONFIG, and a namespace with
    // only a loopback has no IPv4 address that counts, so glibc answers
    // "not found" without a query. With neither family configured, AF_UNSPEC
    // asks both, which is the pair this test wants.)
    getent(&ns, "ahosts", "alias.example.test", &["192.0.2.20"]);

    // A missing name: NXDOMAIN from both halves, so exit 2 at once.
    let mut missing = Vec::new();
    for args in [
        ["hosts", "nope.example.test"],
        ["ahosts", "nope.example.test"],
        ["ahosts", "nope.dual.example.test"],
    ] {
        let (out, t) = ns.run("getent", &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "getent {} must fail with 2 (not found): {out:?}",
            args.join(" ")
        );
        assert!(
            t <= MISSING_LIMIT,
            "getent {} failed only after {t:?} (> {MISSING_LIMIT:?}): an answer was lost",
            args.join(" ")
        );
        missing.push(t);
    }
    eprintln!(
        "stub: getent ahosts dual (A+AAAA pair) {}; missing names fail (exit 2) in {}",
        summary(&took),
        summary(&missing)
    );
    for p in [&mut ts1, &mut ts2, &mut ls] {
        p.assert_running();
    }
    drop((ls, ts1, ts2));
    drop(ns);
}

//! dnsdist (PowerDNS's DNS load balancer) in front of two `dnslb ts`
//! processes serving the same zone: dnsdist's own health checks (an SOA
//! query for the zone every second) must see both up, round-robin must
//! reach both, and every answer through dnsdist must be the TS's own. Then
//! one TS is SIGKILLed: dnsdist marks it down and keeps answering from the
//! other.
//!
//! dnsdist runs in the foreground (`--supervised`) with its Lua config in a
//! temporary folder, its console on a local port with a random key (read
//! with `dnsdist -C CONF -c -e 'showServers()'`), and the security poll off
//! (no query leaves the machine).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::kit::{
    PEER_READY_LIMIT, PeerView, ask, need, peers_fixture, start_ts_ready, summary, wait_for,
};
use crate::kit::{Proc, assert_config_accepted, free_ports, local, poll_until, run};

/// How long dnsdist may take to mark a dead backend down (checks every
/// second, one failure marks it down).
const DOWN_LIMIT: Duration = Duration::from_secs(10);

/// What dnsdist is asked and compared with the TS's own answer.
const PROBES: &[(&str, RecordType)] = crate::kit::EXAMPLE_TEST_PROBES;

/// Standard base64 of `bytes` (the console key's format).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// dnsdist with its config in a temporary folder.
struct Dnsdist {
    /// Declared before `dir`: the process stops before its folder goes.
    proc: Proc,
    addr: SocketAddr,
    bin: PathBuf,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsdist {
    /// dnsdist on 127.0.0.1:`port`, console on `console`, round-robin over
    /// `backends` (name, address), each health-checked with `example.test.
    /// SOA` every second.
    fn start(bin: &Path, port: u16, console: u16, backends: &[(&str, SocketAddr)]) -> Dnsdist {
        let dir = tempfile::tempdir().unwrap();
        let key = base64(&rand::random::<[u8; 32]>());
        let mut lua = format!(
            "setSecurityPollSuffix(\"\")\n\
             setLocal(\"127.0.0.1:{port}\")\n\
             controlSocket(\"127.0.0.1:{console}\")\n\
             setKey(\"{key}\")\n\
             setServerPolicy(roundrobin)\n"
        );
        for (name, addr) in backends {
            lua.push_str(&format!(
                "newServer{{address=\"{addr}\", name=\"{name}\", healthCheckMode=\"auto\", \
                 checkName=\"example.test.\", checkType=\"SOA\", checkInterval=1, \
                 maxCheckFailures=1, rise=1}}\n"
            ));
        }
        let conf = dir.path().join("dnsdist.conf");
        std::fs::write(&conf, &lua).unwrap();
        let mut check = Command::new(bin);
        check.arg("--check-config").arg("-C").arg(&conf);
        assert_config_accepted(check, "dnsdist.conf", &lua);
        // dnsdist logs to stdout: `sh` sends that to stderr, where [`Proc`]
        // keeps it for `stderr_now`, and `exec`s dnsdist (same PID).
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec \"$0\" \"$@\" 1>&2"])
            .arg(bin)
            .args(["--supervised", "--disable-syslog", "-C"])
            .arg(&conf)
            .current_dir(dir.path());
        Dnsdist {
            proc: Proc::spawn("dnsdist", cmd),
            addr: local(port),
            bin: bin.to_owned(),
            conf,
            _dir: dir,
        }
    }

    /// Runs `lua` on dnsdist's console: what it printed, or the error (the
    /// console may not listen yet).
    fn console(&self, lua: &str) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-C").arg(&self.conf).args(["-c", "-e", lua]);
        let out = run("dnsdist console", cmd, None, Duration::from_secs(10));
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    }

    /// The servers as `showServers()` lists them: (name, state, queries).
    fn servers(&self) -> Result<Vec<(String, String, u64)>, String> {
        let text = self.console("showServers()")?;
        // "#   Name  Address  State  Qps  Qlim Ord Wt  Queries ..."
        Ok(text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|f| f.parse::<u32>().is_ok())
            })
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_owned(), f[3].to_owned(), f[8].parse().unwrap_or(0))
            })
            .collect())
    }

    /// Polls `showServers()` until `done` holds for the list; panics with the
    /// last listing and dnsdist's log after `limit`.
    fn wait_servers(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[(String, String, u64)]) -> bool,
    ) -> Vec<(String, String, u64)> {
        let mut last = Err("not asked".to_owned());
        let found = poll_until(limit, Duration::from_millis(100), || {
            self.proc.assert_running();
            let s = self.servers();
            if let Ok(s) = &s
                && done(s)
            {
                return Some(s.clone());
            }
            last = s;
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "dnsdist: {what} not seen within {limit:?}; last showServers(): {last:?}\n\
                 --- dnsdist stderr ---\n{}",
                self.proc.stderr_now()
            )
        })
    }
}

fn state_of<'a>(servers: &'a [(String, String, u64)], name: &str) -> Option<&'a str> {
    servers.iter().find(|s| s.0 == name).map(|s| s.1.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsdist_health_checks_and_forwards_to_two_table_servers() {
    let Some([bin]) = need("dnsdist_in_front_of_two_ts", ["dnsdist"]) else {
        return;
    };
    let zone = peers_fixture("example.test.zone");
    let [p1, p2, port, console] = free_ports(4).try_into().unwrap();
    let mut ts1 = start_ts_ready("ts1", p1, &[&zone], "example.test.").await;
    let mut ts2 = start_ts_ready("ts2", p2, &[&zone], "example.test.").await;
    let mut dd = Dnsdist::start(
        &bin,
        port,
        console,
        &[("ts1", local(p1)), ("ts2", local(p2))],
    );

    // Its health checks see both up.
    let t = Instant::now();
    dd.wait_servers(PEER_READY_LIMIT, "both backends up", |s| {
        state_of(s, "ts1") == Some("up") && state_of(s, "ts2") == Some("up")
    });
    eprintln!(
        "dnsdist: both table servers up {:?} after its start",
        t.elapsed()
    );
    // Up because a health check succeeded, not by default.
    for (name, p) in [("ts1", p1), ("ts2", p2)] {
        let line = format!("Marking downstream {name} (127.0.0.1:{p}) as 'up'");
        let log = dd.proc.stderr_now();
        assert!(
            log.contains(&line),
            "dnsdist's health check of {name} should have succeeded (`{line}`):\n{log}"
        );
    }
    wait_for(
        dd.addr,
        "www.example.test.",
        RecordType::A,
        false,
        PEER_READY_LIMIT,
        &mut [&mut dd.proc],
        |m| m.metadata.authoritative,
    )
    .await;

    // Every answer through dnsdist is the TS's own, a few rounds (so that
    // round-robin reaches both).
    let mut took = Vec::new();
    for _ in 0..3 {
        for &(name, qtype) in PROBES {
            let direct = ask(local(p1), name, qtype, false, Duration::from_secs(2))
                .await
                .expect("the TS answers");
            let t = Instant::now();
            let via = ask(dd.addr, name, qtype, false, Duration::from_secs(2)).await;
            took.push(t.elapsed());
            let via = via.unwrap_or_else(|| panic!("dnsdist: no answer to {name} {qtype}"));
            PeerView::assert_same(&via, &direct, &format!("{name} {qtype}: dnsdist vs TS"));
        }
    }
    eprintln!("dnsdist -> TS answers: {}", summary(&took));
    let servers = dd.servers().expect("dnsdist's console answers");
    for name in ["ts1", "ts2"] {
        let s = servers.iter().find(|s| s.0 == name).unwrap();
        assert!(
            s.1 == "up" && s.2 > 0,
            "round-robin reaches {name}, still up: {servers:?}"
        );
    }
    let log = dd.proc.stderr_now();
    assert!(
        !log.contains("as 'down'"),
        "no backend was ever marked down while both ran:\n{log}"
    );

    // ts1 killed: dnsdist's checks mark it down, ts2 answers everything.
    let killed = Instant::now();
    ts1.kill_hard();
    dd.wait_servers(DOWN_LIMIT, "ts1 down, ts2 up", |s| {
        state_of(s, "ts1") == Some("down") && state_of(s, "ts2") == Some("up")
    });
    eprintln!(
        "dnsdist: ts1 marked down {:?} after its SIGKILL",
        killed.elapsed()
    );
    for &(name, qtype) in PROBES {
        let direct = ask(local(p2), name, qtype, false, Duration::from_secs(2))
            .await
            .expect("ts2 answers");
        let via = ask(dd.addr, name, qtype, false, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("dnsdist with ts1 down: no answer to {name} {qtype}"));
        PeerView::assert_same(&via, &direct, &format!("{name} {qtype}: dnsdist vs ts2"));
    }
    ts2.assert_running();
    dd.proc.assert_running();
}

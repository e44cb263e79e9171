//! What the processes log: `--log-format json` lines from
//! `dnslb ls`, `dnslb ts` and `dnslb up` (children included, each naming its
//! table server), `--log` reaching `up`'s children, the query log at `debug`
//! and silence per query at `info`, the SIGHUP warning naming the keys only a
//! restart applies, and the bounded rate-limit lines under a flood.
//!
//! Every process runs from a temporary folder with `RUST_LOG` removed (so
//! `--log` decides), is stopped by PID (the [`Proc`] guard, or SIGTERM and
//! [`Proc::finish`] to collect its whole stderr), and is waited for by
//! polling its stderr or real DNS queries with a deadline.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use serde_json::Value;

use crate::kit;
use crate::kit::{BIN, Proc, free_ports, ls_fixture, path_str, poll_until};

/// How long a process may take to be ready, or to log what a test waits for.
const LIMIT: Duration = Duration::from_secs(10);
/// How long a stopping process may take to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(10);
/// One query's wait for its answer.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// A name of the `ts1.txt` fixture, and its address.
const NAME: &str = "www.example.com";
const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

// ---------------------------------------------------------------------------
// Processes and their lines.

/// `dnslb ARGS` in `cwd`, with neither `RUST_LOG` nor a supervisor in its
/// environment.
fn dnslb(name: &str, args: &[&str], cwd: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
        .current_dir(cwd);
    Proc::spawn(name, cmd)
}

/// Parses every non-empty line of `text` as a JSON log line and checks it
/// carries a timestamp, a level, a target and `fields.message`; panics
/// naming the first line that does not.
fn json_lines(who: &str, text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{who}: a line that is not JSON ({e}):\n{l}"));
            let ok = v["timestamp"].as_str().is_some_and(|t| t.len() >= 20)
                && matches!(
                    v["level"].as_str(),
                    Some("ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE")
                )
                && v["target"].as_str().is_some_and(|t| t.starts_with("dnslb"))
                && v["fields"]["message"].is_string();
            assert!(
                ok,
                "{who}: a JSON line without timestamp/level/target/fields.message:\n{l}"
            );
            v
        })
        .collect()
}

/// The JSON lines `p` has written so far (complete lines only).
fn lines_now(p: &Proc) -> Vec<Value> {
    let text = p.stderr_now();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    json_lines("a running process", complete)
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

/// Waits until `p` has written a JSON line `pred` accepts (or fails).
fn wait_line(p: &mut Proc, what: &str, pred: impl Fn(&Value) -> bool) {
    let seen = poll_until(LIMIT, Duration::from_millis(20), || {
        p.assert_running();
        lines_now(p).iter().any(&pred).then_some(())
    });
    assert!(
        seen.is_some(),
        "no {what} line within {LIMIT:?}; stderr:\n{}",
        p.stderr_now()
    );
}

/// SIGTERM, then everything `p` wrote to stderr once it has exited.
fn stop(mut p: Proc) -> String {
    p.signal(Signal::TERM);
    let out = p.finish(EXIT_LIMIT);
    assert!(
        out.status.success(),
        "exit {}; stderr:\n{}",
        out.status,
        out.stderr
    );
    out.stderr
}

/// One A query for `name` to `server` from `sock`; the answer, if one came.
fn ask_from(sock: &UdpSocket, server: SocketAddr, name: &str) -> Option<Message> {
    let mut q = kit::query(name, RecordType::A, None);
    let id: u16 = rand::random();
    q.metadata.id = id;
    sock.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    sock.send_to(&q.to_vec().unwrap(), server).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == id
        {
            return Some(m);
        }
    }
}

fn ask(server: SocketAddr, name: &str) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    ask_from(&sock, server, name)
}

fn answered(m: &Message) -> bool {
    m.response_code == ResponseCode::NoError && kit::a_addrs(m) == [ADDR]
}

/// Polls `server` until it answers [`NAME`] with [`ADDR`], while `p` runs.
fn wait_answers(p: &mut Proc, server: SocketAddr) {
    let ok = poll_until(LIMIT, Duration::from_millis(20), || {
        p.assert_running();
        ask(server, NAME).filter(answered)
    });
    assert!(
        ok.is_some(),
        "{server} did not answer {NAME} within {LIMIT:?}"
    );
}

// ---------------------------------------------------------------------------
// Configs.

/// An `[ls]` on 127.0.0.1:`ls` (one worker) with `extra` keys and a backend
/// per `(name, port)`.
fn ls_toml(ls: u16, extra: &str, backends: &[(&str, u16)]) -> String {
    let mut s = format!("[ls]\nlisten = [\"127.0.0.1:{ls}\"]\nworkers = 1\n{extra}\n");
    for (name, port) in backends {
        s.push_str(&format!(
            "\n[[ls.backend]]\nname = \"{name}\"\naddr = \"127.0.0.1:{port}\"\n"
        ));
    }
    s
}

/// `--log-format json ts --listen LISTEN --zone ZONE`.
fn json_ts_args<'a>(listen: &'a str, zone: &'a str) -> [&'a str; 7] {
    [
        "--log-format",
        "json",
        "ts",
        "--listen",
        listen,
        "--zone",
        zone,
    ]
}

/// `dnslb ts --listen 127.0.0.1:PORT --zone ts1.txt` with `--log-format json`.
fn start_ts(cwd: &Path, port: u16) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let zone = ls_fixture("ts1.txt");
    let mut ts = dnslb("dnslb ts", &json_ts_args(&listen, path_str(&zone)), cwd);
    wait_line(&mut ts, "table server ready", |v| {
        message(v) == "table server ready"
    });
    ts
}

/// `dnslb ls -c config.toml --log-format json` (plus `more` arguments),
/// once it says it is ready.
fn start_ls(cwd: &Path, more: &[&str]) -> Proc {
    let mut args = vec!["--log-format", "json", "ls", "-c", "config.toml"];
    args.extend_from_slice(more);
    let mut ls = dnslb("dnslb ls", &args, cwd);
    wait_line(&mut ls, "load balancer ready", |v| {
        message(v) == "load balancer ready"
    });
    ls
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn ls_and_ts_write_only_json_lines_and_every_ts_line_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let [t, l] = free_ports(2)[..] else {
        unreachable!()
    };
    let ts = start_ts(dir.path(), t);
    std::fs::write(
        dir.path().join("config.toml"),
        ls_toml(l, "", &[("ts1", t)]),
    )
    .unwrap();
    let mut ls = start_ls(dir.path(), &[]);
    wait_answers(&mut ls, SocketAddr::from(([127, 0, 0, 1], l)));

    let ls_lines = json_lines("dnslb ls", &stop(ls));
    let ts_lines = json_lines("dnslb ts", &stop(ts));
    let ready = ls_lines
        .iter()
        .find(|v| message(v) == "load balancer ready")
        .expect("a ready line");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(
        ready["fields"]["strategy"], "hedge",
        "fields are members of `fields`"
    );
    assert!(
        ls_lines
            .iter()
            .any(|v| message(v) == "backend up" && v["fields"]["backend"] == "ts1")
    );
    assert!(
        ls_lines
            .iter()
            .any(|v| message(v) == "load balancer stopped")
    );
    // The table server: zone loaded, ready, stopping; every line names it.
    let tag = format!("127.0.0.1:{t}");
    for m in ["zone loaded", "table server ready", "stopping"] {
        assert!(ts_lines.iter().any(|v| message(v) == m), "no '{m}' line");
    }
    for v in &ts_lines {
        assert_eq!(v["fields"]["ts"], tag.as_str(), "a TS line without ts: {v}");
    }
}

#[test]
fn a_table_server_that_cannot_start_says_why_in_one_tagged_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_ports(1)[0]);
    let args = json_ts_args(&listen, "missing.txt");
    let out = dnslb("dnslb ts", &args, dir.path()).finish(EXIT_LIMIT);
    assert!(!out.status.success());
    let lines = json_lines("dnslb ts", &out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v = &lines[0];
    assert_eq!(v["level"], "ERROR");
    assert!(message(v).contains("missing.txt"), "{v}");
    // The error knows nothing of table servers: the tag adds the name.
    assert_eq!(v["fields"]["ts"], listen.as_str());
}

/// `[[ts]]` ts1 on `t1` and ts2 on `t2` (both serving `ts1.txt`) behind an
/// `[ls]` on `l`.
fn up_toml(l: u16, t1: u16, t2: u16) -> String {
    let zone = ls_fixture("ts1.txt");
    let zone = path_str(&zone);
    let mut s = ls_toml(l, "", &[("ts1", t1), ("ts2", t2)]);
    for (name, port) in [("ts1", t1), ("ts2", t2)] {
        s.push_str(&format!(
            "\n[[ts]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"{zone}\"]\n"
        ));
    }
    s
}

/// A folder holding [`up_toml`]'s `config.toml` for three free ports
/// (the LS's, ts1's, ts2's).
fn up_dir() -> (tempfile::TempDir, [u16; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let [l, t1, t2] = free_ports(3)[..] else {
        unreachable!()
    };
    std::fs::write(dir.path().join("config.toml"), up_toml(l, t1, t2)).unwrap();
    (dir, [l, t1, t2])
}

#[test]
fn up_json_debug_children_lines_are_json_and_carry_their_ts_name() {
    let (dir, [l, _, _]) = up_dir();
    let args = [
        "up",
        "-c",
        "config.toml",
        "--log-format",
        "json",
        "--log",
        "debug",
    ];
    let mut up = dnslb("dnslb up", &args, dir.path());
    wait_line(&mut up, "load balancer ready", |v| {
        message(v) == "load balancer ready"
    });
    let server = SocketAddr::from(([127, 0, 0, 1], l));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = sock.local_addr().unwrap().to_string();
    let m = ask_from(&sock, server, NAME).expect("an answer");
    assert!(answered(&m), "{m:?}");
    wait_line(&mut up, "query", |v| message(v) == "query");

    let lines = json_lines("dnslb up", &stop(up));
    // The children wrote these (forwarded unchanged by the supervisor).
    for name in ["ts1", "ts2"] {
        for m in ["zone loaded", "table server ready", "stopping"] {
            assert!(
                lines
                    .iter()
                    .any(|v| message(v) == m && v["fields"]["ts"] == name),
                "no '{m}' line from {name}"
            );
        }
    }
    // The one query: exactly one line, with who asked what and how it went.
    let queries: Vec<_> = lines.iter().filter(|v| message(v) == "query").collect();
    assert_eq!(queries.len(), 1, "{queries:?}");
    let q = &queries[0];
    assert_eq!(q["level"], "DEBUG");
    assert_eq!(q["target"], "dnslb::query");
    let f = &q["fields"];
    assert_eq!(f["client"], client.as_str());
    assert_eq!(f["name"], "www.example.com.");
    assert_eq!(f["type"], "A");
    assert_eq!(f["rcode"], "NOERROR");
    assert!(matches!(f["backend"].as_str(), Some("ts1" | "ts2")), "{f}");
    assert!(f["us"].as_u64().is_some_and(|us| us > 0), "{f}");
}

#[test]
fn up_passes_its_log_level_to_the_children() {
    let (dir, [l, t1, t2]) = up_dir();
    let args = ["up", "-c", "config.toml", "--log", "warn"];
    let mut up = dnslb("dnslb up", &args, dir.path());
    wait_answers(&mut up, SocketAddr::from(([127, 0, 0, 1], l)));
    // Both children serve: they have started (and logged nothing).
    for port in [t1, t2] {
        let m = ask(SocketAddr::from(([127, 0, 0, 1], port)), NAME);
        assert!(
            m.is_some_and(|m| answered(&m)),
            "table server on {port} does not answer"
        );
    }
    let err = stop(up);
    // At info each child would say "zone loaded" and "table server ready".
    for m in ["zone loaded", "table server ready", "load balancer ready"] {
        assert!(!err.contains(m), "an info line at --log warn:\n{err}");
    }
}

#[test]
fn a_query_logs_one_line_at_debug_and_200_log_none_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let [t, l_debug, l_info] = free_ports(3)[..] else {
        unreachable!()
    };
    let ts = start_ts(dir.path(), t);
    let debug_dir = dir.path().join("debug");
    let info_dir = dir.path().join("info");
    for (d, port) in [(&debug_dir, l_debug), (&info_dir, l_info)] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("config.toml"), ls_toml(port, "", &[("ts1", t)])).unwrap();
    }

    let mut debug = start_ls(&debug_dir, &["--log", "debug"]);
    let m = ask(SocketAddr::from(([127, 0, 0, 1], l_debug)), NAME).expect("an answer");
    assert!(answered(&m));
    wait_line(&mut debug, "query", |v| message(v) == "query");
    let lines = json_lines("dnslb ls --log debug", &stop(debug));
    let queries: Vec<_> = lines.iter().filter(|v| message(v) == "query").collect();
    assert_eq!(queries.len(), 1, "{queries:?}");
    let f = &queries[0]["fields"];
    for key in ["client", "name", "type", "backend", "rcode", "us"] {
        assert!(!f[key].is_null(), "no {key} in {f}");
    }
    assert_eq!(f["backend"], "ts1");

    let ls = start_ls(&info_dir, &[]);
    let before = lines_now(&ls).len();
    let server = SocketAddr::from(([127, 0, 0, 1], l_info));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let answers = (0..200)
        .filter(|_| ask_from(&sock, server, NAME).is_some_and(|m| answered(&m)))
        .count();
    assert!(answers >= 195, "only {answers} of 200 answered");
    let lines = json_lines("dnslb ls", &stop(ls));
    // Between ready and stopping: nothing at all.
    let during: Vec<_> = lines[before..]
        .iter()
        .take_while(|v| !message(v).starts_with("stopping"))
        .collect();
    assert!(
        during.is_empty(),
        "lines while serving 200 queries: {during:?}"
    );
    drop(ts);
}

#[test]
fn sighup_changing_metrics_logs_one_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let [t, l, m1, m2] = free_ports(4)[..] else {
        unreachable!()
    };
    let ts = start_ts(dir.path(), t);
    let config = dir.path().join("config.toml");
    let metrics = |m: u16| format!("metrics = \"127.0.0.1:{m}\"");
    std::fs::write(&config, ls_toml(l, &metrics(m1), &[("ts1", t)])).unwrap();
    let mut ls = start_ls(dir.path(), &[]);
    std::fs::write(&config, ls_toml(l, &metrics(m2), &[("ts1", t)])).unwrap();
    ls.signal(Signal::HUP);
    wait_line(&mut ls, "ls reload done", |v| {
        message(v) == "ls reload done"
    });
    let lines = json_lines("dnslb ls", &stop(ls));
    let warnings: Vec<_> = lines.iter().filter(|v| v["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0];
    assert_eq!(w["fields"]["keys"], "metrics", "{w}");
    assert!(
        message(w).contains("metrics") && message(w).contains("restart"),
        "{w}"
    );
    drop(ts);
}

/// Client `i`'s source address: 127.0.9.`i + 1`.
fn flood_source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 9, u8::try_from(i + 1).unwrap()))
}

/// The clients a rate-limit line accounts for: (started, stopped, lines).
fn rate_limit_tally(lines: &[Value]) -> (u64, u64, u64) {
    let (mut started, mut stopped, mut count) = (0, 0, 0);
    for v in lines {
        let m = message(v);
        let n = v["fields"]["clients"].as_u64();
        match m {
            "client rate limited" => started += 1,
            "client no longer rate limited" => stopped += 1,
            _ if m.ends_with("more clients rate limited") => started += n.unwrap_or(0),
            _ if m.ends_with("more clients no longer rate limited") => stopped += n.unwrap_or(0),
            _ => continue,
        }
        count += 1;
    }
    (started, stopped, count)
}

#[test]
fn a_flood_from_50_sources_logs_a_bounded_number_of_rate_limit_lines() {
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let [t, l] = free_ports(2)[..] else {
        unreachable!()
    };
    let ts = start_ts(dir.path(), t);
    let config = ls_toml(l, "rate_limit_qps = 5", &[("ts1", t)]);
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut ls = start_ls(dir.path(), &[]);
    let server = SocketAddr::from(([127, 0, 0, 1], l));
    let socks: Vec<UdpSocket> = (0..CLIENTS)
        .map(|i| UdpSocket::bind((flood_source(i), 0)).unwrap())
        .collect();
    // 2,000 queries in interleaved rounds, within well under a second: every
    // client goes over its 5 qps (burst 5) at once.
    let mut q = kit::query(NAME, RecordType::A, None);
    for round in 0..PER_CLIENT {
        for (i, s) in socks.iter().enumerate() {
            q.metadata.id = u16::try_from(round * CLIENTS + i).unwrap();
            s.send_to(&q.to_vec().unwrap(), server).unwrap();
        }
        // Keeps the LS's socket buffer from overflowing.
        std::thread::sleep(Duration::from_millis(1));
    }
    // Every client limited once, and once no longer (after RATE_QUIET),
    // whether on a line of its own or in a summary.
    let all = poll_until(Duration::from_secs(25), Duration::from_millis(50), || {
        ls.assert_running();
        let (started, stopped, _) = rate_limit_tally(&lines_now(&ls));
        (started == CLIENTS as u64 && stopped == CLIENTS as u64).then_some(())
    });
    let lines = json_lines("dnslb ls", &stop(ls));
    let (started, stopped, count) = rate_limit_tally(&lines);
    assert!(
        all.is_some(),
        "{started} clients limited and {stopped} no longer, of {CLIENTS}; lines: {lines:?}"
    );
    // Each client was indeed limited: it got at least one TC=1 slip.
    for (i, s) in socks.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let mut slipped = false;
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            slipped |= Message::from_vec(&buf[..n]).is_ok_and(|m| m.truncation);
        }
        assert!(slipped, "client {} was never limited", flood_source(i));
    }
    // A line per client would be 100; the budget allows RATE_LOG_LINES per
    // interval (the flood and its end span at most three) plus two summaries
    // each.
    let bound = 3 * (dnslb::guard::rate::RATE_LOG_LINES + 2);
    assert!(
        count <= bound,
        "{count} rate-limit lines for {CLIENTS} clients (bound {bound})"
    );
    assert!(
        lines
            .iter()
            .any(|v| message(v).ends_with("more clients rate limited")),
        "no summary line"
    );
    drop(ts);
}

/// The UDP sockets bound to 127.0.0.1:`port` (`/proc/net/udp`): one per LS
/// worker (SO_REUSEPORT).
fn udp_sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .count()
}

/// An LS pinned to one CPU (`taskset -c 0`) with no
/// `workers` runs one worker, not one per core of the machine, and its
/// start line says why; with `workers = 3` it runs three and says the
/// config set them.
#[test]
fn a_pinned_ls_runs_a_worker_per_cpu_it_may_use_and_says_why() {
    let Some(taskset) = kit::find_program("taskset") else {
        kit::skip(
            "a_pinned_ls_runs_a_worker_per_cpu_it_may_use_and_says_why",
            "no taskset",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let [t, l1, l2] = free_ports(3)[..] else {
        unreachable!()
    };
    let _ts = start_ts(dir.path(), t);
    for (port, workers, line) in [
        (l1, "", "1 worker: the CPUs this process may run on (1 of "),
        (
            l2,
            "workers = 3",
            "3 workers, as `workers` sets (this process may run on 1 CPU: 1 of ",
        ),
    ] {
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[ls]\nlisten = [\"127.0.0.1:{port}\"]\n{workers}\n\n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{t}\"\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&taskset);
        cmd.args([
            "-c",
            "0",
            BIN,
            "--log-format",
            "json",
            "ls",
            "-c",
            "config.toml",
        ])
        .env_remove("RUST_LOG")
        .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
        .current_dir(dir.path());
        let mut ls = Proc::spawn("dnslb ls (taskset -c 0)", cmd);
        wait_line(&mut ls, line, |v| {
            v["level"] == "INFO" && message(v).starts_with(line)
        });
        let want = if workers.is_empty() { 1 } else { 3 };
        assert_eq!(
            udp_sockets_on(port),
            want,
            "UDP sockets of the LS on {port}"
        );
        stop(ls);
    }
}

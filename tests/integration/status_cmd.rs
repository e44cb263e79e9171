//! `dnslb status`, `/health`, `/ready` and the process metrics of real
//! `dnslb up` and `dnslb ls` processes on 127.0.0.1: the table lists the
//! backends and the TS children (PIDs as logged, restarts after a SIGKILL),
//! an unreachable LS is one line and exit 1, `/metrics` carries the
//! process's own figures, and `/ready` turns 503 while a stopping LS drains.
//!
//! Every process is stopped by PID through its [`Proc`] guard; every wait is
//! a bounded poll of real state.
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::process::Signal;
use serde_json::Value;

use dnslb::metrics;

use crate::kit::{
    Proc, Stalled, ask_a, free_ports, http_get_from, http_try_get, kill_pid, local, ls_head_toml,
    parse_exposition, path_str, pids_of, poll_until, poll_until_async, query, run_dnslb, value,
    write_up_pair,
};

/// How long a server may take to start serving.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// How long `dnslb status` may take.
const STATUS_LIMIT: Duration = Duration::from_secs(10);

/// `/health` as JSON.
async fn health(p: &mut Proc, addr: SocketAddr) -> Value {
    let r = http_get_from(p, addr, "/health").await;
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/health: {e}: {}", r.body))
}

/// Polls `/health` until `done` accepts it.
async fn health_until(
    p: &mut Proc,
    addr: SocketAddr,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let found = poll_until_async(READY_LIMIT, POLL_PAUSE, async || {
        last = health(p, addr).await;
        done(&last).then(|| last.clone())
    })
    .await;
    found.unwrap_or_else(|| panic!("/health never showed {what}; last:\n{last:#}"))
}

/// `dnslb status ARGS`: exit status and stdout/stderr.
fn status(args: &[&str]) -> crate::kit::Output {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    run_dnslb(&all, Path::new("/"), None, STATUS_LIMIT)
}

/// The whitespace-split row of `table` whose second cell is `name`, in the
/// section after the line starting with `after` (a header).
fn row<'a>(table: &'a str, after: &str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .skip_while(|l| !l.starts_with(after))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.get(1) == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} after {after:?} in\n{table}"))
}

/// The TS child named `name` in a `/health` report.
fn child<'a>(h: &'a Value, name: &str) -> &'a Value {
    h["children"]
        .as_array()
        .unwrap_or_else(|| panic!("no children in {h}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no child {name} in {h}"))
}

/// Writes a `dnslb up` deployment into `dir`: LS on `pl` with metrics on `pm`, TS on `p1`, `p2`.
fn up_config(dir: &Path, pl: u16, pm: u16, p1: u16, p2: u16) -> PathBuf {
    let ls_head = ls_head_toml(pl, 1);
    let ls = format!(
        r#"{ls_head}strategy = "race"
order = "fixed"
metrics = "127.0.0.1:{pm}"
"#
    );
    write_up_pair(dir, &ls, p1, p2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_backends_and_children_of_up() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let (pl, pm, p1, p2) = (ports[0], ports[1], ports[2], ports[3]);
    let config = up_config(dir.path(), pl, pm, p1, p2);
    let config = path_str(&config).to_owned();
    let maddr = local(pm);
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", &config], Path::new("/"));

    let ready = http_get_from(&mut up, maddr, "/ready").await;
    assert_eq!(ready.status, 200, "/ready of a serving LS: {}", ready.body);
    for name in ["www.example.com.", "www.example.org.", "www.example.com."] {
        ask_a(local(pl), name).await;
    }
    // Both children logged their start, and /health names the same PIDs.
    let pids = poll_until(READY_LIMIT, POLL_PAUSE, || {
        let log = up.stderr_now();
        Some((
            *pids_of(&log, "ts1").first()?,
            *pids_of(&log, "ts2").first()?,
        ))
    })
    .expect("both TS children logged");
    let h = health(&mut up, maddr).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(child(&h, "ts1")["pid"], pids.0);
    assert_eq!(child(&h, "ts2")["pid"], pids.1);

    // The table: both backends up, their addresses; the children with their PIDs.
    let out = status(&["-c", &config]);
    assert!(
        out.status.success(),
        "dnslb status: {}\n{}",
        out.status,
        out.stderr
    );
    let table = out.stdout;
    assert!(
        table.starts_with(&format!("dnslb {} (", metrics::BUILD_VERSION)),
        "{table}"
    );
    assert!(
        table.contains("strategy race, order fixed, layout partitioned"),
        "{table}"
    );
    for (name, port) in [("ts1", p1), ("ts2", p2)] {
        let r = row(&table, "#  Backend", name);
        assert_eq!(r[2], local(port).to_string(), "{table}");
        assert_eq!(r[3], "up", "{table}");
        let sent: u64 = r[8].parse().unwrap();
        assert!(sent >= 3, "race asks both backends every query: {table}");
    }
    let wins: u64 = ["ts1", "ts2"]
        .iter()
        .map(|n| row(&table, "#  Backend", n)[9].parse::<u64>().unwrap())
        .sum();
    assert_eq!(wins, 3, "one winner per query: {table}");
    assert_eq!(
        row(&table, "#  Name", "ts1")[2..],
        [pids.0.to_string(), "running".into(), "0".into()]
    );
    assert_eq!(
        row(&table, "#  Name", "ts2")[2..],
        [pids.1.to_string(), "running".into(), "0".into()]
    );

    // A SIGKILLed child is restarted: a new PID, one restart, in /health and the table.
    kill_pid(pids.0, Signal::KILL).unwrap();
    let old = pids.0;
    let h = health_until(&mut up, maddr, "ts1 restarted", |h| {
        let c = child(h, "ts1");
        c["restarts"] == 1 && c["state"] == "running" && c["pid"].as_u64() != Some(u64::from(old))
    })
    .await;
    let new = child(&h, "ts1")["pid"].as_u64().unwrap();
    let out = status(&["-c", &config]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        row(&out.stdout, "#  Name", "ts1")[2..],
        [new.to_string(), "running".into(), "1".into()],
        "{}",
        out.stdout
    );
    // `up` notes the child's PID (which /health shows) before it logs it.
    let logged = poll_until(READY_LIMIT, POLL_PAUSE, || {
        let log = up.stderr_now();
        pids_of(&log, "ts1").get(1).copied()
    });
    assert_eq!(
        Some(new),
        logged.map(u64::from),
        "the new PID is the one logged"
    );

    // The real process's own metrics.
    let body = http_get_from(&mut up, maddr, "/metrics").await.body;
    let e = parse_exposition(&body);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&e, "process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 120.0,
        "process_start_time_seconds {started}, now {now}"
    );
    assert!(value(&e, "process_resident_memory_bytes", &[]) > 1e6);
    // Sockets of the LS and the pipes to its children at least.
    assert!(value(&e, "process_open_fds", &[]) >= 5.0);
    assert!(value(&e, "process_cpu_seconds_total", &[]) >= 0.0);
    assert_eq!(
        value(
            &e,
            "dnslb_build_info",
            &[
                ("version", metrics::BUILD_VERSION),
                ("commit", metrics::BUILD_COMMIT)
            ]
        ),
        1.0
    );
    up.signal(Signal::TERM);
    let status = up
        .wait_exit(Duration::from_secs(10))
        .expect("dnslb up stops");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_unreachable_ls_is_one_line_and_exit_1() {
    // A port where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nmetrics = \"{closed}\"\n\n\
             [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n"
        ),
    )
    .unwrap();
    let config = path_str(&config).to_owned();
    let closed_str = closed.to_string();
    for args in [vec!["-c", config.as_str()], vec!["--addr", &closed_str]] {
        let out = status(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "one line: {}", out.stderr);
        assert!(
            lines[0].starts_with(&format!("dnslb: error: cannot reach the LS at {closed}: ")),
            "{}",
            lines[0]
        );
    }
    // A config without ls.metrics: nothing to ask, said in one line.
    let bare = dir.path().join("bare.toml");
    std::fs::write(
        &bare,
        "[ls]\nlisten = [\"127.0.0.1:0\"]\n\n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n",
    )
    .unwrap();
    let out = status(&["-c", path_str(&bare)]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains("no ls.metrics"), "{}", lines[0]);
}

/// A stopping `dnslb ls` is no longer ready while it drains a query in
/// flight, though it still answers `/health`; then it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_a_stopping_ls_drains() {
    let stalled = Stalled::start().await;
    let ports = free_ports(2);
    let (pl, pm) = (ports[0], ports[1]);
    let maddr = local(pm);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ls.toml");
    std::fs::write(
        &config,
        format!(
            "[ls]\nlisten = [\"127.0.0.1:{pl}\"]\nworkers = 1\ntimeout_ms = 4000\n\
             on_timeout = \"servfail\"\nmetrics = \"{maddr}\"\n\n\
             [ls.health]\ninterval_ms = 60000\n\n\
             [[ls.backend]]\nname = \"stalled\"\naddr = \"{}\"\n",
            stalled.addr
        ),
    )
    .unwrap();
    let mut ls = Proc::dnslb("dnslb ls", &["ls", "-c", path_str(&config)], Path::new("/"));
    let r = http_get_from(&mut ls, maddr, "/ready").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // One client query, stuck upstream until its deadline.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let q = query("stuck.example.", hickory_proto::rr::RecordType::A, None);
    client.send_to(&q.to_vec().unwrap(), local(pl)).unwrap();
    health_until(&mut ls, maddr, "the query in flight", |h| {
        h["backends"][0]["outstanding"] == 1
    })
    .await;

    ls.signal(Signal::TERM);
    let r = poll_until_async(Duration::from_secs(3), POLL_PAUSE, async || {
        let r = http_try_get(maddr, "/ready").await?;
        (r.status != 200).then_some(r)
    })
    .await
    .expect("/ready leaves 200 while draining");
    assert_eq!(r.status, 503, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["state"], "stopping");
    // Still draining: the process runs, /health answers and says so too.
    ls.assert_running();
    let h = health(&mut ls, maddr).await;
    assert_eq!(h["ready"], "stopping");

    // The query gets its answer (SERVFAIL at the deadline), then the LS exits 0.
    client
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = client
        .recv(&mut buf)
        .expect("the drained query is answered");
    let answer = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, q.metadata.id);
    assert_eq!(
        answer.response_code,
        hickory_proto::op::ResponseCode::ServFail
    );
    let status = ls
        .wait_exit(Duration::from_secs(5))
        .expect("dnslb ls stops");
    assert!(status.success(), "{status}");
}

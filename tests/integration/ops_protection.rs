//! Operations and protection under faults: the metrics server under a
//! slowloris, integer keys bounded at load, a reload that can never end the
//! LS, a SIGHUP during `dnslb up`'s start-up wait, the ACL and rate limit
//! before anything is answered, and `dnslb up` run as an operator reads the
//! docs: a TS-only config, a warning for a changed `[[ts]]`, no wait for
//! backends it does not run, a restart metric.
//!
//! Processes are stopped by PID ([`Proc`]); ports come from [`free_ports`];
//! readiness is polled with real queries or log lines in bounded loops.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::kit::{self, ZoneDir};
use crate::kit::{
    POLL_WAIT, READY_LIMIT, TS1_NAMES, answers_with, ls_fixture, path_str, started_children,
    udp_ask, wait_answers, wait_log,
};
use crate::kit::{Proc, free_ports, kill_pid, local, poll_until_async, run_dnslb};

// ---------------------------------------------------------------------------
// 12: slowloris against the metrics server.

/// One HTTP GET on a fresh connection: `Some(status line)` when an answer
/// came within `limit`, `None` when the connection was refused, closed
/// without an answer, or nothing came in time.
async fn probe(addr: SocketAddr, path: &str, limit: Duration) -> Option<String> {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let line = text.lines().next()?.to_owned();
        line.starts_with("HTTP/1.1 ").then_some(line)
    };
    tokio::time::timeout(limit, ask).await.ok().flatten()
}

/// One slowloris connection, over and over until `stop`: opens, sends a
/// request line, then a header line every `every`, never the blank line;
/// when the server closes it, opens another after a short pause. Counts
/// in `opened` each connection that took its request line.
async fn slowloris(
    addr: SocketAddr,
    every: Duration,
    stop: CancellationToken,
    opened: Arc<AtomicUsize>,
) {
    while !stop.is_cancelled() {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let mut ok = s.write_all(b"GET /health HTTP/1.1\r\n").await.is_ok();
            if ok {
                opened.fetch_add(1, Relaxed);
            }
            let mut n = 0u32;
            while ok {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                n += 1;
                ok = s
                    .write_all(format!("X-Slow-{n}: a\r\n").as_bytes())
                    .await
                    .is_ok();
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// 80 slowloris connections (more than the server's 64 slots) against
/// `addr`, each sending a header line every second and reconnecting when
/// cut, for 12 s, while each of `paths` is probed every 300 ms: returns the
/// probes not answered within 2 s, and how many were asked.
async fn probes_under_slowloris(addr: SocketAddr, paths: &[&str]) -> (Vec<String>, usize) {
    assert!(
        probe(addr, paths[0], Duration::from_secs(5))
            .await
            .is_some()
    );
    let stop = CancellationToken::new();
    let opened = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..80)
        .map(|_| {
            let every = Duration::from_secs(1);
            tokio::spawn(slowloris(addr, every, stop.clone(), opened.clone()))
        })
        .collect();
    // The attack fills every slot first: all 80 have sent a request line.
    let full = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || (opened.load(Relaxed) >= 80).then_some(()),
    )
    .await;
    assert!(
        full.is_some(),
        "{} slowloris connections",
        opened.load(Relaxed)
    );
    let start = Instant::now();
    let mut failed = Vec::new();
    let mut asked = 0;
    while start.elapsed() < Duration::from_secs(12) {
        for path in paths {
            asked += 1;
            let t = Instant::now();
            if probe(addr, path, Duration::from_secs(2)).await.is_none() {
                failed.push(format!(
                    "{path} at {:?} ({:?})",
                    start.elapsed(),
                    t.elapsed()
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.cancel();
    for a in attackers {
        a.await.unwrap();
    }
    (failed, asked)
}

/// The LS's `/health`, `/ready` and `/metrics` are each answered within 2 s
/// throughout a slowloris ([`probes_under_slowloris`]). Before the fix
/// every probe failed (120 of 120): the 64 slots were held, each header
/// line resetting the idle timer, and a new connection was closed at accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_probes_are_answered_under_a_slowloris() {
    let cfg = kit::ls_config(&[("b", "127.0.0.1:9".parse().unwrap())]);
    let server = kit::TestMetrics::start_for(&cfg).await;
    let addr = server.addr;
    let (failed, asked) = probes_under_slowloris(addr, &["/health", "/ready", "/metrics"]).await;
    server.stop().await;
    assert!(
        failed.is_empty(),
        "{} of {asked} probes unanswered under the slowloris: {failed:?}",
        failed.len()
    );
}

/// The same for a table server's own `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_metrics_are_answered_under_a_slowloris() {
    let ts = kit::start_ts(kit::ts_settings(vec![ls_fixture("ts1.txt")])).await;
    let metrics = kit::TestMetrics::start_ts(ts.ts.clone()).await;
    let (failed, asked) = probes_under_slowloris(metrics.addr, &["/metrics"]).await;
    metrics.stop().await;
    ts.stop().await;
    assert!(
        failed.is_empty(),
        "{} of {asked} probes unanswered under the slowloris: {failed:?}",
        failed.len()
    );
}

// ---------------------------------------------------------------------------
// 14, 19: every integer key bounded at load.

/// An `[ls]` alone, with `extra` lines at its top (line 3 on).
fn ls_only(port: u16, backend: SocketAddr, extra: &str) -> String {
    format!(
        "[ls]\nlisten = [\"127.0.0.1:{port}\"]\n{extra}\nworkers = 1\ntimeout_ms = 500\n\n\
         [ls.health]\ninterval_ms = 60000\n\n[[ls.backend]]\nname = \"ts1\"\naddr = \"{backend}\"\n"
    )
}

/// Values past what the LS can hold are refused by `dnslb check` with their
/// file and line (before the fix `check` said ok to each, and `max_inflight`
/// above 2^61 - 1 then panicked the TCP server task while UDP went on).
#[test]
fn check_refuses_sizes_the_ls_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    for (line, want) in [
        (
            "max_inflight = 2305843009213693952",
            "config.toml:3: ls.max_inflight: must be at most 16777216, got 2305843009213693952",
        ),
        (
            "sticky_size = 4611686018427387904",
            "config.toml:3: ls.sticky_size: must be at most 16777216, got 4611686018427387904",
        ),
        (
            "hedge_delay_ms = 18446744073709551615",
            "config.toml:3: ls.hedge_delay_ms: must be at most 3600000, got 18446744073709551615",
        ),
    ] {
        std::fs::write(&config, ls_only(5300, local(5301), line)).unwrap();
        let out = run_dnslb(
            &["check", "-c", "config.toml"],
            dir.path(),
            None,
            Duration::from_secs(30),
        );
        assert!(
            !out.status.success(),
            "{line}: check said ok: {}",
            out.stderr
        );
        assert_eq!(out.stderr_lines(), [want], "{line}");
    }
}

/// A running `dnslb ls` (order `sticky`) reloaded with `sticky_size = 2^62`:
/// the reload is refused with the line, the process lives and answers with
/// the old config. (Before the fix, the SIGHUP panicked "capacity overflow"
/// and the process exited.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_absurd_sticky_size_keeps_the_ls_serving() {
    let ts = kit::start_ts(kit::ts_settings(vec![ls_fixture("ts1.txt")])).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let port = free_ports(1)[0];
    std::fs::write(&config, ls_only(port, ts.addr, "order = \"sticky\"")).unwrap();
    let mut ls = Proc::dnslb("dnslb ls", &["ls", "-c", path_str(&config)], dir.path());
    let (name, ip) = TS1_NAMES[0];
    wait_answers(local(port), name, ip, &mut [&mut ls]).await;

    std::fs::write(
        &config,
        ls_only(
            port,
            ts.addr,
            "order = \"sticky\"\nsticky_size = 4611686018427387904",
        ),
    )
    .unwrap();
    ls.signal(Signal::HUP);
    wait_log(&mut ls, READY_LIMIT, "a refused reload", |log| {
        log.lines()
            .find(|l| l.contains("reload refused") && l.contains("ls.sticky_size"))
            .map(str::to_owned)
    });
    let m = udp_ask(local(port), name, Duration::from_secs(2))
        .await
        .expect("an answer after the refused reload");
    assert!(answers_with(&m, ip), "{m:?}");
    ls.assert_running();
    drop(ls);
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 18: the ACL and the rate limit come before any answer.

/// A query whose first label claims 70 bytes (over 63): FORMERR material.
fn malformed(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.push(70);
    q.extend_from_slice(&[b'a'; 70]);
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A well-formed `example. A` with opcode `opcode`.
fn with_opcode(id: u16, opcode: u8) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[opcode << 3, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
    q
}

/// Sends every packet of `packets` from one socket as fast as it can, then
/// counts the answers that come back within a second of the last.
async fn answers_to(ls: SocketAddr, packets: &[Vec<u8>]) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(ls).await.unwrap();
    for p in packets {
        sock.send(p).await.unwrap();
    }
    let mut n = 0;
    let mut buf = [0u8; 1500];
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
        n += 1;
    }
    n
}

/// With `rate_limit_qps = 5`: 60 malformed queries and 60 NOTIFYs from a
/// client outside `allow` get at most a second's worth of answers, and so do
/// those of an allowed client (over-rate malformed queries are dropped, not
/// answered FORMERR). Before the fix each got 60 answers (REFUSED/FORMERR).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_odd_opcode_queries_are_rate_limited_and_acl_checked() {
    let ts = kit::start_ts(kit::ts_settings(vec![ls_fixture("ts1.txt")])).await;
    // 127.0.0.1 (the test) outside `allow`.
    let mut cfg = kit::ls_config(&[("ts1", ts.addr)]);
    cfg.allow = vec!["10.0.0.0/8".parse().unwrap()];
    cfg.rate_limit_qps = 5;
    let outside = kit::start_ls(cfg.clone()).await;
    // The test allowed.
    cfg.allow = vec!["127.0.0.0/8".parse().unwrap()];
    let inside = kit::start_ls(cfg).await;
    // Burst 5, plus at most one refill while sending; every second excess
    // query of an allowed client may be a TC=1 slip, but only for a query
    // that decodes (the NOTIFYs).
    let bound = 6;
    for (what, packets) in [
        ("malformed", (0..60).map(malformed).collect::<Vec<_>>()),
        ("NOTIFY", (0..60).map(|i| with_opcode(i, 4)).collect()),
    ] {
        let n = answers_to(outside.addr, &packets).await;
        assert!(n <= bound, "outside allow, {what}: {n} answers to 60");
        assert!(n >= 1, "outside allow, {what}: not even one REFUSED");
    }
    let n = answers_to(inside.addr, &(100..160).map(malformed).collect::<Vec<_>>()).await;
    assert!(
        n <= bound,
        "allowed, malformed over the rate: {n} answers to 60"
    );
    assert!(n >= 1, "allowed, malformed: not even one FORMERR");
    // NOTIFYs over the rate: dropped or slipped (TC=1), at most half of them.
    let n = answers_to(
        inside.addr,
        &(200..260).map(|i| with_opcode(i, 4)).collect::<Vec<_>>(),
    )
    .await;
    assert!(
        n <= bound + 30,
        "allowed, NOTIFY over the rate: {n} answers to 60"
    );
    outside.stop().await;
    inside.stop().await;
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 15, 26: `dnslb up`.

/// A `[[ts]]` named `name` on `port` serving `zone`, with `extra` lines.
fn ts_section(name: &str, port: u16, zone: &Path, extra: &str) -> String {
    format!(
        "\n[[ts]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"{}\"]\nworkers = 1\n{extra}\n",
        path_str(zone)
    )
}

/// A SIGHUP while `up` waits for its table servers at start (ts1 drops every
/// query, so the wait runs its full 10 s) reaches the LS: `on_timeout`
/// changed from `nxdomain` to `servfail` is what clients get once it
/// serves, and the reload is logged. Before the fix only the children were
/// signalled and the LS kept the old `on_timeout` (NXDOMAIN), with no line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_the_startup_wait_reaches_the_ls() {
    let dir = ZoneDir::new();
    let zone = dir.copy("ts1.txt", &ls_fixture("ts1.txt"));
    let p = free_ports(2);
    let config = dir.path().join("config.toml");
    let write = |on_timeout: &str| {
        let ls = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\nworkers = 1\ntimeout_ms = 300\non_timeout = \"{on_timeout}\"\n\
             \n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{}\"\n",
            p[0], p[1]
        );
        let ts = ts_section("ts1", p[1], &zone, "fault = { drop_ratio = 1.0 }");
        std::fs::write(&config, ls + &ts).unwrap();
    };
    write("nxdomain");
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], dir.path());
    wait_log(&mut up, READY_LIMIT, "the child's start", |log| {
        log.contains("table server ready").then_some(())
    });
    assert!(
        !up.stderr_now().contains("load balancer ready"),
        "the LS serves already: no start-up wait to test"
    );
    write("servfail");
    up.signal(Signal::HUP);
    wait_log(&mut up, Duration::from_secs(20), "the LS serving", |log| {
        log.contains("load balancer ready").then_some(())
    });
    let log = up.stderr_now();
    assert!(
        log.contains("ls reload done"),
        "no LS reload logged:\n{log}"
    );
    let m = udp_ask(local(p[0]), TS1_NAMES[0].0, Duration::from_secs(3))
        .await
        .expect("a made-up answer");
    assert_eq!(m.response_code, ResponseCode::ServFail, "{m:?}");
}

/// A folder with ts1's table, a free port for it, and where its config goes.
fn one_ts() -> (ZoneDir, std::path::PathBuf, u16, std::path::PathBuf) {
    let dir = ZoneDir::new();
    let zone = dir.copy("ts1.txt", &ls_fixture("ts1.txt"));
    let config = dir.path().join("config.toml");
    (dir, zone, free_ports(1)[0], config)
}

/// `dnslb up` on a config with no `[ls]` (as config.toml's comment invites)
/// runs the table servers; a SIGHUP that changes a `[[ts]]` warns that only
/// a restart applies it, naming the server and the key. Before the fix `up`
/// refused to start ("no [ls] section") although `check` said ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_table_servers_only_and_warns_of_ts_changes_on_reload() {
    let (dir, zone, port, config) = one_ts();
    std::fs::write(&config, ts_section("ts1", port, &zone, "ttl = 300")).unwrap();
    let check = run_dnslb(
        &["check", "-c", "config.toml"],
        dir.path(),
        None,
        Duration::from_secs(30),
    );
    assert!(check.status.success(), "{}", check.stderr);
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], dir.path());
    let (name, ip) = TS1_NAMES[0];
    wait_answers(local(port), name, ip, &mut [&mut up]).await;

    std::fs::write(&config, ts_section("ts1", port, &zone, "ttl = 60")).unwrap();
    up.signal(Signal::HUP);
    let line = wait_log(&mut up, READY_LIMIT, "a [[ts]] change warning", |log| {
        log.lines()
            .find(|l| l.contains("WARN") && l.contains("[[ts]] changed"))
            .map(str::to_owned)
    });
    assert!(line.contains("ts1 (ttl)"), "{line}");
    assert!(line.contains("restart"), "{line}");
    // Still serving.
    wait_answers(local(port), name, ip, &mut [&mut up]).await;
}

/// A `[[key]]` whose secret is inline: a SIGHUP after the secret changed in
/// the config warns that only a restart applies it, naming the server and
/// the key (the child read it at start; only a `secret_file`'s content is
/// reread), and the table server serves on. Before the fix nothing was said
/// and the old secret stayed in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_names_a_changed_inline_key_secret_as_restart_only() {
    let (dir, zone, port, config) = one_ts();
    let write = |secret: &str| {
        let extra = "axfr_allow = [\"127.0.0.0/8\"]\nxfr_key = \"xfr\"";
        let key = format!("\n[[key]]\nname = \"xfr\"\nsecret = \"{secret}\"\n");
        std::fs::write(&config, ts_section("ts1", port, &zone, extra) + &key).unwrap();
    };
    write("kQn0sD3l9Ui1u6m2sXJ1mR0bJx6g7h8Zq2yq1cV4aUk=");
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], dir.path());
    let (name, ip) = TS1_NAMES[0];
    wait_answers(local(port), name, ip, &mut [&mut up]).await;

    write("3q2+7wAAAAARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4g=");
    up.signal(Signal::HUP);
    let line = wait_log(&mut up, READY_LIMIT, "a [[key]] change warning", |log| {
        log.lines()
            .find(|l| l.contains("WARN") && l.contains("[[ts]] changed"))
            .map(str::to_owned)
    });
    assert!(line.contains(r#"ts1 ([[key]] "xfr": secret)"#), "{line}");
    assert!(line.contains("restart"), "{line}");
    wait_answers(local(port), name, ip, &mut [&mut up]).await;
}

/// `up` with one backend it runs (ts1) and one it does not (nothing listens
/// there): it serves once ts1 answers and the other had one probe timeout,
/// not after the 10 s start-up wait; then ts1 SIGKILLed shows as
/// `dnslb_ts_restarts_total{ts="ts1"} 1` on /metrics once restarted.
/// Before the fix the LS served only after 10 s, and there was no metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_waits_only_for_its_own_children_and_counts_their_restarts() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let zone = dir.copy("ts1.txt", &ls_fixture("ts1.txt"));
    let p = free_ports(4);
    let (ls, ts1, other, metrics) = (p[0], p[1], p[2], p[3]);
    let config = dir.path().join("config.toml");
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{ls}\"]\nworkers = 1\norder = \"fixed\"\nmetrics = \"127.0.0.1:{metrics}\"\n\
         \n[ls.health]\ntimeout_ms = 500\n\
         \n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{ts1}\"\n\
         \n[[ls.backend]]\nname = \"elsewhere\"\naddr = \"127.0.0.1:{other}\"\n"
    ) + &ts_section("ts1", ts1, &zone, "");
    std::fs::write(&config, text).unwrap();
    let started = Instant::now();
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], dir.path());
    wait_log(&mut up, Duration::from_secs(20), "the LS serving", |log| {
        log.contains("load balancer ready").then_some(())
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the LS served after {took:?}: it waited for a backend it does not run"
    );
    let log = up.stderr_now();
    assert!(
        log.contains("did not answer the first probe") && log.contains("elsewhere"),
        "the backend not answering is not named:\n{log}"
    );
    let (name, ip) = TS1_NAMES[0];
    wait_answers(local(ls), name, ip, &mut [&mut up]).await;

    let metrics = local(metrics);
    let restarts = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("dnslb_ts_restarts_total{ts=\"ts1\"}"))
            .map(str::to_owned)
    };
    let first = probe_body(metrics, "/metrics").await;
    assert_eq!(
        restarts(&first).as_deref(),
        Some("dnslb_ts_restarts_total{ts=\"ts1\"} 0")
    );
    // Logged by `up` after the spawn, in no set order with the child's
    // first answer.
    let pid = wait_log(&mut up, READY_LIMIT, "ts1's pid", |log| {
        started_children(log)
            .into_iter()
            .find(|(n, _)| n == "ts1")
            .map(|(_, pid)| pid)
    });
    kill_pid(pid, Signal::KILL).unwrap();
    let counted = poll_until_async(READY_LIMIT, POLL_WAIT, async || {
        let text = probe_body(metrics, "/metrics").await;
        (restarts(&text).as_deref() == Some("dnslb_ts_restarts_total{ts=\"ts1\"} 1")).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "{}",
        probe_body(metrics, "/metrics").await
    );
    up.assert_running();
}

/// The body of GET `path`, empty when unanswered.
async fn probe_body(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

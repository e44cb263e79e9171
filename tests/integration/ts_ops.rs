//! The TS's operations under faults, each over real `dnslb`
//! processes: a table rewritten in place during reloads (never served
//! half-written), the synthesized serial across restarts (never lower),
//! NOTIFY sent from the listen address and judged by its rcode (against a
//! real NSD secondary), and the `fault` delay sparing the LS's health
//! probes.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::Nsd;
use crate::kit::{
    self, Proc, ZoneDir, a_addrs, ask, dnslb_command, free_port, local, soa_serial, wait_soa,
};
use crate::kit::{
    PEER_READY_LIMIT as READY_LIMIT, TsState, start_ls_proc, start_ts_named, wait_stderr,
};

/// One query's wait for its answer.
const WAIT: Duration = Duration::from_millis(500);

/// `dnslb ts -c DIR/config.toml --name t` with `config` written there, run
/// from `dir`, no `STATE_DIRECTORY` (the serials go beside the zones);
/// waits until it answers `zone SOA` authoritatively at `addr`.
async fn start_ts(dir: &Path, config: &str, addr: SocketAddr, zone: &str) -> Proc {
    let path = dir.join("config.toml");
    // A 200,000-line table takes seconds to load in a debug build on a busy host.
    let limit = Duration::from_secs(60);
    let state = TsState::BesideZones;
    start_ts_named(
        &path,
        Some(config),
        "t",
        dir,
        state,
        (addr, zone),
        limit,
        |m| m.metadata.authoritative,
    )
    .await
}

/// The serial `addr` serves for `zone`, asked until it answers.
async fn serial_at(addr: SocketAddr, zone: &str, ts: &mut Proc) -> u32 {
    let m = wait_soa(addr, zone, READY_LIMIT, &mut [ts], |m| {
        soa_serial(m).is_some()
    })
    .await;
    soa_serial(&m).unwrap()
}

// ---------------------------------------------------------------------------
// A table rewritten in place during reloads
// ---------------------------------------------------------------------------

/// Lines of the big table.
const BIG: usize = 200_000;

/// The whole table, version `v` (1 or 2): `nN.big.test` has address
/// 10.V.(N/256%256).(N%256) for every N, so a line cut short gives a name
/// missing or an address of neither version.
fn big_table(v: u8) -> Vec<u8> {
    let mut out = String::with_capacity(BIG * 32);
    out.push_str("ns1.big.test - NS\nns1.big.test 192.0.2.53 A\n");
    for n in 0..BIG {
        out.push_str(&format!(
            "n{n}.big.test 10.{v}.{}.{} A\n",
            (n / 256) % 256,
            n % 256
        ));
    }
    out.into_bytes()
}

fn big_addr(v: u8, n: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, v, ((n / 256) % 256) as u8, (n % 256) as u8)
}

/// Rewrites `path` in place (truncate, then write in pieces with pauses),
/// as an editor or `cat > file` would: readers can see it half-written.
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    for piece in bytes.chunks(bytes.len() / 16 + 1) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// A `[[ts]]` named `t` on `addr` serving the PROJ table `file` for
/// `origin` with one worker, then `extra`.
fn ts_conf(addr: SocketAddr, file: &str, origin: &str, extra: &str) -> String {
    format!(
        "[[ts]]\nname = \"t\"\nlisten = \"{addr}\"\nzones = [\"{file}\"]\n\
         origin = \"{origin}\"\nworkers = 1\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_rewritten_in_place_during_reloads_is_never_served_half_written() {
    let _load = crate::kit::heavy().await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("big.txt");
    let versions = [big_table(1), big_table(2)];
    std::fs::write(&table, &versions[0]).unwrap();
    let addr = local(free_port());
    let config = ts_conf(addr, "big.txt", "big.test.", "");
    let mut ts = start_ts(dir.path(), &config, addr, "big.test.").await;
    let pid = ts.pid();

    // SIGHUPs arrive all the while (a reload of this table takes seconds
    // in a debug build), so a reload is reading the file whenever a rewrite
    // starts; the table is rewritten in place, alternating the versions,
    // each rewrite once the one before it is served.
    let stop = Arc::new(AtomicBool::new(false));
    let hups = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                crate::kit::kill_pid(pid, Signal::HUP).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(70));
            }
            n
        })
    };
    // The last name, a middle one and an early one, over and over: every
    // answer must be one whole version's.
    let probes = [BIG - 1, BIG / 2, 7];
    let t = Instant::now();
    let mut bad = Vec::new();
    let mut answers = 0;
    let mut seen = [0usize; 2];
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        let v = (round + 1) % 2; // version 2, 1, 2, 1
        let writer = {
            let (table, bytes) = (table.clone(), versions[v].clone());
            std::thread::spawn(move || rewrite_in_place(&table, &bytes))
        };
        let limit = Instant::now() + Duration::from_secs(60);
        let mut served = false;
        while !(served && writer.is_finished()) {
            assert!(
                Instant::now() < limit,
                "version {} not served within 60 s",
                v + 1
            );
            for &n in &probes {
                let name = format!("n{n}.big.test.");
                let Some(m) = ask(addr, &name, RecordType::A, false, WAIT).await else {
                    continue;
                };
                answers += 1;
                let got = a_addrs(&m);
                if got == [big_addr(1, n)] {
                    seen[0] += 1;
                } else if got == [big_addr(2, n)] {
                    seen[1] += 1;
                } else {
                    bad.push(format!(
                        "{name}: {:?} {got:?} at {:?}",
                        m.metadata.response_code,
                        t.elapsed()
                    ));
                }
                served |= n == BIG - 1 && got == [big_addr(v as u8 + 1, n)];
            }
            ts.assert_running();
        }
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = hups.join().unwrap();
    let log = ts.stderr_now();
    let unsettled = log.matches("changed while being read").count();
    eprintln!(
        "{ROUNDS} rewrites, {sent} SIGHUPs, {answers} answers (v1 {}, v2 {}), {} not of a whole version, {unsettled} reads not used, {} reloads done, in {:?}",
        seen[0],
        seen[1],
        bad.len(),
        log.matches("reload done").count(),
        t.elapsed()
    );
    assert!(
        bad.is_empty(),
        "{} answers of neither whole version, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        unsettled > 0,
        "the race was never hit (no read saw the file change): the test proves nothing"
    );
}

// ---------------------------------------------------------------------------
// The synthesized serial across restarts
// ---------------------------------------------------------------------------

fn small_table(extra: &str) -> String {
    format!("ns1.ser.test - NS\nns1.ser.test 192.0.2.53 A\nwww.ser.test 192.0.2.1 A\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synthesized_serial_never_goes_back_across_restarts() {
    let dir = ZoneDir::new();
    let table = dir.write("ser.txt", &small_table(""));
    let addr = local(free_port());
    let config = ts_conf(addr, "ser.txt", "ser.test.", "");
    let mut ts = start_ts(dir.path(), &config, addr, "ser.test.").await;
    let s0 = serial_at(addr, "ser.test.", &mut ts).await;
    // Ten changing reloads, as fast as they apply: the serial runs ahead of the clock.
    for i in 1..=10 {
        std::fs::write(
            &table,
            small_table(&format!("r{i}.ser.test 192.0.2.{i} A\n")),
        )
        .unwrap();
        ts.signal(Signal::HUP);
        wait_stderr(&mut ts, "reload done", i, Duration::from_secs(10)).await;
    }
    let s10 = serial_at(addr, "ser.test.", &mut ts).await;
    assert!(
        s10.wrapping_sub(s0) >= 10 && s10.wrapping_sub(s0) < 1 << 31,
        "each change raised it: {s0} -> {s10}"
    );
    drop(ts);

    // The same files: the same serial.
    let mut ts = start_ts(dir.path(), &config, addr, "ser.test.").await;
    let same = serial_at(addr, "ser.test.", &mut ts).await;
    assert_eq!(
        same, s10,
        "a restart with unchanged data must keep the serial ({s10})"
    );
    drop(ts);

    // Changed files: a newer serial (RFC 1982), however far ahead it ran.
    std::fs::write(&table, small_table("late.ser.test 192.0.2.99 A\n")).unwrap();
    let mut ts = start_ts(dir.path(), &config, addr, "ser.test.").await;
    let newer = serial_at(addr, "ser.test.", &mut ts).await;
    assert!(
        newer != s10 && newer.wrapping_sub(s10) < 1 << 31,
        "a restart with changed data must raise the serial: {s10} -> {newer}"
    );
}

// ---------------------------------------------------------------------------
// Items 25 and 17: NOTIFY from the listen address, judged by its rcode
// ---------------------------------------------------------------------------

/// A TS for `ntf.test.` listening on 127.0.0.2 (not the routing source of
/// 127.0.0.1) and notifying `secondary`.
async fn notifying_ts(dir: &Path, secondary: SocketAddr) -> (Proc, SocketAddr) {
    std::fs::write(dir.join("ntf.txt"), ntf_table("")).unwrap();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), free_port());
    let notify = format!("axfr_allow = [\"127.0.0.0/8\"]\nnotify = [\"{secondary}\"]\n");
    let config = ts_conf(addr, "ntf.txt", "ntf.test.", &notify);
    (start_ts(dir, &config, addr, "ntf.test.").await, addr)
}

/// [`notifying_ts`] and an NSD secondary of `ntf.test.` taking NOTIFY only
/// from `allow` (`None`: the TS's own address): the TS's folder, the TS,
/// its address, and NSD once it serves the zone.
async fn ntf_pair(allow: Option<&str>) -> (tempfile::TempDir, Proc, SocketAddr, Nsd) {
    let dir = tempfile::tempdir().unwrap();
    let nsd_port = free_port();
    let (ts, addr) = notifying_ts(dir.path(), local(nsd_port)).await;
    let allow = allow.map_or_else(|| addr.ip().to_string(), str::to_owned);
    let mut nsd = Nsd::secondary_notified_by(nsd_port, "ntf.test.", addr, &allow);
    nsd.wait_ready("ntf.test.").await;
    (dir, ts, addr, nsd)
}

/// Adds `new.ntf.test. A 192.0.2.77` to the table in `dir` and SIGHUPs `ts`.
fn add_new_name(dir: &Path, ts: &mut Proc) {
    std::fs::write(
        dir.join("ntf.txt"),
        ntf_table("new.ntf.test 192.0.2.77 A\n"),
    )
    .unwrap();
    ts.signal(Signal::HUP);
}

fn ntf_table(extra: &str) -> String {
    format!("ns1.ntf.test - NS\nns1.ntf.test 192.0.2.53 A\nwww.ntf.test 192.0.2.1 A\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_allowing_the_listen_address_acts_on_the_notify() {
    let Some(_) = kit::need("nsd_notify", ["nsd"]) else {
        return;
    };
    let (dir, mut ts, addr, nsd) = ntf_pair(None).await;
    let s1 = serial_at(addr, "ntf.test.", &mut ts).await;
    wait_soa(nsd.addr, "ntf.test.", READY_LIMIT, &mut [&mut ts], |m| {
        soa_serial(m) == Some(s1)
    })
    .await;

    add_new_name(dir.path(), &mut ts);
    // NSD refreshes only after an accepted NOTIFY (its refresh timer is an hour).
    let m = kit::poll_answer(
        nsd.addr,
        ("new.ntf.test.", RecordType::A, false),
        Duration::from_secs(10),
        &mut [&mut ts],
        |m| a_addrs(m) == [Ipv4Addr::new(192, 0, 2, 77)],
    )
    .await;
    assert!(
        m.is_ok(),
        "NSD did not follow the NOTIFY (allow-notify: {}); TS log:\n{}\n{}",
        addr.ip(),
        ts.stderr_now(),
        nsd.logs()
    );
    wait_stderr(&mut ts, "notify acknowledged", 1, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_nsd_refuses_is_logged_as_rejected_with_its_rcode() {
    let Some(_) = kit::need("nsd_notify_refused", ["nsd"]) else {
        return;
    };
    // NSD takes NOTIFY only from an address the TS does not send from.
    let (dir, mut ts, _, _nsd) = ntf_pair(Some("127.0.0.9")).await;
    add_new_name(dir.path(), &mut ts);
    wait_stderr(&mut ts, "notify rejected", 1, Duration::from_secs(10)).await;
    let log = ts.stderr_now();
    let line = log.lines().find(|l| l.contains("notify rejected")).unwrap();
    assert!(line.contains("WARN"), "a warning: {line}");
    assert!(line.contains("REFUSED"), "names the rcode: {line}");
    assert!(
        !log.contains("notify acknowledged"),
        "a REFUSED reply is no acknowledgement:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// The fault delay spares health probes
// ---------------------------------------------------------------------------

/// `www.flt.test. A` asked of `addr` (an answer within 3 s, or panics
/// saying `what`): the answer and how long it took.
async fn timed_www(addr: SocketAddr, what: &str) -> (Message, Duration) {
    let t = Instant::now();
    let m = ask(
        addr,
        "www.flt.test.",
        RecordType::A,
        false,
        Duration::from_secs(3),
    )
    .await;
    let m = m.unwrap_or_else(|| panic!("no {what} within 3 s"));
    (m, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_delay_spares_health_probes_and_still_delays_clients() {
    let _load = crate::kit::timed().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "www.flt.test 192.0.2.1 A\n").unwrap();
    let ts_addr = local(free_port());
    // Every answer delayed by 800 ms: more than a probe's 500 ms timeout.
    let fault = "[ts.fault]\ndelay_ms = 800\ndelay_ratio = 1.0\n";
    let config = ts_conf(ts_addr, "f.txt", "flt.test.", fault);
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &config).unwrap();
    let mut ts = Proc::spawn(
        "dnslb ts",
        dnslb_command(
            &["ts", "-c", kit::path_str(&path), "--name", "t"],
            dir.path(),
        ),
    );
    wait_stderr(&mut ts, "table server ready", 1, READY_LIMIT).await;

    // A client's query is delayed; the probe's question is not.
    let (m, client_wait) = timed_www(ts_addr, "a delayed answer").await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(client_wait >= Duration::from_millis(790), "{client_wait:?}");
    let t = Instant::now();
    let m = ask(ts_addr, ".", RecordType::SOA, false, Duration::from_secs(3))
        .await
        .expect("an answer to the probe question");
    let probe_wait = t.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(probe_wait < Duration::from_millis(400), "{probe_wait:?}");

    // An LS with default health checks sees the backend up and serves it.
    let ls_port = free_port();
    let ls_conf = format!(
        "[ls]\nlisten = [\"127.0.0.1:{ls_port}\"]\nworkers = 1\ntimeout_ms = 2000\n\
         [[ls.backend]]\nname = \"t\"\naddr = \"{ts_addr}\"\n"
    );
    let mut ls = start_ls_proc("ls", dir.path(), &ls_conf, &[]);
    wait_stderr(&mut ls, "backend up", 1, Duration::from_secs(10)).await;
    // Through the LS, the client still waits the TS's delay.
    let (m, ls_wait) = timed_www(local(ls_port), "an answer through the LS").await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(192, 0, 2, 1)], "{m:?}");
    assert!(ls_wait >= Duration::from_millis(790), "{ls_wait:?}");
    ls.assert_running();
    ts.assert_running();
}

// ---------------------------------------------------------------------------
// A wildcard `listen` answers UDP from the address asked
// ---------------------------------------------------------------------------

/// Loopback addresses other than 127.0.0.1 (the routing source).
const ASKED: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 6)];

/// `www.any.test A` to `ip:port` from a socket connected there, so that only
/// an answer from that very address is taken (as dig does).
async fn asked_at(ip: IpAddr, port: u16) -> Option<Message> {
    ask(
        SocketAddr::new(ip, port),
        "www.any.test.",
        RecordType::A,
        false,
        Duration::from_secs(2),
    )
    .await
}

/// `dnslb ts --listen LISTEN --zone ZONE --workers 1 EXTRA...` from `cwd`,
/// once it logs that it is ready.
async fn one_worker_ts(name: &str, listen: &str, zone: &Path, extra: &[&str], cwd: &Path) -> Proc {
    let mut args = vec!["ts", "--listen", listen, "--zone", kit::path_str(zone)];
    args.extend(["--workers", "1"]);
    args.extend(extra);
    let mut ts = Proc::spawn(name, dnslb_command(&args, cwd));
    wait_stderr(&mut ts, "table server ready", 1, READY_LIMIT).await;
    ts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listen_answers_udp_from_the_address_asked() {
    let dir = ZoneDir::new();
    let zone = dir.write("any.txt", "www.any.test 192.0.2.1 A\n");
    let ts_port = free_port();
    // Half the answers deferred (the fault delay): both send paths.
    let fault = ["--delay-ms", "20", "--delay-ratio", "0.5"];
    let listen = format!("0.0.0.0:{ts_port}");
    let mut ts = one_worker_ts("dnslb ts", &listen, &zone, &fault, dir.path()).await;
    let ls_port = free_port();
    let ls_conf = format!(
        "[ls]\nlisten = [\"0.0.0.0:{ls_port}\"]\nworkers = 1\n\
         [[ls.backend]]\nname = \"t\"\naddr = \"127.0.0.1:{ts_port}\"\n"
    );
    let mut ls = start_ls_proc("ls", dir.path(), &ls_conf, &[]);
    wait_stderr(&mut ls, "backend up", 1, Duration::from_secs(10)).await;

    let want = [Ipv4Addr::new(192, 0, 2, 1)];
    for (what, port) in [("TS", ts_port), ("LS", ls_port)] {
        for ip in ASKED {
            for i in 0..10 {
                let m = asked_at(IpAddr::V4(ip), port).await;
                let m = m.unwrap_or_else(|| {
                    panic!("{what} on 0.0.0.0:{port}: no answer from {ip} (query {i})")
                });
                assert_eq!(a_addrs(&m), want, "{what} via {ip}");
            }
        }
    }
    ls.assert_running();
    ts.assert_running();

    // IPv6, where the host has it: `[::]` answers from ::1.
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        let port6 = free_port();
        let listen = format!("[::]:{port6}");
        let _ts6 = one_worker_ts("dnslb ts v6", &listen, &zone, &[], dir.path()).await;
        let sock = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        let to = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), port6);
        sock.connect(to).await.unwrap();
        let q = kit::query_rd("www.any.test.", RecordType::A, false);
        sock.send(&q.to_vec().unwrap()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
            .await
            .expect("an answer from ::1")
            .unwrap();
        assert_eq!(a_addrs(&Message::from_vec(&buf[..n]).unwrap()), want);
    }
}

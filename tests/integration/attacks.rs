//! Resource attacks on the LS and the TS, each a test that prints the figure
//! it measures (`--nocapture` shows them): thousands of idle TCP
//! connections, a slowloris client, forged upstream responses, hostile
//! backends, queries past `max_inflight`, a SIGHUP storm with broken files,
//! and the log lines a flood of hostile packets costs.
//!
//! Servers run in-process on 127.0.0.1:0 (see [`kit`](crate::kit)) unless the figure
//! is a process's own (its open files, its memory, its stderr): then the real
//! `dnslb` binary runs, on ports from [`free_ports`], and is stopped by PID.
//! Every loop is bounded in count and time; waits poll real state.
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, rdata::A};
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::kit::{self, ZoneDir, read_frame};
use crate::kit::{Proc, free_ports, heavy, local, poll_until, poll_until_async, ports};
use crate::kit::{fd_count, flood_size, nofile_of, parse_exposition, value, vm_rss_kib};

/// The name every backend here holds, and its address.
const NAME: &str = "www.attack.test.";
const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// A PROJ table holding [`NAME`].
const TABLE: &str = "www.attack.test 192.0.2.1 A\n";
/// How long a spawned process may take to be ready.
const READY: Duration = Duration::from_secs(10);
/// How long a query under attack may take before it counts as lost: the
/// attack and the rest of the test suite share the machine's cores.
const LOADED_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Clients

/// One query for `name`/`qtype` from `sock` to `server` with a random ID;
/// the answer with that ID, or `None` after `wait`.
async fn ask_on(
    sock: &UdpSocket,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut q = kit::query(name, qtype, None);
    let id: u16 = rand::random();
    q.metadata.id = id;
    sock.send_to(&q.to_vec().unwrap(), server).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == id
        {
            return Some(m);
        }
    }
}

/// [`ask_on`] from a fresh socket.
async fn ask(server: SocketAddr, name: &str, wait: Duration) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ask_on(&sock, server, name, RecordType::A, wait).await
}

/// Whether `m` is the right answer for [`NAME`].
fn right(m: &Message) -> bool {
    m.response_code == ResponseCode::NoError && kit::a_addrs(m) == [ADDR]
}

/// One query over a new TCP connection; `None` if refused, closed or late.
async fn try_tcp(server: SocketAddr, name: &str) -> Option<Message> {
    let work = async {
        let mut s = TcpStream::connect(server).await.ok()?;
        let q = kit::query(name, RecordType::A, None);
        let bytes = q.to_vec().unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        s.write_all(&framed).await.ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await.ok()?;
        Message::from_vec(&buf).ok()
    };
    tokio::time::timeout(LOADED_WAIT, work).await.ok().flatten()
}

// ---------------------------------------------------------------------------
// Processes

/// An `[ls]` on 127.0.0.1:`port` with one worker, `extra` keys and one backend.
fn ls_toml(port: u16, extra: &str, backend: SocketAddr) -> String {
    format!(
        "[ls]\nlisten = [\"127.0.0.1:{port}\"]\nworkers = 1\n{extra}\n\n\
         [[ls.backend]]\nname = \"b1\"\naddr = \"{backend}\"\n"
    )
}

/// `dnslb ls -c config.toml` in `dir` (config already written), under
/// `ulimit ARGS` if given, once it answers [`NAME`] as `probe` wants.
async fn spawn_ls(
    dir: &Path,
    port: u16,
    probe: impl Fn(&Message) -> bool,
    ulimit: Option<&str>,
) -> Proc {
    let mut cmd = crate::kit::dnslb_command(&["ls", "-c", "config.toml"], dir);
    if let Some(args) = ulimit {
        // The shell sets the limit (`ulimit ARGS`), then becomes the LS (same PID).
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(format!("ulimit {args} && exec \"$0\" \"$@\""))
            .args([crate::kit::BIN, "ls", "-c", "config.toml"])
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
            .current_dir(dir);
        cmd = sh;
    }
    spawn_answering("dnslb ls", cmd, local(port), probe).await
}

/// `cmd` (named `what`, `RUST_LOG` unset) started, once it answers
/// [`NAME`] at `addr` as `probe` wants (the test fails after [`READY`], or
/// at once if it exits).
async fn spawn_answering(
    what: &str,
    mut cmd: std::process::Command,
    addr: SocketAddr,
    probe: impl Fn(&Message) -> bool,
) -> Proc {
    cmd.env_remove("RUST_LOG");
    let mut p = Proc::spawn(what, cmd);
    let up = poll_until_async(READY, Duration::from_millis(20), async || {
        p.assert_running();
        ask(addr, NAME, Duration::from_millis(300))
            .await
            .filter(|m| probe(m))
    })
    .await;
    assert!(up.is_some(), "{what} did not answer within {READY:?}");
    p
}

/// A TS holding [`TABLE`] and `dnslb ls` in front of it with its /metrics
/// listener, ready (see [`spawn_ls`]); the directories live as long as it.
struct Metered {
    ts: kit::TestTs,
    ls: Proc,
    addr: SocketAddr,
    metrics: SocketAddr,
    _dirs: (ZoneDir, ZoneDir),
}

/// [`Metered`], the LS started under `ulimit ARGS` if given.
async fn metered_ls(ulimit: Option<&str>) -> Metered {
    let zones = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![zones.write("t.txt", TABLE)])).await;
    let ports = free_ports(2);
    let (port, mport) = (ports[0], ports[1]);
    let dir = ZoneDir::new();
    let extra = format!("metrics = \"127.0.0.1:{mport}\"\n");
    dir.write("config.toml", &ls_toml(port, &extra, ts.addr));
    let ls = spawn_ls(dir.path(), port, right, ulimit).await;
    Metered {
        ts,
        ls,
        addr: local(port),
        metrics: local(mport),
        _dirs: (zones, dir),
    }
}

// ---------------------------------------------------------------------------
// 1. Idle TCP connections

/// The default connection cap (`ServerOptions::tcp_max_connections`).
fn tcp_cap() -> usize {
    dnslb::server::ServerOptions::default().tcp_max_connections
}

/// What one idle-connection flood measured.
struct Flood {
    /// The LS's soft open-file limit, and the connection cap it allows.
    nofile: Option<u64>,
    cap: usize,
    stderr: String,
}

/// Opens `n` idle TCP connections to a spawned LS (with both its open-file
/// limits set to `nofile` by the shell, or inherited) while UDP queries go on;
/// checks the cap holds, the LS's open files stay bounded, UDP is answered
/// throughout and TCP again once the clients are gone.
async fn idle_flood(label: &str, n: usize, nofile: Option<u64>) -> Flood {
    let zones = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![zones.write("t.txt", TABLE)])).await;
    let port = free_ports(1)[0];
    let dir = ZoneDir::new();
    dir.write("config.toml", &ls_toml(port, "", ts.addr));
    let ulimit = nofile.map(|k| format!("-n {k}"));
    let ls = spawn_ls(dir.path(), port, right, ulimit.as_deref()).await;
    let pid = ls.pid();
    let addr = local(port);
    let ls_nofile = nofile_of(pid);
    let cap = dnslb::server::fdlimit::cap_for(tcp_cap(), ls_nofile);
    assert!(n > cap, "{n} connections cannot test a cap of {cap}");
    let base_fds = fd_count(pid);
    // UDP queries all along, and the LS's open files sampled with them.
    let stop = Arc::new(AtomicBool::new(false));
    let max_fds = Arc::new(AtomicU64::new(base_fds as u64));
    let udp = tokio::spawn({
        let (stop, max_fds) = (stop.clone(), max_fds.clone());
        async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (mut ok, mut bad) = (0u64, 0u64);
            for _ in 0..20_000 {
                if stop.load(Relaxed) {
                    break;
                }
                match ask_on(&sock, addr, NAME, RecordType::A, LOADED_WAIT).await {
                    Some(m) if right(&m) => ok += 1,
                    _ => bad += 1,
                }
                max_fds.fetch_max(fd_count(pid) as u64, Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, bad)
        }
    });

    // Open the connections, 256 at a time; each sends nothing.
    let started = Instant::now();
    let mut streams = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut left = n;
    while left > 0 {
        let batch = left.min(256);
        left -= batch;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
            });
        }
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(Ok(s)) => streams.push(s),
                _ => failed += 1,
            }
        }
    }
    let opened_in = started.elapsed();

    // Which are still open: a read that neither ends nor fails within 3 s.
    let mut set = tokio::task::JoinSet::new();
    for mut s in streams {
        set.spawn(async move {
            let mut b = [0u8; 1];
            let open = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
                .await
                .is_err();
            (open, s)
        });
    }
    let mut streams = Vec::with_capacity(n);
    let mut open = 0usize;
    while let Some(r) = set.join_next().await {
        let (is_open, s) = r.unwrap();
        open += usize::from(is_open);
        streams.push(s);
    }
    let closed = streams.len() - open;
    let fds_full = fd_count(pid);
    max_fds.fetch_max(fds_full as u64, Relaxed);

    // The clients go away; a new TCP query is answered again.
    drop(streams);
    let again = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || try_tcp(addr, NAME).await.filter(right),
    )
    .await;
    let fds_after = poll_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let now = fd_count(pid);
        (now <= base_fds + 16).then_some(now)
    });
    stop.store(true, Relaxed);
    let (udp_ok, udp_bad) = udp.await.unwrap();
    let max_fds = max_fds.load(Relaxed);
    eprintln!(
        "idle tcp {label}: LS nofile {ls_nofile:?}, {n} connections opened in {opened_in:.1?} ({failed} \
         could not connect): {open} held open, {closed} closed at once (cap {cap}); LS \
         fds {base_fds} before, {fds_full} full, max {max_fds}, {fds_after:?} after; udp \
         answered {udp_ok}, lost or wrong {udp_bad}"
    );
    assert!(open <= cap, "{open} connections held past the cap");
    assert!(closed + failed >= n - cap);
    assert!(
        max_fds as usize <= base_fds + cap + 64,
        "the LS held {max_fds} files"
    );
    assert_eq!(udp_bad, 0, "UDP queries lost or wrong during the flood");
    assert!(udp_ok > 0);
    assert!(again.is_some(), "no TCP answer after the clients went away");
    assert!(
        fds_after.is_some(),
        "the LS's open files did not come back down"
    );
    // Everything it wrote, read to the pipe's end: a line written during
    // the flood may not have been read yet while it ran.
    let stderr = ls.stop(Duration::from_secs(10)).stderr;
    ts.stop().await;
    Flood {
        nofile: ls_nofile,
        cap,
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_tcp_connections_hit_the_cap_and_udp_keeps_answering() {
    let _load = heavy().await;
    let n = flood_size();
    let f = idle_flood("(inherited limit)", n, None).await;
    if f.nofile.is_some_and(|k| k >= 3 * tcp_cap() as u64) {
        assert_eq!(f.cap, tcp_cap());
    }
}

#[tokio::test]
async fn an_ls_started_with_a_low_soft_file_limit_raises_it_to_the_hard_one() {
    use rustix::process::{Resource, getrlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    let zones = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![zones.write("t.txt", TABLE)])).await;
    let port = free_ports(1)[0];
    let dir = ZoneDir::new();
    dir.write("config.toml", &ls_toml(port, "", ts.addr));
    let ls = spawn_ls(dir.path(), port, right, Some("-S -n 256")).await;
    let soft = nofile_of(ls.pid());
    eprintln!("nofile: started with soft 256 under hard {hard:?}, the LS runs with {soft:?}");
    match hard {
        Some(h) => assert_eq!(soft, Some(h)),
        None => assert_eq!(soft, None, "unlimited"),
    }
    drop(ls);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_1024_file_limit_idle_connections_leave_the_ls_its_own_sockets() {
    let _load = heavy().await;
    dnslb::server::fdlimit::raise_nofile();
    let f = idle_flood("(limit 1024)", 3_000, Some(1024)).await;
    assert_eq!(f.nofile, Some(1024));
    assert!(f.cap < 1024 / 2, "cap {}", f.cap);
    // The health probes still find sockets: the backend never went down,
    // and no accept error was logged.
    assert!(
        !f.stderr.contains("backend down") && !f.stderr.contains("accept error"),
        "stderr:\n{}",
        f.stderr
    );
}

/// Plain TCP connections refused at the cap, as the LS's /metrics at `m` counts them.
async fn tcp_cap_refused(m: SocketAddr) -> f64 {
    let e = parse_exposition(&crate::kit::http_get(m, "/metrics").await.body);
    value(
        &e,
        "dnslb_tcp_connections_refused_total",
        &[("reason", "cap")],
    )
}

/// One query on the open connection `s`: whether [`NAME`] came back right.
async fn tcp_query_on(s: &mut TcpStream) -> bool {
    let q = kit::query(NAME, RecordType::A, None).to_vec().unwrap();
    let work = async {
        kit::write_frame(s, &q).await;
        read_frame(s).await
    };
    let raw = tokio::time::timeout(LOADED_WAIT, work).await.ok().flatten();
    raw.and_then(|r| Message::from_vec(&r).ok())
        .is_some_and(|m| right(&m))
}

/// A TCP connection to `to` from the loopback address 127.0.1.`n`.
async fn connect_from(n: u8, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from(([127, 0, 1, n], 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// Under a file limit that makes the TCP cap small, connections up to the cap
/// (each from its own address: one alone holds at most its share) are served
/// and none is counted as refused; the one past it is closed at once and
/// `dnslb_tcp_connections_refused_total{reason="cap"}` reads 1.
#[tokio::test]
async fn a_plain_tcp_connection_past_the_cap_is_counted_on_metrics() {
    let Metered {
        ts,
        ls,
        addr,
        metrics,
        _dirs,
    } = metered_ls(Some("-n 100")).await;
    let cap = dnslb::server::fdlimit::cap_for(tcp_cap(), nofile_of(ls.pid()));
    assert!(cap < 64, "the limit did not lower the cap: {cap}");
    // The cap filled, each connection answered (so each holds its slot).
    let mut held = Vec::with_capacity(cap);
    for i in 0..cap {
        let mut s = connect_from(i as u8 + 1, addr).await;
        assert!(
            tcp_query_on(&mut s).await,
            "connection {i} of {cap} not served"
        );
        held.push(s);
        assert_eq!(tcp_cap_refused(metrics).await, 0.0, "below the cap");
    }
    // Every one still open (a query each also restarts its idle timeout).
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            tcp_query_on(s).await,
            "connection {i} closed before the extra one"
        );
    }
    // One more: closed at once, unanswered, and counted.
    let mut extra = connect_from(200, addr).await;
    assert!(!tcp_query_on(&mut extra).await, "served past the cap {cap}");
    let counted = poll_until_async(READY, Duration::from_millis(20), async || {
        let n = tcp_cap_refused(metrics).await;
        (n > 0.0).then_some(n)
    })
    .await;
    assert_eq!(counted, Some(1.0), "refused at the cap {cap}");
    drop((held, extra, ls));
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Slowloris

#[tokio::test]
async fn a_slowloris_client_is_dropped_by_the_idle_timeout() {
    let zones = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![zones.write("t.txt", TABLE)])).await;
    let ls = kit::start_ls(kit::ls_config(&[("ts", ts.addr)])).await;
    let idle = dnslb::server::ServerOptions::default().tcp_idle_timeout;
    let limit = idle * 2 + Duration::from_secs(5);

    // A query frame announced as 64 bytes, sent one byte a second.
    let mut frame = vec![0u8, 64];
    frame.extend(std::iter::repeat_n(0xAB, 64));
    let started = Instant::now();
    let mut s = TcpStream::connect(ls.addr).await.unwrap();
    let mut sent = 0usize;
    let mut buf = [0u8; 64];
    let closed_after = loop {
        if started.elapsed() > limit {
            break None;
        }
        if let Some(b) = frame.get(sent) {
            if s.write_all(&[*b]).await.is_err() {
                break Some(started.elapsed());
            }
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(_)) => panic!("an answer to half a frame"),
            Err(_) => {}
        }
        // The LS keeps serving other TCP clients meanwhile.
        assert!(try_tcp(ls.addr, NAME).await.is_some_and(|m| right(&m)));
    };
    eprintln!(
        "slowloris: {sent} bytes sent one a second; connection closed after {closed_after:?} \
         (idle timeout {idle:?})"
    );
    let closed_after = closed_after.expect("the slow client was never dropped");
    assert!(
        closed_after >= idle.saturating_sub(Duration::from_millis(500)),
        "closed before the idle timeout"
    );
    ls.stop().await;
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Forged responses

/// `q` turned into an answer holding one A record, `addr`.
fn answer_with(q: &[u8], addr: Ipv4Addr) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    let name = m.queries[0].name().clone();
    m.answers
        .push(Record::from_rdata(name, 300, RData::A(A(addr))));
    m.to_vec().unwrap()
}

fn with_id(resp: &[u8], id: u16) -> Vec<u8> {
    let mut r = resp.to_vec();
    r[..2].copy_from_slice(&id.to_be_bytes());
    r
}

/// The forged address: an answer carrying it came from a forgery.
const FORGED: Ipv4Addr = Ipv4Addr::new(6, 6, 6, 6);
/// Forged responses the backend sends from its own address before each real answer.
const FORGED_PER_QUERY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_responses_are_never_delivered_and_are_counted() {
    let _load = heavy().await;
    // A backend that knows every query (its source port and question) and,
    // before its real answer, sends forged ones: from its own address with
    // every other ID it picks, and with the right ID from another port.
    let real = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let backend = real.local_addr().unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ports: Arc<Mutex<BTreeSet<u16>>> = Arc::default();
    let last_q: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let forged = Arc::new(AtomicU64::new(0));
    let server = tokio::spawn({
        let (ports, last_q, forged) = (ports.clone(), last_q.clone(), forged.clone());
        async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = real.recv_from(&mut buf).await else {
                    continue;
                };
                let q = buf[..n].to_vec();
                if kit::is_probe(&q) {
                    let _ = real.send_to(&kit::empty_answer(&q), from).await;
                    continue;
                }
                ports.lock().unwrap().insert(from.port());
                *last_q.lock().unwrap() = Some(q.clone());
                let id = u16::from_be_bytes([q[0], q[1]]);
                let fake = answer_with(&q, FORGED);
                for _ in 0..FORGED_PER_QUERY {
                    let wrong = loop {
                        let w: u16 = rand::random();
                        if w != id {
                            break w;
                        }
                    };
                    let _ = real.send_to(&with_id(&fake, wrong), from).await;
                }
                let _ = other.send_to(&fake, from).await;
                forged.fetch_add(FORGED_PER_QUERY as u64 + 1, Relaxed);
                let _ = real.send_to(&answer_with(&q, ADDR), from).await;
            }
        }
    });
    let mut cfg = kit::ls_config(&[("b1", backend)]);
    cfg.timeout_ms = 1000;
    let ls = kit::start_ls(cfg).await;

    // And a blind flood at every upstream port seen so far, random IDs,
    // from a third address, all the time the client asks.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn({
        let (ports, last_q, forged, stop) =
            (ports.clone(), last_q.clone(), forged.clone(), stop.clone());
        async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            for _ in 0..2_000 {
                if stop.load(Relaxed) {
                    break;
                }
                let q = last_q.lock().unwrap().clone();
                let targets: Vec<u16> = ports.lock().unwrap().iter().copied().collect();
                if let Some(q) = q {
                    let fake = answer_with(&q, FORGED);
                    for port in targets {
                        for _ in 0..8 {
                            let _ = sock
                                .send_to(&with_id(&fake, rand::random()), local(port))
                                .await;
                            forged.fetch_add(1, Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut ok, mut forged_seen, mut other_seen) = (0u32, 0u32, 0u32);
    for i in 0..300 {
        let name = format!("q{i}.forge.test.");
        match ask_on(&sock, ls.addr, &name, RecordType::A, LOADED_WAIT).await {
            Some(m) if kit::a_addrs(&m).contains(&FORGED) => forged_seen += 1,
            Some(m) if m.response_code == ResponseCode::NoError && kit::a_addrs(&m) == [ADDR] => {
                ok += 1
            }
            _ => other_seen += 1,
        }
    }
    stop.store(true, Relaxed);
    flood.await.unwrap();
    server.abort();
    let e = parse_exposition(&dnslb::metrics::render_prometheus(&ls.balancer));
    let by = |reason: &str| value(&e, "dnslb_dropped_responses_total", &[("reason", reason)]);
    let (id, src, question) = (by("wrong_id"), by("wrong_source"), by("wrong_question"));
    let sent = forged.load(Relaxed);
    eprintln!(
        "forged responses: {sent} sent at {} upstream ports; client answers right {ok}, forged \
         {forged_seen}, other {other_seen}; dropped wrong_id {id}, wrong_source {src}, \
         wrong_question {question}",
        ports.lock().unwrap().len()
    );
    assert_eq!(forged_seen, 0, "a forged answer reached the client");
    assert_eq!(
        other_seen, 0,
        "queries lost or answered wrongly under the flood"
    );
    assert_eq!(ok, 300);
    assert!(
        src >= 1.0,
        "a right-ID answer from the wrong source was not counted"
    );
    // Loopback may drop some of a flood; most of it must be seen and counted.
    assert!(
        id + src + question >= sent as f64 / 2.0,
        "only {} of {sent} forged responses counted",
        id + src + question
    );
    ls.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Hostile backends

/// How a hostile backend answers client queries (probes get a good answer,
/// so it stays up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostility {
    /// Random bytes, some too short for a header.
    Garbage,
    /// The right ID, another question.
    WrongQuestion,
    /// TC=1 over UDP every time; over TCP a 64 KiB answer.
    Truncating,
    /// The right answer with the ID off by one.
    WrongId,
    /// A 3 KB answer over UDP whatever the query's size limit.
    Oversize,
}

/// The 64 KiB answer [`Hostility::Truncating`] gives over TCP to query `q`.
fn big_answer(q: &[u8]) -> Vec<u8> {
    kit::a_flood_answer(q, 65_535)
}

/// An answer to `q` of about 3,000 bytes: the right address, then more.
fn oversize_answer(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(&answer_with(q, ADDR)).unwrap();
    let name = m.queries[0].name().clone();
    while m.to_vec().unwrap().len() < 3_000 {
        let addr = Ipv4Addr::from(0x0A00_0000 + m.answers.len() as u32);
        m.answers
            .push(Record::from_rdata(name.clone(), 300, RData::A(A(addr))));
    }
    m.to_vec().unwrap()
}

/// A hostile backend on UDP and TCP of one port.
struct Hostile {
    addr: SocketAddr,
    _tasks: kit::Tasks,
}

impl Hostile {
    async fn start(how: Hostility) -> Hostile {
        let (udp, tcp, addr) = kit::udp_and_tcp().await;
        let u = kit::serve_udp(udp, move |q| {
            if kit::is_probe(q) {
                return kit::Reply::Now(kit::empty_answer(q));
            }
            let id = u16::from_be_bytes([q[0], q[1]]);
            let out: Vec<Vec<u8>> = match how {
                Hostility::Garbage => vec![
                    vec![0xFF, 0x00, 0x81],
                    (0..200).map(|_| rand::random::<u8>()).collect(),
                    // A readable header with the right ID, then junk.
                    [
                        &q[..2],
                        &[0x84, 0x00, 0x00, 0x01, 0xFF, 0xFF][..],
                        &[0xEE; 40][..],
                    ]
                    .concat(),
                ],
                Hostility::WrongQuestion => {
                    let mut m = Message::from_vec(&answer_with(q, ADDR)).unwrap();
                    m.queries[0] =
                        Query::query(Name::from_ascii("evil.test.").unwrap(), RecordType::A);
                    m.metadata.id = id;
                    vec![m.to_vec().unwrap()]
                }
                Hostility::Truncating => {
                    let mut m = Message::from_vec(q).unwrap();
                    m.metadata.message_type = MessageType::Response;
                    m.metadata.authoritative = true;
                    m.metadata.truncation = true;
                    vec![m.to_vec().unwrap()]
                }
                Hostility::Oversize => vec![oversize_answer(q)],
                Hostility::WrongId => {
                    vec![with_id(&answer_with(q, ADDR), id.wrapping_add(1))]
                }
            };
            kit::Reply::Many(out)
        });
        let t = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Some(q) = read_frame(&mut s).await else {
                        return;
                    };
                    let resp = big_answer(&q);
                    let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&resp);
                    let _ = s.write_all(&framed).await;
                });
            }
        });
        Hostile {
            addr,
            _tasks: kit::Tasks(vec![u, t]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_backends_get_answers_by_the_rules_and_the_ls_keeps_serving() {
    let zones = ZoneDir::new();
    let ts = kit::start_ts(kit::ts_settings(vec![zones.write("t.txt", TABLE)])).await;
    for how in [
        Hostility::Garbage,
        Hostility::WrongQuestion,
        Hostility::WrongId,
        Hostility::Truncating,
        Hostility::Oversize,
    ] {
        let bad = Hostile::start(how).await;

        // Alone: nothing it sends is usable but a TC=1.
        let mut cfg = kit::ls_config(&[("bad", bad.addr)]);
        cfg.timeout_ms = 500;
        let ls = kit::start_ls(cfg).await;
        let started = Instant::now();
        let m = ask(ls.addr, NAME, LOADED_WAIT)
            .await
            .unwrap_or_else(|| panic!("{how:?} alone: no answer"));
        let took = started.elapsed();
        if how == Hostility::Oversize {
            // Over UDP the client gets at most what it can take: 512 bytes
            // without EDNS, then TC=1 sends it to TCP.
            for edns in [None, Some(1232)] {
                let q = kit::query(NAME, RecordType::A, edns).to_vec().unwrap();
                let raw = kit::udp_raw(ls.addr, &q).await.expect("an answer");
                let limit = if edns.is_some() { 1232 } else { 512 };
                let got = Message::from_vec(&raw).unwrap();
                eprintln!(
                    "hostile {how:?} alone: udp client (edns {edns:?}) got {} B, TC={}",
                    raw.len(),
                    got.truncation
                );
                assert!(
                    raw.len() <= limit,
                    "{} B over UDP to a {limit}-byte client",
                    raw.len()
                );
                assert!(got.truncation);
            }
            // Over TCP the whole answer.
            let q = kit::query(NAME, RecordType::A, None);
            let whole = kit::tcp(ls.addr, &q).await;
            let sent = Message::from_vec(&oversize_answer(&q.to_vec().unwrap())).unwrap();
            // The backend fills 3,000 bytes counting the query's OPT, and the
            // copy the LS forwards carries the LS's loop mark (ls::loopmark):
            // one record fewer may fit than for the client's own bytes.
            let n = whole.answers.len();
            assert!(
                !whole.truncation && (sent.answers.len() - 1..=sent.answers.len()).contains(&n),
                "{n} records over TCP, the backend's answer to the client's bytes has {}",
                sent.answers.len()
            );
        } else if how == Hostility::Truncating {
            // A truncated answer is passed on: the client retries over TCP,
            // where the LS asks over TCP too and relays the 64 KiB answer.
            assert!(m.truncation, "{how:?}: {m:?}");
            let q = kit::query(NAME, RecordType::A, None);
            let big = kit::tcp(ls.addr, &q).await;
            let want = Message::from_vec(&big_answer(&q.to_vec().unwrap()))
                .unwrap()
                .answers
                .len();
            eprintln!(
                "hostile {how:?} alone: udp TC={} in {took:.1?}; tcp answer of {} records ({} B)",
                m.truncation,
                big.answers.len(),
                big.to_vec().unwrap().len()
            );
            assert_eq!(big.answers.len(), want);
        } else {
            // Dropped and counted: the deadline's synthesized answer.
            let drops = ls.balancer.metrics().drops.total();
            eprintln!(
                "hostile {how:?} alone: {} aa={} in {took:.1?}, {drops} responses dropped",
                m.response_code, m.metadata.authoritative
            );
            assert_eq!(m.response_code, ResponseCode::NXDomain, "{how:?}: {m:?}");
            assert!(
                !m.metadata.authoritative,
                "{how:?}: a synthesized answer has AA=0"
            );
            assert!(drops >= 1, "{how:?}: nothing counted as dropped");
        }
        ls.stop().await;

        // Beside a healthy backend: the healthy answer.
        let mut cfg = kit::ls_config(&[("bad", bad.addr), ("good", ts.addr)]);
        cfg.strategy = dnslb::config::Strategy::Race;
        cfg.timeout_ms = 1000;
        let ls = kit::start_ls(cfg).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (mut good, mut tc) = (0, 0);
        for _ in 0..50 {
            let m = ask_on(&sock, ls.addr, NAME, RecordType::A, LOADED_WAIT)
                .await
                .unwrap_or_else(|| panic!("{how:?} beside a good backend: no answer"));
            if right(&m) {
                good += 1;
            } else if matches!(how, Hostility::Truncating | Hostility::Oversize)
                && m.truncation
                && m.answers.is_empty()
            {
                // Racing, the hostile backend's answer may come first: a TC=1
                // (passed on, or made for one too big) is by the rules.
                tc += 1;
            } else {
                panic!("{how:?} beside a good backend: {m:?}");
            }
        }
        eprintln!(
            "hostile {how:?} beside a good backend: 50 queries, {good} good answers, {tc} TC=1"
        );
        if !matches!(how, Hostility::Truncating | Hostility::Oversize) {
            assert_eq!(good, 50);
        }
        // Still serving over TCP too.
        assert!(try_tcp(ls.addr, NAME).await.is_some());
        ls.stop().await;
    }
    ts.stop().await;
}

// ---------------------------------------------------------------------------
// 4b. Overload that never reaches the LS

/// Client queries the LS's /metrics at `m` counts as shed, all reasons.
async fn shed_total(m: SocketAddr) -> f64 {
    let e = parse_exposition(&crate::kit::http_get(m, "/metrics").await.body);
    ["queue", "inflight", "socket"]
        .iter()
        .map(|r| value(&e, "dnslb_shed_total", &[("reason", r)]))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_a_full_socket_queue_drops_is_counted_as_shed() {
    let _load = heavy().await;
    const FLOOD: usize = 40_000;
    const AFTER: usize = 20;
    let Metered {
        ts: _ts,
        mut ls,
        addr,
        metrics,
        _dirs,
    } = metered_ls(None).await;
    let shed_before = shed_total(metrics).await;

    // A client whose own queue holds every answer the LS can send back.
    let sock = kit::roomy_udp_socket();
    let q = kit::query(NAME, RecordType::A, None).to_vec().unwrap();
    let mut buf = vec![0u8; 4096];
    let mut answered = BTreeSet::new();
    let mut drain = async |sock: &UdpSocket, answered: &mut BTreeSet<u16>| {
        // Until the LS has been quiet for a while.
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf)).await
        {
            if let Some(id) = buf.get(..n.min(2)).filter(|b| b.len() == 2) {
                answered.insert(u16::from_be_bytes([id[0], id[1]]));
            }
        }
    };
    // Stopped, the LS reads nothing: its socket's queue fills, and the
    // kernel drops the rest of the flood.
    let resume = ls.pause();
    for i in 0..FLOOD {
        sock.send_to(&with_id(&q, i as u16), addr).await.unwrap();
    }
    drop(resume);
    drain(&sock, &mut answered).await;
    // And the LS serves normally right after.
    for i in FLOOD..FLOOD + AFTER {
        sock.send_to(&with_id(&q, i as u16), addr).await.unwrap();
    }
    drain(&sock, &mut answered).await;
    ls.assert_running();
    let shed = (shed_total(metrics).await - shed_before) as usize;
    eprintln!(
        "flood of {FLOOD} (+{AFTER}) at a stopped LS: {} answered, {shed} counted as shed",
        answered.len()
    );
    assert!(
        shed > 0,
        "the flood overflowed the queue: some were dropped"
    );
    assert!(
        (FLOOD..FLOOD + AFTER).all(|i| answered.contains(&(i as u16))),
        "the queries after the flood are answered"
    );
    assert_eq!(
        answered.len() + shed,
        FLOOD + AFTER,
        "every query is answered or counted as shed"
    );
}

// ---------------------------------------------------------------------------
// 5. Past max_inflight

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_inflight_excess_queries_get_servfail_at_once_and_memory_stays_flat() {
    let _load = heavy().await;
    const INFLIGHT: usize = 4;
    const EXCESS: usize = 50_000;
    const WINDOW: usize = 64;
    let stalled = kit::Stalled::start().await;
    let port = free_ports(1)[0];
    let dir = ZoneDir::new();
    let extra = format!("max_inflight = {INFLIGHT}\ntimeout_ms = 60000\n");
    dir.write("config.toml", &ls_toml(port, &extra, stalled.addr));
    // Ready: the LS answers (SERVFAIL once the bound is full, which the
    // readiness probes themselves fill).
    let servfail = |m: &Message| m.response_code == ResponseCode::ServFail;
    let ls = spawn_ls(dir.path(), port, servfail, None).await;
    let pid = ls.pid();
    let addr = local(port);

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (mut servfail, mut other, mut lost) = (0usize, 0usize, 0usize);
    let mut worst = Duration::ZERO;
    let mut rss_before = 0;
    let q = kit::query(NAME, RecordType::A, None).to_vec().unwrap();
    let started = Instant::now();
    for round in 0..(1_000 + EXCESS) / WINDOW {
        if round == 1_000 / WINDOW {
            // After a warm-up, so one-time allocations are not counted.
            rss_before = vm_rss_kib(pid);
            (servfail, other, lost) = (0, 0, 0);
        }
        let sent_at = Instant::now();
        let mut waiting = BTreeSet::new();
        for k in 0..WINDOW {
            let id = (round * WINDOW + k) as u16;
            sock.send_to(&with_id(&q, id), addr).await.unwrap();
            waiting.insert(id);
        }
        while !waiting.is_empty() {
            match tokio::time::timeout(LOADED_WAIT, sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    let Ok(m) = Message::from_vec(&buf[..n]) else {
                        other += 1;
                        continue;
                    };
                    if waiting.remove(&m.metadata.id) {
                        if m.response_code == ResponseCode::ServFail {
                            servfail += 1;
                        } else {
                            other += 1;
                        }
                    }
                }
                _ => {
                    lost += waiting.len();
                    break;
                }
            }
        }
        worst = worst.max(sent_at.elapsed());
    }
    let elapsed = started.elapsed();
    let rss_after = vm_rss_kib(pid);
    let total = (1_000 + EXCESS) / WINDOW * WINDOW - 1_000 / WINDOW * WINDOW;
    eprintln!(
        "max_inflight {INFLIGHT}: {total} excess queries in {elapsed:.1?}: {servfail} SERVFAIL, \
         {other} other, {lost} lost; slowest window of {WINDOW} answered in {worst:.1?}; VmRSS \
         {rss_before} KiB before, {rss_after} KiB after ({:+} KiB); stalled backend got {} queries",
        rss_after as i64 - rss_before as i64,
        stalled.queries.load(Relaxed)
    );
    assert_eq!(servfail, total, "every excess query gets SERVFAIL");
    assert_eq!((other, lost), (0, 0));
    // The queries in flight, each asked again of its silent backend at most
    // REASK_MAX (6) times (the re-asks while time remains); none of the
    // excess.
    assert!(
        stalled.queries.load(Relaxed) <= INFLIGHT as u64 * 7,
        "the excess reached the backend"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "memory grew by {} KiB",
        rss_after - rss_before
    );
    drop(ls);
}

// ---------------------------------------------------------------------------
// 6. A SIGHUP storm

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sighups_with_broken_files_lose_no_query_and_keep_the_last_good_data() {
    let _load = heavy().await;
    const ROUNDS: usize = 100;
    let [lp, tp] = ports();
    let dir = ZoneDir::new();
    let config = |timeout: u64| {
        format!(
            "[ls]\nlisten = [\"127.0.0.1:{lp}\"]\nworkers = 1\ntimeout_ms = {timeout}\n\n\
             [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{tp}\"\n\n\
             [[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{tp}\"\nzones = [\"zone.txt\"]\n"
        )
    };
    let table = |v: Ipv4Addr| format!("www.attack.test {v} A\n");
    // Written whole, then renamed over the old file, as an editor or a
    // deployment tool does.
    let replace = |name: &str, text: &str| {
        let tmp = dir.path().join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.path().join(name)).unwrap();
    };
    let good_addr = |i: usize| Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1);
    replace("config.toml", &config(1500));
    replace("zone.txt", &table(good_addr(0)));
    let cmd = crate::kit::dnslb_command(&["up", "-c", "config.toml"], dir.path());
    let addr = local(lp);
    let first = |m: &Message| kit::a_addrs(m) == [good_addr(0)];
    let mut up = spawn_answering("dnslb up", cmd, addr, first).await;

    // Good values in the order they were written, with when.
    let written: Arc<Mutex<Vec<(Instant, Ipv4Addr)>>> =
        Arc::new(Mutex::new(vec![(Instant::now(), good_addr(0))]));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (written, stop) = (written.clone(), stop.clone());
        async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (mut ok, mut lost, mut wrong) = (0u64, 0u64, Vec::new());
            for _ in 0..20_000 {
                if stop.load(Relaxed) {
                    break;
                }
                match ask_on(&sock, addr, NAME, RecordType::A, LOADED_WAIT).await {
                    None => lost += 1,
                    Some(m) => {
                        let got = kit::a_addrs(&m);
                        // Any good value written before the answer came.
                        let good = written.lock().unwrap().iter().any(|(_, v)| got == [*v]);
                        if m.response_code == ResponseCode::NoError && good {
                            ok += 1;
                        } else {
                            wrong.push(format!("{} {got:?}", m.response_code));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (ok, lost, wrong)
        }
    });

    let started = Instant::now();
    let mut last_good = good_addr(0);
    // One SIGHUP every 100 ms: 100 in 10 s.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for i in 1..=ROUNDS {
        tick.tick().await;
        if i % 2 == 1 {
            // A good edit of both files.
            last_good = good_addr(i);
            written.lock().unwrap().push((Instant::now(), last_good));
            replace("zone.txt", &table(last_good));
            replace("config.toml", &config(1500 + i as u64));
        } else if i % 4 == 0 {
            replace("zone.txt", "www.attack.test not-an-address A\n");
        } else {
            replace("config.toml", "[ls\nlisten = \n");
        }
        up.signal(Signal::HUP);
    }
    let storm = started.elapsed();
    // The last round left a broken zone file in place: the last good data stays.
    let settled = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            ask(addr, NAME, LOADED_WAIT)
                .await
                .filter(|m| kit::a_addrs(m) == [last_good])
        },
    )
    .await;
    stop.store(true, Relaxed);
    let (ok, lost, wrong) = load.await.unwrap();
    up.assert_running();
    let mut final_ok = 0;
    for _ in 0..20 {
        if ask(addr, NAME, LOADED_WAIT)
            .await
            .is_some_and(|m| kit::a_addrs(&m) == [last_good])
        {
            final_ok += 1;
        }
    }
    // The refusals were logged during the storm; the log's reader may
    // still be behind.
    kit::wait_stderr(&mut up, "refused", 1, Duration::from_secs(10)).await;
    let stderr = up.stderr_now();
    let refused = stderr.matches("refused").count();
    eprintln!(
        "sighup storm: {ROUNDS} SIGHUPs in {storm:.1?} (half with a broken zone or config); \
         {ok} queries answered right, {lost} lost, {} wrong; last good value {last_good} in \
         force at the end: {final_ok}/20; {refused} log lines say refused",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "wrong answers: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(lost, 0, "queries lost during the storm");
    assert!(ok > 0);
    assert!(settled.is_some(), "the last good zone is not in force");
    assert_eq!(final_ok, 20);
    assert!(refused >= 1, "no reload was refused; stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------
// 7. Log lines per hostile packet

/// The `i`-th hostile packet: garbage, a response, bad EDNS, a bad opcode,
/// no question, two questions, class CH.
fn hostile_packet(i: usize) -> Vec<u8> {
    let good = |id: u16| {
        let mut q = kit::query(NAME, RecordType::A, None);
        q.metadata.id = id;
        q
    };
    let id = i as u16;
    match i % 8 {
        0 => (0..(i % 97)).map(|_| rand::random::<u8>()).collect(),
        1 => {
            let mut m = good(id);
            m.metadata.message_type = MessageType::Response;
            m.to_vec().unwrap()
        }
        2 => {
            let mut m = good(id);
            let mut e = Edns::new();
            e.set_version(1 + (i % 200) as u8);
            m.set_edns(e);
            m.to_vec().unwrap()
        }
        3 => {
            // An OPT whose RDLENGTH runs past the end.
            let mut b = good(id).to_vec().unwrap();
            b[11] = 1; // ARCOUNT
            b.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 1]);
            b
        }
        4 => {
            let mut m = good(id);
            m.metadata.op_code = [OpCode::Status, OpCode::Update, OpCode::Unknown(7)][i % 3];
            m.to_vec().unwrap()
        }
        5 => {
            let mut b = good(id).to_vec().unwrap();
            b[4..6].copy_from_slice(&[0, 0]); // QDCOUNT 0, question left behind
            b
        }
        6 => {
            let mut m = good(id);
            m.add_query(Query::query(
                Name::from_ascii("two.attack.test.").unwrap(),
                RecordType::A,
            ));
            m.to_vec().unwrap()
        }
        _ => {
            let mut m = Message::query();
            m.metadata.id = id;
            let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
            q.set_query_class(DNSClass::CH);
            m.add_query(q);
            m.to_vec().unwrap()
        }
    }
}

/// Non-empty stderr lines of `p` so far.
fn lines(p: &Proc) -> usize {
    p.stderr_now()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_packets_cost_a_bounded_number_of_log_lines() {
    let _load = heavy().await;
    const PACKETS: usize = 10_000;
    let [lp, tp] = ports();
    let dir = ZoneDir::new();
    let zone = dir.write("t.txt", TABLE);
    let listen = format!("127.0.0.1:{tp}");
    let cmd = crate::kit::dnslb_command(
        &["ts", "--listen", &listen, "--zone", zone.to_str().unwrap()],
        dir.path(),
    );
    let ts_addr = local(tp);
    let mut ts = spawn_answering("dnslb ts", cmd, ts_addr, right).await;
    dir.write("config.toml", &ls_toml(lp, "", ts_addr));
    let mut ls = spawn_ls(dir.path(), lp, right, None).await;
    let ls_addr = local(lp);
    // Their start's last lines, written about when they first answered:
    // read before the count starts, or they would count as the packets'.
    let limit = Duration::from_secs(10);
    ts.wait_line("table server ready", limit).await;
    ls.wait_line_where("the LS's workers line", limit, |l| l.contains("CPU"))
        .await;

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut drain = vec![0u8; 4096];
    let mut counts = Vec::new();
    for (who, p, addr) in [("ts", &mut ts, ts_addr), ("ls", &mut ls, ls_addr)] {
        let before = lines(p);
        let started = Instant::now();
        for i in 0..PACKETS {
            sock.send_to(&hostile_packet(i), addr).await.unwrap();
            // Paced so the receive buffer never overflows: read what came back.
            if i % 32 == 31 {
                while let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_millis(2), sock.recv_from(&mut drain)).await
                {
                }
            }
        }
        // Everything sent before this answer has been read by the server.
        let alive = poll_until_async(
            Duration::from_secs(5),
            Duration::from_millis(20),
            async || ask(addr, NAME, LOADED_WAIT).await.filter(right),
        )
        .await;
        assert!(alive.is_some(), "{who} stopped answering");
        p.assert_running();
        let after = lines(p);
        eprintln!(
            "log lines: {who}: {} for {PACKETS} hostile packets (sent in {:.1?})",
            after - before,
            started.elapsed()
        );
        counts.push((who, after - before, p.stderr_now()));
    }
    for (who, n, stderr) in counts {
        assert!(n < 20, "{who} logged {n} lines:\n{stderr}");
    }
}

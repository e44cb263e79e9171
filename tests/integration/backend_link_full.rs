//! An encrypted backend link that is full acts as a full backend: an LS
//! whose only backend is a second LS's DoT (or DoQ) listener in front of a
//! slow TS, flooded past what the link carries at once, answers the excess
//! SERVFAIL at once (counted as shed: `dnslb_shed_total{reason="limit"}`),
//! never the made-up `on_timeout` NXDOMAIN at its deadline for a name that
//! exists; and its health probes, on a connection of their own, keep the
//! healthy backend up throughout.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::kit::tls::{Pki, TABLE};
use crate::kit::{
    LsRoleRun, delay_all, free_ports, or_skip, path_str, query, start_ls_role, start_ts,
    ts_settings,
};

/// How the front LS probes: often, with the question the far LS answers
/// itself (`id.server. TXT`, the default), in the default 150 ms: a probe
/// that waited behind the clients' queries would fail.
const HEALTH: &str = "[ls.health]\ninterval_ms = 200\nfall = 2\n";

/// An LS with `[ls.tls]` and `[ls.quic]` (a leaf of `pki` for `dns.test`)
/// in front of `ts`.
async fn far_ls(pki: &Pki, ts: SocketAddr, ports: [u16; 3]) -> LsRoleRun {
    let (cert, key) = pki.leaf("far");
    let (cert, key) = (path_str(&cert), path_str(&key));
    let [plain, dot, doq] = ports;
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{plain}\"]\n\n\
         [ls.tls]\nlisten = [\"127.0.0.1:{dot}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [ls.quic]\nlisten = [\"127.0.0.1:{doq}\"]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
         [[ls.backend]]\nname = \"ts\"\naddr = \"{ts}\"\n"
    );
    let config = pki.path().join("far.toml");
    std::fs::write(&config, text).unwrap();
    start_ls_role(&config).await
}

/// The LS under test: its one backend `far` over `transport` to `addr`,
/// a deadline of 2 s and the default `on_timeout` (NXDOMAIN): the flood
/// below, queued, would take longer than that to carry (1,500 queries,
/// 256 or 400 at a time, 400 ms each).
async fn front_ls(pki: &Pki, transport: &str, addr: SocketAddr) -> LsRoleRun {
    let port = free_ports(1)[0];
    let ca = pki.ca();
    let ca = path_str(&ca);
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{port}\"]\ntimeout_ms = 2000\n\n{HEALTH}\n\
         [[ls.backend]]\nname = \"far\"\naddr = \"{addr}\"\ntransport = \"{transport}\"\n\
         tls_name = \"dns.test\"\nca = \"{ca}\"\n"
    );
    let config = pki.path().join(format!("front-{transport}.toml"));
    std::fs::write(&config, text).unwrap();
    start_ls_role(&config).await
}

/// What a flood's answers came to.
#[derive(Debug, Default)]
struct Tally {
    noerror: usize,
    servfail: usize,
    nxdomain: usize,
    other: usize,
    lost: usize,
    /// The slowest answer.
    slowest: Duration,
}

/// `n` queries for `www.example.com A` (which exists) sent to `addr` at
/// once from 8 sockets, each waited for 5 s at most.
async fn flood(addr: SocketAddr, n: usize) -> Tally {
    let q = query("www.example.com", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    let mut tasks = Vec::new();
    for s in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.connect(addr).await.unwrap();
            let mut sent_at = std::collections::HashMap::new();
            for i in (s..n).step_by(8) {
                let mut m = q.clone();
                let id = u16::try_from(i).unwrap();
                m[..2].copy_from_slice(&id.to_be_bytes());
                sock.send(&m).await.unwrap();
                sent_at.insert(id, Instant::now());
                if i % 64 == s {
                    tokio::task::yield_now().await;
                }
            }
            let mut t = Tally::default();
            let mut buf = vec![0u8; 4096];
            let end = Instant::now() + Duration::from_secs(5);
            while !sent_at.is_empty() {
                let left = end.saturating_duration_since(Instant::now());
                let Ok(Ok(len)) = tokio::time::timeout(left, sock.recv(&mut buf)).await else {
                    break;
                };
                let Some(at) = buf
                    .get(..2)
                    .and_then(|id| sent_at.remove(&u16::from_be_bytes([id[0], id[1]])))
                else {
                    continue;
                };
                t.slowest = t.slowest.max(at.elapsed());
                match buf.get(3).map(|b| b & 0x0f) {
                    Some(0) if len > 12 => t.noerror += 1,
                    Some(2) => t.servfail += 1,
                    Some(3) => t.nxdomain += 1,
                    _ => t.other += 1,
                }
            }
            t.lost = sent_at.len();
            t
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.noerror += t.noerror;
        all.servfail += t.servfail;
        all.nxdomain += t.nxdomain;
        all.other += t.other;
        all.lost += t.lost;
        all.slowest = all.slowest.max(t.slowest);
    }
    all
}

fn backend_up(run: &LsRoleRun) -> bool {
    run.balancer.state().backends.iter().all(|b| b.is_up())
}

/// A flood of 1,500 queries at a front LS whose one backend is reached
/// over DoT, then over DoQ, the far LS's own backend answering in 400 ms:
/// what the link carries at once is answered, the rest SERVFAIL at once
/// (shed as `limit`), no NXDOMAIN is made up, nothing waits for the 2 s
/// deadline, and the backend never goes down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_encrypted_link_sheds_at_once_and_its_probes_keep_the_backend_up() {
    let pki = or_skip!(Pki::new("backend_link_full"));
    let mut slow = ts_settings(vec![pki.dir.write("s.txt", TABLE)]);
    slow.fault = delay_all(400);
    let slow = start_ts(slow).await;
    let p = free_ports(3);
    let far = far_ls(&pki, slow.addr, [p[0], p[1], p[2]]).await;
    for (transport, port) in [("tls", p[1]), ("quic", p[2])] {
        let front = front_ls(&pki, transport, crate::kit::local(port)).await;
        assert!(backend_up(&front), "{transport}: up before the flood");
        // Watches the backend's health through the flood and a while after.
        let (down, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let watch = {
            let (down, stop, balancer) = (down.clone(), stop.clone(), front.balancer.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    if !balancer.state().backends.iter().all(|b| b.is_up()) {
                        down.store(true, Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let t = flood(front.addr, 1500).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Relaxed);
        watch.await.unwrap();
        let shed = front.balancer.metrics().shed_limit.load(Relaxed);
        eprintln!("{transport}: {t:?}, shed as limit: {shed}");
        assert_eq!(t.nxdomain, 0, "{transport}: made-up NXDOMAIN: {t:?}");
        assert_eq!(t.other, 0, "{transport}: {t:?}");
        assert!(
            t.noerror >= 50,
            "{transport}: the link carried queries: {t:?}"
        );
        assert!(t.servfail >= 100, "{transport}: the excess refused: {t:?}");
        assert!(t.lost <= 75, "{transport}: each answered or refused: {t:?}");
        assert!(
            t.slowest < Duration::from_millis(1500),
            "{transport}: nothing waits for the deadline: {t:?}"
        );
        assert!(
            shed >= 1 && shed as usize <= t.servfail + t.lost,
            "{transport}: counted as shed: {shed} for {t:?}"
        );
        assert!(
            !down.load(Relaxed),
            "{transport}: the healthy backend went down under the flood"
        );
        front.stop().await;
    }
    far.stop().await;
    slow.stop().await;
}

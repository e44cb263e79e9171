//! The LS passes on what a backend answers: a FORMERR or NOTIMP from one
//! backend is not final, a truncated answer to an EDNS query keeps an OPT;
//! and the metrics listener's cap does not let one connect evict a probe.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::kit::{self, Fake, TestLs, TestTs, ZoneDir, error_answer};

const ZONE: &str = "$ORIGIN example.\n$TTL 300\n\
    @ SOA ns hostmaster 1 3600 600 86400 300\n\
    @ NS ns\n\
    ns A 192.0.2.1\n\
    www A 192.0.2.10\n";

async fn ts(dir: &ZoneDir) -> TestTs {
    kit::start_ts(kit::ts_settings(vec![dir.write("example.zone", ZONE)])).await
}

/// An LS with one worker and `order = "fixed"` in front of `backends`.
async fn ls_fixed(backends: &[(&str, SocketAddr)]) -> TestLs {
    let mut cfg = kit::ls_config(backends);
    cfg.workers = 1;
    cfg.timeout_ms = 1500;
    cfg.order = dnslb::config::Order::Fixed;
    kit::start_ls(cfg).await
}

fn formerr(q: &[u8]) -> Vec<u8> {
    error_answer(q, 1)
}

fn notimp(q: &[u8]) -> Vec<u8> {
    error_answer(q, 4)
}

/// docs/CONFIG.md ("What wins") and docs/CONFIG.md: "an answer with rcode SERVFAIL,
/// REFUSED, FORMERR or NOTIMP is never final: the LS moves on as if that
/// backend had not answered". Since b3590a6 (`dns::rejects_query` in
/// `LsState::judge_response`) a FORMERR or NOTIMP from the first backend is
/// final: passed to the client while the second backend holds the answer,
/// and never counted as the backend's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formerr_or_notimp_from_one_backend_is_not_final() {
    let dir = ZoneDir::new();
    let good = ts(&dir).await;
    for (what, answer) in [
        ("FORMERR", formerr as fn(&[u8]) -> Vec<u8>),
        ("NOTIMP", notimp),
    ] {
        let bad = Fake::answering(answer).await;
        let ls = ls_fixed(&[("bad", bad.addr), ("good", good.addr)]).await;
        let mut rcodes = Vec::new();
        for _ in 0..20 {
            let q = kit::query("www.example.", RecordType::A, Some(1232));
            let m = kit::udp(ls.addr, &q).await;
            rcodes.push(m.metadata.response_code);
        }
        let errors = ls.balancer.state().backends[0]
            .stats
            .errors
            .load(std::sync::atomic::Ordering::Relaxed);
        ls.stop().await;
        let passed_on = rcodes
            .iter()
            .filter(|&&r| r != ResponseCode::NoError)
            .count();
        assert_eq!(
            passed_on, 0,
            "{what} from the first backend: {passed_on} of 20 clients got it \
             although the second backend answers ({rcodes:?}); backend errors counted: {errors}"
        );
    }
    good.stop().await;
}

/// A 6,000-byte answer (TXT records) with an OPT of 1232.
fn big_answer(query: &[u8]) -> Vec<u8> {
    kit::txt_answer(query, 28)
}

/// RFC 6891 §7: "The minimal response MUST be the DNS header, question
/// section, and an OPT record. This MUST also occur when a truncated
/// response (using the DNS header's TC bit) is returned." The TC=1 answer
/// the LS makes of a backend answer over 4,096 bytes (`dns::cut_to_truncated`)
/// zeroes ARCOUNT: the client that sent an OPT gets none back (NSD and the
/// TS keep it in their own truncated answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_to_an_edns_query_keeps_an_opt() {
    let big = Fake::answering(big_answer).await;
    let ls = ls_fixed(&[("big", big.addr)]).await;
    let q = kit::query("big.example.", RecordType::TXT, Some(1232));
    let m = kit::udp(ls.addr, &q).await;
    ls.stop().await;
    assert!(m.metadata.truncation, "TC=1 expected");
    assert!(
        m.edns.is_some(),
        "the truncated answer to an EDNS query carries no OPT: {m:?}"
    );
}

/// One keep-alive HTTP/1.1 GET on `s`, reading the answer's head.
async fn get_keep_alive(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 8192];
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 ")
    );
    // The rest of the answer, if it came in pieces.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
        if n == 0 {
            return false;
        }
    }
    ok
}

/// One probe on a fresh connection; answered within `limit`?
async fn probe(addr: SocketAddr, limit: Duration) -> bool {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        raw.starts_with(b"HTTP/1.1 ").then_some(())
    };
    tokio::time::timeout(limit, ask)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// The metrics listener's eviction (68a1633) prefers to evict connections
/// never answered, oldest first, and says an attacker "would have to open
/// MAX_CONNECTIONS new connections" within a probe's lifetime to push it
/// out. But answered connections are protected: an attacker that holds 63
/// keep-alive connections it had answered once leaves a single unanswered
/// slot, so ONE new connection accepted while a probe waits for its answer
/// evicts the probe. Here: 63 answered keep-alive connections and a
/// connect loop (no bytes sent); probes of `/health` are reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_keep_alive_connections_do_not_make_probes_evictable_by_one_connect() {
    let cfg = kit::ls_config(&[("b", "127.0.0.1:9".parse().unwrap())]);
    let server = kit::TestMetrics::start_for(&cfg).await;
    let addr = server.addr;
    assert!(probe(addr, Duration::from_secs(5)).await);
    // 63 connections, each answered once, kept open.
    let mut held = Vec::new();
    for _ in 0..63 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(get_keep_alive(&mut s).await);
        held.push(s);
    }
    let stop = CancellationToken::new();
    let connects = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, connects) = (stop.clone(), connects.clone());
        tokio::spawn(async move {
            let mut open = VecDeque::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                if let Ok(s) = TcpStream::connect(addr).await {
                    open.push_back(s);
                    n += 1;
                    connects.store(n, Relaxed);
                }
                if open.len() > 200 {
                    open.pop_front();
                }
                // A modest rate: one connect every 2 ms.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        })
    };
    // The flood is on: the 64th slot taken, and taken again.
    let on = kit::poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(5),
        async || (connects.load(Relaxed) >= 2).then_some(()),
    )
    .await;
    assert!(on.is_some(), "the connect flood never connected");
    let start = Instant::now();
    let (mut asked, mut failed) = (0, 0);
    while start.elapsed() < Duration::from_secs(8) {
        asked += 1;
        if !probe(addr, Duration::from_secs(2)).await {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let connects = flood.await.unwrap();
    // The held connections are still open (answered ones are never evicted first).
    let mut alive = 0;
    for s in &mut held {
        if get_keep_alive(s).await {
            alive += 1;
        }
    }
    server.stop().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {asked} probes unanswered ({connects} attacker connects in {:?}, \
         {alive} of 63 held connections still served)",
        start.elapsed()
    );
}

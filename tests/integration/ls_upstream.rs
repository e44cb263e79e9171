//! The LS's upstream path under faults, over real
//! sockets: the fast path's socket rotation under upstream loss, error
//! answers without a question, names over 255 bytes, and backend answers
//! longer than a receive slot.
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::kit::Nsd;
use crate::kit::{self, TestLs, TestTs, ZoneDir};

const ZONE: &str = "$ORIGIN example.\n$TTL 300\n\
    @ SOA ns hostmaster 1 3600 600 86400 300\n\
    @ NS ns\n\
    ns A 192.0.2.1\n\
    www A 192.0.2.10\n";

/// A TS serving [`ZONE`] that drops `drop_ratio` of the queries it gets.
async fn ts(dir: &ZoneDir, drop_ratio: f64) -> TestTs {
    let mut s = kit::ts_settings(vec![dir.write("example.zone", ZONE)]);
    s.fault.drop_ratio = drop_ratio;
    kit::start_ts(s).await
}

/// An LS with one worker in front of `backends`.
async fn ls(backends: &[(&str, SocketAddr)], timeout_ms: u64) -> TestLs {
    let mut cfg = kit::ls_config(backends);
    cfg.workers = 1;
    cfg.timeout_ms = timeout_ms;
    kit::start_ls(cfg).await
}

/// A UDP socket on 127.0.0.1 with a 4 MiB receive buffer (as much as
/// `net.core.rmem_max` allows).
fn client_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(4 << 20);
    s.set_nonblocking(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    UdpSocket::from_std(s.into()).unwrap()
}

/// Datagrams the kernel dropped so far at the UDP socket bound to
/// `local` because its receive buffer was full (the `drops` column of
/// `/proc/net/udp`; 0 when the socket is not listed).
fn socket_drops(local: SocketAddr) -> u64 {
    let want = format!(":{:04X}", local.port());
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| {
            f.get(1)
                .is_some_and(|a| a.ends_with(&want) && a.starts_with("0100007F"))
        })
        .and_then(|f| f.last()?.parse().ok())
        .unwrap_or(0)
}

/// A plain query for `name` A with `id`, as bytes, optionally with an OPT of `size`.
fn raw_query(name: &str, size: Option<u16>) -> Vec<u8> {
    kit::query(name, RecordType::A, size).to_vec().unwrap()
}

/// 400,000 queries through one LS worker whose only backend drops
/// 1% of them. Each lost query keeps its upstream ID in use (in flight,
/// then late) for seconds; the fast path's sockets wear out after about
/// 20,000 queries each, all eight within ~160,000 queries. No query may be
/// answered SERVFAIL (a lost one is asked again, or gets the `on_timeout`
/// NXDOMAIN at its deadline), and positive answers never stop for as long
/// as the deadline. On a busy machine the LS may shed queries that waited
/// too long in its socket (by design, counted in `dnslb_shed_total`): those
/// get no answer, and must all be counted as shed, and few.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_thousand_queries_with_upstream_loss_never_servfail() {
    let _load = crate::kit::heavy().await;
    const QUERIES: u32 = 400_000;
    const WINDOW: u32 = 200;
    const TIMEOUT_MS: u64 = 1000;
    let dir = ZoneDir::new();
    let ts = ts(&dir, 0.01).await;
    let ls = ls(&[("ts", ts.addr)], TIMEOUT_MS).await;
    let query = raw_query("www.example.", None);
    // 200 answers in flight fill the default receive buffer (each costs
    // about 1 KiB of it): a client that falls behind on a busy machine loses
    // answers in its own socket, which says nothing of the LS. A larger
    // buffer (as dnsperf sets), and the kernel's count of this socket's
    // drops, keep the test about the LS.
    let sock = client_socket();
    sock.connect(ls.addr).await.unwrap();
    let local = sock.local_addr().unwrap();
    let started = Instant::now();
    let (mut sent, mut got) = (0u32, 0u32);
    let mut rcodes = [0u32; 16];
    let mut last_positive = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut buf = vec![0u8; 4096];
    let mut q = query.clone();
    let metrics = ls.balancer.metrics();
    let shed = || {
        metrics.shed_queue.load(Relaxed)
            + metrics.shed_inflight.load(Relaxed)
            + metrics.shed_socket()
    };
    let mut unanswered = 0u64;
    while got < QUERIES {
        while sent < QUERIES && sent - got < WINDOW {
            q[..2].copy_from_slice(&(sent as u16).to_be_bytes());
            sock.send(&q).await.unwrap();
            sent += 1;
        }
        let Ok(n) = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await else {
            // Nothing for three deadlines: what is still out must have been
            // shed (and counted so), not lost by the LS.
            let missing = u64::from(sent - got);
            let dropped = socket_drops(local);
            assert!(
                unanswered + missing <= shed() + dropped,
                "no answer for 3 s after {got} answers, {sent} sent, {unanswered} shed before, \
                 shed in all {}, {dropped} answers dropped by the client's full receive buffer: \
                 {rcodes:?}",
                shed()
            );
            unanswered += missing;
            got = sent;
            last_positive = Instant::now();
            continue;
        };
        let n = n.unwrap();
        assert!(n >= 12, "a runt answer");
        got += 1;
        rcodes[usize::from(buf[3] & 0x0f)] += 1;
        if buf[3] & 0x0f == 0 {
            let now = Instant::now();
            longest_gap = longest_gap.max(now - last_positive);
            last_positive = now;
        }
        if got % 50_000 == 0 {
            eprintln!(
                "{got} answers in {:?}: NOERROR {} NXDOMAIN {} SERVFAIL {}",
                started.elapsed(),
                rcodes[0],
                rcodes[3],
                rcodes[2]
            );
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{QUERIES} queries in {took:?}, rcodes {rcodes:?}, shed unanswered {unanswered}, \
         longest gap {longest_gap:?}"
    );
    assert_eq!(rcodes[2], 0, "SERVFAIL answers (rcodes {rcodes:?})");
    assert!(
        unanswered <= u64::from(QUERIES / 100),
        "{unanswered} queries shed unanswered: the test measured the machine, not the LS"
    );
    // About 1% lost upstream, each answered NXDOMAIN at its deadline.
    assert!(
        rcodes[0] >= QUERIES / 100 * 97,
        "NOERROR {} of {QUERIES}: {rcodes:?}",
        rcodes[0]
    );
    // The outage lasted seconds (3.3 s at a 500 ms deadline) and answered
    // SERVFAIL, which the first assertion catches; this bound only says
    // positive answers never stopped for long, with room for a busy machine
    // (a gap over one deadline was seen with two test runs sharing the cores).
    assert!(
        longest_gap < Duration::from_millis(3 * TIMEOUT_MS),
        "no positive answer for {longest_gap:?}"
    );
    let b = ls.balancer.state().backends[0].clone();
    assert!(b.is_up());
    ls.stop().await;
    ts.stop().await;
}

/// A query for `www.example. A` with two OPT records: malformed (RFC 6891
/// §6.1.1), which NSD and the TS answer FORMERR without the question.
fn two_opts(id: u16) -> Vec<u8> {
    let mut q = raw_query("www.example.", Some(1232));
    q[..2].copy_from_slice(&id.to_be_bytes());
    let opt = [0u8, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&opt);
    q[11] = 2; // ARCOUNT
    q
}

/// Sends 100 malformed queries (two OPTs) to an LS in front of `backend`,
/// one at a time: each answered FORMERR within a second, the backend never
/// charged a timeout nor marked down.
async fn malformed_queries_pass_as_formerr(backend: SocketAddr) {
    let ls = ls(&[("b", backend)], 1500).await;
    let b = ls.balancer.state().backends[0].clone();
    assert!(b.is_up(), "up after the first health round");
    for id in 0..100u16 {
        let started = Instant::now();
        let resp = kit::udp_raw_wait(ls.addr, &two_opts(id), Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("query {id}: no answer within 1 s"));
        let h = dnslb::dns::WireHeader::read(&resp).unwrap();
        assert_eq!(h.id, id);
        assert_eq!(h.rcode(), 1, "query {id}: FORMERR passed on");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(b.is_up(), "query {id}: backend marked down");
    }
    assert_eq!(b.stats.timeouts.load(Relaxed), 0, "timeouts charged");
    assert_eq!(b.stats.errors.load(Relaxed), 0, "errors charged");
    ls.stop().await;
}

/// A FORMERR without a question, from a TS as the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formerr_without_question_from_a_ts_is_passed_on_not_a_timeout() {
    let _load = crate::kit::timed().await;
    let dir = ZoneDir::new();
    let ts = ts(&dir, 0.0).await;
    malformed_queries_pass_as_formerr(ts.addr).await;
    ts.stop().await;
}

/// A FORMERR without a question, from NSD as the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formerr_without_question_from_nsd_is_passed_on_not_a_timeout() {
    let _load = crate::kit::timed().await;
    let mut nsd = Nsd::primary("example", ZONE);
    nsd.wait_ready("example").await;
    malformed_queries_pass_as_formerr(nsd.addr).await;
}

/// A query for an `A` record of a name `wire` bytes long in wire form.
fn long_name_query(wire: usize) -> (String, Vec<u8>) {
    // "example." is 9 bytes in wire form with the root; the rest in labels.
    let mut name = String::new();
    let mut left = wire - 9;
    while left > 0 {
        let len = (left - 1).min(63);
        let len = if left - (len + 1) == 1 { len - 1 } else { len };
        name.push_str(&"a".repeat(len));
        name.push('.');
        left -= len + 1;
    }
    name.push_str("example.");
    let mut q = vec![0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(q.len(), 12 + wire + 4);
    (name, q)
}

/// A 255-byte name is forwarded and answered (NXDOMAIN from the
/// TS); a 256-byte one is answered FORMERR by the LS itself, never
/// forwarded, over UDP and TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_over_255_bytes_is_formerr_from_the_ls_itself() {
    let dir = ZoneDir::new();
    let ts = ts(&dir, 0.0).await;
    let ls = ls(&[("ts", ts.addr)], 1500).await;
    let b = ls.balancer.state().backends[0].clone();
    for (wire, rcode, forwarded) in [(255, 3, 1), (256, 1, 0)] {
        let (name, q) = long_name_query(wire);
        for tcp in [false, true] {
            let before = b.stats.sent.load(Relaxed);
            let resp = if tcp {
                let mut s = tokio::net::TcpStream::connect(ls.addr).await.unwrap();
                kit::tcp_send(&mut s, &q).await;
                kit::tcp_recv(&mut s).await
            } else {
                kit::udp_raw(ls.addr, &q).await
            };
            let resp = resp.unwrap_or_else(|| panic!("{wire} bytes, tcp {tcp}: no answer"));
            let h = dnslb::dns::WireHeader::read(&resp).unwrap();
            assert_eq!(
                (h.id, h.rcode()),
                (0x4242, rcode),
                "{wire}-byte name {name}, tcp {tcp}"
            );
            let sent = b.stats.sent.load(Relaxed) - before;
            assert_eq!(sent, forwarded, "{wire} bytes, tcp {tcp}: forwarded {sent}");
        }
    }
    ls.stop().await;
    ts.stop().await;
}

/// TXT records of `big.example.` that make a 5,365-byte answer.
fn big_answer(query: &[u8]) -> Vec<u8> {
    kit::txt_answer(query, 25)
}

/// A backend answer longer than the LS's 4,096-byte receive slot.
/// UDP clients (asking for 8,192 or 1,232 bytes) get TC=1 with the
/// question; a TCP client gets the whole answer, asked again of the
/// backend over TCP; nobody gets SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_4096_bytes_is_tc_over_udp_and_whole_over_tcp() {
    // Every client query gets the 5,365-byte answer over UDP, whatever size
    // the query allows, and the same over TCP; probes an empty answer.
    let big = kit::Fake::udp_tcp(|q, _| kit::Reply::Now(big_answer(q)), big_answer).await;
    let probe = kit::query("big.example.", RecordType::TXT, Some(8192));
    assert_eq!(big_answer(&probe.to_vec().unwrap()).len(), 5365);
    let ls = ls(&[("big", big.addr)], 1500).await;
    for size in [8192u16, 1232] {
        let q = kit::query("big.example.", RecordType::TXT, Some(size));
        let m = kit::udp(ls.addr, &q).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "udp size {size}"
        );
        assert!(m.metadata.truncation, "udp size {size}: TC=1");
        assert_eq!(m.queries, q.queries, "udp size {size}: the question");
        assert!(m.answers.is_empty(), "udp size {size}");
    }
    let q = kit::query("big.example.", RecordType::TXT, Some(1232));
    let m = kit::tcp(ls.addr, &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "tcp");
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 25, "the whole answer over tcp");
    let b = ls.balancer.state().backends[0].clone();
    assert!(b.is_up());
    assert_eq!(b.stats.errors.load(Relaxed), 0);
    ls.stop().await;
}

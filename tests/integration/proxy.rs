//! PROXY protocol v2 into a TS (`proxy_from`): dnsdist in front with
//! `useProxyProtocol=true`, sending from 127.0.0.2, the one address the TS
//! lists. The TS then judges the client dnsdist names, not dnsdist: over
//! TCP its `axfr_allow` (127.0.0.77 only) lets that client transfer the
//! zone through dnsdist and refuses 127.0.0.88; over UDP its RRL exempts
//! 127.0.0.77 and limits 127.0.0.88. A header from an address not listed
//! is dropped (UDP) or closes the connection (TCP), a listed address's
//! query without one is dropped, and both are counted; anyone else's
//! plain queries are answered as before.
//!
//! The LS on both sides: with `proxy = true` it names each client to its
//! backend (a recording backend reads the header before each UDP query and
//! at the start of a connection of each TCP query's own, LOCAL before each
//! probe; a TS's RRL judges the LS's clients, directly and through
//! dnsdist); with `proxy_from` it takes dnsdist's header, and its ACL,
//! rules, ECS and onward header use the client named; forged, missing,
//! malformed, over-long and late headers are refused and counted.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use dnslb::dns::proxy_v2::Built;
use dnslb::server::Handler;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

use crate::kit::{
    Dnsdist, TestTs, free_ports, need, peers_fixture, poll_until_async, query_rd, start_ts,
    tcp_from, tcp_recv, ts_settings, udp_raw_from,
};

const LB: &str = "127.0.0.2";
const CLIENT: &str = "127.0.0.77";
const OTHER: &str = "127.0.0.88";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TS of example.test believing PROXY headers from [`LB`] only, whose
/// transfers and RRL exemption are for [`CLIENT`] only.
async fn proxied_ts() -> TestTs {
    let mut settings = ts_settings(vec![peers_fixture("example.test.zone")]);
    settings.proxy_from = vec![format!("{LB}/32").parse().unwrap()];
    settings.axfr_allow = vec![format!("{CLIENT}/32").parse().unwrap()];
    settings.rrl.responses_per_s = 1;
    settings.rrl.slip = 0;
    settings.rrl.ipv4_prefix = 32;
    settings.rrl.exempt = vec![format!("{CLIENT}/32").parse().unwrap()];
    start_ts(settings).await
}

fn counts(ts: &TestTs) -> (u64, u64) {
    let gate = ts.ts.proxy_gate().expect("proxy_from set");
    (
        gate.accepted.load(Ordering::Relaxed),
        gate.refused.load(Ordering::Relaxed),
    )
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

/// How many of `n` identical queries sent at once from `src` to `to` are
/// answered within a few seconds.
async fn answered_of(src: &str, to: SocketAddr, n: u16) -> usize {
    let sock = UdpSocket::bind((ip(src), 0)).await.unwrap();
    for id in 0..n {
        let mut q = query_rd("www.example.test.", RecordType::A, false);
        q.metadata.id = id;
        sock.send_to(&bytes(&q), to).await.unwrap();
    }
    let mut got = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
        if let Ok(m) = Message::from_vec(&buf[..len]) {
            got.insert(m.metadata.id);
        }
        if got.len() == usize::from(n) {
            break;
        }
    }
    got.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsdist_passes_its_clients_to_a_ts_that_judges_them_over_udp_and_tcp() {
    let Some([bin]) = need(
        "dnsdist_passes_its_clients_to_a_ts_that_judges_them_over_udp_and_tcp",
        ["dnsdist"],
    ) else {
        return;
    };
    let ts = proxied_ts().await;
    let [port, console] = free_ports(2).try_into().unwrap();
    let mut dd = Dnsdist::with_servers(&bin, port, console, &proxying_to("ts", ts.addr));
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let first = first_answer_through(&mut dd, &q).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert!(!first.answers.is_empty(), "{first:?}");
    assert!(counts(&ts).0 >= 1, "the header was taken");

    // TCP: the zone is transferred to the client axfr_allow lists, through dnsdist.
    let axfr = query_rd("example.test.", RecordType::AXFR, false);
    let allowed = tcp_from(ip(CLIENT), dd.addr, &axfr).await;
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    assert!(allowed.answers.len() > 1, "a transfer: {allowed:?}");
    let refused = tcp_from(ip(OTHER), dd.addr, &axfr).await;
    assert_eq!(
        refused.metadata.response_code,
        ResponseCode::Refused,
        "{refused:?}"
    );

    // UDP: RRL exempts the client it lists and limits the other.
    let exempt = answered_of(CLIENT, dd.addr, 20).await;
    let limited = answered_of(OTHER, dd.addr, 20).await;
    eprintln!("through dnsdist: {exempt}/20 answered to {CLIENT}, {limited}/20 to {OTHER}");
    assert_eq!(exempt, 20, "the exempt client was rate limited");
    assert!(
        limited < 10,
        "the other client was not rate limited: {limited}/20"
    );
    assert_eq!(counts(&ts).1, 0, "dnsdist's headers were all taken");
    drop(dd);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_from_unlisted_senders_and_listed_senders_without_one_are_refused() {
    let ts = proxied_ts().await;
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let wait = Duration::from_millis(500);
    let claim: SocketAddr = format!("{CLIENT}:5353").parse().unwrap();
    let mut forged = Built::proxy(claim, ts.addr, false).as_bytes().to_vec();
    forged.extend_from_slice(&q);

    udp_gate_holds(ts.addr, &q, &forged, wait, || counts(&ts)).await;
    // A datagram of a header longer than itself, from the listed sender.
    let short = &forged[..20];
    assert_eq!(udp_raw_from(ip(LB), ts.addr, short, wait).await, None);
    assert_eq!(counts(&ts), (1, 3));

    // TCP: a header from anyone else closes the connection unanswered.
    let axfr = bytes(&query_rd("example.test.", RecordType::AXFR, false));
    let header = Built::proxy(claim, ts.addr, true);
    for (src, head) in [("127.0.0.1", header.as_bytes()), (LB, &b""[..])] {
        let mut s = tcp_opened_with(src, ts.addr, head).await;
        crate::kit::tcp_send(&mut s, &axfr).await;
        assert_eq!(tcp_recv(&mut s).await, None, "from {src}, header {head:?}");
    }
    assert_eq!(counts(&ts), (1, 5));
    // The listed sender's header names the client the transfer is for.
    let mut s = tcp_opened_with(LB, ts.addr, header.as_bytes()).await;
    crate::kit::tcp_send(&mut s, &axfr).await;
    let m = Message::from_vec(&tcp_recv(&mut s).await.expect("a transfer")).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(counts(&ts), (2, 5));
    // Plain TCP from anyone else is served as before (and refused the transfer).
    let plain = tcp_from(
        ip("127.0.0.1"),
        ts.addr,
        &query_rd("example.test.", RecordType::AXFR, false),
    )
    .await;
    assert_eq!(plain.metadata.response_code, ResponseCode::Refused);
    ts.stop().await;
}

// --- PROXY protocol v2 on the LS: sent to `proxy = true` backends, taken
// from the front load balancers `proxy_from` lists.

/// What a recording backend was sent: over TCP or UDP, and the header.
#[derive(Debug, Clone, Copy)]
struct Seen {
    tcp: bool,
    header: dnslb::dns::proxy_v2::Header,
    /// The address of the query's ECS option (UDP), if it has one.
    ecs: Option<IpAddr>,
}

/// The address of the ECS option of the DNS message `q`, if any.
fn ecs_of(q: &[u8]) -> Option<IpAddr> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let m = Message::from_vec(q).ok()?;
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(s.addr()),
        _ => None,
    }
}

/// A backend that takes only queries behind a PROXY v2 header (a datagram
/// or a connection without one is dropped, and noted as `None`) and
/// records each header; it answers each query with an empty NOERROR.
struct Recording {
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<Seen>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl Recording {
    async fn start() -> Recording {
        use dnslb::dns::proxy_v2;
        let (udp, tcp, addr) = crate::kit::udp_and_tcp().await;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let on_udp = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                    let Ok((header, dns)) = proxy_v2::parse_datagram(&buf[..n]) else {
                        seen.lock().unwrap().push(None);
                        continue;
                    };
                    let ecs = ecs_of(dns);
                    seen.lock().unwrap().push(Some(Seen {
                        tcp: false,
                        header,
                        ecs,
                    }));
                    let _ = udp.send_to(&crate::kit::empty_answer(dns), from).await;
                }
            })
        };
        let on_tcp = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = tcp.accept().await {
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        use tokio::io::AsyncReadExt;
                        let mut buf = Vec::new();
                        let header = loop {
                            match proxy_v2::parse(&buf) {
                                Ok(Some((h, len))) => {
                                    buf.drain(..len);
                                    break h;
                                }
                                Ok(None) if s.read_buf(&mut buf).await.unwrap_or(0) > 0 => {}
                                _ => {
                                    seen.lock().unwrap().push(None);
                                    return;
                                }
                            }
                        };
                        seen.lock().unwrap().push(Some(Seen {
                            tcp: true,
                            header,
                            ecs: None,
                        }));
                        // The header's bytes read past are the query's start.
                        let mut rest = std::io::Cursor::new(buf).chain(s);
                        while let Some(q) = crate::kit::read_frame(&mut rest).await {
                            let answer = crate::kit::empty_answer(&q);
                            if !crate::kit::write_frame(rest.get_mut().1, &answer).await {
                                return;
                            }
                        }
                    });
                }
            })
        };
        Recording {
            addr,
            seen,
            tasks: vec![on_udp, on_tcp],
        }
    }

    fn seen(&self) -> Vec<Option<Seen>> {
        self.seen.lock().unwrap().clone()
    }
}

/// An LS config of one backend `name` at `addr` sent PROXY headers.
fn proxying_ls(addr: SocketAddr) -> dnslb::config::LsConfig {
    let mut cfg = crate::kit::ls_config(&[("b", addr)]);
    cfg.backend[0].proxy = true;
    cfg
}

fn ls_counts(ls: &crate::kit::TestLs) -> (u64, u64) {
    let gate = ls.balancer.proxy_gate().expect("proxy_from set");
    (
        gate.accepted.load(Ordering::Relaxed),
        gate.refused.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_names_its_client_to_a_proxy_backend_per_datagram_and_per_connection() {
    use dnslb::dns::proxy_v2::{Protocol, ProxyCommand};
    let backend = Recording::start().await;
    let ls = crate::kit::start_ls(proxying_ls(backend.addr)).await;
    // Health checks: a LOCAL header, the LS speaking for itself.
    let probes = backend.seen();
    assert!(
        probes
            .iter()
            .flatten()
            .any(|s| s.header.command == ProxyCommand::Local),
        "no LOCAL probe: {probes:?}"
    );

    // UDP: the client's address and port, and the LS's address it reached.
    let sock = UdpSocket::bind((ip(CLIENT), 0)).await.unwrap();
    let client = sock.local_addr().unwrap();
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    sock.send_to(&q, ls.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer through the LS")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    let udp_seen: Vec<Seen> = backend
        .seen()
        .into_iter()
        .flatten()
        .filter(|s| s.header.command == ProxyCommand::Proxy)
        .collect();
    assert_eq!(udp_seen.len(), 1, "{udp_seen:?}");
    let s = udp_seen[0];
    assert!(!s.tcp);
    assert_eq!(s.header.protocol, Protocol::Datagram);
    assert_eq!(s.header.addrs, Some((client, ls.addr)));

    // TCP (an ANY goes to the backend over TCP): the queries of one client
    // connection on one backend connection, opened by that client's header
    // as a stream (as dnsdist keeps one); another client connection, even
    // of the same address, on a backend connection of its own.
    let mut tcp_clients = Vec::new();
    for _ in 0..2 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(ip(OTHER), 0)).unwrap();
        let mut conn = sock.connect(ls.addr).await.unwrap();
        tcp_clients.push(conn.local_addr().unwrap());
        for _ in 0..3 {
            let any = bytes(&query_rd("www.example.test.", RecordType::ANY, false));
            crate::kit::tcp_send(&mut conn, &any).await;
            let m = Message::from_vec(&tcp_recv(&mut conn).await.expect("an answer")).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        }
    }
    let tcp_seen: Vec<Seen> = backend
        .seen()
        .into_iter()
        .flatten()
        .filter(|s| s.tcp)
        .collect();
    assert_eq!(
        tcp_seen.len(),
        2,
        "one backend connection a client connection: {tcp_seen:?}"
    );
    for (s, client) in tcp_seen.iter().zip(&tcp_clients) {
        assert_eq!(s.header.command, ProxyCommand::Proxy);
        assert_eq!(s.header.protocol, Protocol::Stream);
        assert_eq!(s.header.addrs, Some((*client, ls.addr)));
    }
    assert!(
        backend.seen().iter().all(Option::is_some),
        "something reached the backend without a header: {:?}",
        backend.seen()
    );
    ls.stop().await;
}

/// A TS believing PROXY headers from the LS's address (127.0.0.1),
/// whose RRL exempts [`CLIENT`] only.
async fn ts_behind_an_ls() -> TestTs {
    let mut settings = ts_settings(vec![peers_fixture("example.test.zone")]);
    settings.proxy_from = vec!["127.0.0.1/32".parse().unwrap()];
    settings.rrl.responses_per_s = 1;
    settings.rrl.slip = 0;
    settings.rrl.ipv4_prefix = 32;
    settings.rrl.exempt = vec![format!("{CLIENT}/32").parse().unwrap()];
    start_ts(settings).await
}

/// How many of `n` queries sent at once from `src` to `to` get a
/// NOERROR answer with records within a few seconds (an LS's SERVFAIL at
/// its deadline does not count).
async fn answered_noerror(src: &str, to: SocketAddr, n: u16) -> usize {
    let sock = UdpSocket::bind((ip(src), 0)).await.unwrap();
    for id in 0..n {
        let mut q = query_rd("www.example.test.", RecordType::A, false);
        q.metadata.id = id;
        sock.send_to(&bytes(&q), to).await.unwrap();
    }
    let mut got = std::collections::BTreeSet::new();
    let mut answered = 0;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
        if let Ok(m) = Message::from_vec(&buf[..len])
            && got.insert(m.metadata.id)
            && m.metadata.response_code == ResponseCode::NoError
            && !m.answers.is_empty()
        {
            answered += 1;
        }
        if got.len() == usize::from(n) {
            break;
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_behind_an_ls_with_proxy_judges_the_lss_clients_over_udp_and_tcp() {
    let ts = ts_behind_an_ls().await;
    let mut cfg = proxying_ls(ts.addr);
    cfg.timeout_ms = 800;
    let ls = crate::kit::start_ls(cfg).await;
    // UDP: the TS's RRL exempts the client the LS names, limits the other.
    let exempt = answered_noerror(CLIENT, ls.addr, 20).await;
    let limited = answered_noerror(OTHER, ls.addr, 20).await;
    eprintln!("through the LS: {exempt}/20 answered to {CLIENT}, {limited}/20 to {OTHER}");
    assert_eq!(exempt, 20, "the exempt client was rate limited");
    assert!(
        limited < 10,
        "the other client was not rate limited: {limited}/20"
    );
    // TCP: the TS closes a connection from the LS without a header; the
    // ANY the LS asks over TCP is answered.
    let (before, refused) = counts(&ts);
    assert_eq!(refused, 0, "every header the LS sent was taken");
    let any = query_rd("www.example.test.", RecordType::ANY, false);
    let m = tcp_from(ip(CLIENT), ls.addr, &any).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(
        counts(&ts).0 > before,
        "the TCP connection's header was taken"
    );
    assert_eq!(counts(&ts).1, 0);
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsdist_in_front_of_the_ls_passes_its_clients_to_the_lss_acl_over_udp_and_tcp() {
    let Some([bin]) = need(
        "dnsdist_in_front_of_the_ls_passes_its_clients_to_the_lss_acl_over_udp_and_tcp",
        ["dnsdist"],
    ) else {
        return;
    };
    let ts = start_ts(ts_settings(vec![peers_fixture("example.test.zone")])).await;
    let mut cfg = crate::kit::ls_config(&[("ts", ts.addr)]);
    cfg.proxy_from = vec![format!("{LB}/32").parse().unwrap()];
    // Only the client dnsdist names may ask; dnsdist itself is not listed.
    cfg.allow = vec![format!("{CLIENT}/32").parse().unwrap()];
    let ls = crate::kit::start_ls(cfg).await;
    let [port, console] = free_ports(2).try_into().unwrap();
    let mut dd = Dnsdist::with_servers(&bin, port, console, &proxying_to("ls", ls.addr));
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let first = first_answer_through(&mut dd, &q).await;
    assert_eq!(
        first.metadata.response_code,
        ResponseCode::NoError,
        "{first:?}"
    );
    assert!(!first.answers.is_empty(), "{first:?}");
    let other = udp_raw_from(ip(OTHER), dd.addr, &q, Duration::from_secs(3))
        .await
        .expect("an answer to the other client");
    let other = Message::from_vec(&other).unwrap();
    assert_eq!(
        other.metadata.response_code,
        ResponseCode::Refused,
        "the LS's ACL"
    );

    // TCP: dnsdist opens its connection to the LS with the client's header.
    let a = query_rd("www.example.test.", RecordType::A, false);
    let allowed = tcp_from(ip(CLIENT), dd.addr, &a).await;
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    assert!(!allowed.answers.is_empty(), "{allowed:?}");
    let refused = tcp_from(ip(OTHER), dd.addr, &a).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert_eq!(ls_counts(&ls).1, 0, "dnsdist's headers were all taken");
    assert!(ls_counts(&ls).0 >= 4);
    drop(dd);
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_drops_forged_missing_malformed_and_late_headers() {
    let ts = start_ts(ts_settings(vec![peers_fixture("example.test.zone")])).await;
    let mut cfg = crate::kit::ls_config(&[("ts", ts.addr)]);
    cfg.proxy_from = vec![format!("{LB}/32").parse().unwrap()];
    let ls = crate::kit::start_ls(cfg).await;
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let wait = Duration::from_millis(700);
    let claim: SocketAddr = format!("{CLIENT}:5353").parse().unwrap();
    let mut proxied = Built::proxy(claim, ls.addr, false).as_bytes().to_vec();
    proxied.extend_from_slice(&q);

    udp_gate_holds(ls.addr, &q, &proxied, wait, || ls_counts(&ls)).await;
    // A TLV running past the header's end; a header longer than the datagram.
    let mut bad_tlv = proxied[..28].to_vec();
    bad_tlv[15] += 3;
    bad_tlv.extend_from_slice(&[0x04, 0xea, 0x60]);
    bad_tlv.extend_from_slice(&q);
    assert_eq!(udp_raw_from(ip(LB), ls.addr, &bad_tlv, wait).await, None);
    assert_eq!(
        udp_raw_from(ip(LB), ls.addr, &proxied[..20], wait).await,
        None
    );
    assert_eq!(ls_counts(&ls), (1, 4));

    // TCP: a header from anyone else closes the connection; so does a
    // listed sender's missing one, or one over the length limit.
    let header = Built::proxy(claim, ls.addr, true);
    let mut too_long = header.as_bytes()[..16].to_vec();
    too_long[14..16].copy_from_slice(&600u16.to_be_bytes());
    let cases: [(&str, &[u8]); 3] = [("127.0.0.1", header.as_bytes()), (LB, b""), (LB, &too_long)];
    for (src, head) in cases {
        let mut s = tcp_opened_with(src, ls.addr, head).await;
        crate::kit::tcp_send(&mut s, &q).await;
        assert_eq!(tcp_recv(&mut s).await, None, "from {src}, header {head:?}");
    }
    assert_eq!(ls_counts(&ls), (1, 7));
    // A listed sender's header that stops halfway: closed within ~2 s.
    let mut s = tcp_opened_with(LB, ls.addr, &header.as_bytes()[..5]).await;
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(8), async {
        use tokio::io::AsyncReadExt;
        s.read(&mut byte).await
    })
    .await
    .expect("the connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert_eq!(ls_counts(&ls), (1, 8));
    // The listed sender's whole header: the client it names is served.
    let mut s = tcp_opened_with(LB, ls.addr, header.as_bytes()).await;
    crate::kit::tcp_send(&mut s, &q).await;
    let m = Message::from_vec(&tcp_recv(&mut s).await.expect("an answer")).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ls_counts(&ls), (2, 8));
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lss_client_reaches_a_ts_through_dnsdist_two_proxy_hops_over_udp_and_tcp() {
    let Some([bin]) = need(
        "the_lss_client_reaches_a_ts_through_dnsdist_two_proxy_hops_over_udp_and_tcp",
        ["dnsdist"],
    ) else {
        return;
    };
    // The TS believes dnsdist (from LB) and exempts CLIENT from its RRL.
    let ts = proxied_ts().await;
    let [port, console] = free_ports(2).try_into().unwrap();
    // dnsdist believes the LS's headers (it sends from 127.0.0.1) and
    // passes the client they name on to the TS.
    let server = format!(
        "setProxyProtocolACL({{\"127.0.0.1/32\"}})\n\
         newServer{{address=\"{}\", name=\"ts\", source=\"{LB}\", useProxyProtocol=true}}:setUp()\n",
        ts.addr
    );
    let mut dd = Dnsdist::with_servers(&bin, port, console, &server);
    let mut cfg = proxying_ls(dd.addr);
    cfg.timeout_ms = 800;
    let ls = crate::kit::start_ls(cfg).await;
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let first = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            dd.proc.assert_running();
            let got = udp_raw_from(ip(CLIENT), ls.addr, &q, Duration::from_millis(900)).await?;
            let m = Message::from_vec(&got).ok()?;
            (m.metadata.response_code == ResponseCode::NoError).then_some(m)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no answer through the LS and dnsdist:\n{}",
            dd.proc.stderr_now()
        )
    });
    assert!(!first.answers.is_empty(), "{first:?}");
    // UDP: the TS's RRL judges the LS's clients, two hops back.
    let exempt = answered_noerror(CLIENT, ls.addr, 20).await;
    let limited = answered_noerror(OTHER, ls.addr, 20).await;
    eprintln!("LS -> dnsdist -> TS: {exempt}/20 answered to {CLIENT}, {limited}/20 to {OTHER}");
    assert_eq!(exempt, 20, "the exempt client was rate limited");
    assert!(
        limited < 10,
        "the other client was not rate limited: {limited}/20"
    );
    // TCP (an ANY goes over TCP): dnsdist took the LS's header, the TS dnsdist's.
    let before = counts(&ts).0;
    let any = query_rd("www.example.test.", RecordType::ANY, false);
    let m = tcp_from(ip(CLIENT), ls.addr, &any).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(counts(&ts).0 > before, "no header reached the TS over TCP");
    assert_eq!(counts(&ts).1, 0, "dnsdist's headers were all taken");
    ls.stop().await;
    drop(dd);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_proxy_from_the_lss_rules_ecs_and_onward_header_use_the_named_client() {
    use dnslb::dns::proxy_v2::ProxyCommand;
    let backend = Recording::start().await;
    let text = format!(
        "[ls]\n\
         proxy_from = [\"{LB}/32\"]\n\
         ecs = \"add\"\n\
         [[ls.rule]]\n\
         name = \"no-88\"\n\
         match = {{ client = [\"127.0.0.88/32\"] }}\n\
         action = \"refuse\"\n\
         [[ls.backend]]\n\
         name = \"b\"\n\
         addr = \"{}\"\n\
         proxy = true\n",
        backend.addr
    );
    let path = std::path::Path::new("proxy-rules.toml");
    let cfg = dnslb::config::Config::from_toml(&text, path).unwrap();
    let ls = crate::kit::start_ls(cfg.ls.unwrap()).await;
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let wait = Duration::from_secs(3);
    let ask = async |client: SocketAddr| {
        let mut d = Built::proxy(client, ls.addr, false).as_bytes().to_vec();
        d.extend_from_slice(&q);
        let got = udp_raw_from(ip(LB), ls.addr, &d, wait)
            .await
            .expect("an answer");
        Message::from_vec(&got).unwrap().metadata.response_code
    };
    // The rule refuses the client the header names, not the balancer.
    let refused: SocketAddr = "127.0.0.88:4000".parse().unwrap();
    assert_eq!(ask(refused).await, ResponseCode::Refused);
    // Another client is forwarded: ECS from its address, and the header
    // sent on names it.
    let named: SocketAddr = "127.0.5.77:4001".parse().unwrap();
    assert_eq!(ask(named).await, ResponseCode::NoError);
    let seen: Vec<Seen> = (backend.seen().into_iter().flatten())
        .filter(|s| s.header.command == ProxyCommand::Proxy)
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header.addrs, Some((named, ls.addr)));
    assert_eq!(
        seen[0].ecs,
        Some(ip("127.0.5.0")),
        "ECS of the named client's /24"
    );
    assert_eq!(ls_counts(&ls), (2, 0));
    ls.stop().await;
}

/// Over UDP, a server at `addr` believing [`LB`]'s headers only: anyone
/// else's plain query `q` is answered and its `forged` header (a header,
/// then `q`) dropped; the listed sender's query without a header is
/// dropped, with one answered; `counts` (taken, refused) follow.
async fn udp_gate_holds(
    addr: SocketAddr,
    q: &[u8],
    forged: &[u8],
    wait: Duration,
    counts: impl Fn() -> (u64, u64),
) {
    let other = ip("127.0.0.1");
    assert!(udp_raw_from(other, addr, q, wait).await.is_some());
    assert_eq!(udp_raw_from(other, addr, forged, wait).await, None);
    assert_eq!(counts(), (0, 1));
    assert_eq!(udp_raw_from(ip(LB), addr, q, wait).await, None);
    assert_eq!(counts(), (0, 2));
    assert!(udp_raw_from(ip(LB), addr, forged, wait).await.is_some());
    assert_eq!(counts(), (1, 2));
}

/// A TCP connection from `src` to `addr` that starts with `head`.
async fn tcp_opened_with(src: &str, addr: SocketAddr, head: &[u8]) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(ip(src), 0)).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s
}

/// dnsdist's line for one backend `name` at `addr`, sent from [`LB`] with
/// a PROXY v2 header (`useProxyProtocol`).
fn proxying_to(name: &str, addr: SocketAddr) -> String {
    format!(
        "newServer{{address=\"{addr}\", name=\"{name}\", source=\"{LB}\", useProxyProtocol=true}}:setUp()\n"
    )
}

/// The first answer [`CLIENT`]'s query `q` gets through `dd` (asked until
/// dnsdist has started and marked its backend up).
async fn first_answer_through(dd: &mut Dnsdist, q: &[u8]) -> Message {
    let first = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            dd.proc.assert_running();
            udp_raw_from(ip(CLIENT), dd.addr, q, Duration::from_millis(300)).await
        },
    )
    .await
    .unwrap_or_else(|| panic!("no answer through dnsdist:\n{}", dd.proc.stderr_now()));
    Message::from_vec(&first).unwrap()
}

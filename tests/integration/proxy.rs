//! PROXY protocol v2 into a TS (`proxy_from`): dnsdist in front with
//! `useProxyProtocol=true`, sending from 127.0.0.2, the one address the TS
//! lists. The TS then judges the client dnsdist names, not dnsdist: over
//! TCP its `axfr_allow` (127.0.0.77 only) lets that client transfer the
//! zone through dnsdist and refuses 127.0.0.88; over UDP its RRL exempts
//! 127.0.0.77 and limits 127.0.0.88. A header from an address not listed
//! is dropped (UDP) or closes the connection (TCP), a listed address's
//! query without one is dropped, and both are counted; anyone else's
//! plain queries are answered as before.
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
    let server = format!(
        "newServer{{address=\"{}\", name=\"ts\", source=\"{LB}\", useProxyProtocol=true}}:setUp()\n",
        ts.addr
    );
    let mut dd = Dnsdist::with_servers(&bin, port, console, &server);
    let q = bytes(&query_rd("www.example.test.", RecordType::A, false));
    let first = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            dd.proc.assert_running();
            udp_raw_from(ip(CLIENT), dd.addr, &q, Duration::from_millis(300)).await
        },
    )
    .await
    .unwrap_or_else(|| panic!("no answer through dnsdist:\n{}", dd.proc.stderr_now()));
    let first = Message::from_vec(&first).unwrap();
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

    // Anyone else's plain query is answered; its forged header is dropped.
    assert!(
        udp_raw_from(ip("127.0.0.1"), ts.addr, &q, wait)
            .await
            .is_some()
    );
    assert_eq!(
        udp_raw_from(ip("127.0.0.1"), ts.addr, &forged, wait).await,
        None
    );
    assert_eq!(counts(&ts), (0, 1));
    // The listed sender: without a header, dropped; with one, answered.
    assert_eq!(udp_raw_from(ip(LB), ts.addr, &q, wait).await, None);
    assert_eq!(counts(&ts), (0, 2));
    assert!(udp_raw_from(ip(LB), ts.addr, &forged, wait).await.is_some());
    assert_eq!(counts(&ts), (1, 2));
    // A datagram of a header longer than itself, from the listed sender.
    let short = &forged[..20];
    assert_eq!(udp_raw_from(ip(LB), ts.addr, short, wait).await, None);
    assert_eq!(counts(&ts), (1, 3));

    // TCP: a header from anyone else closes the connection unanswered.
    let axfr = bytes(&query_rd("example.test.", RecordType::AXFR, false));
    let header = Built::proxy(claim, ts.addr, true);
    for (src, with_header) in [("127.0.0.1", true), (LB, false)] {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(ip(src), 0)).unwrap();
        let mut s = sock.connect(ts.addr).await.unwrap();
        let mut out = Vec::new();
        if with_header {
            out.extend_from_slice(header.as_bytes());
        }
        out.extend_from_slice(&u16::try_from(axfr.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&axfr);
        s.write_all(&out).await.unwrap();
        assert_eq!(
            tcp_recv(&mut s).await,
            None,
            "from {src}, header {with_header}"
        );
    }
    assert_eq!(counts(&ts), (1, 5));
    // The listed sender's header names the client the transfer is for.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(ip(LB), 0)).unwrap();
    let mut s = sock.connect(ts.addr).await.unwrap();
    s.write_all(header.as_bytes()).await.unwrap();
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

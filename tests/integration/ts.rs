//! The table server over real sockets: how it answers (docs/CONFIG.md–§4), what it
//! refuses, what it drops, and that nothing a client sends wedges it.
//!
//! Where a test must show that a packet got *no* answer, it sends the packet
//! and then a probe query from the same UDP socket to a server with one UDP
//! worker: the server handles one socket's datagrams in order, so an answer
//! to the first packet would arrive before the probe's. No sleeping.
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use dnslb::config::{Fault, OnMiss};
use dnslb::server::ServerOptions;
use dnslb::ts::TsSettings;

use crate::kit::closed_within;
use crate::kit::{
    ANSWER_WAIT, TestTs, ZoneDir, a_addrs_sorted, delay_all, parse_exposition, query, start_ts,
    start_ts_with, tcp, tcp_recv, tcp_send, ts_settings, udp, udp_raw, value,
};

/// A TTL no default uses, to prove the configured one is served.
const TTL: u32 = 1234;

/// The PROJ table most tests serve (origin: the root).
const TABLE: &str = "\
# test table
ts1.example             -                     NS
www.google.com          8.6.4.2               A
www.google.com          8.6.4.3               A
www.google.com          8.6.4.4               A
WwW.ExPress.CO.Uk       111.32.4.1            A
v6.example.com          2001:db8::1           AAAA
v6.example.com          2001:db8::2           AAAA
info.example.com        \"hello, spaced world\" TXT
alias.example.com       www.google.com        CNAME
away.example.com        www.elsewhere.net     CNAME
";

/// The answers of the probe query `www.google.com A`.
const GOOGLE: [Ipv4Addr; 3] = [
    Ipv4Addr::new(8, 6, 4, 2),
    Ipv4Addr::new(8, 6, 4, 3),
    Ipv4Addr::new(8, 6, 4, 4),
];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A running TS and the folder of its zone files (kept alive with it).
struct Fixture {
    ts: TestTs,
    _dir: ZoneDir,
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.ts.addr
    }
}

/// Settings for [`TABLE`] plus `extra` lines, with TTL [`TTL`].
fn table_settings(extra: &str) -> (ZoneDir, TsSettings) {
    let dir = ZoneDir::new();
    let path = dir.write("table.txt", &format!("{TABLE}{extra}"));
    let mut s = ts_settings(vec![path]);
    s.ttl = TTL;
    (dir, s)
}

/// One UDP worker: a socket's datagrams are handled strictly in order.
fn one_worker() -> ServerOptions {
    ServerOptions {
        workers: 1,
        ..ServerOptions::default()
    }
}

async fn start_with(dir: ZoneDir, s: TsSettings, opts: ServerOptions) -> Fixture {
    Fixture {
        ts: start_ts_with(s, opts).await,
        _dir: dir,
    }
}

/// [`TABLE`] (plus `extra`) on a TS with one UDP worker.
async fn table_ts(extra: &str) -> Fixture {
    let (dir, s) = table_settings(extra);
    start_with(dir, s, one_worker()).await
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn with_id(mut m: Message, id: u16) -> Message {
    m.metadata.id = id;
    m
}

/// A query for `name`/`qtype` of class `class`.
fn query_class(name_: &str, qtype: RecordType, class: DNSClass) -> Message {
    let mut q = Query::query(name(name_), qtype);
    q.set_query_class(class);
    let mut m = Message::query();
    m.add_query(q);
    m
}

/// The header of a raw message, read by hand (works on anything hickory would refuse).
#[derive(Debug, Clone, Copy)]
struct Hdr {
    id: u16,
    qr: bool,
    opcode: u8,
    aa: bool,
    tc: bool,
    rd: bool,
    ra: bool,
    rcode: u8,
    qd: u16,
    an: u16,
    ns: u16,
}

fn hdr(b: &[u8]) -> Hdr {
    assert!(b.len() >= 12, "short message: {b:?}");
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Hdr {
        id: u16_at(0),
        qr: b[2] & 0x80 != 0,
        opcode: (b[2] >> 3) & 0x0f,
        aa: b[2] & 0x04 != 0,
        tc: b[2] & 0x02 != 0,
        rd: b[2] & 0x01 != 0,
        ra: b[3] & 0x80 != 0,
        rcode: b[3] & 0x0f,
        qd: u16_at(4),
        an: u16_at(6),
        ns: u16_at(8),
    }
}

/// Sets the opcode bits of a raw message.
fn set_opcode(b: &mut [u8], opcode: u8) {
    b[2] = (b[2] & !0x78) | ((opcode & 0x0f) << 3);
}

/// Offset just past the question of a message whose question name has no pointer.
fn question_end(b: &[u8]) -> usize {
    let mut i = 12;
    while b[i] != 0 {
        assert!(b[i] < 0x40, "pointer in question");
        i += usize::from(b[i]) + 1;
    }
    i + 1 + 4
}

/// The one SOA of a negative answer's authority section, with its owner and TTL.
fn negative_soa(m: &Message) -> (&Name, u32, &hickory_proto::rr::rdata::SOA) {
    assert_eq!(m.authorities.len(), 1, "authority: {:?}", m.authorities);
    let r = &m.authorities[0];
    assert_eq!(r.dns_class, DNSClass::IN);
    match &r.data {
        RData::SOA(soa) => (&r.name, r.ttl, soa),
        other => panic!("authority is not an SOA: {other:?}"),
    }
}

/// Checks what every answer to `q` must have: ID, QR, opcode, RD copied, RA=0,
/// and the question echoed.
fn assert_answers(q: &Message, r: &Message) {
    assert_eq!(r.id, q.id, "id");
    assert_eq!(r.message_type, MessageType::Response);
    assert_eq!(r.op_code, q.op_code);
    assert_eq!(r.recursion_desired, q.recursion_desired, "RD copied");
    assert!(
        !r.recursion_available,
        "RA must be 0 on an authoritative server"
    );
    assert_eq!(r.queries.len(), 1);
    assert!(r.queries[0].name().eq_case(q.queries[0].name()));
    assert_eq!(r.queries[0].query_type(), q.queries[0].query_type());
    assert_eq!(r.queries[0].query_class(), q.queries[0].query_class());
}

/// Asserts `m` is the full answer to `www.google.com A` (with the given TTL).
fn assert_google(q: &Message, m: &Message, ttl: u32) {
    assert_answers(q, m);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative);
    assert!(!m.truncation);
    assert_eq!(a_addrs_sorted(m), GOOGLE);
    for r in &m.answers {
        assert_eq!(r.name, name("www.google.com."));
        assert_eq!(r.dns_class, DNSClass::IN);
        assert_eq!(r.ttl, ttl);
    }
    assert!(m.authorities.is_empty(), "{:?}", m.authorities);
    assert!(m.additionals.is_empty(), "{:?}", m.additionals);
}

/// A UDP client socket connected to one server.
struct Client {
    sock: UdpSocket,
}

impl Client {
    async fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(server).await.unwrap();
        Client { sock }
    }

    async fn send(&self, b: &[u8]) {
        self.sock.send(b).await.unwrap();
    }

    async fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_535];
        match tokio::time::timeout(wait, self.sock.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    async fn ask(&self, m: &Message) -> Message {
        self.send(&m.to_vec().unwrap()).await;
        let raw = self.recv(ANSWER_WAIT).await.expect("an answer over udp");
        Message::from_vec(&raw).unwrap()
    }
}

fn probe(id: u16) -> Message {
    with_id(query("www.google.com.", RecordType::A, None), id)
}

fn is_probe_answer(raw: &[u8], id: u16) -> bool {
    Message::from_vec(raw).is_ok_and(|m| {
        m.id == id
            && m.message_type == MessageType::Response
            && m.queries.len() == 1
            && m.queries[0].name().eq_case(&name("www.google.com."))
            && m.queries[0].query_type() == RecordType::A
    })
}

/// Sends `bad`, then a probe; returns every datagram that came before the
/// probe's answer (the answers to `bad`), after checking that the probe got a
/// right answer (the server is alive and well).
async fn replies_before_probe(c: &Client, bad: &[u8], probe_id: u16) -> Vec<Vec<u8>> {
    c.send(bad).await;
    let p = probe(probe_id);
    c.send(&p.to_vec().unwrap()).await;
    let mut before = Vec::new();
    loop {
        let raw = c
            .recv(ANSWER_WAIT)
            .await
            .unwrap_or_else(|| panic!("probe unanswered after {bad:02x?}: server dead?"));
        if is_probe_answer(&raw, probe_id) {
            assert_google(&p, &Message::from_vec(&raw).unwrap(), TTL);
            return before;
        }
        before.push(raw);
        assert!(before.len() < 4, "too many answers to one packet");
    }
}

/// A fresh UDP query for the probe name answers correctly.
async fn assert_alive(addr: SocketAddr) {
    let q = probe(0x7777);
    let m = udp(addr, &q).await;
    assert_google(&q, &m, TTL);
}

/// Asks `q` over TCP or UDP.
async fn ask_via(addr: SocketAddr, q: &Message, via_tcp: bool) -> Message {
    if via_tcp {
        tcp(addr, q).await
    } else {
        udp(addr, q).await
    }
}

fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&u16::try_from(m.len()).unwrap().to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

// ---------------------------------------------------------------------------
// Positive answers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hit_has_records_aa_configured_ttl_and_rd_copied() {
    let f = table_ts("").await;
    for rd in [false, true] {
        let mut q = with_id(query("www.google.com.", RecordType::A, None), 0x1000);
        q.metadata.recursion_desired = rd;
        let m = udp(f.addr(), &q).await;
        assert_google(&q, &m, TTL);
        assert!(m.edns.is_none(), "no OPT without one in the query");
        let m = tcp(f.addr(), &q).await;
        assert_google(&q, &m, TTL);
        assert!(m.edns.is_none());
    }
}

#[tokio::test]
async fn several_lines_make_one_rrset_and_txt_aaaa_are_served() {
    let f = table_ts("").await;
    // AAAA: two lines, one RRset.
    let q = query("v6.example.com.", RecordType::AAAA, None);
    let m = udp(f.addr(), &q).await;
    assert_answers(&q, &m);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative);
    let mut v6: Vec<Ipv6Addr> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::AAAA(a) => a.0,
            other => panic!("{other:?}"),
        })
        .collect();
    v6.sort();
    assert_eq!(
        v6,
        vec![
            "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            "2001:db8::2".parse().unwrap()
        ]
    );
    assert!(m.answers.iter().all(|r| r.ttl == TTL));
    // TXT with spaces: one character-string, spaces kept.
    let q = query("info.example.com.", RecordType::TXT, None);
    let m = udp(f.addr(), &q).await;
    assert_answers(&q, &m);
    assert_eq!(m.answers.len(), 1);
    match &m.answers[0].data {
        RData::TXT(t) => {
            let strings: Vec<&[u8]> = t.txt_data.iter().map(|s| &s[..]).collect();
            assert_eq!(strings, vec![&b"hello, spaced world"[..]]);
        }
        other => panic!("{other:?}"),
    }
    // A table name written in mixed case matches any case.
    let q = query("www.express.co.uk.", RecordType::A, None);
    let m = udp(f.addr(), &q).await;
    assert_eq!(a_addrs_sorted(&m), vec![Ipv4Addr::new(111, 32, 4, 1)]);
}

#[tokio::test]
async fn cname_brings_its_in_table_target_and_cname_query_only_the_cname() {
    let f = table_ts("").await;
    for via_tcp in [false, true] {
        let q = query("alias.example.com.", RecordType::A, None);
        let m = ask_via(f.addr(), &q, via_tcp).await;
        assert_answers(&q, &m);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert_eq!(m.answers.len(), 4, "{:?}", m.answers);
        let first = &m.answers[0];
        assert_eq!(first.name, name("alias.example.com."));
        assert_eq!(first.ttl, TTL);
        assert_eq!(
            first.data,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(name("www.google.com.")))
        );
        assert_eq!(a_addrs_sorted(&m), GOOGLE);
        assert!(
            m.answers[1..]
                .iter()
                .all(|r| r.name == name("www.google.com.") && r.ttl == TTL)
        );
        assert!(m.authorities.is_empty());
    }
    // Asking for the CNAME itself: the CNAME only.
    let q = query("alias.example.com.", RecordType::CNAME, None);
    let m = udp(f.addr(), &q).await;
    assert_answers(&q, &m);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    // A target the table does not hold (the zone is the root, so the target
    // is in it): the CNAME, with NXDOMAIN for the target (RFC 6604).
    let q = query("away.example.com.", RecordType::A, None);
    let m = udp(f.addr(), &q).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    negative_soa(&m);
}

// ---------------------------------------------------------------------------
// Negative answers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn nodata_nxdomain_and_empty_non_terminal_carry_the_soa() {
    let f = table_ts("").await;
    let addr = f.addr();
    for via_tcp in [false, true] {
        let ask = |q: Message| async move {
            let m = ask_via(addr, &q, via_tcp).await;
            assert_answers(&q, &m);
            assert!(m.authoritative, "negative answers are authoritative");
            assert!(m.answers.is_empty(), "{:?}", m.answers);
            assert!(m.additionals.is_empty());
            m
        };
        // NODATA: the name holds A, not AAAA.
        let m = ask(query("www.google.com.", RecordType::AAAA, None)).await;
        assert_eq!(m.response_code, ResponseCode::NoError);
        let (owner, ttl, soa) = negative_soa(&m);
        assert!(owner.is_root(), "SOA owner is the origin");
        assert_eq!(ttl, TTL.min(soa.minimum));
        assert_eq!(soa.minimum, TTL);
        assert_eq!(soa.mname, name("ts1.example."));
        assert!(soa.serial > 0 && soa.refresh > 0 && soa.retry > 0 && soa.expire > 0);
        // Empty non-terminal (RFC 8020): NODATA, never NXDOMAIN.
        let m = ask(query("google.com.", RecordType::A, None)).await;
        assert_eq!(m.response_code, ResponseCode::NoError);
        negative_soa(&m);
        let m = ask(query("Express.co.UK.", RecordType::A, None)).await;
        assert_eq!(m.response_code, ResponseCode::NoError);
        // NXDOMAIN.
        let m = ask(query("mail.google.com.", RecordType::A, None)).await;
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        let (owner, ttl, _) = negative_soa(&m);
        assert!(owner.is_root());
        assert_eq!(ttl, TTL);
    }
}

const ZONE_A: &str = "$ORIGIN example.test.
$TTL 3600
@   IN SOA ns1.example.test. hostmaster.example.test. ( 2024060101 7200 3600 1209600 120 )
    IN NS  ns1
ns1 IN A   192.0.2.53
www IN A   192.0.2.80
";

const ZONE_B: &str = "$ORIGIN other.test.
$TTL 3600
@   60 IN SOA ns1.other.test. hostmaster.other.test. 7 7200 3600 1209600 300
    IN NS  ns1
ns1 IN A   192.0.2.54
";

/// A TS serving two master files only: example.test. and other.test.
async fn zone_ts() -> Fixture {
    let dir = ZoneDir::new();
    let a = dir.write("example.test.zone", ZONE_A);
    let b = dir.write("other.test.zone", ZONE_B);
    let s = ts_settings(vec![a, b]);
    start_with(dir, s, one_worker()).await
}

#[tokio::test]
async fn negative_ttl_is_min_of_soa_ttl_and_minimum() {
    let f = zone_ts().await;
    // Per zone: its negative TTL and what its SOA says. SOA TTL 3600,
    // MINIMUM 120 -> 120; SOA TTL 60, MINIMUM 300 -> 60.
    let ex = ("example.test.", 120, "serial", 2024060101);
    let other = ("other.test.", 60, "minimum", 300);
    let (a, aaaa) = (RecordType::A, RecordType::AAAA);
    let (nxdomain, noerror) = (ResponseCode::NXDomain, ResponseCode::NoError);
    for (qname, qtype, rcode, (zone, want_ttl, what, want)) in [
        ("www.example.test.", aaaa, noerror, ex),
        ("nope.example.test.", a, nxdomain, ex),
        ("nope.other.test.", a, nxdomain, other),
    ] {
        let q = query(qname, qtype, None);
        let m = udp(f.addr(), &q).await;
        assert_answers(&q, &m);
        assert_eq!(m.response_code, rcode, "{qname} {qtype}");
        assert!(m.answers.is_empty(), "{qname} {qtype}: {:?}", m.answers);
        let (owner, ttl, soa) = negative_soa(&m);
        assert_eq!(*owner, name(zone), "{qname} {qtype}: SOA owner");
        let got = if what == "serial" {
            soa.serial
        } else {
            soa.minimum
        };
        assert_eq!(got, want, "{qname} {qtype}: SOA {what}");
        assert_eq!(ttl, want_ttl, "{qname} {qtype}: negative TTL");
    }
    // The SOA itself is served with its own TTL.
    let q = query("example.test.", RecordType::SOA, None);
    let m = udp(f.addr(), &q).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 3600);
    // The zone's own data (file TTL).
    let q = query("www.example.test.", RecordType::A, None);
    let m = udp(f.addr(), &q).await;
    assert_eq!(a_addrs_sorted(&m), vec![Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(m.answers[0].ttl, 3600);
}

#[tokio::test]
async fn names_outside_every_zone_are_refused() {
    let f = zone_ts().await;
    for qname in ["www.example.org.", "test.", "example.TEST.evil."] {
        let q = query(qname, RecordType::A, None);
        let m = udp(f.addr(), &q).await;
        assert_answers(&q, &m);
        assert_eq!(m.response_code, ResponseCode::Refused, "{qname}");
        assert!(m.answers.is_empty() && m.authorities.is_empty());
    }
    // Over TCP too; and a name in a zone still answers.
    let q = query("www.example.org.", RecordType::A, None);
    assert_eq!(tcp(f.addr(), &q).await.response_code, ResponseCode::Refused);
    let q = query("WWW.Example.Test.", RecordType::A, None);
    assert_eq!(udp(f.addr(), &q).await.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn on_miss_silent_says_nothing_for_misses_but_answers_hits() {
    let (dir, mut s) = table_settings("");
    s.on_miss = OnMiss::Silent;
    let f = start_with(dir, s, one_worker()).await;
    let c = Client::new(f.addr()).await;
    let miss = with_id(query("nope.example.com.", RecordType::A, None), 0x2001);
    let replies = replies_before_probe(&c, &miss.to_vec().unwrap(), 0x2002).await;
    assert!(replies.is_empty(), "a miss was answered: {replies:02x?}");
    // Over TCP: the miss gets nothing, the hit after it on the same connection does.
    let mut s = TcpStream::connect(f.addr()).await.unwrap();
    let hit = probe(0x2003);
    s.write_all(&framed(&[miss.to_vec().unwrap(), hit.to_vec().unwrap()]))
        .await
        .unwrap();
    let raw = tcp_recv(&mut s).await.expect("the hit answers");
    assert_google(&hit, &Message::from_vec(&raw).unwrap(), TTL);
    // NODATA and empty non-terminals are not misses: still answered.
    let q = query("www.google.com.", RecordType::AAAA, None);
    let m = c.ask(&q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(negative_soa(&m).1, TTL);
    let q = query("google.com.", RecordType::A, None);
    assert_eq!(c.ask(&q).await.response_code, ResponseCode::NoError);
}

// ---------------------------------------------------------------------------
// The question and 0x20
// ---------------------------------------------------------------------------

#[tokio::test]
async fn question_is_echoed_byte_for_byte() {
    let f = table_ts("").await;
    let cases = [
        query("wWw.GoOgLe.CoM.", RecordType::A, None),
        query("wWw.GoOgLe.CoM.", RecordType::A, Some(1232)),
        query("NoPe.ExAmPle.cOm.", RecordType::A, None),
        query("gOOgle.COM.", RecordType::A, None),
        query_class("wWw.GoOgLe.CoM.", RecordType::A, DNSClass::CH),
    ];
    for q in cases {
        let req = q.to_vec().unwrap();
        let qend = question_end(&req);
        assert!(
            req[12..qend].iter().any(u8::is_ascii_uppercase),
            "the request must be mixed-case for this test to mean anything"
        );
        for via_tcp in [false, true] {
            let resp = if via_tcp {
                let mut s = TcpStream::connect(f.addr()).await.unwrap();
                tcp_send(&mut s, &req).await;
                tcp_recv(&mut s).await.expect("tcp answer")
            } else {
                udp_raw(f.addr(), &req).await.expect("udp answer")
            };
            assert_eq!(hdr(&resp).qd, 1);
            assert_eq!(
                resp.get(12..qend),
                Some(&req[12..qend]),
                "question not echoed byte for byte (tcp: {via_tcp})"
            );
        }
    }
    // And the mixed-case question finds the lower-case data.
    let q = query("wWw.GoOgLe.CoM.", RecordType::A, None);
    let m = udp(f.addr(), &q).await;
    assert_eq!(a_addrs_sorted(&m), GOOGLE);
    assert!(m.authoritative);
}

// ---------------------------------------------------------------------------
// EDNS and truncation
// ---------------------------------------------------------------------------

/// `n` A records for `owner` as table lines.
fn many_a(owner: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{owner} 10.{}.{}.{} A\n",
                i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect()
}

#[tokio::test]
async fn opt_is_echoed_with_version_0_and_do_copied() {
    let f = table_ts("").await;
    for dnssec_ok in [false, true] {
        let mut q = query("www.google.com.", RecordType::A, Some(1232));
        if let Some(e) = q.edns.as_mut() {
            e.set_dnssec_ok(dnssec_ok);
        }
        for via_tcp in [false, true] {
            let m = ask_via(f.addr(), &q, via_tcp).await;
            assert_answers(&q, &m);
            assert_eq!(a_addrs_sorted(&m), GOOGLE);
            let e = m.edns.as_ref().expect("an OPT back");
            assert_eq!(e.version(), 0);
            assert!(e.max_payload() >= 512);
            assert_eq!(e.flags().dnssec_ok, dnssec_ok, "DO bit copied");
            assert!(m.additionals.is_empty());
        }
    }
    // Negative answers keep the OPT too.
    let q = query("nope.example.com.", RecordType::A, Some(1232));
    let m = udp(f.addr(), &q).await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert!(m.edns.is_some());
}

#[tokio::test]
async fn udp_size_is_honoured_and_truncated_answers_are_whole_over_tcp() {
    // big50: 28 + 50*16 = 828 bytes (+11 with OPT): over 512, under 1232.
    // big100: 1628 bytes: over 1232.
    let f = table_ts(&format!(
        "{}{}",
        many_a("big50.test", 50),
        many_a("big100.test", 100)
    ))
    .await;
    let c = Client::new(f.addr()).await;
    // (name, EDNS size, truncated?)
    let cases = [
        ("big50.test.", None, true),
        ("big50.test.", Some(512), true),
        ("big50.test.", Some(600), true),
        ("big50.test.", Some(1232), false),
        ("big50.test.", Some(4096), false),
        ("big100.test.", None, true),
        ("big100.test.", Some(1232), true),
        ("big100.test.", Some(4096), true),
        ("big100.test.", Some(65535), true),
    ];
    for (qname, size, tc) in cases {
        let q = query(qname, RecordType::A, size);
        let m = c.ask(&q).await;
        let what = format!("{qname} edns {size:?}");
        assert_answers(&q, &m);
        assert_eq!(m.response_code, ResponseCode::NoError, "{what}");
        assert_eq!(m.truncation, tc, "{what}");
        assert_eq!(m.edns.is_some(), size.is_some(), "{what}");
        let raw_len = m.to_vec().unwrap().len();
        assert!(raw_len <= usize::from(size.unwrap_or(512).clamp(512, 1232)));
        if tc {
            assert!(m.answers.is_empty(), "{what}: TC answer has records");
            assert!(m.authorities.is_empty() && m.additionals.is_empty());
        } else {
            assert_eq!(m.answers.len(), 50, "{what}");
        }
    }
    // The same over TCP: whole, no TC.
    for (qname, n) in [("big50.test.", 50), ("big100.test.", 100)] {
        for size in [None, Some(1232)] {
            let q = query(qname, RecordType::A, size);
            let m = tcp(f.addr(), &q).await;
            assert_answers(&q, &m);
            assert!(!m.truncation, "{qname} over tcp");
            assert_eq!(m.answers.len(), n);
            assert!(m.answers.iter().all(|r| r.ttl == TTL));
        }
    }
}

#[tokio::test]
async fn edns_version_above_0_gets_badvers() {
    let f = table_ts("").await;
    for version in [1u8, 255] {
        let mut q = query("www.google.com.", RecordType::A, None);
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_version(version);
        q.set_edns(e);
        for via_tcp in [false, true] {
            let m = ask_via(f.addr(), &q, via_tcp).await;
            assert_answers(&q, &m);
            // hickory decodes 16 as BADSIG; BADVERS and BADSIG share the code.
            assert_eq!(u16::from(m.response_code), 16, "BADVERS");
            assert!(m.answers.is_empty(), "no data with BADVERS");
            let e = m.edns.as_ref().expect("OPT in a BADVERS answer");
            assert_eq!(e.version(), 0);
            assert_eq!(e.rcode_high(), 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Malformed, unsupported and refused queries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn qdcount_other_than_one_is_formerr() {
    let f = table_ts("").await;
    let mut none = with_id(Message::query(), 0x3001);
    none.metadata.recursion_desired = true;
    let mut two = with_id(query("www.google.com.", RecordType::A, None), 0x3002);
    two.add_query(Query::query(name("v6.example.com."), RecordType::AAAA));
    for q in [none, two] {
        for via_tcp in [false, true] {
            let m = ask_via(f.addr(), &q, via_tcp).await;
            assert_eq!(m.id, q.id);
            assert_eq!(m.message_type, MessageType::Response);
            assert_eq!(m.response_code, ResponseCode::FormErr);
            assert_eq!(m.recursion_desired, q.recursion_desired);
            assert!(m.answers.is_empty() && m.authorities.is_empty());
        }
    }
    assert_alive(f.addr()).await;
}

#[tokio::test]
async fn opcodes_other_than_query_are_notimp_and_notify_is_refused() {
    let f = table_ts("").await;
    let c = Client::new(f.addr()).await;
    // STATUS, UPDATE, IQUERY (obsolete) and unassigned ones.
    for opcode in [2u8, 5, 1, 3, 6, 15] {
        let mut req = with_id(query("www.google.com.", RecordType::A, None), 0x4000)
            .to_vec()
            .unwrap();
        set_opcode(&mut req, opcode);
        let replies = replies_before_probe(&c, &req, 0x4100).await;
        assert_eq!(replies.len(), 1, "opcode {opcode} unanswered");
        let h = hdr(&replies[0]);
        assert!(h.qr);
        assert_eq!(h.id, 0x4000);
        assert_eq!(h.opcode, opcode, "opcode echoed");
        assert_eq!(h.rcode, 4, "opcode {opcode}: NOTIMP");
        assert_eq!((h.an, h.ns), (0, 0));
        // Over TCP too.
        let mut s = TcpStream::connect(f.addr()).await.unwrap();
        tcp_send(&mut s, &req).await;
        let raw = tcp_recv(&mut s).await.expect("tcp answer");
        assert_eq!(hdr(&raw).rcode, 4);
    }
    // NOTIFY: we are a primary.
    let mut q = Message::new(0x4200, MessageType::Query, OpCode::Notify);
    q.add_query(Query::query(name("."), RecordType::SOA));
    for via_tcp in [false, true] {
        let m = ask_via(f.addr(), &q, via_tcp).await;
        assert_answers(&q, &m);
        assert_eq!(m.op_code, OpCode::Notify);
        assert_eq!(m.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
    }
}

#[tokio::test]
async fn classes_other_than_in_are_refused() {
    let f = table_ts("").await;
    for class in [DNSClass::CH, DNSClass::HS, DNSClass::ANY, DNSClass::NONE] {
        let q = query_class("www.google.com.", RecordType::A, class);
        for via_tcp in [false, true] {
            let m = ask_via(f.addr(), &q, via_tcp).await;
            assert_answers(&q, &m);
            assert_eq!(m.response_code, ResponseCode::Refused, "class {class:?}");
            assert!(m.answers.is_empty() && m.authorities.is_empty());
        }
    }
}

#[tokio::test]
async fn responses_are_never_answered() {
    let f = table_ts("").await;
    let c = Client::new(f.addr()).await;
    for rcode in [0u8, 3] {
        let mut req = with_id(query("www.google.com.", RecordType::A, None), 0x5000)
            .to_vec()
            .unwrap();
        req[2] |= 0x80;
        req[3] |= rcode;
        let replies = replies_before_probe(&c, &req, 0x5001).await;
        assert!(replies.is_empty(), "QR=1 was answered: {replies:02x?}");
    }
    // Over TCP: the response is ignored, the query after it answered first.
    let mut resp = with_id(query("www.google.com.", RecordType::A, None), 0x5002)
        .to_vec()
        .unwrap();
    resp[2] |= 0x80;
    let p = probe(0x5003);
    let mut s = TcpStream::connect(f.addr()).await.unwrap();
    s.write_all(&framed(&[resp, p.to_vec().unwrap()]))
        .await
        .unwrap();
    let raw = tcp_recv(&mut s).await.expect("the probe answers");
    assert_google(&p, &Message::from_vec(&raw).unwrap(), TTL);
}

/// Raw packets with a readable header whose question cannot be read.
fn malformed_questions() -> Vec<(&'static str, Vec<u8>)> {
    let header = |id: u16| {
        let mut h = id.to_be_bytes().to_vec();
        h.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        h
    };
    let mut out = Vec::new();
    // A name that is a pointer to itself.
    let mut p = header(0x6001);
    p.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    out.push(("pointer loop", p));
    // A label, then a pointer to that very pointer.
    let mut p = header(0x6002);
    p.extend_from_slice(&[0x01, b'a', 0xc0, 0x0e, 0, 1, 0, 1]);
    out.push(("pointer after a label, to itself", p));
    // A 64-byte label.
    let mut p = header(0x6003);
    p.push(64);
    p.extend_from_slice(&[b'a'; 64]);
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.push(("label of 64", p));
    // A name longer than 255 bytes (five 63-byte labels).
    let mut p = header(0x6004);
    for _ in 0..5 {
        p.push(63);
        p.extend_from_slice(&[b'b'; 63]);
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.push(("name over 255 bytes", p));
    // The question cut in the middle of a label, and before its class.
    let mut full = with_id(query("www.google.com.", RecordType::A, None), 0x6005)
        .to_vec()
        .unwrap();
    full[2] |= 0x01; // RD, like the others
    out.push(("question cut in a label", full[..12 + 7].to_vec()));
    let mut cut = full[..full.len() - 2].to_vec();
    cut[1] = 0x06;
    out.push(("question without its class", cut));
    // A header with QDCOUNT=1 and nothing after it.
    out.push(("no question at all", header(0x6007)));
    out
}

#[tokio::test]
async fn hostile_packets_are_dropped_or_formerr_and_the_server_lives_on() {
    let f = table_ts("").await;
    let c = Client::new(f.addr()).await;
    // Too short for a header: dropped.
    for bad in [vec![0x42], vec![0x12; 11], Vec::new()] {
        let replies = replies_before_probe(&c, &bad, 0x6100).await;
        assert!(replies.is_empty(), "{bad:02x?} answered");
        assert_alive(f.addr()).await;
    }
    // Readable header, unreadable question: FORMERR, no question echoed.
    for (what, bad) in malformed_questions() {
        let id = hdr(&bad).id;
        let replies = replies_before_probe(&c, &bad, 0x6200).await;
        assert_eq!(replies.len(), 1, "{what}: no answer");
        let h = hdr(&replies[0]);
        assert_eq!(h.id, id, "{what}");
        assert!(h.qr);
        assert!(h.rd, "{what}: RD copied");
        assert_eq!(h.rcode, 1, "{what}: FORMERR");
        assert_eq!((h.qd, h.an, h.ns), (0, 0, 0), "{what}");
        assert_alive(f.addr()).await;
        // Over TCP, on a connection that keeps serving afterwards.
        let mut s = TcpStream::connect(f.addr()).await.unwrap();
        let p = probe(0x6300);
        s.write_all(&framed(&[bad.clone(), p.to_vec().unwrap()]))
            .await
            .unwrap();
        let raw = tcp_recv(&mut s).await.expect("tcp FORMERR");
        let h = hdr(&raw);
        assert_eq!((h.id, h.rcode), (id, 1), "{what} over tcp");
        let raw = tcp_recv(&mut s).await.expect("connection still serves");
        assert_google(&p, &Message::from_vec(&raw).unwrap(), TTL);
    }
    // Short frames over TCP: no answer, and the connection keeps serving.
    let mut s = TcpStream::connect(f.addr()).await.unwrap();
    let p = probe(0x6400);
    s.write_all(&framed(&[vec![0x42], vec![0x12; 11], p.to_vec().unwrap()]))
        .await
        .unwrap();
    let raw = tcp_recv(&mut s).await.expect("the probe answers first");
    assert_google(&p, &Message::from_vec(&raw).unwrap(), TTL);
}

/// What docs/CONFIG.md (the TS) allows as the answer to `req` (`replies` is what came back).
fn check_hostile_reply(req: &[u8], replies: &[Vec<u8>]) {
    if req.len() < 12 || req[2] & 0x80 != 0 {
        assert!(replies.is_empty(), "{req:02x?} must be dropped");
        return;
    }
    assert_eq!(
        replies.len(),
        1,
        "{req:02x?} has a readable header: answer it"
    );
    let (q, r) = (hdr(req), hdr(&replies[0]));
    let ctx = format!("{req:02x?} -> {:02x?}", replies[0]);
    assert_eq!(r.id, q.id, "{ctx}");
    assert!(r.qr, "{ctx}");
    assert!(!r.ra, "{ctx}");
    assert!(!r.tc, "{ctx}");
    assert_eq!(r.opcode, q.opcode, "{ctx}");
    // RD is copied where it is defined (QUERY, and NOTIFY like a query);
    // the NOTIMP answer to any other opcode has it clear.
    let rd_defined = q.opcode == 0 || q.opcode == 4;
    assert_eq!(r.rd, q.rd && rd_defined, "{ctx}");
    assert!(replies[0].len() <= 1232, "{ctx}");
    let extended = || {
        Message::from_vec(&replies[0]).map_or(u16::from(r.rcode), |m| u16::from(m.response_code))
    };
    match q.opcode {
        0 | 4 if q.qd != 1 => {
            assert_eq!(r.rcode, 1, "QDCOUNT {}: FORMERR {ctx}", q.qd);
            assert_eq!((r.qd, r.an, r.ns), (0, 0, 0), "{ctx}");
        }
        4 => assert!(
            r.rcode == 1 || r.rcode == 5 || extended() == 16,
            "NOTIFY: FORMERR, REFUSED or BADVERS {ctx}"
        ),
        0 => assert!(
            [0, 1, 3, 5].contains(&r.rcode),
            "QUERY: unexpected rcode {ctx}"
        ),
        _ => {
            assert_eq!(r.rcode, 4, "opcode {}: NOTIMP {ctx}", q.opcode);
            assert_eq!((r.an, r.ns), (0, 0), "{ctx}");
        }
    }
    if r.rcode != 0 {
        assert!(!r.aa || r.rcode == 3, "AA on an error {ctx}");
    }
}

#[tokio::test]
async fn random_and_mutated_packets_get_what_the_spec_says() {
    let f = table_ts("").await;
    let c = Client::new(f.addr()).await;
    let mut rng = StdRng::seed_from_u64(0x00d1_5b1b);
    let mut probe_id = 0x8000u16;
    // 200 random byte strings.
    for _ in 0..200 {
        let len = rng.random_range(0..=96usize);
        let mut pkt = vec![0u8; len];
        rng.fill(&mut pkt[..]);
        probe_id = probe_id.wrapping_add(1);
        let replies = replies_before_probe(&c, &pkt, probe_id).await;
        check_hostile_reply(&pkt, &replies);
    }
    // 200 valid queries with a few bytes changed (reach the question and OPT parsers).
    let base = query("www.google.com.", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    for _ in 0..200 {
        let mut pkt = base.clone();
        for _ in 0..rng.random_range(1..=3) {
            let at = rng.random_range(2..pkt.len());
            pkt[at] = rng.random();
        }
        if rng.random_bool(0.5) {
            pkt[2] &= 0x07; // QR=0, QUERY: go past the header checks
        }
        if rng.random_bool(0.25) {
            pkt.truncate(rng.random_range(12..pkt.len()));
        }
        probe_id = probe_id.wrapping_add(1);
        let replies = replies_before_probe(&c, &pkt, probe_id).await;
        check_hostile_reply(&pkt, &replies);
    }
    assert_alive(f.addr()).await;
}

// ---------------------------------------------------------------------------
// TCP (RFC 7766)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tcp_pipelined_queries_in_one_write_get_both_answers() {
    let f = table_ts("").await;
    let q1 = with_id(query("www.google.com.", RecordType::A, None), 0x0a01);
    let q2 = with_id(query("v6.example.com.", RecordType::AAAA, None), 0x0a02);
    let q3 = with_id(query("nope.example.com.", RecordType::A, None), 0x0a03);
    let mut s = TcpStream::connect(f.addr()).await.unwrap();
    s.write_all(&framed(&[
        q1.to_vec().unwrap(),
        q2.to_vec().unwrap(),
        q3.to_vec().unwrap(),
    ]))
    .await
    .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let raw = tcp_recv(&mut s).await.expect("a pipelined answer");
        let m = Message::from_vec(&raw).unwrap();
        match m.id {
            0x0a01 => assert_google(&q1, &m, TTL),
            0x0a02 => {
                assert_answers(&q2, &m);
                assert_eq!(m.answers.len(), 2);
            }
            0x0a03 => {
                assert_answers(&q3, &m);
                assert_eq!(m.response_code, ResponseCode::NXDomain);
            }
            other => panic!("unexpected id {other:#x}"),
        }
        assert!(seen.insert(m.id), "id {:#x} answered twice", m.id);
    }
    // A query split over two writes is answered too.
    let raw = framed(&[probe(0x0a04).to_vec().unwrap()]);
    s.write_all(&raw[..5]).await.unwrap();
    s.flush().await.unwrap();
    tokio::task::yield_now().await;
    s.write_all(&raw[5..]).await.unwrap();
    let m = Message::from_vec(&tcp_recv(&mut s).await.expect("split query")).unwrap();
    assert_google(&probe(0x0a04), &m, TTL);
}

#[tokio::test]
async fn tcp_short_frame_does_not_wedge_and_is_closed_after_idle_timeout() {
    let (dir, s) = table_settings("");
    let idle = Duration::from_millis(300);
    let opts = ServerOptions {
        workers: 1,
        tcp_idle_timeout: idle,
        ..ServerOptions::default()
    };
    let f = start_with(dir, s, opts).await;
    // A length prefix of 100 followed by 20 bytes.
    let started = Instant::now();
    let mut bad = TcpStream::connect(f.addr()).await.unwrap();
    let mut partial = vec![0u8, 100];
    partial.extend_from_slice(&probe(0x0b01).to_vec().unwrap()[..20]);
    bad.write_all(&partial).await.unwrap();
    // Meanwhile everyone else is served.
    for i in 0..3 {
        let p = probe(0x0b10 + i);
        assert_google(&p, &tcp(f.addr(), &p).await, TTL);
        assert_google(&p, &udp(f.addr(), &p).await, TTL);
    }
    // The stuck connection is closed once idle.
    assert!(
        closed_within(&mut bad, ANSWER_WAIT).await,
        "a half-sent query held its connection open past the idle timeout"
    );
    let took = started.elapsed();
    assert!(
        took >= idle - Duration::from_millis(20),
        "closed too early: {took:?}"
    );
    // A slow sender trickling one byte at a time does not keep it open either.
    let started = Instant::now();
    let mut slow = TcpStream::connect(f.addr()).await.unwrap();
    let trickle = async {
        for b in partial.iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        tokio::time::timeout(ANSWER_WAIT, trickle).await.is_ok(),
        "a trickling client kept its connection"
    );
    assert!(started.elapsed() >= idle - Duration::from_millis(20));
    // A connection with nothing sent is closed after the idle timeout too.
    let mut quiet = TcpStream::connect(f.addr()).await.unwrap();
    assert!(closed_within(&mut quiet, ANSWER_WAIT).await);
}

#[tokio::test]
async fn tcp_connection_cap_closes_the_extra_connection_at_once() {
    let _load = crate::kit::timed().await;
    let (dir, s) = table_settings("");
    let opts = ServerOptions {
        workers: 1,
        tcp_max_connections: 2,
        ..ServerOptions::default()
    };
    let f = start_with(dir, s, opts).await;
    let mut c1 = TcpStream::connect(f.addr()).await.unwrap();
    let mut c2 = TcpStream::connect(f.addr()).await.unwrap();
    // Both are being served (so both hold their slot).
    for (i, c) in [&mut c1, &mut c2].into_iter().enumerate() {
        let p = probe(0x0c00 + i as u16);
        tcp_send(c, &p.to_vec().unwrap()).await;
        let m = Message::from_vec(&tcp_recv(c).await.expect("served")).unwrap();
        assert_google(&p, &m, TTL);
    }
    let refused = || f.ts.ts.metrics().tcp_cap_refused.load(Relaxed);
    assert_eq!(refused(), 0, "none refused below the cap");
    // The third is closed at once (well before the 10 s idle timeout), and counted.
    let started = Instant::now();
    let mut c3 = TcpStream::connect(f.addr()).await.unwrap();
    assert!(
        closed_within(&mut c3, ANSWER_WAIT).await,
        "third connection not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused(), 1, "the third refused at the cap");
    let e = parse_exposition(&dnslb::metrics::render_ts_prometheus(&f.ts.ts));
    let want = [("reason", "cap")];
    assert_eq!(
        value(&e, "dnslb_ts_tcp_connections_refused_total", &want),
        1.0
    );
    // The two others still answer.
    for (i, c) in [&mut c1, &mut c2].into_iter().enumerate() {
        let p = probe(0x0c10 + i as u16);
        tcp_send(c, &p.to_vec().unwrap()).await;
        let m = Message::from_vec(&tcp_recv(c).await.expect("still served")).unwrap();
        assert_google(&p, &m, TTL);
    }
    // Closing one frees its slot for a new connection.
    drop(c1);
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        let mut c4 = TcpStream::connect(f.addr()).await.unwrap();
        let p = probe(0x0c20);
        let _ = c4.write_all(&framed(&[p.to_vec().unwrap()])).await;
        if let Some(raw) = tcp_recv(&mut c4).await {
            assert_google(&p, &Message::from_vec(&raw).unwrap(), TTL);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// One source holding idle, half-sent connections (one byte of a length)
/// gets seven eighths of the connection cap and no more, a second one a
/// single connection of the last eighth; a connection from a third source
/// is still served, and the refused ones are counted as the sources'
/// share, not the cap.
#[tokio::test]
async fn one_source_holding_idle_connections_leaves_tcp_to_the_others() {
    let _load = crate::kit::timed().await;
    let (dir, s) = table_settings("");
    let cap = 16;
    let opts = ServerOptions {
        workers: 1,
        tcp_max_connections: cap,
        ..ServerOptions::default()
    };
    let f = start_with(dir, s, opts).await;
    let (flood, other) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let mut held = Vec::new();
    for _ in 0..cap + 4 {
        let mut c = connect_from(flood, f.addr()).await;
        // Written before a refusal is seen or not: either way the connection
        // sits idle at the server with half a length.
        let _ = c.write_all(&[0]).await;
        held.push(c);
    }
    // The refused ones are closed at once; the others stay open.
    let mut open = 0;
    for c in &mut held {
        open += usize::from(!closed_within(c, Duration::from_millis(300)).await);
    }
    let share = cap - cap / 8;
    assert_eq!(open, share, "the source holds seven eighths of the cap");
    let metrics = f.ts.ts.metrics();
    assert_eq!(
        metrics.tcp_share_refused.load(Relaxed),
        (cap + 4 - share) as u64
    );
    assert_eq!(metrics.tcp_cap_refused.load(Relaxed), 0);
    // A second source holding connections gets one of the last eighth.
    let second = Ipv4Addr::new(127, 0, 0, 4);
    let mut seconds = Vec::new();
    for _ in 0..4 {
        let mut c = connect_from(second, f.addr()).await;
        let _ = c.write_all(&[0]).await;
        seconds.push(c);
    }
    let mut open_second = 0;
    for c in &mut seconds {
        open_second += usize::from(!closed_within(c, Duration::from_millis(300)).await);
    }
    assert_eq!(open_second, 1, "the second source holds one connection");
    let refused_share = (cap + 4 - share + 3) as u64;
    assert_eq!(metrics.tcp_share_refused.load(Relaxed), refused_share);
    // Another source's query is answered over TCP meanwhile.
    let mut c = connect_from(other, f.addr()).await;
    let p = probe(0x0d00);
    tcp_send(&mut c, &p.to_vec().unwrap()).await;
    let m = Message::from_vec(&tcp_recv(&mut c).await.expect("another source served")).unwrap();
    assert_google(&p, &m, TTL);
    // The cap is now full (the third source's connection is open): the
    // first source's next connection is closed, counted at the cap.
    let mut again = connect_from(flood, f.addr()).await;
    assert!(closed_within(&mut again, ANSWER_WAIT).await);
    let e = parse_exposition(&dnslb::metrics::render_ts_prometheus(&f.ts.ts));
    let refused = |reason| {
        let want = [("reason", reason)];
        value(&e, "dnslb_ts_tcp_connections_refused_total", &want)
    };
    assert_eq!(refused("share"), refused_share as f64);
    assert_eq!(refused("cap"), 1.0);
    drop(c);
}

// ---------------------------------------------------------------------------
// In-flight bound and fault knobs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn inflight_bound_gives_servfail_at_once() {
    let _load = crate::kit::timed().await;
    let (dir, mut s) = table_settings("");
    s.fault = delay_all(300);
    let opts = ServerOptions {
        workers: 1,
        max_inflight: 1,
        ..ServerOptions::default()
    };
    let f = start_with(dir, s, opts).await;
    let slow = Duration::from_millis(300);
    // UDP: the first query takes the only slot; the second gets SERVFAIL now.
    let c = Client::new(f.addr()).await;
    let q1 = probe(0x0d01);
    let q2 = with_id(
        query("v6.example.com.", RecordType::AAAA, Some(1232)),
        0x0d02,
    );
    let t0 = Instant::now();
    c.send(&q1.to_vec().unwrap()).await;
    c.send(&q2.to_vec().unwrap()).await;
    let m = Message::from_vec(&c.recv(ANSWER_WAIT).await.expect("servfail")).unwrap();
    let early = t0.elapsed();
    assert_eq!(m.id, 0x0d02, "the over-limit query is answered first");
    assert_answers(&q2, &m);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
    assert!(m.edns.is_some(), "OPT echoed in the SERVFAIL");
    assert!(
        early < Duration::from_millis(150),
        "SERVFAIL took {early:?}"
    );
    let m = Message::from_vec(&c.recv(ANSWER_WAIT).await.expect("delayed answer")).unwrap();
    assert_google(&q1, &m, TTL);
    assert!(t0.elapsed() >= slow, "the delayed answer came early");
    // The slot is free again: the next query waits its turn instead of failing.
    let q3 = probe(0x0d03);
    let t0 = Instant::now();
    let m = c.ask(&q3).await;
    assert_google(&q3, &m, TTL);
    assert!(t0.elapsed() >= slow);
    // TCP, two pipelined queries: SERVFAIL for the second comes back first.
    let mut st = TcpStream::connect(f.addr()).await.unwrap();
    let t0 = Instant::now();
    st.write_all(&framed(&[q1.to_vec().unwrap(), q2.to_vec().unwrap()]))
        .await
        .unwrap();
    let m = Message::from_vec(&tcp_recv(&mut st).await.expect("servfail")).unwrap();
    assert_eq!((m.id, m.response_code), (0x0d02, ResponseCode::ServFail));
    assert!(t0.elapsed() < Duration::from_millis(150));
    let m = Message::from_vec(&tcp_recv(&mut st).await.expect("delayed")).unwrap();
    assert_google(&q1, &m, TTL);
    assert!(t0.elapsed() >= slow);
}

#[tokio::test]
async fn fault_delay_holds_answers_back() {
    let (dir, mut s) = table_settings("");
    s.fault = delay_all(150);
    let f = start_with(dir, s, one_worker()).await;
    let q = probe(0x0e01);
    let t0 = Instant::now();
    let (u, t) = tokio::join!(udp(f.addr(), &q), tcp(f.addr(), &q));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_google(&q, &u, TTL);
    assert_google(&q, &t, TTL);
    // Each answer is delayed, not just the first.
    let t0 = Instant::now();
    let m = udp(f.addr(), &q).await;
    assert_google(&q, &m, TTL);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn fault_drop_answers_nothing() {
    let (dir, mut s) = table_settings("");
    s.fault = Fault {
        delay_ms: 0,
        delay_ratio: 0.0,
        drop_ratio: 1.0,
    };
    let f = start_with(dir, s, one_worker()).await;
    let c = Client::new(f.addr()).await;
    for i in 0..20 {
        c.send(&probe(0x0f00 + i).to_vec().unwrap()).await;
    }
    let mut s = TcpStream::connect(f.addr()).await.unwrap();
    s.write_all(&framed(&[probe(0x0f40).to_vec().unwrap()]))
        .await
        .unwrap();
    let wait = Duration::from_millis(400);
    assert_eq!(
        c.recv(wait).await,
        None,
        "a dropped query was answered over udp"
    );
    let mut len = [0u8; 2];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), s.read_exact(&mut len))
            .await
            .is_err(),
        "a dropped query was answered over tcp"
    );
}

// ---------------------------------------------------------------------------
// AXFR
// ---------------------------------------------------------------------------

const AXFR_NAMES: usize = 1200;

/// An `example.com.` table big enough to need several transfer messages.
fn axfr_table() -> String {
    let mut t = String::from(
        "ns1.example.com - NS\n\
         example.com 192.0.2.1 A\n\
         v6.example.com 2001:db8::1 AAAA\n\
         txt.example.com \"a b c\" TXT\n\
         alias.example.com h1.example.com CNAME\n",
    );
    for i in 0..AXFR_NAMES {
        t.push_str(&format!(
            "h{i}.example.com 10.0.{}.{} A\n",
            i / 256,
            i % 256
        ));
    }
    t
}

fn axfr_settings(allow: bool) -> (ZoneDir, TsSettings) {
    let dir = ZoneDir::new();
    let path = dir.write("example.txt", &axfr_table());
    let mut s = ts_settings(vec![path]);
    s.origin = name("example.com.");
    s.ttl = TTL;
    if !allow {
        s.axfr_allow = Vec::new();
    }
    (dir, s)
}

fn record_key(r: &Record) -> String {
    format!(
        "{} {} {} {}",
        r.name.to_lowercase(),
        r.ttl,
        r.record_type(),
        r.data
    )
}

#[tokio::test]
async fn axfr_over_tcp_sends_every_record_between_two_soas() {
    let (dir, s) = axfr_settings(true);
    let f = start_with(dir, s, one_worker()).await;
    let q = with_id(query("example.com.", RecordType::AXFR, None), 0x1a01);
    let mut st = TcpStream::connect(f.addr()).await.unwrap();
    tcp_send(&mut st, &q.to_vec().unwrap()).await;
    let mut records: Vec<Record> = Vec::new();
    let mut messages = 0;
    while records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .count()
        < 2
    {
        let raw = tcp_recv(&mut st).await.expect("transfer message");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.id, 0x1a01);
        assert_eq!(m.message_type, MessageType::Response);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert!(!m.truncation);
        if messages == 0 {
            assert_answers(&q, &m);
        }
        assert!(!m.answers.is_empty());
        records.extend(m.answers.iter().cloned());
        messages += 1;
        assert!(messages < 100, "transfer never ends");
    }
    assert!(messages > 1, "{AXFR_NAMES} names fit in one message?");
    let first = records.first().unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        first.record_type(),
        RecordType::SOA,
        "first record is the SOA"
    );
    assert_eq!(
        last.record_type(),
        RecordType::SOA,
        "last record is the SOA"
    );
    assert_eq!(first.name, name("example.com."));
    assert_eq!(first.data, last.data);
    // Everything in between: exactly the table.
    let middle: Vec<String> = records[1..records.len() - 1]
        .iter()
        .map(record_key)
        .collect();
    let got: BTreeSet<String> = middle.iter().cloned().collect();
    assert_eq!(got.len(), middle.len(), "a record was sent twice");
    let mut want = BTreeSet::new();
    let k = |n: &str, t: &str, d: &str| format!("{n} {TTL} {t} {d}");
    want.insert(k("example.com.", "NS", "ns1.example.com."));
    want.insert(k("example.com.", "A", "192.0.2.1"));
    want.insert(k("v6.example.com.", "AAAA", "2001:db8::1"));
    want.insert(k("txt.example.com.", "TXT", "a b c"));
    want.insert(k("alias.example.com.", "CNAME", "h1.example.com."));
    for i in 0..AXFR_NAMES {
        want.insert(k(
            &format!("h{i}.example.com."),
            "A",
            &format!("10.0.{}.{}", i / 256, i % 256),
        ));
    }
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    // The connection serves queries after the transfer.
    let p = with_id(query("h7.example.com.", RecordType::A, None), 0x1a02);
    tcp_send(&mut st, &p.to_vec().unwrap()).await;
    let m = Message::from_vec(&tcp_recv(&mut st).await.expect("answer after axfr")).unwrap();
    assert_answers(&p, &m);
    assert_eq!(a_addrs_sorted(&m), vec![Ipv4Addr::new(10, 0, 0, 7)]);
}

#[tokio::test]
async fn axfr_is_refused_over_udp_and_to_clients_not_allowed() {
    let (dir, s) = axfr_settings(true);
    let f = start_with(dir, s, one_worker()).await;
    let q = with_id(query("example.com.", RecordType::AXFR, None), 0x1b01);
    let m = udp(f.addr(), &q).await;
    assert_answers(&q, &m);
    assert_eq!(m.response_code, ResponseCode::Refused, "AXFR over UDP");
    assert!(m.answers.is_empty());
    f.ts.stop().await;

    let (dir, s) = axfr_settings(false);
    let f = start_with(dir, s, one_worker()).await;
    let m = tcp(f.addr(), &q).await;
    assert_answers(&q, &m);
    assert_eq!(m.response_code, ResponseCode::Refused, "AXFR not allowed");
    assert!(m.answers.is_empty());
    let q = with_id(query("example.com.", RecordType::IXFR, None), 0x1b02);
    let m = tcp(f.addr(), &q).await;
    assert_eq!(m.response_code, ResponseCode::Refused, "IXFR not allowed");
    assert!(m.answers.is_empty());
}

// ---------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------

async fn serial(addr: SocketAddr) -> u32 {
    let q = query("example.com.", RecordType::SOA, None);
    let m = udp(addr, &q).await;
    assert_eq!(m.answers.len(), 1);
    match &m.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    }
}

async fn a_of(addr: SocketAddr, qname: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let m = udp(addr, &query(qname, RecordType::A, None)).await;
    (m.response_code, a_addrs_sorted(&m))
}

fn reload_settings(dir: &ZoneDir, text: &str) -> (PathBuf, TsSettings) {
    let path = dir.write("example.txt", text);
    let mut s = ts_settings(vec![path.clone()]);
    s.origin = name("example.com.");
    (path, s)
}

/// What `addr` serves from the first table of the reload tests: www.example.com.
/// 192.0.2.1, no new.example.com.
async fn assert_first_data(addr: SocketAddr) {
    assert_eq!(
        a_of(addr, "www.example.com.").await,
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 1)])
    );
    assert_eq!(
        a_of(addr, "new.example.com.").await.0,
        ResponseCode::NXDomain
    );
}

#[tokio::test]
async fn reload_swaps_data_and_bumps_the_serial_only_on_change() {
    let dir = ZoneDir::new();
    let v1 = "www.example.com 192.0.2.1 A\n";
    let (_, s) = reload_settings(&dir, v1);
    let ts = start_ts(s).await;
    let s1 = serial(ts.addr).await;
    assert_first_data(ts.addr).await;

    let v2 = "www.example.com 192.0.2.2 A\nnew.example.com 192.0.2.9 A\n";
    dir.write("example.txt", v2);
    let report = ts.ts.reload().expect("good reload");
    assert_eq!(report.changed, 1);
    assert_eq!(
        a_of(ts.addr, "new.example.com.").await,
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 9)])
    );
    assert_eq!(
        a_of(ts.addr, "www.example.com.").await.1,
        vec![Ipv4Addr::new(192, 0, 2, 2)]
    );
    let s2 = serial(ts.addr).await;
    assert!(s2 > s1, "serial must go up on change: {s1} -> {s2}");
    // The negative answers carry the new serial too.
    let m = udp(ts.addr, &query("gone.example.com.", RecordType::A, None)).await;
    assert_eq!(negative_soa(&m).2.serial, s2);

    // Unchanged data (rewritten, comments aside): same serial.
    dir.write("example.txt", &format!("# same data\n{v2}\n"));
    let report = ts.ts.reload().expect("good reload");
    assert_eq!(report.changed, 0);
    assert_eq!(serial(ts.addr).await, s2, "unchanged data kept its serial");

    // Two quick changes in a row: up each time, never down.
    dir.write("example.txt", v1);
    ts.ts.reload().unwrap();
    let s3 = serial(ts.addr).await;
    dir.write("example.txt", v2);
    ts.ts.reload().unwrap();
    let s4 = serial(ts.addr).await;
    assert!(s2 < s3 && s3 < s4, "{s2} {s3} {s4}");
    ts.stop().await;
}

#[tokio::test]
async fn reload_with_a_bad_line_keeps_the_old_data() {
    let dir = ZoneDir::new();
    let (path, s) = reload_settings(&dir, "www.example.com 192.0.2.1 A\n");
    let ts = start_ts(s).await;
    let s1 = serial(ts.addr).await;
    dir.write(
        "example.txt",
        "www.example.com 192.0.2.7 A\n# comment\nbad.example.com 300.1.1.1 A\nnew.example.com 192.0.2.9 A\n",
    );
    let err = ts.ts.reload().expect_err("a bad line must be refused");
    let text = err.to_string();
    let prefix = format!("{}:3:", path.display());
    assert!(
        text.starts_with(&prefix),
        "{text:?} should start with {prefix:?}"
    );
    // Old data, old serial.
    assert_first_data(ts.addr).await;
    assert_eq!(serial(ts.addr).await, s1);
    // A file that vanished is refused the same way.
    std::fs::remove_file(&path).unwrap();
    let err = ts.ts.reload().expect_err("a missing file must be refused");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(
        a_of(ts.addr, "www.example.com.").await.1,
        vec![Ipv4Addr::new(192, 0, 2, 1)]
    );
    ts.stop().await;
}

/// docs/CONFIG.md (the TS): the serial never goes down. A master file whose data changed but
/// whose serial did not go up is refused (secondaries would never see the
/// change), naming the file and the SOA's line; the old zone keeps serving.
#[tokio::test]
async fn reload_of_a_master_file_needs_a_higher_serial() {
    let dir = ZoneDir::new();
    let zone = |serial: u32, extra: &str| {
        format!(
            "$ORIGIN ser.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 192.0.2.1\n{extra}"
        )
    };
    let path = dir.write("ser.zone", &zone(5, ""));
    let ts = start_ts(ts_settings(vec![path.clone()])).await;
    assert_eq!(serial_of(ts.addr, "ser.test.").await, 5);

    dir.write("ser.zone", &zone(5, "new IN A 192.0.2.9\n"));
    let err = ts.ts.reload().expect_err("same serial, new data: refused");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3:", path.display())) && text.contains("serial"),
        "{text}"
    );
    dir.write("ser.zone", &zone(4, "new IN A 192.0.2.9\n"));
    assert!(ts.ts.reload().is_err(), "a lower serial is refused too");
    assert_eq!(
        a_of(ts.addr, "new.ser.test.").await.0,
        ResponseCode::NXDomain,
        "the old zone keeps serving"
    );

    dir.write("ser.zone", &zone(6, "new IN A 192.0.2.9\n"));
    let report = ts.ts.reload().expect("a higher serial is accepted");
    assert_eq!(report.changed, 1);
    assert_eq!(serial_of(ts.addr, "ser.test.").await, 6);
    assert_eq!(
        a_of(ts.addr, "new.ser.test.").await,
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 9)])
    );

    // The serial raised alone (to make secondaries transfer): served.
    dir.write("ser.zone", &zone(7, "new IN A 192.0.2.9\n"));
    assert_eq!(ts.ts.reload().unwrap().changed, 1);
    assert_eq!(serial_of(ts.addr, "ser.test.").await, 7);
    ts.stop().await;
}

async fn serial_of(addr: std::net::SocketAddr, zone: &str) -> u32 {
    let m = udp(addr, &query(zone, RecordType::SOA, None)).await;
    match m.answers.first().map(|r| &r.data) {
        Some(hickory_proto::rr::RData::SOA(soa)) => soa.serial,
        other => panic!("no SOA for {zone}: {other:?}"),
    }
}

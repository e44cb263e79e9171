//! DNS over QUIC on a table server (`quic` in `[[ts]]`, RFC 9250) and zone
//! transfers over it (RFC 9250 §4.2.2):
//!
//! * dnspython with aioquic (an independent QUIC stack) gets, byte for
//!   byte, the answer TCP gets to the same query: NXDOMAIN, NODATA, a CNAME,
//!   a wildcard, DNSSEC records with DO from a zone the TS signs, an answer
//!   larger than any UDP payload (whole, not truncated); `dns.query.quic`'s
//!   parsed answers equal `dns.query.tcp`'s.
//! * An AXFR on a stream, read with a raw quinn client to the stream's
//!   FIN, is the very messages an AXFR over TCP gets; a client outside
//!   `axfr_allow` is refused.
//! * With `xfr_key`, dnspython's TSIG-signed AXFR over QUIC is answered with
//!   every message signed (dnspython verifies the chain); an unsigned one is
//!   refused NOTAUTH.
//! * A client that stops reading a transfer holds its transfer place no
//!   longer than the write timeout: other transfers go on, and its streams
//!   are reset with DOQ_REQUEST_CANCELLED.
//! * A resumed client's AXFR sent in 0-RTT is not transferred until the
//!   handshake completes (a relay holds the client's Finished), while its
//!   plain query in 0-RTT is answered at once.
//! * One source opening DoQ connections holds at most its share of the
//!   connection cap; another source still connects and is answered.
//! * With two QUIC listen addresses the cap and the shares are over both
//!   together: connections spread over them are refused past the cap in all.
//! * The certificate is re-read on SIGHUP; `dnslb check` refuses a QUIC
//!   address already used, and a certificate that cannot be read.
//!
//! dnspython and aioquic are run with `$DNSLB_PYTHON` (default `python3`);
//! without them those tests are skipped, unless `DNSLB_REQUIRE_PEERS=1`.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kit::quic::{dnspython, doq_connect, doq_endpoint, doq_exchange, run_python};
use crate::kit::tls::Pki;
use crate::kit::zero_rtt::{HandshakeRelay, ResumingClient};
use crate::kit::{
    Proc, SECRET_256, TsState, ZoneDir, crate_dir, dnslb_check, free_ports, http_get, local,
    or_skip, path_str, poll_until_async, query, start_ts_named,
};

/// How long the TS may take to start answering (a signing debug build).
const READY_LIMIT: Duration = Duration::from_secs(60);

/// `example.com.`: the cases' names, and `hosts` more addresses (a zone
/// whose transfer takes several messages).
fn zone(hosts: u32) -> String {
    let mut z = String::from(
        "$ORIGIN example.com.\n$TTL 300\n\
         @ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n\
         www A 192.0.2.10\nalias CNAME www\n*.wild A 192.0.2.99\n",
    );
    for i in 0..200u32 {
        z.push_str(&format!("big A 10.1.{}.{}\n", i / 250, i % 250 + 1));
    }
    for i in 0..hosts {
        z.push_str(&format!("host{i} A 10.2.{}.{}\n", i / 250, i % 250 + 1));
    }
    z
}

/// A `dnslb ts` child serving [`zone`] on plain DNS and on QUIC.
struct TsDoq {
    dir: ZoneDir,
    proc: Proc,
    dns: SocketAddr,
    quic: SocketAddr,
    metrics: SocketAddr,
}

impl TsDoq {
    /// Starts it with `extra` lines in its `[[ts]]` and `tail` after it,
    /// [`zone`] of `hosts` more names; ready when it answers the SOA.
    async fn start(hosts: u32, extra: &str, tail: &str) -> TsDoq {
        let dir = ZoneDir::new();
        dir.write("example.com.zone", &zone(hosts));
        // The test's own copy of the pair, named relative to the config.
        let data = crate_dir().join("tests/data/tls");
        dir.copy("doq.pem", &data.join("ls.pem"));
        dir.copy("doq.key", &data.join("ls.key"));
        let [dns, quic, metrics] = free_ports(3).try_into().unwrap();
        let config = format!(
            "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{dns}\"\nzones = [\"example.com.zone\"]\n\
             metrics = \"127.0.0.1:{metrics}\"\nworkers = 1\n\
             quic = {{ listen = \"127.0.0.1:{quic}\", cert = \"doq.pem\", key = \"doq.key\" }}\n\
             {extra}\n{tail}"
        );
        let conf = dir.path().join("config.toml");
        let proc = start_ts_named(
            &conf,
            Some(&config),
            "ts1",
            dir.path(),
            TsState::BesideZones,
            (local(dns), "example.com"),
            READY_LIMIT,
            |m| m.metadata.authoritative,
        )
        .await;
        TsDoq {
            dir,
            proc,
            dns: local(dns),
            quic: local(quic),
            metrics: local(metrics),
        }
    }

    async fn metric(&self, line: &str) -> bool {
        http_get(self.metrics, "/metrics").await.body.contains(line)
    }
}

/// `name` `qtype` with EDNS (1232), the ID 0, as DoQ sends it.
fn question(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232)).to_vec().unwrap();
    q[..2].copy_from_slice(&[0, 0]);
    q
}

/// Sends `q` over TCP from `from` and reads `n` messages of the answer.
async fn tcp_messages(from: IpAddr, to: SocketAddr, q: &[u8], n: usize) -> Vec<Vec<u8>> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let read = async {
            let len = usize::from(s.read_u16().await.unwrap());
            let mut m = vec![0; len];
            s.read_exact(&mut m).await.unwrap();
            m
        };
        out.push(
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .unwrap(),
        );
    }
    out
}

/// The cases compared over TCP and QUIC, as dnspython's lines name them.
const CASES: &str = "[('www.example.com', 'A', False), ('nope.example.com', 'A', False), \
    ('www.example.com', 'MX', False), ('alias.example.com', 'A', False), \
    ('x.wild.example.com', 'A', False), ('www.example.com', 'A', True), \
    ('nope.example.com', 'A', True), ('big.example.com', 'A', False)]";

/// The dnspython script: for each case, the raw answers over TCP and over
/// a DoQ stream (the query's ID 0 both ways) compared byte for byte, then
/// `dns.query.quic` against `dns.query.tcp`; one line a case:
/// `NAME TYPE DO same|DIFF parsed-same|parsed-DIFF RCODE ANCOUNT TC LEN RRSIGS`.
const COMPARE: &str = r#"
import socket, struct, sys
import dns.flags, dns.message, dns.query, dns.quic, dns.rcode, dns.rdatatype
tcp_port, quic_port = int(sys.argv[1]), int(sys.argv[2])
def over_tcp(wire):
    s = socket.create_connection(('127.0.0.1', tcp_port), timeout=5)
    s.sendall(struct.pack('!H', len(wire)) + wire)
    buf = b''
    while len(buf) < 2 or len(buf) < 2 + struct.unpack('!H', buf[:2])[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError('tcp closed')
        buf += chunk
    s.close()
    return buf[2:2 + struct.unpack('!H', buf[:2])[0]]
def section(m):
    return (m.rcode(), m.flags, sorted(str(r) for r in m.answer),
            sorted(str(r) for r in m.authority), sorted(str(r) for r in m.additional))
with dns.quic.SyncQuicManager(verify_mode=False) as manager:
    conn = manager.connect('127.0.0.1', quic_port)
    for name, qtype, do in CASES:
        q = dns.message.make_query(name, qtype, use_edns=0, payload=1232, want_dnssec=do)
        q.id = 0
        wire = q.to_wire()
        tcp = over_tcp(wire)
        with conn.make_stream(5) as stream:
            stream.send(wire, True)
            doq = stream.receive(5)
        m = dns.message.from_wire(doq)
        by_quic = dns.query.quic(q, '127.0.0.1', port=quic_port, verify=False, timeout=5)
        by_tcp = dns.query.tcp(q, '127.0.0.1', port=tcp_port, timeout=5)
        rrsigs = sum(1 for r in m.answer + m.authority if r.rdtype == dns.rdatatype.RRSIG)
        print(name, qtype, do, 'same' if doq == tcp else 'DIFF',
              'parsed-same' if section(by_quic) == section(by_tcp) else 'parsed-DIFF',
              dns.rcode.to_text(m.rcode()), len(m.answer),
              bool(m.flags & dns.flags.TC), len(doq), rrsigs)
"#;

/// The same answer over QUIC as over TCP, byte for byte, for every case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnspython_gets_over_quic_the_bytes_tcp_gets() {
    const TEST: &str = "dnspython_gets_over_quic_the_bytes_tcp_gets";
    let python = or_skip!(dnspython(TEST));
    let dnssec = "dnssec = { keys = \"keys\", algorithm = \"ecdsap256sha256\", denial = \"nsec\" }";
    let ts = TsDoq::start(0, dnssec, "").await;
    let script = format!("CASES = {CASES}\n{COMPARE}");
    let (dns, quic) = (ts.dns.port().to_string(), ts.quic.port().to_string());
    let stdout = run_python(python, vec!["-c".into(), script, dns, quic]).await;
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    for l in &lines {
        assert_eq!((l[3], l[4]), ("same", "parsed-same"), "{stdout}");
        assert_eq!(l[7], "False", "never truncated: {stdout}");
    }
    let case = |name: &str, qtype: &str, do_: &str| {
        lines
            .iter()
            .find(|l| l[..3] == [name, qtype, do_])
            .unwrap_or_else(|| panic!("{name} {qtype} {do_}: {stdout}"))
    };
    // rcode, answer RRsets, RRSIGs.
    let rcode_an_sigs = |l: &Vec<&str>| (l[5].to_owned(), l[6].to_owned(), l[9].to_owned());
    let want = |r: &str, an: &str, sigs: &str| (r.to_owned(), an.to_owned(), sigs.to_owned());
    assert_eq!(
        rcode_an_sigs(case("nope.example.com", "A", "False")),
        want("NXDOMAIN", "0", "0")
    );
    assert_eq!(
        rcode_an_sigs(case("www.example.com", "MX", "False")),
        want("NOERROR", "0", "0"),
        "NODATA"
    );
    assert_eq!(
        rcode_an_sigs(case("alias.example.com", "A", "False")),
        want("NOERROR", "2", "0"),
        "the CNAME and its target"
    );
    assert_eq!(
        rcode_an_sigs(case("x.wild.example.com", "A", "False")),
        want("NOERROR", "1", "0")
    );
    assert_eq!(
        rcode_an_sigs(case("www.example.com", "A", "True")),
        want("NOERROR", "2", "1"),
        "the A and its RRSIG"
    );
    let nx_do = case("nope.example.com", "A", "True");
    assert_eq!(nx_do[5], "NXDOMAIN", "{stdout}");
    assert!(
        nx_do[9].parse::<u32>().unwrap() >= 2,
        "SOA and NSEC signed: {stdout}"
    );
    let big = case("big.example.com", "A", "False");
    assert!(
        big[8].parse::<u32>().unwrap() > 1232,
        "larger than UDP's: {stdout}"
    );
    assert!(ts.metric("dnslb_ts_doq_queries_total 16\n").await);
    ts.proc.stop(Duration::from_secs(10));
}

/// An AXFR on a DoQ stream gets the messages an AXFR over TCP gets, then
/// the FIN; a client outside `axfr_allow` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axfr_over_quic_is_the_tcp_transfer_and_follows_axfr_allow() {
    let ts = TsDoq::start(3000, "axfr_allow = [\"127.0.0.2\"]", "").await;
    let allowed = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let q = question("example.com", RecordType::AXFR);
    let ep = doq_endpoint(allowed, None);
    let conn = doq_connect(&ep, ts.quic).await;
    let over_quic = doq_exchange(&conn, &q).await.unwrap();
    assert!(over_quic.len() > 1, "{} messages", over_quic.len());
    let over_tcp = tcp_messages(allowed, ts.dns, &q, over_quic.len()).await;
    assert!(over_quic == over_tcp, "the same messages, byte for byte");
    let soas: usize = (over_quic.iter())
        .map(|m| Message::from_vec(m).unwrap())
        .map(|m| {
            (m.answers.iter())
                .filter(|r| r.record_type() == RecordType::SOA)
                .count()
        })
        .sum();
    assert_eq!(soas, 2, "the SOA first and last");
    // From 127.0.0.1, outside axfr_allow: one REFUSED message.
    let other = doq_endpoint(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
    let conn = doq_connect(&other, ts.quic).await;
    let refused = doq_exchange(&conn, &q).await.unwrap();
    assert_eq!(refused.len(), 1);
    let m = Message::from_vec(&refused[0]).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
    assert!(ts.metric("dnslb_ts_xfr_total{kind=\"axfr\"} 2\n").await);
    ts.proc.stop(Duration::from_secs(10));
}

/// dnspython's AXFR over a DoQ stream, TSIG-signed with the key or not:
/// `RCODE MESSAGES RECORDS SIGNED` (the TSIG of each message verified by
/// dnspython, as `dns.query.inbound_xfr` does over TCP).
const SIGNED_AXFR: &str = r#"
import sys
import dns.message, dns.name, dns.quic, dns.rcode, dns.rdatatype, dns.tsigkeyring
port, secret, sign = int(sys.argv[1]), sys.argv[2], sys.argv[3] == 'signed'
keyring = dns.tsigkeyring.from_text({'xfr.': ('hmac-sha256', secret)})
origin = dns.name.from_text('example.com')
q = dns.message.make_query(origin, 'AXFR')
q.id = 0
if sign:
    q.use_tsig(keyring, keyname='xfr.', algorithm='hmac-sha256')
wire = q.to_wire()
with dns.quic.SyncQuicManager(verify_mode=False) as manager:
    conn = manager.connect('127.0.0.1', port)
    with conn.make_stream(10) as stream:
        stream.send(wire, True)
        ctx, soas, messages, records, signed, rcode = None, 0, 0, 0, 0, 0
        while soas < 2:
            r = dns.message.from_wire(stream.receive(10), keyring=keyring if sign else None,
                                      request_mac=q.mac if sign else b'', xfr=True,
                                      origin=origin, tsig_ctx=ctx, multi=sign)
            ctx = r.tsig_ctx
            messages += 1
            signed += r.had_tsig
            rcode = r.rcode()
            if rcode != 0:
                break
            for rrset in r.answer:
                records += len(rrset)
                if rrset.rdtype == dns.rdatatype.SOA:
                    soas += 1
print(dns.rcode.to_text(rcode), messages, records, signed)
"#;

/// With `xfr_key`, a signed AXFR over QUIC is answered, each message signed;
/// an unsigned one is refused NOTAUTH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_xfr_key_a_signed_axfr_over_quic_is_answered_and_an_unsigned_refused() {
    const TEST: &str = "with_xfr_key_a_signed_axfr_over_quic_is_answered_and_an_unsigned_refused";
    let python = or_skip!(dnspython(TEST));
    let key = format!(
        "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET_256}\"\n"
    );
    let extra = "axfr_allow = [\"127.0.0.0/8\"]\nxfr_key = \"xfr\"";
    let ts = TsDoq::start(1000, extra, &key).await;
    let run = |how: &'static str| {
        let (python, port) = (python.clone(), ts.quic.port().to_string());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(python)
                .args(["-c", SIGNED_AXFR, &port, SECRET_256, how])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        })
    };
    let signed = run("signed").await.unwrap();
    let f: Vec<u32> = (signed.split_whitespace().skip(1))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(signed.starts_with("NOERROR "), "{signed}");
    // 1,000 hosts, 200 addresses of big, NS, ns1, www, alias, the wildcard,
    // and the SOA twice.
    assert_eq!(f[1], 1000 + 200 + 5 + 2, "{signed}");
    assert!(f[0] > 1 && f[2] == f[0], "every message signed: {signed}");
    let unsigned = run("unsigned").await.unwrap();
    assert!(unsigned.starts_with("NOTAUTH 1 0 0"), "{unsigned}");
    ts.proc.stop(Duration::from_secs(10));
}

/// Clients that stop reading their transfers (a small receive window, never
/// read, the connection kept alive) hold the TS's transfer places (8) no longer than the write
/// timeout: a transfer over TCP is then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_transfers_do_not_hold_the_places() {
    let ts = TsDoq::start(20_000, "axfr_allow = [\"127.0.0.0/8\"]", "").await;
    let mut small = quinn::TransportConfig::default();
    // Kept alive: the connection is not closed as idle meanwhile (the
    // client has nothing to send while the server waits on its window).
    small
        .stream_receive_window(4096u32.into())
        .receive_window(8192u32.into())
        .keep_alive_interval(Some(Duration::from_secs(1)));
    let ep = doq_endpoint(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(small));
    let conn = doq_connect(&ep, ts.quic).await;
    let q = question("example.com", RecordType::AXFR);
    let mut held = Vec::new();
    for _ in 0..8 {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        send.write_all(&framed).await.unwrap();
        send.finish().unwrap();
        held.push((send, recv));
    }
    // Every place taken once the 8 transfers started (they are stuck on the
    // client's window): a TCP transfer is then answered SERVFAIL at once,
    // counted as busy.
    let started = std::time::Instant::now();
    let all_started = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            ts.metric("dnslb_ts_xfr_total{kind=\"axfr\"} 8\n")
                .await
                .then_some(())
        },
    )
    .await;
    assert!(all_started.is_some(), "the 8 transfers did not start");
    let busy = "dnslb_ts_xfr_refused_busy_total 1\n";
    let mut refused_seen = false;
    let served = loop {
        let first = tcp_messages(IpAddr::V4(Ipv4Addr::LOCALHOST), ts.dns, &q, 1).await;
        let m = Message::from_vec(&first[0]).unwrap();
        if m.metadata.response_code == ResponseCode::NoError {
            break started.elapsed();
        }
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        refused_seen = refused_seen || ts.metric(busy).await;
        assert!(started.elapsed() < Duration::from_secs(20), "still refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(refused_seen, "the places were all held at first");
    assert!(served >= Duration::from_secs(3), "freed after {served:?}");
    // The server cancelled the transfer it could not write.
    let (_, mut recv) = held.pop().unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let reset = async {
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a whole transfer, not a reset"),
                Err(e) => return e,
            }
        }
    };
    let why = tokio::time::timeout(Duration::from_secs(10), reset)
        .await
        .expect("the stream reset");
    assert!(
        matches!(why, quinn::ReadError::Reset(c) if c == quinn::VarInt::from_u32(3)),
        "DOQ_REQUEST_CANCELLED (0x3): {why:?}"
    );
    drop(held);
    ts.proc.stop(Duration::from_secs(10));
}

/// A resumed client's AXFR in 0-RTT waits for the handshake (its client's
/// Finished held back by a relay) while its A query in 0-RTT is answered;
/// once the Finished comes the transfer is the one TCP gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axfr_in_0rtt_waits_for_the_handshake() {
    let ts = TsDoq::start(0, "axfr_allow = [\"127.0.0.0/8\"]", "").await;
    let client = ResumingClient::new(b"doq");
    let first = client.connect(ts.quic).await;
    doq_exchange(&first, &question("www.example.com", RecordType::A))
        .await
        .unwrap();
    first.close(0u32.into(), b"");
    let relay = HandshakeRelay::start(ts.quic).await;
    let (conn, accepted) = client.connect_0rtt(relay.addr);
    let ask = |q: Vec<u8>| {
        let conn = conn.clone();
        tokio::spawn(async move { doq_exchange(&conn, &q).await })
    };
    let a = ask(question("www.example.com", RecordType::A));
    let axfr = ask(question("example.com", RecordType::AXFR));
    let seen = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            (ts.metric("dnslb_ts_doq_early_answered_total 1\n").await
                && ts.metric("dnslb_ts_doq_early_held_total 1\n").await)
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "the two queries did not come in 0-RTT");
    relay.pass_server();
    let answered = tokio::time::timeout(Duration::from_secs(10), a)
        .await
        .expect("the A answered before the handshake completed")
        .unwrap()
        .unwrap();
    assert_eq!(Message::from_vec(&answered[0]).unwrap().answers.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !axfr.is_finished(),
        "a transfer before the handshake completed"
    );
    let started = ts.metric("dnslb_ts_xfr_total{kind=\"axfr\"} 1\n").await;
    assert!(
        !started,
        "a transfer started before the handshake completed"
    );
    relay.release();
    let over_quic = tokio::time::timeout(Duration::from_secs(10), axfr)
        .await
        .expect("the AXFR once the handshake completed")
        .unwrap()
        .unwrap();
    assert!(accepted.await, "0-RTT accepted");
    let q = question("example.com", RecordType::AXFR);
    let over_tcp = tcp_messages(IpAddr::V4(Ipv4Addr::LOCALHOST), ts.dns, &q, over_quic.len()).await;
    assert_eq!(over_quic, over_tcp, "the transfer TCP gets");
    ts.proc.stop(Duration::from_secs(10));
}

/// The certificate a new DoQ connection to `addr` is served (DER).
async fn served_cert(addr: SocketAddr) -> Vec<u8> {
    let ep = doq_endpoint(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
    let conn = doq_connect(&ep, addr).await;
    let a = doq_exchange(&conn, &question("www.example.com", RecordType::A))
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&a[0]).unwrap().answers.len(), 1);
    let chain = conn.peer_identity().expect("a certificate");
    let chain = chain
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    conn.close(0u32.into(), b"");
    chain[0].to_vec()
}

/// A SIGHUP re-reads the certificate and key files: a new connection gets
/// the new certificate; a file that cannot be served leaves the last good
/// one serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_rereads_the_certificate() {
    let pki = or_skip!(Pki::new("a_sighup_rereads_the_certificate"));
    let mut ts = TsDoq::start(0, "", "").await;
    let first = served_cert(ts.quic).await;
    // Another certificate and key, signed by the test's CA.
    let (cert, key) = pki.leaf("ts1");
    ts.dir.copy("doq.pem", &cert);
    ts.dir.copy("doq.key", &key);
    ts.proc.signal(Signal::HUP);
    ts.proc
        .wait_line("quic certificate reloaded", Duration::from_secs(10))
        .await;
    let second = served_cert(ts.quic).await;
    assert_ne!(first, second, "the new certificate is served");
    ts.dir.write("doq.pem", "not a certificate\n");
    ts.proc.signal(Signal::HUP);
    ts.proc
        .wait_line("quic certificate reload refused", Duration::from_secs(10))
        .await;
    // The config check refuses the pair too: the zones are not reread.
    ts.proc
        .wait_line(
            "reload refused: the config file does not read",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        served_cert(ts.quic).await,
        second,
        "the last good one stays"
    );
    ts.proc.stop(Duration::from_secs(10));
}

/// `dnslb check` refuses a QUIC address that a DNS listener or another QUIC
/// listener uses (UDP both), and a certificate it cannot read; a TCP-only
/// listener on the same port number is fine.
#[test]
fn check_refuses_a_quic_address_used_twice_and_a_missing_certificate() {
    let dir = ZoneDir::new();
    dir.write("example.com.zone", &zone(0));
    let data = crate_dir().join("tests/data/tls");
    let (cert, key) = (data.join("ls.pem"), data.join("ls.key"));
    let (cert, key) = (path_str(&cert).to_owned(), path_str(&key).to_owned());
    let ts = |name: &str, listen: &str, quic: &str, cert: &str| {
        format!(
            "[[ts]]\nname = \"{name}\"\nlisten = \"{listen}\"\nzones = [\"example.com.zone\"]\n\
             quic = {{ listen = \"{quic}\", cert = \"{cert}\", key = \"{key}\" }}\n"
        )
    };
    let check = |text: String| {
        let conf = dir.write("config.toml", &text);
        let out = dnslb_check(&conf, dir.path());
        (out.status.success(), out.stderr)
    };
    let ok = ts("a", "127.0.0.1:5301", "127.0.0.1:5301", &cert);
    let (passed, err) = check(ok.replace(
        "quic = { listen = \"127.0.0.1:5301\"",
        "metrics = \"127.0.0.1:8854\"\nquic = { listen = \"127.0.0.1:8854\"",
    ));
    assert!(passed, "QUIC beside the metrics' TCP port: {err}");
    let (passed, err) = check(ok);
    assert!(!passed);
    assert!(
        err.contains("ts.quic.listen: 127.0.0.1:5301 is already used by table server \"a\" (UDP)"),
        "{err}"
    );
    let two = ts("a", "127.0.0.1:5301", "127.0.0.1:8854", &cert)
        + &ts("b", "127.0.0.1:5302", "127.0.0.1:8854", &cert);
    let (passed, err) = check(two);
    assert!(!passed);
    assert!(
        err.contains("127.0.0.1:8854 is already used by the DNS over QUIC of table server \"a\""),
        "{err}"
    );
    let missing = ts(
        "a",
        "127.0.0.1:5301",
        "127.0.0.1:8854",
        "/nonexistent/doq.pem",
    );
    let (passed, err) = check(missing);
    assert!(!passed);
    assert!(err.contains("ts.quic"), "{err}");
}

/// A measurement, not a check: queries a second to one TS over one DoQ
/// connection (one at a time, then 32 streams at once) against one TCP
/// connection (one at a time). Run it with `cargo test --test integration
/// ts_doq::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn measure_doq_against_tcp_on_a_ts() {
    const N: u32 = 3000;
    let ts = TsDoq::start(0, "", "").await;
    let q = question("www.example.com", RecordType::A);
    let ep = doq_endpoint(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
    let conn = doq_connect(&ep, ts.quic).await;
    let t = std::time::Instant::now();
    for _ in 0..N {
        doq_exchange(&conn, &q).await.unwrap();
    }
    let doq_serial = f64::from(N) / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    for _ in 0..N / 32 {
        let asks = (0..32).map(|_| doq_exchange(&conn, &q));
        for a in futures_util::future::join_all(asks).await {
            a.unwrap();
        }
    }
    let doq_32 = f64::from(N / 32 * 32) / t.elapsed().as_secs_f64();
    let mut s = tokio::net::TcpStream::connect(ts.dns).await.unwrap();
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let t = std::time::Instant::now();
    for _ in 0..N {
        s.write_all(&framed).await.unwrap();
        let len = usize::from(s.read_u16().await.unwrap());
        let mut m = vec![0; len];
        s.read_exact(&mut m).await.unwrap();
    }
    let tcp_serial = f64::from(N) / t.elapsed().as_secs_f64();
    eprintln!(
        "TS queries/s, one at a time: doq {doq_serial:.0}, tcp {tcp_serial:.0}; doq 32 streams at once: {doq_32:.0}"
    );
    ts.proc.stop(Duration::from_secs(10));
}

/// A TS serving example.com over DoQ on `addrs` listen addresses of
/// 127.0.0.1 with a connection cap of `cap`, run in the test's runtime.
struct CappedTs {
    quic: Vec<SocketAddr>,
    stats: std::sync::Arc<dnslb::server::doq::DoqStats>,
    token: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: ZoneDir,
}

impl CappedTs {
    fn start(addrs: usize, cap: usize) -> CappedTs {
        use dnslb::server::doq::{DoqListeners, DoqStats, quic_server_config};
        use dnslb::server::tls::CertSwap;
        use dnslb::server::{self, Listeners, ServerOptions};
        use std::sync::Arc;

        let dir = ZoneDir::new();
        let path = dir.write("example.com.zone", &zone(0));
        let ts =
            Arc::new(dnslb::ts::TableServer::load(crate::kit::ts_settings(vec![path])).unwrap());
        let mut listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], 1).unwrap();
        let socks: Vec<_> = (0..addrs)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let quic = socks.iter().map(|s| s.local_addr().unwrap()).collect();
        let data = crate_dir().join("tests/data/tls");
        let certs = Arc::new(CertSwap::load(&data.join("ls.pem"), &data.join("ls.key")).unwrap());
        let stats = Arc::new(DoqStats::default());
        let config = quic_server_config(certs, &stats).unwrap();
        listeners.set_doq(DoqListeners::new(socks, config, stats.clone()).unwrap());
        let opts = ServerOptions {
            workers: 1,
            tcp_max_connections: cap,
            ..ServerOptions::default()
        };
        let token = tokio_util::sync::CancellationToken::new();
        let serve = server::serve(listeners, ts, opts, token.clone());
        let task = tokio::spawn(async move {
            let _ = serve.await;
        });
        CappedTs {
            quic,
            stats,
            token,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// DoQ connections are shared out as TCP's: one source opening connections
/// gets seven eighths of the connection cap and no more (the rest refused
/// at once and counted), and another source's connection is still made and
/// answered.
#[tokio::test]
async fn one_source_opening_doq_connections_leaves_quic_to_the_others() {
    use std::sync::atomic::Ordering::Relaxed;

    let _load = crate::kit::timed().await;
    let cap = 8;
    let capped = CappedTs::start(1, cap);
    let (quic, stats) = (capped.quic[0], capped.stats.clone());

    let flood = doq_endpoint(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), None);
    let mut held = Vec::new();
    for _ in 0..cap + 4 {
        let connecting = flood.connect(quic, "dns.test").unwrap();
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(20), connecting).await {
            held.push(c);
        }
    }
    let share = cap - cap / 8;
    assert_eq!(
        held.len(),
        share,
        "the source holds seven eighths of the cap"
    );
    assert_eq!(stats.refused.load(Relaxed), (cap + 4 - share) as u64);
    // Another source still gets a connection, and its answer.
    let other = doq_endpoint(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), None);
    let conn = doq_connect(&other, quic).await;
    let got = doq_exchange(&conn, &question("www.example.com.", RecordType::A))
        .await
        .expect("answered");
    let answer = Message::from_vec(&got[0]).unwrap();
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    // The held connections stay usable.
    let got = doq_exchange(&held[0], &question("www.example.com.", RecordType::A)).await;
    assert!(got.is_ok(), "a held connection still answers: {got:?}");
    capped.stop().await;
}

/// The connection cap is one over every DoQ listen address: one source
/// spreading its connections over two addresses holds seven eighths of the
/// cap in all, another source takes the last place, and a third is refused
/// on either address.
#[tokio::test]
async fn the_doq_cap_is_over_all_listen_addresses_together() {
    use std::sync::atomic::Ordering::Relaxed;

    let _load = crate::kit::timed().await;
    let cap = 8;
    let capped = CappedTs::start(2, cap);
    let (quic, stats) = (capped.quic.clone(), capped.stats.clone());

    let connect = |ep: quinn::Endpoint, to: SocketAddr| async move {
        let connecting = ep.connect(to, "dns.test").unwrap();
        match tokio::time::timeout(Duration::from_secs(20), connecting).await {
            Ok(Ok(c)) => Some(c),
            _ => None,
        }
    };
    let flood = doq_endpoint(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), None);
    let mut held = Vec::new();
    for i in 0..cap + 4 {
        if let Some(c) = connect(flood.clone(), quic[i % 2]).await {
            held.push(c);
        }
    }
    let share = cap - cap / 8;
    assert_eq!(
        held.len(),
        share,
        "seven eighths of the cap over both addresses"
    );
    let other = doq_endpoint(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), None);
    let last = connect(other, quic[1])
        .await
        .expect("the last place is taken");
    let got = doq_exchange(&last, &question("www.example.com.", RecordType::A)).await;
    assert!(got.is_ok(), "the last connection is answered: {got:?}");
    let third = doq_endpoint(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)), None);
    for to in &quic {
        assert!(
            connect(third.clone(), *to).await.is_none(),
            "the cap is full in all: {to} refuses"
        );
    }
    assert_eq!(stats.refused.load(Relaxed), (cap + 4 - share + 2) as u64);
    capped.stop().await;
}

//! Session resumption and 0-RTT on the LS's DNS over QUIC (`[ls.quic]`):
//!
//! * A returning quinn client resumes: its second and third connections are
//!   shown no certificate, and the LS counts the resumptions.
//! * A resumed client's queries sent in 0-RTT, the client's Finished held
//!   back by a relay so the handshake cannot complete: a plain query is
//!   answered, an UPDATE and an AXFR are not; once the Finished reaches the
//!   LS they are answered too, and the client hears its 0-RTT was accepted.
//! * aioquic (dnspython's QUIC, an independent stack) resumes with the
//!   ticket the LS gave it and has its 0-RTT query answered.
//!
//! aioquic is run with `$DNSLB_PYTHON` (default `python3`); without it that
//! test is skipped, unless `DNSLB_REQUIRE_PEERS=1`.
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::quic::{dnspython, doq_exchange, run_python};
use crate::kit::tls::TABLE;
use crate::kit::zero_rtt::{HandshakeRelay, ResumingClient, past_first_flight};
use crate::kit::{
    LsRoleRun, TestTs, ZoneDir, crate_dir, free_ports, local, or_skip, path_str, poll_until_async,
    query, start_ls_role, table_ts,
};

/// An LS (in the test process) with `[ls.quic]` in front of a TS serving
/// [`TABLE`].
struct QuicLs {
    _dir: ZoneDir,
    ts: TestTs,
    run: LsRoleRun,
    quic: SocketAddr,
}

impl QuicLs {
    async fn start() -> QuicLs {
        let (dir, ts) = table_ts(TABLE).await;
        let p = free_ports(2);
        let quic = local(p[1]);
        let data = crate_dir().join("tests/data/tls");
        let text = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\nworkers = 1\n\n\
             [ls.quic]\nlisten = [\"{quic}\"]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\n",
            p[0],
            path_str(&data.join("ls.pem")),
            path_str(&data.join("ls.key")),
            ts.addr
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let run = start_ls_role(&path).await;
        QuicLs {
            _dir: dir,
            ts,
            run,
            quic,
        }
    }

    /// The LS's counter `name` (a `dnslb_doq_*` family).
    fn counter(&self, name: &str) -> u64 {
        let text = dnslb::metrics::render_prometheus(&self.run.balancer);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    async fn stop(self) {
        self.run.stop().await;
        self.ts.stop().await;
    }
}

/// `name` `qtype`, the ID 0.
fn question(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut q = query(name, qtype, None).to_vec().unwrap();
    q[..2].copy_from_slice(&[0, 0]);
    q
}

/// An UPDATE of `example.com.` (RFC 2136: the zone section only), the ID 0.
fn update() -> Vec<u8> {
    let mut m = vec![0, 0, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
    m
}

/// The one message of a DoQ answer.
fn one(answer: Result<Vec<Vec<u8>>, String>) -> Message {
    let messages = answer.expect("an answer");
    Message::from_vec(&messages[0]).unwrap()
}

/// A client that has resumed once resumes again: the LS shows a certificate
/// to its first connection only, and counts the two resumptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_doq_client_resumes_without_a_certificate() {
    let ls = QuicLs::start().await;
    let client = ResumingClient::new(b"doq");
    let q = question("www.example.com", RecordType::A);
    for round in 1..=3 {
        let conn = client.connect(ls.quic).await;
        let a = one(doq_exchange(&conn, &q).await);
        assert_eq!(a.answers.len(), 1, "round {round}");
        conn.close(0u32.into(), b"");
    }
    assert_eq!(client.certificates_shown(), 1, "the 2nd and 3rd resumed");
    assert_eq!(ls.counter("dnslb_doq_resumed_total"), 2);
    assert_eq!(ls.counter("dnslb_doq_connections_total"), 3);
    ls.stop().await;
}

/// In 0-RTT, with the handshake kept from completing, a plain query is
/// answered and an UPDATE and an AXFR are not; they are once it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_plain_query_in_0rtt_is_answered_before_the_handshake() {
    let ls = QuicLs::start().await;
    let client = ResumingClient::new(b"doq");
    let first = client.connect(ls.quic).await;
    one(doq_exchange(&first, &question("www.example.com", RecordType::A)).await);
    first.close(0u32.into(), b"");
    let relay = HandshakeRelay::start(ls.quic).await;
    let (conn, accepted) = client.connect_0rtt(relay.addr);
    let ask = |q: Vec<u8>| {
        let conn = conn.clone();
        tokio::spawn(async move { doq_exchange(&conn, &q).await })
    };
    let plain = ask(question("www.example.com", RecordType::A));
    let upd = ask(update());
    let axfr = ask(question("example.com", RecordType::AXFR));
    // The LS has all three from 0-RTT data (the client heard nothing yet).
    let seen = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            (ls.counter("dnslb_doq_early_answered_total") == 1
                && ls.counter("dnslb_doq_early_held_total") == 2)
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "the three queries did not come in 0-RTT");
    relay.pass_server();
    let a = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .expect("the plain query answered before the handshake completed")
        .unwrap();
    let a = one(a);
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
    // The client has the answer, the LS still lacks the client's Finished.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !upd.is_finished(),
        "the UPDATE answered before the handshake"
    );
    assert!(
        !axfr.is_finished(),
        "the AXFR answered before the handshake"
    );
    assert!(
        relay.held_from_client() > 0,
        "the client's Finished is held"
    );
    assert_eq!(ls.counter("dnslb_doq_connections_total"), 1, "not complete");
    relay.release();
    let u = tokio::time::timeout(Duration::from_secs(10), upd)
        .await
        .expect("the UPDATE answered once the handshake completed")
        .unwrap();
    assert_eq!(one(u).metadata.op_code, OpCode::Update);
    let x = tokio::time::timeout(Duration::from_secs(10), axfr)
        .await
        .expect("the AXFR answered once the handshake completed")
        .unwrap();
    assert!(x.is_ok(), "{x:?}");
    assert!(accepted.await, "the client hears its 0-RTT was accepted");
    assert_eq!(ls.counter("dnslb_doq_connections_total"), 2);
    assert_eq!(ls.counter("dnslb_doq_resumed_total"), 1);
    conn.close(0u32.into(), b"");
    ls.stop().await;
}

/// The relay tells a client's first flight (Initial and 0-RTT packets,
/// coalesced or not) from its Finished and what follows.
#[test]
fn a_first_flight_is_initial_and_0rtt_packets_only() {
    // A long header packet of `kind` with a payload of `len` bytes.
    let long = |kind: u8, len: u8| {
        let mut p = vec![0xc0 | (kind << 4), 0, 0, 0, 1, 2, 9, 9, 1, 7];
        if kind == 0 {
            p.extend_from_slice(&[0x01, 0xaa]); // a 1-byte token
        }
        p.push(len);
        p.extend(std::iter::repeat_n(0, usize::from(len)));
        p
    };
    let mut first = long(0, 20);
    first.extend(long(1, 30));
    assert!(!past_first_flight(&first));
    let mut fin = long(0, 20);
    fin.extend(long(2, 30));
    assert!(past_first_flight(&fin), "a coalesced Handshake packet");
    assert!(past_first_flight(&[0x40, 1, 2, 3]), "1-RTT");
}

/// aioquic resumes with the LS's ticket and its query sent in 0-RTT is
/// answered; the first connection was a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_resumes_and_its_0rtt_query_is_answered() {
    const TEST: &str = "aioquic_resumes_and_its_0rtt_query_is_answered";
    let python = or_skip!(dnspython(TEST));
    let ls = QuicLs::start().await;
    let script = format!(
        r#"
import asyncio, ssl, dns.message
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, StreamDataReceived

tickets = []

class P(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.got, self.done, self.hs = b"", asyncio.Event(), asyncio.Event()
        self.resumed = self.early = None
    def quic_event_received(self, e):
        if isinstance(e, HandshakeCompleted):
            self.resumed, self.early = e.session_resumed, e.early_data_accepted
            self.hs.set()
        if isinstance(e, StreamDataReceived):
            self.got += e.data
            if e.end_stream:
                self.done.set()

async def ask(early):
    c = QuicConfiguration(is_client=True, alpn_protocols=["doq"], verify_mode=ssl.CERT_NONE,
                          server_name="dns.test")
    if early:
        c.session_ticket = tickets[-1]
    async with connect("127.0.0.1", {port}, configuration=c, create_protocol=P,
                       session_ticket_handler=tickets.append, wait_connected=not early) as p:
        q = dns.message.make_query("www.example.com", "A")
        q.id = 0
        w = q.to_wire()
        sid = p._quic.get_next_available_stream_id()
        p._quic.send_stream_data(sid, len(w).to_bytes(2, "big") + w, end_stream=True)
        p.transmit()
        await asyncio.wait_for(p.done.wait(), 5)
        await asyncio.wait_for(p.hs.wait(), 5)
        for _ in range(100):
            if tickets:
                break
            await asyncio.sleep(0.05)
        r = dns.message.from_wire(p.got[2:])
        print("early" if early else "first", "resumed", p.resumed,
              "0rtt", p.early, dns.rcode.to_text(r.rcode()), r.answer[0][0])

async def main():
    await ask(False)
    await ask(True)

asyncio.run(main())
"#,
        port = ls.quic.port()
    );
    let out = run_python(python, vec!["-c".into(), script]).await;
    assert!(
        out.contains("first resumed False 0rtt False NOERROR 192.0.2.10"),
        "{out}"
    );
    assert!(
        out.contains("early resumed True 0rtt True NOERROR 192.0.2.10"),
        "{out}"
    );
    assert_eq!(ls.counter("dnslb_doq_resumed_total"), 1);
    assert_eq!(ls.counter("dnslb_doq_early_answered_total"), 1);
    ls.stop().await;
}

//! DNS over QUIC on the LS (`[ls.quic]`, RFC 9250): a raw quinn client and
//! dnspython (`dns.query.quic`, with aioquic) get the answers UDP gets; the
//! DNS ID 0 rule (a non-zero ID closes the connection with
//! DOQ_PROTOCOL_ERROR); padding when the query is padded; a client holding
//! every stream open without a query starves no one else; a stop closes an
//! idle connection with DOQ_NO_ERROR at once; connections spread over two
//! workers are each answered.
//!
//! dnspython and aioquic are run with `$DNSLB_PYTHON` (default `python3`);
//! without them the dnspython test is skipped, unless `DNSLB_REQUIRE_PEERS=1`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::quic::{dnspython, doq_connect, local_quic_client, run_python};
use crate::kit::tls::{Pki, TABLE};
use crate::kit::{
    LsRoleRun, TestTs, exchange, free_ports, or_skip, path_str, query, start_ls_role, start_ts,
    start_ts_table, ts_settings,
};

/// The table behind the LS: [`TABLE`]'s A and a CNAME to it.
fn table() -> String {
    format!("{TABLE}alias.example.com www.example.com CNAME\n")
}

/// A zone whose `txt.big.test.` TXT answer (20 strings of 100 bytes) is
/// larger than a UDP answer may be.
fn big_zone() -> String {
    let mut z = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n",
    );
    for i in 0..20 {
        z.push_str(&format!("txt TXT \"{i:02}{}\"\n", "x".repeat(98)));
    }
    z
}

/// An LS with plain DNS and `[ls.quic]` in front of a TS serving [`table`]
/// and [`big_zone`].
struct Doq {
    _pki: Pki,
    ts: TestTs,
    run: LsRoleRun,
    quic: SocketAddr,
}

impl Doq {
    async fn start(test: &str) -> Option<Doq> {
        Doq::start_with(test, "").await
    }

    /// [`Doq::start`] with `extra` (tables) after the backend's.
    async fn start_with(test: &str, extra: &str) -> Option<Doq> {
        Doq::start_full(test, "", extra).await
    }

    /// [`Doq::start_with`], with `ls` (keys) in `[ls]` too.
    async fn start_full(test: &str, ls: &str, extra: &str) -> Option<Doq> {
        let pki = Pki::new(test)?;
        let (cert, key) = pki.leaf("ls");
        let files = vec![
            pki.dir.write("t.txt", &table()),
            pki.dir.write("big.test.zone", &big_zone()),
        ];
        let ts = start_ts(ts_settings(files)).await;
        let ports = free_ports(2);
        let quic = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let text = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\n{ls}\n[ls.quic]\nlisten = [\"{quic}\"]\ncert = \"{}\"\nkey = \"{}\"\n\n[[ls.backend]]\nname = \"b1\"\naddr = \"{}\"\n{extra}",
            ports[0],
            path_str(&cert),
            path_str(&key),
            ts.addr
        );
        let config = pki.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let run = start_ls_role(&config).await;
        Some(Doq {
            _pki: pki,
            ts,
            run,
            quic,
        })
    }

    async fn stop(self) {
        self.run.stop().await;
        self.ts.stop().await;
    }
}

/// Sends the message `q` (as it is: its ID is not changed) on a new stream
/// and reads the answer's message, without its length prefix.
async fn ask_raw(conn: &quinn::Connection, q: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    send.write_all(&framed).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let read = recv.read_to_end(65_537);
    let got = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let len = usize::from(u16::from_be_bytes([got[0], got[1]]));
    assert_eq!(got.len(), 2 + len, "one message, then the FIN");
    Ok(got[2..].to_vec())
}

/// `name` `qtype` with EDNS, the ID 0.
fn question(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232)).to_vec().unwrap();
    q[..2].copy_from_slice(&[0, 0]);
    q
}

/// The records of an answer, as text, for comparing transports.
fn records(m: &Message) -> (ResponseCode, Vec<String>) {
    let rrs = m.answers.iter().map(|r| r.to_string()).collect();
    (m.metadata.response_code, rrs)
}

/// Over DoQ an A, a CNAME chain and an NXDOMAIN get the answers UDP gets,
/// with the ID 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doq_answers_as_udp_does_with_the_id_0() {
    let ls = or_skip!(Doq::start("doq_answers_as_udp_does_with_the_id_0").await);
    let ep = local_quic_client(b"doq");
    let conn = doq_connect(&ep, ls.quic).await;
    for (name, qtype) in [
        ("www.example.com", RecordType::A),
        ("alias.example.com", RecordType::A),
        ("nope.example.com", RecordType::A),
    ] {
        let q = question(name, qtype);
        let raw = ask_raw(&conn, &q).await.unwrap();
        assert_eq!(&raw[..2], &[0, 0], "the answer's ID is 0");
        let over_quic = Message::from_vec(&raw).unwrap();
        let (_, over_udp, _) = exchange(ls.run.addr, &q).await;
        assert_eq!(records(&over_quic), records(&over_udp), "{name}");
    }
    let nx = Message::from_vec(
        &ask_raw(&conn, &question("nope.example.com", RecordType::A))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let text = dnslb::metrics::render_prometheus(&ls.run.balancer);
    assert!(text.contains("dnslb_doq_queries_total 4\n"), "{text}");
    assert!(text.contains("dnslb_doq_connections_total 1\n"), "{text}");
    conn.close(0u32.into(), b"");
    ls.stop().await;
}

/// Four connections open at once on an LS of two workers (its connections
/// spread over both connection threads, the endpoint on one of them): each
/// is answered, its queries interleaved with the others', then a stop still
/// ends the LS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_every_worker_are_each_answered() {
    let test = "connections_on_every_worker_are_each_answered";
    let ls = or_skip!(Doq::start_full(test, "workers = 2\n", "").await);
    let ep = local_quic_client(b"doq");
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(doq_connect(&ep, ls.quic).await);
    }
    let q = question("www.example.com", RecordType::A);
    let (_, over_udp, _) = exchange(ls.run.addr, &q).await;
    for round in 0..3 {
        for (i, conn) in conns.iter().enumerate() {
            let got = ask_raw(conn, &q).await;
            let got = got.unwrap_or_else(|e| panic!("connection {i}, round {round}: {e}"));
            let over_quic = Message::from_vec(&got).unwrap();
            assert_eq!(records(&over_quic), records(&over_udp), "connection {i}");
        }
    }
    for conn in &conns {
        conn.close(0u32.into(), b"");
    }
    tokio::time::timeout(Duration::from_secs(10), ls.stop())
        .await
        .expect("the LS stops with its QUIC connections spread over its threads");
}

/// A rule's `transport = ["doq"]` holds for DoQ queries and for no other
/// transport's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_names_doq_as_its_own_transport() {
    let rule = "\n[[ls.rule]]\nname = \"quic-only\"\nmatch = { transport = [\"doq\"] }\naction = \"refuse\"\n";
    let ls = or_skip!(Doq::start_with("a_rule_names_doq_as_its_own_transport", rule).await);
    let conn = doq_connect(&local_quic_client(b"doq"), ls.quic).await;
    let q = question("www.example.com", RecordType::A);
    let over_quic = Message::from_vec(&ask_raw(&conn, &q).await.unwrap()).unwrap();
    assert_eq!(over_quic.metadata.response_code, ResponseCode::Refused);
    let (_, over_udp, _) = exchange(ls.run.addr, &q).await;
    assert_eq!(over_udp.metadata.response_code, ResponseCode::NoError);
    assert!(!over_udp.answers.is_empty(), "UDP is answered");
    conn.close(0u32.into(), b"");
    ls.stop().await;
}

/// An answer too large for UDP, which the backend truncates there, is
/// asked again over TCP: the DoQ client gets it whole, never TC=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_backend_answer_reaches_a_doq_client_whole() {
    let ls = or_skip!(Doq::start("a_truncated_backend_answer_reaches_a_doq_client_whole").await);
    let q = question("txt.big.test", RecordType::TXT);
    let (_, over_udp, _) = exchange(ls.run.addr, &q).await;
    assert!(over_udp.metadata.truncation, "UDP gets TC=1");
    let conn = doq_connect(&local_quic_client(b"doq"), ls.quic).await;
    let over_quic = Message::from_vec(&ask_raw(&conn, &q).await.unwrap()).unwrap();
    assert!(!over_quic.metadata.truncation, "DoQ never sees TC=1");
    assert_eq!(over_quic.answers.len(), 20, "the whole answer");
    conn.close(0u32.into(), b"");
    ls.stop().await;
}

/// A padded query gets an answer padded to 468 bytes; an unpadded one, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_query_gets_a_padded_answer() {
    let ls = or_skip!(Doq::start("a_padded_query_gets_a_padded_answer").await);
    let ep = local_quic_client(b"doq");
    let conn = doq_connect(&ep, ls.quic).await;
    let plain = question("www.example.com", RecordType::A);
    // The OPT record is last: add a padding option (code 12) of 8 bytes.
    let mut padded = plain.clone();
    let at = padded.len() - 2;
    padded[at..].copy_from_slice(&12u16.to_be_bytes());
    padded.extend_from_slice(&[0, 12, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    let a = ask_raw(&conn, &padded).await.unwrap();
    assert_eq!(a.len() % 468, 0, "padded to a multiple of 468: {}", a.len());
    let b = ask_raw(&conn, &plain).await.unwrap();
    assert!(b.len() < 468, "not padded: {}", b.len());
    ls.stop().await;
}

/// A query whose DNS ID is not 0 closes the connection with
/// DOQ_PROTOCOL_ERROR (0x2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_id_is_a_protocol_error() {
    let ls = or_skip!(Doq::start("a_non_zero_id_is_a_protocol_error").await);
    let ep = local_quic_client(b"doq");
    let conn = doq_connect(&ep, ls.quic).await;
    let mut q = question("www.example.com", RecordType::A);
    q[..2].copy_from_slice(&7u16.to_be_bytes());
    assert!(ask_raw(&conn, &q).await.is_err(), "no answer to the ID 7");
    let why = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("the connection is closed");
    match why {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, quinn::VarInt::from_u32(2), "{c:?}");
        }
        other => panic!("closed otherwise: {other:?}"),
    }
    ls.stop().await;
}

/// A client that opens every stream it may and sends nothing does not keep
/// another client's query from being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_every_stream_starves_no_one() {
    let ls = or_skip!(Doq::start("a_client_holding_every_stream_starves_no_one").await);
    let ep = local_quic_client(b"doq");
    let hog = doq_connect(&ep, ls.quic).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        let (mut send, recv) = hog.open_bi().await.unwrap();
        // One byte: the stream exists at the server, the query never comes.
        send.write_all(&[0]).await.unwrap();
        held.push((send, recv));
    }
    // The 101st stream is not granted while the others are open.
    let more = tokio::time::timeout(Duration::from_millis(300), hog.open_bi()).await;
    assert!(more.is_err(), "a stream past the limit was granted");
    let other = doq_connect(&local_quic_client(b"doq"), ls.quic).await;
    let raw = ask_raw(&other, &question("www.example.com", RecordType::A))
        .await
        .unwrap();
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.answers.len(), 1);
    ls.stop().await;
}

/// A stop with an idle connection open is prompt, and the client is told
/// DOQ_NO_ERROR (0x0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_closes_an_idle_connection_with_no_error_at_once() {
    let ls = or_skip!(Doq::start("a_stop_closes_an_idle_connection_with_no_error_at_once").await);
    let ep = local_quic_client(b"doq");
    let conn = doq_connect(&ep, ls.quic).await;
    ask_raw(&conn, &question("www.example.com", RecordType::A))
        .await
        .unwrap();
    let t = Instant::now();
    ls.stop().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let why = tokio::time::timeout(Duration::from_secs(3), conn.closed())
        .await
        .expect("the client is told");
    match why {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, quinn::VarInt::from_u32(0), "{c:?}");
        }
        other => panic!("closed otherwise: {other:?}"),
    }
}

/// dnspython's `dns.query.quic` (aioquic, an independent QUIC stack) gets the
/// A and the NXDOMAIN UDP gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnspython_gets_the_answers_over_quic() {
    const TEST: &str = "dnspython_gets_the_answers_over_quic";
    let python = or_skip!(dnspython(TEST));
    let ls = or_skip!(Doq::start(TEST).await);
    let script = format!(
        "import dns.message, dns.query\n\
         for n in ['www.example.com', 'alias.example.com', 'nope.example.com']:\n\
         \x20   q = dns.message.make_query(n, 'A')\n\
         \x20   r = dns.query.quic(q, '127.0.0.1', port={}, verify=False, timeout=5)\n\
         \x20   print(n, dns.rcode.to_text(r.rcode()), sorted(str(a) for a in r.answer))\n",
        ls.quic.port()
    );
    let stdout = run_python(python, vec!["-c".into(), script]).await;
    assert!(
        stdout.contains("www.example.com NOERROR") && stdout.contains("192.0.2.10"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alias.example.com NOERROR") && stdout.contains("CNAME www.example.com."),
        "{stdout}"
    );
    assert!(stdout.contains("nope.example.com NXDOMAIN"), "{stdout}");
    ls.stop().await;
}

/// The CPU time (user and system, in ms) the process `pid` has used.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's name (in parentheses): fields 14 and 15 of stat(5).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks * 10.0 // 100 ticks a second
}

/// A measurement, not a check: queries a second over one DoQ connection
/// against one DoT connection from the same client (one query at a time,
/// then 32 at once), and the LS's CPU for a fresh connection and one query
/// of each. Run it with `cargo test --release --test integration
/// doq::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn measure_doq_against_dot() {
    use crate::kit::tls::{EncLs, EncLsSetup, ask, connect, connector};
    let pki = or_skip!(Pki::new("measure_doq_against_dot"));
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let quic = SocketAddr::from(([127, 0, 0, 1], free_ports(1)[0]));
    let data = crate::kit::crate_dir().join("tests/data/tls");
    let extra = format!(
        "\n[ls.quic]\nlisten = [\"{quic}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        path_str(&data.join("ls.pem")),
        path_str(&data.join("ls.key"))
    );
    let ls = EncLs::start(EncLsSetup {
        backend: ts.addr,
        extra: &extra,
        https_tls: true,
        nofile: None,
        ready: ("www.example.com", "192.0.2.10"),
    })
    .await;
    const N: u32 = 3000;
    let q = question("www.example.com", RecordType::A);
    let ep = local_quic_client(b"doq");
    let conn = doq_connect(&ep, quic).await;
    let t = Instant::now();
    for _ in 0..N {
        ask_raw(&conn, &q).await.unwrap();
    }
    let doq_serial = f64::from(N) / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..N / 32 {
        let asks = (0..32).map(|_| ask_raw(&conn, &q));
        for a in futures_util::future::join_all(asks).await {
            a.unwrap();
        }
    }
    let doq_32 = f64::from(N / 32 * 32) / t.elapsed().as_secs_f64();
    let mut dot = connect(&connector(b"dot"), ls.tls).await;
    let t = Instant::now();
    for _ in 0..N {
        assert!(!ask(&mut dot, "www.example.com").await.answers.is_empty());
    }
    let dot_serial = f64::from(N) / t.elapsed().as_secs_f64();
    eprintln!(
        "queries/s, one at a time: doq {doq_serial:.0}, dot {dot_serial:.0}; doq 32 streams at once: {doq_32:.0}"
    );
    const FRESH: u32 = 300;
    let pid = ls.proc.pid();
    let before = cpu_ms(pid);
    for _ in 0..FRESH {
        let ep = local_quic_client(b"doq");
        let conn = doq_connect(&ep, quic).await;
        ask_raw(&conn, &q).await.unwrap();
        conn.close(0u32.into(), b"");
        ep.wait_idle().await;
    }
    let doq_conn = (cpu_ms(pid) - before) / f64::from(FRESH);
    let before = cpu_ms(pid);
    let fresh_tls = connector(b"dot");
    for _ in 0..FRESH {
        let mut c = connect(&fresh_tls, ls.tls).await;
        ask(&mut c, "www.example.com").await;
    }
    let dot_conn = (cpu_ms(pid) - before) / f64::from(FRESH);
    eprintln!(
        "LS CPU per fresh connection and one query: doq {doq_conn:.2} ms, dot {dot_conn:.2} ms"
    );
    ts.stop().await;
}

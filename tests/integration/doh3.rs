//! DNS over HTTPS on HTTP/3 on the LS (`http3 = true` in `[ls.https]`):
//! dnspython (`dns.query.https` with `HTTPVersion.H3`, over aioquic) gets by GET
//! and by POST the answers TCP gets (an A, a CNAME, an NXDOMAIN, an answer too
//! large for UDP) and a 404 on another path; HTTP/2 and HTTP/1.1 answers
//! advertise HTTP/3 in `Alt-Svc` (curl), and do not without `http3`; a raw
//! quinn client holding every stream it may without a request starves no
//! other client (an h3 client is answered), and SIGTERM still ends the LS.
//! A POST whose `content-length` is not its body's length is reset with
//! H3_MESSAGE_ERROR (aioquic sees the code). A returning client resumes (no
//! certificate shown); in 0-RTT, its client's Finished held back by a
//! relay, a GET is answered and a POSTed UPDATE waits for the handshake.
//!
//! dnspython and aioquic are run with `$DNSLB_PYTHON` (default `python3`);
//! without them the dnspython test is skipped, unless `DNSLB_REQUIRE_PEERS=1`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::body::Buf;
use rustix::process::Signal;

use crate::kit::quic::{dnspython, doq_connect, local_quic_client, run_python};
use crate::kit::tls::{TABLE, answers_ten, curl, get_param};
use crate::kit::zero_rtt::{HandshakeRelay, ResumingClient};
use crate::kit::{
    LsRoleRun, Proc, TestTs, ZoneDir, crate_dir, free_ports, local, need, or_skip, path_str,
    poll_until_async, start_ls_role, table_ts, wait_answers,
};

/// The table behind the LS: [`TABLE`]'s A, a CNAME to it, and 60 A records
/// under one name (an answer larger than UDP's 512 bytes).
fn table() -> String {
    let mut t = format!("{TABLE}alias.example.com www.example.com CNAME\n");
    for i in 1..=60 {
        t.push_str(&format!("big.example.com 198.51.100.{i} A\n"));
    }
    t
}

/// The `[ls]` config of an LS on `dns` with `[ls.https]` on `https` (TLS with
/// the test certificate, HTTP/3 when `http3`) in front of `backend`.
fn config(dns: u16, https: SocketAddr, http3: bool, backend: SocketAddr) -> String {
    let data = crate_dir().join("tests/data/tls");
    format!(
        "[ls]\nlisten = [\"127.0.0.1:{dns}\"]\nworkers = 1\n\n\
         [ls.https]\nlisten = [\"{https}\"]\ncert = \"{}\"\nkey = \"{}\"\nhttp3 = {http3}\n\n\
         [[ls.backend]]\nname = \"b1\"\naddr = \"{backend}\"\n",
        path_str(&data.join("ls.pem")),
        path_str(&data.join("ls.key")),
    )
}

/// An LS (in the test process) with `[ls.https]` in front of a TS serving [`table`].
struct Doh3 {
    dir: ZoneDir,
    ts: TestTs,
    run: LsRoleRun,
    https: SocketAddr,
}

impl Doh3 {
    async fn start(http3: bool) -> Doh3 {
        let (dir, ts) = table_ts(&table()).await;
        let p = free_ports(2);
        let https = local(p[1]);
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config(p[0], https, http3, ts.addr)).unwrap();
        let run = start_ls_role(&path).await;
        Doh3 {
            dir,
            ts,
            run,
            https,
        }
    }

    async fn stop(self) {
        self.run.stop().await;
        self.ts.stop().await;
    }
}

/// An HTTP/3 client on `conn` (the `h3` crate), its connection driven in a task.
async fn h3_client(
    conn: quinn::Connection,
) -> h3::client::SendRequest<h3_quinn::OpenStreams, hyper::body::Bytes> {
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .expect("HTTP/3 settings");
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    send
}

/// GETs `path_query` over `send`: the status and the body (5 s at most).
async fn h3_get(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, hyper::body::Bytes>,
    path_query: &str,
) -> (u16, Vec<u8>) {
    let ask = async {
        let req = hyper::Request::get(format!("https://dns.test{path_query}"))
            .body(())
            .unwrap();
        let mut stream = send.send_request(req).await.unwrap();
        stream.finish().await.unwrap();
        response_of(&mut stream).await
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .expect("an answer within 5 s")
}

/// dnspython's DoH over HTTP/3 (aioquic, an independent QUIC and HTTP/3 stack)
/// gets by POST and by GET what TCP gets for an A, a CNAME, an NXDOMAIN and a
/// 60-record answer; another path gets 404; the requests and connections are
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnspython_gets_over_http3_what_tcp_gets() {
    const TEST: &str = "dnspython_gets_over_http3_what_tcp_gets";
    let python = or_skip!(dnspython(TEST));
    let ls = Doh3::start(true).await;
    let script = "import sys, dns.message, dns.query, dns.rcode\n\
        port, dns_port = int(sys.argv[1]), int(sys.argv[2])\n\
        url = f'https://127.0.0.1:{port}/dns-query'\n\
        H3 = dns.query.HTTPVersion.H3\n\
        for n in ['www.example.com', 'alias.example.com', 'nope.example.com', 'big.example.com']:\n\
        \x20   for post in (True, False):\n\
        \x20       r = dns.query.https(dns.message.make_query(n, 'A'), url, http_version=H3, post=post, verify=False, timeout=5)\n\
        \x20       u = dns.query.tcp(dns.message.make_query(n, 'A'), '127.0.0.1', port=dns_port, timeout=5)\n\
        \x20       same = r.rcode() == u.rcode() and sorted(map(str, r.answer)) == sorted(map(str, u.answer))\n\
        \x20       rrs = sum(len(s) for s in r.answer)\n\
        \x20       print(n, 'POST' if post else 'GET', dns.rcode.to_text(r.rcode()), rrs, 'same' if same else 'differs')\n\
        try:\n\
        \x20   dns.query.https(dns.message.make_query('www.example.com', 'A'), f'https://127.0.0.1:{port}/nope', http_version=H3, verify=False, timeout=5)\n\
        \x20   print('other path answered')\n\
        except ValueError as e:\n\
        \x20   print('other path:', e)\n";
    let args = [
        "-c".to_string(),
        script.to_string(),
        ls.https.port().to_string(),
        ls.run.addr.port().to_string(),
    ];
    let stdout = run_python(python, args.to_vec()).await;
    for method in ["POST", "GET"] {
        for line in [
            format!("www.example.com {method} NOERROR 1 same"),
            format!("alias.example.com {method} NOERROR 2 same"),
            format!("nope.example.com {method} NXDOMAIN 0 same"),
            format!("big.example.com {method} NOERROR 60 same"),
        ] {
            assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
        }
    }
    assert!(
        stdout.contains("other path: 127.0.0.1 responded with status code 404"),
        "{stdout}"
    );
    let text = dnslb::metrics::render_prometheus(&ls.run.balancer);
    assert!(text.contains("dnslb_doh3_requests_total 9\n"), "{text}");
    assert!(text.contains("dnslb_doh3_connections_total 9\n"), "{text}");
    assert!(
        text.contains("dnslb_encrypted_queries_total{transport=\"https\"} 8\n"),
        "{text}"
    );
    ls.stop().await;
}

/// The value of the header `name` in `headers` (lowercase, as `curl` keeps them).
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

/// With `http3` on, the HTTP/2 and HTTP/1.1 answers (a query's and a 404) say
/// `Alt-Svc: h3=":PORT"; ma=86400`, PORT the listener's; with it off they say
/// nothing of HTTP/3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_answers_advertise_http3_when_it_is_on() {
    const TEST: &str = "http2_answers_advertise_http3_when_it_is_on";
    let [curl_bin] = or_skip!(need(TEST, ["curl"]));
    for http3 in [true, false] {
        let ls = Doh3::start(http3).await;
        let want = format!("h3=\":{}\"; ma=86400", ls.https.port());
        let url = format!("https://{}/dns-query?dns={}", ls.https, get_param());
        let other = format!("https://{}/other", ls.https);
        for (version, shown) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let got = curl(&curl_bin, ls.dir.path(), &["-k", version, &url]);
            assert_eq!((got.code.as_str(), got.version.as_str()), ("200", shown));
            assert!(answers_ten(&got.body));
            let alt = header(&got.headers, "alt-svc");
            assert_eq!(alt, http3.then_some(want.as_str()), "{}", got.headers);
            let nope = curl(&curl_bin, ls.dir.path(), &["-k", version, &other]);
            assert_eq!(nope.code, "404");
            let alt = header(&nope.headers, "alt-svc");
            assert_eq!(alt, http3.then_some(want.as_str()), "{}", nope.headers);
        }
        ls.stop().await;
    }
}

/// A client that opens every request stream it may and sends no request on
/// any is granted no more, and does not keep another client's GET from being
/// answered; both over HTTP/3 on the same endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_every_stream_starves_no_one() {
    let ls = Doh3::start(true).await;
    let ep = local_quic_client(b"h3");
    let hog = doq_connect(&ep, ls.https).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        let (mut send, recv) = hog.open_bi().await.unwrap();
        // A HEADERS frame's type, and nothing more: a request that never comes.
        send.write_all(&[0x01]).await.unwrap();
        held.push((send, recv));
    }
    let more = tokio::time::timeout(Duration::from_millis(300), hog.open_bi()).await;
    assert!(more.is_err(), "a stream past the limit was granted");
    let mut other = h3_client(doq_connect(&local_quic_client(b"h3"), ls.https).await).await;
    let path = format!("/dns-query?dns={}", get_param());
    let (status, body) = h3_get(&mut other, &path).await;
    assert_eq!(status, 200);
    assert!(answers_ten(&body));
    let (status, _) = h3_get(&mut other, "/elsewhere").await;
    assert_eq!(status, 404);
    ls.stop().await;
}

/// SIGTERM ends an LS serving HTTP/3 promptly and cleanly, with an HTTP/3
/// client connected and another holding streams without requests: those are
/// no queries in flight to wait the drain grace for, and the client is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_ls_with_http3_clients_connected() {
    let (dir, ts) = table_ts(&table()).await;
    let p = free_ports(2);
    let https = local(p[1]);
    dir.write("config.toml", &config(p[0], https, true, ts.addr));
    let mut proc = Proc::dnslb("dnslb ls", &["ls", "-c", "config.toml"], dir.path());
    wait_answers(
        local(p[0]),
        "www.example.com",
        "192.0.2.10",
        &mut [&mut proc],
    )
    .await;
    let mut answered = h3_client(doq_connect(&local_quic_client(b"h3"), https).await).await;
    let hog = doq_connect(&local_quic_client(b"h3"), https).await;
    let acks = hog.stats().frame_rx.acks;
    let mut held = Vec::new();
    for _ in 0..10 {
        let (mut send, recv) = hog.open_bi().await.unwrap();
        send.write_all(&[0x01]).await.unwrap();
        held.push((send, recv));
    }
    // The LS has the held streams (it acknowledged them), and has answered a
    // request that came after them.
    let acked = crate::kit::poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(10),
        async || (hog.stats().frame_rx.acks > acks).then_some(()),
    )
    .await;
    assert!(acked.is_some(), "the held streams were not acknowledged");
    let path = format!("/dns-query?dns={}", get_param());
    assert_eq!(h3_get(&mut answered, &path).await.0, 200);
    proc.signal(Signal::TERM);
    let out = tokio::task::spawn_blocking(move || proc.finish(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(out.status.success(), "exit {}: {}", out.status, out.stderr);
    assert!(!out.stderr.contains("still in flight"), "{}", out.stderr);
    let closed = tokio::time::timeout(Duration::from_secs(5), hog.closed()).await;
    assert!(closed.is_ok(), "the holding client was not told");
    ts.stop().await;
}

/// GETs `path_query` over the HTTP/2 connection `send`: the status and the body.
async fn h2_get(
    send: &h2::client::SendRequest<hyper::body::Bytes>,
    path_query: &str,
) -> (u16, Vec<u8>) {
    let req = hyper::Request::get(format!("https://dns.test{path_query}"))
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = resp.await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    (status, got)
}

/// The CPU time (user and system) this process has used, in µs (at the
/// kernel's 10 ms resolution).
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command's name (in parentheses): fields 14 and 15 of stat(5).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks * 10_000.0 // 100 ticks a second
}

/// Requests a second and CPU µs a request (client and LS together: both
/// are in this process) of `n` requests done by `run`.
async fn rate_and_cpu(n: u32, run: impl Future<Output = ()>) -> (f64, f64) {
    let (t, cpu) = (Instant::now(), cpu_us());
    run.await;
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    (rate, (cpu_us() - cpu) / f64::from(n))
}

/// A measurement, not a check: DoH GETs a second over one HTTP/3 connection
/// against one HTTP/2 connection to the same LS, from the same process with
/// hyperium's clients of each (`h3`, `h2`): one request at a time, then 32 at
/// once, with the CPU a request costs the process (client and LS) and the
/// datagrams an HTTP/3 request takes each way. Run it with `cargo test --test
/// integration doh3::measure -- --ignored --nocapture` (add `--release` for
/// the release figure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn measure_doh3_against_doh2() {
    const N: u32 = 3200;
    let ls = Doh3::start(true).await;
    let path = format!("/dns-query?dns={}", get_param());
    let quic = doq_connect(&local_quic_client(b"h3"), ls.https).await;
    let h3 = h3_client(quic.clone()).await;
    // Senders for 32 requests at once, kept: the h3 client closes its
    // connection when a clone of its sender is dropped.
    let mut h3s: Vec<_> = (0..32).map(|_| h3.clone()).collect();
    let tls = crate::kit::tls::connect(&crate::kit::tls::connector(b"h2"), ls.https).await;
    let (h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let path = path.as_str();
    for round in 0..2 {
        let (rx, tx) = (quic.stats().udp_rx.datagrams, quic.stats().udp_tx.datagrams);
        let (h3_1, h3_1_cpu) = rate_and_cpu(N, async {
            for _ in 0..N {
                assert_eq!(h3_get(&mut h3s[0], path).await.0, 200);
            }
        })
        .await;
        let per = |now: u64, then: u64| (now - then) as f64 / f64::from(N);
        let (from, to) = (
            per(quic.stats().udp_rx.datagrams, rx),
            per(quic.stats().udp_tx.datagrams, tx),
        );
        let (h2_1, h2_1_cpu) = rate_and_cpu(N, async {
            for _ in 0..N {
                assert_eq!(h2_get(&h2, path).await.0, 200);
            }
        })
        .await;
        let (h3_32, h3_32_cpu) = rate_and_cpu(N, async {
            for _ in 0..N / 32 {
                let asks = h3s.iter_mut().map(|s| h3_get(s, path));
                for (status, _) in futures_util::future::join_all(asks).await {
                    assert_eq!(status, 200);
                }
            }
        })
        .await;
        let (h2_32, h2_32_cpu) = rate_and_cpu(N, async {
            for _ in 0..N / 32 {
                let asks = (0..32).map(|_| h2_get(&h2, path));
                for (status, _) in futures_util::future::join_all(asks).await {
                    assert_eq!(status, 200);
                }
            }
        })
        .await;
        eprintln!(
            "round {round}: GETs/s one at a time: h3 {h3_1:.0}, h2 {h2_1:.0} ({:.2}x); 32 at once: h3 {h3_32:.0}, h2 {h2_32:.0} ({:.2}x)\n\
             round {round}: CPU µs a GET one at a time: h3 {h3_1_cpu:.0}, h2 {h2_1_cpu:.0}; 32 at once: h3 {h3_32_cpu:.0}, h2 {h2_32_cpu:.0}\n\
             round {round}: datagrams an h3 GET one at a time: from the LS {from:.2}, to it {to:.2}",
            h3_1 / h2_1,
            h3_32 / h2_32
        );
    }
    drop(h3);
    ls.stop().await;
}

/// POSTs the DNS message `q` to `/dns-query` over `send`: the status and the
/// body (10 s at most).
async fn h3_post(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, hyper::body::Bytes>,
    q: Vec<u8>,
) -> (u16, Vec<u8>) {
    let ask = async {
        let req = hyper::Request::post("https://dns.test/dns-query")
            .header("content-type", "application/dns-message")
            .header("content-length", q.len())
            .body(())
            .unwrap();
        let mut stream = send.send_request(req).await.unwrap();
        stream.send_data(hyper::body::Bytes::from(q)).await.unwrap();
        stream.finish().await.unwrap();
        response_of(&mut stream).await
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .expect("an answer within 10 s")
}

/// The LS's counter `name`.
fn counter(ls: &Doh3, name: &str) -> u64 {
    let text = dnslb::metrics::render_prometheus(&ls.run.balancer);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// A returning HTTP/3 client resumes: a certificate is shown to its first
/// connection only. Resumed, its GET sent in 0-RTT is answered before the
/// handshake completes (the client's Finished held back), a POSTed UPDATE
/// only once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_http3_client_resumes_and_only_a_plain_query_is_answered_early() {
    let ls = Doh3::start(true).await;
    let client = ResumingClient::new(b"h3");
    let path = format!("/dns-query?dns={}", get_param());
    for _ in 0..2 {
        let conn = client.connect(ls.https).await;
        let (status, body) = h3_get(&mut h3_client(conn.clone()).await, &path).await;
        assert_eq!(status, 200);
        assert!(answers_ten(&body));
        conn.close(0u32.into(), b"");
    }
    assert_eq!(client.certificates_shown(), 1, "the second resumed");
    assert_eq!(counter(&ls, "dnslb_doh3_resumed_total"), 1);
    let relay = HandshakeRelay::start(ls.https).await;
    let (conn, accepted) = client.connect_0rtt(relay.addr);
    let send = h3_client(conn.clone()).await;
    let (mut s1, mut s2) = (send.clone(), send);
    let get = tokio::spawn(async move { h3_get(&mut s1, &path).await });
    // An UPDATE of example.com. (the zone section only), the ID 0.
    let mut update = vec![0, 0, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    update.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
    let post = tokio::spawn(async move { h3_post(&mut s2, update).await });
    let seen = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            (counter(&ls, "dnslb_doh3_early_answered_total") == 1
                && counter(&ls, "dnslb_doh3_early_held_total") == 1)
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "the two requests did not come in 0-RTT");
    relay.pass_server();
    let (status, body) = get.await.unwrap();
    assert_eq!(
        status, 200,
        "the GET answered before the handshake completed"
    );
    assert!(answers_ten(&body));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !post.is_finished(),
        "the UPDATE answered before the handshake"
    );
    relay.release();
    let (status, body) = post.await.unwrap();
    assert_eq!(
        status, 200,
        "the UPDATE answered once the handshake completed"
    );
    assert_eq!(body[2] >> 3 & 0xf, 5, "an UPDATE's answer");
    assert!(accepted.await, "0-RTT accepted");
    conn.close(0u32.into(), b"");
    ls.stop().await;
}

/// A POST whose `content-length` is larger or smaller than its body is
/// malformed: its stream is reset with H3_MESSAGE_ERROR (0x10e), as aioquic
/// (an independent HTTP/3 stack) sees it; one declaring more than a query
/// may be is refused 413; an honest one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_content_length_lies_is_a_message_error() {
    const TEST: &str = "a_post_whose_content_length_lies_is_a_message_error";
    let python = or_skip!(dnspython(TEST));
    let ls = Doh3::start(true).await;
    let script = format!(
        r#"
import asyncio, ssl, dns.message
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import HeadersReceived, DataReceived
from aioquic.quic.events import StreamReset

class P(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3, self.out, self.done = H3Connection(self._quic), None, asyncio.Event()
    def quic_event_received(self, e):
        if isinstance(e, StreamReset):
            self.out = "reset 0x%x" % e.error_code
            self.done.set()
        for ev in self.h3.handle_event(e):
            if isinstance(ev, HeadersReceived):
                self.out = "status " + dict(ev.headers)[b":status"].decode()
            if getattr(ev, "stream_ended", False):
                self.done.set()

q = dns.message.make_query("www.example.com", "A")
q.id = 0
w = q.to_wire()

async def post(length):
    c = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE,
                          server_name="dns.test")
    async with connect("127.0.0.1", {port}, configuration=c, create_protocol=P) as p:
        sid = p._quic.get_next_available_stream_id()
        p.h3.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"),
            (b":authority", b"dns.test"), (b":path", b"/dns-query"),
            (b"content-type", b"application/dns-message"),
            (b"content-length", str(length).encode())])
        p.h3.send_data(sid, w, end_stream=True)
        p.transmit()
        await asyncio.wait_for(p.done.wait(), 5)
        print(length if length != len(w) else "honest", p.out)

async def main():
    for length in [500, 5, 10**12, len(w)]:
        await post(length)

asyncio.run(main())
"#,
        port = ls.https.port()
    );
    let out = run_python(python, vec!["-c".into(), script]).await;
    for line in [
        "500 reset 0x10e",
        "5 reset 0x10e",
        "1000000000000 status 413",
        "honest status 200",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    assert_eq!(counter(&ls, "dnslb_doh3_malformed_total"), 2);
    ls.stop().await;
}

/// A request's status and whole body, read from its `stream`.
async fn response_of<S: h3::quic::RecvStream>(
    stream: &mut h3::client::RequestStream<S, hyper::body::Bytes>,
) -> (u16, Vec<u8>) {
    let resp = stream.recv_response().await.unwrap();
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    (resp.status().as_u16(), body)
}

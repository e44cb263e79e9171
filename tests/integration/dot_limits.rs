//! The limits of the encrypted listeners with real clients: `conn_rate_limit` (new
//! connections per second per client, refused before the handshake, applied on
//! reload), `trusted_proxies` (whose `X-Forwarded-For` names the client the ACL
//! sees), and truncated backend answers asked again over TCP so that DoT and DoH
//! clients never see TC=1.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::kit::closed_within;
use crate::kit::tls::{Dot, HOST, Pki, TABLE, answers_ten, ask, curl, get_param};
use crate::kit::{
    Fake, Reply, ZoneDir, free_ports, need, or_skip, path_str, query, start_ls_role,
    start_ts_table, table_ts,
};

/// An LS in front of `backend` with DoT (with `pki`'s leaf `ls`, when given) and DoH
/// (over TLS with the same pair, or plain), and the file of its config.
struct Ls {
    dot: Dot,
    config: std::path::PathBuf,
}

/// The config text of [`Ls`]: `extra` holds lines added to `[ls]`, `[ls.tls]`
/// and `[ls.https]`.
fn config_text(
    ports: &[u16],
    backend: SocketAddr,
    pair: Option<(&Path, &Path)>,
    extra: [&str; 3],
) -> String {
    let [ls_extra, tls_extra, https_extra] = extra;
    let mut text = format!("[ls]\nlisten = [\"127.0.0.1:{}\"]\n{ls_extra}\n", ports[0]);
    text.push_str(&format!(
        "[ls.https]\nlisten = [\"127.0.0.1:{}\"]\n{https_extra}\n",
        ports[2]
    ));
    if let Some((cert, key)) = pair {
        let files = format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            path_str(cert),
            path_str(key)
        );
        text.push_str(&files);
        text.push_str(&format!(
            "\n[ls.tls]\nlisten = [\"127.0.0.1:{}\"]\n{files}{tls_extra}\n",
            ports[1]
        ));
    }
    text.push_str(&format!(
        "\n[[ls.backend]]\nname = \"b1\"\naddr = \"{backend}\"\n"
    ));
    text
}

impl Ls {
    async fn start(
        dir: &Path,
        backend: SocketAddr,
        pair: Option<(&Path, &Path)>,
        extra: [&str; 3],
    ) -> (Ls, Vec<u16>) {
        let ports = free_ports(3);
        let config = dir.join("config.toml");
        std::fs::write(&config, config_text(&ports, backend, pair, extra)).unwrap();
        let dot = Dot {
            run: start_ls_role(&config).await,
            tls: SocketAddr::from(([127, 0, 0, 1], ports[1])),
            https: SocketAddr::from(([127, 0, 0, 1], ports[2])),
        };
        (Ls { dot, config }, ports)
    }

    /// Writes `text` as the config, reloads (SIGHUP) and waits until it is done.
    async fn reload(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
        let m = self.dot.run.balancer.metrics();
        let count = || m.reloads_applied.load(Relaxed) + m.reloads_refused.load(Relaxed);
        let before = count();
        let control = dnslb::roles::Control::Reload;
        self.dot.run.controls.send(control).unwrap();
        let done = crate::kit::poll_until_async(
            Duration::from_secs(5),
            Duration::from_millis(5),
            async || (count() > before).then_some(()),
        )
        .await;
        assert!(done.is_some(), "the reload was never done");
    }
}

/// A TCP connection to `to` from the address `from` (port chosen by the system).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// Of `n` DoT connections opened one after the other from `from`, how many
/// finished their handshake (the others were closed by the server).
async fn handshakes(client: &TlsConnector, from: [u8; 4], to: SocketAddr, n: usize) -> usize {
    let mut done = 0;
    for _ in 0..n {
        let tcp = connect_from(from, to).await;
        let name = ServerName::try_from(HOST).unwrap();
        let hs = tokio::time::timeout(Duration::from_secs(5), client.connect(name, tcp)).await;
        if matches!(hs, Ok(Ok(_))) {
            done += 1;
        }
    }
    done
}

/// `[ls.tls] conn_rate_limit = 5`: of 50 connections opened at once from
/// 127.0.0.1 most are closed before their handshake (none of them counted as a
/// failed handshake) and counted on /metrics; a client at 127.0.0.2 still
/// connects and is answered; a reload to 0 lifts the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_rate_limit_refuses_a_burst_before_the_handshake() {
    const TEST: &str = "conn_rate_limit_refuses_a_burst_before_the_handshake";
    let pki = or_skip!(Pki::new(TEST));
    let (cert, key) = pki.leaf("ls");
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let pair = Some((cert.as_path(), key.as_path()));
    let limit = "conn_rate_limit = 5";
    let (ls, ports) = Ls::start(pki.path(), ts.addr, pair, ["", limit, ""]).await;
    let client = pki.client();
    let passed = handshakes(&client, [127, 0, 0, 1], ls.dot.tls, 50).await;
    // One second's worth at once, and what the rate refills during the burst.
    assert!(
        (5..=25).contains(&passed),
        "{passed} of 50 connections got their handshake"
    );
    let refused = 50 - passed;
    let text = ls.dot.metrics();
    let line = format!(
        "dnslb_encrypted_connections_refused_total{{transport=\"tls\",reason=\"rate\"}} {refused}\n"
    );
    assert!(text.contains(&line), "no {line:?} in {text}");
    // Closed before the handshake: no handshake was started, so none failed.
    let stats = ls.dot.tls_stats();
    assert_eq!(stats.handshakes.load(Relaxed), passed as u64);
    let failed: u64 = stats.failures.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(failed, 0, "{text}");
    // Another client is not limited by the first one's burst.
    let tcp = connect_from([127, 0, 0, 2], ls.dot.tls).await;
    let name = ServerName::try_from(HOST).unwrap();
    let mut conn = client.connect(name, tcp).await.unwrap();
    let answer = ask(&mut conn, "www.example.com").await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    drop(conn);
    // The key applies on reload: at 0, a burst all gets through.
    let text = config_text(&ports, ts.addr, pair, ["", "conn_rate_limit = 0", ""]);
    ls.reload(&text).await;
    assert_eq!(
        handshakes(&client, [127, 0, 0, 1], ls.dot.tls, 30).await,
        30
    );
    ls.dot.stop(Some(ts)).await;
}

/// `[ls.https] trusted_proxies`: from a trusted proxy (127.0.0.1), the
/// `X-Forwarded-For` address is the client the ACL sees (one outside `allow` is
/// REFUSED, one inside answered; a malformed header counts and falls back to the
/// proxy); from another peer (127.0.0.2) the header changes nothing; a reload
/// that trusts nobody stops believing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_believed_from_trusted_proxies_only() {
    const TEST: &str = "x_forwarded_for_is_believed_from_trusted_proxies_only";
    let [curl_bin] = or_skip!(need(TEST, ["curl"]));
    let (dir, ts) = table_ts(TABLE).await;
    let allow = "allow = [\"127.0.0.0/8\"]";
    let trusted = "trusted_proxies = [\"127.0.0.1\"]";
    let (ls, ports) = Ls::start(dir.path(), ts.addr, None, [allow, "", trusted]).await;
    let url = format!("http://{}/dns-query?dns={}", ls.dot.https, get_param());
    // The rcode of the answer to a GET from `from` with `xff`.
    let ask_from = |from: &str, xff: &str| {
        let header = format!("X-Forwarded-For: {xff}");
        let args = [
            "--http2-prior-knowledge",
            "--interface",
            from,
            "-H",
            &header,
            &url,
        ];
        let got = curl(&curl_bin, dir.path(), &args);
        assert_eq!(got.code, "200", "{from} {xff}");
        let answer = Message::from_vec(&got.body).unwrap();
        (answer.metadata.response_code, answers_ten(&got.body))
    };
    let refused = (ResponseCode::Refused, false);
    let answered = (ResponseCode::NoError, true);
    assert_eq!(ask_from("127.0.0.1", "192.0.2.1"), refused);
    assert_eq!(ask_from("127.0.0.1", "192.0.2.1, 127.0.0.1"), refused);
    assert_eq!(ask_from("127.0.0.1", "192.0.2.1, 127.0.0.9"), answered);
    assert_eq!(ask_from("127.0.0.1", "[::ffff:127.0.0.9]:53"), answered);
    // From a peer that is not a trusted proxy the header is ignored.
    assert_eq!(ask_from("127.0.0.2", "192.0.2.1"), answered);
    let text = ls.dot.metrics();
    assert!(
        text.contains("dnslb_https_forwarded_malformed_total 0\n"),
        "{text}"
    );
    // A header that cannot be read: the proxy's own address, counted.
    assert_eq!(ask_from("127.0.0.1", "192.0.2.1, unknown"), answered);
    let text = ls.dot.metrics();
    assert!(
        text.contains("dnslb_https_forwarded_malformed_total 1\n"),
        "{text}"
    );
    // trusted_proxies applies on reload.
    let text = config_text(&ports, ts.addr, None, [allow, "", "trusted_proxies = []"]);
    ls.reload(&text).await;
    assert_eq!(ask_from("127.0.0.1", "192.0.2.1"), answered);
    ls.dot.stop(Some(ts)).await;
}

/// A records in [`full_answer`].
const FULL: usize = 200;

/// The whole answer to `q` a backend gives over TCP: [`FULL`] A records (3.4 KB).
fn full_answer(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    let name = m.queries[0].name().clone();
    for i in 0..FULL {
        let addr = std::net::Ipv4Addr::from(0x0A00_0000 + i as u32);
        let rdata = RData::A(hickory_proto::rr::rdata::A(addr));
        m.answers.push(Record::from_rdata(name.clone(), 300, rdata));
    }
    m.to_vec().unwrap()
}

/// The answer a backend gives over UDP: empty, TC=1.
fn truncated(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.authoritative = true;
    m.metadata.truncation = true;
    m.to_vec().unwrap()
}

/// Whether `m` is the whole answer: TC=0 and all [`FULL`] records.
fn whole(m: &Message) -> bool {
    !m.metadata.truncation && m.answers.len() == FULL
}

/// A backend that answers TC=1 over UDP and the whole answer over TCP: the LS asks
/// again over TCP, and the DoT and the DoH clients get the whole answer, never TC=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_clients_get_the_whole_answer_not_tc() {
    const TEST: &str = "encrypted_clients_get_the_whole_answer_not_tc";
    let pki = or_skip!(Pki::new(TEST));
    let [curl_bin] = or_skip!(need(TEST, ["curl"]));
    let (cert, key) = pki.leaf("ls");
    let backend = Fake::udp_tcp(|q, _| Reply::Now(truncated(q)), full_answer).await;
    let pair = Some((cert.as_path(), key.as_path()));
    let (ls, _) = Ls::start(pki.path(), backend.addr, pair, ["", "", ""]).await;
    // DNS over TLS.
    let mut conn = crate::kit::tls::connect(&pki.client(), ls.dot.tls).await;
    let answer = ask(&mut conn, "big.example.com").await;
    assert!(whole(&answer), "over TLS: {}", crate::kit::show(&answer));
    drop(conn);
    // DNS over HTTPS (POST, HTTP/2).
    let port = ls.dot.https.port();
    let q = query("big.example.com", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    let body = pki.path().join("query");
    std::fs::write(&body, &q).unwrap();
    let (post, resolve) = (
        format!("@{}", path_str(&body)),
        format!("{HOST}:{port}:127.0.0.1"),
    );
    let (url, ca) = (format!("https://{HOST}:{port}/dns-query"), pki.ca());
    let args = [
        "--cacert",
        path_str(&ca),
        "--resolve",
        &resolve,
        "--http2",
        "-H",
        "content-type: application/dns-message",
        "--data-binary",
        &post,
        &url,
    ];
    let got = curl(&curl_bin, pki.path(), &args);
    assert_eq!(got.code, "200");
    let answer = Message::from_vec(&got.body).unwrap();
    assert!(whole(&answer), "over HTTPS: {}", crate::kit::show(&answer));
    // Both were asked over UDP first, and got TC=1 there.
    assert!(backend.queries.load(Relaxed) >= 2);
    ls.dot.stop(None).await;
}

/// Whether an HTTP/1.1 GET on a new connection from 127.0.0.1 to `to` is answered
/// (not closed unanswered).
async fn http_answered(to: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from([127, 0, 0, 1], to).await;
    let request = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: dns.test\r\nConnection: close\r\n\r\n",
        get_param()
    );
    // A connection closed at once may refuse the write: unanswered too.
    if s.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "neither answered nor closed in 5 s");
    seen.starts_with(b"HTTP/1.1 200")
}

/// `[ls.https] conn_rate_limit` holds for DNS over HTTPS (here plain HTTP, as
/// behind a proxy): a burst of 30 connections gets a few answered, the rest
/// closed and counted with `transport="https"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_rate_limit_holds_for_https_too() {
    let (dir, ts) = table_ts(TABLE).await;
    let limit = "conn_rate_limit = 3";
    let (ls, _) = Ls::start(dir.path(), ts.addr, None, ["", "", limit]).await;
    let mut answered = 0;
    for _ in 0..30 {
        answered += usize::from(http_answered(ls.dot.https).await);
    }
    assert!((3..=15).contains(&answered), "{answered} of 30 answered");
    let text = ls.dot.metrics();
    let line = format!(
        "dnslb_encrypted_connections_refused_total{{transport=\"https\",reason=\"rate\"}} {}\n",
        30 - answered
    );
    assert!(text.contains(&line), "no {line:?} in {text}");
    ls.dot.stop(Some(ts)).await;
}

/// An LS serving plain DoH (as behind a proxy) in front of a TS in `dir`, and a
/// connection to it.
async fn plain_doh(dir: &ZoneDir) -> (Ls, crate::kit::TestTs, TcpStream) {
    let ts = start_ts_table(dir, "t.txt", TABLE).await;
    let (ls, _) = Ls::start(dir.path(), ts.addr, None, ["", "", ""]).await;
    let conn = connect_from([127, 0, 0, 1], ls.dot.https).await;
    (ls, ts, conn)
}

/// A DoH connection that never finishes a request is closed by the idle timeout
/// (10 s) like any idle connection: one that stops halfway through its HTTP/1.1
/// header, and an HTTP/2 one that sends its preface and then nothing (it answers
/// no PING). Otherwise such connections hold the listener's connection cap for
/// as long as the client wishes, and the cap's worth of them shuts every DoH
/// client out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doh_connection_that_never_finishes_a_request_is_closed_when_idle() {
    let dir = ZoneDir::new();
    let (ls, ts, mut h1) = plain_doh(&dir).await;
    use tokio::io::AsyncWriteExt;
    h1.write_all(b"GET /dns-query?dns=AAAB HTTP/1.1\r\nHost: dns.test\r\n")
        .await
        .unwrap();
    let mut h2 = connect_from([127, 0, 0, 1], ls.dot.https).await;
    // The preface and an empty SETTINGS frame.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    h2.write_all(&preface).await.unwrap();
    let within = Duration::from_secs(40);
    let (h1_closed, h2_closed) = tokio::join!(
        closed_within(&mut h1, within),
        closed_within(&mut h2, within)
    );
    assert!(
        h1_closed,
        "a half-sent HTTP/1.1 header kept its connection open"
    );
    assert!(
        h2_closed,
        "an HTTP/2 connection without a request kept it open"
    );
    ls.dot.stop(Some(ts)).await;
}

/// The CPU time (user and system) this process has used so far, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// An HTTP/2 request whose body never ends (a client that answers PINGs and
/// sends nothing more) costs no CPU while it waits: past the idle timeout (10 s)
/// the connection's task must not wake in a loop. Measured over 10 s from the
/// 12th second: under half a core (the spin takes a whole one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_doh_request_costs_no_cpu_past_the_idle_timeout() {
    let dir = ZoneDir::new();
    let (ls, ts, mut h2) = plain_doh(&dir).await;
    use tokio::io::AsyncWriteExt;
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
    opening.extend_from_slice(&[0, 0, 0, 4, 1, 0, 0, 0, 0]); // its ACK
    // HEADERS of stream 1, END_HEADERS but no END_STREAM: literal fields.
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/dns-query"),
        (":authority", "dns.test"),
        ("content-type", "application/dns-message"),
    ] {
        block.push(0);
        block.push(u8::try_from(name.len()).unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    let len = u32::try_from(block.len()).unwrap().to_be_bytes();
    opening.extend_from_slice(&[len[1], len[2], len[3], 1, 4, 0, 0, 0, 1]);
    opening.extend_from_slice(&block);
    h2.write_all(&opening).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let before = cpu_ticks();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let used = cpu_ticks() - before;
    // Clock ticks are 100 a second on Linux: 10 s of a whole core is 1,000.
    assert!(
        used < 500,
        "{used} ticks of CPU in 10 s with one stalled request"
    );
    drop(h2);
    ls.dot.stop(Some(ts)).await;
}

//! The LS's stream connections (plain TCP, DNS over TLS, DNS over HTTPS) and
//! their bounds, against the real `dnslb ls` process under a low open-file
//! limit (so that its connection caps are a handful): a client that stops
//! reading holds its connection, its slot and the server's stop for a bounded
//! time only; `allow` refuses a connection right after `accept`, before its
//! TLS handshake and without a slot; `tcp_max_pipeline` bounds the queries in
//! flight on one connection.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::kit::tls::{EncLs, EncLsSetup, Tls, connector};
use crate::kit::{
    Fake, Reply, empty_answer, poll_until_async, query, question_end, read_frame, txt_answer,
    wire_answer, write_frame,
};

/// The name whose A record the fake backend answers (192.0.2.77, [`wire_answer`]).
const NAME: &str = "www.example.com";
/// The name whose TXT RRset is about 60 KB.
const HUGE: &str = "huge.example.com";
/// The name of the test certificate (`tests/data/tls/ls.pem`).
const HOST: &str = "dns.test";
/// How long one answer may take on the loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(5);
/// TCP, DoT and DoH connection caps of the LS under [`NOFILE`]: (166 - 64
/// reserved) / 2 / 3 listeners = 17 each.
const CAP: usize = 17;
/// The open-file limit the LS runs under: its own sockets under load (its 64
/// upstream UDP sockets among them) leave it room beside the connections.
const NOFILE: u64 = 166;

/// A fake backend: over UDP `TXT` questions get TC=1 (as NSD sends what does
/// not fit), over TCP an answer of 280 TXT records (about 60 KB, made once:
/// each query's ID and question copied into it); everything else
/// [`wire_answer`]. The clients ask TXT of [`HUGE`] only.
async fn big_backend() -> Fake {
    fn is_txt(q: &[u8]) -> bool {
        Message::from_vec(q).is_ok_and(|m| m.queries[0].query_type() == RecordType::TXT)
    }
    let udp = |q: &[u8], _| {
        if is_txt(q) {
            let mut tc = empty_answer(q);
            tc[2] |= 0x02;
            Reply::Now(tc)
        } else {
            Reply::Now(wire_answer(q, 0))
        }
    };
    let tcp = |q: &[u8]| {
        static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        if !is_txt(q) {
            return wire_answer(q, 0);
        }
        let mut a = ANSWER.get_or_init(|| txt_answer(q, 280)).clone();
        let end = question_end(q);
        a[..2].copy_from_slice(&q[..2]);
        a[12..end].copy_from_slice(&q[12..end]);
        a
    };
    Fake::udp_tcp(udp, tcp).await
}

/// `dnslb ls` (one worker) under [`NOFILE`] open files, with plain DNS, DoT,
/// plain DoH and `/metrics`, in front of `backend`; `extra` goes into `[ls]`.
async fn start_ls(backend: SocketAddr, extra: &str) -> EncLs {
    EncLs::start(EncLsSetup {
        backend,
        extra,
        https_tls: false,
        nofile: Some(NOFILE),
        ready: (NAME, "192.0.2.77"),
    })
    .await
}

/// A TCP connection to `to` from `from` whose receive buffer is as small as
/// the kernel allows (`rcvbuf` asked), so that the server's writes block soon.
async fn connect(from: [u8; 4], to: SocketAddr, rcvbuf: Option<u32>) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    if let Some(size) = rcvbuf {
        sock.set_recv_buffer_size(size).unwrap();
    }
    tokio::time::timeout(WAIT, sock.connect(to))
        .await
        .ok()?
        .ok()
}

/// A TLS handshake (ALPN `dot`) over `tcp`; `None` when the server closes or fails it.
async fn handshake(tcp: TcpStream) -> Option<Tls> {
    let name = ServerName::try_from(HOST).unwrap();
    tokio::time::timeout(WAIT, connector(b"dot").connect(name, tcp))
        .await
        .ok()?
        .ok()
}

/// `n` framed queries for `name` `qtype` (ids 0, 1, ...) in one buffer.
fn pipelined(n: usize, name: impl Fn(usize) -> String, qtype: RecordType) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut q = query(&name(i), qtype, Some(1232));
        q.metadata.id = i as u16;
        let b = q.to_vec().unwrap();
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// One query for [`NAME`] on `conn` (a new connection): whether it was answered.
async fn answered<S: AsyncReadExt + AsyncWriteExt + Unpin>(conn: &mut S) -> bool {
    let q = query(NAME, RecordType::A, Some(1232)).to_vec().unwrap();
    if !write_frame(conn, &q).await {
        return false;
    }
    match tokio::time::timeout(WAIT, read_frame(conn)).await {
        Ok(Some(a)) => Message::from_vec(&a).is_ok_and(|m| !m.answers.is_empty()),
        _ => false,
    }
}

/// A fresh DoT client from 127.0.0.1, its connection (held) when it was answered.
async fn dot_held(addr: SocketAddr) -> Option<Tls> {
    dot_held_from([127, 0, 0, 1], addr).await
}

/// [`dot_held`] from `from`.
async fn dot_held_from(from: [u8; 4], addr: SocketAddr) -> Option<Tls> {
    let tcp = connect(from, addr, None).await?;
    let mut tls = handshake(tcp).await?;
    answered(&mut tls).await.then_some(tls)
}

/// A fresh plain TCP client from `from`: whether it was answered.
async fn tcp_answered(from: [u8; 4], addr: SocketAddr) -> bool {
    match connect(from, addr, None).await {
        Some(mut s) => answered(&mut s).await,
        None => false,
    }
}

/// Clients that ask for 100 answers of 60 KB each (6 MB, more than a socket
/// buffer holds for a peer whose window is shut) and never read: `dot` over
/// DoT, `tcp` over plain TCP. They hold their sockets open until dropped.
/// Each from an address of its own (127.0.2.N): one source would get only
/// its share of the connection cap.
async fn stuck_clients(ls: &EncLs, dot: usize, tcp: usize) -> (Vec<Tls>, Vec<TcpStream>) {
    let queries = pipelined(100, |_| HUGE.to_string(), RecordType::TXT);
    let mut tls_clients = Vec::new();
    for i in 0..dot {
        let from = [127, 0, 2, u8::try_from(i + 1).unwrap()];
        let s = connect(from, ls.tls, Some(2048)).await.unwrap();
        let mut tls = handshake(s).await.expect("a stuck client's handshake");
        tls.write_all(&queries).await.unwrap();
        tls.flush().await.unwrap();
        tls_clients.push(tls);
    }
    let mut tcp_clients = Vec::new();
    for i in 0..tcp {
        let from = [127, 0, 3, u8::try_from(i + 1).unwrap()];
        let mut s = connect(from, ls.dns, Some(2048)).await.unwrap();
        s.write_all(&queries).await.unwrap();
        tcp_clients.push(s);
    }
    (tls_clients, tcp_clients)
}

/// Clients that pipeline big answers and never read (their receive window
/// shut), as many as the DoT cap holds (and two over plain TCP): the LS gives
/// up on each within its write timeout and the close's (5 s each), so that a
/// fresh DoT client is served again while they still hold their sockets; and
/// with a few more of them holding, SIGTERM ends the LS. Before the fix the
/// close waited for ever on what the TLS layer still held: the slots stayed
/// taken, and the LS never exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_neither_pin_their_slots_nor_block_the_stop() {
    let backend = big_backend().await;
    let mut ls = start_ls(backend.addr, "").await;
    let t0 = Instant::now();
    let stuck = stuck_clients(&ls, CAP, 2).await;
    // Generous: the LS closes them within ~10 s (write timeout, then close timeout).
    let limit = Duration::from_secs(45);
    // Every slot free again: CAP fresh clients at once, all served.
    let mut most = 0;
    let served = poll_until_async(limit, Duration::from_millis(250), async || {
        // From as many addresses: one source gets only its share of the cap.
        let from = |i: usize| [127, 0, 4, u8::try_from(i + 1).unwrap()];
        let round = (0..CAP).map(|i| dot_held_from(from(i), ls.tls));
        let round = futures_util::future::join_all(round).await;
        let served = round.iter().filter(|c| c.is_some()).count();
        most = most.max(served);
        (served == CAP).then_some(())
    })
    .await;
    eprintln!(
        "{CAP} fresh DoT clients at once served {:?} after {CAP} stuck DoT clients (best round before: {most})",
        t0.elapsed()
    );
    assert!(
        served.is_some(),
        "at most {most} of {CAP} fresh DoT clients at once served within {limit:?} while stuck clients hold their sockets"
    );
    assert!(
        tcp_answered([127, 0, 0, 1], ls.dns).await,
        "a fresh TCP client"
    );
    // A few more stuck clients, then the stop.
    let more = stuck_clients(&ls, 3, 1).await;
    ls.proc.signal(rustix::process::Signal::TERM);
    let t1 = Instant::now();
    let exited =
        poll_until_async(limit, Duration::from_millis(50), async || ls.proc.exited()).await;
    eprintln!(
        "SIGTERM with stuck clients: exited after {:?}",
        t1.elapsed()
    );
    assert!(
        exited.is_some(),
        "SIGTERM did not end the LS within {limit:?} while clients that never read hold their sockets; stderr:\n{}",
        ls.proc.stderr_now()
    );
    drop((stuck, more));
}

/// The status line's code of a plain HTTP/1.1 DoH GET of [`NAME`] A from `from`
/// to `addr`; `None` when the connection is closed or refused first.
async fn doh_status(from: [u8; 4], addr: SocketAddr) -> Option<u16> {
    let mut s = connect(from, addr, None).await?;
    let q = query(NAME, RecordType::A, None).to_vec().unwrap();
    let b64 = data_encoding::BASE64URL_NOPAD.encode(&q);
    let req =
        format!("GET /dns-query?dns={b64} HTTP/1.1\r\nHost: dns.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(raw.get(..12)?).into_owned();
    head.strip_prefix("HTTP/1.1 ")?.trim().parse().ok()
}

/// `allow = ["127.0.0.1/32"]`: more connections from 127.0.0.2 than each cap
/// holds, to the TCP, DoT and DoH listeners, held open: each is closed right
/// after `accept` (no TLS handshake done or failed; counted with reason
/// `acl`), so they take no slot, and clients from 127.0.0.1 are answered on
/// all three while the outsiders still hold their sockets. Before the fix
/// the outsiders took every slot (their queries answered REFUSED) and the
/// allowed clients were closed at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_outside_allow_are_closed_before_the_handshake_and_hold_no_slot() {
    let backend = big_backend().await;
    let ls = start_ls(backend.addr, "allow = [\"127.0.0.1/32\"]").await;
    let n = CAP + 3;
    let outsider = [127, 0, 0, 2];
    let mut held = Vec::new();
    let mut handshakes = 0;
    let mut tcp_answers = 0;
    for _ in 0..n {
        // DoT: the handshake fails (closed by the server).
        let s = connect(outsider, ls.tls, None).await.unwrap();
        if let Some(tls) = handshake(s).await {
            handshakes += 1;
            held.push(Box::new(tls) as Box<dyn std::any::Any + Send>);
        }
        // TCP: no answer, not even REFUSED: the connection is closed.
        let mut s = connect(outsider, ls.dns, None).await.unwrap();
        let q = query(NAME, RecordType::A, None).to_vec().unwrap();
        if write_frame(&mut s, &q).await
            && tokio::time::timeout(WAIT, read_frame(&mut s))
                .await
                .ok()
                .flatten()
                .is_some()
        {
            tcp_answers += 1;
        }
        held.push(Box::new(s));
        // DoH: held.
        held.push(Box::new(connect(outsider, ls.https, None).await.unwrap()));
    }
    assert_eq!(handshakes, 0, "outsiders' TLS handshakes done");
    assert_eq!(tcp_answers, 0, "outsiders' TCP queries answered");
    let acl = |t: &str| {
        format!("dnslb_encrypted_connections_refused_total{{transport=\"{t}\",reason=\"acl\"}}")
    };
    let counted = poll_until_async(WAIT, Duration::from_millis(20), async || {
        let tls = ls.metric::<u64>(&acl("tls")).await;
        let https = ls.metric::<u64>(&acl("https")).await;
        let tcp = ls
            .metric::<u64>("dnslb_tcp_connections_refused_total{reason=\"acl\"}")
            .await;
        (tls == n as u64 && https == n as u64 && tcp == n as u64).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the refusals were not counted");
    // Allowed clients are answered on every transport meanwhile.
    assert!(
        tcp_answered([127, 0, 0, 1], ls.dns).await,
        "an allowed TCP client"
    );
    assert!(dot_held(ls.tls).await.is_some(), "an allowed DoT client");
    assert_eq!(
        doh_status([127, 0, 0, 1], ls.https).await,
        Some(200),
        "an allowed DoH client"
    );
    // No handshake was started for the outsiders: none failed, one (the allowed) done.
    assert_eq!(ls.metric::<u64>("dnslb_tls_handshakes_total").await, 1);
    for reason in [
        "timeout",
        "eof",
        "not_tls",
        "alpn",
        "incompatible",
        "alert",
        "other",
    ] {
        let line = format!("dnslb_tls_handshake_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(ls.metric::<u64>(&line).await, 0, "{line}");
    }
    drop(held);
}

/// One DoT and one plain TCP connection each write 300 queries (distinct
/// names) at once, in front of a backend that answers each 300 ms after it
/// came: the backend never holds more than `tcp_max_pipeline` (64) of one
/// connection's queries at a time, and every query is answered. Before the
/// fix every frame of a read was taken (174 to 600 in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_has_at_most_tcp_max_pipeline_queries_in_flight() {
    const DELAY: Duration = Duration::from_millis(300);
    const QUERIES: usize = 300;
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let log = seen.clone();
    let backend = Fake::udp(move |q, _| {
        let name = Message::from_vec(q).unwrap().queries[0]
            .name()
            .to_ascii()
            .to_lowercase();
        if !name.starts_with('q') {
            return Reply::Now(wire_answer(q, 0));
        }
        log.lock().unwrap().push((Instant::now(), name));
        Reply::After(DELAY, wire_answer(q, 0))
    })
    .await;
    let ls = start_ls(backend.addr, "").await;
    for transport in ["tls", "tcp"] {
        seen.lock().unwrap().clear();
        let queries = pipelined(
            QUERIES,
            |i| format!("q{i}-{transport}.example.com"),
            RecordType::A,
        );
        let answers = if transport == "tls" {
            let mut tls = dot_held(ls.tls).await.expect("a DoT connection");
            tls.write_all(&queries).await.unwrap();
            tls.flush().await.unwrap();
            read_answers(&mut tls, QUERIES).await
        } else {
            let mut s = connect([127, 0, 0, 1], ls.dns, None).await.unwrap();
            s.write_all(&queries).await.unwrap();
            read_answers(&mut s, QUERIES).await
        };
        assert_eq!(answers, QUERIES, "{transport}: answers");
        // A query is in progress at the LS from the first time its name reaches
        // the backend until that copy's answer, DELAY later (the LS's re-asks
        // of it, answered later still, do not count).
        let mut first: Vec<Instant> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (at, name) in seen.lock().unwrap().iter() {
            if names.insert(name.clone()) {
                first.push(*at);
            }
        }
        let most = first
            .iter()
            .map(|at| {
                let open = |t: &&Instant| **t <= *at && at.duration_since(**t) < DELAY;
                first.iter().filter(open).count()
            })
            .max()
            .unwrap_or(0);
        eprintln!("{transport}: at most {most} queries of one connection at the backend at once");
        assert!(
            most <= 64,
            "{transport}: {most} queries in flight on one connection"
        );
    }
}

/// Reads `n` answers on `conn` (the one first asked with [`answered`] not
/// counted); how many came.
async fn read_answers<S: AsyncReadExt + Unpin>(conn: &mut S, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(WAIT, read_frame(conn)).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    got
}

/// A TCP, a DoT and a DoH client's connection each live on one worker
/// thread: their queries leave from that thread's own upstream sockets and
/// connections and the answers are read there, so no query wakes another
/// thread. A plain TCP connection and a DoT one each pipeline 40 queries
/// (distinct names: no cache hit) and 5 TXT queries the backend truncates
/// over UDP (asked again over TCP); 5 DoH GETs come on connections of their
/// own. `dnslb_thread_crossings_total` stays 0: `worker` (a query sent from
/// a thread with no upstream sockets of its own, the shared pool) and
/// `answer` (an upstream answer read on another thread than the one that
/// asked). Before, every one of these queries was sent from the
/// multi-threaded runtime's shared pool (`worker` counted each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_queries_and_their_upstream_answers_stay_on_one_thread() {
    const QUERIES: usize = 40;
    let backend = big_backend().await;
    let ls = start_ls(backend.addr, "").await;
    let crossings = async |at: &str| {
        let line = format!("dnslb_thread_crossings_total{{at=\"{at}\"}}");
        ls.metric::<u64>(&line).await
    };
    let before = backend.queries.load(std::sync::atomic::Ordering::Relaxed);
    for transport in ["tcp", "tls"] {
        let mut queries = pipelined(
            QUERIES,
            |i| format!("t{i}-{transport}.example.com"),
            RecordType::A,
        );
        queries.extend(pipelined(5, |_| HUGE.to_string(), RecordType::TXT));
        let answers = if transport == "tls" {
            let mut tls = dot_held(ls.tls).await.expect("a DoT connection");
            tls.write_all(&queries).await.unwrap();
            tls.flush().await.unwrap();
            read_answers(&mut tls, QUERIES + 5).await
        } else {
            let mut s = connect([127, 0, 0, 1], ls.dns, None).await.unwrap();
            s.write_all(&queries).await.unwrap();
            read_answers(&mut s, QUERIES + 5).await
        };
        assert_eq!(answers, QUERIES + 5, "{transport}: answers");
    }
    for _ in 0..5 {
        assert_eq!(doh_status([127, 0, 0, 1], ls.https).await, Some(200));
    }
    let forwarded = backend.queries.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        forwarded >= 2 * QUERIES as u64,
        "{forwarded} queries reached the backend"
    );
    assert_eq!(crossings("worker").await, 0, "sent off the worker threads");
    assert_eq!(
        crossings("answer").await,
        0,
        "answers read on another thread"
    );
}

//! dnstap read by the real tools: what dnslb writes to `fstrm_capture`
//! (the collector, fstrm-bin) is read back by `dnstap-read` (BIND) and
//! `dnstap-ldns`, and the messages are the ones logged: kinds, names,
//! types, rcodes, addresses.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dnslb::config::DnstapConfig;
use dnslb::dnstap::{Dnstap, RECONNECT, Settings, TapEvent, TapKind, TapTarget, TapTransport};
use dnslb::roles::ts::{TsRole, TsRun};
use dnslb::roles::{Control, Controls};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio_util::sync::CancellationToken;

use crate::kit::{
    Capture, DNSTAP_TOOLS, LsRoleRun, Via, ZoneDir, dnstap_ldns_yaml, dnstap_read_lines,
    dnstap_read_yaml, need, poll_until_async, query, send, start_ls_role, start_ts_table,
    ts_settings, udp_exchange_raw, wire_query,
};

/// `query` answered with `rcode` (no records).
fn answer(query: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::from_vec(query).unwrap();
    m.metadata.message_type = MessageType::Response;
    m.metadata.response_code = rcode;
    m.to_vec().unwrap()
}

fn settings(target: TapTarget, kinds: Vec<TapKind>) -> Settings {
    Settings {
        target,
        kinds,
        identity: Some(b"ls-under-test".to_vec()),
        version: Some(b"dnslb test".to_vec()),
        queue_size: 1024,
        queue_bytes: dnslb::config::DNSTAP_QUEUE_BYTES,
        backoff: RECONNECT,
    }
}

/// Waits (up to 10 s) until the dnstap of `stats` has sent `n` frames.
async fn wait_sent(stats: &dnslb::dnstap::DnstapStats, n: u64) {
    let all = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || (stats.sent.load(Ordering::Relaxed) >= n).then_some(()),
    )
    .await;
    assert!(all.is_some(), "{n} frames sent; stats {stats:?}");
}

/// Sends each `(name, type, via, _)` of `asked` to `addr`, with IDs from
/// `first_id` on, RD as `rd`.
async fn ask_each(addr: SocketAddr, asked: &[Asked], first_id: u16, rd: bool) {
    for (i, (name, qtype, via, _)) in asked.iter().enumerate() {
        let q = wire_query(name, *qtype, first_id + i as u16, rd, true);
        send(addr, &q, *via).await.unwrap();
    }
}

/// A question asked, how, and the rcode its answer has.
type Asked = (&'static str, RecordType, Via, &'static str);

/// The question as `dnstap-read` prints it: `name/IN/TYPE`.
fn printed(name: &str, qtype: RecordType) -> String {
    format!("{}/IN/{qtype}", name.trim_end_matches('.'))
}

/// The transport as `dnstap-read` prints it.
fn proto(tcp: bool) -> &'static str {
    if tcp { " TCP " } else { " UDP " }
}

/// The `status` of each message of type `kind` in `dnstap-read -y`'s
/// output, in order.
fn statuses(yaml: &str, kind: &str) -> Vec<String> {
    yaml.split("\n---")
        .filter(|doc| doc.contains(&format!("type: {kind}")))
        .map(|doc| {
            let at = doc.find("status: ").unwrap() + "status: ".len();
            doc[at..].split_whitespace().next().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_written_frames_are_read_by_dnstap_read_and_dnstap_ldns() {
    let test = "dnstap::the_written_frames_are_read_by_dnstap_read_and_dnstap_ldns";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = Capture::start(&dir.path().join("tap.sock"), &dir.path().join("tap.fstrm"));
    let token = CancellationToken::new();
    let kinds = vec![
        TapKind::ClientQuery,
        TapKind::ClientResponse,
        TapKind::ForwarderQuery,
        TapKind::ForwarderResponse,
    ];
    let (tap, writer) = Dnstap::start(
        settings(TapTarget::Unix(capture.sock.clone()), kinds),
        token.clone(),
    );

    let client: SocketAddr = "127.0.0.9:41000".parse().unwrap();
    let ls: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let upstream: SocketAddr = "127.0.0.1:42000".parse().unwrap();
    let backend: SocketAddr = "127.0.0.2:5301".parse().unwrap();
    let asked = [
        (
            "www.example.org.",
            RecordType::A,
            ResponseCode::NoError,
            TapTransport::Udp,
        ),
        (
            "mail.example.org.",
            RecordType::AAAA,
            ResponseCode::NXDomain,
            TapTransport::Tcp,
        ),
        (
            "example.net.",
            RecordType::MX,
            ResponseCode::ServFail,
            TapTransport::Udp,
        ),
    ];
    for (i, (name, qtype, rcode, transport)) in asked.iter().enumerate() {
        let q = wire_query(name, *qtype, 100 + i as u16, true, true);
        let a = answer(&q, *rcode);
        for (kind, from, to, wire) in [
            (TapKind::ClientQuery, client, ls, &q),
            (TapKind::ForwarderQuery, upstream, backend, &q),
            (TapKind::ForwarderResponse, upstream, backend, &a),
            (TapKind::ClientResponse, client, ls, &a),
        ] {
            let via = if matches!(kind, TapKind::ForwarderQuery | TapKind::ForwarderResponse) {
                TapTransport::Udp
            } else {
                *transport
            };
            let mut e = TapEvent::new(kind, via, from, wire);
            e.response_addr = Some(to);
            tap.log(&e);
        }
    }
    wait_sent(&tap.stats().unwrap(), 12).await;
    token.cancel();
    writer.stopped().await;
    let file = capture.file.clone();
    capture.stop();
    let lines = dnstap_read_lines(&file);
    assert_eq!(lines.len(), 12, "{lines:#?}");
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(kinds, ["CQ", "FQ", "FR", "CR"].repeat(3), "{lines:#?}");
    for (i, (name, qtype, _, transport)) in asked.iter().enumerate() {
        let shown = printed(name, *qtype);
        for line in &lines[4 * i..4 * i + 4] {
            assert!(line.contains(&shown), "{line} should name {shown}");
        }
        let cq = &lines[4 * i];
        assert!(cq.contains("127.0.0.9:41000 -> 127.0.0.1:5300"), "{cq}");
        assert!(cq.contains(proto(*transport == TapTransport::Tcp)), "{cq}");
        assert!(
            lines[4 * i + 1].contains("127.0.0.1:42000 -> 127.0.0.2:5301"),
            "{}",
            lines[4 * i + 1]
        );
    }

    let yaml = dnstap_read_yaml(&file);
    assert_eq!(
        yaml.matches("identity: ls-under-test").count(),
        12,
        "{yaml}"
    );
    assert_eq!(yaml.matches("version: dnslb test").count(), 12);
    // The answers' rcodes, as BIND's reader decodes them, in order.
    for kind in ["FORWARDER_RESPONSE", "CLIENT_RESPONSE"] {
        assert_eq!(
            statuses(&yaml, kind),
            ["NOERROR", "NXDOMAIN", "SERVFAIL"],
            "{kind}:\n{yaml}"
        );
    }
    assert_eq!(statuses(&yaml, "CLIENT_QUERY").len(), 3);
    let ldns = dnstap_ldns_yaml(&file);
    assert_eq!(ldns.matches("type: CLIENT_QUERY").count(), 3, "{ldns}");
    assert_eq!(
        ldns.matches("type: FORWARDER_RESPONSE").count(),
        3,
        "{ldns}"
    );
    assert_eq!(ldns.matches("rcode: NXDOMAIN").count(), 2, "{ldns}");
    for (name, ..) in asked {
        assert!(ldns.contains(name), "{name} in\n{ldns}");
    }
}

#[tokio::test]
async fn a_collector_killed_costs_counted_drops_and_a_new_one_gets_frames_again() {
    let test = "dnstap::a_collector_killed_costs_counted_drops_and_a_new_one_gets_frames_again";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let first = Capture::start(&sock, &dir.path().join("first.fstrm"));
    let token = CancellationToken::new();
    let mut s = settings(TapTarget::Unix(sock.clone()), vec![TapKind::AuthQuery]);
    s.queue_size = 64;
    let (tap, writer) = Dnstap::start(s, token.clone());
    let stats = tap.stats().unwrap();
    let client: SocketAddr = "127.0.0.9:41000".parse().unwrap();
    let log = |i: u16| {
        let q = wire_query(&format!("q{i}.example."), RecordType::A, i, false, false);
        tap.log(&TapEvent::new(
            TapKind::AuthQuery,
            TapTransport::Udp,
            client,
            &q,
        ));
    };
    let load = |n: u64| stats.sent.load(Ordering::Relaxed) == n;
    let wait = async |what: &str, f: &dyn Fn() -> bool| {
        let ok = poll_until_async(
            Duration::from_secs(15),
            Duration::from_millis(10),
            async || f().then_some(()),
        )
        .await;
        assert!(ok.is_some(), "{what}; stats {stats:?}");
    };

    for i in 0..10 {
        log(i);
    }
    wait("10 frames to the first collector", &|| load(10)).await;
    first.kill();
    wait("the writer sees the collector gone", &|| {
        !stats.connected.load(Ordering::Relaxed)
    })
    .await;
    // No collector: the queue (64) holds the first frames, the rest are
    // dropped at once, counted, and logging never waits.
    for i in 100..300 {
        log(i);
    }
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 136);

    let second = Capture::start(&sock, &dir.path().join("second.fstrm"));
    wait("the queued frames reach the new collector", &|| load(74)).await;
    for i in 500..510 {
        log(i);
    }
    wait("new frames flow", &|| load(84)).await;
    token.cancel();
    writer.stopped().await;
    let file = second.file.clone();
    second.stop();

    let lines = dnstap_read_lines(&file);
    let names: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().last().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (100..164)
        .chain(500..510)
        .map(|i| format!("q{i}.example/IN/A"))
        .collect();
    assert_eq!(names, want, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains(" AQ ")));
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 136);
}

/// A table for the TS tests: two names under `example.org.`.
const TABLE: &str = "www.example.org 192.0.2.1 A\nmail.example.org 2001:db8::25 AAAA\n";

#[tokio::test]
async fn a_ts_writes_auth_query_and_response_that_dnstap_read_reads() {
    let test = "dnstap::a_ts_writes_auth_query_and_response_that_dnstap_read_reads";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let capture = Capture::start(&dir.path().join("ts.sock"), &dir.path().join("ts.fstrm"));
    let mut settings = ts_settings(vec![dir.write("t.txt", TABLE)]);
    settings.origin = "example.org.".parse().unwrap();
    let mut tap = DnstapConfig::unix(&capture.sock);
    tap.identity = Some("ts-under-test".into());
    let run = TsRun {
        settings,
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        metrics: None,
        workers: 1,
        dnstap: Some(tap),
        xdp: Vec::new(),
    };
    let role = TsRole::start(run).await.expect("the TS starts");
    let addr = role.local_addrs()[0];
    let table = role.table().clone();
    let (controls, rx) = Controls::channel();
    let serving = tokio::spawn(role.serve(rx));

    let asked: [Asked; 4] = [
        ("www.example.org.", RecordType::A, Via::Udp, "NOERROR"),
        ("mail.example.org.", RecordType::AAAA, Via::Tcp, "NOERROR"),
        ("nope.example.org.", RecordType::A, Via::Udp, "NXDOMAIN"),
        ("example.com.", RecordType::A, Via::Tcp, "REFUSED"),
    ];
    ask_each(addr, &asked, 7, false).await;
    wait_sent(&table.dnstap().stats().unwrap(), 8).await;
    let shown = dnslb::metrics::render_ts_prometheus(&table);
    assert!(
        shown.contains("dnslb_dnstap_frames_total{result=\"sent\"} 8"),
        "{shown}"
    );
    controls.send(Control::Shutdown).unwrap();
    serving.await.unwrap().unwrap();
    let file = capture.file.clone();
    capture.stop();

    let lines = dnstap_read_lines(&file);
    assert_eq!(lines.len(), 8, "{lines:#?}");
    for (i, (name, qtype, via, _)) in asked.iter().enumerate() {
        let (aq, ar) = (&lines[2 * i], &lines[2 * i + 1]);
        let (q, proto) = (printed(name, *qtype), proto(*via == Via::Tcp));
        // dnstap-read draws the arrow from the client to the TS, and back.
        for (line, kind, arrow) in [(aq, " AQ ", "->"), (ar, " AR ", "<-")] {
            assert!(
                line.contains(kind) && line.contains(&q) && line.contains(proto),
                "{line}"
            );
            assert!(
                line.contains(&format!("{arrow} {addr}")),
                "{line} at {addr}"
            );
        }
    }
    let yaml = dnstap_read_yaml(&file);
    assert_eq!(yaml.matches("identity: ts-under-test").count(), 8);
    let want: Vec<&str> = asked.iter().map(|a| a.3).collect();
    assert_eq!(statuses(&yaml, "AUTH_RESPONSE"), want, "{yaml}");
    let ldns = dnstap_ldns_yaml(&file);
    assert_eq!(ldns.matches("type: AUTH_QUERY").count(), 4, "{ldns}");
    assert_eq!(ldns.matches("type: AUTH_RESPONSE").count(), 4, "{ldns}");
}

/// The dnstap payloads of the Frame Streams file `file`, in order.
fn payloads(file: &std::path::Path) -> Vec<dnslb::dnstap::message::Payload> {
    use prost::Message as _;
    let bytes = std::fs::read(file).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while let Ok(Some((frame, used))) = dnslb::dnstap::frame::decode(&bytes[at..]) {
        at += used;
        if let dnslb::dnstap::frame::Frame::Data(data) = frame {
            out.push(dnslb::dnstap::message::Payload::decode(data).unwrap());
        }
    }
    out
}

/// An LS of one worker before the backend `ts` at `backend`, writing only
/// FORWARDER_RESPONSE to `capture` as `identity` (besides what `rest`, more
/// of the config, logs).
async fn ls_tapping_responses(
    dir: &ZoneDir,
    backend: SocketAddr,
    capture: &Capture,
    identity: &str,
    rest: &str,
) -> LsRoleRun {
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[ls.dnstap]\nsocket = \"{}\"\n\
         identity = \"{identity}\"\nmessages = [\"forwarder-response\"]\n\n\
         [[ls.backend]]\nname = \"ts\"\naddr = \"{backend}\"\n\n{rest}",
        capture.sock.display(),
    );
    let path = dir.path().join("ls.toml");
    std::fs::write(&path, text).unwrap();
    start_ls_role(&path).await
}

/// Waits (up to `within`) until the LS's dnstap has sent `n` frames, then
/// stops the LS and the collector: the capture's file.
async fn stop_after_frames(
    ls: LsRoleRun,
    capture: Capture,
    n: u64,
    within: Duration,
) -> std::path::PathBuf {
    let stats = ls.balancer.dnstap().stats().unwrap();
    let sent = poll_until_async(within, Duration::from_millis(10), async || {
        (stats.sent.load(Ordering::Relaxed) >= n).then_some(())
    })
    .await;
    assert!(sent.is_some(), "{n} frames; {stats:?}");
    ls.controls.send(Control::Shutdown).unwrap();
    ls.task.await.unwrap().unwrap();
    let file = capture.file.clone();
    capture.stop();
    file
}

/// An `[ls]` with one worker, the backend `ts` at `backend` and dnstap to `sock`.
fn ls_config(
    dir: &std::path::Path,
    backend: SocketAddr,
    sock: &std::path::Path,
) -> std::path::PathBuf {
    ls_config_queue(dir, backend, sock, 16384)
}

/// [`ls_config`] with a dnstap queue of `queue` frames.
fn ls_config_queue(
    dir: &std::path::Path,
    backend: SocketAddr,
    sock: &std::path::Path,
    queue: usize,
) -> std::path::PathBuf {
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[ls.dnstap]\nsocket = \"{}\"\n\
         identity = \"ls-e2e\"\nqueue_size = {queue}\n\n[[ls.backend]]\nname = \"ts\"\naddr = \"{backend}\"\n",
        sock.display()
    );
    let path = dir.join("ls.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_ls_writes_client_and_forwarder_messages_on_udp_and_tcp() {
    let test = "dnstap::the_ls_writes_client_and_forwarder_messages_on_udp_and_tcp";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let capture = Capture::start(&dir.path().join("ls.sock"), &dir.path().join("ls.fstrm"));
    let ls = start_ls_role(&ls_config(dir.path(), ts.addr, &capture.sock)).await;
    let asked: [Asked; 3] = [
        ("www.example.org.", RecordType::A, Via::Udp, "NOERROR"),
        ("mail.example.org.", RecordType::AAAA, Via::Tcp, "NOERROR"),
        ("nope.example.org.", RecordType::A, Via::Udp, "NXDOMAIN"),
    ];
    ask_each(ls.addr, &asked, 40, true).await;
    let (ls_addr, balancer) = (ls.addr, ls.balancer.clone());
    let file = stop_after_frames(ls, capture, 12, Duration::from_secs(10)).await;
    let metrics = dnslb::metrics::render_prometheus(&balancer);
    assert!(
        metrics.contains("dnslb_dnstap_frames_total{result=\"dropped\"} 0"),
        "{metrics}"
    );

    let lines = dnstap_read_lines(&file);
    for (name, qtype, via, _) in &asked {
        let q = printed(name, *qtype);
        let of = |kind: &str| {
            lines
                .iter()
                .filter(|l| l.contains(kind) && l.contains(&q))
                .count()
        };
        assert_eq!((of(" CQ "), of(" CR ")), (1, 1), "{q}: {lines:#?}");
        assert!(of(" FQ ") >= 1 && of(" FR ") >= 1, "{q}: {lines:#?}");
        let proto = proto(*via == Via::Tcp);
        let cq = lines
            .iter()
            .find(|l| l.contains(" CQ ") && l.contains(&q))
            .unwrap();
        assert!(cq.contains(proto), "{cq}");
        // The responder is the LS's listener, over TCP too.
        assert!(cq.contains(&format!("-> {}", ls_addr)), "{cq}");
        let cr = lines
            .iter()
            .find(|l| l.contains(" CR ") && l.contains(&q))
            .unwrap();
        assert!(cr.contains(&ls_addr.to_string()), "{cr}");
        let fq = lines
            .iter()
            .find(|l| l.contains(" FQ ") && l.contains(&q))
            .unwrap();
        assert!(
            fq.contains(&format!("-> {}", ts.addr)),
            "{fq} to the backend {}",
            ts.addr
        );
        // From the LS's upstream socket's port, not 0.0.0.0:0.
        assert!(!fq.contains(" 0.0.0.0:0 "), "{fq}");
    }
    let yaml = dnstap_read_yaml(&file);
    assert!(yaml.matches("identity: ls-e2e").count() >= 12);
    let want: Vec<&str> = asked.iter().map(|a| a.3).collect();
    assert_eq!(statuses(&yaml, "CLIENT_RESPONSE"), want, "{yaml}");
    // Every CLIENT_RESPONSE, over UDP too, says when its query came
    // and when it left, the one no later than the other. (dnstap-read
    // prints only a response's response_time: read the frames.)
    let responses: Vec<_> = payloads(&file)
        .into_iter()
        .filter_map(|p| p.message)
        .filter(|m| m.r#type == dnslb::dnstap::message::MessageType::ClientResponse as i32)
        .map(|m| {
            let asked = m.query_time_sec.zip(m.query_time_nsec);
            let answered = m.response_time_sec.zip(m.response_time_nsec);
            (m.socket_protocol, asked, answered)
        })
        .collect();
    assert_eq!(responses.len(), 3, "{responses:?}");
    for (proto, asked, answered) in &responses {
        assert!(
            asked.is_some() && asked <= answered,
            "protocol {proto:?}: {responses:?}"
        );
    }
    let ldns = dnstap_ldns_yaml(&file);
    assert_eq!(ldns.matches("type: CLIENT_QUERY").count(), 3, "{ldns}");
}

/// The UDP fast path writes the try that a refused send queues in its
/// flush: the first backend is a broadcast address (the kernel refuses to
/// send to it, `EACCES`), the second the TS, asked at once in the same
/// flush; its FORWARDER_QUERY is written as the first one's is (it was
/// left out: the round's queries were written once, before the flush's
/// first send pass).
#[tokio::test]
async fn the_try_after_a_refused_send_is_written_too() {
    let test = "dnstap::the_try_after_a_refused_send_is_written_too";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let capture = Capture::start(&dir.path().join("ls.sock"), &dir.path().join("ls.fstrm"));
    // Probes once an hour: the refused backend fails its first one, and is
    // marked up by hand (a down backend is not asked).
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\nstrategy = \"sequential\"\n\
         order = \"fixed\"\n\n[ls.health]\ninterval_ms = 3600000\n\n[ls.dnstap]\n\
         socket = \"{}\"\nidentity = \"ls-refused\"\n\n\
         [[ls.backend]]\nname = \"refused\"\naddr = \"127.255.255.255:53\"\n\n\
         [[ls.backend]]\nname = \"ts\"\naddr = \"{}\"\n",
        capture.sock.display(),
        ts.addr,
    );
    let path = dir.path().join("ls.toml");
    std::fs::write(&path, text).unwrap();
    let ls = start_ls_role(&path).await;
    for b in &ls.balancer.state().backends {
        b.set_up(true);
    }
    let asked: [Asked; 1] = [("www.example.org.", RecordType::A, Via::Udp, "NOERROR")];
    ask_each(ls.addr, &asked, 70, true).await;
    // CLIENT_QUERY, FORWARDER_QUERY to each backend, FORWARDER_RESPONSE,
    // CLIENT_RESPONSE.
    let file = stop_after_frames(ls, capture, 5, Duration::from_secs(10)).await;
    let lines = dnstap_read_lines(&file);
    let q = printed("www.example.org.", RecordType::A);
    let fq = |to: &str| {
        lines
            .iter()
            .filter(|l| l.contains(" FQ ") && l.contains(&q) && l.contains(to))
            .count()
    };
    assert_eq!(fq("-> 127.255.255.255:53"), 1, "{lines:#?}");
    assert_eq!(fq(&format!("-> {}", ts.addr)), 1, "{lines:#?}");
    let of = |kind: &str| lines.iter().filter(|l| l.contains(kind)).count();
    assert_eq!(
        (of(" CQ "), of(" FR "), of(" CR ")),
        (1, 1, 1),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_collector_killed_under_load_loses_no_query_and_frames_flow_again() {
    let test = "dnstap::a_collector_killed_under_load_loses_no_query_and_frames_flow_again";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let sock = dir.path().join("ls.sock");
    let first = Capture::start(&sock, &dir.path().join("first.fstrm"));
    let ls = start_ls_role(&ls_config_queue(dir.path(), ts.addr, &sock, 64)).await;
    let stats = ls.balancer.dnstap().stats().unwrap();
    let frames = |r: &str| {
        let c = if r == "sent" {
            &stats.sent
        } else {
            &stats.dropped
        };
        c.load(Ordering::Relaxed)
    };
    // Eight clients, 150 queries each, in three phases: the collector up,
    // killed, and a new one started; every query must be answered.
    let round = async |phase: u16| {
        let clients = (0..8u16).map(|c| {
            let addr = ls.addr;
            tokio::spawn(async move {
                let mut answered = 0;
                for i in 0..50u16 {
                    let name = "www.example.org.";
                    let mut q = query(name, RecordType::A, None);
                    q.metadata.id = phase * 1000 + c * 100 + i;
                    let r = udp_exchange_raw(addr, &q, Duration::from_secs(5)).await;
                    answered += usize::from(r.is_some());
                }
                answered
            })
        });
        let mut answered = 0;
        for c in clients.collect::<Vec<_>>() {
            answered += c.await.unwrap();
        }
        answered
    };
    assert_eq!(
        round(1).await,
        400,
        "every query answered with the collector up"
    );
    first.kill();
    assert_eq!(
        round(2).await,
        400,
        "every query answered with the collector gone"
    );
    let dropped = frames("dropped");
    assert!(dropped > 0, "frames dropped and counted with no collector");
    let sent_before = frames("sent");
    let second = Capture::start(&sock, &dir.path().join("second.fstrm"));
    let again = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(20),
        async || (frames("sent") > sent_before).then_some(()),
    )
    .await;
    assert!(again.is_some(), "the writer reconnects: {stats:?}");
    assert_eq!(
        round(3).await,
        400,
        "every query answered after the restart"
    );
    let settled = poll_until_async(
        Duration::from_secs(15),
        Duration::from_millis(20),
        async || (frames("sent") + frames("dropped") >= 4 * 1200).then_some(()),
    )
    .await;
    assert!(settled.is_some(), "every frame sent or dropped: {stats:?}");
    let shown = dnslb::metrics::render_prometheus(&ls.balancer);
    assert!(
        shown.contains(&format!(
            "dnslb_dnstap_frames_total{{result=\"dropped\"}} {}",
            frames("dropped")
        )),
        "{shown}"
    );
    ls.controls.send(Control::Shutdown).unwrap();
    ls.task.await.unwrap().unwrap();
    let file = second.file.clone();
    second.stop();
    let lines = dnstap_read_lines(&file);
    let cq = lines.iter().filter(|l| l.contains(" CQ ")).count();
    assert!(cq > 0, "the new collector got client queries: {lines:#?}");
}

/// A query rule with `log = true` writes the query it acted on to dnstap
/// (CLIENT_QUERY with the rule as its policy, the client's and the LS's
/// addresses and ports, as the ordinary CLIENT_QUERY has them) even when
/// `messages` does not select CLIENT_QUERY, over UDP and TCP; a rule
/// without `log` writes nothing.
#[tokio::test]
async fn a_rule_with_log_writes_the_query_it_acted_on_to_dnstap() {
    let test = "dnstap::a_rule_with_log_writes_the_query_it_acted_on_to_dnstap";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let capture = Capture::start(&dir.path().join("ls.sock"), &dir.path().join("ls.fstrm"));
    let rules = "[[ls.rule]]\nname = \"logged\"\nmatch = { suffix = [\"logged.test\"] }\n\
                 action = \"nxdomain\"\nlog = true\n\n\
                 [[ls.rule]]\nname = \"quiet\"\nmatch = { suffix = [\"quiet.test\"] }\n\
                 action = \"nxdomain\"\n";
    let ls = ls_tapping_responses(&dir, ts.addr, &capture, "ls-rules", rules).await;
    for (i, (name, via)) in [
        ("a.logged.test.", Via::Udp),
        ("b.quiet.test.", Via::Udp),
        ("c.logged.test.", Via::Tcp),
    ]
    .iter()
    .enumerate()
    {
        let q = wire_query(name, RecordType::A, 60 + i as u16, true, true);
        let m = send(ls.addr, &q, *via).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    let ls_addr = ls.addr;
    let file = stop_after_frames(ls, capture, 2, Duration::from_secs(10)).await;

    let lines = dnstap_read_lines(&file);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, name, proto) in [
        (&lines[0], "a.logged.test/IN/A", " UDP "),
        (&lines[1], "c.logged.test/IN/A", " TCP "),
    ] {
        assert!(
            line.contains(" CQ ") && line.contains(name) && line.contains(proto),
            "{line}"
        );
        // The LS's address and port, as the ordinary CLIENT_QUERY has them.
        assert!(line.contains(&format!(" -> {ls_addr} ")), "{line}");
    }
    let yaml = dnstap_read_yaml(&file);
    assert_eq!(yaml.matches("identity: ls-rules").count(), 2, "{yaml}");
    // dnstap-read does not print the policy: read it from the file.
    let policies: Vec<_> = payloads(&file)
        .into_iter()
        .map(|payload| {
            let p = payload.message.unwrap().policy.unwrap();
            (String::from_utf8(p.rule.unwrap()).unwrap(), p.action)
        })
        .collect();
    let nx = Some(dnslb::dnstap::message::PolicyAction::Nxdomain as i32);
    assert_eq!(
        policies,
        [("logged".to_owned(), nx), ("logged".to_owned(), nx)]
    );
}

/// A dynamic block with `log = true` writes its block and its release to
/// dnstap (whatever `messages` selects): CLIENT_QUERY frames from the
/// client, without a DNS message, whose `extra` says what happened.
#[tokio::test]
async fn a_dynamic_block_with_log_writes_its_block_and_release_to_dnstap() {
    let test = "dnstap::a_dynamic_block_with_log_writes_its_block_and_release_to_dnstap";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", TABLE).await;
    let capture = Capture::start(&dir.path().join("ls.sock"), &dir.path().join("ls.fstrm"));
    let rules = "[[ls.rule]]\nname = \"local\"\nmatch = { suffix = [\"flood.test\"] }\n\
                 action = \"nxdomain\"\n\n\
                 [[ls.dynamic_block]]\nname = \"flood\"\nkind = \"query-rate\"\nthreshold = 5\n\
                 window_s = 1\nblock_s = 1\naction = \"refuse\"\nlog = true\n";
    let ls = ls_tapping_responses(&dir, ts.addr, &capture, "ls-dyn", rules).await;
    // 40 queries in well under a second: over 5 a second.
    for i in 0..40u16 {
        let q = wire_query("x.flood.test.", RecordType::A, i, true, false);
        let _ = send(ls.addr, &q, Via::Udp).await;
    }
    // Blocked within about a tick, released a block_s later.
    let file = stop_after_frames(ls, capture, 2, Duration::from_secs(15)).await;

    let lines = dnstap_read_lines(&file);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains(" CQ 127.0.0.1:0 ")),
        "{lines:#?}"
    );
    let extras: Vec<String> = payloads(&file)
        .into_iter()
        .map(|p| String::from_utf8(p.extra.unwrap()).unwrap())
        .collect();
    assert_eq!(extras.len(), 2, "{extras:?}");
    assert!(
        extras[0].starts_with("dnslb dynblock flood block 127.0.0.1 "),
        "{extras:?}"
    );
    assert!(
        extras[1].starts_with("dnslb dynblock flood release 127.0.0.1 "),
        "{extras:?}"
    );
}

/// CLIENT_QUERY and CLIENT_RESPONSE over DNS over TLS and DNS over
/// HTTPS name the LS's listener as the responder (kdig asks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_names_its_listener_in_dot_and_doh_client_messages() {
    use crate::kit::tls::{HOST, Pki};
    let test = "dnstap::the_ls_names_its_listener_in_dot_and_doh_client_messages";
    if need(test, DNSTAP_TOOLS).is_none() {
        return;
    }
    let Some(kdig) = need(test, ["kdig"]) else {
        return;
    };
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let (cert, key) = pki.leaf("ls");
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let capture = Capture::start(&pki.path().join("ls.sock"), &pki.path().join("ls.fstrm"));
    let ports = crate::kit::free_ports(2);
    let (tls, https) = (
        SocketAddr::from(([127, 0, 0, 1], ports[0])),
        SocketAddr::from(([127, 0, 0, 1], ports[1])),
    );
    let files = format!(
        "cert = \"{}\"\nkey = \"{}\"\n",
        crate::kit::path_str(&cert),
        crate::kit::path_str(&key)
    );
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n\
         [ls.tls]\nlisten = [\"{tls}\"]\n{files}\n\
         [ls.https]\nlisten = [\"{https}\"]\n{files}\n\
         [ls.dnstap]\nsocket = \"{}\"\n\n[[ls.backend]]\nname = \"ts\"\naddr = \"{}\"\n",
        capture.sock.display(),
        ts.addr
    );
    let config = pki.path().join("ls.toml");
    std::fs::write(&config, text).unwrap();
    let ls = start_ls_role(&config).await;
    let ca = format!("+tls-ca={}", crate::kit::path_str(&pki.ca()));
    let host = format!("+tls-hostname={HOST}");
    for (port, how) in [(tls.port(), "+tls"), (https.port(), "+https")] {
        let port = port.to_string();
        let args = [
            "@127.0.0.1",
            "-p",
            &port,
            how,
            &ca,
            &host,
            "+retry=0",
            "+time=2",
            "www.example.org",
            "A",
        ];
        let out = crate::kit::run_tool(crate::kit::path_str(&kdig[0]), &args).stdout;
        assert!(out.contains("NOERROR"), "{out}");
    }
    let file = stop_after_frames(ls, capture, 8, Duration::from_secs(10)).await;
    let lines = dnstap_read_lines(&file);
    for at in [tls, https] {
        let cq = lines.iter().filter(|l| l.contains(" CQ ")).count();
        assert_eq!(cq, 2, "{lines:#?}");
        let to = format!("-> {at}");
        assert!(
            lines.iter().any(|l| l.contains(" CQ ") && l.contains(&to)),
            "{to}: {lines:#?}"
        );
        let cr = lines
            .iter()
            .filter(|l| l.contains(" CR ") && l.contains(&at.to_string()))
            .count();
        assert_eq!(cr, 1, "{at}: {lines:#?}");
    }
    ts.stop().await;
}

//! Zone transfer and NOTIFY (docs/CONFIG.md (the TS): "AXFR over TCP for clients the config
//! allows, so that standard secondaries can replicate a TS's zone; NOTIFY them
//! on reload. The SOA serial goes up on every reload that changes the data,
//! never down.").
//!
//! * NSD as a secondary of a `dnslb ts` process serving a master file: the
//!   first transfer, then an edit, SIGHUP, the TS's NOTIFY and NSD's refresh
//!   (the SOA refresh timer is an hour, so only the NOTIFY can explain it).
//! * The same with a PROJ table, whose SOA the TS synthesizes: the serial
//!   goes up on a changing reload and stays put on a reload that changes
//!   nothing.
//! * `dnslb::ts::xfr::notify::task::notify_with` against plain UDP sockets: one that acknowledges
//!   (the NOTIFY's wire form is checked), one that never answers (bounded
//!   give-up), one that answers with the wrong ID (not an acknowledgement).
//!
//! Every child process is stopped by PID from a `Drop` guard (SIGTERM, a
//! bounded wait, SIGKILL); NSD runs in a process group of its own, stopped by
//! that id. Readiness and changes are polled with real DNS queries in bounded
//! loops, never slept on.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::net::UdpSocket;

use crate::kit::Nsd;
use crate::kit::{self, ZoneDir, answers_a};
use crate::kit::{
    TsProc, assert_all_acknowledged, assert_first_copy, assert_one_notify, assert_serial_up,
    assert_tbl_copy, authoritative_serial, sec_zone, tbl_table,
};
use crate::kit::{free_port, poll_until_async};

/// How long a server may take to start answering.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// How long NSD may take to pick up a change after the SIGHUP. Its own
/// refresh timer is an hour and its retry timer ten minutes, so anything
/// within this bound is the NOTIFY's doing.
const NOTIFY_LIMIT: Duration = Duration::from_secs(8);
/// How long one poll query waits for its answer.
const QUERY_WAIT: Duration = Duration::from_millis(250);
/// How long [`ask_sure`] keeps asking for an answer that must come.
const ANSWER_LIMIT: Duration = Duration::from_secs(3);
/// Pause between two polls (connection refused comes back at once).
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// One query over UDP (RD=0, no EDNS); `None` if nothing decodable with the
/// query's ID comes back within [`QUERY_WAIT`].
async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    let q = kit::query(name, qtype, None);
    let raw = kit::udp_raw_wait(addr, &q.to_vec().unwrap(), QUERY_WAIT).await?;
    Message::from_vec(&raw)
        .ok()
        .filter(|m| m.metadata.id == q.metadata.id)
}

/// A short rendering of an answer for failure messages.
fn show(m: Option<&Message>) -> String {
    m.map_or("no answer".into(), kit::show)
}

/// [`ask`] again until an answer comes (UDP may lose one, e.g. while NSD
/// hands its sockets to a freshly reloaded server process); panics after
/// [`ANSWER_LIMIT`].
async fn ask_sure(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    poll_until_async(ANSWER_LIMIT, POLL, async || ask(addr, name, qtype).await)
        .await
        .unwrap_or_else(|| {
            panic!("no answer from {addr} to {name} {qtype} within {ANSWER_LIMIT:?}")
        })
}

/// The SOA serial `addr` serves for `zone`; `None` unless the answer is
/// authoritative NOERROR with an SOA.
async fn serial_of(addr: SocketAddr, zone: &str) -> Option<u32> {
    authoritative_serial(&ask_sure(addr, zone, RecordType::SOA).await)
}

// ---------------------------------------------------------------------------
// `dnslb ts` as a child process
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// NSD as a secondary
// ---------------------------------------------------------------------------

/// What a poll of NSD waits for: its first transfer (within
/// [`READY_LIMIT`]) or its refresh after the TS's SIGHUP and NOTIFY
/// (within [`NOTIFY_LIMIT`]).
#[derive(Clone, Copy)]
enum Stage {
    FirstTransfer,
    Refresh,
}

/// Polls `nsd` with `name A` until it answers `want`;
/// returns that answer. Panics (with NSD's logs and the TS's stderr) if
/// NSD exits or after the `stage`'s limit.
async fn nsd_poll(
    nsd: &mut Nsd,
    ts: &TsProc,
    name: &str,
    want: &[Ipv4Addr],
    stage: Stage,
) -> Message {
    let (what, limit) = match stage {
        Stage::FirstTransfer => ("the first transfer", READY_LIMIT),
        Stage::Refresh => ("the refresh after SIGHUP + NOTIFY", NOTIFY_LIMIT),
    };
    let addr = nsd.addr;
    let mut last = None;
    let found = poll_until_async(limit, POLL, async || {
        nsd.check_alive();
        let m = ask(addr, name, RecordType::A).await;
        if m.as_ref().is_some_and(|m| answers_a(m, want)) {
            return m;
        }
        last = m;
        None
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "NSD on {addr}: {what} did not happen within {limit:?}; last answer to \
             {name} A: {}\n{}\n--- TS stderr ---\n{}",
            show(last.as_ref()),
            nsd.logs(),
            ts.stderr_now()
        )
    })
}

// ---------------------------------------------------------------------------
// What a secondary (NSD here, Knot in peers::knot_secondary) must show
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// 1. NSD replicates a master-file zone and follows a NOTIFY
// ---------------------------------------------------------------------------

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_secondary_transfers_a_master_file_zone_and_follows_notify() {
    let dir = ZoneDir::new();
    let zone_path = dir.write("sec.zone", &sec_zone(1, ""));
    let nsd_port = free_port();
    let mut ts = TsProc::start(dir.path(), ("sec.zone", ""), nsd_port, "sec.test.").await;
    assert_eq!(serial_of(ts.addr, "sec.test.").await, Some(1));

    let started = Instant::now();
    let mut nsd = Nsd::secondary(nsd_port, "sec.test.", ts.addr);
    // Data NSD can only have from the TS: its zone file does not exist.
    let www = [ip("192.0.2.1"), ip("192.0.2.2")];
    nsd_poll(&mut nsd, &ts, "www.sec.test.", &www, Stage::FirstTransfer).await;
    eprintln!(
        "NSD served the transferred sec.test. {:?} after its start",
        started.elapsed()
    );
    assert_first_copy(nsd.addr, "NSD").await;

    // Serial 2 and a new name; SIGHUP; only the NOTIFY can make NSD look
    // again within the next hour.
    std::fs::write(
        &zone_path,
        sec_zone(2, "new   IN A   192.0.2.99\n").as_str(),
    )
    .unwrap();
    let hup = Instant::now();
    ts.reload();
    let new = [ip("192.0.2.99")];
    nsd_poll(&mut nsd, &ts, "new.sec.test.", &new, Stage::Refresh).await;
    let took = hup.elapsed();
    eprintln!("NSD answered the new name {took:?} after the TS's SIGHUP (NOTIFY -> IXFR/AXFR)");
    assert_eq!(serial_of(nsd.addr, "sec.test.").await, Some(2));
    assert_eq!(serial_of(ts.addr, "sec.test.").await, Some(2));
    // The old data came along unchanged.
    let m = ask_sure(nsd.addr, "www.sec.test.", RecordType::A).await;
    assert!(answers_a(&m, &www), "{}", show(Some(&m)));
    ts.wait_log("notify acknowledged", 1, Duration::from_secs(3))
        .await;
    assert_all_acknowledged(&ts.stderr_now(), "NSD");
    drop(nsd);
    drop(ts);
}

// ---------------------------------------------------------------------------
// 2. NSD replicates a PROJ-table zone with a synthesized SOA
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_secondary_follows_a_proj_table_zone_with_synthesized_serial() {
    let nsd_port = free_port();
    let (_dir, table, mut ts) = TsProc::start_tbl(nsd_port).await;
    let s1 = serial_of(ts.addr, "tbl.test.").await.expect("TS SOA");

    let mut nsd = Nsd::secondary(nsd_port, "tbl.test.", ts.addr);
    let www = [ip("192.0.2.1")];
    nsd_poll(&mut nsd, &ts, "www.tbl.test.", &www, Stage::FirstTransfer).await;
    assert_tbl_copy(nsd.addr, "NSD", s1).await;

    // A reload that changes nothing keeps the serial (and sends no NOTIFY).
    ts.reload();
    ts.wait_log("reload done", 1, Duration::from_secs(5)).await;
    assert_eq!(
        serial_of(ts.addr, "tbl.test.").await,
        Some(s1),
        "an unchanged reload must keep the serial"
    );

    // Edit the table: the serial goes up and NSD follows the NOTIFY.
    std::fs::write(&table, tbl_table("new.tbl.test 192.0.2.77 A\n")).unwrap();
    let hup = Instant::now();
    ts.reload();
    let new = [ip("192.0.2.77")];
    let m = nsd_poll(&mut nsd, &ts, "new.tbl.test.", &new, Stage::Refresh).await;
    assert!(m.metadata.authoritative);
    eprintln!(
        "NSD answered the new table name {:?} after the TS's SIGHUP",
        hup.elapsed()
    );
    let s2 = serial_of(ts.addr, "tbl.test.").await.expect("TS SOA");
    assert_serial_up(s1, s2);
    assert_eq!(serial_of(nsd.addr, "tbl.test.").await, Some(s2));
    ts.wait_log("reload done", 2, Duration::from_secs(3)).await;
    ts.wait_log("notify acknowledged", 1, Duration::from_secs(3))
        .await;
    assert_one_notify(&ts.stderr_now());
    drop(nsd);
    drop(ts);
}

// ---------------------------------------------------------------------------
// 3. `notify::task::notify_with` against plain UDP sockets
// ---------------------------------------------------------------------------

/// What a fake secondary does with each NOTIFY it receives.
#[derive(Clone, Copy)]
enum Fake {
    /// Echo it back with QR=1 (an acknowledgement).
    Ack,
    /// Never answer.
    Silent,
    /// Answer with QR=1 but another ID.
    WrongId,
}

/// A UDP socket on 127.0.0.1 acting as `how`: its address, the task serving
/// it (which returns every packet it received once the sender is dropped),
/// and that sender.
async fn fake_secondary(
    how: Fake,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Vec<Vec<u8>>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = tokio::select! {
                _ = &mut stopped => return got,
                r = sock.recv_from(&mut buf) => r.unwrap(),
            };
            let pkt = buf[..n].to_vec();
            got.push(pkt.clone());
            let mut reply = pkt;
            if reply.len() >= 12 {
                reply[2] |= 0x80; // QR=1
                if let Fake::WrongId = how {
                    reply[0] ^= 0x5a;
                }
                if !matches!(how, Fake::Silent) {
                    sock.send_to(&reply, from).await.unwrap();
                }
            }
        }
    });
    (addr, task, stop)
}

/// Checks the wire form of a NOTIFY for `zone` (RFC 1996 §3.3, §3.7).
fn assert_notify_packet(pkt: &[u8], zone: &str) {
    let m = Message::from_vec(pkt).expect("a decodable NOTIFY");
    let md = &m.metadata;
    assert_eq!(md.message_type, MessageType::Query, "QR=0");
    assert_eq!(md.op_code, OpCode::Notify, "opcode NOTIFY (4)");
    assert_eq!(pkt[2] >> 3 & 0x0f, 4, "opcode bits on the wire");
    assert!(md.authoritative, "AA=1 in a NOTIFY");
    assert_eq!(m.queries.len(), 1, "one question");
    let q = &m.queries[0];
    assert_eq!(q.name().to_ascii(), zone);
    assert_eq!(q.query_type(), RecordType::SOA);
    assert_eq!(q.query_class(), DNSClass::IN);
}

/// Runs `notify::task::notify_with` for `zone` against a fake secondary behaving as `fake`:
/// whether it was acknowledged, how long it took, and the packets the fake got.
async fn notify_against(fake: Fake, zone: &str) -> (bool, Duration, Vec<Vec<u8>>) {
    let (addr, task, stop) = fake_secondary(fake).await;
    let zone = Name::from_ascii(zone).unwrap();
    let t = Instant::now();
    // The back-off of `notify_wait`, ten times shorter.
    let fast = |n| dnslb::ts::xfr::notify::policy::notify_wait(n).map(|d| d / 10);
    let notified = dnslb::ts::xfr::notify::task::notify_with(None, addr, &zone, None, fast);
    let acked = tokio::time::timeout(Duration::from_secs(10), notified)
        .await
        .expect("notify must return by itself")
        == dnslb::ts::xfr::notify::policy::Notified::Acknowledged;
    let took = t.elapsed();
    drop(stop);
    (acked, took, task.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_is_acknowledged_by_a_secondary_that_echoes_it() {
    let _load = crate::kit::timed().await;
    let (acked, took, got) = notify_against(Fake::Ack, "notify.test.").await;
    assert!(
        acked,
        "an echoed NOTIFY (QR=1, same ID) is an acknowledgement"
    );
    assert_eq!(got.len(), 1, "acknowledged at once: no retry ({took:?})");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_notify_packet(&got[0], "notify.test.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_gives_up_on_a_silent_secondary() {
    let _load = crate::kit::timed().await;
    let (acked, took, got) = notify_against(Fake::Silent, "silent.test.").await;
    eprintln!(
        "notify gave up on a silent secondary after {took:?} and {} tries",
        got.len()
    );
    assert!(!acked, "nothing came back: not acknowledged");
    assert!(took < Duration::from_secs(5), "bounded give-up: {took:?}");
    assert_eq!(
        got.len(),
        5,
        "a lost NOTIFY is retried, backing off (RFC 1996 §3.6): {} sent",
        got.len()
    );
    assert!(
        took >= Duration::from_millis(3100),
        "1+2+4+8+16 tenths: {took:?}"
    );
    for pkt in &got {
        assert_notify_packet(pkt, "silent.test.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_ignores_a_reply_with_another_id() {
    let (acked, _, got) = notify_against(Fake::WrongId, "wrongid.test.").await;
    assert!(!acked, "a reply with another ID is no acknowledgement");
    assert_eq!(
        got.len(),
        5,
        "each reply with another ID is ignored, so every try is sent, as to a silent secondary"
    );
}

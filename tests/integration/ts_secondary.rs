//! The TS as a secondary (docs/CONFIG.md (the TS) "The TS as a secondary"): a `dnslb ts`
//! whose zone is `{ name, primary }` transfers it from a primary (a dnslb
//! TS here, a hostile one of `kit::hostile`), follows its changes by NOTIFY
//! and IXFR, keeps serving while the primary is down, answers SERVFAIL past
//! the SOA EXPIRE, serves its state_dir copy at a restart with the primary
//! gone, refuses a transfer signed with the wrong key, and changes nothing
//! when a transfer is cut or an IXFR does not apply.
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::kit::hostile::{
    Script, hostile, hostile_keyed, name, notify, secondary_config, secondary_counter,
    secondary_of_hostile, soa,
};
use crate::kit::xfr::{TsProc, ask_copy, assert_first_copy, authoritative_serial, sec_zone};
use crate::kit::{self, Knot, Nsd, ZoneDir, free_port, udp_raw};

/// How long a change may take to reach the secondary (NOTIFY, IXFR).
const FOLLOW: Duration = Duration::from_secs(10);

/// The primary: `dnslb ts` serving `zone_text` as sec.test., NOTIFYing
/// 127.0.0.1:`notify_port`; `extra` added to its `[[ts]]`.
async fn dnslb_primary(zone_text: &str, notify_port: u16, extra: &str) -> (ZoneDir, TsProc) {
    let dir = ZoneDir::new();
    dir.write("sec.zone", zone_text);
    let ts = TsProc::start(dir.path(), ("sec.zone", extra), notify_port, "sec.test.").await;
    (dir, ts)
}

/// Asks `name qtype` at `addr` until `done` holds (panics after [`FOLLOW`]).
async fn until(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    done: impl Fn(&Message) -> bool,
) -> Message {
    kit::wait_for(addr, name, qtype, false, FOLLOW, &mut [], done).await
}

/// Sixty host records: a zone big enough that the primary keeps a change
/// of one record for IXFR (it keeps none over half the zone's size).
fn hosts() -> String {
    (1..=60)
        .map(|i| format!("h{i} IN A 198.51.100.{i}\n"))
        .collect()
}

#[tokio::test]
async fn a_secondary_follows_its_primary_by_ixfr_and_outlives_it() {
    let port = free_port();
    let (pdir, mut primary) = dnslb_primary(&sec_zone(1, &hosts()), port, "").await;
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), port, primary.addr, "");
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    // The first copy, by AXFR: the primary's data, serial 1.
    assert_first_copy(sec.addr, "the dnslb secondary").await;

    // A change on the primary, a reload: its NOTIFY brings it by IXFR.
    pdir.write(
        "sec.zone",
        &sec_zone(2, &(hosts() + "new IN A 192.0.2.99\n")),
    );
    primary.reload();
    serves_the_change(sec.addr).await;
    // Logged before it was served, but the log's reader may not have it yet.
    sec.wait_line_where("the change's transfer by IXFR", FOLLOW, |l| {
        l.contains("secondary zone transferred") && l.contains("ixfr")
    })
    .await;
    let kept: Vec<String> = std::fs::read_dir(sdir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter().filter(|f| f.ends_with(".xfr")).count() == 1,
        "one copy kept: {kept:?}"
    );
    assert!(
        kept.contains(&"sec.test.contact".to_owned()),
        "the last contact beside it: {kept:?}"
    );
    // A primary to its own secondaries: an IXFR from serial 1 gets the
    // change it applied (SOA 2, SOA 1, SOA 2, the new record, SOA 2).
    let ixfr = ixfr_from(sec.addr, 1).await;
    let serials: Vec<Option<u32>> = ixfr.iter().map(serial_of).collect();
    assert_eq!(
        serials,
        vec![Some(2), Some(1), Some(2), None, Some(2)],
        "{ixfr:?}"
    );
    assert!(ixfr[3].to_string().contains("192.0.2.99"));

    // The primary gone: the secondary keeps serving what it has.
    drop(primary);
    let www = ask_copy(sec.addr, "new.sec.test.", RecordType::A).await;
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);

    // Restarted with the primary unreachable: its state_dir copy at once.
    drop(sec);
    let mut again = TsProc::spawn(sdir.path(), "sec", port, &config);
    again.wait_serving("sec.test.").await;
    let soa = ask_copy(again.addr, "sec.test.", RecordType::SOA).await;
    assert_eq!(
        authoritative_serial(&soa),
        Some(2),
        "served from state_dir: {}",
        kit::show(&soa)
    );
    again.wait_line("served from state_dir", FOLLOW).await;
}

#[tokio::test]
async fn past_the_soa_expire_without_its_primary_the_zone_answers_servfail() {
    let port = free_port();
    // REFRESH 1, RETRY 1, EXPIRE 3.
    let zone = sec_zone(1, "").replace(" 1 3600 600 604800 60", " 1 1 1 3 60");
    assert!(zone.contains(" 1 1 1 3 60"));
    let (_pdir, primary) = dnslb_primary(&zone, port, "").await;
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), port, primary.addr, "");
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    drop(primary);
    let failed = until(sec.addr, "www.sec.test.", RecordType::A, |m| {
        m.metadata.response_code == ResponseCode::ServFail
    })
    .await;
    assert!(failed.answers.is_empty());
    // Logged before the SERVFAIL, read from the pipe maybe after it.
    sec.wait_log("secondary zone expired", 1, FOLLOW).await;
    let log = sec.stderr_now();
    assert_eq!(
        log.matches("secondary zone expired").count(),
        1,
        "logged once:\n{log}"
    );
    // Restarted with the primary still down: its copy in state_dir is
    // past EXPIRE since the last contact, so it is not served (SERVFAIL
    // from the first answer on), not revived for another EXPIRE.
    drop(sec);
    let mut again = TsProc::spawn(sdir.path(), "sec", port, &config);
    let first = kit::poll_answer(
        again.addr,
        ("www.sec.test.", RecordType::A, false),
        FOLLOW,
        &mut [&mut again.proc],
        // REFUSED: up, its secondary zones not read yet.
        |m| m.metadata.response_code != ResponseCode::Refused,
    )
    .await
    .unwrap();
    assert_eq!(
        first.metadata.response_code,
        ResponseCode::ServFail,
        "{}",
        kit::show(&first)
    );
    again.wait_log("secondary zone expired", 1, FOLLOW).await;
}

#[tokio::test]
async fn a_transfer_signed_with_another_key_is_refused() {
    const KEY: &str = "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\n";
    let ours = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";
    let theirs = "YW5vdGhlciBzZWNyZXQsIGFub3RoZXIgc2VjcmV0IDEy";
    let port = free_port();
    let primary_extra = format!("xfr_key = \"xfr\"\n\n{KEY}secret = \"{theirs}\"\n");
    let (_pdir, primary) = dnslb_primary(&sec_zone(1, ""), port, &primary_extra).await;
    // Signed with another secret: never served.
    let sdir = ZoneDir::new();
    let mut config = secondary_config(sdir.path(), port, primary.addr, ", xfr_key = \"xfr\"");
    config.push_str(&format!("\n{KEY}secret = \"{ours}\"\n"));
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_log("secondary zone not transferred; nothing served", 2, FOLLOW)
        .await;
    let wait = Duration::from_secs(1);
    let soa = kit::ask(sec.addr, "sec.test.", RecordType::SOA, false, wait).await;
    assert!(soa.is_some_and(|m| m.answers.is_empty()), "nothing served");
    assert!(sec.stderr_now().contains("NOTAUTH") || sec.stderr_now().contains("TSIG"));
    drop(sec);
    // The same key: transferred.
    let sdir = ZoneDir::new();
    let mut config = secondary_config(sdir.path(), port, primary.addr, ", xfr_key = \"xfr\"");
    config.push_str(&format!("\n{KEY}secret = \"{theirs}\"\n"));
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    assert_first_copy(sec.addr, "the keyed secondary").await;
}

/// Waits until the secondary at `addr` serves the primary's change (the
/// name `new` added, serial 2).
async fn serves_the_change(addr: SocketAddr) {
    let new = until(addr, "new.sec.test.", RecordType::A, |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    assert_eq!(
        kit::a_addrs(&new),
        vec!["192.0.2.99".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    let soa = ask_copy(addr, "sec.test.", RecordType::SOA).await;
    assert_eq!(authoritative_serial(&soa), Some(2), "{}", kit::show(&soa));
}

/// A dnslb secondary of the primary at `primary` (NOTIFYing 127.0.0.1:
/// `port`): its first copy, then `change` made on the primary served within
/// [`FOLLOW`]; returns the secondary's log.
async fn follows(port: u16, primary: SocketAddr, change: impl FnOnce()) -> String {
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), port, primary, "");
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    assert_first_copy(sec.addr, "the dnslb secondary").await;
    change();
    serves_the_change(sec.addr).await;
    // The first copy's line and the change's, logged before the change was
    // served (the log's reader may have them only later).
    sec.wait_log("secondary zone transferred", 2, FOLLOW).await;
    sec.stderr_now()
}

#[tokio::test]
async fn a_secondary_of_knot_follows_it_by_ixfr() {
    let Some([knotd]) = kit::need("a_secondary_of_knot_follows_it_by_ixfr", ["knotd"]) else {
        return;
    };
    let port = free_port();
    let mut knot = Knot::primary_notifying(&knotd, "sec.test.", &sec_zone(1, &hosts()), port);
    knot.wait_ready("sec.test.").await;
    let changed = sec_zone(2, &(hosts() + "new IN A 192.0.2.99\n"));
    let log = follows(port, knot.addr, || knot.change_zone(&changed)).await;
    assert!(
        log.lines()
            .any(|l| l.contains("secondary zone transferred") && l.contains("ixfr")),
        "Knot's change came by IXFR:\n{log}\n{}",
        knot.logs()
    );
}

#[tokio::test]
async fn a_secondary_of_nsd_follows_it() {
    if kit::need("a_secondary_of_nsd_follows_it", ["nsd"]).is_none() {
        return;
    }
    let port = free_port();
    let mut nsd = Nsd::primary_notifying("sec.test.", &sec_zone(1, &hosts()), port);
    nsd.wait_ready("sec.test.").await;
    let changed = sec_zone(2, &(hosts() + "new IN A 192.0.2.99\n"));
    let addr = nsd.addr;
    follows(port, addr, || nsd.change_zone("sec.test.", &changed)).await;
}

fn serial_of(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// The answer records of an IXFR of sec.test. from `serial`, over TCP.
async fn ixfr_from(addr: SocketAddr, serial: u32) -> Vec<Record> {
    let mut q = Message::new(7, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(name("sec.test."), RecordType::IXFR));
    q.add_authority(soa(serial));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let raw = q.to_vec().unwrap();
    conn.write_u16(u16::try_from(raw.len()).unwrap())
        .await
        .unwrap();
    conn.write_all(&raw).await.unwrap();
    let mut records: Vec<Record> = Vec::new();
    // Until the last SOA: the first one's serial seen again, past the second record.
    for _ in 0..100 {
        let len = tokio::time::timeout(FOLLOW, conn.read_u16())
            .await
            .unwrap()
            .unwrap();
        let mut buf = vec![0; usize::from(len)];
        conn.read_exact(&mut buf).await.unwrap();
        records.extend(Message::from_vec(&buf).unwrap().answers);
        let first = records.first().and_then(serial_of);
        let last = records.last().and_then(serial_of);
        if records.len() > 2 && first.is_some() && first == last {
            break;
        }
    }
    records
}

#[tokio::test]
async fn knot_consumes_the_catalog_a_ts_publishes() {
    let Some([knotd]) = kit::need("knot_consumes_the_catalog_a_ts_publishes", ["knotd"]) else {
        return;
    };
    let port = free_port();
    let (_pdir, primary) = dnslb_primary(&sec_zone(1, ""), port, "catalog = \"cat.test.\"\n").await;
    // The catalog, served like any zone: its version and one member.
    let version = ask_copy(primary.addr, "version.cat.test.", RecordType::TXT).await;
    assert!(
        version
            .answers
            .iter()
            .any(|r| r.data.to_string().contains('2')),
        "{}",
        kit::show(&version)
    );
    let mut knot = Knot::catalog_consumer(&knotd, "cat.test.", primary.addr);
    // Knot learned sec.test. from it and transferred it.
    knot.wait_ready("sec.test.").await;
    let txt = kit::poll_answer(
        knot.addr,
        ("info.sec.test.", RecordType::TXT, false),
        FOLLOW,
        &mut [],
        |m| m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty(),
    )
    .await;
    assert!(txt.is_ok(), "Knot serves the member zone:\n{}", knot.logs());
}

// ---- A hostile primary -------------------------------------------------

#[tokio::test]
async fn a_hostile_primary_changes_nothing_served() {
    let (server, mut sec, _sdir) = secondary_of_hostile(vec![
        Script::Whole(1, 1),
        Script::Cut,
        Script::Cut,
        Script::Unapplicable,
        Script::Cut,
        Script::Whole(3, 3),
    ])
    .await;
    let www =
        |m: &Message| kit::a_addrs(m) == vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()];
    assert!(www(
        &ask_copy(sec.addr, "www.sec.test.", RecordType::A).await
    ));

    // An IXFR cut mid-stream, then the AXFR asked instead cut too.
    assert_eq!(notify(sec.addr).await, Some(ResponseCode::NoError));
    sec.wait_log("secondary zone not refreshed", 1, FOLLOW)
        .await;
    assert!(sec.stderr_now().contains("falling back to AXFR"));
    assert!(
        www(&ask_copy(sec.addr, "www.sec.test.", RecordType::A).await),
        "unchanged after the cut"
    );
    // An IXFR that does not apply, then an AXFR cut: nothing applied.
    assert_eq!(notify(sec.addr).await, Some(ResponseCode::NoError));
    sec.wait_log("secondary zone not refreshed", 2, FOLLOW)
        .await;
    let log = sec.stderr_now();
    assert!(log.contains("IXFR refused whole"), "{log}");
    assert!(
        www(&ask_copy(sec.addr, "www.sec.test.", RecordType::A).await),
        "unchanged"
    );
    let soa = ask_copy(sec.addr, "sec.test.", RecordType::SOA).await;
    assert_eq!(authoritative_serial(&soa), Some(1));
    // A whole answer: taken.
    assert_eq!(notify(sec.addr).await, Some(ResponseCode::NoError));
    until(sec.addr, "sec.test.", RecordType::SOA, |m| {
        authoritative_serial(m) == Some(3)
    })
    .await;
    let seen = server.await.unwrap();
    use RecordType::{AXFR, IXFR};
    assert_eq!(seen, vec![AXFR, IXFR, AXFR, IXFR, AXFR, IXFR]);
    // A NOTIFY from another address than the primary's: refused.
    let mut m = Message::new(98, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(name("sec.test."), RecordType::SOA));
    let from = "127.0.0.2".parse().unwrap();
    let raw = kit::udp_raw_from(from, sec.addr, &m.to_vec().unwrap(), Duration::from_secs(2)).await;
    let rcode = raw
        .and_then(|r| Message::from_vec(&r).ok())
        .map(|m| m.metadata.response_code);
    assert_eq!(rcode, Some(ResponseCode::Refused));
}

/// A primary whose serial went back (rebuilt, serials reset: 5, then 3):
/// refused while the copy at 5 lasts, then, once it expired, its whole
/// zone is taken anew by AXFR, as Knot does ("the zone expired" would
/// otherwise last for good).
#[tokio::test]
async fn a_primary_whose_serial_went_back_is_taken_anew_once_the_zone_expired() {
    let mut scripts = vec![Script::Short(5, 5)];
    scripts.extend([Script::Short(3, 3); 40]);
    let (server, mut sec, _sdir) = secondary_of_hostile(scripts).await;
    let soa = ask_copy(sec.addr, "sec.test.", RecordType::SOA).await;
    assert_eq!(authoritative_serial(&soa), Some(5));
    // Serial 3 from now on: older, refused, until EXPIRE (3 s); then anew.
    until(sec.addr, "sec.test.", RecordType::SOA, |m| {
        authoritative_serial(m) == Some(3)
    })
    .await;
    let www = ask_copy(sec.addr, "www.sec.test.", RecordType::A).await;
    assert_eq!(
        kit::a_addrs(&www),
        vec!["192.0.2.3".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    // Its line comes last of the three, before the new copy is served.
    sec.wait_line("its whole zone taken anew", FOLLOW).await;
    let log = sec.stderr_now();
    assert!(log.contains("serial is older than ours"), "{log}");
    assert!(log.contains("secondary zone expired"), "{log}");
    assert!(log.contains("its whole zone taken anew"), "{log}");
    server.abort();
}

/// A primary that accepts the refresh's connection and then says nothing
/// (hung, or SIGSTOPped): the zone must still expire at its SOA EXPIRE
/// (3 s) since the last contact, not once the transfer's I/O timeout (10 s)
/// ends the attempt.
///
/// (Before the fix, SERVFAIL came only ~11 s after the contact: EXPIRE was
/// checked only between attempts, so an attempt in flight held it back.)
#[tokio::test]
async fn a_silent_primary_does_not_hold_back_the_expiry() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary = listener.local_addr().unwrap();
    let server = tokio::spawn(hostile(listener, vec![Script::Short(1, 1), Script::Silent]));
    let port = free_port();
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), port, primary, "");
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    let contact = std::time::Instant::now();
    // EXPIRE 3 s from the contact, and a second for the clock's steps.
    let m = kit::wait_for(
        sec.addr,
        "www.sec.test.",
        RecordType::A,
        false,
        Duration::from_secs(5),
        &mut [],
        |m| m.metadata.response_code == ResponseCode::ServFail,
    )
    .await;
    eprintln!(
        "SERVFAIL {:?} after the contact: {}",
        contact.elapsed(),
        kit::show(&m)
    );
    server.abort();
}

/// [`notify`] signed with `key`.
async fn notify_keyed(
    to: SocketAddr,
    key: &std::sync::Arc<dnslb::dns::tsig::Key>,
) -> Option<ResponseCode> {
    let mut m = Message::new(97, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(name("sec.test."), RecordType::SOA));
    let mut raw = m.to_vec().unwrap();
    dnslb::dns::tsig::Signer::request(key.clone()).sign(&mut raw);
    let answer = udp_raw(to, &raw).await?;
    Some(ResponseCode::from(0, answer[3] & 0x0f))
}

/// A primary that signs its transfers with the zone's key, but whose
/// answer's fifth message does not verify (altered after signing), and one
/// whose first message claims 65,535 bytes and brings 20 (to the IXFR and
/// to the AXFR then asked): each changes nothing served, is logged and
/// counted as a failed attempt; a good answer after them is taken.
#[tokio::test]
async fn a_tsig_failing_on_the_fifth_message_or_a_huge_length_changes_nothing_served() {
    const KEY: &str = "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\n";
    let secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";
    let key = dnslb::dns::tsig::Key::new(
        "xfr",
        dnslb::dns::tsig::Algorithm::HmacSha256,
        b"secretsecretsecretsecretsecret12",
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary = listener.local_addr().unwrap();
    let scripts = vec![
        Script::Whole(1, 1),
        Script::Tampered,
        // Cut short: an AXFR asked at once, and cut the same way.
        Script::HugeClaim,
        Script::HugeClaim,
        Script::Whole(3, 3),
    ];
    let key = std::sync::Arc::new(key);
    let server = tokio::spawn(hostile_keyed(listener, key.clone(), scripts));
    let (port, mport) = (free_port(), free_port());
    let sdir = ZoneDir::new();
    let mut config = secondary_config(sdir.path(), port, primary, ", xfr_key = \"xfr\"");
    config.push_str(&format!(
        "metrics = \"127.0.0.1:{mport}\"\n\n{KEY}secret = \"{secret}\"\n"
    ));
    let mut sec = TsProc::spawn(sdir.path(), "sec", port, &config);
    sec.wait_serving("sec.test.").await;
    let metrics = kit::local(mport);
    let www =
        |m: &Message| kit::a_addrs(m) == vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()];
    for (round, why) in [(1, "TSIG"), (2, "early eof")] {
        assert_eq!(
            notify_keyed(sec.addr, &key).await,
            Some(ResponseCode::NoError)
        );
        sec.wait_log("secondary zone not refreshed", round, FOLLOW)
            .await;
        let log = sec.stderr_now();
        assert!(log.contains(why), "{log}");
        assert!(
            www(&ask_copy(sec.addr, "www.sec.test.", RecordType::A).await),
            "unchanged after round {round}"
        );
        let x1 = ask_copy(sec.addr, "x1.sec.test.", RecordType::A).await;
        assert_eq!(x1.metadata.response_code, ResponseCode::NXDomain);
        let soa = ask_copy(sec.addr, "sec.test.", RecordType::SOA).await;
        assert_eq!(authoritative_serial(&soa), Some(1));
        assert_eq!(secondary_counter(metrics, "failed").await, round as u64);
    }
    assert_eq!(
        notify_keyed(sec.addr, &key).await,
        Some(ResponseCode::NoError)
    );
    until(sec.addr, "sec.test.", RecordType::SOA, |m| {
        authoritative_serial(m) == Some(3)
    })
    .await;
    use RecordType::{AXFR, IXFR};
    assert_eq!(server.await.unwrap(), vec![AXFR, IXFR, IXFR, AXFR, IXFR]);
}

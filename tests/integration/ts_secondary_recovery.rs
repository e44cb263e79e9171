//! The TS as a secondary when its primary misbehaves (docs/CONFIG.md (the
//! TS) `zones`): an IXFR answer cut short or malformed is followed by an
//! AXFR at once, as Knot and BIND do; a zone whose SOA EXPIRE is shorter
//! than its REFRESH asks its primary again as it expires; an expired zone
//! sleeps until its next attempt (no wake-ups meanwhile); and a flood of
//! refused NOTIFYs is counted whole but logged a few lines a minute.
//! The primary is the hostile one of `kit::hostile`, over real TCP.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::kit::hostile::{
    Script, name, notify, secondary_counter, secondary_of_hostile, secondary_of_hostile_with,
};
use crate::kit::xfr::{ask_copy, authoritative_serial};
use crate::kit::{self, free_port, local};

/// How long a change may take to reach the secondary (NOTIFY, transfers),
/// or a line its log: generous for a loaded machine.
const FOLLOW: Duration = Duration::from_secs(10);

/// Asks sec.test. SOA at `addr` until its serial is `serial`.
async fn until_serial(addr: SocketAddr, serial: u32) {
    kit::wait_for(
        addr,
        "sec.test.",
        RecordType::SOA,
        false,
        FOLLOW,
        &mut [],
        |m| authoritative_serial(m) == Some(serial),
    )
    .await;
}

/// Asks www.sec.test. A at `addr` until it answers `rcode`: that answer.
async fn www_until(addr: SocketAddr, rcode: ResponseCode) -> Message {
    kit::wait_for(
        addr,
        "www.sec.test.",
        RecordType::A,
        false,
        FOLLOW,
        &mut [],
        |m| m.metadata.response_code == rcode,
    )
    .await
}

/// An IXFR answer that is cut short, or whose changes do not follow each
/// other (its last SOA another than its first), while the primary's AXFR
/// is fine: the zone is asked for whole at once and the new serial served
/// (it once stayed at the old one until it expired, the primary up).
#[tokio::test]
async fn a_cut_or_malformed_ixfr_answer_falls_back_to_axfr_at_once() {
    let (server, mut sec, _sdir) = secondary_of_hostile(vec![
        Script::Whole(1, 1),
        Script::Cut,
        Script::Whole(2, 2),
        Script::EndsOther(2),
        Script::Whole(3, 3),
    ])
    .await;
    // An IXFR cut after its second record: an AXFR instead.
    assert_eq!(notify(sec.addr).await, Some(ResponseCode::NoError));
    until_serial(sec.addr, 2).await;
    let www = ask_copy(sec.addr, "www.sec.test.", RecordType::A).await;
    assert_eq!(kit::a_addrs(&www), vec![Ipv4Addr::new(192, 0, 2, 2)]);
    // An IXFR whose second change does not start where the first ended.
    assert_eq!(notify(sec.addr).await, Some(ResponseCode::NoError));
    until_serial(sec.addr, 3).await;
    sec.wait_log("falling back to AXFR", 2, FOLLOW).await;
    let log = sec.stderr_now();
    assert!(log.contains("the answer was cut"), "{log}");
    assert!(
        log.contains("a change does not start where the last ended"),
        "{log}"
    );
    assert!(!log.contains("secondary zone not refreshed"), "{log}");
    use RecordType::{AXFR, IXFR};
    assert_eq!(server.await.unwrap(), vec![AXFR, IXFR, AXFR, IXFR, AXFR]);
}

/// A primary whose SOA says EXPIRE 2 s and REFRESH and RETRY an hour (a
/// mistake the secondary does not control), up all along: the zone is
/// asked for again as it expires, and served again at once, not an hour
/// later (it once answered SERVFAIL until the next REFRESH).
#[tokio::test]
async fn an_expire_shorter_than_refresh_asks_the_primary_as_the_zone_expires() {
    let timers = [3600, 3600, 2];
    let (server, mut sec, _sdir) = secondary_of_hostile(vec![
        Script::Timed(1, 1, timers),
        Script::Timed(1, 1, timers),
    ])
    .await;
    sec.wait_log("secondary zone expired", 1, FOLLOW).await;
    sec.wait_log("back in contact with its primary", 1, FOLLOW)
        .await;
    let www = www_until(sec.addr, ResponseCode::NoError).await;
    assert_eq!(kit::a_addrs(&www), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    use RecordType::{AXFR, IXFR};
    assert_eq!(server.await.unwrap(), vec![AXFR, IXFR]);
}

/// The context switches of every thread of `pid` so far: how often its
/// threads went to sleep and were woken.
fn wakeups(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// A zone expired with its primary gone (EXPIRE 2 s, RETRY an hour): it
/// answers SERVFAIL and its task sleeps until the next RETRY. It once
/// slept 0 s in a loop, waking ~1,700 times a second per zone (a few
/// thousand zones took both cores); a bound of 100 wake-ups of the whole
/// process in 3 s leaves room for its other threads' rare ones.
#[tokio::test]
async fn an_expired_zone_sleeps_until_its_next_attempt() {
    // The primary answers the first AXFR, then is gone (its port closed).
    let (server, mut sec, _sdir) =
        secondary_of_hostile(vec![Script::Timed(1, 1, [3600, 3600, 2])]).await;
    assert_eq!(server.await.unwrap(), vec![RecordType::AXFR]);
    sec.wait_log("secondary zone expired", 1, FOLLOW).await;
    www_until(sec.addr, ResponseCode::ServFail).await;
    let pid = sec.proc.pid();
    let before = wakeups(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let woken = wakeups(pid) - before;
    eprintln!("{woken} wake-ups in 3 s with the zone expired");
    sec.proc.assert_running();
    assert!(
        woken < 100,
        "{woken} wake-ups in 3 s with one zone expired:\n{}",
        sec.stderr_now()
    );
}

/// NOTIFYs for sec.test. from 127.0.0.9 (not its primary) and for a zone
/// the TS does not serve, each answered REFUSED in turn: every one counted
/// in `dnslb_ts_secondary_total{event="notify_refused"}`, a few logged
/// (the budget of five lines a minute; it once logged a line per packet,
/// 160,000 lines in 3 s).
#[tokio::test]
async fn a_flood_of_refused_notifies_is_counted_whole_and_logged_a_few_lines() {
    const FLOOD: u64 = 2000;
    let mport = free_port();
    let more = format!("metrics = \"127.0.0.1:{mport}\"\n");
    let (server, mut sec, _sdir) =
        secondary_of_hostile_with(vec![Script::Whole(1, 1)], &more).await;
    let metrics = local(mport);
    let sock = UdpSocket::bind("127.0.0.9:0").await.unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..FLOOD {
        let zone = if i % 2 == 0 {
            "sec.test."
        } else {
            "nowhere.test."
        };
        let mut m = Message::new(
            u16::try_from(i).unwrap(),
            MessageType::Query,
            OpCode::Notify,
        );
        m.add_query(Query::query(name(zone), RecordType::SOA));
        sock.send_to(&m.to_vec().unwrap(), sec.addr).await.unwrap();
        let (n, _) = tokio::time::timeout(FOLLOW, sock.recv_from(&mut buf))
            .await
            .expect("every NOTIFY answered")
            .unwrap();
        let answer = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    }
    assert_eq!(secondary_counter(metrics, "notify_refused").await, FLOOD);
    assert_eq!(secondary_counter(metrics, "notify_accepted").await, 0);
    sec.proc.assert_running();
    let log = sec.stderr_now();
    let lines = log.matches("NOTIFY refused").count();
    assert!((1..=5).contains(&lines), "{lines} lines:\n{log}");
    server.abort();
}

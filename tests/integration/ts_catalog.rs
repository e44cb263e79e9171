//! A TS consuming a catalog zone (`catalog_from`, RFC 9432 v2; docs/CONFIG.md
//! (the TS) `catalog_from`): a dnslb TS publishing `catalog = "cat.test."`
//! is the primary; the consumer serves each member as a secondary zone of
//! that primary, adds the zones the catalog gains, and stops serving (and
//! deletes the copy of) the zones it loses.
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::xfr::TsProc;
use crate::kit::{self, ZoneDir, free_port};

/// How long a change of the catalog may take to reach the consumer
/// (NOTIFY at the primary's start, a transfer of the catalog, one of each
/// member): generous for a loaded machine.
const FOLLOW: Duration = Duration::from_secs(20);

/// A small zone `name` with one TXT record naming it.
fn zone(name: &str) -> String {
    format!(
        "$ORIGIN {name}.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 1 3600 600 604800 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n\
         info IN TXT \"zone {name}\"\n"
    )
}

/// The primary's config: `zones` on `port`, publishing cat.test.,
/// NOTIFYing the consumer on `notify`.
fn primary_config(port: u16, zones: &[&str], notify: u16) -> String {
    let files: Vec<String> = zones.iter().map(|z| format!("\"{z}.zone\"")).collect();
    format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{port}\"\n\
         zones = [{}]\ncatalog = \"cat.test.\"\n\
         axfr_allow = [\"127.0.0.0/8\"]\nnotify = [\"127.0.0.1:{notify}\"]\nworkers = 1\n",
        files.join(", ")
    )
}

/// The consumer's config: nothing but the catalog of `primary`.
fn consumer_config(dir: &Path, port: u16, primary: u16) -> String {
    format!(
        "[[ts]]\nname = \"consumer\"\nlisten = \"127.0.0.1:{port}\"\nzones = []\n\
         catalog_from = {{ name = \"cat.test.\", primary = \"127.0.0.1:{primary}\" }}\n\
         axfr_allow = [\"127.0.0.0/8\"]\nstate_dir = \"{}\"\nworkers = 1\n",
        dir.join("state").display()
    )
}

/// The primary ([`primary_config`]) started in `dir`.
fn spawn_primary(dir: &Path, port: u16, zones: &[&str], notify: u16) -> TsProc {
    TsProc::spawn(dir, "primary", port, &primary_config(port, zones, notify))
}

/// The consumer ([`consumer_config`]) started in `dir`.
fn spawn_consumer(dir: &Path, port: u16, primary: u16) -> TsProc {
    TsProc::spawn(dir, "consumer", port, &consumer_config(dir, port, primary))
}

/// Asks `name TXT` of the consumer until `done` (panics after [`FOLLOW`]).
async fn until(ts: &TsProc, name: &str, done: impl Fn(&Message) -> bool) -> Message {
    kit::wait_for(ts.addr, name, RecordType::TXT, false, FOLLOW, &mut [], done).await
}

fn served(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
}

/// `name TXT` asked once of the TS at `addr`: its answer within 2 s.
async fn txt(addr: SocketAddr, name: &str) -> Option<Message> {
    kit::ask(addr, name, RecordType::TXT, false, Duration::from_secs(2)).await
}

/// Whether the TS at `addr` answers `info.ZONE.` TXT with data.
async fn info_served(addr: SocketAddr, zone: &str) -> bool {
    let m = txt(addr, &format!("info.{zone}.")).await;
    m.is_some_and(|m| served(&m))
}

#[tokio::test]
async fn a_ts_serves_the_members_of_a_catalog_as_they_come_and_go() {
    let (pport, cport) = (free_port(), free_port());
    let pdir = ZoneDir::new();
    for z in ["a.test", "b.test", "c.test"] {
        pdir.write(&format!("{z}.zone"), &zone(z));
    }
    let mut primary = spawn_primary(pdir.path(), pport, &["a.test", "b.test"], cport);
    primary.wait_serving("cat.test.").await;
    let cdir = ZoneDir::new();
    let mut consumer = spawn_consumer(cdir.path(), cport, pport);
    for z in ["a.test", "b.test"] {
        let m = until(&consumer, &format!("info.{z}."), served).await;
        assert!(
            m.answers[0].data.to_string().contains(z),
            "{}",
            kit::show(&m)
        );
    }
    let state = cdir.path().join("state");
    let kept = kit::poll_until(FOLLOW, Duration::from_millis(20), || {
        state.join("b.test.xfr").exists().then_some(())
    });
    assert!(kept.is_some(), "the member's copy is kept");

    // The primary restarted with b.test. gone and c.test. added: its
    // catalog's serial rises and it NOTIFYs the consumer at start.
    drop(primary);
    let mut primary = spawn_primary(pdir.path(), pport, &["a.test", "c.test"], cport);
    primary.wait_serving("c.test.").await;
    let c = until(&consumer, "info.c.test.", served).await;
    assert!(c.answers[0].data.to_string().contains("c.test"));
    let b = until(&consumer, "info.b.test.", |m| {
        m.metadata.response_code == ResponseCode::Refused
    })
    .await;
    assert!(b.answers.is_empty());
    assert!(
        !state.join("b.test.xfr").exists(),
        "the copy of a member gone is deleted"
    );
    assert!(
        info_served(consumer.addr, "a.test").await,
        "a member kept is still served"
    );
    // Logged before b.test. was dropped, read from the pipe maybe after.
    consumer.wait_line("catalog member removed", FOLLOW).await;
}

/// The members the catalog cat.test. of the TS at `addr` lists (its AXFR's
/// PTR targets), sorted.
async fn catalog_members(addr: SocketAddr) -> Vec<String> {
    let q = kit::query("cat.test.", RecordType::AXFR, None);
    let mut conn = kit::tcp_sent(addr, &q).await;
    let mut records = Vec::new();
    while records
        .iter()
        .filter(|r: &&hickory_proto::rr::Record| r.record_type() == RecordType::SOA)
        .count()
        < 2
    {
        let raw = kit::tcp_recv(&mut conn).await.expect("the catalog's AXFR");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        records.extend(m.answers);
    }
    let mut members: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::PTR)
        .map(|r| r.data.to_string())
        .collect();
    members.sort();
    members
}

/// Whether the TS at `addr` answers the AXFR of `zone` (its first message
/// NOERROR).
async fn transfers(addr: SocketAddr, zone: &str) -> bool {
    let q = kit::query(zone, RecordType::AXFR, None);
    let mut conn = kit::tcp_sent(addr, &q).await;
    let raw = kit::tcp_recv(&mut conn).await.expect("an AXFR answer");
    Message::from_vec(&raw).unwrap().metadata.response_code == ResponseCode::NoError
}

/// The catalog a TS publishes lists the zones it serves, and only those:
/// the members served answer and transfer, and none listed is refused (a
/// consumer would retry its transfer for ever).
async fn assert_catalog_is_what_is_served(addr: SocketAddr, served: &[&str], not: &[&str]) {
    let want: Vec<String> = served.iter().map(|z| format!("{z}.")).collect();
    assert_eq!(catalog_members(addr).await, want);
    for z in served {
        assert!(info_served(addr, z).await, "{z} is served");
        assert!(transfers(addr, &format!("{z}.")).await, "{z} transfers");
    }
    for z in not {
        let m = txt(addr, &format!("info.{z}.")).await.expect("an answer");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{z}");
    }
}

/// A zone added to `zones` and one removed, and a SIGHUP to `dnslb ts`:
/// both applied without a restart, and what the catalog lists is what is
/// served (the two never disagree), with no warning of a restart.
#[tokio::test]
async fn a_zone_added_to_zones_and_a_sighup_is_served_and_listed() {
    let port = free_port();
    let dir = ZoneDir::new();
    for z in ["a.test", "b.test", "c.test"] {
        dir.write(&format!("{z}.zone"), &zone(z));
    }
    let notify = free_port();
    let mut ts = spawn_primary(dir.path(), port, &["a.test", "b.test"], notify);
    ts.wait_serving("a.test.").await;
    assert_catalog_is_what_is_served(ts.addr, &["a.test", "b.test"], &["c.test"]).await;
    // c.test. added, b.test. removed: both applied by the reload.
    dir.write(
        "config.toml",
        &primary_config(port, &["a.test", "c.test"], notify),
    );
    ts.reload();
    ts.wait_log("reload done", 1, FOLLOW).await;
    assert_catalog_is_what_is_served(ts.addr, &["a.test", "c.test"], &["b.test"]).await;
    let log = ts.stderr_now();
    assert!(!log.contains("only a restart"), "{log}");
}

/// The file descriptors `pid` has open now (0 once it is gone).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The members of the large catalog.
const MEMBERS: usize = 2_000;

/// Waits (at most `secs`) until `ts` logged `what` once for the catalog
/// and once for each of its [`MEMBERS`]: how long that took.
async fn each_zone_logged(ts: &mut TsProc, what: &str, secs: u64) -> Duration {
    ts.wait_log(what, MEMBERS + 1, Duration::from_secs(secs))
        .await
}

/// The copies in `dir` (`.xfr` files: the catalog's and its members').
fn copies_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".xfr"))
            .count()
    })
}

/// Bytes each thread of `pid` has written to storage so far, by thread
/// name (`/proc/PID/task/TID/io` `write_bytes`: charged to the thread
/// that dirtied the pages), summed over threads of one name.
fn disk_writes_by_thread(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.filter_map(Result::ok) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let io = std::fs::read_to_string(t.path().join("io")).unwrap_or_default();
        let bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(comm.trim().to_owned()).or_default() += bytes;
    }
    out
}

/// The number after `key=` in the log line holding `line` (0 if none).
fn logged_count(log: &str, line: &str, key: &str) -> usize {
    let Some(l) = log.lines().find(|l| l.contains(line)) else {
        return 0;
    };
    let Some((_, rest)) = l.split_once(&format!("{key}=")) else {
        return 0;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// A catalog of 2,000 members converges: every member transferred, at most
/// a handful of transfers at once (the consumer's open descriptors stay
/// far below one socket a member: one per member at once would pass the
/// file limit at 50,000); no thread but the `state_dir` writer's writes to
/// disk (the runtime's threads do no disk work). Sent SIGTERM as soon as
/// the last member is served, it exits within a few seconds (no stop waits
/// behind every copy's two fsyncs on the runtime's threads), and every
/// member it served is either in `state_dir` or counted as abandoned in
/// its log; after a restart with the primary gone, every copy in
/// `state_dir` is served again.
#[tokio::test]
async fn a_catalog_of_two_thousand_members_converges_with_few_sockets_open() {
    let (pport, cport) = (free_port(), free_port());
    let pdir = ZoneDir::new();
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}.test")).collect();
    for z in &names {
        pdir.write(&format!("{z}.zone"), &zone(z));
    }
    let listed: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut primary = spawn_primary(pdir.path(), pport, &listed, cport);
    primary.wait_serving("cat.test.").await;
    let cdir = ZoneDir::new();
    let mut consumer = spawn_consumer(cdir.path(), cport, pport);
    let pid = consumer.proc.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(open_fds(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let took = each_zone_logged(&mut consumer, "secondary zone transferred", 180).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    eprintln!("{MEMBERS} members transferred in {took:?}, {most} descriptors open at most");
    for i in [0, 1, MEMBERS / 2, MEMBERS - 1] {
        let m = until(&consumer, &format!("info.m{i}.test."), served).await;
        assert!(served(&m), "{}", kit::show(&m));
    }
    let log = consumer.stderr_now();
    assert!(!log.contains("Too many open files"), "{log}");
    // A TS at rest holds a few dozen (sockets of its workers, runtime,
    // logs); eight transfers add eight.
    assert!(
        most < 120,
        "{most} descriptors open at once while {MEMBERS} members came"
    );

    // Only the state_dir writer's thread has written to disk.
    let writes = disk_writes_by_thread(pid);
    eprintln!("bytes written to disk by thread: {writes:?}");
    let elsewhere: u64 = writes
        .iter()
        .filter(|(name, _)| name.as_str() != "dnslb-state")
        .map(|(_, b)| b)
        .sum();
    assert_eq!(
        elsewhere, 0,
        "only the state_dir writer writes to disk: {writes:?}"
    );

    // Stopped at once: within SHUTDOWN_GRACE (5 s) and some.
    drop(primary);
    let stopped = std::time::Instant::now();
    consumer.proc.signal(rustix::process::Signal::TERM);
    let out = consumer.proc.finish(Duration::from_secs(15));
    eprintln!("stopped in {:?}", stopped.elapsed());
    assert!(out.status.success(), "{}", out.stderr);
    let state = cdir.path().join("state");
    let written = copies_in(&state);
    let abandoned = logged_count(
        &out.stderr,
        "state_dir writes abandoned at stop",
        "abandoned_copies",
    );
    eprintln!("{written} copies written, {abandoned} abandoned at stop");
    assert!(
        written + abandoned > MEMBERS,
        "each member served ({MEMBERS} and the catalog) is written or counted: \
         {written} written, {abandoned} abandoned"
    );
    assert!(written > 0, "the catalog's copy, written first, is kept");

    // Restarted with the primary gone: every copy written served from
    // state_dir (the catalog's among them).
    let mut consumer = spawn_consumer(cdir.path(), cport, pport);
    let took = consumer
        .wait_log(
            "secondary zone served from state_dir",
            written,
            Duration::from_secs(120),
        )
        .await;
    eprintln!("{written} zones served from state_dir in {took:?}");
    let cat = txt(consumer.addr, "version.cat.test.").await.unwrap();
    assert!(served(&cat), "{}", kit::show(&cat));
    let log = consumer.stderr_now();
    assert!(!log.contains("is not served"), "{log}");
}

/// A catalog whose new version is refused (`version` "1") keeps its
/// members served, and across a restart of the consumer too: the refused
/// version is neither served nor written to `state_dir` (as Knot), so the
/// consumer starts again from the last catalog it took (not with every
/// member REFUSED, their copies unread on disk).
#[tokio::test]
async fn a_refused_catalog_keeps_its_members_across_a_restart() {
    let (pport, cport) = (free_port(), free_port());
    let pdir = ZoneDir::new();
    pdir.write("a.test.zone", &zone("a.test"));
    let catalog = |serial: u32, version: &str| {
        format!(
            "$ORIGIN cat.test.\n$TTL 0\n\
             @ IN SOA invalid. invalid. {serial} 3600 600 604800 0\n\
             @ IN NS invalid.\n\
             version IN TXT \"{version}\"\n\
             a1.zones IN PTR a.test.\n"
        )
    };
    pdir.write("cat.test.zone", &catalog(1, "2"));
    let config = format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{pport}\"\n\
         zones = [\"a.test.zone\", \"cat.test.zone\"]\n\
         axfr_allow = [\"127.0.0.0/8\"]\nnotify = [\"127.0.0.1:{cport}\"]\nworkers = 1\n"
    );
    let mut primary = TsProc::spawn(pdir.path(), "primary", pport, &config);
    primary.wait_serving("cat.test.").await;
    let cdir = ZoneDir::new();
    let mut consumer = spawn_consumer(cdir.path(), cport, pport);
    until(&consumer, "info.a.test.", served).await;

    // Version "1": refused, a.test. kept.
    pdir.write("cat.test.zone", &catalog(2, "1"));
    primary.reload();
    consumer.wait_log("catalog refused", 1, FOLLOW).await;
    assert!(
        info_served(consumer.addr, "a.test").await,
        "kept while running"
    );

    // Restarted (the primary still serving version "1"): a.test. served
    // from state_dir at once, the catalog refused again, a.test. kept.
    drop(consumer);
    let mut consumer = spawn_consumer(cdir.path(), cport, pport);
    consumer.wait_log("catalog refused", 1, FOLLOW).await;
    let a = until(&consumer, "info.a.test.", served).await;
    assert!(a.answers[0].data.to_string().contains("a.test"));
    let cat = txt(consumer.addr, "version.cat.test.").await.unwrap();
    assert!(
        cat.answers[0].data.to_string().contains('2'),
        "the catalog served is the last one taken: {}",
        kit::show(&cat)
    );
    let log = consumer.stderr_now();
    assert!(
        log.contains("secondary zone served from state_dir"),
        "{log}"
    );
    assert!(!log.contains("catalog member removed"), "{log}");
}

//! Knot as a secondary of a `dnslb ts` (docs/CONFIG.md (the TS): "AXFR over TCP for clients
//! the config allows, so that standard secondaries (NSD, Knot, BIND) can
//! replicate a TS's zone; NOTIFY them on reload"): the same two scenarios
//! as xfr.rs runs with NSD.
//!
//! * A master file: Knot's first transfer, then an edit, SIGHUP, the TS's
//!   NOTIFY and Knot's refresh. The SOA's refresh timer is an hour and its
//!   retry ten minutes, so only the NOTIFY can explain a refresh within
//!   seconds.
//! * A PROJ table, whose SOA the TS synthesizes: Knot serves that serial;
//!   an unchanged reload keeps it (and sends no NOTIFY); a changing one
//!   raises it and Knot follows.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::Knot;
use crate::kit::{PEER_READY_LIMIT, need, poll_answer, show, wait_for, wait_stderr};
use crate::kit::{Proc, TsState, ZoneDir, free_ports, local, poll_until_async, start_ts_named};
use crate::kit::{answers_a, soa_serial, wait_soa};
use crate::kit::{
    assert_all_acknowledged, assert_first_copy, assert_one_notify, assert_serial_up,
    assert_tbl_copy, authoritative_serial, sec_zone, tbl_table, ts_config,
};

/// How long Knot may take to pick up a change after the TS's SIGHUP.
const NOTIFY_LIMIT: Duration = Duration::from_secs(8);

/// The serial `addr` serves for `zone` (authoritative NOERROR SOA), asked
/// until an answer comes.
async fn serial_of(addr: SocketAddr, zone: &str) -> Option<u32> {
    authoritative_serial(&wait_soa(addr, zone, PEER_READY_LIMIT, &mut [], |_| true).await)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `dnslb ts -c DIR/config.toml --name primary` with `config` written there;
/// waits until it serves `zone SOA`.
async fn start_ts(dir: &Path, config: &str, zone: &str, port: u16) -> Proc {
    let conf = dir.join("config.toml");
    let (at, cwd) = ((local(port), zone), Path::new("/"));
    let state = TsState::BesideZones;
    let limit = PEER_READY_LIMIT;
    start_ts_named(&conf, Some(config), "primary", cwd, state, at, limit, |m| {
        soa_serial(m).is_some()
    })
    .await
}

/// Rewrites the TS's zone `file` with `text` (which adds `new`: name and
/// address) and SIGHUPs the TS; only its NOTIFY can make Knot look again
/// within the test. Returns how long Knot took to answer the new name.
async fn edit_and_follow(
    knot: &mut Knot,
    ts: &mut Proc,
    file: &Path,
    text: &str,
    new: (&str, &str),
) -> Duration {
    std::fs::write(file, text).unwrap();
    let hup = Instant::now();
    ts.signal(Signal::HUP);
    let what = "the refresh after SIGHUP + NOTIFY";
    knot_poll(knot, ts, (new.0, &[ip(new.1)]), NOTIFY_LIMIT, what).await;
    hup.elapsed()
}

/// Polls Knot with `name A` until it answers `want`; panics with Knot's
/// log and the TS's stderr after `limit` (`what` says what was waited for).
async fn knot_poll(
    knot: &mut Knot,
    ts: &mut Proc,
    (name, want): (&str, &[Ipv4Addr]),
    limit: Duration,
    what: &str,
) -> Message {
    let qtype = RecordType::A;
    let addr = knot.addr;
    let found = poll_answer(
        addr,
        (name, qtype, false),
        limit,
        &mut [&mut knot.proc, ts],
        |m| answers_a(m, want),
    )
    .await;
    found.unwrap_or_else(|last| {
        panic!(
            "Knot on {addr}: {what} did not happen within {limit:?}; last answer to {name} \
             {qtype}: {}\n{}\n--- TS stderr ---\n{}",
            last.as_ref().map_or("none".into(), show),
            knot.logs(),
            ts.stderr_now()
        )
    })
}

/// [`knot_poll`] for Knot's first transfer of `name` (answering `want`).
async fn first_transfer(knot: &mut Knot, ts: &mut Proc, name: &str, want: &[Ipv4Addr]) {
    knot_poll(
        knot,
        ts,
        (name, want),
        PEER_READY_LIMIT,
        "the first transfer",
    )
    .await;
}

/// `name qtype` from `addr`, asked until an answer comes.
async fn ask_sure(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    wait_for(addr, name, qtype, false, PEER_READY_LIMIT, &mut [], |_| {
        true
    })
    .await
}

// ---------------------------------------------------------------------------
// 1. A master file
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_secondary_transfers_a_master_file_zone_and_follows_notify() {
    let Some([knotd]) = need("knot_secondary_master_file", ["knotd"]) else {
        return;
    };
    let dir = ZoneDir::new();
    let zone_path = dir.write("sec.zone", &sec_zone(1, ""));
    let [ts_port, knot_port] = free_ports(2).try_into().unwrap();
    let config = ts_config(ts_port, "sec.zone", knot_port, "");
    let mut ts = start_ts(dir.path(), &config, "sec.test.", ts_port).await;
    let ts_addr = local(ts_port);
    assert_eq!(serial_of(ts_addr, "sec.test.").await, Some(1));

    let started = Instant::now();
    let mut knot = Knot::secondary(&knotd, knot_port, "sec.test.", ts_addr);
    // Data Knot can only have from the TS: it has no zone file.
    let www = [ip("192.0.2.1"), ip("192.0.2.2")];
    first_transfer(&mut knot, &mut ts, "www.sec.test.", &www).await;
    eprintln!(
        "Knot served the transferred sec.test. {:?} after its start",
        started.elapsed()
    );
    assert_first_copy(knot.addr, "Knot").await;

    // Serial 2 and a new name; SIGHUP; only the NOTIFY can make Knot look
    // again within the next hour.
    let took = edit_and_follow(
        &mut knot,
        &mut ts,
        &zone_path,
        &sec_zone(2, "new   IN A   192.0.2.99\n"),
        ("new.sec.test.", "192.0.2.99"),
    )
    .await;
    eprintln!(
        "Knot answered the new name {took:?} after the TS's SIGHUP (NOTIFY -> SOA -> IXFR/AXFR)"
    );
    assert_eq!(serial_of(knot.addr, "sec.test.").await, Some(2));
    assert_eq!(serial_of(ts_addr, "sec.test.").await, Some(2));
    let m = ask_sure(knot.addr, "www.sec.test.", RecordType::A).await;
    assert!(answers_a(&m, &www), "the old data came along: {}", show(&m));
    wait_stderr(&mut ts, "notify acknowledged", 1, Duration::from_secs(3)).await;
    assert_all_acknowledged(&ts.stderr_now(), "Knot");
    drop(knot);
    drop(ts);
}

// ---------------------------------------------------------------------------
// 2. A PROJ table with a synthesized SOA
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_secondary_follows_a_proj_table_zone_with_synthesized_serial() {
    let Some([knotd]) = need("knot_secondary_proj_table", ["knotd"]) else {
        return;
    };
    let dir = ZoneDir::new();
    let table = dir.write("tbl.txt", &tbl_table(""));
    let [ts_port, knot_port] = free_ports(2).try_into().unwrap();
    let config = ts_config(ts_port, "tbl.txt", knot_port, "origin = \"tbl.test.\"\n");
    let mut ts = start_ts(dir.path(), &config, "tbl.test.", ts_port).await;
    let ts_addr = local(ts_port);
    let s1 = serial_of(ts_addr, "tbl.test.").await.expect("TS SOA");

    let mut knot = Knot::secondary(&knotd, knot_port, "tbl.test.", ts_addr);
    let www = [ip("192.0.2.1")];
    first_transfer(&mut knot, &mut ts, "www.tbl.test.", &www).await;
    assert_tbl_copy(knot.addr, "Knot", s1).await;

    // A reload that changes nothing keeps the serial (and sends no NOTIFY).
    ts.signal(Signal::HUP);
    wait_stderr(&mut ts, "reload done", 1, Duration::from_secs(5)).await;
    assert_eq!(
        serial_of(ts_addr, "tbl.test.").await,
        Some(s1),
        "an unchanged reload must keep the serial"
    );

    // Edit the table: the serial goes up and Knot follows the NOTIFY.
    let took = edit_and_follow(
        &mut knot,
        &mut ts,
        &table,
        &tbl_table("new.tbl.test 192.0.2.77 A\n"),
        ("new.tbl.test.", "192.0.2.77"),
    )
    .await;
    eprintln!("Knot answered the new table name {took:?} after the TS's SIGHUP");
    let s2 = serial_of(ts_addr, "tbl.test.").await.expect("TS SOA");
    assert_serial_up(s1, s2);
    assert_eq!(serial_of(knot.addr, "tbl.test.").await, Some(s2));
    wait_stderr(&mut ts, "reload done", 2, Duration::from_secs(3)).await;
    wait_stderr(&mut ts, "notify acknowledged", 1, Duration::from_secs(3)).await;
    assert_one_notify(&ts.stderr_now());
    drop(knot);
    drop(ts);
}

// ---------------------------------------------------------------------------
// 3. A secondary (Knot, NSD) that refuses the NOTIFY
// ---------------------------------------------------------------------------

/// After a change and a SIGHUP, waits for the TS's log to say what became
/// of its NOTIFY to a secondary that refuses it; asserts that it is not
/// logged as acknowledged and that the warning names the rcode.
async fn assert_refusal_logged(ts: &mut Proc, zone: &Path, who: &str, logs: impl Fn() -> String) {
    std::fs::write(zone, sec_zone(2, "new IN A 192.0.2.99\n")).unwrap();
    ts.signal(Signal::HUP);
    // The TS tries each NOTIFY a few times and then logs its outcome.
    let logged = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            ts.stderr_now()
                .lines()
                .find(|l| {
                    l.contains("notify")
                        && (l.contains("acknowledged")
                            || l.contains("REFUSED")
                            || l.contains("NOTAUTH"))
                })
                .map(str::to_owned)
        },
    )
    .await;
    let log = ts.stderr_now();
    let line = logged.unwrap_or_else(|| panic!("no NOTIFY outcome logged:\n{log}\n{}", logs()));
    assert!(
        !log.contains("notify acknowledged"),
        "{who} refused the NOTIFY, yet the TS logged it acknowledged:\n{log}\n{}",
        logs()
    );
    assert!(
        line.contains("REFUSED") || line.contains("NOTAUTH"),
        "the TS's warning names the rcode: {line}"
    );
}

/// A TS primary serving `sec.zone` (serial 1) on a free port and
/// notifying 127.0.0.1 on another: its folder, the zone file, the two
/// ports and the TS once it serves the zone.
async fn sec_primary() -> (ZoneDir, std::path::PathBuf, u16, u16, Proc) {
    let dir = ZoneDir::new();
    let zone = dir.write("sec.zone", &sec_zone(1, ""));
    let ports = free_ports(2);
    let (port, peer_port) = (ports[0], ports[1]);
    let ts = start_ts(
        dir.path(),
        &ts_config(port, "sec.zone", peer_port, ""),
        "sec.test.",
        port,
    )
    .await;
    (dir, zone, port, peer_port, ts)
}

/// Knot accepting NOTIFY only from 127.0.0.9 answers the TS's NOTIFY (from
/// 127.0.0.1) with an error rcode: the TS must not log it as acknowledged,
/// and must say (naming the rcode) that the secondary did not take it, or
/// an operator believes the secondary follows when it waits for the SOA
/// refresh (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_refusing_the_notify_is_not_logged_as_acknowledged() {
    let Some([knotd]) = need("knot_refusing_the_notify", ["knotd"]) else {
        return;
    };
    let (_dir, zone, port, knot_port, mut ts) = sec_primary().await;
    let mut knot =
        Knot::secondary_notified_by(&knotd, knot_port, "sec.test.", local(port), "127.0.0.9");
    knot.wait_ready("sec.test.").await;
    assert_refusal_logged(&mut ts, &zone, "Knot", || knot.logs()).await;
}

/// The same with NSD (`allow-notify: 127.0.0.9`), which answers REFUSED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_refusing_the_notify_is_not_logged_as_acknowledged() {
    if need("nsd_refusing_the_notify", ["nsd"]).is_none() {
        return;
    }
    let (_dir, zone, port, nsd_port, mut ts) = sec_primary().await;
    let mut nsd =
        crate::kit::Nsd::secondary_notified_by(nsd_port, "sec.test.", local(port), "127.0.0.9");
    nsd.wait_ready("sec.test.").await;
    assert_refusal_logged(&mut ts, &zone, "NSD", || nsd.logs()).await;
}

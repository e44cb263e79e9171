//! Incremental zone transfer (docs/CONFIG.md (the TS): "IXFR (RFC 1995): the TS keeps the
//! differences between the last versions of each zone (bounded,
//! `ixfr_history`) and answers an IXFR with them, or with the whole zone
//! when it no longer has them").
//!
//! * `dig IXFR=serial` against a `dnslb ts` serving a PROJ table: the
//!   previous serial gets only the changed records (RFC 1995 layout), an
//!   unknown older serial the whole zone, the current serial the SOA alone;
//!   over UDP a small difference is answered, a large one with the SOA.
//! * NSD and Knot as secondaries of a 100,000-name table, transfers signed
//!   with a TSIG key (`xfr_key`): after a SIGHUP that changes one address,
//!   both serve it, having asked by IXFR (the TS's counters and their logs
//!   say so) and moved a few hundred bytes.
//! * A restarted TS: its serial keeps going up, and an IXFR from before the
//!   restart gets the whole zone (the differences are kept in memory only).
//!
//! Every process is stopped by PID from its guard; readiness and changes
//! are polled with real queries in bounded loops.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::Nsd;
use crate::kit::{Knot, SECRET_256};
use crate::kit::{
    Proc, ZoneDir, answers_a, free_ports, http_get, local, poll_until_async, soa_serial, wait_soa,
};
use crate::kit::{TsState, need, start_ts_named, wait_for, wait_stderr};

/// How long a server may take to start answering, or a secondary its first
/// full transfer of the big table (a debug build on a busy machine).
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a secondary may take to serve a changed address after the
/// SIGHUP (the target is 2 s; generous on a busy machine).
const CHANGE_LIMIT: Duration = Duration::from_secs(15);

/// A PROJ table of `names` addresses under `big.test.`, `host7` at `last`.
fn table(names: u32, last: u8) -> String {
    let mut t = String::with_capacity(names as usize * 32);
    t.push_str("ns1.big.test - NS\nns1.big.test 192.0.2.53 A\n");
    for i in 0..names {
        let d = if i == 7 { last } else { 1 };
        t.push_str(&format!(
            "host{i}.big.test 10.{}.{}.{d} A\n",
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    t
}

/// A TS config: `big.txt` as `big.test.` on `port`, metrics on `metrics`,
/// NOTIFYing `notify`, with `extra` lines.
fn config(port: u16, metrics: u16, notify: &[u16], extra: &str) -> String {
    let notify: Vec<String> = notify
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{port}\"\nzones = [\"big.txt\"]\n\
         origin = \"big.test.\"\naxfr_allow = [\"127.0.0.0/8\"]\nnotify = [{}]\n\
         metrics = \"127.0.0.1:{metrics}\"\nworkers = 1\n{extra}",
        notify.join(", ")
    )
}

/// The lines that make transfers need the TSIG key `xfr` (`xfr_key` in the
/// `[[ts]]`, then the `[[key]]` table).
fn key_toml() -> String {
    format!(
        "xfr_key = \"xfr\"\n\n[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\n\
         secret = \"{SECRET_256}\"\n"
    )
}

/// `dnslb ts -c DIR/config.toml --name primary`, state kept in `state`;
/// waits until it serves `big.test. SOA`.
async fn start_ts(dir: &Path, state: &Path, port: u16) -> Proc {
    let conf = dir.join("config.toml");
    let at = (local(port), "big.test.");
    let state = TsState::In(state);
    start_ts_named(
        &conf,
        None,
        "primary",
        Path::new("/"),
        state,
        at,
        READY_LIMIT,
        |m| soa_serial(m).is_some(),
    )
    .await
}

/// The serial `addr` serves, once it is not `old`.
async fn serial_after(addr: SocketAddr, old: u32, ts: &mut Proc) -> u32 {
    let m = wait_soa(addr, "big.test.", CHANGE_LIMIT, &mut [ts], |m| {
        soa_serial(m).is_some_and(|s| s != old)
    })
    .await;
    soa_serial(&m).unwrap_or_default()
}

/// The records (type and data) of `dig @addr big.test. IXFR=serial` (over
/// UDP with `udp`), one per line.
fn dig_ixfr(addr: SocketAddr, serial: u32, udp: bool) -> Vec<(String, String)> {
    let mut cmd = Command::new("dig");
    cmd.args(["-p", &addr.port().to_string(), &format!("@{}", addr.ip())])
        .args([
            "big.test.",
            &format!("IXFR={serial}"),
            "+noall",
            "+answer",
            "+nocookie",
        ]);
    if udp {
        cmd.arg("+notcp");
    }
    let out = cmd.output().expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rtype = f.get(3).copied().unwrap_or_default().to_owned();
            let data = match rtype.as_str() {
                "SOA" => f.get(6).copied().unwrap_or_default().to_owned(),
                _ => format!("{} {}", f[0], f.get(4).copied().unwrap_or_default()),
            };
            (rtype, data)
        })
        .collect()
}

/// `text` (a [`table`]) with the last byte of the address of each host in
/// `hosts` set to `to`.
fn changed(text: &str, hosts: std::ops::Range<u32>, to: &str) -> String {
    text.lines()
        .map(|l| {
            let host = l.strip_prefix("host").and_then(|r| r.split('.').next());
            match host.and_then(|h| h.parse::<u32>().ok()) {
                Some(i) if hosts.contains(&i) => {
                    let address = l.strip_suffix(" A").unwrap_or(l);
                    let (head, _) = address.rsplit_once('.').unwrap_or((address, ""));
                    format!("{head}.{to} A\n")
                }
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

fn soa(serial: u32) -> (String, String) {
    ("SOA".to_owned(), serial.to_string())
}

fn a(name: &str, ip: &str) -> (String, String) {
    ("A".to_owned(), format!("{name} {ip}"))
}

/// A counter of the TS's `/metrics` (0 when absent).
async fn counter(metrics: u16, line: &str) -> u64 {
    let body = http_get(local(metrics), "/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_answers_with_the_changes_the_whole_zone_or_the_soa() {
    let dir = ZoneDir::new();
    let state = tempfile::tempdir().unwrap();
    let [port, metrics, nobody] = free_ports(3)[..] else {
        unreachable!()
    };
    std::fs::write(
        dir.path().join("config.toml"),
        config(port, metrics, &[nobody], ""),
    )
    .unwrap();
    let file = dir.write("big.txt", &table(300, 1));
    let mut ts = start_ts(dir.path(), state.path(), port).await;
    let addr = local(port);
    let s1 = serial_after(addr, 0, &mut ts).await;

    std::fs::write(&file, table(300, 2)).unwrap();
    ts.signal(Signal::HUP);
    let s2 = serial_after(addr, s1, &mut ts).await;

    // The previous serial: only the changed records, RFC 1995 §4's layout.
    let want = vec![
        soa(s2),
        soa(s1),
        a("host7.big.test.", "10.0.7.1"),
        soa(s2),
        a("host7.big.test.", "10.0.7.2"),
        soa(s2),
    ];
    assert_eq!(dig_ixfr(addr, s1, false), want, "IXFR={s1} over TCP");
    assert_eq!(dig_ixfr(addr, s1, true), want, "IXFR={s1} over UDP: fits");
    // The current serial (or a newer one): the SOA alone.
    assert_eq!(dig_ixfr(addr, s2, false), vec![soa(s2)]);
    assert_eq!(dig_ixfr(addr, s2.wrapping_add(5), true), vec![soa(s2)]);
    // A serial older than the history: the whole zone, AXFR-style.
    let full = dig_ixfr(addr, s1.wrapping_sub(10), false);
    assert_eq!(full.len(), 300 + 2 + 2, "SOA, 302 records, SOA");
    assert_eq!((full[0].clone(), full[303].clone()), (soa(s2), soa(s2)));
    assert!(full.contains(&a("host7.big.test.", "10.0.7.2")));

    // Forty addresses changed: too large for a datagram, the SOA alone over
    // UDP (the secondary then asks over TCP), the changes over TCP.
    let forty = changed(&table(300, 2), 100..140, "9");
    std::fs::write(&file, &forty).unwrap();
    ts.signal(Signal::HUP);
    let s3 = serial_after(addr, s2, &mut ts).await;
    assert_eq!(dig_ixfr(addr, s2, true), vec![soa(s3)], "UDP: too large");
    let tcp = dig_ixfr(addr, s2, false);
    assert_eq!(tcp.len(), 2 * 40 + 4, "{tcp:?}");
    assert!(tcp.contains(&a("host120.big.test.", "10.0.120.9")));
    // From s1, two versions condensed into one deletion and one addition
    // list: host7 .1 -> .2, forty hosts .1 -> .9.
    let both = dig_ixfr(addr, s1, false);
    assert_eq!(both.len(), 2 * 41 + 4, "one pair: {both:?}");
    assert!(both.contains(&a("host7.big.test.", "10.0.7.1")));
    assert!(both.contains(&a("host7.big.test.", "10.0.7.2")));

    // Every address changed: a difference over half the zone is not kept (a
    // full transfer costs about as much), so the secondary gets the zone.
    std::fs::write(&file, changed(&forty, 0..300, "8")).unwrap();
    ts.signal(Signal::HUP);
    let s3b = serial_after(addr, s3, &mut ts).await;
    let full = dig_ixfr(addr, s3, false);
    assert_eq!(full.len(), 302 + 2, "whole zone");
    assert_eq!(full[0], soa(s3b));
    let s3 = s3b;

    assert!(counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_incremental\"}").await >= 4);
    assert!(counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_full\"}").await >= 1);
    assert!(counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_soa\"}").await >= 3);

    // A restart: the serial keeps going up; the differences are gone, so an
    // IXFR from before gets the whole zone.
    drop(ts);
    let mut ts = start_ts(dir.path(), state.path(), port).await;
    let s4 = serial_after(addr, 0, &mut ts).await;
    assert!(s4 == s3 || s4.wrapping_sub(s3) < 1 << 31, "{s3} -> {s4}");
    let now = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, changed(&now, 7..8, "3")).unwrap();
    ts.signal(Signal::HUP);
    let s5 = serial_after(addr, s4, &mut ts).await;
    assert!(s5.wrapping_sub(s4) < 1 << 31, "{s4} -> {s5}");
    let after = dig_ixfr(addr, s2, false);
    assert!(
        after.len() > 300,
        "full after a restart: {} records",
        after.len()
    );
    assert_eq!(
        dig_ixfr(addr, s4, false).len(),
        6,
        "changes since the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_and_knot_with_a_tsig_key_follow_a_one_address_change_by_ixfr() {
    let _load = crate::kit::heavy().await;
    let Some([knotd]) = need("nsd_and_knot_follow_by_ixfr", ["knotd"]) else {
        return;
    };
    const NAMES: u32 = 100_000;
    let dir = ZoneDir::new();
    let state = tempfile::tempdir().unwrap();
    let [port, metrics, nsd_port, knot_port] = free_ports(4)[..] else {
        unreachable!()
    };
    std::fs::write(
        dir.path().join("config.toml"),
        config(port, metrics, &[nsd_port, knot_port], &key_toml()),
    )
    .unwrap();
    let file = dir.write("big.txt", &table(NAMES, 1));
    let mut ts = start_ts(dir.path(), state.path(), port).await;
    let primary = local(port);

    // Unsigned transfers are refused: everything below came signed.
    let key = ("hmac-sha256", "xfr", SECRET_256);
    let mut nsd = Nsd::secondary_with_key(nsd_port, "big.test.", primary, key);
    let mut knot = Knot::secondary_with_key(&knotd, knot_port, "big.test.", primary, key);
    let last = format!("host{}.big.test.", NAMES - 1);
    for who in [nsd.addr, knot.addr] {
        wait_for(
            who,
            &last,
            RecordType::A,
            false,
            READY_LIMIT,
            &mut [&mut ts],
            |m| !m.answers.is_empty(),
        )
        .await;
    }
    // The key is needed: an unsigned AXFR is refused (NOTAUTH).
    let unsigned = Command::new("dig")
        .args(["-p", &port.to_string(), "@127.0.0.1", "big.test.", "AXFR"])
        .output()
        .expect("dig runs");
    let said = String::from_utf8_lossy(&unsigned.stdout);
    assert!(said.contains("Transfer failed"), "{said}");
    let full_bytes = counter(metrics, "dnslb_ts_xfr_bytes_total").await;
    let incremental = counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_incremental\"}").await;

    std::fs::write(&file, table(NAMES, 2)).unwrap();
    let hup = Instant::now();
    ts.signal(Signal::HUP);
    let new = ["10.0.7.2".parse().unwrap()];
    for (who, name) in [(nsd.addr, "NSD"), (knot.addr, "Knot")] {
        wait_for(
            who,
            "host7.big.test.",
            RecordType::A,
            false,
            CHANGE_LIMIT,
            &mut [&mut ts],
            |m| answers_a(m, &new),
        )
        .await;
        eprintln!(
            "{name} served the new address {:?} after the SIGHUP",
            hup.elapsed()
        );
    }
    nsd.check_alive();
    let asked = counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_incremental\"}").await;
    assert!(
        asked >= incremental + 2,
        "both asked by IXFR: {incremental} -> {asked}"
    );
    let moved = counter(metrics, "dnslb_ts_xfr_bytes_total").await - full_bytes;
    eprintln!("first transfers {full_bytes} bytes, the change {moved} bytes");
    assert!(
        moved < 4096,
        "only the changed records moved: {moved} bytes"
    );
    assert!(full_bytes > 1_000_000, "{full_bytes}");
    wait_stderr(&mut knot.proc, "IXFR, incoming", 1, CHANGE_LIMIT).await;
    // NSD's log gives each update's size: the first the whole table, the
    // second a few hundred bytes.
    let sizes = |log: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| l.contains("received update to serial"))
            .filter_map(|l| l.split(" of ").nth(1)?.split(' ').next()?.parse().ok())
            .collect()
    };
    poll_until_async(CHANGE_LIMIT, Duration::from_millis(50), async || {
        (sizes(&nsd.logs()).len() >= 2).then_some(())
    })
    .await;
    let nsd_log = nsd.logs();
    let sizes = sizes(&nsd_log);
    assert!(
        sizes.len() == 2 && sizes[0] > 1_000_000 && sizes[1] < 4096,
        "NSD's updates: {sizes:?}\n{nsd_log}"
    );
}

/// A zone the TS signs (`dnssec` in its `[[ts]]`) with one address changed:
/// an IXFR from the serial before gets the change and its signatures (the
/// SOA, the address and their RRSIGs: ten records), as Knot's signer
/// serves it, not the whole signed zone: the signer keeps the fresh RRSIGs
/// of the RRsets that did not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ixfr_of_a_signed_zone_carries_only_the_changed_records_and_signatures() {
    let dir = ZoneDir::new();
    let state = ZoneDir::new();
    let text = table(300, 1);
    dir.write("big.txt", &text);
    let [port, metrics] = free_ports(2).try_into().unwrap();
    let dnssec =
        "dnssec = { keys = \"keys\", algorithm = \"ecdsap256sha256\", denial = \"nsec\" }\n";
    dir.write("config.toml", &config(port, metrics, &[], dnssec));
    let mut ts = start_ts(dir.path(), state.path(), port).await;
    let addr = local(port);
    let before = dig_ixfr(addr, 0, false).first().map(|(_, s)| s.clone());
    let old: u32 = before.and_then(|s| s.parse().ok()).expect("a serial");
    dir.write("big.txt", &changed(&text, 7..8, "99"));
    ts.signal(Signal::HUP);
    let new = serial_after(addr, old, &mut ts).await;
    let got = dig_ixfr(addr, old, false);
    // RFC 1995: the new SOA, then the old SOA and what left, the new SOA
    // and what came, the new SOA: nothing of the other 299 names, of the
    // NSEC chain or of the DNSKEY RRset.
    let soa = |serial: u32| ("SOA".to_string(), serial.to_string());
    let rr = |rtype: &str, data: &str| (rtype.to_string(), data.to_string());
    let want = vec![
        soa(new),
        soa(old),
        rr("RRSIG", "big.test. SOA"),
        rr("A", "host7.big.test. 10.0.7.1"),
        rr("RRSIG", "host7.big.test. A"),
        soa(new),
        rr("RRSIG", "big.test. SOA"),
        rr("A", "host7.big.test. 10.0.7.99"),
        rr("RRSIG", "host7.big.test. A"),
        soa(new),
    ];
    assert_eq!(
        got,
        want,
        "IXFR {old} -> {new} of a one-address change: {} records ({} whole-zone answers)",
        got.len(),
        counter(metrics, "dnslb_ts_xfr_total{kind=\"ixfr_full\"}").await
    );
}

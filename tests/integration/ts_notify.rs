//! NOTIFYs of a `dnslb ts` process that reloads often while a secondary
//! never answers: at most one pending NOTIFY per (zone, secondary), so the
//! TS's sockets stay few however many reloads come, and a secondary that
//! answers still hears of the newest serial (the SOA in the NOTIFY's
//! answer section, RFC 1996 §3.7).
//!
//! A restart that serves a new serial NOTIFYs at start (as NSD does). A TS
//! with a transfer key signs its NOTIFY to its own config's LS too (the LS
//! checks it with that key and answers signed).
//!
//! The TS is stopped by PID from its `Drop` guard; every change is waited
//! for with real SOA queries in bounded loops.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::RData;
use rustix::process::Signal;
use tokio::net::UdpSocket;

use crate::kit::{self, Proc, free_port, local, poll_until_async, soa_serial};

/// How long the TS may take to answer, or to serve a reload.
const LIMIT: Duration = Duration::from_secs(20);
/// Reloads that change the zone.
const RELOADS: usize = 30;

/// The TS's open sockets (`/proc/PID/fd` entries that are sockets).
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The table, with `n` extra names.
fn table(n: usize) -> String {
    let mut t = String::from("ns1.pile.test - NS\nns1.pile.test 192.0.2.53 A\n");
    for i in 0..n {
        t.push_str(&format!("x{i}.pile.test 192.0.2.9 A\n"));
    }
    t
}

/// A secondary that reads every NOTIFY and drops it.
async fn blackhole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while sock.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}

/// `dnslb ts` for `pile.test.` at `addr` notifying `targets`, once it answers.
async fn start_ts(dir: &Path, addr: SocketAddr, targets: &[SocketAddr]) -> Proc {
    std::fs::write(dir.join("pile.txt"), table(0)).unwrap();
    start_config(dir, addr, &ts_toml(addr, targets, "")).await
}

/// The `[[ts]]` `t` for `pile.test.` at `addr` notifying `targets`, `extra`
/// added.
fn ts_toml(addr: SocketAddr, targets: &[SocketAddr], extra: &str) -> String {
    let notify: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[ts]]\nname = \"t\"\nlisten = \"{addr}\"\nzones = [\"pile.txt\"]\n\
         origin = \"pile.test.\"\nworkers = 1\nnotify = [{}]\n{extra}",
        notify.join(", ")
    )
}

/// `dnslb ts -c DIR/config.toml --name t` with `config` (its state file
/// beside `pile.txt`), once it answers at `addr`.
async fn start_config(dir: &Path, addr: SocketAddr, config: &str) -> Proc {
    let path = dir.join("config.toml");
    let (at, state) = ((addr, "pile.test."), kit::TsState::BesideZones);
    kit::start_ts_named(&path, Some(config), "t", dir, state, at, LIMIT, |m| {
        soa_serial(m).is_some()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_against_a_silent_secondary_keep_one_notify_pending_and_the_sockets_few() {
    let dir = tempfile::tempdir().unwrap();
    let (silent, hole) = blackhole().await;
    let (answering, got, acker) = unsigned_acker().await;
    let addr = local(free_port());
    let mut ts = start_ts(dir.path(), addr, &[silent, answering]).await;
    let before = sockets_of(ts.pid());

    let mut serial = 0;
    let mut most = before;
    for k in 1..=RELOADS {
        std::fs::write(dir.path().join("pile.txt"), table(k)).unwrap();
        ts.signal(Signal::HUP);
        let m = kit::wait_soa(addr, "pile.test.", LIMIT, &mut [&mut ts], |m| {
            soa_serial(m).is_some_and(|s| s != serial)
        })
        .await;
        serial = soa_serial(&m).unwrap();
        most = most.max(sockets_of(ts.pid()));
    }
    // The sockets it serves from, and one to send NOTIFYs from (IPv4).
    assert!(
        most <= before + 1,
        "{RELOADS} reloads with a silent secondary: {before} sockets before, up to {most} after"
    );

    let told = |g: &[Got]| g.iter().any(|g| g.serial == serial);
    wait_got(&got, &ts, &format!("a NOTIFY of serial {serial}"), told).await;
    drop(ts);
    hole.abort();
    acker.abort();
}

/// One NOTIFY a fake secondary got: the serial it announced and whether it
/// was signed (a TSIG in its additional section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Got {
    serial: u32,
    signed: bool,
}

/// A UDP socket on 127.0.0.1 answering every NOTIFY NOERROR, unsigned, as
/// the LS does (and a secondary without a key): its address, what it got,
/// and its task.
async fn unsigned_acker() -> (
    SocketAddr,
    Arc<Mutex<Vec<Got>>>,
    tokio::task::JoinHandle<()>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let m = Message::from_vec(&buf[..n]).expect("a decodable NOTIFY");
            assert_eq!(m.metadata.op_code, OpCode::Notify);
            let serial = match m.answers.first().map(|r| &r.data) {
                Some(RData::SOA(soa)) => soa.serial,
                other => panic!("a NOTIFY without the zone's SOA: {other:?}"),
            };
            // Its one additional record can only be a TSIG.
            let signed = buf[10..12] != [0, 0];
            seen.lock().unwrap().push(Got { serial, signed });
            // The header echoed with QR set, the question only: no TSIG.
            let mut ack = buf[..12].to_vec();
            ack[2] |= 0x80;
            ack[6..12].fill(0);
            ack[5] = 1;
            ack.extend_from_slice(&buf[12..question_end(&buf[..n])]);
            let _ = sock.send_to(&ack, from).await;
        }
    });
    (addr, got, task)
}

/// Where the (one, uncompressed) question of `msg` ends.
fn question_end(msg: &[u8]) -> usize {
    let mut at = 12;
    while msg[at] != 0 {
        at += 1 + usize::from(msg[at]);
    }
    at + 1 + 4
}

/// Polls until `got` holds `n` NOTIFYs; panics (with the TS's log) after
/// [`LIMIT`].
async fn wait_notifies(got: &Arc<Mutex<Vec<Got>>>, n: usize, ts: &Proc) {
    wait_got(got, ts, &format!("{n} NOTIFY(s)"), |g| g.len() >= n).await;
}

/// Polls until `done` holds of what `got` holds (`want` says what that
/// is); panics (with the TS's log) after [`LIMIT`].
async fn wait_got(
    got: &Arc<Mutex<Vec<Got>>>,
    ts: &Proc,
    want: &str,
    done: impl Fn(&[Got]) -> bool,
) {
    let found = poll_until_async(LIMIT, Duration::from_millis(20), async || {
        done(&got.lock().unwrap()).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "{want} expected, got {:?}\n{}",
        got.lock().unwrap(),
        ts.stderr_now()
    );
}

/// The serial `addr` serves for `pile.test.`.
async fn serial_at(addr: SocketAddr, ts: &mut Proc) -> u32 {
    let m = kit::wait_soa(addr, "pile.test.", LIMIT, &mut [ts], |m| {
        soa_serial(m).is_some()
    })
    .await;
    soa_serial(&m).unwrap()
}

/// NSD NOTIFYs its zones at start; the TS must at least when a restart
/// serves another serial than the last run (the files changed meanwhile):
/// the secondaries' SOA refresh may be an hour away. A first start, and a
/// restart with the same files, send none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_serves_a_new_serial_notifies_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (secondary, got, task) = unsigned_acker().await;
    for _ in 0..2 {
        let addr = local(free_port());
        let mut ts = start_ts(dir.path(), addr, &[secondary]).await;
        serial_at(addr, &mut ts).await;
        drop(ts);
    }
    std::fs::write(dir.path().join("pile.txt"), table(1)).unwrap();
    let addr = local(free_port());
    let config = ts_toml(addr, &[secondary], "");
    let mut ts = start_config(dir.path(), addr, &config).await;
    let serial = serial_at(addr, &mut ts).await;
    wait_notifies(&got, 1, &ts).await;
    kit::wait_stderr(&mut ts, "notify acknowledged", 1, LIMIT).await;
    let all = got.lock().unwrap().clone();
    assert_eq!(
        all,
        [Got {
            serial,
            signed: false
        }],
        "one NOTIFY, from the restart with the new table"
    );
    drop(ts);
    task.abort();
}

/// With `xfr_key` set, every NOTIFY is signed, the one to the config's own
/// LS (a `notify` target that is an `[ls]` listener) too: that LS checks it
/// with the same key (`[[ls.backend]]` `notify_key` follows the TS's
/// `xfr_key`) and answers signed (notify_tsig.rs). Before, it went unsigned,
/// so anyone on the TS's address could flush the LS's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_ts_signs_its_notify_to_its_own_ls_too() {
    let dir = tempfile::tempdir().unwrap();
    let (ls, got, task) = unsigned_acker().await;
    std::fs::write(dir.path().join("pile.txt"), table(0)).unwrap();
    let addr = local(free_port());
    let config = format!(
        "[ls]\nlisten = [\"{ls}\"]\n\n[[ls.backend]]\nname = \"t\"\naddr = \"{addr}\"\n\n{}\n\
         [[key]]\nname = \"xfr\"\nsecret = \"{}\"\n",
        ts_toml(addr, &[ls], "xfr_key = \"xfr\"\n"),
        crate::kit::SECRET_256
    );
    let mut ts = start_config(dir.path(), addr, &config).await;
    let first = serial_at(addr, &mut ts).await;
    std::fs::write(dir.path().join("pile.txt"), table(1)).unwrap();
    ts.signal(Signal::HUP);
    let m = kit::wait_soa(addr, "pile.test.", LIMIT, &mut [&mut ts], |m| {
        soa_serial(m).is_some_and(|s| s != first)
    })
    .await;
    let serial = soa_serial(&m).unwrap();
    wait_notifies(&got, 1, &ts).await;
    let all = got.lock().unwrap().clone();
    assert_eq!(
        all.first(),
        Some(&Got {
            serial,
            signed: true
        }),
        "a signed NOTIFY to the LS\n{}",
        ts.stderr_now()
    );
    drop(ts);
    task.abort();
}

//! NOTIFYs of a `dnslb ts` process that reloads often while a secondary
//! never answers: at most one pending NOTIFY per (zone, secondary), so the
//! TS's sockets stay few however many reloads come, and a secondary that
//! answers still hears of the newest serial (the SOA in the NOTIFY's
//! answer section, RFC 1996 §3.7).
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

use crate::kit::{self, Proc, dnslb_command, free_port, local, poll_until_async, soa_serial};

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

/// A secondary that acknowledges every NOTIFY, keeping the serial each
/// announced.
async fn acknowledging() -> (
    SocketAddr,
    Arc<Mutex<Vec<u32>>>,
    tokio::task::JoinHandle<()>,
) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let serials = Arc::new(Mutex::new(Vec::new()));
    let seen = serials.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let m = Message::from_vec(&buf[..n]).expect("a decodable NOTIFY");
            assert_eq!(m.metadata.op_code, OpCode::Notify);
            let serial = match m.answers.first().map(|r| &r.data) {
                Some(RData::SOA(soa)) => soa.serial,
                other => panic!("a NOTIFY without the zone's SOA: {other:?}"),
            };
            seen.lock().unwrap().push(serial);
            let mut ack = buf[..n].to_vec();
            ack[2] |= 0x80; // QR=1
            let _ = sock.send_to(&ack, from).await;
        }
    });
    (addr, serials, task)
}

/// `dnslb ts` for `pile.test.` at `addr` notifying `targets`, once it answers.
async fn start_ts(dir: &Path, addr: SocketAddr, targets: &[SocketAddr]) -> Proc {
    std::fs::write(dir.join("pile.txt"), table(0)).unwrap();
    let notify: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let config = format!(
        "[[ts]]\nname = \"t\"\nlisten = \"{addr}\"\nzones = [\"pile.txt\"]\n\
         origin = \"pile.test.\"\nworkers = 1\nnotify = [{}]\n",
        notify.join(", ")
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = dnslb_command(&["ts", "-c", kit::path_str(&path), "--name", "t"], dir);
    cmd.env_remove("STATE_DIRECTORY");
    let mut ts = Proc::spawn("dnslb ts", cmd);
    kit::wait_soa(addr, "pile.test.", LIMIT, &mut [&mut ts], |m| {
        soa_serial(m).is_some()
    })
    .await;
    ts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_against_a_silent_secondary_keep_one_notify_pending_and_the_sockets_few() {
    let dir = tempfile::tempdir().unwrap();
    let (silent, hole) = blackhole().await;
    let (answering, serials, acker) = acknowledging().await;
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

    let told = poll_until_async(LIMIT, Duration::from_millis(20), async || {
        serials.lock().unwrap().contains(&serial).then_some(())
    })
    .await;
    assert!(
        told.is_some(),
        "the answering secondary was not told of serial {serial}: {:?}\n{}",
        serials.lock().unwrap(),
        ts.stderr_now()
    );
    drop(ts);
    hole.abort();
    acker.abort();
}

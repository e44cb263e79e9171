//! Name compression in zone transfers: the records of one
//! owner must not become a chain of compression pointers. Resolvers and
//! secondaries cap the pointers they follow for one name (Unbound 256,
//! PowerDNS 100, BIND up to 9.16 16, Go 10); NSD and Knot write every owner
//! at most two pointers deep, and so must the TS.
//!
//! * The TS's AXFR of a zone with a 300-record RRset at one name, read from
//!   a TCP socket: every owner of every message is walked pointer by
//!   pointer, and none takes more than two.
//! * The same zone pulled by real secondaries: PowerDNS's `sdig` (which
//!   aborts a name after 100 pointers), Unbound as an `auth-zone` secondary
//!   (`primary:` the TS) and `pdns_server` with its BIND backend as a
//!   secondary. Each must then serve the 300 addresses.
//!
//! The TS runs in the test process on 127.0.0.1:0; Unbound and PowerDNS run
//! in the foreground from temporary folders, stopped by PID from their
//! guards; readiness is polled with real queries in bounded loops.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use crate::kit::{
    self, Proc, ZoneDir, free_ports, local, need, poll_until_async, query, read_frame, run_ok,
    tcp_send, tcp_sent,
};

/// How long a secondary may take to serve the zone (its first transfer).
const READY_LIMIT: Duration = Duration::from_secs(20);
/// The records at `many.many.test.`.
const RRSET: usize = 300;
/// The most pointers NSD and Knot put before an owner.
const MAX_HOPS: usize = 2;

/// `many.test.`: SOA, NS, the name server's address, and [`RRSET`]
/// addresses at `many.many.test.`.
fn many_zone() -> String {
    let mut z = String::from(
        "$ORIGIN many.test.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster 104 3600 600 604800 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n",
    );
    for i in 0..RRSET {
        z.push_str(&format!("many IN A 10.9.{}.{}\n", i >> 8, i & 0xff));
    }
    z
}

/// A TS in the test process serving [`many_zone`], transfers allowed to 127/8.
async fn many_ts(dir: &ZoneDir) -> kit::TestTs {
    let zone = dir.write("many.zone", &many_zone());
    kit::start_ts(kit::ts_settings(vec![zone])).await
}

/// The compression pointers followed to read the name at `at` of `msg`, and
/// where the name ends in place; `None` for a name that does not read (past
/// the end, or more than 255 pointers: a loop).
fn name_hops(msg: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let (mut hops, mut end) = (0, None);
    loop {
        let len = *msg.get(at)?;
        if len == 0 {
            return Some((hops, end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(at + 2);
            hops += 1;
            if hops > 255 {
                return None;
            }
            at = usize::from(u16::from_be_bytes([len & 0x3f, *msg.get(at + 1)?]));
        } else {
            at += 1 + usize::from(len);
        }
    }
}

/// The most pointers an owner of `msg` (question and answer section) takes
/// to read, and the answer records walked; panics on a message that does
/// not read.
fn deepest_owner(msg: &[u8]) -> (usize, usize) {
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    let (qd, an) = (count(4), count(6));
    let (mut at, mut deepest) = (12, 0);
    for i in 0..qd + an {
        let (hops, end) = name_hops(msg, at).unwrap_or_else(|| {
            panic!("record {i}: its owner does not read (a chain of more than 255 pointers?)")
        });
        deepest = deepest.max(hops);
        at = if i < qd {
            end + 4
        } else {
            end + 10 + count(end + 8)
        };
    }
    assert_eq!(at, msg.len(), "every record walked");
    (deepest, an)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_owner_in_an_axfr_is_more_than_two_pointers_deep() {
    let dir = ZoneDir::new();
    let ts = many_ts(&dir).await;
    let mut s = tcp_sent(ts.addr, &query("many.test.", RecordType::AXFR, None)).await;
    let (mut records, mut deepest, mut soas) = (0, 0, 0);
    while soas < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .expect("the next message within 5 s")
            .expect("the transfer goes on to its last SOA");
        let (hops, an) = deepest_owner(&msg);
        deepest = deepest.max(hops);
        records += an;
        let parsed = Message::from_vec(&msg).unwrap();
        soas += parsed
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
    }
    assert_eq!(records, RRSET + 4, "SOA, NS, ns1, the RRset, SOA");
    assert!(
        deepest <= MAX_HOPS,
        "an owner {deepest} pointers deep (NSD and Knot: at most {MAX_HOPS})"
    );
    ts.stop().await;
}

/// `name A` over TCP from `addr`: the answer, `None` when the server does
/// not answer (yet).
async fn ask_tcp(addr: SocketAddr, name: &str) -> Option<Message> {
    let q = query(name, RecordType::A, None);
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        tcp_send(&mut s, &q.to_vec().unwrap()).await;
        Message::from_vec(&read_frame(&mut s).await?).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// Polls `who` at `addr` until it serves all [`RRSET`] addresses of
/// `many.many.test.`; panics with its log (and whether it exited) after
/// [`READY_LIMIT`].
async fn wait_rrset(who: &str, addr: SocketAddr, proc: &mut Proc, log: &Path) {
    let mut last = None;
    let got = poll_until_async(READY_LIMIT, Duration::from_millis(100), async || {
        let m = ask_tcp(addr, "many.many.test.").await?;
        let n = m.answers.len();
        last = Some(kit::show(&m).lines().take(3).collect::<Vec<_>>().join(" "));
        (n == RRSET).then_some(n)
    })
    .await;
    if got.is_none() {
        let exited = proc.exited();
        panic!(
            "{who} did not serve the {RRSET} addresses within {READY_LIMIT:?} (exited: {exited:?}); \
             last answer: {last:?}\n--- {who} log ---\n{}{}",
            std::fs::read_to_string(log).unwrap_or_default(),
            proc.stderr_now()
        );
    }
}

/// The folder of PowerDNS's backend modules holding its BIND backend
/// (Debian: package `pdns-backend-bind`).
fn pdns_bind_backend() -> Option<std::path::PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.flatten()
        .map(|d| d.path().join("pdns"))
        .chain([Path::new("/usr/lib/pdns").to_path_buf()])
        .find(|d| d.join("libbindbackend.so").is_file())
}

/// Unbound on 127.0.0.1:`port` with `many.test.` as an `auth-zone`
/// transferred from `primary`, its config and zone file in `dir`.
fn unbound_secondary(bin: &Path, dir: &Path, port: u16, primary: SocketAddr) -> Proc {
    let d = dir.display();
    let conf = format!(
        "{}\
         \x20 logfile: \"{d}/unbound.log\"\n\
         \x20 verbosity: 2\n\
         \x20 module-config: \"iterator\"\n\
         \x20 local-zone: \"test.\" nodefault\n\
         remote-control:\n\
         \x20 control-enable: no\n\
         auth-zone:\n\
         \x20 name: \"many.test.\"\n\
         \x20 primary: {}@{}\n\
         \x20 zonefile: \"{d}/many.test.zone\"\n\
         \x20 for-downstream: yes\n\
         \x20 for-upstream: no\n\
         \x20 fallback-enabled: no\n",
        kit::unbound::server_clause(port, dir),
        primary.ip(),
        primary.port()
    );
    kit::spawn_unbound(bin, dir, &conf)
}

/// `pdns_server` (BIND backend, modules in `modules`) on 127.0.0.1:`port`,
/// a secondary of `many.test.` transferring from `primary`, everything in
/// `dir`; it logs to stderr.
fn pdns_secondary(bin: &Path, modules: &Path, dir: &Path, port: u16, primary: SocketAddr) -> Proc {
    let d = dir.display();
    std::fs::write(
        dir.join("named.conf"),
        format!(
            "options {{ directory \"{d}\"; }};\n\
             zone \"many.test\" {{ type slave; file \"{d}/many.test.zone\"; masters {{ {primary}; }}; }};\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("pdns.conf"),
        format!(
            "launch=bind\n\
             module-dir={}\n\
             bind-config={d}/named.conf\n\
             local-address=127.0.0.1\n\
             local-port={port}\n\
             daemon=no\n\
             guardian=no\n\
             write-pid=no\n\
             socket-dir={d}\n\
             secondary=yes\n\
             xfr-cycle-interval=1\n\
             loglevel=5\n",
            modules.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config-dir={d}")).current_dir(dir);
    Proc::spawn("pdns_server", cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_and_powerdns_secondaries_pull_a_300_record_rrset() {
    const TEST: &str = "unbound_and_powerdns_secondaries_pull_a_300_record_rrset";
    let Some([unbound, pdns, sdig]) = need(TEST, ["unbound", "pdns_server", "sdig"]) else {
        return;
    };
    let Some(modules) = pdns_bind_backend() else {
        kit::skip(
            TEST,
            "pdns-backend-bind (PowerDNS's BIND backend) not installed",
        );
        return;
    };
    let dir = ZoneDir::new();
    let ts = many_ts(&dir).await;

    // sdig aborts a name after 100 pointers ("Abort label decompression").
    let mut cmd = Command::new(&sdig);
    cmd.args([
        "127.0.0.1",
        &ts.addr.port().to_string(),
        "many.test",
        "AXFR",
        "tcp",
    ]);
    let out = run_ok("sdig AXFR", cmd, kit::TOOL_LIMIT, "");
    let read = out
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("many.many.test."))
        .count();
    assert_eq!(read, RRSET, "sdig's AXFR:\n{}{}", out.stdout, out.stderr);

    let ports = free_ports(2);
    let (ub_dir, pd_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ub = unbound_secondary(&unbound, ub_dir.path(), ports[0], ts.addr);
    let mut pd = pdns_secondary(&pdns, &modules, pd_dir.path(), ports[1], ts.addr);
    let ub_log = ub_dir.path().join("unbound.log");
    wait_rrset("Unbound", local(ports[0]), &mut ub, &ub_log).await;
    wait_rrset(
        "PowerDNS",
        local(ports[1]),
        &mut pd,
        Path::new("/nonexistent"),
    )
    .await;
    let zone = std::fs::read_to_string(ub_dir.path().join("many.test.zone")).unwrap_or_default();
    assert_eq!(
        zone.lines()
            .filter(|l| l.starts_with("many.many.test."))
            .count(),
        RRSET,
        "Unbound's copy of the zone:\n{zone}"
    );
    drop(ub);
    drop(pd);
    ts.stop().await;
}

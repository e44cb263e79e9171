//! The LS forwarding over DNS over QUIC (`transport = "quic"` in
//! `[[ls.backend]]`) to another vendor's DoQ server: Knot DNS 3.2 answering
//! QUIC through its XDP listener (`xdp: listen`, `quic: on`). Knot runs in
//! one network namespace with native XDP on its end of a veth pair, a
//! certificate from the test's own CA; the LS runs in the other namespace.
//! A few queries, sent one by one (Knot 3.2's XDP QUIC drops most queries
//! of a connection past a few hundred a second), get through the LS the
//! same answer section, record for record and byte for byte, as `kdig` gets
//! from Knot over UDP; the LS's metrics show the backend up and the queries
//! it sent it. A second backend on the same Knot, expecting another
//! certificate name, stays down, its refused handshakes counted as
//! `dnslb_backend_link_failures_total{reason="name"}`.
//!
//! Knot's XDP answers are written into the veth by Knot itself; the LS's
//! end takes such frames only with an XDP program of its own attached (one
//! passing every packet on, compiled here with clang) and GRO on. Skipped
//! without root, knotd, kdig, clang-14, ethtool or native XDP on a veth,
//! unless `DNSLB_REQUIRE_PEERS=1`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use crate::kit::http::sample_u64;
use crate::kit::netns::ask_raw_in;
use crate::kit::tls::Pki;
use crate::kit::{Netns, Proc, need, netns_or_skip, or_skip, path_str, poll_until, skip};

const TEST: &str = "ls_forwards_over_doq_to_knots_xdp_quic_listener";
/// Knot's end of the veth (its XDP interface) and the LS's.
const KNOT: &str = "198.18.0.1";
const LS_IF_ADDR: &str = "198.18.0.2";
/// The LS's client listener and `/metrics`, on the LS namespace's loopback.
const LS: &str = "127.0.0.1:5300";
const METRICS: &str = "127.0.0.1:9133";

const ZONE: &str = "$ORIGIN kq.test.\n$TTL 300\n\
    @ SOA ns hostmaster 2026112901 3600 600 86400 60\n\
    @ NS ns\n@ MX 10 mail\nns A 192.0.2.53\nmail A 192.0.2.25\n\
    www A 192.0.2.80\nwww A 192.0.2.81\nwww AAAA 2001:db8::80\n\
    info TXT \"served by knot over quic\"\nalias CNAME www\n";

/// The questions asked of Knot and of the LS, one after the other.
const QUESTIONS: &[(&str, RecordType)] = &[
    ("www.kq.test.", RecordType::A),
    ("www.kq.test.", RecordType::AAAA),
    ("kq.test.", RecordType::SOA),
    ("kq.test.", RecordType::MX),
    ("info.kq.test.", RecordType::TXT),
    ("alias.kq.test.", RecordType::A),
    ("nope.kq.test.", RecordType::A),
];

/// An XDP program that passes every packet on to the stack.
/// No header: `-target bpf` does not search the multiarch include folder
/// (`asm/types.h`), and 2 is `XDP_PASS`.
const XDP_PASS: &str = "__attribute__((section(\"xdp\"), used)) int pass(void *c) { return 2; }\n\
    char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// On drop, the XDP programs of the veth's two ends detached (Knot's stays
/// attached after knotd exits): dropped after knotd, before the namespaces.
struct XdpOff<'a> {
    ip: &'a Path,
    ends: [(&'a Netns, String); 2],
}

impl Drop for XdpOff<'_> {
    fn drop(&mut self) {
        for (ns, iface) in &self.ends {
            let off = Command::new(self.ip)
                .args(["-n", &ns.name, "link", "set", "dev", iface, "xdp", "off"])
                .output();
            if !off.is_ok_and(|o| o.status.success()) {
                eprintln!("could not detach XDP from {iface} in {}", ns.name);
            }
        }
    }
}

/// Knot's config: the zone over UDP (sockets and XDP) and over QUIC
/// through XDP on `iface`, on port 853, with the certificate `cert`.
fn knot_conf(dir: &Path, iface: &str, (cert, key): (&Path, &Path)) -> String {
    let d = path_str(dir);
    format!(
        "server:\n  rundir: \"{d}\"\n  pidfile: \"{d}/knot.pid\"\n  listen: {KNOT}@53\n\
         \x20 udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\
         \x20 key-file: \"{}\"\n  cert-file: \"{}\"\n\
         xdp:\n  listen: {iface}\n  udp: on\n  tcp: off\n  quic: on\n  quic-port: 853\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n  storage: \"{d}\"\n\
         control:\n  listen: \"{d}/knot.sock\"\n\
         zone:\n  - domain: kq.test\n    storage: \"{d}\"\n    file: \"kq.test.zone\"\n\
         \x20   zonefile-sync: -1\n    journal-content: none\n",
        path_str(key),
        path_str(cert),
    )
}

/// The LS: the pool of `kq.test` on Knot's DoQ with the certificate name it
/// has, the pool of `bad.test` on the same Knot expecting another name.
fn ls_conf(ca: &Path) -> String {
    let ca = path_str(ca);
    format!(
        "[ls]\nlisten = [\"{LS}\"]\nworkers = 1\nmetrics = \"{METRICS}\"\n\n\
         [ls.health]\ninterval_ms = 500\nquery = \"kq.test SOA\"\n\n\
         [[ls.backend]]\nname = \"knot\"\naddr = \"{KNOT}:853\"\ntransport = \"quic\"\n\
         tls_name = \"dns.test\"\nca = \"{ca}\"\n\n\
         [[ls.backend]]\nname = \"misnamed\"\naddr = \"{KNOT}:853\"\ntransport = \"quic\"\n\
         tls_name = \"other.test\"\nca = \"{ca}\"\n\n\
         [[ls.pool]]\nname = \"knot\"\nbackends = [\"knot\"]\nzones = [\"kq.test\"]\n\n\
         [[ls.pool]]\nname = \"misnamed\"\nbackends = [\"misnamed\"]\nzones = [\"bad.test\"]\n"
    )
}

/// `name type` (ID `id`, RD clear, no EDNS) over UDP from the LS's
/// namespace to `to`: the answer, if one came within 2 s.
fn ask(ns: &Netns, to: &str, id: u16, name: &str, qtype: RecordType) -> Option<Message> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let to: SocketAddr = to.parse().unwrap();
    let raw = ask_raw_in(&ns.name, to, &m.to_vec().unwrap(), Duration::from_secs(2))?;
    Message::from_vec(&raw).ok()
}

/// Each record of `m`'s answer section in wire form (uncompressed).
fn answer_wire(m: &Message) -> Vec<Vec<u8>> {
    m.answers
        .iter()
        .map(|r: &Record| r.to_bytes().unwrap())
        .collect()
}

/// The sample of `family` in `metrics` for the backend `backend` (on
/// Knot's DoQ port), `more` labels after its own.
fn sample(metrics: &str, family: &str, backend: &str, more: &str) -> u64 {
    let labels = format!("{{backend=\"{backend}\",addr=\"{KNOT}:853\"{more}}}");
    sample_u64(metrics, &format!("{family}{labels}"))
}

/// `kdig +noall +answer` of `name type` over UDP to `server`@`port`, run in `ns`.
fn kdig_answer(ns: &Netns, kdig: &Path, server: &str, port: &str, q: (&str, RecordType)) -> String {
    let (at, qtype) = (format!("@{server}"), q.1.to_string());
    let args = [
        at.as_str(),
        "-p",
        port,
        "+notcp",
        "+noall",
        "+answer",
        "+time=2",
        "+retry=1",
        q.0,
        &qtype,
    ];
    let out = ns.command(kdig, &args).output().unwrap();
    assert!(out.status.success(), "kdig {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tools: ip, knotd, kdig, clang-14, ethtool; `None` after a skip.
fn tools() -> Option<(PathBuf, [PathBuf; 4])> {
    let ip = netns_or_skip(TEST)?;
    let found = need(TEST, ["knotd", "kdig", "clang-14", "ethtool"])?;
    Some((ip, found))
}

#[test]
fn ls_forwards_over_doq_to_knots_xdp_quic_listener() {
    let (ip, [knotd, kdig, clang, ethtool]) = or_skip!(tools());
    let pki = or_skip!(Pki::new(TEST));
    let d = pki.path().to_owned();
    let (cert, key) = pki.leaf("knot");
    std::fs::write(d.join("kq.test.zone"), ZONE).unwrap();
    std::fs::write(d.join("pass.c"), XDP_PASS).unwrap();
    let cc = Command::new(&clang)
        .args(["-O2", "-target", "bpf", "-c", "pass.c", "-o", "pass.o"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(cc.status.success(), "clang: {cc:?}");

    let prefix = Netns::unique_prefix("k");
    let knotns = Netns::create(&ip, &prefix, "knot");
    let lsns = Netns::create(&ip, &prefix, "ls");
    let id = rand::random::<u16>();
    let (kif, lif) = (format!("kq{id:04x}s"), format!("kq{id:04x}c"));
    knotns.veth(&kif, &lsns, &lif);
    knotns.ip(&["addr", "add", &format!("{KNOT}/24"), "dev", &kif]);
    lsns.ip(&["addr", "add", &format!("{LS_IF_ADDR}/24"), "dev", &lif]);
    let _xdp_off = XdpOff {
        ip: &ip,
        ends: [(&knotns, kif.clone()), (&lsns, lif.clone())],
    };
    let gro = lsns
        .command(&ethtool, &["-K", &lif, "gro", "on"])
        .output()
        .unwrap();
    assert!(gro.status.success(), "ethtool -K {lif} gro on: {gro:?}");
    let pass = Command::new(&ip)
        .args(["-n", &lsns.name, "link", "set", "dev", &lif, "xdpdrv"])
        .args(["obj", path_str(&d.join("pass.o")), "sec", "xdp"])
        .output()
        .unwrap();
    if !pass.status.success() {
        skip(
            TEST,
            &format!(
                "no native XDP on a veth here: {}",
                String::from_utf8_lossy(&pass.stderr).trim()
            ),
        );
        return;
    }

    std::fs::write(d.join("knot.conf"), knot_conf(&d, &kif, (&cert, &key))).unwrap();
    let mut knot = Proc::spawn(
        "knotd",
        knotns.command(&knotd, &["-c", path_str(&d.join("knot.conf"))]),
    );
    // Knot answers over UDP (through its XDP program) once its zone is loaded.
    let knot_up = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        knot.assert_running();
        let m = ask(&lsns, &format!("{KNOT}:53"), 1, "kq.test.", RecordType::SOA)?;
        (m.response_code == ResponseCode::NoError && !m.answers.is_empty()).then_some(())
    });
    assert!(
        knot_up.is_some(),
        "knotd never answered: {}",
        knot.stderr_now()
    );

    std::fs::write(d.join("ls.toml"), ls_conf(&pki.ca())).unwrap();
    let ls = lsns.dnslb("ls", &["ls", "-c", "ls.toml"], &d);
    let metrics = || lsns.curl(&format!("http://{METRICS}/metrics"));
    let up = |m: &str, b: &str| sample(m, "dnslb_backend_up", b, "");
    let sent = |m: &str| sample(m, "dnslb_backend_sent_total", "knot", "");
    let answered = |m: &str| sample(m, "dnslb_backend_answered_total", "knot", "");
    let misnamed = |m: &str| {
        let family = "dnslb_backend_link_failures_total";
        sample(m, family, "misnamed", ",reason=\"name\"")
    };
    let ready = poll_until(Duration::from_secs(30), Duration::from_millis(200), || {
        (up(&metrics(), "knot") == 1).then_some(())
    });
    assert!(
        ready.is_some(),
        "the DoQ backend on Knot never came up: {}\nLS: {}\nknotd: {}",
        metrics(),
        ls.stderr_now(),
        knot.stderr_now()
    );

    // One question at a time, a pause between: the LS's answer section is
    // Knot's, record for record, as kdig reads Knot over UDP.
    let before = metrics();
    for (i, &(name, qtype)) in QUESTIONS.iter().enumerate() {
        let id = 100 + u16::try_from(i).unwrap();
        let direct = ask(&lsns, &format!("{KNOT}:53"), id, name, qtype)
            .unwrap_or_else(|| panic!("Knot did not answer {name} {qtype} over UDP"));
        let via = ask(&lsns, LS, id, name, qtype).unwrap_or_else(|| {
            panic!(
                "the LS did not answer {name} {qtype}: {}\n{}",
                metrics(),
                ls.stderr_now()
            )
        });
        assert_eq!(via.id, id, "{name} {qtype}");
        assert_eq!(
            via.response_code, direct.response_code,
            "{name} {qtype}: {via}"
        );
        assert_eq!(
            answer_wire(&via),
            answer_wire(&direct),
            "{name} {qtype}: over DoQ through the LS {via}\nover UDP from Knot {direct}"
        );
        let from_knot = kdig_answer(&lsns, &kdig, KNOT, "53", (name, qtype));
        let (host, port) = LS.split_once(':').unwrap();
        let from_ls = kdig_answer(&lsns, &kdig, host, port, (name, qtype));
        assert_eq!(from_ls, from_knot, "{name} {qtype}: kdig's answer sections");
        if !name.starts_with("nope") {
            assert!(!from_knot.trim().is_empty(), "{name} {qtype}: no answer");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Knot closes a connection idle for 4 s: the next query, on a new
    // connection, is answered all the same.
    std::thread::sleep(Duration::from_secs(5));
    let m = ask(&lsns, LS, 99, "www.kq.test.", RecordType::A);
    assert!(
        m.as_ref().is_some_and(|m| m.answers.len() == 2),
        "after an idle close: {m:?}\n{}",
        ls.stderr_now()
    );
    // Every query went to the DoQ backend (port 853 of Knot speaks only
    // QUIC) and was answered there.
    let after = metrics();
    let asked = 2 * u64::try_from(QUESTIONS.len()).unwrap() + 1;
    assert!(sent(&after) >= sent(&before) + asked, "{after}");
    assert!(answered(&after) >= answered(&before) + asked, "{after}");
    assert_eq!(up(&after, "knot"), 1, "{after}");

    // The backend expecting another name: down, its handshakes refused
    // for the name and counted; its zone's clients get no answer from it.
    let refused = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        (misnamed(&metrics()) >= 2).then_some(())
    });
    let m = metrics();
    assert!(
        refused.is_some(),
        "no name failure counted: {m}\n{}",
        ls.stderr_now()
    );
    assert_eq!(up(&m, "misnamed"), 0, "{m}");
    let bad = ask(&lsns, LS, 7, "www.bad.test.", RecordType::A);
    assert!(
        bad.as_ref().is_none_or(|b| b.answers.is_empty()),
        "an answer through the misnamed backend: {bad:?}"
    );
    assert_eq!(up(&metrics(), "knot"), 1, "the good backend stayed up");
    drop((ls, knot));
}

//! The TS's UDP through AF_XDP (`xdp = ["IF"]` in a `[[ts]]`, docs/DEPLOY.md
//! "XDP"), in two network namespaces the test makes joined by a veth pair:
//! the server's (198.18.0.1/24, 2001:2::1/64 on `xs0`, where `dnslb ts`
//! runs with `xdp = ["xs0"]`) and the client's (198.18.0.2, 2001:2::2).
//!
//! - The same query bytes sent from the client (through the veth: the XDP
//!   program, an AF_XDP socket, the worker) and from inside the server's
//!   namespace (through the kernel's sockets) get the same answer bytes,
//!   over IPv4 and IPv6: positive, NXDOMAIN, NODATA, a CNAME chain, a
//!   wildcard, ANY, every EDNS size, DO (RRSIGs, NSEC), an NSID asked of a
//!   TS that has none, a case-mixed name; an answer larger than the MTU
//!   leaves through the kernel and arrives as IP fragments, one truncated
//!   at 512 is asked again over TCP (the kernel's) and comes whole. The
//!   counters say the worker answered what fit and the kernel the rest.
//! - While XDP runs: ping (v4 and v6), AXFR over TCP, and UDP to another
//!   port of the server's address all work.
//! - Crafted frames (cut short, lying lengths, a bad IPv4 header checksum,
//!   UDP checksum 0, VLAN tagged, a fragment, IP options, an IPv6
//!   extension header, source port 0) never wedge a worker: each is
//!   answered only where the kernel would answer it, the ones the worker
//!   saw are counted by reason, and a normal query is answered through XDP
//!   afterwards. A bad UDP checksum is not verified (checksum offload and
//!   veth leave partial ones; Knot's and NSD's XDP modes do the same), so
//!   those frames are left out of the comparison with the kernel's answers.
//! - The MTU lowered under a running TS is followed (a larger answer leaves
//!   through the kernel); the interface deleted stops its workers, and made
//!   again under its name is attached again.
//! - A TS with `xdp` starts every time, and `dnslb check` warns where the
//!   TS could not open its AF_XDP sockets (no CAP_NET_RAW).
//! - Without CAP_BPF and CAP_NET_ADMIN the TS says so in one warning naming
//!   the interface, serves through sockets and attaches nothing.
//! - `kill -9` leaves no program attached (the kernel drops the BPF link
//!   with the process); a restart serves through XDP again, SIGTERM
//!   detaches.
//! - SIGTERM with delayed answers (the `fault` delay) in flight through XDP
//!   sends them all before the TS exits.
//! - The shipped `bpf/dnslb_xdp.o` is what `bpf/build` makes of its source.
//! - `dnslb check` names the interface: its sockets and MTU, or why the TS
//!   will serve it through sockets.
//! - DEPLOY.md's "XDP" recipe, walked as written.
//!
//! Every process is stopped by PID and every namespace deleted by its
//! guard. Skipped unless root with `ip` (and each test's programs).
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

use crate::kit::recipes::{SETTLE, walk, with_zones};
use crate::kit::{
    BIN, Netns, Proc, RecipeNetns, crate_dir, in_netns, need, netns_or_skip, poll_until, run,
};

/// The server's interface (its namespace's end of the veth).
const IFACE: &str = "xs0";
/// The client's end.
const CLIENT_IF: &str = "xc0";
const S4: &str = "198.18.0.1";
const C4: &str = "198.18.0.2";
const S6: &str = "2001:2::1";
const C6: &str = "2001:2::2";
/// The TS's metrics, on the server's address.
const METRICS: &str = "198.18.0.1:9100";
/// How long a TS may take to start (signing included) and XDP to attach.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long one UDP try waits for its answer.
const TRY_WAIT: Duration = Duration::from_secs(1);
/// The MTU of the IPv4 comparison's link: under the TS's largest UDP
/// answer (1232 bytes), so the largest leave through the kernel. IPv6
/// needs 1280 at least, where every answer of 1232 bytes fits.
const SMALL_MTU: usize = 1000;

/// The zone served: names of every kind the comparison asks.
const ZONE: &str = "$ORIGIN xdp.test.\n$TTL 300\n\
@ IN SOA ns.xdp.test. host.xdp.test. 1 3600 600 86400 60\n\
@ IN NS ns\n\
ns IN A 198.18.0.1\n\
www IN A 192.0.2.80\n\
www IN A 192.0.2.81\n\
www IN AAAA 2001:db8::80\n\
c1 IN CNAME c2\n\
c2 IN CNAME c3\n\
c3 IN CNAME www\n\
*.wild IN A 192.0.2.99\n";

/// The zone with `big`: ten TXT records of 90 characters, an answer of
/// about 1,070 bytes (1,170 with its RRSIG), over [`SMALL_MTU`] and under 1232.
fn zone_text() -> String {
    let mut z = ZONE.to_owned();
    for i in 0..10 {
        z.push_str(&format!("big IN TXT \"{}\"\n", format!("t{i}-").repeat(30)));
    }
    z
}

/// Two namespaces joined by a veth pair, addressed, and a folder with the
/// zone; the namespaces are deleted on drop (drop the processes first:
/// declare them after the lab).
struct Lab {
    server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(ip: &Path, tag: &str) -> Lab {
        let prefix = Netns::unique_prefix(tag);
        let server = Netns::create(ip, &prefix, "s");
        let client = Netns::create(ip, &prefix, "c");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("xdp.zone"), zone_text()).unwrap();
        let lab = Lab {
            server,
            client,
            dir,
        };
        lab.link();
        lab
    }

    /// The veth pair between the namespaces, with its addresses.
    fn link(&self) {
        self.server.veth(IFACE, &self.client, CLIENT_IF);
        for (ns, ifname, v4, v6) in [
            (&self.server, IFACE, S4, S6),
            (&self.client, CLIENT_IF, C4, C6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
        }
    }

    /// Both ends' MTU set to `mtu` (under 1280 IPv6 leaves the link).
    fn mtu(&self, mtu: usize) {
        let m = mtu.to_string();
        self.server.ip(&["link", "set", IFACE, "mtu", &m]);
        self.client.ip(&["link", "set", CLIENT_IF, "mtu", &m]);
    }

    /// Writes `NAME.toml`: one `[[ts]]` `t1` on `listen` with `xdp` on the
    /// server's interface, its metrics on [`METRICS`], and `extra` keys.
    fn conf(&self, name: &str, listen: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[[ts]]\nname = \"t1\"\nlisten = \"{listen}\"\nmetrics = \"{METRICS}\"\n\
             zones = [\"xdp.zone\"]\nxdp = [\"{IFACE}\"]\n{extra}"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `dnslb ts -c CONF --name t1` in the server's namespace (after the
    /// programs of `wrap`, e.g. `setpriv ...`), once it logged that it is
    /// ready. A start that died of the race where a UDP worker makes the
    /// shared socket blocking before the XDP path hands its duplicate to
    /// tokio (a debug build asserts on it; held by
    /// `a_ts_with_xdp_starts_every_time`) is started again, saying so.
    fn start(&self, conf: &Path, wrap: &[&str]) -> Proc {
        let mut args: Vec<&str> = wrap.get(1..).unwrap_or_default().to_vec();
        if !wrap.is_empty() {
            args.push(BIN);
        }
        args.extend(["ts", "-c", conf.to_str().unwrap(), "--name", "t1"]);
        let prog = Path::new(wrap.first().copied().unwrap_or(BIN));
        let mut cmd = self.server.command(prog, &args);
        cmd.env("RUST_LOG", "info")
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV);
        let mut ts = Proc::spawn("dnslb ts", cmd);
        let ready = poll_until(START_LIMIT, Duration::from_millis(20), || {
            if ts.exited().is_some() {
                return Some(false);
            }
            ts.stderr_now()
                .contains("table server ready")
                .then_some(true)
        });
        if ready != Some(true) {
            ts.assert_running();
            panic!(
                "dnslb ts not ready within {START_LIMIT:?}:\n{}",
                ts.stderr_now()
            );
        }
        ts
    }

    /// Whether the server's interface has an XDP program attached, and it
    /// is ours.
    fn attached(&self) -> bool {
        let out = self.server.ip_output(&["link", "show", IFACE]);
        let ours = out.contains("prog/xdp") && out.contains("name dnslb_xdp");
        assert!(ours || !out.contains("prog/xdp"), "another program: {out}");
        ours
    }

    /// The TS's `/metrics`, fetched from inside the server's namespace.
    fn metrics(&self) -> String {
        in_netns(&self.server.name, || {
            let mut s = TcpStream::connect(METRICS).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        })
    }

    /// The MAC address of `ifname` in `ns`.
    fn mac(ns: &Netns, ifname: &str) -> [u8; 6] {
        let out = ns.ip_output(&["link", "show", ifname]);
        let hex = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in {out}"));
        let b: Vec<u8> = (hex.split(':'))
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        b.try_into().unwrap()
    }

    /// `prog args` in the client's namespace; its output.
    fn client_run(&self, prog: &Path, args: &[&str]) -> crate::kit::Output {
        run(
            &format!("{} {}", prog.display(), args.join(" ")),
            self.client.command(prog, args),
            None,
            Duration::from_secs(60),
        )
    }
}

/// The XDP path's counters (`dnslb_ts_xdp_*`), from a `/metrics` body.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Xdp {
    answered: u64,
    via_kernel: u64,
    to_user: u64,
    sockets: u64,
}

/// The value of the sample `key` (name and labels as written), 0 when absent.
fn sample(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

fn skipped(text: &str, reason: &str) -> u64 {
    sample(
        text,
        &format!("dnslb_ts_xdp_skipped_total{{reason=\"{reason}\"}}"),
    )
}

fn xdp_of(text: &str) -> Xdp {
    Xdp {
        answered: sample(text, "dnslb_ts_xdp_frames_total{result=\"answered\"}"),
        via_kernel: sample(text, "dnslb_ts_xdp_frames_total{result=\"via_kernel\"}"),
        to_user: sample(text, "dnslb_ts_xdp_program_total{what=\"to_user\"}"),
        sockets: sample(text, "dnslb_ts_xdp_sockets"),
    }
}

/// The OPT of a query: its size, the DO bit, an empty NSID option.
#[derive(Debug, Clone, Copy)]
struct Opt {
    size: u16,
    dnssec_ok: bool,
    nsid: bool,
}

const fn opt(size: u16, dnssec_ok: bool) -> Option<Opt> {
    Some(Opt {
        size,
        dnssec_ok,
        nsid: false,
    })
}

const A: u16 = 1;
const MX: u16 = 15;
const TXT: u16 = 16;
const AAAA: u16 = 28;
const ANY: u16 = 255;

/// A query's wire bytes: ID `id`, RD off, one question, and the OPT.
fn wire(id: u16, name: &str, qtype: u16, opt: Option<Opt>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend([0, 1]);
    if let Some(o) = opt {
        q.extend([0, 0, 41]);
        q.extend(o.size.to_be_bytes());
        q.extend([0, 0, if o.dnssec_ok { 0x80 } else { 0 }, 0]);
        if o.nsid {
            q.extend([0, 4, 0, 3, 0, 0]);
        } else {
            q.extend([0, 0]);
        }
    }
    q
}

/// One question of the comparison.
struct Case {
    what: &'static str,
    name: &'static str,
    qtype: u16,
    opt: Option<Opt>,
    rcode: ResponseCode,
}

const fn case(
    what: &'static str,
    name: &'static str,
    qtype: u16,
    opt: Option<Opt>,
    rcode: ResponseCode,
) -> Case {
    Case {
        what,
        name,
        qtype,
        opt,
        rcode,
    }
}

const NSID_ASKED: Option<Opt> = Some(Opt {
    size: 1232,
    dnssec_ok: false,
    nsid: true,
});

/// The questions compared byte for byte.
fn cases() -> Vec<Case> {
    use ResponseCode::{NXDomain, NoError};
    vec![
        case("A, no EDNS", "www.xdp.test", A, None, NoError),
        case("A, EDNS 1232", "www.xdp.test", A, opt(1232, false), NoError),
        case("A, DO", "www.xdp.test", A, opt(1232, true), NoError),
        case("AAAA, DO", "www.xdp.test", AAAA, opt(1232, true), NoError),
        case("case kept", "WwW.XdP.tEsT", A, opt(1232, false), NoError),
        case("NXDOMAIN", "nope.xdp.test", A, None, NXDomain),
        case(
            "NXDOMAIN, DO",
            "nope.xdp.test",
            A,
            opt(1232, true),
            NXDomain,
        ),
        case("NODATA, DO", "www.xdp.test", MX, opt(1232, true), NoError),
        case("CNAME chain", "c1.xdp.test", A, opt(1232, false), NoError),
        case(
            "CNAME chain, DO",
            "c1.xdp.test",
            A,
            opt(1232, true),
            NoError,
        ),
        case("wildcard", "x.wild.xdp.test", A, opt(1232, false), NoError),
        case(
            "wildcard, DO",
            "a.b.wild.xdp.test",
            A,
            opt(1232, true),
            NoError,
        ),
        case(
            "wildcard NODATA, DO",
            "y.wild.xdp.test",
            AAAA,
            opt(1232, true),
            NoError,
        ),
        case("ANY", "www.xdp.test", ANY, opt(1232, false), NoError),
        case("ANY, DO", "www.xdp.test", ANY, opt(1232, true), NoError),
        case(
            "NSID asked, none set",
            "www.xdp.test",
            A,
            NSID_ASKED,
            NoError,
        ),
        case("big, no EDNS", "big.xdp.test", TXT, None, NoError),
        case(
            "big, EDNS 512",
            "big.xdp.test",
            TXT,
            opt(512, false),
            NoError,
        ),
        case(
            "big, EDNS 1232",
            "big.xdp.test",
            TXT,
            opt(1232, false),
            NoError,
        ),
        case(
            "big, EDNS 4096",
            "big.xdp.test",
            TXT,
            opt(4096, false),
            NoError,
        ),
        case(
            "big, EDNS 4096, DO",
            "big.xdp.test",
            TXT,
            opt(4096, true),
            NoError,
        ),
    ]
}

/// `q` sent over UDP to `to` from a fresh socket (up to 3 tries of
/// [`TRY_WAIT`]): the answer with `q`'s ID and how many tries it took.
fn udp_ask(to: SocketAddr, q: &[u8]) -> Option<(Vec<u8>, u64)> {
    let any: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(any).unwrap();
    s.set_read_timeout(Some(TRY_WAIT)).unwrap();
    let mut buf = vec![0u8; 65535];
    for tries in 1..=3 {
        s.send_to(q, to).unwrap();
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if from == to && n >= 2 && buf[..2] == q[..2] {
                return Some((buf[..n].to_vec(), tries));
            }
        }
    }
    None
}

/// `q` over TCP to `to`: the answer.
fn tcp_ask(to: SocketAddr, q: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(q);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer).unwrap();
    answer
}

/// IP datagrams the calling thread's namespace put together from
/// fragments (`ReasmOKs`), IPv4 and IPv6.
fn reassembled() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let ip: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Ip: ")).collect();
    let at = ip[0].split(' ').position(|w| w == "ReasmOKs").unwrap();
    let v4 = ip[1].split(' ').nth(at).unwrap().parse().unwrap();
    let snmp6 = std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap();
    let v6 = (snmp6.lines())
        .find_map(|l| l.strip_prefix("Ip6ReasmOKs"))
        .map_or(0, |v| v.trim().parse().unwrap());
    (v4, v6)
}

/// Every question asked of `server:53` from the client (through XDP) and
/// from inside the server's namespace (through the kernel); the answers
/// must be the same bytes. Returns how many XDP-path answers fit one frame
/// of `mtu` and how many did not, and the tries sent in all.
fn compare(lab: &Lab, server: IpAddr, mtu: usize) -> (u64, u64, u64) {
    let to = SocketAddr::new(server, 53);
    let queries: Vec<Vec<u8>> = (cases().iter().enumerate())
        .map(|(i, c)| wire(0x4400 + i as u16, c.name, c.qtype, c.opt))
        .collect();
    let ask_all = |qs: Vec<Vec<u8>>| {
        move || {
            let before = reassembled();
            let answers: Vec<_> = qs.iter().map(|q| udp_ask(to, q)).collect();
            let after = reassembled();
            (answers, (after.0 - before.0, after.1 - before.1))
        }
    };
    let (through_xdp, fragmented) = in_netns(&lab.client.name, ask_all(queries.clone()));
    let (through_sockets, _) = in_netns(&lab.server.name, ask_all(queries.clone()));
    let overhead = if server.is_ipv4() { 28 } else { 48 };
    let (mut fit, mut big, mut tries) = (0, 0, 0);
    for (i, c) in cases().iter().enumerate() {
        let what = format!("{} ({} {} to {to})", c.what, c.name, c.qtype);
        let (x, t) = through_xdp[i]
            .clone()
            .unwrap_or_else(|| panic!("{what}: no answer through XDP"));
        let (k, _) = through_sockets[i]
            .clone()
            .unwrap_or_else(|| panic!("{what}: no answer through sockets"));
        assert!(
            x == k,
            "{what}: the answers differ\nthrough XDP:     {}\nthrough sockets: {}",
            hex(&x),
            hex(&k)
        );
        let m = Message::from_vec(&x).unwrap();
        assert_eq!(m.metadata.response_code, c.rcode, "{what}");
        assert!(
            m.edns.as_ref().is_none_or(|e| e
                .option(hickory_proto::rr::rdata::opt::EdnsCode::NSID)
                .is_none()),
            "{what}: an NSID the TS does not have"
        );
        tries += t;
        if x.len() + overhead <= mtu {
            fit += 1;
        } else {
            big += 1;
        }
    }
    if big > 0 {
        let f = if server.is_ipv4() {
            fragmented.0
        } else {
            fragmented.1
        };
        assert!(f >= big, "{big} answers over the MTU, {f} reassembled");
    }
    (fit, big, tries)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Polls `/metrics` until `done` holds of it (the keeper copies the
/// program's counters once a second); the last body either way.
fn metrics_until(lab: &Lab, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        last = lab.metrics();
        done(&last).then_some(())
    });
    assert!(ok.is_some(), "the metrics never showed it:\n{last}");
    last
}

/// Asks `www.xdp.test A` from the client until the TS answers through
/// XDP (its `answered` counter grows): the path is up.
fn wait_xdp_answers(lab: &Lab, server: IpAddr) {
    let to = SocketAddr::new(server, 53);
    let before = xdp_of(&lab.metrics()).answered;
    let q = wire(0x1111, "www.xdp.test", A, opt(1232, false));
    let up = poll_until(START_LIMIT, Duration::from_millis(100), || {
        let q = q.clone();
        in_netns(&lab.client.name, move || udp_ask(to, &q))?;
        (xdp_of(&lab.metrics()).answered > before).then_some(())
    });
    assert!(up.is_some(), "XDP never answered:\n{}", lab.metrics());
}

#[test]
fn the_same_questions_get_the_same_bytes_through_xdp_and_through_sockets() {
    const TEST: &str = "the_same_questions_get_the_same_bytes_through_xdp_and_through_sockets";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let lab = Lab::new(&ip, "x1");
    let signed = "dnssec = { keys = \"keys\" }\n";
    // IPv6 first, on the veth's MTU (1500): every UDP answer fits a frame.
    let conf = lab.conf("t6", &format!("[{S6}]:53"), signed);
    let ts = lab.start(&conf, &[]);
    let s6: IpAddr = S6.parse().unwrap();
    wait_xdp_answers(&lab, s6);
    let before = xdp_of(&lab.metrics());
    let (fit, big, tries) = compare(&lab, s6, 1500);
    assert_eq!(big, 0, "an IPv6 answer over 1500 bytes");
    let after = xdp_of(&metrics_until(&lab, |m| {
        xdp_of(m).answered >= before.answered + fit
    }));
    assert!(
        after.answered - before.answered <= tries && after.via_kernel == before.via_kernel,
        "IPv6: {fit} answers through XDP expected ({tries} tries): before {before:?}, after {after:?}"
    );
    ts.stop(Duration::from_secs(10));
    // IPv4 on a link whose MTU is under the largest answers: those leave
    // through the kernel, fragmented. The same keys sign.
    lab.mtu(SMALL_MTU);
    let conf = lab.conf("t4", &format!("{S4}:53"), signed);
    let ts = lab.start(&conf, &[]);
    let s4: IpAddr = S4.parse().unwrap();
    wait_xdp_answers(&lab, s4);
    let before = xdp_of(&lab.metrics());
    let (fit, big, tries) = compare(&lab, s4, SMALL_MTU);
    assert!(
        big >= 3,
        "only {big} answers over the MTU: the zone's big name shrank"
    );
    let after = xdp_of(&metrics_until(&lab, |m| {
        let x = xdp_of(m);
        x.answered >= before.answered + fit
            && x.via_kernel >= before.via_kernel + big
            && x.to_user >= before.to_user + fit + big
    }));
    let took = (after.answered - before.answered) + (after.via_kernel - before.via_kernel);
    assert!(
        took <= tries,
        "more frames than queries sent: before {before:?}, after {after:?}"
    );
    // Truncated at 512 through XDP, whole over TCP (the kernel's).
    let q = wire(0x5000, "big.xdp.test", TXT, opt(512, false));
    let to = SocketAddr::new(s4, 53);
    let (udp, tcp) = in_netns(&lab.client.name, move || {
        (udp_ask(to, &q).unwrap().0, tcp_ask(to, &q))
    });
    let udp = Message::from_vec(&udp).unwrap();
    assert!(
        udp.metadata.truncation && udp.answers.is_empty(),
        "{}",
        crate::kit::show(&udp)
    );
    let tcp = Message::from_vec(&tcp).unwrap();
    let txts = (tcp.answers.iter())
        .filter(|r| matches!(r.data, RData::TXT(_)))
        .count();
    assert!(
        !tcp.metadata.truncation && txts == 10,
        "{}",
        crate::kit::show(&tcp)
    );
    ts.stop(Duration::from_secs(10));
}

#[test]
fn ping_tcp_and_other_udp_ports_keep_working_while_xdp_runs() {
    const TEST: &str = "ping_tcp_and_other_udp_ports_keep_working_while_xdp_runs";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([ping, dig]) = need(TEST, ["ping", "dig"]) else {
        return;
    };
    let lab = Lab::new(&ip, "x2");
    let conf = lab.conf(
        "t",
        &format!("{S4}:53"),
        &format!("axfr_allow = [\"{C4}\"]\n"),
    );
    let mut ts = lab.start(&conf, &[]);
    let s4: IpAddr = S4.parse().unwrap();
    wait_xdp_answers(&lab, s4);
    assert!(lab.attached());
    for to in [S4, S6] {
        let out = lab.client_run(&ping, &["-c", "3", "-i", "0.2", "-W", "2", to]);
        assert!(
            out.status.success() && out.stdout.contains("3 received"),
            "ping {to}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    let out = lab.client_run(
        &dig,
        &["@198.18.0.1", "xdp.test", "AXFR", "+time=5", "+tries=1"],
    );
    let soas = out.stdout.lines().filter(|l| l.contains("\tSOA\t")).count();
    assert!(
        soas == 2 && out.stdout.contains("big.xdp.test."),
        "AXFR over TCP: {}{}",
        out.stdout,
        out.stderr
    );
    // A UDP echo on another port of the server's address.
    let echo = in_netns(&lab.server.name, || UdpSocket::bind((S4, 5300)).unwrap());
    let echoer = std::thread::spawn(move || {
        echo.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = echo.recv_from(&mut buf).unwrap();
        echo.send_to(&buf[..n], from).unwrap();
    });
    let back = in_netns(&lab.client.name, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.send_to(b"not dns, port 5300", (S4, 5300)).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    echoer.join().unwrap();
    assert_eq!(back, b"not dns, port 5300");
    // And port 53 over UDP is still XDP's.
    wait_xdp_answers(&lab, s4);
    ts.assert_running();
}

#[test]
fn a_changed_mtu_and_an_interface_made_again_are_followed() {
    const TEST: &str = "a_changed_mtu_and_an_interface_made_again_are_followed";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let lab = Lab::new(&ip, "x7");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let mut ts = lab.start(&conf, &[]);
    let s4: IpAddr = S4.parse().unwrap();
    wait_xdp_answers(&lab, s4);
    // The MTU lowered under a running TS: an answer over it leaves through
    // the kernel (fragmented) and arrives whole, instead of a frame the
    // link drops.
    lab.mtu(SMALL_MTU);
    let to = SocketAddr::new(s4, 53);
    let q = wire(0x6000, "big.xdp.test", TXT, opt(1232, false));
    let before = xdp_of(&lab.metrics()).via_kernel;
    let whole = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let q = q.clone();
        let (answer, _) = in_netns(&lab.client.name, move || udp_ask(to, &q))?;
        let m = Message::from_vec(&answer).ok()?;
        let txts = (m.answers.iter())
            .filter(|r| matches!(r.data, RData::TXT(_)))
            .count();
        (answer.len() > SMALL_MTU && txts == 10 && xdp_of(&lab.metrics()).via_kernel > before)
            .then_some(())
    });
    assert!(
        whole.is_some(),
        "no whole answer over the new MTU:\n{}",
        lab.metrics()
    );
    // The interface deleted: its workers stop, said once; made again under
    // its name: attached again, and XDP answers.
    lab.server.ip(&["link", "del", IFACE]);
    let gone = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ts.stderr_now()
            .contains("xdp: the interface is gone")
            .then_some(())
    });
    assert!(gone.is_some(), "not seen gone:\n{}", ts.stderr_now());
    lab.link();
    let back = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ts.stderr_now()
            .contains("xdp: the interface is back; serving UDP through AF_XDP again")
            .then_some(())
    });
    assert!(back.is_some(), "not attached again:\n{}", ts.stderr_now());
    assert!(lab.attached());
    wait_xdp_answers(&lab, s4);
    let m = lab.metrics();
    assert_eq!(xdp_of(&m).sockets, 1, "{m}");
    // What the kernel dropped between the program and the worker: nothing
    // at this rate, and said so.
    for why in ["rx_ring_full", "fill_ring_empty", "rx_dropped"] {
        let key = format!("dnslb_ts_xdp_lost_total{{why=\"{why}\"}} 0");
        assert!(m.lines().any(|l| l == key), "{key} in:\n{m}");
    }
    assert_eq!(
        ts.stderr_now()
            .matches("xdp: the interface is gone")
            .count(),
        1,
        "{}",
        ts.stderr_now()
    );
    ts.assert_running();
}

/// The frames of the malformed-frames test: Ethernet, IP, UDP built here.
struct Frames {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
}

/// The one's-complement sum of `parts`, folded and inverted.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for p in parts {
        for w in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Frames {
    /// A UDP header and `payload`, its length `len_delta` off the truth and
    /// its checksum right (over the pseudo-header), unless `csum` says.
    fn udp(&self, sport: u16, payload: &[u8], len_delta: i32, csum: Option<u16>) -> Vec<u8> {
        let len = (8 + payload.len()) as i32 + len_delta;
        let mut u = sport.to_be_bytes().to_vec();
        u.extend(53u16.to_be_bytes());
        u.extend((len as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        let (s, d) = (octets(self.src), octets(self.dst));
        let plen = (u.len() as u32).to_be_bytes();
        let pseudo: Vec<u8> = if self.src.is_ipv4() {
            [&s[..], &d[..], &[0, 17], &plen[2..]].concat()
        } else {
            [&s[..], &d[..], &plen[..], &[0, 0, 0, 17]].concat()
        };
        let mut c = checksum(&[&pseudo, &u]);
        if c == 0 {
            c = 0xffff;
        }
        let c = csum.unwrap_or(c);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        u
    }

    fn eth(&self, ethertype: u16) -> Vec<u8> {
        [
            &self.dst_mac[..],
            &self.src_mac[..],
            &ethertype.to_be_bytes(),
        ]
        .concat()
    }

    /// An IPv4 packet around `l4`: `options` after the header, `frag` as
    /// flags and offset, the total length `len_delta` off, the header
    /// checksum right unless `bad_sum`.
    fn v4(&self, l4: &[u8], options: &[u8], frag: u16, len_delta: i32, bad_sum: bool) -> Vec<u8> {
        let hl = 20 + options.len();
        let total = (hl + l4.len()) as i32 + len_delta;
        let mut h = vec![0x40 | (hl / 4) as u8, 0];
        h.extend((total as u16).to_be_bytes());
        h.extend([0x12, 0x34]);
        h.extend(frag.to_be_bytes());
        h.extend([64, 17, 0, 0]);
        h.extend(octets(self.src));
        h.extend(octets(self.dst));
        h.extend(options);
        let mut c = checksum(&[&h]);
        if bad_sum {
            c ^= 0x5555;
        }
        h[10..12].copy_from_slice(&c.to_be_bytes());
        [self.eth(0x0800), h, l4.to_vec()].concat()
    }

    /// An IPv6 packet around `l4` (after the extension header `ext`, whose
    /// first byte is then 17), its payload length `len_delta` off.
    fn v6(&self, l4: &[u8], ext: Option<&[u8]>, len_delta: i32) -> Vec<u8> {
        let body = [ext.unwrap_or(&[]), l4].concat();
        let plen = body.len() as i32 + len_delta;
        let mut h = vec![0x60, 0, 0, 0];
        h.extend((plen as u16).to_be_bytes());
        h.push(if ext.is_some() { 0 } else { 17 });
        h.push(64);
        h.extend(octets(self.src));
        h.extend(octets(self.dst));
        [self.eth(0x86dd), h, body].concat()
    }
}

/// One crafted frame: its DNS ID (its query's), what it is, and whether
/// an answer comes back (from XDP or from the kernel, which the program
/// passes it to).
struct Crafted {
    id: u16,
    what: &'static str,
    frame: Vec<u8>,
    answered: bool,
}

/// The IPv4 frames: a good one, the kernel's (VLAN, fragment, options),
/// and those the worker must skip.
fn frames_v4(f: &Frames) -> Vec<Crafted> {
    let q = |id| wire(id, "www.xdp.test", A, None);
    let good = |id| f.v4(&f.udp(f.sport, &q(id), 0, None), &[], 0, 0, false);
    let mut out = Vec::new();
    let mut add = |id: u16, what, frame: Vec<u8>, answered| {
        out.push(Crafted {
            id,
            what,
            frame,
            answered,
        })
    };
    add(0x0a01, "good", good(0x0a01), true);
    add(
        0x0a02,
        "UDP checksum 0 (none, IPv4)",
        f.v4(&f.udp(f.sport, &q(0x0a02), 0, Some(0)), &[], 0, 0, false),
        true,
    );
    add(
        0x0a03,
        "cut in the IP header",
        good(0x0a03)[..14 + 10].to_vec(),
        false,
    );
    add(
        0x0a04,
        "cut in the UDP header",
        good(0x0a04)[..14 + 20 + 4].to_vec(),
        false,
    );
    let g = good(0x0a05);
    add(
        0x0a05,
        "cut in the payload",
        g[..g.len() - 5].to_vec(),
        false,
    );
    add(
        0x0a06,
        "IP total length past the frame",
        f.v4(&f.udp(f.sport, &q(0x0a06), 0, None), &[], 0, 40, false),
        false,
    );
    add(
        0x0a07,
        "IP total length under the headers",
        f.v4(&f.udp(f.sport, &q(0x0a07), 0, None), &[], 0, -30, false),
        false,
    );
    add(
        0x0a08,
        "bad IP header checksum",
        f.v4(&f.udp(f.sport, &q(0x0a08), 0, None), &[], 0, 0, true),
        false,
    );
    add(
        0x0a09,
        "UDP length past the packet",
        f.v4(&f.udp(f.sport, &q(0x0a09), 20, None), &[], 0, 0, false),
        false,
    );
    add(
        0x0a0a,
        "bad UDP checksum",
        f.v4(
            &f.udp(f.sport, &q(0x0a0a), 0, Some(0x1234)),
            &[],
            0,
            0,
            false,
        ),
        false,
    );
    add(
        0x0a0b,
        "source port 0",
        f.v4(&f.udp(0, &q(0x0a0b), 0, None), &[], 0, 0, false),
        false,
    );
    // The program's to pass: the kernel drops a tag it has no VLAN for, and
    // holds a first fragment whose rest never comes; it takes IP options
    // (four NOPs), and its socket answers.
    let g = good(0x0a0c);
    let vlan = [&g[..12], &[0x81, 0x00, 0x00, 0x07], &g[12..]].concat();
    add(0x0a0c, "VLAN tagged", vlan, false);
    add(
        0x0a0d,
        "a fragment (MF)",
        f.v4(&f.udp(f.sport, &q(0x0a0d), 0, None), &[], 0x2000, 0, false),
        false,
    );
    add(
        0x0a0e,
        "IP options",
        f.v4(
            &f.udp(f.sport, &q(0x0a0e), 0, None),
            &[1, 1, 1, 1],
            0,
            0,
            false,
        ),
        true,
    );
    out
}

/// The IPv6 frames: a good one, an extension header (the kernel's), and
/// those the worker must skip.
fn frames_v6(f: &Frames) -> Vec<Crafted> {
    let q = |id| wire(id, "www.xdp.test", A, None);
    // Hop-by-hop options: next header UDP, 8 bytes, a PadN of 4.
    let hbh = [17u8, 0, 1, 4, 0, 0, 0, 0];
    vec![
        Crafted {
            id: 0x0b01,
            what: "good (IPv6)",
            frame: f.v6(&f.udp(f.sport, &q(0x0b01), 0, None), None, 0),
            answered: true,
        },
        Crafted {
            id: 0x0b02,
            what: "hop-by-hop header",
            frame: f.v6(&f.udp(f.sport, &q(0x0b02), 0, None), Some(&hbh), 0),
            answered: true,
        },
        Crafted {
            id: 0x0b03,
            what: "UDP checksum 0 (IPv6)",
            frame: f.v6(&f.udp(f.sport, &q(0x0b03), 0, Some(0)), None, 0),
            answered: false,
        },
        Crafted {
            id: 0x0b04,
            what: "bad UDP checksum (IPv6)",
            frame: f.v6(&f.udp(f.sport, &q(0x0b04), 0, Some(0x4321)), None, 0),
            answered: false,
        },
        Crafted {
            id: 0x0b05,
            what: "payload length past the frame",
            frame: f.v6(&f.udp(f.sport, &q(0x0b05), 0, None), None, 30),
            answered: false,
        },
        Crafted {
            id: 0x0b06,
            what: "source port 0 (IPv6)",
            frame: f.v6(&f.udp(0, &q(0x0b06), 0, None), None, 0),
            answered: false,
        },
    ]
}

/// Sends `frames` from the client's interface through an AF_PACKET socket
/// (python3), while a UDP socket on the client's address and `port` takes
/// the answers for 3 s: the IDs answered.
fn send_frames(lab: &Lab, python: &Path, client: SocketAddr, frames: &[Crafted]) -> BTreeSet<u16> {
    let sock = in_netns(&lab.client.name, move || UdpSocket::bind(client).unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind((sys.argv[1], 0))\n\
        for h in sys.argv[2:]:\n    s.send(bytes.fromhex(h))\n";
    let mut args = vec!["-c".to_owned(), script.to_owned(), CLIENT_IF.to_owned()];
    args.extend(frames.iter().map(|c| hex(&c.frame)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.client_run(python, &args);
    assert!(
        out.status.success(),
        "python3 AF_PACKET: {}{}",
        out.stdout,
        out.stderr
    );
    let mut got = BTreeSet::new();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < until {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 2
        {
            got.insert(u16::from_be_bytes([buf[0], buf[1]]));
        }
    }
    got
}

/// The frames sent, the answers checked against what each expects, the
/// worker's skip counters (by reason) compared with `skips`, then a normal
/// query answered through XDP.
fn frames_then_a_query(
    lab: &Lab,
    python: &Path,
    ts: &mut Proc,
    server: IpAddr,
    frames: &[Crafted],
    skips: &[(&str, u64)],
) {
    let before = lab.metrics();
    let client: SocketAddr = match server {
        IpAddr::V4(_) => (C4.parse::<IpAddr>().unwrap(), 5400).into(),
        IpAddr::V6(_) => (C6.parse::<IpAddr>().unwrap(), 5400).into(),
    };
    let got = send_frames(lab, python, client, frames);
    for c in frames {
        assert_eq!(
            got.contains(&c.id),
            c.answered,
            "{}: answered {} (answers to {got:04x?})",
            c.what,
            got.contains(&c.id)
        );
    }
    ts.assert_running();
    let xdp_answered = frames
        .iter()
        .filter(|c| c.answered && !["IP options", "hop-by-hop header"].contains(&c.what))
        .count() as u64;
    let after = metrics_until(lab, |m| {
        xdp_of(m).answered >= xdp_of(&before).answered + xdp_answered
    });
    let all = [
        "short",
        "not_ip",
        "vlan_tagged",
        "bad_ip_header",
        "ip_options",
        "fragment",
        "extension_headers",
        "not_udp",
        "bad_length",
        "bad_checksum",
        "zero_checksum",
        "group_mac",
        "bad_source",
        "bad_destination",
    ];
    let mut counted = Vec::new();
    for reason in all {
        let grew = skipped(&after, reason) - skipped(&before, reason);
        let want = skips.iter().find(|(r, _)| *r == reason).map_or(0, |s| s.1);
        counted.push((reason, grew, want));
    }
    assert!(
        counted.iter().all(|(_, grew, want)| grew == want),
        "skipped by reason (reason, counted, expected): {counted:?}"
    );
    let (b, a) = (xdp_of(&before), xdp_of(&after));
    assert_eq!(
        a.answered - b.answered,
        xdp_answered,
        "answered through XDP: {b:?} -> {a:?}"
    );
    wait_xdp_answers(lab, server);
    ts.assert_running();
}

/// Whether a crafted frame carries a UDP checksum that does not verify:
/// left out where the kernel's and the XDP path's answers are compared, as
/// the XDP path does not verify it (checksum offload and veth leave partial
/// ones; Knot's and NSD's XDP modes do the same: docs/CONFIG.md, `xdp`).
fn bad_udp_checksum(c: &Crafted) -> bool {
    c.what.starts_with("bad UDP checksum")
}

/// The crafted frames `pick` chooses sent to a TS on IPv4, then to one on
/// IPv6; the worker's skips by reason must be `skips4`, then `skips6`.
fn crafted_frames(
    test: &str,
    pick: fn(&Crafted) -> bool,
    skips4: &[(&str, u64)],
    skips6: &[(&str, u64)],
) {
    let Some(ip) = netns_or_skip(test) else {
        return;
    };
    let Some([python]) = need(test, ["python3"]) else {
        return;
    };
    let lab = Lab::new(&ip, "x3");
    let frames = |src: &str, dst: &str| Frames {
        src_mac: Lab::mac(&lab.client, CLIENT_IF),
        dst_mac: Lab::mac(&lab.server, IFACE),
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        sport: 5400,
    };
    for (listen, server, frames, skips) in [
        (format!("{S4}:53"), S4, frames_v4(&frames(C4, S4)), skips4),
        (format!("[{S6}]:53"), S6, frames_v6(&frames(C6, S6)), skips6),
    ] {
        let frames: Vec<Crafted> = frames.into_iter().filter(pick).collect();
        let conf = lab.conf("t", &listen, "");
        let mut ts = lab.start(&conf, &[]);
        let server: IpAddr = server.parse().unwrap();
        wait_xdp_answers(&lab, server);
        frames_then_a_query(&lab, &python, &mut ts, server, &frames, skips);
        ts.stop(Duration::from_secs(10));
    }
}

#[test]
fn malformed_frames_never_wedge_a_worker() {
    crafted_frames(
        "malformed_frames_never_wedge_a_worker",
        |c| !bad_udp_checksum(c),
        &[("bad_length", 4), ("bad_checksum", 1), ("bad_source", 1)],
        &[("bad_length", 1), ("zero_checksum", 1), ("bad_source", 1)],
    );
}

#[test]
fn without_privilege_the_ts_says_why_once_and_serves_through_sockets() {
    const TEST: &str = "without_privilege_the_ts_says_why_once_and_serves_through_sockets";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([setpriv]) = need(TEST, ["setpriv"]) else {
        return;
    };
    let lab = Lab::new(&ip, "x4");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let wrap = [
        setpriv.to_str().unwrap(),
        "--bounding-set",
        "-bpf,-net_admin,-sys_admin",
    ];
    let ts = lab.start(&conf, &wrap);
    let q = wire(0x2222, "www.xdp.test", A, opt(1232, false));
    let to = SocketAddr::new(S4.parse().unwrap(), 53);
    let answer = in_netns(&lab.client.name, move || udp_ask(to, &q));
    let (answer, _) = answer.expect("an answer through sockets");
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.answers.len(), 2, "{}", crate::kit::show(&m));
    assert!(
        !lab.attached(),
        "a program attached without the capabilities"
    );
    assert_eq!(
        xdp_of(&lab.metrics()),
        Xdp::default(),
        "XDP counters without XDP"
    );
    let out = ts.stop(Duration::from_secs(10));
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("xdp:")).collect();
    assert!(
        lines.len() == 1
            && lines[0].contains("WARN")
            && lines[0].contains(IFACE)
            && lines[0].contains("serving it through sockets"),
        "the xdp lines: {lines:#?}\n{}",
        out.stderr
    );
    assert!(!lab.attached());
}

/// A stop with answers in flight through XDP (the `fault` delay's, 700 ms
/// each) sends them all before the TS exits, as its socket path does.
#[test]
fn a_stop_sends_the_delayed_answers_in_flight_through_xdp() {
    const TEST: &str = "a_stop_sends_the_delayed_answers_in_flight_through_xdp";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    const N: u16 = 30;
    let lab = Lab::new(&ip, "x9");
    let fault = "fault = { delay_ms = 700, delay_ratio = 1.0, drop_ratio = 0.0 }\n";
    let conf = lab.conf("t", &format!("{S4}:53"), fault);
    let s4: IpAddr = S4.parse().unwrap();
    let ts = lab.start(&conf, &[]);
    wait_xdp_answers(&lab, s4);
    let before = xdp_of(&lab.metrics()).to_user;
    let to = SocketAddr::new(s4, 53);
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let client = lab.client.name.clone();
    let asker = std::thread::spawn(move || {
        in_netns(&client, move || {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            for i in 0..N {
                let q = wire(0x4000 + i, "www.xdp.test", A, opt(1232, false));
                sock.send_to(&q, to).unwrap();
            }
            sent_tx.send(()).unwrap();
            let mut answered = BTreeSet::new();
            let mut buf = vec![0u8; 65_535];
            while answered.len() < usize::from(N) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    break;
                };
                if let Ok(m) = Message::from_vec(&buf[..n])
                    && m.response_code == ResponseCode::NoError
                    && !m.answers.is_empty()
                {
                    answered.insert(m.id);
                }
            }
            answered
        })
    });
    sent_rx.recv().unwrap();
    // Every query handed to the workers' socket, then the stop, long
    // before their answers are due.
    metrics_until(&lab, |m| xdp_of(m).to_user >= before + u64::from(N));
    let out = ts.stop(Duration::from_secs(15));
    let answered = asker.join().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        answered.len(),
        usize::from(N),
        "answered {answered:?}:\n{}",
        out.stderr
    );
    assert!(!lab.attached(), "still attached after SIGTERM");
}

#[test]
fn kill_9_leaves_nothing_attached_and_a_restart_serves_through_xdp_again() {
    const TEST: &str = "kill_9_leaves_nothing_attached_and_a_restart_serves_through_xdp_again";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let lab = Lab::new(&ip, "x5");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let s4: IpAddr = S4.parse().unwrap();
    let mut ts = lab.start(&conf, &[]);
    wait_xdp_answers(&lab, s4);
    assert!(lab.attached(), "no program while it runs");
    ts.kill_hard();
    let gone = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        (!lab.attached()).then_some(())
    });
    assert!(gone.is_some(), "still attached after kill -9");
    let ts = lab.start(&conf, &[]);
    wait_xdp_answers(&lab, s4);
    assert!(lab.attached());
    let out = ts.stop(Duration::from_secs(10));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!lab.attached(), "still attached after SIGTERM");
}

#[test]
fn a_ts_with_xdp_starts_every_time() {
    const TEST: &str = "a_ts_with_xdp_starts_every_time";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let lab = Lab::new(&ip, "x8");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let mut died = Vec::new();
    for i in 0..20 {
        let mut cmd = lab.server.command(
            Path::new(BIN),
            &["ts", "-c", conf.to_str().unwrap(), "--name", "t1"],
        );
        cmd.env("RUST_LOG", "info");
        let mut ts = Proc::spawn("dnslb ts", cmd);
        let ready = poll_until(START_LIMIT, Duration::from_millis(10), || {
            let log = ts.stderr_now();
            (log.contains("table server ready") || ts.exited().is_some()).then_some(())
        });
        assert!(ready.is_some());
        if ts.exited().is_some() {
            died.push((
                i,
                ts.stderr_now()
                    .lines()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        } else {
            ts.stop(Duration::from_secs(10));
        }
    }
    assert!(died.is_empty(), "starts that died: {died:#?}");
}

#[test]
fn the_shipped_xdp_object_is_its_source_built() {
    const TEST: &str = "the_shipped_xdp_object_is_its_source_built";
    if need(TEST, ["clang-14", "llvm-strip-14"]).is_none() {
        return;
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        crate::kit::skip(TEST, "libbpf-dev not installed (bpf/bpf_helpers.h)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnslb_xdp.o");
    let built = run(
        "bpf/build",
        {
            let mut c = Command::new(crate_dir().join("bpf/build"));
            c.arg(&out);
            c
        },
        None,
        Duration::from_secs(120),
    );
    assert!(
        built.status.success(),
        "bpf/build: {}{}",
        built.stdout,
        built.stderr
    );
    let shipped = std::fs::read(crate_dir().join("bpf/dnslb_xdp.o")).unwrap();
    let fresh = std::fs::read(&out).unwrap();
    assert!(
        shipped == fresh,
        "bpf/dnslb_xdp.o ({} bytes) is not what bpf/build makes of bpf/dnslb_xdp.c ({} bytes): run bpf/build",
        shipped.len(),
        fresh.len()
    );
}

#[test]
fn check_names_the_xdp_interface_or_says_sockets_will_serve_it() {
    const TEST: &str = "check_names_the_xdp_interface_or_says_sockets_will_serve_it";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let lab = Lab::new(&ip, "x7");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let check = |conf: &Path| {
        let cmd = lab
            .server
            .command(Path::new(BIN), &["check", "-c", conf.to_str().unwrap()]);
        run("dnslb check", cmd, None, Duration::from_secs(30))
    };
    let out = check(&conf);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "[[ts]] t1: xdp: {IFACE}: XDP with 1 AF_XDP socket (one per receive queue), MTU 1500"
        )),
        "{}",
        out.stderr
    );
    let missing = lab.dir.path().join("missing.toml");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace(IFACE, "nope0");
    std::fs::write(&missing, text).unwrap();
    let out = check(&missing);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("xdp: nope0: no such interface")
            && out.stderr.contains("the TS will serve it through sockets"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_says_sockets_will_serve_when_the_ts_could_not_open_af_xdp_sockets() {
    const TEST: &str = "check_says_sockets_will_serve_when_the_ts_could_not_open_af_xdp_sockets";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([setpriv]) = need(TEST, ["setpriv"]) else {
        return;
    };
    let lab = Lab::new(&ip, "x9");
    let conf = lab.conf("t", &format!("{S4}:53"), "");
    let wrap = [setpriv.to_str().unwrap(), "--bounding-set", "-net_raw"];
    let ts = lab.start(&conf, &wrap);
    let log = ts.stop(Duration::from_secs(10)).stderr;
    assert!(log.contains("serving it through sockets"), "{log}");
    let args = [
        "--bounding-set",
        "-net_raw",
        BIN,
        "check",
        "-c",
        conf.to_str().unwrap(),
    ];
    let out = run(
        "dnslb check",
        lab.server.command(&setpriv, &args),
        None,
        Duration::from_secs(30),
    );
    assert!(
        out.stderr.contains("the TS will serve it through sockets"),
        "the TS serves {IFACE} through sockets, and check said:\n{}",
        out.stderr
    );
}

/// The namespaces of DEPLOY.md's "XDP" walk; the test gives them names of
/// its own.
const WALK_NETNS: [&str; 2] = ["xdp-s", "xdp-c"];

#[test]
fn the_xdp_recipe_runs_as_written() {
    const TEST: &str = "the_xdp_recipe_runs_as_written";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    if need(TEST, ["dig", "curl"]).is_none() {
        return;
    }
    let dir = with_zones();
    let walk_ns = RecipeNetns::new(&ip, &WALK_NETNS);
    let rewrite = |text: &str| walk_ns.rewrite(text);
    let w = walk(
        "## XDP",
        dir.path(),
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        SETTLE,
    );
    w.assert_walked(1..=1, 12);
    for ns in &walk_ns.names {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "the walk left the namespace {ns}"
        );
    }
}

//! UDP through AF_XDP, over a veth pair between two network namespaces the
//! test makes (198.18.0.0/15 and 2001:2::/48, the benchmarking ranges):
//! the TS answers through XDP exactly as through its sockets (the same
//! query bytes from the client's namespace, which crosses the veth and the
//! XDP program, and from inside the server's, which goes through the
//! kernel's loopback to the socket), answers larger than the MTU leave
//! through the kernel, ping, TCP and other UDP ports pass by; the LS drops
//! clients outside `allow` in the program and answers the others, IPv6
//! included; without privilege one log line and sockets; `kill -9` leaves
//! no program behind and SIGTERM detaches it; the shipped object is its
//! source built.
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::kit::{
    BIN, Netns, Proc, crate_dir, dnslb_command, enter_netns, need, netns_or_skip, poll_until, skip,
};

const SERVER: &str = "198.18.0.1";
const CLIENT: &str = "198.18.0.2";
const SERVER6: &str = "2001:2::1";
const CLIENT6: &str = "2001:2::2";

/// Two namespaces joined by a veth pair, addressed; the server's interface name.
struct Pair {
    server: Netns,
    client: Netns,
    iface: String,
    client_iface: String,
    ip: std::path::PathBuf,
}

impl Pair {
    fn make(ip: &Path, tag: &str) -> Pair {
        let prefix = Netns::unique_prefix("x");
        let server = Netns::create(ip, &prefix, &format!("{tag}s"));
        let client = Netns::create(ip, &prefix, &format!("{tag}c"));
        let id = rand::random::<u16>();
        let iface = format!("xv{id:04x}s");
        server.veth(&iface, &client, &format!("xv{id:04x}c"));
        server.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", &iface]);
        server.ip(&[
            "addr",
            "add",
            &format!("{SERVER6}/64"),
            "dev",
            &iface,
            "nodad",
        ]);
        let cif = format!("xv{id:04x}c");
        client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", &cif]);
        client.ip(&[
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            &cif,
            "nodad",
        ]);
        Pair {
            server,
            client,
            iface,
            client_iface: cif,
            ip: ip.to_owned(),
        }
    }

    /// Whether an XDP program is on the server's interface.
    fn program_on(&self) -> bool {
        self.server
            .ip_output(&["link", "show", "dev", &self.iface])
            .contains("prog/xdp")
    }

    /// `dnslb ARGS` in `dir`, inside the server's namespace.
    fn dnslb(&self, name: &str, args: &[&str], dir: &Path) -> Proc {
        let inner = dnslb_command(args, dir);
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.server.name, BIN])
            .args(inner.get_args())
            .env("RUST_LOG", "info")
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
            .current_dir(dir);
        Proc::spawn(name, cmd)
    }
}

/// Waits for `proc`'s log to say the XDP path serves (or fails at once
/// when it says it does not).
fn wait_for_xdp(proc: &Proc) {
    let said = poll_until(Duration::from_secs(30), Duration::from_millis(50), || {
        let log = proc.stderr_now();
        assert!(
            !log.contains("serving it through sockets"),
            "XDP did not start: {log}"
        );
        log.contains("xdp: serving UDP through AF_XDP")
            .then_some(())
    });
    assert!(said.is_some(), "XDP never started: {}", proc.stderr_now());
}

/// `raw` sent over UDP from a socket inside namespace `ns` to `to`; the
/// answer's bytes, or `None` after `wait`.
fn ask_in(ns: &str, to: SocketAddr, raw: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let (ns, raw) = (ns.to_owned(), raw.to_vec());
    std::thread::spawn(move || {
        enter_netns(&ns);
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(wait)).unwrap();
        sock.send_to(&raw, to).unwrap();
        let mut buf = vec![0u8; 65_535];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
    .join()
    .unwrap()
}

/// A query for `name` `qtype`, ID `id`, with an OPT of `edns` bytes (and
/// DO when `dnssec`) when given.
fn query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>, dnssec: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// `curl -s URL` inside `ns`.
fn curl_in(ns: &Netns, url: &str) -> String {
    let out = Command::new(ns_ip())
        .args([
            "netns",
            "exec",
            &ns.name,
            "curl",
            "-s",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ns_ip() -> std::path::PathBuf {
    crate::kit::find_program("ip").unwrap()
}

/// The value of the sample `line_start` (name and labels) in `metrics`.
fn sample(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

const ZONE: &str = "$ORIGIN x.test.\n$TTL 300\n\
@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 198.18.0.1\n\
www A 192.0.2.1\nwww AAAA 2001:db8::1\nalias CNAME alias2\nalias2 CNAME www\n\
*.wild A 192.0.2.9\n";

/// The zone above with `n` TXT records of 100 bytes at `big`, and 10 at `mid`.
fn zone_with_big(n: usize) -> String {
    let mut z = ZONE.to_owned();
    for i in 0..n {
        z.push_str(&format!("big TXT \"{i:03}{}\"\n", "x".repeat(97)));
    }
    for i in 0..10 {
        z.push_str(&format!("mid TXT \"{i:03}{}\"\n", "x".repeat(97)));
    }
    z
}

/// The MTU of the pair in the byte-for-byte test: below the TS's largest
/// UDP answer (1232 bytes), so that some answers leave through the kernel.
const SMALL_MTU: usize = 1000;

#[test]
fn the_ts_answers_through_xdp_byte_for_byte_as_through_its_sockets() {
    const TEST: &str = "the_ts_answers_through_xdp_byte_for_byte_as_through_its_sockets";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let Some([_ping]) = need(TEST, ["ping"]) else {
        return;
    };
    let pair = Pair::make(&ip, "a");
    let mtu = SMALL_MTU.to_string();
    pair.server
        .ip(&["link", "set", "dev", &pair.iface, "mtu", &mtu]);
    pair.client
        .ip(&["link", "set", "dev", &pair.client_iface, "mtu", &mtu]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.test.zone"), zone_with_big(30)).unwrap();
    let config = format!(
        "[[ts]]\nname = \"t\"\nlisten = \"0.0.0.0:53\"\nzones = [\"x.test.zone\"]\n\
         axfr_allow = [\"198.18.0.0/15\"]\nmetrics = \"127.0.0.1:9100\"\nworkers = 1\n\
         dnssec = {{ keys = \"keys\" }}\nxdp = [\"{}\"]\n",
        pair.iface
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let ts = pair.dnslb(
        "ts",
        &["ts", "-c", "config.toml", "--name", "t"],
        dir.path(),
    );
    wait_for_xdp(&ts);
    let server: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let probe = query(1, "www.x.test.", RecordType::A, None, false);
    let up = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        ask_in(
            &pair.client.name,
            server,
            &probe,
            Duration::from_millis(200),
        )
    });
    assert!(up.is_some(), "never answered: {}", ts.stderr_now());
    assert!(
        pair.program_on(),
        "{}\n{}",
        pair.server.ip_output(&["link", "show", "dev", &pair.iface]),
        ts.stderr_now()
    );
    let metrics_url = "http://127.0.0.1:9100/metrics";
    let before = curl_in(&pair.server, metrics_url);
    let answered0 = sample(&before, "dnslb_ts_xdp_frames_total{result=\"answered\"}");
    let kernel0 = sample(&before, "dnslb_ts_xdp_frames_total{result=\"via_kernel\"}");

    let cases: &[(&str, RecordType, Option<u16>, bool)] = &[
        ("www.x.test.", RecordType::A, None, false),
        ("www.x.test.", RecordType::A, Some(1232), false),
        ("www.x.test.", RecordType::MX, Some(1232), false),
        ("nope.x.test.", RecordType::A, Some(1232), true),
        ("alias.x.test.", RecordType::A, Some(1232), false),
        ("a.b.wild.x.test.", RecordType::A, Some(1232), true),
        ("x.test.", RecordType::ANY, Some(1232), false),
        ("x.test.", RecordType::SOA, Some(1232), true),
        ("x.test.", RecordType::DNSKEY, Some(1232), true),
        ("big.x.test.", RecordType::TXT, None, false),
        ("big.x.test.", RecordType::TXT, Some(512), false),
        ("mid.x.test.", RecordType::TXT, Some(1232), false),
        ("mid.x.test.", RecordType::TXT, Some(1232), true),
    ];
    let (mut sent, mut too_big) = (0, 0);
    for (i, (name, qtype, edns, dnssec)) in cases.iter().enumerate() {
        let raw = query(100 + i as u16, name, *qtype, *edns, *dnssec);
        let xdp = ask_in(&pair.client.name, server, &raw, Duration::from_secs(5));
        let sock = ask_in(&pair.server.name, server, &raw, Duration::from_secs(5));
        assert!(xdp.is_some(), "{name} {qtype}: no answer through XDP");
        assert_eq!(
            xdp, sock,
            "{name} {qtype} {edns:?} DO={dnssec}: XDP and sockets differ"
        );
        sent += 1;
        // With the IPv4 and UDP headers, a longer answer exceeds the MTU.
        if xdp.is_some_and(|a| a.len() + 28 > SMALL_MTU) {
            too_big += 1;
        }
    }
    // Truncated at 512: the TC bit, then the same question over TCP, which
    // the program leaves to the kernel.
    let tc = Message::from_vec(
        &ask_in(
            &pair.client.name,
            server,
            &query(7, "big.x.test.", RecordType::TXT, Some(512), false),
            Duration::from_secs(5),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(tc.truncation);
    sent += 1;
    let dig = Command::new(&ip)
        .args([
            "netns",
            "exec",
            &pair.client.name,
            "dig",
            "+tcp",
            "+short",
            "+time=5",
            "@198.18.0.1",
            "big.x.test.",
            "TXT",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).lines().count(),
        30,
        "TCP answer"
    );
    let after = curl_in(&pair.server, metrics_url);
    let answered = sample(&after, "dnslb_ts_xdp_frames_total{result=\"answered\"}") - answered0;
    let kernel = sample(&after, "dnslb_ts_xdp_frames_total{result=\"via_kernel\"}") - kernel0;
    assert!(too_big >= 1, "no answer was larger than the MTU");
    assert_eq!(
        kernel, too_big,
        "the answers larger than the MTU went through the kernel (fragmented)"
    );
    assert_eq!(
        answered,
        sent - too_big,
        "every other UDP answer went through XDP"
    );
    let m = Message::from_vec(&up.unwrap()).unwrap();
    assert_eq!(m.response_code, ResponseCode::NoError);

    // Ping, and another UDP port of the same address, pass by the program.
    let ping = Command::new(&ip)
        .args([
            "netns",
            "exec",
            &pair.client.name,
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            SERVER,
        ])
        .output()
        .unwrap();
    assert!(ping.status.success(), "ping: {ping:?}");
    let echo_ns = pair.server.name.clone();
    let echo = std::thread::spawn(move || {
        enter_netns(&echo_ns);
        let s = UdpSocket::bind(format!("{SERVER}:5353")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        s.send_to(&buf[..n], from).unwrap();
    });
    let back = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        ask_in(
            &pair.client.name,
            format!("{SERVER}:5353").parse().unwrap(),
            b"ping",
            Duration::from_millis(300),
        )
    });
    echo.join().unwrap();
    assert_eq!(back.as_deref(), Some(&b"ping"[..]));

    // SIGTERM: the program is gone with the process.
    let out = ts.stop(Duration::from_secs(10));
    assert!(
        out.status.success() || out.status.code().is_none(),
        "{out:?}"
    );
    assert!(!pair.program_on(), "the program outlived the TS");
}

#[test]
fn the_ls_drops_clients_outside_allow_in_the_program_and_answers_the_rest() {
    const TEST: &str = "the_ls_drops_clients_outside_allow_in_the_program_and_answers_the_rest";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "l");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.test.zone"), ZONE).unwrap();
    // IPv4 clients are outside `allow`; IPv6 ones inside.
    let config = format!(
        "[ls]\nlisten = [\"{SERVER}:53\", \"[{SERVER6}]:53\"]\nworkers = 1\n\
         metrics = \"127.0.0.1:9101\"\nallow = [\"127.0.0.0/8\", \"2001:2::/64\"]\n\n\
         [ls.xdp]\ninterfaces = [\"{}\"]\n\n\
         [[ls.backend]]\nname = \"t\"\naddr = \"127.0.0.1:5301\"\n\n\
         [[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"x.test.zone\"]\n",
        pair.iface
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let ls = pair.dnslb("up", &["up", "-c", "config.toml"], dir.path());
    wait_for_xdp(&ls);
    let v6: SocketAddr = format!("[{SERVER6}]:53").parse().unwrap();
    let raw = query(42, "alias.x.test.", RecordType::A, Some(1232), false);
    let answer = poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        ask_in(&pair.client.name, v6, &raw, Duration::from_millis(300)).filter(|a| {
            Message::from_vec(a)
                .is_ok_and(|m| m.response_code == ResponseCode::NoError && m.answers.len() == 3)
        })
    });
    assert!(
        answer.is_some(),
        "IPv6 client not answered: {}",
        ls.stderr_now()
    );
    // The IPv4 client: dropped in the program, counted as the ACL's.
    let v4: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    assert_eq!(
        ask_in(&pair.client.name, v4, &raw, Duration::from_secs(1)),
        None
    );
    let dropped = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let m = curl_in(&pair.server, "http://127.0.0.1:9101/metrics");
        (sample(&m, "dnslb_xdp_program_total{what=\"not_allowed\"}") >= 1
            && sample(&m, "dnslb_refused_acl_total") >= 1)
            .then_some(())
    });
    assert!(dropped.is_some(), "the program's drop was not counted");
    let m = curl_in(&pair.server, "http://127.0.0.1:9101/metrics");
    assert!(
        sample(&m, "dnslb_xdp_frames_total{result=\"answered\"}") >= 1,
        "{m}"
    );
    drop(ls);
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
    let pair = Pair::make(&ip, "p");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.test.zone"), ZONE).unwrap();
    let config = format!(
        "[[ts]]\nname = \"t\"\nlisten = \"{SERVER}:53\"\nzones = [\"x.test.zone\"]\nworkers = 1\nxdp = [\"{}\"]\n",
        pair.iface
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut cmd = Command::new(&ip);
    cmd.args(["netns", "exec", &pair.server.name])
        .arg(setpriv)
        .args([
            "--bounding-set",
            "-bpf,-net_admin,-sys_admin",
            "--inh-caps",
            "-bpf,-net_admin,-sys_admin",
        ])
        .args([BIN, "ts", "-c", "config.toml", "--name", "t"])
        .env("RUST_LOG", "info")
        .current_dir(dir.path());
    let ts = Proc::spawn("ts", cmd);
    let server: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let raw = query(5, "www.x.test.", RecordType::A, None, false);
    let up = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        ask_in(&pair.client.name, server, &raw, Duration::from_millis(200))
    });
    assert!(
        up.is_some(),
        "not answered through sockets: {}",
        ts.stderr_now()
    );
    // Ready (the last line of a start) once the XDP path said why not.
    let ready = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        ts.stderr_now().contains("table server ready").then_some(())
    });
    assert!(ready.is_some(), "{}", ts.stderr_now());
    let log = ts.stderr_now();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("xdp:")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("serving it through sockets") && lines[0].contains(&pair.iface),
        "{log}"
    );
    assert!(!pair.program_on());
}

#[test]
fn kill_9_leaves_no_program_and_a_restart_serves_through_xdp_again() {
    const TEST: &str = "kill_9_leaves_no_program_and_a_restart_serves_through_xdp_again";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    let pair = Pair::make(&ip, "k");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.test.zone"), ZONE).unwrap();
    let config = format!(
        "[[ts]]\nname = \"t\"\nlisten = \"{SERVER}:53\"\nzones = [\"x.test.zone\"]\nworkers = 1\n\
         metrics = \"127.0.0.1:9102\"\nxdp = [\"{}\"]\n",
        pair.iface
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let server: SocketAddr = format!("{SERVER}:53").parse().unwrap();
    let raw = query(6, "www.x.test.", RecordType::A, None, false);
    let answered_through_xdp = |ts: &Proc| {
        wait_for_xdp(ts);
        let up = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            ask_in(&pair.client.name, server, &raw, Duration::from_millis(200))
        });
        assert!(up.is_some(), "never answered: {}", ts.stderr_now());
        let m = curl_in(&pair.server, "http://127.0.0.1:9102/metrics");
        sample(&m, "dnslb_ts_xdp_frames_total{result=\"answered\"}")
    };
    let mut ts = pair.dnslb(
        "ts",
        &["ts", "-c", "config.toml", "--name", "t"],
        dir.path(),
    );
    assert!(answered_through_xdp(&ts) >= 1);
    assert!(pair.program_on());
    ts.kill_hard();
    let gone = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (!pair.program_on()).then_some(())
    });
    assert!(gone.is_some(), "the program outlived a kill -9");
    let ts = pair.dnslb(
        "ts",
        &["ts", "-c", "config.toml", "--name", "t"],
        dir.path(),
    );
    assert!(answered_through_xdp(&ts) >= 1, "{}", ts.stderr_now());
    ts.stop(Duration::from_secs(10));
    assert!(!pair.program_on());
}

#[test]
fn the_shipped_xdp_object_is_its_source_built() {
    const TEST: &str = "the_shipped_xdp_object_is_its_source_built";
    let Some([_clang, _strip]) = need(TEST, ["clang-14", "llvm-strip-14"]) else {
        return;
    };
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        skip(TEST, "libbpf-dev (bpf_helpers.h) not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dnslb_xdp.o");
    let built = Command::new(crate_dir().join("bpf/build"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(built.status.success(), "bpf/build: {built:?}");
    let shipped = std::fs::read(crate_dir().join("bpf/dnslb_xdp.o")).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == shipped,
        "bpf/dnslb_xdp.o is not bpf/dnslb_xdp.c built: run bpf/build and commit it"
    );
}

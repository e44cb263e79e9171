//! An anycast fleet in network namespaces, the pieces its tests share: the
//! router ([`Router`]: BIRD with ECMP, `merge paths`, L4 multipath hashing,
//! BGP + BFD to each LS host), the LS hosts ([`LsHost`]: the service address
//! on `lo`, deploy/anycast/bird.conf, `dnslb ls` and `dnslb anycast`), a
//! checker asking through the router from several source addresses and
//! validating every answer ([`Checker`]), dnsperf run inside a namespace
//! ([`Dnsperf`]), and one query or `/metrics` read from inside a namespace.
//!
//! Addresses: the router's link `net` is 10.99.NET.0/30 and fd99:NET::/64,
//! the router at .1 / ::1, the namespace at .2 / ::2; LS host `i` is on
//! net `i` (deploy/anycast/bird.conf's 10.99.1.x made to host `i`).
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use super::netns::{Bird, Netns, enter_netns};
use super::procs::{BIN, Output, Proc, Resume, poll_until};

/// The anycast service addresses every LS host announces.
pub const SERVICE4: &str = "192.0.2.53";
pub const SERVICE6: &str = "2001:db8:53::53";

/// The router's BIRD: BFD, both kernel tables with `merge paths on`, and a
/// BGP session per family to each of `hosts` LS hosts (AS 6510i).
///
/// Its BFD is slower than the hosts' (300 ms, multiplier 5: a session is
/// declared down after 0.9 s of silence at the router, 1.5 s at a host):
/// with 100 ms x 3 on both sides, a machine loaded by a parallel build
/// (load 17 on 2 cores) dropped sessions, and a BGP session BFD brought
/// down stays idle for BIRD's `error wait time`, longer than a test waits.
/// Withdrawals do not wait for BFD: the probe disables the static route.
pub fn router_bird_conf(hosts: usize) -> String {
    let mut c = String::from(
        "router id 10.99.0.1;\nlog stderr all;\nprotocol device {}\n\
         protocol bfd { interface \"*\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 5; }; }\n\
         protocol kernel { ipv4 { export all; }; merge paths on; }\n\
         protocol kernel { ipv6 { export all; }; merge paths on; }\n",
    );
    for i in 1..=hosts {
        c.push_str(&format!(
            "protocol bgp l{i}v4 {{ local as 65000; neighbor 10.99.{i}.2 as 6510{i}; bfd on; error wait time 1, 5; ipv4 {{ import all; export none; }}; }}\n\
             protocol bgp l{i}v6 {{ local as 65000; neighbor fd99:{i}::2 as 6510{i}; bfd on; error wait time 1, 5; ipv6 {{ import all; export none; }}; }}\n"
        ));
    }
    c
}

/// deploy/anycast/bird.conf, made to host `i`'s addresses, logging to stderr.
pub fn ls_host_bird_conf(i: usize) -> String {
    let shipped =
        std::fs::read_to_string(super::crate_dir().join("deploy/anycast/bird.conf")).unwrap();
    shipped
        .replace("10.99.1.2", &format!("10.99.{i}.2"))
        .replace("10.99.1.1", &format!("10.99.{i}.1"))
        .replace("fd99:1::2", &format!("fd99:{i}::2"))
        .replace("fd99:1::1", &format!("fd99:{i}::1"))
        .replace("as 65101", &format!("as 6510{i}"))
        .replace("log syslog all;", "log stderr all;")
}

/// The router namespace (forwarding, L4 multipath hashing) and, once
/// started, its BIRD. Field order is drop order: BIRD before the namespace.
pub struct Router {
    pub bird: Option<Bird>,
    pub ns: Netns,
}

impl Router {
    pub fn create(ip: &Path, prefix: &str) -> Router {
        let ns = Netns::create(ip, prefix, "r");
        ns.sysctl(&[
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ]);
        Router { bird: None, ns }
    }

    /// A veth from the router (`n{net}`) to `ns` (`eth0`) on link `net`;
    /// `ns`'s default routes go through the router.
    pub fn link(&self, ns: &Netns, net: u8) {
        let r_if = format!("n{net}");
        self.ns.veth(&r_if, ns, "eth0");
        let (v4, v6) = (format!("10.99.{net}"), format!("fd99:{net}:"));
        self.ns
            .ip(&["addr", "add", &format!("{v4}.1/30"), "dev", &r_if]);
        self.ns
            .ip(&["addr", "add", &format!("{v6}:1/64"), "dev", &r_if, "nodad"]);
        ns.ip(&["addr", "add", &format!("{v4}.2/30"), "dev", "eth0"]);
        ns.ip(&["addr", "add", &format!("{v6}:2/64"), "dev", "eth0", "nodad"]);
        ns.ip(&["route", "add", "default", "via", &format!("{v4}.1")]);
        ns.ip(&["-6", "route", "add", "default", "via", &format!("{v6}:1")]);
    }

    /// The client namespace's link: 10.99.100.0/24, the router at .1, the
    /// client at .2 and at each of `extra` more addresses (.3, .4, ...).
    pub fn link_client(&self, client: &Netns, extra: u8) -> Vec<IpAddr> {
        self.ns.veth("cl", client, "eth0");
        self.ns.ip(&["addr", "add", "10.99.100.1/24", "dev", "cl"]);
        self.ns
            .ip(&["addr", "add", "fd99:100::1/64", "dev", "cl", "nodad"]);
        let sources: Vec<IpAddr> = (2..3 + extra)
            .map(|h| IpAddr::V4(Ipv4Addr::new(10, 99, 100, h)))
            .collect();
        for s in &sources {
            client.ip(&["addr", "add", &format!("{s}/24"), "dev", "eth0"]);
        }
        client.ip(&["addr", "add", "fd99:100::2/64", "dev", "eth0", "nodad"]);
        client.ip(&["route", "add", "default", "via", "10.99.100.1"]);
        client.ip(&["-6", "route", "add", "default", "via", "fd99:100::1"]);
        sources
    }

    /// Starts the router's BIRD ([`router_bird_conf`]) for `hosts` LS hosts.
    pub fn start_bird(&mut self, bird: &Path, birdc: &Path, dir: &Path, hosts: usize) {
        let conf = router_bird_conf(hosts);
        self.bird = Some(Bird::start(&self.ns, bird, birdc, dir, "router", &conf));
    }

    /// The LS hosts (by number, of `hosts`) the router's route to the
    /// service address of the family leads to now.
    pub fn next_hops(&self, v6: bool, hosts: usize) -> Vec<usize> {
        let (family, service) = if v6 {
            ("-6", SERVICE6)
        } else {
            ("-4", SERVICE4)
        };
        let table = self.ns.ip_output(&[family, "route", "show", service]);
        (1..=hosts)
            .filter(|i| {
                let gw = if v6 {
                    format!("via fd99:{i}::2 ")
                } else {
                    format!("via 10.99.{i}.2 ")
                };
                table.contains(&gw)
            })
            .collect()
    }

    /// Waits until both service routes lead to exactly `want` (sorted);
    /// how long it took.
    pub fn wait_hops(&self, want: &[usize], hosts: usize, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        poll_until(limit, Duration::from_millis(10), || {
            (self.next_hops(false, hosts) == want && self.next_hops(true, hosts) == want)
                .then(|| t.elapsed())
        })
    }

    /// The router's routes and BGP sessions, for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!("router: {}\n", self.ns.ip_output(&["route"]));
        if let Some(b) = &self.bird {
            text.push_str(&b.birdc(&["show", "protocols"]));
        }
        text
    }
}

/// Two failures in a row, as the anycast tests cause them ([`kill_then_stop`]):
/// when each began, how long the router took to withdraw the host, when
/// the withdrawal was seen.
pub struct Failures {
    pub t_kill: Instant,
    pub took_kill: Duration,
    pub end_kill: Instant,
    pub t_stop: Instant,
    pub took_stop: Duration,
    pub end_stop: Instant,
}

impl Failures {
    /// Both hosts were withdrawn within `limit`.
    pub fn assert_withdrawn_within(&self, limit: Duration) {
        assert!(
            self.took_kill < limit,
            "kill -9: withdrawn after {:?}",
            self.took_kill
        );
        assert!(
            self.took_stop < limit,
            "SIGSTOP: withdrawn after {:?}",
            self.took_stop
        );
    }
}

/// kill -9 of host 1's LS, then SIGSTOP of host 2's, each followed until
/// `router` leads to the hosts left only (at most `limit` each): the
/// windows and host 2's [`Resume`] (dropped: its LS runs again), or which
/// host was never withdrawn.
pub fn kill_then_stop(
    router: &Router,
    hosts: &mut [LsHost],
    limit: Duration,
) -> Result<(Failures, Resume), &'static str> {
    let n = hosts.len();
    let t_kill = Instant::now();
    hosts[0].ls.kill_hard();
    let rest: Vec<usize> = (2..=n).collect();
    let took_kill =
        (router.wait_hops(&rest, n, limit)).ok_or("host 1 never withdrawn after kill -9")?;
    let end_kill = Instant::now();
    let resume = hosts[1].ls.pause();
    let t_stop = Instant::now();
    let took_stop =
        (router.wait_hops(&rest[1..], n, limit)).ok_or("host 2 never withdrawn after SIGSTOP")?;
    let w = Failures {
        t_kill,
        took_kill,
        end_kill,
        t_stop,
        took_stop,
        end_stop: Instant::now(),
    };
    Ok((w, resume))
}

/// A rolling restart's step for `hosts[k]`: SIGTERM to its LS, the router
/// leading to the other hosts only (within `withdraw`), the LS ending
/// cleanly once drained (within `drain`), started again and announced
/// (within `converge`): how long the withdrawal and the announcement took,
/// or what went wrong.
pub fn restart_by_term(
    router: &Router,
    hosts: &mut [LsHost],
    k: usize,
    [withdraw, drain, converge]: [Duration; 3],
) -> Result<(Duration, Duration), String> {
    let (n, i) = (hosts.len(), k + 1);
    hosts[k].ls.signal(rustix::process::Signal::TERM);
    let others: Vec<usize> = (1..=n).filter(|&j| j != i).collect();
    let withdrawn = (router.wait_hops(&others, n, withdraw))
        .ok_or_else(|| format!("host {i} not withdrawn after SIGTERM"))?;
    // Still answering while it drains, then gone.
    let gone = hosts[k].ls.wait_exit(drain);
    if !gone.is_some_and(|s| s.success()) {
        return Err(format!("host {i}'s LS after SIGTERM: {gone:?}"));
    }
    hosts[k].restart_ls();
    let all: Vec<usize> = (1..=n).collect();
    let back = (router.wait_hops(&all, n, converge))
        .ok_or_else(|| format!("host {i} never announced again"))?;
    Ok((withdrawn, back))
}

/// One LS host: its namespace linked to the router on net `i`, the service
/// addresses on `lo` (always local, announced or not), BIRD on the shipped
/// config, `dnslb ls` and `dnslb anycast` on `dir/ls.toml`. Field order is
/// drop order: processes first, the namespace last.
pub struct LsHost {
    pub i: usize,
    pub dir: PathBuf,
    pub ls: Proc,
    pub probe: Proc,
    pub bird: Bird,
    pub ns: Netns,
}

impl LsHost {
    /// Makes the host; `ls_conf` gets BIRD's control socket and returns the
    /// LS's config.
    pub fn start(
        router: &Router,
        ip: &Path,
        prefix: &str,
        i: usize,
        [bird, birdc]: [&Path; 2],
        parent: &Path,
        ls_conf: &dyn Fn(&Path) -> String,
    ) -> LsHost {
        let ns = Netns::create(ip, prefix, &format!("l{i}"));
        router.link(&ns, u8::try_from(i).unwrap());
        ns.ip(&["addr", "add", &format!("{SERVICE4}/32"), "dev", "lo"]);
        ns.ip(&["addr", "add", &format!("{SERVICE6}/128"), "dev", "lo"]);
        let dir = parent.join(format!("l{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bird = Bird::start(&ns, bird, birdc, &dir, "bird", &ls_host_bird_conf(i));
        std::fs::write(dir.join("ls.toml"), ls_conf(&bird.socket)).unwrap();
        let ls = LsHost::start_ls(&ns, &dir, i);
        let conf = dir.join("ls.toml");
        let probe = Proc::spawn(
            &format!("anycast{i}"),
            ns.command(Path::new(BIN), &["anycast", "-c", conf.to_str().unwrap()]),
        );
        LsHost {
            i,
            dir,
            ls,
            probe,
            bird,
            ns,
        }
    }

    fn start_ls(ns: &Netns, dir: &Path, i: usize) -> Proc {
        let conf = dir.join("ls.toml");
        Proc::spawn(
            &format!("ls{i}"),
            ns.command(Path::new(BIN), &["ls", "-c", conf.to_str().unwrap()]),
        )
    }

    /// A new `dnslb ls` in place of the one that ended.
    pub fn restart_ls(&mut self) {
        self.ls = LsHost::start_ls(&self.ns, &self.dir, self.i);
    }

    /// Its LS's, probe's and BIRD's logs, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- host {}\nls: {}\nanycast: {}\nbird: {}\n{}",
            self.i,
            self.ls.stderr_now(),
            self.probe.stderr_now(),
            self.bird.proc.stderr_now(),
            self.bird.birdc(&["show", "protocols"]),
        )
    }

    /// The probe stopped (SIGTERM), the LS killed.
    pub fn stop(&mut self) {
        self.probe.signal(rustix::process::Signal::TERM);
        assert!(self.probe.wait_exit(Duration::from_secs(5)).is_some());
        self.ls.kill_hard();
    }
}

/// Runs `f` on a thread of its own inside `ns` (its sockets live there).
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(&ns.name);
            f()
        })
        .join()
        .unwrap()
    })
}

/// `name qtype` asked of `server` over UDP from inside `ns`.
pub fn ask_in(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let bytes = m.to_vec().unwrap();
    in_netns(ns, || {
        let bind = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(server).ok()?;
        s.set_read_timeout(Some(wait)).ok()?;
        s.send(&bytes).ok()?;
        let mut buf = [0u8; 4096];
        let len = s.recv(&mut buf).ok()?;
        Message::from_vec(&buf[..len]).ok()
    })
}

/// The body of `GET path` at `addr` from inside `ns` (None: no answer).
pub fn http_get_in(ns: &Netns, addr: SocketAddr, path: &str) -> Option<String> {
    in_netns(ns, || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
    })
}

/// The value of the sample `name` with `labels` on the `/metrics` at `addr`
/// inside `ns` (0 when the family has no such sample yet).
pub fn metric_in(ns: &Netns, addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let body = http_get_in(ns, addr, "/metrics")
        .unwrap_or_else(|| panic!("no /metrics at {addr} in {}", ns.name));
    let e = super::parse_exposition(&body);
    if super::matching(&e, name, labels).is_empty() {
        return 0.0;
    }
    super::value(&e, name, labels)
}

/// One query the checker sent: when, and what came back (None: lost;
/// Some(false): a wrong answer).
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub at: Instant,
    pub right: Option<bool>,
}

/// A client inside a namespace: a thread per source address asking `to`
/// for each name of a list in turn (A), one query at a time from 8 source
/// ports in turn, 2 ms apart, and checking every answer: right when it is
/// NOERROR with exactly the name's address. Every query is recorded.
pub struct Checker {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A checker's wait for one answer.
pub const CHECK_WAIT: Duration = Duration::from_millis(500);

impl Checker {
    pub fn start(
        ns: &Netns,
        sources: &[IpAddr],
        to: SocketAddr,
        names: &[(String, Ipv4Addr)],
    ) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let names: Arc<Vec<(Vec<u8>, Ipv4Addr)>> =
            Arc::new(names.iter().map(|(n, a)| (query_bytes(n), *a)).collect());
        let threads = sources
            .iter()
            .enumerate()
            .map(|(t, &source)| {
                let (stop, log, names, ns) =
                    (stop.clone(), log.clone(), names.clone(), ns.name.clone());
                std::thread::spawn(move || {
                    enter_netns(&ns);
                    check_loop(t, source, to, &names, &stop, &log);
                })
            })
            .collect();
        Checker { stop, log, threads }
    }

    /// Every query recorded so far.
    pub fn snapshot(&self) -> Vec<Sent> {
        self.log.lock().unwrap().clone()
    }

    /// Stops the threads; every query they sent.
    pub fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn query_bytes(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// `n` UDP sockets bound to `source` (any port) and connected to `to`,
/// each read giving up after `wait`.
pub fn connected_udp(source: IpAddr, to: SocketAddr, n: usize, wait: Duration) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind(SocketAddr::new(source, 0)).unwrap();
            s.connect(to).unwrap();
            s.set_read_timeout(Some(wait)).unwrap();
            s
        })
        .collect()
}

/// Sends `q` on `sock` and reads answers until `judge` makes something of
/// one; `None` (the query lost) when the send or a read fails (a refused
/// port, a read timed out) or `wait` has passed.
pub fn exchange_judged<T>(
    sock: &UdpSocket,
    q: &[u8],
    wait: Duration,
    mut judge: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let at = Instant::now();
    sock.send(q).ok()?;
    let mut buf = [0u8; 1500];
    loop {
        let len = sock.recv(&mut buf).ok()?;
        if let Some(got) = judge(&buf[..len]) {
            return Some(got);
        }
        if at.elapsed() > wait {
            return None;
        }
    }
}

fn check_loop(
    t: usize,
    source: IpAddr,
    to: SocketAddr,
    names: &[(Vec<u8>, Ipv4Addr)],
    stop: &AtomicBool,
    log: &Mutex<Vec<Sent>>,
) {
    let socks = connected_udp(source, to, 8, CHECK_WAIT);
    let mut n: usize = 0;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        let sock = &socks[n % socks.len()];
        let (query, want) = &names[n % names.len()];
        let id = u16::try_from(t & 0xf).unwrap() << 12 | u16::try_from(n & 0x0fff).unwrap();
        let mut q = query.clone();
        q[..2].copy_from_slice(&id.to_be_bytes());
        let at = Instant::now();
        let right = exchange_judged(sock, &q, CHECK_WAIT, |raw| judge(raw, id, *want));
        log.lock().unwrap().push(Sent { at, right });
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// None: not the answer to `id` (a late one: keep waiting); else whether it
/// is NOERROR with exactly `want`.
fn judge(raw: &[u8], id: u16, want: Ipv4Addr) -> Option<bool> {
    let Ok(m) = Message::from_vec(raw) else {
        return Some(false);
    };
    if m.metadata.id != id {
        return None;
    }
    let addrs = super::a_addrs(&m);
    Some(m.metadata.response_code == hickory_proto::op::ResponseCode::NoError && addrs == [want])
}

/// Counts of `sent` between `from` and `to`: (sent, lost, wrong).
pub fn tally(sent: &[Sent], from: Instant, to: Instant) -> (usize, usize, usize) {
    let inside: Vec<&Sent> = sent.iter().filter(|s| s.at >= from && s.at <= to).collect();
    let lost = inside.iter().filter(|s| s.right.is_none()).count();
    let wrong = inside.iter().filter(|s| s.right == Some(false)).count();
    (inside.len(), lost, wrong)
}

/// The checker's log per second from `t0`: "second: sent lost wrong" lines.
pub fn per_second(sent: &[Sent], t0: Instant) -> String {
    let mut rows: std::collections::BTreeMap<u64, (usize, usize, usize)> = Default::default();
    for s in sent {
        let sec = s.at.saturating_duration_since(t0).as_secs();
        let r = rows.entry(sec).or_default();
        r.0 += 1;
        r.1 += usize::from(s.right.is_none());
        r.2 += usize::from(s.right == Some(false));
    }
    rows.iter()
        .map(|(sec, (n, lost, wrong))| {
            format!("{sec:>3}s sent {n:>5} lost {lost:>4} wrong {wrong}\n")
        })
        .collect()
}

/// dnsperf running inside a namespace from one source address, until
/// [`Dnsperf::stop`].
pub struct Dnsperf {
    proc: Proc,
}

/// What dnsperf said at the end.
#[derive(Debug)]
pub struct DnsperfStats {
    pub sent: u64,
    pub lost: u64,
    /// Its "Response codes:" line.
    pub rcodes: String,
    pub text: String,
}

impl Dnsperf {
    /// `dnsperf -s SERVER -a SOURCE -c 128 -Q QPS -t 1` on `data` (a file of
    /// "NAME TYPE" lines), for at most 10 minutes: a query unanswered after
    /// 1 s is lost. 128 sockets, 128 source ports: the routers' L4 hash
    /// spreads flows, not queries, and the test asserts each of 3 paths got
    /// over a sixth of the queries. With the checker's 24 flows beside
    /// (about as many queries), some path got less in ~0.9 % of runs with
    /// 32 sockets (CI saw [1454, 1132, 440]), ~0.04 % with 128 (exact
    /// multinomial: ~6 % and ~0.004 % from dnsperf's flows alone).
    pub fn start(
        dnsperf: &Path,
        ns: &Netns,
        server: &str,
        source: &str,
        data: &Path,
        qps: u32,
    ) -> Dnsperf {
        let qps = qps.to_string();
        let args = [
            "-s",
            server,
            "-a",
            source,
            "-d",
            data.to_str().unwrap(),
            "-c",
            "128",
            "-Q",
            &qps,
            "-l",
            "600",
            "-t",
            "1",
        ];
        Dnsperf {
            proc: Proc::spawn("dnsperf", ns.command(dnsperf, &args)),
        }
    }

    /// SIGINT (it stops sending and prints its statistics); those.
    pub fn stop(mut self) -> DnsperfStats {
        self.proc.signal(rustix::process::Signal::INT);
        let out: Output = self.proc.finish(Duration::from_secs(10));
        let text = out.stdout.clone();
        let field = |label: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("dnsperf said no {label}:\n{text}\n{}", out.stderr))
        };
        DnsperfStats {
            sent: field("Queries sent:"),
            lost: field("Queries lost:"),
            rcodes: text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Response codes:"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            text: text.clone(),
        }
    }
}

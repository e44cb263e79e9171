//! `dnslb` run as child processes, as the process tests see it: the names
//! of the `tests/data/ls` fixtures, readiness by a right answer, a
//! connected-socket client, the log of `dnslb up` (its children's PIDs)
//! and `/proc` state.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use super::client::{a_addrs, query_rd, udp_exchange_raw};
use super::procs::{Proc, local, poll_until, poll_until_async};

/// How long a server may take to answer its first query.
pub const READY_LIMIT: Duration = Duration::from_secs(10);
/// One poll's wait for an answer.
pub const POLL_WAIT: Duration = Duration::from_millis(250);

/// Names of ts1 (only there) and the address each has.
pub const TS1_NAMES: &[(&str, &str)] = &[
    ("www.example.com", "192.0.2.10"),
    ("WwW.ExPress.CO.Uk", "192.0.2.21"),
    ("mail.example.org", "192.0.2.25"),
    ("API.example.IO", "203.0.113.8"),
];

/// Names of ts2 (only there) and the address each has.
pub const TS2_NAMES: &[(&str, &str)] = &[
    ("www.example.org", "198.51.100.10"),
    ("news.bbc.example.co.uk", "198.51.100.77"),
    ("Store.Example.COM", "192.0.2.140"),
    ("smtp.example.io", "198.51.100.25"),
];

/// Asks `addr` for `name` A over UDP (EDNS 1232) with a random ID from a
/// fresh socket connected to `addr` ([`udp_exchange_raw`]); `None`
/// after `wait`, or at once when the port is unreachable.
pub async fn udp_ask(addr: SocketAddr, name: &str, wait: Duration) -> Option<Message> {
    let q = query_rd(name, RecordType::A, false);
    let raw = udp_exchange_raw(addr, &q, wait).await?;
    Some(Message::from_vec(&raw).expect("a DNS message"))
}

/// A NOERROR answer whose A records are exactly `ip`.
pub fn answers_with(m: &Message, ip: &str) -> bool {
    m.response_code == ResponseCode::NoError && a_addrs(m) == [ip.parse::<Ipv4Addr>().unwrap()]
}

/// The Extended DNS Error of `m`: (info code, text).
pub fn ede(m: &Message) -> Option<(u16, String)> {
    let opt = m.edns.as_ref()?.options();
    match opt.get(EdnsCode::from(15)) {
        Some(EdnsOption::Unknown(15, data)) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// Polls `addr` for `name` A over UDP until it answers with exactly `ip`,
/// for up to [`READY_LIMIT`]; every process in `procs` must stay up meanwhile.
pub async fn wait_answers(addr: SocketAddr, name: &str, ip: &str, procs: &mut [&mut Proc]) {
    let answered = poll_until_async(READY_LIMIT, Duration::from_millis(20), async || {
        if let Some(m) = udp_ask(addr, name, POLL_WAIT).await
            && answers_with(&m, ip)
        {
            return Some(());
        }
        for p in procs.iter_mut() {
            p.assert_running();
        }
        None
    })
    .await;
    assert!(
        answered.is_some(),
        "{addr} did not answer {name} -> {ip} within {READY_LIMIT:?}"
    );
}

/// `(ts name, pid)` of every "table server started" line so far.
pub fn started_children(log: &str) -> Vec<(String, u32)> {
    log.lines()
        .filter(|l| l.contains("table server started"))
        .filter_map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some((field("ts=")?, field("pid=")?.parse().ok()?))
        })
        .collect()
}

/// The PIDs logged for the starts of TS child `ts`, in order.
pub fn pids_of(log: &str, ts: &str) -> Vec<u32> {
    started_children(log)
        .into_iter()
        .filter(|(n, _)| n == ts)
        .map(|(_, p)| p)
        .collect()
}

/// Polls the log of `up` until `done` finds what it wants, for up to `limit`.
pub fn wait_log<T>(
    up: &mut Proc,
    limit: Duration,
    what: &str,
    done: impl Fn(&str) -> Option<T>,
) -> T {
    poll_until(limit, Duration::from_millis(10), || {
        let found = done(&up.stderr_now());
        if found.is_none() {
            up.assert_running();
        }
        found
    })
    .unwrap_or_else(|| {
        panic!(
            "no {what} logged within {limit:?}; stderr:\n{}",
            up.stderr_now()
        )
    })
}

/// A process's state letter and parent PID from `/proc/PID/stat`, `None` if
/// there is no such process.
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a process whose command line mentions `needle`.
pub fn runs_with(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// `ts --listen 127.0.0.1:PORT --zone ZONE... --workers 1`: the arguments
/// of a `dnslb ts` with one worker serving `zones`.
pub fn ts_args(port: u16, zones: &[&std::path::Path]) -> Vec<String> {
    let mut args = vec![
        "ts".to_owned(),
        "--listen".to_owned(),
        local(port).to_string(),
    ];
    for z in zones {
        args.push("--zone".to_owned());
        args.push(super::env::path_str(z).to_owned());
    }
    args.extend(["--workers".to_owned(), "1".to_owned()]);
    args
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The soft "Max open files" of process `pid`.
pub fn nofile_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

//! dnslb among other DNS software, each a real program on real sockets:
//!
//! * [`replicated`]: a `dnslb ls` (`layout = "replicated"`) in front of NSD
//!   and Knot serving the same zone file, under race, hedge and sequential;
//!   then Knot SIGKILLed.
//! * [`dnsdist`]: dnsdist in front of two `dnslb ts`: its health checks and
//!   its forwarding.
//! * [`knot_secondary`]: Knot as a secondary of a `dnslb ts` (AXFR, then
//!   NOTIFY after a SIGHUP), for a master file and for a PROJ table; and
//!   Knot and NSD refusing the TS's NOTIFY (their ACL names another
//!   address), which the TS must not log as acknowledged.
//! * [`stub`]: glibc's stub resolver (`getent`) in a network namespace of
//!   the test's own, against an LS on the namespace's 127.0.0.1:53.
//! * [`unbound`]: Unbound (a recursive resolver) in front of a partitioned
//!   LS, one of whose two table servers is then stalled with SIGSTOP; and a
//!   CNAME in one partition whose target is in the other.
//!
//! A test whose program is not installed prints `SKIPPED, not run: PROG
//! not installed` and passes under a plain `cargo test`; under
//! `scripts/test` (which installs them all and sets `DNSLB_REQUIRE_PEERS=1`)
//! it fails instead ([`harness::skip`]). Every process
//! is stopped by PID from a guard, every file lives in a temporary folder;
//! readiness is polled with real DNS queries in bounded loops.
//!
//! This file holds what they share: finding programs, the fixtures, `dnslb
//! ts`/`dnslb ls` children, a small DNS client and an answer's comparable
//! view.
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

use crate::harness;
pub use crate::procs::summary;
use crate::procs::{Proc, dnslb_command, poll_until_async};

mod dnsdist;
mod knot;
mod knot_secondary;
mod replicated;
mod stub;
mod unbound;

/// How long a server may take to start answering.
pub const READY_LIMIT: Duration = Duration::from_secs(15);
/// One poll query's wait for its answer.
pub const POLL_WAIT: Duration = Duration::from_millis(300);
/// Pause between two polls (a refused port answers at once).
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

/// Where `prog` is: a folder of `$PATH`, or one of the `sbin` folders
/// (servers live there and a non-root `$PATH` may lack them).
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(prog))
        .find(|p| p.is_file())
}

/// The paths of `progs`, or `None` after [`harness::skip`] for the first
/// one missing (a panic under `DNSLB_REQUIRE_PEERS`): the caller returns.
pub fn need<const N: usize>(test: &str, progs: [&str; N]) -> Option<[PathBuf; N]> {
    let mut found = Vec::with_capacity(N);
    for prog in progs {
        let Some(p) = find_program(prog) else {
            harness::skip(test, &format!("{prog} not installed"));
            return None;
        };
        found.push(p);
    }
    Some(found.try_into().unwrap())
}

/// `tests/data/peers/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/peers")
        .join(name)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

// ---------------------------------------------------------------------------
// dnslb children
// ---------------------------------------------------------------------------

/// `dnslb ts --listen 127.0.0.1:PORT --zone ZONE... [extra]` with one
/// worker, from `/`, prefixed by `wrap` (e.g. `ip netns exec NAME`).
pub fn ts_command(wrap: &[&str], port: u16, zones: &[&Path], extra: &[&str]) -> Command {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["ts", "--listen", &listen, "--workers", "1"];
    for z in zones {
        args.push("--zone");
        args.push(path_str(z));
    }
    args.extend_from_slice(extra);
    wrapped(wrap, &args)
}

/// Starts `dnslb ts` on 127.0.0.1:`port` serving `zones` and waits until it
/// answers `apex SOA` authoritatively.
pub async fn start_ts_ready(name: &str, port: u16, zones: &[&Path], apex: &str) -> Proc {
    let mut ts = Proc::spawn(name, ts_command(&[], port, zones, &[]));
    wait_for(
        crate::procs::local(port),
        apex,
        RecordType::SOA,
        false,
        READY_LIMIT,
        &mut [&mut ts],
        |m| m.metadata.authoritative,
    )
    .await;
    ts
}

/// `dnslb ARGS` from `/` as [`dnslb_command`] sets it up, run through
/// `wrap` when it is not empty (`wrap` then `execve`s dnslb, so the PID is
/// dnslb's).
pub fn wrapped(wrap: &[&str], args: &[&str]) -> Command {
    let plain = dnslb_command(args, Path::new("/"));
    let Some((first, rest)) = wrap.split_first() else {
        return plain;
    };
    let mut cmd = Command::new(first);
    cmd.args(rest)
        .arg(plain.get_program())
        .args(plain.get_args());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir("/");
    cmd
}

/// Writes `config` to `dir/NAME.toml` and starts `dnslb ls -c` on it
/// (through `wrap`, see [`wrapped`]).
pub fn start_ls(name: &str, dir: &Path, config: &str, wrap: &[&str]) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    Proc::spawn(name, wrapped(wrap, &["ls", "-c", path_str(&path)]))
}

/// Polls `proc`'s stderr until `needle` occurs `count` times; panics after
/// `limit` or if it exits.
pub async fn wait_log(proc: &mut Proc, needle: &str, count: usize, limit: Duration) -> Duration {
    let t = Instant::now();
    let found = poll_until_async(limit, POLL, async || {
        proc.assert_running();
        (proc.stderr_now().matches(needle).count() >= count).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "`{needle}` not logged {count} time(s) within {limit:?}; stderr:\n{}",
        proc.stderr_now()
    );
    t.elapsed()
}

/// Polls an LS's log until it says `backend` is down (the health checker's
/// `backend down backend=NAME` line). Returns how long after `since` the
/// line's own timestamp says that happened (`None` if it has none that
/// parses). Panics after `limit` or if the LS exits.
pub async fn wait_down(
    ls: &mut Proc,
    backend: &str,
    since: SystemTime,
    limit: Duration,
) -> Option<Duration> {
    let needle = format!("backend={backend} ");
    let found = poll_until_async(limit, POLL, async || {
        ls.assert_running();
        ls.stderr_now()
            .lines()
            .find(|l| l.contains("backend down") && l.contains(&needle))
            .map(str::to_owned)
    })
    .await;
    let Some(line) = found else {
        panic!(
            "the LS did not log `backend down` for {backend} within {limit:?}; stderr:\n{}",
            ls.stderr_now()
        )
    };
    let logged = log_time_of_day(&line)?;
    let since = since.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() % 86_400.0;
    Some(Duration::from_secs_f64(
        (logged - since).rem_euclid(86_400.0),
    ))
}

/// The time of day (UTC, in seconds) at the start of a log line, as
/// `tracing`'s default format writes it: `2026-01-02T03:04:05.678901Z ...`.
fn log_time_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

// ---------------------------------------------------------------------------
// A small DNS client
// ---------------------------------------------------------------------------

/// A query for `name`/`qtype` with a random ID, RD as given, EDNS 1232.
pub fn query(name: &str, qtype: RecordType, rd: bool) -> Message {
    let mut q = harness::query(name, qtype, Some(1232));
    q.metadata.id = rand::random();
    q.metadata.recursion_desired = rd;
    q
}

/// Sends `q` over UDP from a fresh socket *connected* to `addr` and returns
/// the first response with its ID; `None` after `wait` (or at once when the
/// port is unreachable).
pub async fn udp_exchange(addr: SocketAddr, q: &Message, wait: Duration) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    sock.send(&q.to_vec().unwrap()).await.ok()?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n >= 12 && buf[..2] == q.metadata.id.to_be_bytes() && buf[2] & 0x80 != 0 {
            return Message::from_vec(&buf[..n]).ok();
        }
    }
}

/// `name qtype` over UDP to `addr` (see [`query`], [`udp_exchange`]).
pub async fn ask(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    rd: bool,
    wait: Duration,
) -> Option<Message> {
    udp_exchange(addr, &query(name, qtype, rd), wait).await
}

/// Polls `addr` with `name qtype` until `done` holds for an answer: that
/// answer, or after `limit` the last one seen (if any); panics when a
/// process of `procs` exits.
pub async fn poll_answer(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    rd: bool,
    limit: Duration,
    procs: &mut [&mut Proc],
    done: impl Fn(&Message) -> bool,
) -> Result<Message, Option<Message>> {
    let mut last = None;
    let found = poll_until_async(limit, POLL, async || {
        for p in procs.iter_mut() {
            p.assert_running();
        }
        let m = ask(addr, name, qtype, rd, POLL_WAIT).await?;
        if done(&m) {
            return Some(m);
        }
        last = Some(m);
        None
    })
    .await;
    found.ok_or(last)
}

/// [`poll_answer`], panicking after `limit`.
pub async fn wait_for(
    addr: SocketAddr,
    name: &str,
    qtype: RecordType,
    rd: bool,
    limit: Duration,
    procs: &mut [&mut Proc],
    done: impl Fn(&Message) -> bool,
) -> Message {
    poll_answer(addr, name, qtype, rd, limit, procs, done)
        .await
        .unwrap_or_else(|last| {
            panic!(
                "{addr}: no satisfying answer to {name} {qtype} within {limit:?}; last: {}",
                last.as_ref().map_or("none".into(), show)
            )
        })
}

/// One record as text: `name ttl type rdata`, name in lower case.
pub fn render(r: &Record) -> String {
    format!(
        "{} {} {} {}",
        r.name.to_ascii().to_lowercase(),
        r.ttl,
        r.record_type(),
        r.data
    )
}

/// A short rendering of an answer for failure messages.
pub fn show(m: &Message) -> String {
    let md = &m.metadata;
    let list = |rs: &[Record]| rs.iter().map(render).collect::<Vec<_>>().join("; ");
    format!(
        "rcode={} aa={} tc={} answer=[{}] authority=[{}]",
        md.response_code,
        md.authoritative,
        md.truncation,
        list(&m.answers),
        list(&m.authorities)
    )
}

/// What two authoritative servers serving the same zone must agree on:
/// rcode, AA, the answer section as a set, and for a negative answer the
/// SOA of the authority section. (Additional sections and a positive
/// answer's authority differ by implementation: Knot adds glue, NSD with
/// `minimal-responses` does not.)
#[derive(Debug, PartialEq, Eq)]
pub struct View {
    pub rcode: ResponseCode,
    pub aa: bool,
    pub answer: BTreeSet<String>,
    pub negative_soa: BTreeSet<String>,
}

impl View {
    pub fn of(m: &Message) -> View {
        let negative = m.answers.is_empty();
        View {
            rcode: m.metadata.response_code,
            aa: m.metadata.authoritative,
            answer: m.answers.iter().map(render).collect(),
            negative_soa: m
                .authorities
                .iter()
                .filter(|r| negative && r.record_type() == RecordType::SOA)
                .map(render)
                .collect(),
        }
    }
}

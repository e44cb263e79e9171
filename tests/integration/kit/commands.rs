//! `dnslb` children started from a command line or a config file, as the
//! tests beside other DNS software (peers/) and the transfer tests run them:
//! through a wrapper (`ip netns exec NAME`), `dnslb ts` ready when it
//! answers its apex SOA, `dnslb ts -c CONFIG --name NAME`
//! ([`start_ts_named`]), `dnslb ls -c` on a written config, a backend's
//! `backend down` log line, and an authoritative answer's comparable view.
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::children::ts_args;
use super::client::render;
use super::client::wait_soa;
use super::env::path_str;
use super::procs::{Proc, dnslb_command, local, poll_until_async};

/// How long a server started beside a peer program (or the program itself)
/// may take to start answering.
pub const PEER_READY_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two polls (a refused port answers at once).
pub const PEER_POLL: Duration = Duration::from_millis(20);

/// `dnslb ts --listen 127.0.0.1:PORT --zone ZONE... [extra]` with one
/// worker, from `/`, prefixed by `wrap` (e.g. `ip netns exec NAME`).
pub fn ts_command(wrap: &[&str], port: u16, zones: &[&Path], extra: &[&str]) -> Command {
    let mut args = ts_args(port, zones);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wrapped(wrap, &args)
}

/// Starts `dnslb ts` on 127.0.0.1:`port` serving `zones` and waits until it
/// answers `apex SOA` authoritatively.
pub async fn start_ts_ready(name: &str, port: u16, zones: &[&Path], apex: &str) -> Proc {
    let mut ts = Proc::spawn(name, ts_command(&[], port, zones, &[]));
    wait_soa(local(port), apex, PEER_READY_LIMIT, &mut [&mut ts], |m| {
        m.metadata.authoritative
    })
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
pub fn start_ls_proc(name: &str, dir: &Path, config: &str, wrap: &[&str]) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    Proc::spawn(name, wrapped(wrap, &["ls", "-c", path_str(&path)]))
}

/// Polls an LS's log until it says `backend` is down (the health checker's
/// `backend down backend=NAME` line). Returns how long after `since` the
/// line's own timestamp says that happened (`None` if it has none that
/// parses). Panics after `limit` or if the LS exits.
pub async fn wait_down_logged(
    ls: &mut Proc,
    backend: &str,
    since: SystemTime,
    limit: Duration,
) -> Option<Duration> {
    let needle = format!("backend={backend} ");
    let found = poll_until_async(limit, PEER_POLL, async || {
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

/// What two authoritative servers serving the same zone must agree on:
/// rcode, AA, the answer section as a set, and for a negative answer the
/// SOA of the authority section. (Additional sections and a positive
/// answer's authority differ by implementation: Knot adds glue, NSD with
/// `minimal-responses` does not.)
#[derive(Debug, PartialEq, Eq)]
pub struct PeerView {
    pub rcode: ResponseCode,
    pub aa: bool,
    pub answer: BTreeSet<String>,
    pub negative_soa: BTreeSet<String>,
}

impl PeerView {
    pub fn of(m: &Message) -> PeerView {
        let negative = m.answers.is_empty();
        PeerView {
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

    /// Asserts that `a` and `b` are the same answer as peers see it; else
    /// fails saying `what` and showing both.
    #[track_caller]
    pub fn assert_same(a: &Message, b: &Message, what: &str) {
        assert_eq!(
            PeerView::of(a),
            PeerView::of(b),
            "{what}:\n  {}\n  {}",
            super::show(a),
            super::show(b)
        );
    }
}

/// Where a [`start_ts_named`] child keeps its state (the serials it gave).
#[derive(Debug, Clone, Copy)]
pub enum TsState<'a> {
    /// No `STATE_DIRECTORY`: beside the zone files.
    BesideZones,
    /// `STATE_DIRECTORY` set to this folder.
    In(&'a Path),
}

/// `dnslb ts -c CONF --name NAME` (with `config` written to `conf` first
/// when given), run from `cwd`, its state kept as `state` says; waits up to
/// `limit` until `addr` answers `zone SOA` as `ready` accepts.
#[allow(clippy::too_many_arguments)]
pub async fn start_ts_named(
    conf: &Path,
    config: Option<&str>,
    name: &str,
    cwd: &Path,
    state: TsState<'_>,
    (addr, zone): (SocketAddr, &str),
    limit: Duration,
    ready: impl Fn(&Message) -> bool,
) -> Proc {
    if let Some(config) = config {
        std::fs::write(conf, config).unwrap();
    }
    let mut cmd = dnslb_command(&["ts", "-c", path_str(conf), "--name", name], cwd);
    match state {
        TsState::BesideZones => cmd.env_remove("STATE_DIRECTORY"),
        TsState::In(dir) => cmd.env("STATE_DIRECTORY", dir),
    };
    let mut ts = Proc::spawn(&format!("dnslb ts --name {name}"), cmd);
    wait_soa(addr, zone, limit, &mut [&mut ts], ready).await;
    ts
}

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
//! * [`signed`]: a validating Unbound, `delv`, and Knot and NSD secondaries
//!   in front of zones the TS signs, directly and through a replicated LS;
//!   Unbound's SERVFAIL for a record changed after signing.
//!
//! A test whose program is not installed prints `SKIPPED, not run: PROG
//! not installed` and passes under a plain `cargo test`; under
//! `scripts/test` (which installs them all and sets `DNSLB_REQUIRE_PEERS=1`)
//! it fails instead ([`kit::skip`](crate::kit::skip)). Every process
//! is stopped by PID from a guard, every file lives in a temporary folder;
//! readiness is polled with real DNS queries in bounded loops.
//!
//! This file holds what they share: finding programs, the fixtures, `dnslb
//! ts`/`dnslb ls` children, a small DNS client and an answer's comparable
//! view.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit;
pub use crate::kit::wait_stderr as wait_log;
use crate::kit::{Proc, dnslb_command, poll_until_async};
pub use crate::kit::{
    ask, find_program, need, path_str, peers_fixture as fixture, poll_answer, render, show,
    summary, wait_for,
};

mod cache_cookies;
mod dnsdist;
mod knot_secondary;
mod replicated;
mod signed;
mod stub;
pub(crate) mod tsig;
mod unbound;

/// How long a server may take to start answering.
pub const READY_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two polls (a refused port answers at once).
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// dnslb children
// ---------------------------------------------------------------------------

/// `dnslb ts --listen 127.0.0.1:PORT --zone ZONE... [extra]` with one
/// worker, from `/`, prefixed by `wrap` (e.g. `ip netns exec NAME`).
pub fn ts_command(wrap: &[&str], port: u16, zones: &[&Path], extra: &[&str]) -> Command {
    let mut args = kit::ts_args(port, zones);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wrapped(wrap, &args)
}

/// Starts `dnslb ts` on 127.0.0.1:`port` serving `zones` and waits until it
/// answers `apex SOA` authoritatively.
pub async fn start_ts_ready(name: &str, port: u16, zones: &[&Path], apex: &str) -> Proc {
    let mut ts = Proc::spawn(name, ts_command(&[], port, zones, &[]));
    kit::wait_soa(kit::local(port), apex, READY_LIMIT, &mut [&mut ts], |m| {
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
pub fn start_ls(name: &str, dir: &Path, config: &str, wrap: &[&str]) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    Proc::spawn(name, wrapped(wrap, &["ls", "-c", path_str(&path)]))
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

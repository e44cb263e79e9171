//! `dnslb zone list|status|reload|notify|retransfer|refresh [NAME]`: one
//! request to a running TS's zone control (`control` in its `[[ts]]`, found
//! in the config, `--ts NAME` among several, or `-s ADDR`), as the LS's
//! live-control commands ask theirs (`control_cmd.rs`): a state-changing
//! request carries the header the listener wants of it and, when one is
//! known (`--key`, else `DNSLB_API_KEY`, else that `[[ts]]`'s `api_key`),
//! the key. [`render_list`], [`render_status`] and [`render_action`] are
//! pure (the time now given).
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;

use crate::config::{Config, ConfigError};
use crate::metrics::{CONTROL_HEADER, KEY_HEADER, ZONES_PATH};
use crate::status::{FETCH_TIMEOUT, StatusError, env_key, exchange_capped};
use crate::ts::zone_control::{ASK_WAIT, ZoneAction, ZoneEntry, ZoneEvent, ZoneStatus};

/// The largest answer read: a list of 100,000 zones is some 8 MB, their
/// statuses some 40.
const MAX_ANSWER: usize = 256 << 20;

/// `dnslb zone` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ZoneCommand {
    /// Every zone the TS serves: name, serial, source (file, secondary,
    /// catalog-member, catalog), state.
    List,
    /// A zone's status (every zone's without NAME): serial, source, last
    /// load or transfer and its result, next refresh, expiry, NOTIFYs sent
    /// and acknowledged, DNSSEC next event.
    Status {
        /// The zone.
        name: Option<String>,
    },
    /// Read the zone's file(s) again now (a file zone), the config not
    /// read again; refused, changing nothing, while another zone's file
    /// changed too (`dnslb reload` applies them all).
    Reload {
        /// The zone.
        name: String,
    },
    /// NOTIFY the zone's serial now to the TS's `notify` targets.
    Notify {
        /// The zone.
        name: String,
    },
    /// Take the whole zone from its primary now by AXFR (a secondary zone).
    Retransfer {
        /// The zone.
        name: String,
    },
    /// Ask the zone's primary for its SOA now, IXFR if newer (a secondary zone).
    Refresh {
        /// The zone.
        name: String,
    },
}

/// Which TS to ask, and how. Its flags are global: given before or after
/// the subcommand, they are the same flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ZoneTo {
    /// The config file: the TS is asked at its `[[ts]]`'s `control` address
    /// (and its `api_key` sent when there is one).
    #[arg(short, long, global = true, default_value = "config.toml")]
    pub config: PathBuf,
    /// Which `[[ts]]` of the config (needed when several have `control`).
    #[arg(long = "ts", global = true, value_name = "NAME")]
    pub ts: Option<String>,
    /// Ask this control address instead.
    #[arg(
        short = 's',
        long = "server",
        visible_alias = "addr",
        global = true,
        value_name = "ADDR"
    )]
    pub server: Option<SocketAddr>,
    /// The `api_key` (needed when the TS is not reached over loopback);
    /// default: `DNSLB_API_KEY`, else the config's `[[ts]]` `api_key`.
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,
    /// Print the TS's answer as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a `dnslb zone` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneCmdError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--ts` names no `[[ts]]`.
    #[error("{}: no [[ts]] named '{name}'", path.display())]
    NoSuchTs {
        /// The config file.
        path: PathBuf,
        /// The name given.
        name: String,
    },
    /// No `[[ts]]` (or not the one named) has a control address.
    #[error("{}: {who} no control address: set control = \"127.0.0.1:5391\" in its [[ts]] and restart it, or give -s ADDR", path.display())]
    NoControl {
        /// The config file.
        path: PathBuf,
        /// Who: "[[ts]] ts1 has", "no [[ts]] has".
        who: String,
    },
    /// Several `[[ts]]` have one, and none was named.
    #[error("{}: several table servers have a control address ({names}): say which with --ts NAME", path.display())]
    Several {
        /// The config file.
        path: PathBuf,
        /// Their names.
        names: String,
    },
    /// The TS could not be asked, or refused (its line).
    #[error("{0}")]
    Ask(String),
    /// Asked, and not done (its line).
    #[error("{0}")]
    NotDone(String),
}

/// `e` said of the TS's zone control at `addr`.
fn ask_error(e: StatusError) -> ZoneCmdError {
    ZoneCmdError::Ask(match e {
        StatusError::Connect { addr, source } => {
            format!("cannot reach the TS's zone control at {addr}: {source}")
        }
        StatusError::Timeout { addr, wait } => {
            format!(
                "the TS at {addr} did not answer within {} s",
                wait.as_secs()
            )
        }
        StatusError::Refused { text, .. } => text,
        StatusError::Json { addr, .. } => {
            format!("{addr} answered with something that is not a dnslb TS's zone control answer")
        }
        e => e.to_string(),
    })
}

impl ZoneTo {
    /// The address to ask, and the key to send.
    ///
    /// # Errors
    /// The config unreadable, no such TS, or no control address to ask.
    pub fn resolve(&self) -> Result<(SocketAddr, Option<String>), ZoneCmdError> {
        let key = self.key.clone().or_else(env_key);
        let path = &self.config;
        if let Some(a) = self.server {
            let config_key = || {
                let cfg = Config::load(path).ok()?;
                let ts = cfg.ts.into_iter().find(|t| t.control == Some(a))?;
                ts.api_key
            };
            return Ok((a, key.or_else(config_key)));
        }
        let cfg = Config::load(path)?;
        let ts = match &self.ts {
            Some(name) => cfg.ts_by_name(name).ok_or_else(|| ZoneCmdError::NoSuchTs {
                path: path.clone(),
                name: name.clone(),
            })?,
            None => {
                let with: Vec<_> = cfg.ts.iter().filter(|t| t.control.is_some()).collect();
                match with[..] {
                    [one] => one,
                    [] => {
                        return Err(ZoneCmdError::NoControl {
                            path: path.clone(),
                            who: "no [[ts]] has".into(),
                        });
                    }
                    _ => {
                        let names: Vec<&str> = with.iter().map(|t| t.name.as_str()).collect();
                        return Err(ZoneCmdError::Several {
                            path: path.clone(),
                            names: names.join(", "),
                        });
                    }
                }
            }
        };
        let Some(addr) = ts.control else {
            return Err(ZoneCmdError::NoControl {
                path: path.clone(),
                who: format!("[[ts]] {} has", ts.name),
            });
        };
        Ok((addr, key.or_else(|| ts.api_key.clone())))
    }

    /// One request of `method` on `path`: the answer's body, as text.
    async fn ask(
        &self,
        method: Method,
        path: &str,
        wait: Duration,
    ) -> Result<String, ZoneCmdError> {
        let (addr, key) = self.resolve()?;
        let mut headers = vec![(CONTROL_HEADER, "1")];
        if let Some(k) = &key {
            headers.push((KEY_HEADER, k.as_str()));
        }
        let asked = exchange_capped(addr, method, path, &headers, MAX_ANSWER);
        let (status, body) = tokio::time::timeout(wait, asked)
            .await
            .unwrap_or(Err(StatusError::Timeout { addr, wait }))
            .map_err(ask_error)?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            let line = text.trim();
            return Err(ZoneCmdError::Ask(match status {
                405 => format!("{addr} answered HTTP 405: a state-changing request must be a POST"),
                _ if line.is_empty() => format!("{addr} answered HTTP {status}"),
                _ => line.to_owned(),
            }));
        }
        Ok(text)
    }
}

/// `text` decoded as the answer of a dnslb TS's zone control.
fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ZoneCmdError> {
    serde_json::from_str(text)
        .map_err(|_| ZoneCmdError::Ask("the answer is not a dnslb TS's zone control answer".into()))
}

/// A zone's name as a path segment.
fn segment(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

/// Runs `cmd` against the TS of `to`: the text to print (the TS's JSON
/// with `--json`).
///
/// # Errors
/// The TS not found or unreachable, the zone not served, or the command
/// refused or not done (a refresh that failed...).
pub async fn run(cmd: &ZoneCommand, to: &ZoneTo) -> Result<String, ZoneCmdError> {
    let now = crate::clock::unix_now();
    let (path, wait) = match cmd {
        ZoneCommand::List => (ZONES_PATH.to_owned(), FETCH_TIMEOUT),
        ZoneCommand::Status { name: None } => (format!("{ZONES_PATH}?detail=1"), FETCH_TIMEOUT),
        ZoneCommand::Status { name: Some(n) } => {
            (format!("{ZONES_PATH}/{}", segment(n)), FETCH_TIMEOUT)
        }
        ZoneCommand::Reload { name } => action_path(name, "reload"),
        ZoneCommand::Notify { name } => action_path(name, "notify"),
        ZoneCommand::Retransfer { name } => action_path(name, "retransfer"),
        ZoneCommand::Refresh { name } => action_path(name, "refresh"),
    };
    let method = match cmd {
        ZoneCommand::List | ZoneCommand::Status { .. } => Method::GET,
        _ => Method::POST,
    };
    let text = to.ask(method, &path, wait).await?;
    let rendered = match cmd {
        ZoneCommand::List => render_list(&decode::<Vec<ZoneEntry>>(&text)?),
        ZoneCommand::Status { name: None } => {
            let all: Vec<ZoneStatus> = decode(&text)?;
            all.iter()
                .map(|s| render_status(s, now))
                .collect::<Vec<_>>()
                .join("\n")
        }
        ZoneCommand::Status { .. } => render_status(&decode(&text)?, now),
        _ => {
            let a: ZoneAction = decode(&text)?;
            if !a.done {
                return Err(ZoneCmdError::NotDone(format!(
                    "{} {}: {}",
                    a.action, a.zone, a.detail
                )));
            }
            render_action(&a)
        }
    };
    Ok(if to.json { text } else { rendered })
}

/// The path of `action` on `name`, and how long to wait for its answer.
fn action_path(name: &str, action: &str) -> (String, Duration) {
    let wait = FETCH_TIMEOUT + ASK_WAIT + Duration::from_secs(60);
    (format!("{ZONES_PATH}/{}/{action}", segment(name)), wait)
}

/// The zones as `dnslb zone list` prints them.
pub fn render_list(list: &[ZoneEntry]) -> String {
    if list.is_empty() {
        return "no zones served\n".to_owned();
    }
    let w = list.iter().map(|z| z.name.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:<w$}  {:>10}  {:<14}  state\n",
        "zone", "serial", "source"
    );
    for z in list {
        let state = match (z.served, z.expired) {
            (false, _) => "not-served-yet",
            (_, true) => "expired",
            _ => "ok",
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:>10}  {:<14}  {state}",
            z.name,
            z.serial,
            z.source.as_str()
        );
    }
    out
}

/// `secs` as `1h2m3s`.
fn span(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// `at` (seconds since the epoch) said from `now`: `12s ago`, `in 1h0m0s`.
fn when(at: u64, now: u64) -> String {
    if at <= now {
        format!("{} ago", span(now - at))
    } else {
        format!("in {}", span(at - now))
    }
}

/// An event line: `12s ago, ok: what`.
fn event_line(e: &ZoneEvent, now: u64) -> String {
    let ok = if e.ok { "ok" } else { "FAILED" };
    let serial = e
        .serial
        .map(|s| format!(" (serial {s})"))
        .unwrap_or_default();
    format!("{}, {ok}: {}{serial}", when(e.at_unix, now), e.detail)
}

/// One zone's status as `dnslb zone status` prints it, `now` the clock.
pub fn render_status(s: &ZoneStatus, now: u64) -> String {
    let mut out = format!("zone {}\n", s.name);
    let state = match (s.served, s.expired) {
        (false, _) => "NOT SERVED YET: no copy, waiting for its first transfer",
        (_, true) => "EXPIRED (answered SERVFAIL)",
        _ => "served",
    };
    let _ = writeln!(
        out,
        "  serial:         {} ({state}, {} RRsets)",
        s.serial, s.rrsets
    );
    let mut source = s.source.as_str().to_owned();
    if !s.files.is_empty() {
        source += &format!(" ({})", s.files.join(", "));
    }
    if let Some(c) = &s.catalog {
        source += &format!(" of catalog {c}");
    }
    if let Some(p) = &s.primary {
        source += &format!(", primary {p}");
    }
    let _ = writeln!(out, "  source:         {source}");
    let lines = [
        ("loaded:       ", s.loaded_unix.map(|at| when(at, now))),
        (
            "last reload:  ",
            s.last_reload.as_ref().map(|e| event_line(e, now)),
        ),
        (
            "last attempt: ",
            s.last_attempt.as_ref().map(|e| event_line(e, now)),
        ),
        (
            "last transfer:",
            s.last_transfer.as_ref().map(|e| event_line(e, now)),
        ),
        (
            "next refresh: ",
            s.next_refresh_unix.map(|at| when(at, now)),
        ),
        ("expires:      ", s.expires_unix.map(|at| when(at, now))),
    ];
    for (label, value) in lines {
        if let Some(v) = value {
            let _ = writeln!(out, "  {label}  {v}");
        }
    }
    if s.primary.is_some() && s.last_attempt.is_none() {
        let _ = writeln!(out, "  last attempt:   none yet");
    }
    if s.notify.is_empty() {
        let _ = writeln!(out, "  notify:         none sent since start");
    }
    for n in &s.notify {
        let _ = writeln!(
            out,
            "  notify:         {}: {} sent, {} acknowledged; last {} {}",
            n.target,
            n.sent,
            n.acked,
            n.last,
            when(n.last_unix, now)
        );
    }
    let dnssec = match (s.signed_here, s.presigned, s.dnssec_next_unix) {
        (true, _, Some(at)) => {
            let keys = s
                .key_event_unix
                .map(|k| format!("; keys' next event {}", when(k, now)));
            format!(
                "signed here; signed again {}{}",
                when(at, now),
                keys.unwrap_or_default()
            )
        }
        (true, _, None) => "signed here".to_owned(),
        (false, true, _) => "signed in its files (the TS does not re-sign it)".to_owned(),
        (false, false, _) => "unsigned".to_owned(),
    };
    let _ = writeln!(out, "  dnssec:         {dnssec}");
    out
}

/// What an action did, as `dnslb zone reload|notify|...` prints it.
pub fn render_action(a: &ZoneAction) -> String {
    format!("{} {}: {}\n", a.action, a.zone, a.detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::zone_control::{NotifyTally, ZoneSource};

    #[test]
    fn the_list_is_a_table_and_a_status_says_only_what_is_known() {
        let list = [ZoneEntry {
            name: "a.test.".into(),
            serial: 7,
            source: ZoneSource::CatalogMember,
            expired: true,
            served: true,
        }];
        let text = render_list(&list);
        assert!(
            text.starts_with("zone         serial  source          state\n"),
            "{text}"
        );
        assert!(
            text.contains("a.test.           7  catalog-member  expired\n"),
            "{text}"
        );
        assert_eq!(render_list(&[]), "no zones served\n");
        let s = ZoneStatus {
            name: "a.test.".into(),
            serial: 7,
            source: ZoneSource::Secondary,
            served: true,
            expired: false,
            rrsets: 3,
            files: Vec::new(),
            primary: Some("192.0.2.1:53".into()),
            catalog: None,
            loaded_unix: None,
            last_reload: None,
            last_attempt: Some(ZoneEvent {
                at_unix: 990,
                ok: false,
                detail: "connection refused".into(),
                serial: Some(7),
            }),
            last_transfer: None,
            next_refresh_unix: Some(1_000 + 3_725),
            expires_unix: None,
            notify: vec![NotifyTally {
                target: "127.0.0.1:5302".into(),
                sent: 2,
                acked: 1,
                last: "no reply".into(),
                last_unix: 1_000,
            }],
            signed_here: false,
            presigned: false,
            dnssec_next_unix: None,
            key_event_unix: None,
        };
        let text = render_status(&s, 1_000);
        for line in [
            "zone a.test.\n",
            "  source:         secondary, primary 192.0.2.1:53\n",
            "  last attempt:   10s ago, FAILED: connection refused (serial 7)\n",
            "  next refresh:   in 1h2m5s\n",
            "  notify:         127.0.0.1:5302: 2 sent, 1 acknowledged; last no reply 0s ago\n",
            "  dnssec:         unsigned\n",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
        assert!(
            !text.contains("expires") && !text.contains("loaded"),
            "{text}"
        );
    }
}

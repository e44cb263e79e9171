//! The `up` role (`dnslb up`): every `[[ts]]` as a supervised child process, and
//! the LS in this process (when the config has an `[ls]`), which serves once its
//! own table servers answer (or after a bounded wait). A reload reaches both,
//! all or nothing: the whole config and every zone are checked first
//! ([`super::reload`]); a stop drains the LS before the children stop.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ls::{LsRole, LsSockets, section as ls_section};
use super::reload::Reloader;
use super::{Control, Controls, RoleError, SHUTDOWN_GRACE};
use crate::config::Config;
use crate::logging::LogFormat;
use crate::ls::probe;
use crate::metrics::StatusExtra;
use crate::server::Listeners;
use crate::supervise::{Backoff, ChildSpec, Supervisor};

/// How long `dnslb up` waits for its table servers to answer before it
/// serves clients anyway (and names the late ones).
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// The logging flags `dnslb up` passes on to its children.
#[derive(Debug, Clone)]
pub struct LogFlags {
    /// `--log FILTER`, when given.
    pub filter: Option<String>,
    /// `--log-format`.
    pub format: LogFormat,
}

impl LogFlags {
    /// `--log-format F` and, when given, `--log FILTER`.
    pub fn child_args(&self) -> Vec<OsString> {
        let mut args = vec!["--log-format".into(), self.format.as_str().into()];
        if let Some(f) = &self.filter {
            args.extend(["--log".into(), f.into()]);
        }
        args
    }
}

/// Checks that each `[[ts]]` address (and metrics address) can be bound now,
/// so that `up` refuses to start rather than restart a child that can never listen.
fn check_ts_ports(cfg: &Config) -> Result<(), RoleError> {
    for t in &cfg.ts {
        let quic = t.quic.as_ref().map_or(&[][..], |q| &q.listen);
        // Held together: a QUIC address taken by the TS's own DNS is refused too.
        (Listeners::bind(&t.listen, 1))
            .and_then(|dns| super::ts_doq::bind_sockets(quic).map(|doq| drop((dns, doq))))
            .map_err(|source| RoleError::TsListen {
                path: cfg.path.clone(),
                name: t.name.clone(),
                source,
            })?;
        if let Some(addr) = t.metrics {
            std::net::TcpListener::bind(addr).map_err(|source| RoleError::TsMetrics {
                path: cfg.path.clone(),
                name: t.name.clone(),
                addr,
                source,
            })?;
        }
    }
    Ok(())
}

/// Where the table servers NOTIFY the LS of `up` of a changed zone, so
/// that a reload never leaves the old answer in its packet cache: the LS's
/// first `listen` address (an unspecified one as loopback: the children
/// run on this host), when the LS keeps a cache (`[ls.cache]` or a pool's);
/// `None` otherwise. The LS acknowledges a NOTIFY from a backend's address
/// and flushes the zone (`ls::invalidate`).
fn ls_notify_target(cfg: &Config) -> Option<SocketAddr> {
    let ls = cfg.ls.as_ref()?;
    let cached = ls.cache.is_some() || ls.pool.iter().any(|p| p.cache.is_some());
    let first = *ls.listen.first()?;
    let ip = match first.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    cached.then_some(SocketAddr::new(ip, first.port()))
}

/// `dnslb ts -c CONFIG --name NAME` and the log flags, for each `[[ts]]`;
/// with `--notify LS` when the LS keeps a cache ([`ls_notify_target`]).
fn child_specs(cfg: &Config, exe: &Path, config_path: &Path, log: &LogFlags) -> Vec<ChildSpec> {
    let notify = ls_notify_target(cfg);
    cfg.ts
        .iter()
        .map(|t| ChildSpec {
            name: t.name.clone(),
            program: exe.to_path_buf(),
            args: [
                "ts".into(),
                "-c".into(),
                config_path.as_os_str().to_owned(),
                "--name".into(),
                t.name.clone().into(),
            ]
            .into_iter()
            .chain(log.child_args())
            .chain(
                notify
                    .into_iter()
                    .flat_map(|a| ["--notify".into(), a.to_string().into()]),
            )
            .collect(),
        })
        .collect()
}

/// `dnslb up`: the TS children under a supervisor, and the LS here (when
/// the config has an `[ls]`; without one, the table servers only).
///
/// # Errors
/// A port that cannot be bound, no executable to run, or the LS's DNS server dying.
pub async fn run(cfg: Config, log: LogFlags, mut controls: Controls) -> Result<(), RoleError> {
    check_ts_ports(&cfg)?;
    // Every LS socket is bound before any child exists: between fork and
    // exec a child holds copies of the parent's sockets.
    let sockets = match &cfg.ls {
        Some(lsc) => Some(LsSockets::bind(lsc).await?),
        None => None,
    };
    let exe = std::env::current_exe().map_err(RoleError::Exe)?;
    // Children may not share our working folder forever: give them an absolute path.
    let config_path = std::fs::canonicalize(&cfg.path).unwrap_or_else(|_| cfg.path.clone());
    let specs = child_specs(&cfg, &exe, &config_path, &log);
    let root = CancellationToken::new();
    let sup = Arc::new(Supervisor::start(
        specs,
        Backoff::default(),
        root.child_token(),
    ));
    let result = match sockets {
        Some(sockets) => with_ls(&cfg, sockets, &sup, &mut controls, &root).await,
        None => {
            info!(
                table_servers = cfg.ts.len(),
                "table servers only: the config has no [ls]"
            );
            // A reload checks everything first, then signals every child.
            let reloader = Arc::new(Reloader::new(cfg.clone(), None));
            reloader.set_children(&sup);
            let reload = |r: &Arc<Reloader>| {
                let r = r.clone();
                tokio::spawn(async move { r.run().await });
            };
            // Ready once every table server answers (a bounded wait); a
            // stop meanwhile ends it, never followed by READY=1.
            // Each by its first address: a TS answers on all of them once up.
            let addrs: Vec<SocketAddr> = cfg
                .ts
                .iter()
                .filter_map(|t| t.listen.first().copied())
                .collect();
            let waiting = first_answers(&addrs, STARTUP_WAIT);
            tokio::pin!(waiting);
            let mut stop = false;
            loop {
                tokio::select! {
                    late = &mut waiting => {
                        if !late.is_empty() {
                            warn!(late = ?late, waited = ?STARTUP_WAIT, "table servers not answering yet");
                        }
                        let answering = addrs.len() - late.len();
                        crate::systemd::ready(&format!(
                            "{answering} of {} table servers answering",
                            addrs.len()
                        ));
                        break;
                    }
                    control = controls.next() => match control {
                        Control::Shutdown => {
                            stop = true;
                            break;
                        }
                        Control::Reload => reload(&reloader),
                    },
                }
            }
            while !stop {
                match controls.next().await {
                    Control::Shutdown => stop = true,
                    Control::Reload => reload(&reloader),
                }
            }
            crate::systemd::stopping();
            Ok(())
        }
    };
    // Clients' queries are all answered (drained) before the children stop.
    if let Some(sup) = Arc::into_inner(sup) {
        sup.shutdown(SHUTDOWN_GRACE).await;
    }
    root.cancel();
    result
}

/// Waits until a table server answers a query (any answer: it is up) on
/// each of `addrs` over UDP, `limit` at most; the addresses that did not.
async fn first_answers(addrs: &[SocketAddr], limit: Duration) -> Vec<SocketAddr> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut late = addrs.to_vec();
    while !late.is_empty() && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for &addr in &late {
            if !answers(addr).await {
                still.push(addr);
            }
        }
        late = still;
        if !late.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    late
}

/// Whether a DNS server answers `. SOA` at `addr` over UDP within 200 ms.
async fn answers(addr: SocketAddr) -> bool {
    // An unspecified listen address is asked on loopback.
    let to = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let bind = if to.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
        return false;
    };
    let id: u16 = rand::random();
    let mut q = id.to_be_bytes().to_vec();
    // No flags, one question: the root, SOA, IN.
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
    if sock.send_to(&q, to).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    let wait = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from))
                    if from == to && n >= 2 && buf.get(..2) == Some(&id.to_be_bytes()[..]) =>
                {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    });
    wait.await.unwrap_or(false)
}

/// What the status page shows of the children; it must not keep the supervisor alive.
fn status_extra(sup: &Arc<Supervisor>) -> StatusExtra {
    let weak = Arc::downgrade(sup);
    StatusExtra {
        supervisor: Some(Arc::new(move || {
            weak.upgrade()
                .map(|s| {
                    s.pids()
                        .into_iter()
                        .zip(s.restarts())
                        .map(|((name, pid), (_, restarts))| (name, pid, restarts))
                        .collect()
                })
                .unwrap_or_default()
        })),
        ..StatusExtra::default()
    }
}

/// The LS of `dnslb up`: waits for its own table servers to answer (a
/// bounded wait), then serves.
async fn with_ls(
    cfg: &Config,
    sockets: LsSockets,
    sup: &Arc<Supervisor>,
    controls: &mut Controls,
    root: &CancellationToken,
) -> Result<(), RoleError> {
    let role = LsRole::new(cfg.clone())?.with_children(sup, status_extra(sup));
    let balancer = role.balancer().clone();
    let lsc = ls_section(cfg)?;
    // Clients are served once our own table servers answer (their queries
    // wait in the bound sockets meanwhile), or after a bounded wait. Other
    // backends get one probe timeout, as under `dnslb ls`: a backend that is
    // not ours does not hold the LS back for STARTUP_WAIT.
    let own: Vec<SocketAddr> = cfg
        .ts
        .iter()
        .flat_map(|t| t.listen.iter().copied())
        .collect();
    let others_wait = Duration::from_millis(lsc.health.timeout_ms.max(1)).min(STARTUP_WAIT);
    let started = tokio::time::Instant::now();
    let stopped = {
        let first = probe::first_round(&balancer, STARTUP_WAIT);
        tokio::pin!(first);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                late = &mut first => {
                    if !late.is_empty() {
                        warn!(late = ?late, waited = ?STARTUP_WAIT,
                              "serving although these backends have not answered yet");
                    }
                    break false;
                }
                _ = tick.tick() => {
                    let waited = started.elapsed() >= others_wait;
                    let state = balancer.state();
                    let backends = state.backends.iter().map(|b| (b.name.as_str(), b.addr, b.is_up()));
                    if let Some(late) = startup_done(backends, &own, waited) {
                        if !late.is_empty() {
                            warn!(late = ?late, "these backends did not answer the first probe; down until they do");
                        }
                        break false;
                    }
                }
                control = controls.next() => match control {
                    Control::Shutdown => break true,
                    Control::Reload => {
                        // Not lost: the children reread their zones, the LS
                        // its [ls], now (the start-up wait goes on).
                        info!("reload during the start-up wait: applied now");
                        role.reload();
                    }
                },
            }
        }
    };
    if stopped {
        info!("stopped before serving");
        return Ok(());
    }
    role.serve(sockets, controls, root).await
}

/// Whether `dnslb up` may serve, given each backend as (name, address, up): every
/// backend that is one of its own table servers (`own`, their listen addresses) is
/// up, and so is every other one unless `waited`. Returns the backends not up (to
/// name), or `None` to wait on.
fn startup_done<'a>(
    backends: impl IntoIterator<Item = (&'a str, SocketAddr, bool)>,
    own: &[SocketAddr],
    waited: bool,
) -> Option<Vec<String>> {
    let is_own = |addr: SocketAddr| {
        own.iter()
            .any(|l| l.port() == addr.port() && (l.ip() == addr.ip() || l.ip().is_unspecified()))
    };
    let mut late = Vec::new();
    for (name, addr, up) in backends {
        if !up {
            if is_own(addr) || !waited {
                return None;
            }
            late.push(name.to_owned());
        }
    }
    Some(late)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_serves_once_its_own_children_are_up() {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let backends = |own_up: bool, other_up: bool| {
            [("own", addr(5301), own_up), ("other", addr(5302), other_up)]
        };
        let own = [SocketAddr::from(([0, 0, 0, 0], 5301))];
        // Nothing is up before the first probes: wait.
        assert_eq!(startup_done(backends(false, false), &own, false), None);
        assert_eq!(startup_done(backends(false, false), &own, true), None);
        // Our own child is up; the other one holds the LS only until `waited`.
        assert_eq!(startup_done(backends(true, false), &own, false), None);
        assert_eq!(
            startup_done(backends(true, false), &own, true),
            Some(vec!["other".to_owned()])
        );
        assert_eq!(
            startup_done(backends(true, true), &own, false),
            Some(Vec::new())
        );
    }

    #[test]
    fn with_a_cache_the_children_notify_the_ls() {
        let text = |ls: &str| {
            format!(
                "{ls}\n[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n\
                 [[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\n"
            )
        };
        let specs = |ls: &str| {
            let cfg = Config::parse(&text(ls), Path::new("c.toml")).unwrap();
            let log = LogFlags {
                filter: None,
                format: LogFormat::Text,
            };
            let spec = child_specs(&cfg, Path::new("/bin/dnslb"), Path::new("/c.toml"), &log);
            spec[0]
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let plain = "[ls]\nlisten = [\"0.0.0.0:5300\"]\n";
        assert!(!specs(plain).contains("--notify"), "{}", specs(plain));
        let cached = format!("{plain}[ls.cache]\n");
        assert!(
            specs(&cached).ends_with("--notify 127.0.0.1:5300"),
            "{}",
            specs(&cached)
        );
        let v6 = "[ls]\nlisten = [\"[::]:53\"]\n[ls.cache]\n";
        assert!(specs(v6).ends_with("--notify [::1]:53"), "{}", specs(v6));
    }

    #[test]
    fn children_get_the_log_flags() {
        let flags = LogFlags {
            filter: Some("debug".into()),
            format: LogFormat::Json,
        };
        assert_eq!(
            flags.child_args(),
            ["--log-format", "json", "--log", "debug"]
        );
        let flags = LogFlags {
            filter: None,
            format: LogFormat::Text,
        };
        assert_eq!(flags.child_args(), ["--log-format", "text"]);
    }
}

//! The TS role (`dnslb ts`): loads the zones and binds ([`TsRole::start`]),
//! serves until told to stop, rereads its zone files on [`Control::Reload`] and
//! NOTIFYs its secondaries of each zone that changed, signs again the zones
//! it signs when their signatures are due (NOTIFYing them too), and drains
//! on [`Control::Shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::ts_restart::{restart_keys, restart_warning};
use super::{Control, Controls, RoleError, SHUTDOWN_GRACE, bind_metrics, ts_doq::TsDoq};
use crate::config::{DnstapConfig, DnstapSide};
use crate::dnstap::{self, Dnstap, DnstapTask};
use crate::server::{self, Listeners, ServerOptions};
use crate::supervise::report_reload;
use crate::ts::error::ZoneError;
use crate::ts::secondary::client::{Limits, TransferSlots};
use crate::ts::secondary::consumer::{self, Changed, Consumer};
use crate::ts::secondary::driver::{Driving, Secondaries, run as run_secondary};
use crate::ts::secondary::install::Installer;
use crate::ts::secondary::listed::{self, Listed, ListedChanges};
use crate::ts::secondary::writer::StateWriter;
use crate::ts::service::check::{Checker, Label, Probe, Target, in_flight_bound};
use crate::ts::xfr::notify::policy::{log_notified, notify_wait};
use crate::ts::xfr::notify::task::{Announce, run_notifier};
use crate::ts::zone::Catalog;
use crate::ts::zone_control::{ZoneControl, ZoneLog};
use crate::ts::zones_live::{SecondaryPlan, with_zones_of};
use crate::ts::{TableServer, TsSettings};
use crate::xdp::{XdpPlan, XdpServer};

/// The longest the TS sleeps before reading its keys folder again and
/// looking at when its signatures are due: a key added or its timing
/// changed (`dnssec-keygen`, `dnssec-settime`) with no SIGHUP is followed
/// within this, and a clock that jumped is noticed.
const REFRESH_CHECK: Duration = Duration::from_secs(300);

/// How long after a failed refresh of signatures it is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(60);

/// How long the TS sleeps before signing again: until `due` (seconds since
/// the epoch, `now` being the clock; `None`: it signs nothing), at most
/// [`REFRESH_CHECK`], and at least `backoff` (what is left of
/// [`REFRESH_RETRY`] after a refresh that failed).
fn refresh_wait(due: Option<u32>, now: u32, backoff: Duration) -> Option<Duration> {
    due.map(|at| {
        let left = Duration::from_secs(u64::from(at.saturating_sub(now)));
        left.min(REFRESH_CHECK).max(backoff)
    })
}

/// One table server to run: what it serves, and where.
#[derive(Debug, Clone)]
pub struct TsRun {
    /// What it serves.
    pub settings: TsSettings,
    /// DNS, UDP and TCP on each address (at least one).
    pub listen: Vec<SocketAddr>,
    /// Prometheus `/metrics`, if on (`metrics` in its `[[ts]]`).
    pub metrics: Option<SocketAddr>,
    /// UDP sockets/threads.
    pub workers: usize,
    /// dnstap of its queries and answers (`dnstap` in its `[[ts]]`), if on.
    pub dnstap: Option<DnstapConfig>,
    /// Interfaces whose UDP to `listen` goes through AF_XDP (`xdp` in its `[[ts]]`).
    pub xdp: Vec<String>,
}

/// `dnslb ts`: [`TsRole::start`], then [`TsRole::serve`].
///
/// # Errors
/// A zone that does not load, an address that cannot be bound, or the DNS
/// server dying.
pub async fn run(run: TsRun, controls: Controls) -> Result<(), RoleError> {
    TsRole::start(run).await?.serve(controls).await
}

/// A table server with its zones loaded and its sockets bound, not serving yet.
pub struct TsRole {
    name: String,
    listen: Vec<SocketAddr>,
    workers: usize,
    ts: Arc<TableServer>,
    listeners: Listeners,
    metrics: Option<TcpListener>,
    /// The zone control's listener (`control` in its `[[ts]]`).
    control: Option<TcpListener>,
    /// The dnstap writer, if on, and what stops it.
    dnstap: Option<(DnstapTask, CancellationToken)>,
    /// Its secondary zones.
    secondaries: Arc<Secondaries>,
    /// Interfaces whose UDP goes through AF_XDP.
    xdp: Vec<String>,
    /// DNS over QUIC (`quic` in its `[[ts]]`), when on.
    doq: Option<TsDoq>,
}

impl TsRole {
    /// Loads the zones of `run`, then binds its addresses.
    ///
    /// # Errors
    /// A zone that does not load, or an address that cannot be bound.
    pub async fn start(run: TsRun) -> Result<Self, RoleError> {
        let TsRun {
            settings,
            listen,
            metrics,
            workers,
            dnstap,
            xdp,
        } = run;
        let name = settings.name.clone();
        let secondaries = Secondaries::load(&settings).map_err(ZoneError::Key)?;
        let ts = TableServer::load(settings)?;
        let taken = ts
            .settings()
            .secondaries
            .iter()
            .chain(&ts.settings().catalog_from);
        for s in taken {
            if ts
                .catalog()
                .zones()
                .iter()
                .any(|z| s.name.eq_ignore_root(z.origin()))
            {
                return Err(ZoneError::Shared {
                    file: format!("[[ts]] {name}").into(),
                    msg: format!("the zone {} is given twice, by a zone file and as a secondary zone: give each zone once", s.name),
                }
                .into());
            }
        }
        let mut listeners = Listeners::bind(&listen, workers)?;
        let doq = TsDoq::start_for(&ts, &mut listeners)?;
        let metrics = bind_metrics("ts.metrics", metrics).await?;
        let control = ts
            .settings()
            .started_from
            .as_ref()
            .and_then(|(_, c)| c.control);
        let control = bind_metrics("ts.control", control).await?;
        let (ts, dnstap) = match dnstap {
            Some(cfg) => {
                let token = CancellationToken::new();
                let settings = dnstap::Settings::from_config(&cfg, DnstapSide::Ts);
                let (tap, writer) = Dnstap::start(settings, token.clone());
                let served_at = (listeners.local_addrs().first().or(listen.first()).copied())
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                (ts.with_dnstap(tap, served_at), Some((writer, token)))
            }
            None => (ts, None),
        };
        Ok(TsRole {
            name,
            listen,
            workers,
            ts: Arc::new(ts),
            listeners,
            metrics,
            control,
            dnstap,
            secondaries: Arc::new(secondaries),
            xdp,
            doq,
        })
    }

    /// The DNS addresses bound (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.listeners.local_addrs()
    }

    /// The table server (its zones and counters).
    pub fn table(&self) -> &Arc<TableServer> {
        &self.ts
    }

    /// Serves until [`Control::Shutdown`]. On [`Control::Reload`] the zone files are
    /// reread, and each secondary in `notify` is NOTIFYed of every zone that changed
    /// (from the listen address, by one task: see [`run_notifier`]; the NOTIFYs are
    /// abandoned at stop). Stopping waits up to [`SHUTDOWN_GRACE`] for the queries
    /// in flight and the notifier.
    ///
    /// # Errors
    /// [`RoleError::Died`]: the DNS server ended on its own.
    pub async fn serve(self, mut controls: Controls) -> Result<(), RoleError> {
        let (name, listen, ts) = (self.name, self.listen, self.ts);
        let (listeners, metrics, workers) = (self.listeners, self.metrics, self.workers);
        let dnstap = self.dnstap;
        log_zones_loaded(&name, &ts.catalog());
        let addrs = listeners.local_addrs().to_vec();
        let token = CancellationToken::new();
        // Dropped before its end (a task aborted): the server, the checker,
        // the notifier, the secondaries and the dnstap writer are told to stop.
        let _on_drop = (
            token.clone().drop_guard(),
            dnstap.as_ref().map(|(_, stop)| stop.clone().drop_guard()),
        );
        let opts = ServerOptions {
            workers,
            ..ServerOptions::default()
        };
        // Before the first answer: the services' first round of checks.
        let checker = start_checker(&ts, &token).await;
        let xdp_socket = (!self.xdp.is_empty()).then(|| listeners.udp_dup());
        let mut server = tokio::spawn(server::serve(listeners, ts.clone(), opts, token.clone()));
        let xdp = xdp_socket.and_then(|sock| start_xdp(&name, &self.xdp, &addrs, &ts, sock));
        let metrics = metrics.map(|l| {
            if let Ok(addr) = l.local_addr() {
                info!(ts = %name, %addr, "metrics ready");
            }
            tokio::spawn(crate::metrics::serve_ts(l, ts.clone(), token.clone()))
        });
        TsDoq::log_ready(self.doq.as_ref(), &name);
        info!(ts = %name, addr = ?addrs, "table server ready");
        crate::systemd::ready(&format!("{name} answering on {addrs:?}"));
        // One task sends every NOTIFY: at most one pending per zone and
        // secondary, however often the zones change.
        let (announce, announced) = tokio::sync::mpsc::unbounded_channel();
        // What `dnslb zone status` shows of the zones' events since start.
        let zone_log = Arc::new(ZoneLog::new(crate::clock::unix_now()));
        let notifier = tokio::spawn({
            let (name, token, log) = (name.clone(), token.clone(), zone_log.clone());
            let report = move |zone: &Name, target, done| {
                log.notified(zone, target, done, crate::clock::unix_now());
                log_notified(&name, zone, target, done);
            };
            // From the first address's IP (another family's from any).
            let from = listen.first().map(SocketAddr::ip);
            run_notifier(from, announced, token, notify_wait, report)
        });
        // A restart that serves a new serial tells the secondaries at once,
        // as NSD does at start (their copy is older; the SOA refresh may be
        // an hour away).
        announce_zones(&ts, &announce, ts.changed_at_start().to_vec());
        let zones = ZoneControl::new(
            ts.clone(),
            self.secondaries.clone(),
            announce.clone(),
            zone_log.clone(),
        );
        let (secondaries, listed) = start_secondaries(&ts, self.secondaries, &announce, &token);
        let control = self.control.map(|l| {
            if let Ok(addr) = l.local_addr() {
                info!(ts = %name, %addr, "zone control ready");
            }
            tokio::spawn(crate::metrics::serve_zone_control(l, zones, token.clone()))
        });
        let mut died = None;
        // After a refresh that failed (keys unreadable...): tried again then,
        // not at once.
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            // Signatures due for refresh: woken then (or within [`REFRESH_CHECK`], to read the keys again).
            let backoff = retry_at.map_or(Duration::ZERO, |r| {
                r.saturating_duration_since(tokio::time::Instant::now())
            });
            let refresh_in = refresh_wait(ts.next_refresh(), crate::ts::clock::now_u32(), backoff);
            let step = tokio::select! {
                end = &mut server => {
                    died = Some(end);
                    break;
                }
                control = controls.next() => Some(control),
                () = tokio::time::sleep(refresh_in.unwrap_or(REFRESH_CHECK)), if refresh_in.is_some() => None,
            };
            // Reading, compiling and signing zones is long work: off the
            // runtime's threads (the old zones answer meanwhile).
            let t = ts.clone();
            let changed = match step {
                Some(Control::Shutdown) => break,
                Some(Control::Reload) => {
                    TsDoq::reload(self.doq.as_ref(), &name);
                    // The config file first: one that does not read is a
                    // change made half, and none of it is applied.
                    let listed = listed.clone();
                    let log = zone_log.clone();
                    tokio::task::spawn_blocking(move || reload_whole(&t, &listed, &log)).await
                }
                None => {
                    let done = tokio::task::spawn_blocking(move || t.refresh_logged()).await;
                    let still_due = ts
                        .next_refresh()
                        .is_some_and(|at| at <= crate::ts::clock::now_u32());
                    retry_at = still_due.then(|| tokio::time::Instant::now() + REFRESH_RETRY);
                    done
                }
            };
            announce_zones(&ts, &announce, changed.unwrap_or_default());
        }
        if let Some(end) = &died {
            error!(ts = %name, panicked = end.is_err(), "the DNS server stopped on its own; exiting");
        } else {
            info!(ts = %name, "stopping");
            crate::systemd::stopping();
        }
        token.cancel();
        // The XDP path drains beside the server: its workers read no new
        // query but send the answers given later (the `fault` delay's) until
        // none is left or the grace is over; then the programs are detached.
        let xdp = xdp.map(|x| x.drain_and_stop(SHUTDOWN_GRACE));
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            if died.is_none() {
                let _ = server.await;
            }
            let _ = notifier.await;
            for task in secondaries {
                let _ = task.await;
            }
            for m in metrics.into_iter().chain(control) {
                let _ = m.await;
            }
            if let Some(c) = checker {
                let _ = c.await;
            }
            if let Some(c) = ts.take_checker() {
                c.join().await;
            }
        })
        .await;
        if let Some(x) = xdp {
            let _ = x.await;
        }
        // Last, once no answer is left to write: what is queued, STOP, FINISH.
        if let Some((writer, stop)) = dnstap {
            stop.cancel();
            writer.stopped().await;
        }
        if died.is_some() {
            return Err(RoleError::Died);
        }
        Ok(())
    }
}

/// Answers the TS gives later (its `fault` delay) in flight through the XDP
/// path, at most.
const TS_LATER_MAX: usize = 4096;

/// The XDP path on `ifaces` for `addrs` (see [`XdpServer::start`]); `None`
/// when it does not start (the log says why): sockets serve alone.
fn start_xdp(
    name: &str,
    ifaces: &[String],
    addrs: &[SocketAddr],
    ts: &Arc<TableServer>,
    sock: std::io::Result<std::net::UdpSocket>,
) -> Option<XdpServer> {
    let sock = match sock {
        Ok(s) => s,
        Err(err) => {
            warn!(ts = %name, %err, "xdp: no socket to share; serving through sockets");
            return None;
        }
    };
    XdpServer::start(XdpPlan {
        who: name,
        ifaces,
        addrs,
        handler: ts.clone(),
        kernel_sock: sock,
        counters: ts.metrics().xdp.clone(),
        policy: None,
        later_max: TS_LATER_MAX,
        later: crate::server::detached::Detached::default(),
        upstream: None,
    })
}

/// A reload of `dnslb ts`: the config file it started from is read first
/// (a TS not started from a file has none); when it does not read, nothing
/// is reloaded (a change of config and zones together is not applied half:
/// the zone files wait for the config to be fixed), the refusal is counted
/// and logged with its `file:line`. Else the zone files are reread, those
/// its `zones` now lists (all or nothing, [`TableServer::reload_with`]),
/// the secondary zones it added, removed or changed are handed to `listed`,
/// then one line warns of the other keys of its `[[ts]]` changed since
/// start (`service`, `listen`...), which only a restart applies. The
/// outcome goes to the supervising `dnslb up`, if any ([`report_reload`]).
/// Returns the zones that changed or were added (to NOTIFY).
fn reload_whole(
    ts: &TableServer,
    listed: &mpsc::UnboundedSender<ListedChanges>,
    log: &ZoneLog,
) -> Vec<Name> {
    let name = &ts.settings().name;
    let applied = ts.applied();
    let config = match applied.started_as() {
        Some((path, _)) => match crate::config::Config::load(path) {
            Ok(c) => Some(c),
            Err(err) => {
                ts.metrics().record_reload(false);
                warn!(ts = %name, %err, "reload refused: the config file does not read; old zones keep serving, the zone files are not reread");
                log.reloaded(crate::clock::unix_now(), false, [], &err.to_string());
                report_reload(false, &err.to_string());
                return Vec::new();
            }
        },
        None => None,
    };
    let restart = config
        .as_ref()
        .map(|c| restart_keys(&applied, c))
        .unwrap_or_default();
    let next = config.as_ref().and_then(|c| with_zones_of(&applied, c));
    let plan = (next.as_ref())
        .map(|n| SecondaryPlan::of(&applied.secondaries, &n.secondaries))
        .unwrap_or_default();
    let changes = match ListedChanges::read(plan) {
        Ok(c) => c,
        Err(err) => {
            ts.metrics().record_reload(false);
            warn!(ts = %name, %err, "reload refused, old zones keep serving");
            log.reloaded(crate::clock::unix_now(), false, [], &err);
            report_reload(false, &err);
            return Vec::new();
        }
    };
    let changed = match ts.reload_with(next) {
        Ok(r) => {
            let (added, removed) = (r.added.len(), r.removed.len());
            // The secondary zones the reload starts and stops (their
            // tasks do it next, each logging its zone).
            let (secondaries_added, secondaries_removed) =
                (changes.start.len(), changes.remove.len());
            info!(ts = %name, changed = r.changed, compiled = r.compiled, zones = r.zones, added, removed, secondaries_added, secondaries_removed, "reload done");
            for z in r.added.iter().take(ZONES_LOGGED_EACH) {
                info!(ts = %name, zone = %z, "zone added");
            }
            for z in r.removed.iter().take(ZONES_LOGGED_EACH) {
                info!(ts = %name, zone = %z, "zone removed: no longer served");
            }
            let mut done = format!("changed={} zones={}", r.changed, r.zones);
            if added + removed > 0 {
                done += &format!(" added={added} removed={removed}");
            }
            if secondaries_added + secondaries_removed > 0 {
                done += &format!(
                    " secondaries_added={secondaries_added} secondaries_removed={secondaries_removed}"
                );
            }
            if !restart.is_empty() {
                done += &format!("; not applied until a restart: {}", restart.join(", "));
            }
            // The listed secondary zones follow the files: a zone a file
            // now gives is served from it before its secondary's task stops.
            if !(changes.start.is_empty()
                && changes.restart.is_empty()
                && changes.remove.is_empty())
            {
                let _ = listed.send(changes);
            }
            let loaded = r.changed_zones.iter().chain(&r.added);
            log.reloaded(crate::clock::unix_now(), true, loaded, &done);
            report_reload(true, &done);
            // A zone added is NOTIFYed too (a secondary set up for it
            // before it was served takes it at once), once.
            let mut notify = r.changed_zones;
            notify.extend(r.added);
            notify.sort_unstable();
            notify.dedup();
            notify
        }
        Err(err) => {
            warn!(ts = %name, %err, "reload refused, old zones keep serving");
            log.reloaded(crate::clock::unix_now(), false, [], &err.to_string());
            report_reload(false, &err.to_string());
            Vec::new()
        }
    };
    if let Some(w) = config.and_then(|c| restart_warning(&applied, &c)) {
        warn!(ts = %name, "{w}");
    }
    changed
}

/// Most endpoint probes in flight at once, for all the services of a TS:
/// as many as the checks due per second times their timeout (so that no
/// check waits behind the bound even when every probe times out), within a
/// quarter of the open-file limit: each probe holds a descriptor, the
/// connection caps take half the limit (`server::fdlimit`), and the other
/// half is the server's own (listeners, transfers, NOTIFYs, zone files).
fn checks_in_flight(targets: &[(Target, Vec<Label>)]) -> usize {
    let fd_budget = crate::server::fdlimit::connection_cap(usize::MAX, 2);
    let probed = targets
        .iter()
        .filter(|(t, _)| t.check.probe != Probe::None)
        .map(|(t, _)| (t.check.interval_ms, t.check.timeout_ms));
    in_flight_bound(probed, fd_budget)
}

/// Zones logged one line each at start, at most: a TS of more (a hosting
/// provider's 100,000) logs one line for them all (a line a zone was a
/// tenth of a start's work there, and no operator reads 100,000 lines).
const ZONES_LOGGED_EACH: usize = 100;

/// Logs the zones `catalog` holds at start: one line a zone ("zone
/// loaded"), or one line for them all ("zones loaded") above
/// [`ZONES_LOGGED_EACH`]. The catalog is a temporary of the caller's: the
/// first catalog must not outlive its first reload.
fn log_zones_loaded(name: &str, catalog: &Catalog) {
    let zones = catalog.zones();
    if zones.len() <= ZONES_LOGGED_EACH {
        for z in zones {
            info!(ts = %name, zone = %z.origin(), rrsets = z.rrset_count(), bytes = z.compiled_bytes(), serial = z.serial(), "zone loaded");
        }
        return;
    }
    let rrsets: usize = zones.iter().map(|z| z.rrset_count()).sum();
    let bytes: usize = zones.iter().map(|z| z.compiled_bytes()).sum();
    info!(ts = %name, zones = zones.len(), rrsets, bytes, "zones loaded");
}

/// Starts the endpoint checker of `ts`'s services (none: nothing), waits
/// for its first round (every endpoint probed at once, its first result its
/// state; bounded by the largest `timeout_ms` and [`FIRST_ROUND_SLACK`]: an
/// endpoint not judged by then stays up) and installs that round's answers,
/// then starts the task that rebuilds them on each change of the live set;
/// both stop when `token` is cancelled. A health change sends no NOTIFY:
/// the zone's data (every endpoint) did not change.
async fn start_checker(
    ts: &Arc<TableServer>,
    token: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let targets = ts.service_targets();
    if targets.is_empty() {
        return None;
    }
    let in_flight = checks_in_flight(&targets);
    tracing::debug!(
        targets = targets.len(),
        in_flight,
        "endpoint checker starting"
    );
    let round_limit = targets
        .iter()
        .filter(|(t, _)| t.check.probe != Probe::None)
        .map(|(t, _)| t.check.timeout_ms)
        .max()
        .map(|ms| Duration::from_millis(ms) + FIRST_ROUND_SLACK);
    let (mut checker, mut live) = Checker::start(targets, in_flight, token.child_token());
    let first_round = checker.first_round();
    ts.attach_checker(checker);
    if let (Some(round), Some(limit)) = (first_round, round_limit) {
        let waited = tokio::select! {
            () = token.cancelled() => None,
            r = tokio::time::timeout(limit, round) => Some(r),
        };
        if let Some(Err(_)) = waited {
            tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "the endpoints' first round of checks did not end in time: those not judged yet are answered as up"
            );
        }
    }
    ts.set_live(&live.borrow_and_update());
    let (ts, token) = (Arc::clone(ts), token.clone());
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                changed = live.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let set = Arc::clone(&live.borrow_and_update());
                    ts.set_live(&set);
                }
            }
        }
    }))
}

/// Time allowed past the largest `timeout_ms` for the first round of
/// checks to be judged and published (scheduling, the answers' rebuild).
const FIRST_ROUND_SLACK: Duration = Duration::from_millis(100);

/// Starts one task per secondary zone of `ts` (stopped by `token`), its
/// new versions NOTIFYed to the TS's own secondaries, and answers the
/// NOTIFYs for them: the catalog of `catalog_from` and its consumer, and
/// the zones `zones` lists, run by [`listed::run`] (told the changes of
/// each reload on the sender returned).
fn start_secondaries(
    ts: &Arc<TableServer>,
    secondaries: Arc<Secondaries>,
    announce: &tokio::sync::mpsc::UnboundedSender<Announce>,
    token: &CancellationToken,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    mpsc::UnboundedSender<ListedChanges>,
) {
    if !secondaries.zones().is_empty() {
        listed::answer_notifies(ts, &secondaries);
    }
    let mut tasks = Vec::new();
    // One writer of state_dir, off the runtime's threads; stopped once the
    // zones' tasks have ended (nothing is handed in after), it finishes
    // what is queued within its grace.
    let state_dir = ts.settings().state_dir.clone();
    let writer_stop = CancellationToken::new();
    let mut writer_task = None;
    let writer = state_dir.clone().and_then(|dir| {
        match StateWriter::start(dir, writer_stop.clone()) {
            Ok((w, task)) => {
                writer_task = Some(task);
                Some(w)
            }
            Err(err) => {
                tracing::error!(ts = %ts.settings().name, %err, "cannot start the state_dir writer: no copy is kept");
                None
            }
        }
    });
    let driving = Driving {
        state_dir,
        writer,
        limits: Limits::default(),
        copies: None,
        installer: Arc::new(Installer::new(ts.clone())),
        slots: Some(Arc::new(TransferSlots::default())),
        accept: None,
    };
    let changed: Changed = {
        let (t, announce) = (ts.clone(), announce.clone());
        Arc::new(move |origin: Name| announce_zones(&t, &announce, vec![origin]))
    };
    let catalog = ts.settings().catalog_from.as_ref().map(|c| c.name.clone());
    let base = driving;
    let mut listed_zones = Vec::new();
    for zone in secondaries.zones() {
        let mut driving = base.clone();
        if !catalog
            .as_ref()
            .is_some_and(|c| c.eq_ignore_root(&zone.name))
        {
            listed_zones.push(zone);
            continue;
        }
        // The catalog: its versions go to the consumer, which makes
        // its members secondary zones.
        let (tx, rx) = tokio::sync::watch::channel(None);
        driving.copies = Some(tx);
        driving.limits.max_bytes = consumer::CATALOG_MAX_BYTES;
        // Never queued behind its members; a version refused is not
        // taken (nor kept in state_dir).
        driving.slots = None;
        driving.accept = Some(consumer::accept(zone.name.clone()));
        let c = Consumer {
            ts: ts.clone(),
            secondaries: secondaries.clone(),
            catalog: zone.clone(),
            // Members: as any secondary zone.
            driving: base.clone(),
            changed: changed.clone(),
        };
        tasks.push(tokio::spawn(consumer::run(c, rx, token.clone())));
        let changed = changed.clone();
        tasks.push(tokio::spawn(run_secondary(
            ts.clone(),
            zone,
            driving,
            move |origin| changed(origin),
            token.clone(),
        )));
    }
    let (tell, told) = mpsc::unbounded_channel();
    let l = Listed {
        ts: ts.clone(),
        secondaries,
        driving: base,
        changed,
    };
    tasks.push(tokio::spawn(listed::run(
        l,
        listed_zones,
        told,
        token.clone(),
    )));
    if let Some(writer) = writer_task {
        let zones = std::mem::take(&mut tasks);
        tasks.push(tokio::spawn(async move {
            for task in zones {
                let _ = task.await;
            }
            writer_stop.cancel();
            let _ = writer.await;
        }));
    }
    (tasks, tell)
}

/// Hands the notifier the NOTIFYs of `zones` (with their SOAs now) to the
/// `notify` targets of `ts`, signed with its transfer key when it has one
/// (the config's own LS too: it checks them with that key, see
/// `[[ls.backend]] notify_key`).
fn announce_zones(
    ts: &TableServer,
    announce: &tokio::sync::mpsc::UnboundedSender<Announce>,
    zones: Vec<Name>,
) {
    let targets = &ts.settings().notify;
    if zones.is_empty() || targets.is_empty() {
        return;
    }
    let catalog = ts.catalog();
    let key = ts.xfr_key();
    for zone in zones {
        let soa = catalog.named(&zone).map(|z| {
            let rr = z.soa_rr();
            Record::from_rdata(rr.name.clone(), rr.ttl, rr.data.clone())
        });
        // The notifier runs until the token is cancelled, after the
        // serving loop.
        let _ = announce.send(Announce {
            zone,
            soa,
            targets: targets.clone(),
            key: key.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ts_wakes_when_signatures_are_due_or_to_read_its_keys_and_backs_off_after_a_failure() {
        let none = Duration::ZERO;
        assert_eq!(refresh_wait(None, 100, none), None, "nothing signed here");
        assert_eq!(
            refresh_wait(Some(160), 100, none),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            refresh_wait(Some(50), 100, none),
            Some(none),
            "overdue: at once"
        );
        assert_eq!(
            refresh_wait(Some(100 + 86_400), 100, none),
            Some(REFRESH_CHECK)
        );
        // Still due after a refresh that failed: not a busy loop.
        assert_eq!(
            refresh_wait(Some(50), 100, REFRESH_RETRY),
            Some(REFRESH_RETRY)
        );
    }

    #[test]
    fn a_reload_after_a_service_changed_in_the_file_warns_that_only_a_restart_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("z.zone");
        std::fs::write(
            &zone,
            "$ORIGIN example.org.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\n",
        )
        .unwrap();
        let config = dir.path().join("c.toml");
        let text_with = |pick: u32, zones: &str| {
            format!(
                "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [{zones}]\n[[ts.service]]\nname = \"www.example.org\"\nselect = \"weighted\"\npick = {pick}\nendpoint = [ {{ addr = \"192.0.2.1\" }}, {{ addr = \"192.0.2.2\" }} ]\n"
            )
        };
        let one = format!("{:?}", zone.display().to_string());
        let text = |pick: u32| text_with(pick, &one);
        std::fs::write(&config, text(1)).unwrap();
        let cfg = crate::config::Config::load(&config).unwrap();
        let settings = TsSettings::from_config_in(&cfg, &cfg.ts[0]);
        let restart_warning =
            |s: &TsSettings| restart_warning(s, &crate::config::Config::load(&config).unwrap());
        assert_eq!(restart_warning(&settings), None, "nothing changed");
        std::fs::write(&config, text(2)).unwrap();
        let w = restart_warning(&settings).expect("a warning");
        assert!(
            w.contains("t (service)") && w.contains("only a restart of the TS applies that"),
            "{w}"
        );
        let now = crate::config::Config::load(&config).unwrap();
        assert_eq!(restart_keys(&settings, &now), ["service"], "as reported");
        // The zone files started with are the settings' (not kept twice):
        // a list changed is applied, not warned of.
        let other = format!(
            "{one}, {:?}",
            dir.path().join("y.zone").display().to_string()
        );
        std::fs::write(&config, text_with(1, &other)).unwrap();
        assert_eq!(
            restart_warning(&settings),
            None,
            "zones are applied by the reload"
        );
        std::fs::write(&config, text(1)).unwrap();
        assert_eq!(restart_warning(&settings), None, "back as started");
        assert_eq!(
            restart_warning(&TsSettings::for_test(vec![zone])),
            None,
            "not from a file"
        );
    }
}

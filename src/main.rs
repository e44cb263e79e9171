//! The `dnslb` binary: parses the command line, sets up logging and the
//! runtime, and runs one role. Errors end here as one line and exit code 1.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use dnslb::cli::{Cli, Command, TsArgs};
use dnslb::config::{Config, Fault, LsConfig, OnMiss, TsConfig};
use dnslb::logging::LogFormat;
use dnslb::ls::{Balancer, health};
use dnslb::metrics::StatusExtra;
use dnslb::resolve::ResolveOptions;
use dnslb::server::{self, Listeners, ServerOptions};
use dnslb::shutdown::{Signal, Signals};
use dnslb::supervise::{Backoff, ChildSpec, Supervisor, SupervisorSignal};
use dnslb::ts::{TableServer, TsSettings, parse_origin};

/// How long a stopping server may take to finish what it is doing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A table server tags every line with its name (`dnslb up` forwards
    // its children's lines, which must say whose they are).
    let tag = match &cli.command {
        Command::Ts(a) => a.name.clone().or_else(|| a.listen.map(|l| l.to_string())),
        _ => None,
    };
    dnslb::logging::init(cli.log.as_deref(), cli.log_format, tag.as_deref());
    let format = cli.log_format;
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            report(format, &format!("dnslb: error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one problem line on stderr: as it is, or as an `error` event
/// when the logs are JSON (so that every line of stderr is JSON).
fn report(format: LogFormat, line: &str) {
    match format {
        LogFormat::Text => eprintln!("{line}"),
        LogFormat::Json => error!("{line}"),
    }
}

/// The logging flags `dnslb up` passes on to its children.
#[derive(Debug, Clone)]
struct LogFlags {
    filter: Option<String>,
    format: LogFormat,
}

impl LogFlags {
    /// `--log-format F` and, when given, `--log FILTER`.
    fn child_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = vec!["--log-format".into(), self.format.as_str().into()];
        if let Some(f) = &self.filter {
            args.extend(["--log".into(), f.into()]);
        }
        args
    }
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Cli {
        log,
        log_format,
        command,
    } = cli;
    let flags = LogFlags {
        filter: log,
        format: log_format,
    };
    if matches!(
        command,
        Command::Ls { .. } | Command::Up { .. } | Command::Ts(_)
    ) {
        // A server holds a descriptor per TCP client: the soft limit (often
        // 1024) would be reached long before the connection cap.
        dnslb::server::fdlimit::raise_nofile();
    }
    match command {
        Command::Check { config } => {
            let dnslb::check::Checked { problems, warnings } = dnslb::check::check_all(&config);
            for p in problems.iter().chain(&warnings) {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                eprintln!("{}: ok", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Resolve {
            server,
            input,
            output,
            concurrency,
            timeout_ms,
            retries,
        } => {
            let opts = ResolveOptions {
                server,
                concurrency,
                timeout: Duration::from_millis(timeout_ms),
                retries,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            // resolve::run prints its own summary line on stderr.
            runtime(2)?.block_on(dnslb::resolve::run(
                input.as_deref(),
                output.as_deref(),
                opts,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { config } => {
            let cfg = Config::load(&config)?;
            let workers = ls_section(&cfg)?.workers;
            runtime(workers)?.block_on(run_ls(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Up { config } => {
            // Nothing starts unless the whole config and every zone is good.
            let problems = dnslb::check::check(&config);
            if !problems.is_empty() {
                for p in &problems {
                    report(flags.format, &p.to_string());
                }
                report(
                    flags.format,
                    &format!(
                        "dnslb: error: {}: nothing started; fix the problems above",
                        config.display()
                    ),
                );
                return Ok(ExitCode::FAILURE);
            }
            let cfg = Config::load(&config)?;
            // A config with no [ls] runs its table servers only.
            let workers = cfg.ls.as_ref().map_or(2, |ls| ls.workers);
            runtime(workers)?.block_on(run_up(cfg, flags))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config, addr } => {
            let addr = dnslb::status::metrics_addr(&config, addr)?;
            let fetch = dnslb::status::fetch(addr, dnslb::status::FETCH_TIMEOUT);
            let report = runtime(1)?.block_on(fetch)?;
            let table = dnslb::status::render(&report, addr);
            std::io::Write::write_all(&mut std::io::stdout().lock(), table.as_bytes())
                .context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ts(args) => {
            dnslb::supervise::die_with_supervisor()?;
            let ts = ts_settings(*args)?;
            runtime(ts.workers)?.block_on(run_ts(ts))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One table server to run: what it serves, and where.
struct TsRun {
    settings: TsSettings,
    /// DNS, UDP and TCP.
    listen: SocketAddr,
    /// Prometheus `/metrics`, if on (`metrics` in its `[[ts]]`).
    metrics: Option<SocketAddr>,
    /// UDP sockets/threads.
    workers: usize,
}

fn ts_settings(a: TsArgs) -> Result<TsRun> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = a.workers;
    let mut metrics = None;
    let (mut settings, listen) = match (&a.config, &a.name, a.listen) {
        (Some(path), Some(name), _) => {
            let cfg = Config::load(path)?;
            let Some(tc) = cfg.ts_by_name(name) else {
                bail!("{}: no [[ts]] named '{name}'", path.display());
            };
            workers = workers.or(tc.workers);
            metrics = tc.metrics;
            (TsSettings::from_config(tc), tc.listen)
        }
        (None, None, Some(listen)) => {
            let settings = TsSettings {
                name: listen.to_string(),
                zones: a.zone.clone(),
                origin: parse_origin(&a.origin).map_err(anyhow::Error::msg)?,
                ttl: a.ttl,
                on_miss: OnMiss::Nxdomain,
                axfr_allow: Vec::new(),
                notify: Vec::new(),
                fault: Fault::default(),
                nsid: None,
            };
            (settings, listen)
        }
        _ => bail!("give either -c CONFIG --name NAME, or --listen ADDR --zone FILE..."),
    };
    // Flags override the config.
    match a.on_miss.as_deref() {
        None => {}
        Some("nxdomain") => settings.on_miss = OnMiss::Nxdomain,
        Some("silent") => settings.on_miss = OnMiss::Silent,
        Some(other) => bail!("--on-miss: expected nxdomain or silent, got '{other}'"),
    }
    if !a.axfr_allow.is_empty() {
        settings.axfr_allow = a.axfr_allow;
    }
    if let Some(v) = a.delay_ms {
        settings.fault.delay_ms = v;
    }
    for (flag, v, slot) in [
        (
            "--delay-ratio",
            a.delay_ratio,
            &mut settings.fault.delay_ratio,
        ),
        ("--drop-ratio", a.drop_ratio, &mut settings.fault.drop_ratio),
    ] {
        if let Some(v) = v {
            if !(0.0..=1.0).contains(&v) {
                bail!("{flag}: expected a share between 0 and 1, got {v}");
            }
            *slot = v;
        }
    }
    if workers == Some(0) {
        bail!("--workers: must be at least 1");
    }
    Ok(TsRun {
        settings,
        listen,
        metrics,
        workers: workers.unwrap_or(cores),
    })
}

fn ls_section(cfg: &Config) -> Result<&LsConfig> {
    cfg.ls
        .as_ref()
        .with_context(|| format!("{}: no [ls] section", cfg.path.display()))
}

/// How long `dnslb up` waits for its table servers to answer before it
/// serves clients anyway (and names the late ones).
const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// Every socket the LS serves on, bound before anything else happens.
struct LsSockets {
    dns: Listeners,
    metrics: Option<tokio::net::TcpListener>,
}

impl LsSockets {
    async fn bind(lsc: &LsConfig) -> Result<Self> {
        let dns = Listeners::bind(&lsc.listen, lsc.workers)?;
        let metrics = match lsc.metrics {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on ls.metrics {addr}"))?,
            ),
            None => None,
        };
        Ok(LsSockets { dns, metrics })
    }
}

/// Checks that each `[[ts]]` address (and metrics address) can be bound now,
/// so that `up` refuses to start rather than restart a child that can never listen.
fn check_ts_ports(cfg: &Config) -> Result<()> {
    for t in &cfg.ts {
        Listeners::bind(&[t.listen], 1)
            .with_context(|| format!("{}: [[ts]] {}", cfg.path.display(), t.name))?;
        if let Some(addr) = t.metrics {
            std::net::TcpListener::bind(addr).with_context(|| {
                format!(
                    "{}: [[ts]] {}: cannot listen on metrics {addr}",
                    cfg.path.display(),
                    t.name
                )
            })?;
        }
    }
    Ok(())
}

/// `dnslb up`: the TS children under a supervisor, and the LS here (when
/// the config has an `[ls]`; without one, the table servers only).
async fn run_up(cfg: Config, log: LogFlags) -> Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let lsc = cfg.ls.clone();
    check_ts_ports(&cfg)?;
    // Every LS socket is bound before any child exists: between fork and
    // exec a child holds copies of the parent's sockets.
    let sockets = match &lsc {
        Some(lsc) => Some(LsSockets::bind(lsc).await?),
        None => None,
    };
    let exe = std::env::current_exe().context("cannot find the dnslb executable")?;
    // Children may not share our working folder forever: give them an absolute path.
    let config_path = std::fs::canonicalize(&cfg.path).unwrap_or_else(|_| cfg.path.clone());
    let specs = cfg
        .ts
        .iter()
        .map(|t| ChildSpec {
            name: t.name.clone(),
            program: exe.clone(),
            args: [
                "ts".into(),
                "-c".into(),
                config_path.clone().into_os_string(),
                "--name".into(),
                t.name.clone().into(),
            ]
            .into_iter()
            .chain(log.child_args())
            .collect(),
        })
        .collect();
    let root = CancellationToken::new();
    let sup = Arc::new(Supervisor::start(
        specs,
        Backoff::default(),
        root.child_token(),
    ));
    let result = match (lsc, sockets) {
        (Some(lsc), Some(sockets)) => {
            up_with_ls(&cfg, &lsc, sockets, &sup, &mut signals, &root).await
        }
        _ => {
            info!(
                table_servers = cfg.ts.len(),
                "table servers only: the config has no [ls]"
            );
            loop {
                match signals.next().await {
                    Signal::Stop => break,
                    Signal::Reload => {
                        sup.signal_all(SupervisorSignal::Hup);
                        reload(&cfg, None, None, true);
                    }
                }
            }
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

/// The LS of `dnslb up`: waits for its own table servers to answer (a
/// bounded wait), then serves.
async fn up_with_ls(
    cfg: &Config,
    lsc: &LsConfig,
    sockets: LsSockets,
    sup: &Arc<Supervisor>,
    signals: &mut Signals,
    root: &CancellationToken,
) -> Result<()> {
    // The status page lists the children; it must not keep the supervisor alive.
    let weak = Arc::downgrade(sup);
    let extra = StatusExtra {
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
    };
    let balancer = Arc::new(Balancer::new(lsc));
    // Clients are served once our own table servers answer (their queries
    // wait in the bound sockets meanwhile), or after a bounded wait. Other
    // backends get one probe timeout, as under `dnslb ls`: a backend that is
    // not ours does not hold the LS back for STARTUP_WAIT.
    let own: Vec<SocketAddr> = cfg.ts.iter().map(|t| t.listen).collect();
    let others_wait = Duration::from_millis(lsc.health.timeout_ms.max(1)).min(STARTUP_WAIT);
    let started = tokio::time::Instant::now();
    let stopped = {
        let first = health::first_round(&balancer, STARTUP_WAIT);
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
                    if let Some(late) = startup_done(&balancer, &own, waited) {
                        if !late.is_empty() {
                            warn!(late = ?late, "these backends did not answer the first probe; down until they do");
                        }
                        break false;
                    }
                }
                sig = signals.next() => match sig {
                    Signal::Stop => break true,
                    Signal::Reload => {
                        // Not lost: the children reread their zones, the LS
                        // its [ls], now (the start-up wait goes on).
                        info!("reload during the start-up wait: applied now");
                        sup.signal_all(SupervisorSignal::Hup);
                        reload(cfg, Some(lsc), Some(&balancer), true);
                    }
                },
            }
        }
    };
    if stopped {
        info!("stopped before serving");
        return Ok(());
    }
    serve_ls(cfg, lsc, sockets, balancer, signals, Some(sup), extra, root).await
}

/// Whether `dnslb up` may serve: every backend that is one of its own table
/// servers (`own`, their listen addresses) is up, and so is every other one
/// unless `waited`. Returns the backends not up (to name), or `None` to wait on.
fn startup_done(balancer: &Balancer, own: &[SocketAddr], waited: bool) -> Option<Vec<String>> {
    let state = balancer.state();
    let is_own = |addr: SocketAddr| {
        own.iter()
            .any(|l| l.port() == addr.port() && (l.ip() == addr.ip() || l.ip().is_unspecified()))
    };
    let mut late = Vec::new();
    for b in &state.backends {
        if !b.is_up() {
            if is_own(b.addr) || !waited {
                return None;
            }
            late.push(b.name.clone());
        }
    }
    Some(late)
}

/// A SIGHUP: rereads the config; applies its `[ls]` to `balancer` (when
/// there is one) and warns about what only a restart applies: `[ls]` keys
/// read at start, and (with `children`, under `up`) any change to a
/// `[[ts]]`, which its child read at start (a HUP makes it reread its zone
/// files, nothing else).
fn reload(cfg: &Config, lsc: Option<&LsConfig>, balancer: Option<&Balancer>, children: bool) {
    let new = match Config::load(&cfg.path) {
        Ok(new) => new,
        Err(err) => {
            warn!(%err, "reload refused; old config keeps serving");
            return;
        }
    };
    if children {
        let changed = ts_restart_changes(&cfg.ts, &new.ts);
        if !changed.is_empty() {
            let changed = changed.join("; ");
            warn!(%changed, "reload: [[ts]] changed: {changed}; only a restart of dnslb up applies that (the zone files are reread now)");
        }
    }
    match (lsc, balancer, new.ls) {
        (Some(lsc), Some(balancer), Some(new_ls)) => {
            let keys = restart_only_changes(lsc, &new_ls);
            if !keys.is_empty() {
                let keys = keys.join(", ");
                warn!(%keys, "reload: [ls] {keys} changed; only a restart applies them (the rest is applied now)");
            }
            balancer.reload(&new_ls);
            info!(backends = new_ls.backend.len(), "ls reload done");
        }
        (Some(_), Some(_), None) => {
            warn!("reload refused: the new config has no [ls]; old one keeps serving");
        }
        (None, _, Some(_)) if children => {
            warn!("reload: the config now has an [ls]; only a restart of dnslb up starts it");
        }
        _ => {}
    }
}

/// The `[[ts]]` that differ between `old` and `new` (by name), each with the
/// keys that changed, or added / removed.
fn ts_restart_changes(old: &[TsConfig], new: &[TsConfig]) -> Vec<String> {
    let mut out = Vec::new();
    for o in old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            out.push(format!("{} removed", o.name));
            continue;
        };
        let mut keys = Vec::new();
        let mut diff = |k: &'static str, differs: bool| {
            if differs {
                keys.push(k);
            }
        };
        diff("listen", o.listen != n.listen);
        diff("zones", o.zones != n.zones);
        diff("origin", o.origin != n.origin);
        diff("ttl", o.ttl != n.ttl);
        diff("on_miss", o.on_miss != n.on_miss);
        diff("axfr_allow", o.axfr_allow != n.axfr_allow);
        diff("notify", o.notify != n.notify);
        diff("fault", o.fault != n.fault);
        diff("workers", o.workers != n.workers);
        diff("metrics", o.metrics != n.metrics);
        diff("nsid", o.nsid != n.nsid);
        if !keys.is_empty() {
            out.push(format!("{} ({})", o.name, keys.join(", ")));
        } else if o != n {
            out.push(o.name.clone());
        }
    }
    for n in new {
        if !old.iter().any(|o| o.name == n.name) {
            out.push(format!("{} added", n.name));
        }
    }
    out
}

/// `dnslb ls`: the LS alone.
async fn run_ls(cfg: Config) -> Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let lsc = ls_section(&cfg)?.clone();
    let sockets = LsSockets::bind(&lsc).await?;
    let balancer = Arc::new(Balancer::new(&lsc));
    // One round of probes first, so that no backend is skipped as down
    // merely because it has not been asked yet.
    let wait = Duration::from_millis(lsc.health.timeout_ms.max(1));
    let late = health::first_round(&balancer, wait).await;
    if !late.is_empty() {
        warn!(late = ?late, "these backends did not answer the first probe; down until they do");
    }
    let root = CancellationToken::new();
    let result = serve_ls(
        &cfg,
        &lsc,
        sockets,
        balancer,
        &mut signals,
        None,
        StatusExtra::default(),
        &root,
    )
    .await;
    root.cancel();
    result
}

/// Serves the LS on `sockets` until SIGINT/SIGTERM; SIGHUP reloads it (and
/// the TS children of `up`). Stopping drains: the listeners close, every
/// query in flight is answered, then the metrics server stops.
#[allow(clippy::too_many_arguments)]
async fn serve_ls(
    cfg: &Config,
    lsc: &LsConfig,
    sockets: LsSockets,
    balancer: Arc<Balancer>,
    signals: &mut Signals,
    children: Option<&Arc<Supervisor>>,
    extra: StatusExtra,
    root: &CancellationToken,
) -> Result<()> {
    let addrs = sockets.dns.local_addrs().to_vec();
    let dns_token = root.child_token();
    let mut server = tokio::spawn(dnslb::ls::serve(
        balancer.clone(),
        sockets.dns,
        dnslb::ls::server_options(lsc),
        dns_token.clone(),
    ));
    // Listeners bound, first health round done (callers wait for it), the
    // server spawned: ready before the metrics server can be asked, and not
    // ready again from the moment stopping begins.
    let ready = extra.ready.clone();
    ready.set_serving();
    // Its own token: the metrics server stopping can never stop the LS.
    let metrics_token = root.child_token();
    let metrics = sockets.metrics.map(|l| {
        if let Ok(addr) = l.local_addr() {
            info!(%addr, "metrics and status page ready");
        }
        tokio::spawn(dnslb::metrics::serve(
            l,
            balancer.clone(),
            extra,
            metrics_token.clone(),
        ))
    });
    let backends: Vec<String> = lsc
        .backend
        .iter()
        .map(|b| format!("{}={}", b.name, b.addr))
        .collect();
    info!(addr = ?addrs, strategy = %lsc.strategy, order = %lsc.order, layout = %lsc.layout,
          backends = ?backends, "load balancer ready");
    // The DNS server only ends when told to: one that ends on its own (a
    // task died) takes the process down rather than leave it half alive.
    let died = loop {
        tokio::select! {
            end = &mut server => break Some(end),
            sig = signals.next() => match sig {
                Signal::Stop => break None,
                Signal::Reload => {
                    if let Some(sup) = children {
                        sup.signal_all(SupervisorSignal::Hup);
                    }
                    reload(cfg, Some(lsc), Some(&balancer), children.is_some());
                }
            },
        }
    };
    if let Some(end) = died {
        ready.set_stopping();
        error!(
            panicked = end.is_err(),
            "the DNS server stopped on its own; exiting"
        );
        metrics_token.cancel();
        if let Some(m) = metrics {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, m).await;
        }
        bail!("the DNS server stopped on its own (see the log above)");
    }
    info!("stopping: answering the queries in flight");
    ready.set_stopping();
    dns_token.cancel();
    // The server bounds its own drain (timeout_ms and a grace).
    let _ = server.await;
    metrics_token.cancel();
    if let Some(m) = metrics {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, m).await;
    }
    info!("load balancer stopped");
    Ok(())
}

/// The `[ls]` keys that differ between the running `old` and the reloaded
/// `new` but are only read at start (sockets, threads, the in-flight cap).
fn restart_only_changes(old: &LsConfig, new: &LsConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("listen");
    }
    if old.workers != new.workers {
        keys.push("workers");
    }
    if old.metrics != new.metrics {
        keys.push("metrics");
    }
    if old.max_inflight != new.max_inflight {
        keys.push("max_inflight");
    }
    keys
}

async fn run_ts(run: TsRun) -> Result<()> {
    let TsRun {
        settings,
        listen,
        metrics,
        workers,
    } = run;
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let name = settings.name.clone();
    let ts = Arc::new(TableServer::load(settings)?);
    let listeners = Listeners::bind(&[listen], workers)?;
    let metrics = match metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on ts.metrics {addr}"))?,
        ),
        None => None,
    };
    // A temporary: the first catalog must not outlive its first reload.
    for z in ts.catalog().zones() {
        info!(ts = %name, zone = %z.origin(), rrsets = z.rrset_count(), bytes = z.compiled_bytes(), serial = z.serial(), "zone loaded");
    }
    let addrs = listeners.local_addrs().to_vec();
    let token = CancellationToken::new();
    let opts = ServerOptions {
        workers,
        ..ServerOptions::default()
    };
    let mut server = tokio::spawn(server::serve(listeners, ts.clone(), opts, token.clone()));
    let metrics = metrics.map(|l| {
        if let Ok(addr) = l.local_addr() {
            info!(ts = %name, %addr, "metrics ready");
        }
        tokio::spawn(dnslb::metrics::serve_ts(l, ts.clone(), token.clone()))
    });
    info!(ts = %name, addr = ?addrs, "table server ready");
    let notifies = TaskTracker::new();
    let mut died = None;
    loop {
        let sig = tokio::select! {
            end = &mut server => {
                died = Some(end);
                break;
            }
            sig = signals.next() => sig,
        };
        match sig {
            Signal::Stop => break,
            Signal::Reload => {
                for zone in ts.reload_logged() {
                    for &target in &ts.settings().notify {
                        let (zone, name, token) = (zone.clone(), name.clone(), token.clone());
                        notifies.spawn(async move {
                            tokio::select! {
                                _ = token.cancelled() => {}
                                done = dnslb::ts::xfr::notify_from(Some(listen.ip()), target, &zone) => {
                                    dnslb::ts::xfr::log_notified(&name, &zone, target, done);
                                }
                            }
                        });
                    }
                }
            }
        }
    }
    if let Some(end) = &died {
        error!(ts = %name, panicked = end.is_err(), "the DNS server stopped on its own; exiting");
    } else {
        info!(ts = %name, "stopping");
    }
    token.cancel();
    notifies.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        if died.is_none() {
            let _ = server.await;
        }
        notifies.wait().await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
    })
    .await;
    if died.is_some() {
        bail!("the DNS server stopped on its own (see the log above)");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_are_named() {
        let old = LsConfig::default();
        let mut new = old.clone();
        new.timeout_ms += 1;
        new.rate_limit_qps = 7;
        assert!(restart_only_changes(&old, &new).is_empty());
        new.metrics = Some("127.0.0.1:9".parse().unwrap());
        assert_eq!(restart_only_changes(&old, &new), ["metrics"]);
        new.workers = old.workers + 1;
        new.listen = vec!["127.0.0.1:5".parse().unwrap()];
        new.max_inflight = old.max_inflight + 1;
        assert_eq!(
            restart_only_changes(&old, &new),
            ["listen", "workers", "metrics", "max_inflight"]
        );
    }

    #[test]
    fn ts_changes_name_the_server_and_keys() {
        let ts = |name: &str, port: u16| {
            TsConfig::new(
                name,
                SocketAddr::from(([127, 0, 0, 1], port)),
                vec!["a.txt".into()],
            )
        };
        let old = vec![ts("ts1", 5301), ts("ts2", 5302)];
        assert!(ts_restart_changes(&old, &old).is_empty());
        let mut new = vec![ts("ts1", 5311), ts("ts3", 5303)];
        new[0].ttl = 60;
        assert_eq!(
            ts_restart_changes(&old, &new),
            ["ts1 (listen, ttl)", "ts2 removed", "ts3 added"]
        );
    }

    #[tokio::test]
    async fn up_serves_once_its_own_children_are_up() {
        let mut cfg = LsConfig::default();
        for (name, port) in [("own", 5301), ("other", 5302)] {
            cfg.backend.push(dnslb::config::BackendConfig {
                name: name.into(),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                weight: 1,
            });
        }
        let b = Balancer::new(&cfg);
        let own = [SocketAddr::from(([0, 0, 0, 0], 5301))];
        // Nothing is up before the first probes: wait.
        assert_eq!(startup_done(&b, &own, false), None);
        assert_eq!(startup_done(&b, &own, true), None);
        let up = |i: usize| {
            let state = b.state();
            let (backend, policy) = (&state.backends[i], &state.health);
            for _ in 0..policy.rise {
                backend.probed(true);
            }
        };
        up(0);
        // Our own child is up; the other one holds the LS only until `waited`.
        assert_eq!(startup_done(&b, &own, false), None);
        assert_eq!(startup_done(&b, &own, true), Some(vec!["other".to_owned()]));
        up(1);
        assert_eq!(startup_done(&b, &own, false), Some(Vec::new()));
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

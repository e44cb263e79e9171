//! The `dnslb` binary: parses the command line, sets up logging and the
//! runtime, and runs one role. Errors end here as one line and exit code 1.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::info;

use dnslb::cli::{Cli, Command, TsArgs};
use dnslb::config::{Config, Fault, OnMiss};
use dnslb::server::{self, Listeners, ServerOptions};
use dnslb::shutdown::{Signal, Signals};
use dnslb::ts::{TableServer, TsSettings, parse_origin};

/// How long a stopping server may take to finish what it is doing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.as_deref());
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dnslb: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or(filter.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { config } => {
            let problems = dnslb::check::check(&config);
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                eprintln!("{}: ok", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Ts(args) => {
            let (settings, listen, workers) = ts_settings(*args)?;
            runtime(workers)?.block_on(run_ts(settings, listen, workers))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ts_settings(a: TsArgs) -> Result<(TsSettings, SocketAddr, usize)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = a.workers;
    let (mut settings, listen) = match (&a.config, &a.name, a.listen) {
        (Some(path), Some(name), _) => {
            let cfg = Config::load(path)?;
            let Some(tc) = cfg.ts_by_name(name) else {
                bail!("{}: no [[ts]] named '{name}'", path.display());
            };
            workers = workers.or(tc.workers);
            (TsSettings::from_config(tc)?, tc.listen)
        }
        (None, None, Some(listen)) => {
            let settings = TsSettings {
                name: listen.to_string(),
                zones: a.zone.clone(),
                origin: parse_origin(&a.origin).map_err(anyhow::Error::msg)?,
                ttl: a.ttl,
                on_miss: OnMiss::Nxdomain,
                axfr_allow: Vec::new(),
                fault: Fault::default(),
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
    Ok((settings, listen, workers.unwrap_or(cores).max(1)))
}

async fn run_ts(settings: TsSettings, listen: SocketAddr, workers: usize) -> Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let name = settings.name.clone();
    let ts = Arc::new(TableServer::load(settings)?);
    let listeners = Listeners::bind(&[listen], workers)?;
    let catalog = ts.catalog();
    for z in catalog.zones() {
        info!(ts = %name, zone = %z.origin(), rrsets = z.rrset_count(), serial = z.serial(), "zone loaded");
    }
    let addrs = listeners.local_addrs().to_vec();
    let token = CancellationToken::new();
    let opts = ServerOptions {
        workers,
        ..ServerOptions::default()
    };
    let server = tokio::spawn(server::serve(listeners, ts.clone(), opts, token.clone()));
    info!(ts = %name, addr = ?addrs, "table server ready");
    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload => ts.reload_logged(),
        }
    }
    info!(ts = %name, "stopping");
    token.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    Ok(())
}

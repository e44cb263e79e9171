//! The `dnslb` binary: parses the command line, sets up logging, and runs
//! one command (each role as a process is in [`dnslb::roles::process`]:
//! its runtime, workers and signals). Errors end here as one line and exit
//! code 1.
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use tracing::Level;

use dnslb::cli::{Cli, Command};
use dnslb::config::Config;
use dnslb::logging::{self, LogFormat};
use dnslb::resolve::ResolveOptions;
use dnslb::roles::process::{self, runtime};
use dnslb::shutdown::Signals;

/// mimalloc instead of glibc's malloc, counted with callgrind against
/// glibc's (s16; `PEERS=0 bench/zones-count` on 10,000 zones): the TS's
/// start 491.0 M -> 424.0 M instructions (-13.6 %), `dnslb check` 473.0 M ->
/// 406.0 M (-14.2 %); 100,000 zones ready in 123.9 MiB PSS against 187.2
/// (`bench/zones`); a DoH query 51,500 -> 46,800 instructions, DoT 25,300 ->
/// 24,800; the LS's cache hit and forward unchanged (`bench/callgrind-wake`);
/// `dnslb up` on config.toml 2.6 MiB more PSS (38.8 against 36.2). Built
/// without transparent huge pages (`no_thp`: they doubled `dnslb up`'s RSS).
/// Freed pages go back to the system at once: see [`purge_freed_pages_at_once`].
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`'s number in mimalloc v3's `mimalloc.h`
/// (libmimalloc-sys names only the options it calls stable; the test
/// below reads mimalloc's default through it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's purge delay to 0 unless the operator set one (why, and
/// what it measured: [`dnslb::allocator`]). No crate offers this setting
/// without `unsafe`; with [`purge_delay_ms`], these are the crate's only
/// `unsafe` blocks (the library forbids them).
#[allow(unsafe_code)]
fn purge_freed_pages_at_once() {
    if dnslb::allocator::operator_set_purge_delay(std::env::vars_os()) {
        return;
    }
    // SAFETY: `mi_option_set` writes mimalloc's option table without a
    // lock; it runs first in `main`, before this process starts a thread,
    // and takes an option number mimalloc checks and a plain integer.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// The purge delay mimalloc runs with, in milliseconds (logged at the start
/// under `dnslb::alloc` at debug level: 0, or the operator's own).
#[allow(unsafe_code)]
fn purge_delay_ms() -> std::os::raw::c_long {
    // SAFETY: reads one entry of mimalloc's option table, which only
    // `purge_freed_pages_at_once` writes, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

fn main() -> ExitCode {
    purge_freed_pages_at_once();
    let cli = Cli::parse();
    let tag = cli.log_tag();
    logging::init(cli.log.as_deref(), cli.log_format, tag.as_deref());
    tracing::debug!(target: "dnslb::alloc", purge_delay_ms = purge_delay_ms(), "allocator: mimalloc");
    let format = cli.log_format;
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let line = format!("dnslb: error: {err:#}");
            match (format, tag) {
                // The JSON event gets the tag from the logger; a text line
                // gets it here, as every other line of a tagged process.
                (LogFormat::Text, Some(tag)) => {
                    let tag_field = logging::TAG_FIELD;
                    eprintln!("{line} {tag_field}={tag}");
                }
                _ => logging::to_stderr(format, Level::ERROR, &line),
            }
            ExitCode::FAILURE
        }
    }
}

/// Prints `text` on stdout; a reader that went away (`dnslb blocks | head`) is no
/// error: what it did not want is not printed, quietly.
fn print_out(text: &str) -> Result<()> {
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let log = cli.log_flags();
    if matches!(
        cli.command,
        Command::Ls { .. } | Command::Up { .. } | Command::Ts(_)
    ) {
        // While this process has one thread (see `prepare_server`).
        dnslb::server::fdlimit::prepare_server();
    }
    match cli.command {
        Command::Check { config } => {
            if !dnslb::check::report(&config, log.format) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Resolve {
            server,
            input,
            output,
            concurrency,
            timeout_ms,
            retries,
            qtype,
        } => {
            let opts = ResolveOptions {
                server,
                concurrency,
                timeout: Duration::from_millis(timeout_ms),
                retries,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                qtype,
            };
            // resolve::run prints its own summary line on stderr.
            let resolve = dnslb::resolve::run(input.as_deref(), output.as_deref(), opts);
            runtime(2)?.block_on(resolve)?;
        }
        Command::Ls { config } => process::ls(&config)?,
        Command::Anycast { config } => {
            let cfg = Config::load(&config)?;
            let ls = dnslb::roles::ls::section(&cfg)?;
            let settings = dnslb::anycast::AnycastSettings::from_ls(ls)
                .with_context(|| config.display().to_string())?;
            runtime(1)?.block_on(async {
                let signals = Signals::new().context("cannot install signal handlers")?;
                dnslb::anycast::run_until_stopped(settings, signals).await;
                anyhow::Ok(())
            })?;
        }
        Command::Up { config } => process::up(&config, log)?,
        Command::Ds { config, name } => {
            let cfg = Config::load(&config)?;
            let Some(ts) = cfg.ts_by_name(&name) else {
                let known = dnslb::cli::known_ts(&cfg);
                anyhow::bail!("{}: no [[ts]] named '{name}' ({known})", config.display());
            };
            let settings = dnslb::ts::TsSettings::from_config(ts);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            let lines = dnslb::roles::ds::ds_lines(&settings, now)?;
            print_out(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
        }
        Command::Status { config, addr } => {
            print_out(&runtime(1)?.block_on(dnslb::status::status_of(&config, addr))?)?;
        }
        Command::Cache(cmd) => print_out(&runtime(1)?.block_on(cmd.run())?)?,
        Command::Backend { name, state, to } => {
            print_out(&runtime(1)?.block_on(dnslb::control_cmd::backend(&to, &name, state))?)?
        }
        Command::Blocks { action, to } => {
            print_out(&runtime(1)?.block_on(dnslb::cli::BlocksCommand::run(action, &to))?)?
        }
        Command::Top {
            seconds,
            n,
            labels,
            to,
        } => print_out(&runtime(1)?.block_on(dnslb::control_cmd::top(&to, seconds, n, labels))?)?,
        Command::Zone { action, to } => {
            print_out(&runtime(1)?.block_on(dnslb::zone_cmd::run(&action, &to))?)?
        }
        Command::Reload { to } => {
            let run = runtime(1)?.block_on(dnslb::control_cmd::reload_checked(&to));
            for p in &run.problems {
                logging::to_stderr(log.format, Level::ERROR, p);
            }
            if let Ok(answer) = &run.answer {
                print_out(&dnslb::control_cmd::render_reload(answer))?;
            }
            if let Some(why) = run.failure(&to.config) {
                anyhow::bail!(why);
            }
        }
        Command::Ts(args) => {
            dnslb::supervise::die_with_supervisor()?;
            process::ts(args.into_run()?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number set in `main` is mimalloc's purge delay: read through it,
    /// this test process (which never ran `main`) sees mimalloc v3's default
    /// of 1,000 ms, unless the operator set one.
    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        if dnslb::allocator::operator_set_purge_delay(std::env::vars_os()) {
            return; // mimalloc's default is not what it runs with here
        }
        assert_eq!(purge_delay_ms(), 1000);
    }
}

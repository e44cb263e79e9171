//! A role as the whole process: the async runtime it runs on (its worker
//! threads chosen from the config), the process's signals as its
//! [`Controls`], and `dnslb up`'s check before anything starts. The binary
//! calls one function here per role and prints what comes back.

use std::future::Future;
use std::path::Path;

use tracing::Level;

use super::ts::TsRun;
use super::up::LogFlags;
use super::{Controls, RoleError, ls, ts, up};
use crate::config::Config;
use crate::logging;
use crate::shutdown::Signals;

/// The worker threads of `dnslb up` when its config has no `[ls]` (its
/// table servers run as children, each with its own).
const UP_WITHOUT_LS_WORKERS: usize = 2;

/// A multi-threaded runtime of `workers` threads (at least one), with I/O
/// and timers.
///
/// # Errors
/// The runtime could not start (no threads, no epoll).
pub fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, RoleError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .map_err(RoleError::Runtime)
}

/// Runs `role` on a runtime of `workers` threads, fed by the process's
/// signals (SIGHUP reloads, SIGINT/SIGTERM stop), installed inside the
/// runtime before the role starts.
///
/// # Errors
/// No runtime, no signal handlers, or the role's own error.
pub fn run_on_signals<F, Fut>(workers: usize, role: F) -> Result<(), RoleError>
where
    F: FnOnce(Controls) -> Fut,
    Fut: Future<Output = Result<(), RoleError>>,
{
    runtime(workers)?.block_on(async {
        let signals = Signals::new().map_err(RoleError::Signals)?;
        role(Controls::from_signals(signals)).await
    })
}

/// `dnslb ls -c CONFIG`: the `[ls]` on `[ls] workers` threads.
///
/// # Errors
/// A config that cannot be read or has no `[ls]`, or [`ls::run`]'s.
pub fn ls(config: &Path) -> Result<(), RoleError> {
    let cfg = Config::load(config)?;
    let workers = ls::section(&cfg)?.workers;
    run_on_signals(workers, |controls| ls::run(cfg, controls))
}

/// `dnslb ts`: one table server on its `workers` threads.
///
/// # Errors
/// [`ts::run`]'s.
pub fn ts(run: TsRun) -> Result<(), RoleError> {
    run_on_signals(run.workers, |controls| ts::run(run, controls))
}

/// `dnslb up -c CONFIG`: nothing starts unless the whole config and every
/// zone is good (each problem `dnslb check` finds is written on stderr as
/// the logs are: a line, or an `error` event); then [`up::run`] on the
/// `[ls]`'s worker threads (two without an `[ls]`).
///
/// # Errors
/// [`RoleError::Refused`] after the problems, or [`up::run`]'s.
pub fn up(config: &Path, log: LogFlags) -> Result<(), RoleError> {
    let problems = crate::check::check(config);
    if !problems.is_empty() {
        for p in &problems {
            logging::to_stderr(log.format, Level::ERROR, p);
        }
        return Err(RoleError::Refused(config.to_path_buf()));
    }
    let cfg = Config::load(config)?;
    let workers = up_workers(&cfg);
    run_on_signals(workers, |controls| up::run(cfg, log, controls))
}

/// The worker threads of `dnslb up` for `cfg`: its LS's.
fn up_workers(cfg: &Config) -> usize {
    cfg.ls
        .as_ref()
        .map_or(UP_WITHOUT_LS_WORKERS, |ls| ls.workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_has_at_least_one_worker_and_runs_timers() {
        let rt = runtime(0).unwrap();
        let workers = rt.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::runtime::Handle::current().metrics().num_workers()
        });
        assert_eq!(workers, 1);
    }

    #[test]
    fn up_runs_on_the_ls_workers_or_two_without_an_ls() {
        let shipped =
            Config::parse(include_str!("../../config.toml"), Path::new("config.toml")).unwrap();
        let workers = shipped.ls.as_ref().unwrap().workers;
        assert_eq!(up_workers(&shipped), workers);
        assert_eq!(up_workers(&Config::default()), UP_WITHOUT_LS_WORKERS);
    }
}

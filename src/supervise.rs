//! `dnslb up`: table servers as supervised child processes.
//!
//! A [`Supervisor`] owns one task per [`ChildSpec`]. Each task spawns its child
//! (`dnslb ts -c <config> --name <name>` in production), waits for it, and when
//! it exits for any reason while the supervisor is not stopping, logs one line
//! and respawns it after a [`Backoff`] delay. A child that ran for at least
//! [`Backoff::stable_after`] resets the backoff.
//!
//! Signals reach a child by PID, and only through the task that owns its
//! [`tokio::process::Child`]: that task checks the child has not been reaped
//! before calling `kill(2)`, so a recycled PID is never signalled.
//!
//! Stopping ([`Supervisor::shutdown`], or the token given to
//! [`Supervisor::start`] being cancelled): SIGTERM to every child, a grace
//! period, SIGKILL to the stragglers, and every child reaped.
//!
//! A child's stderr comes through the supervisor, line by line, so that its
//! lines never interleave with ours mid-line and the last one (the reason a
//! child exits, e.g. `dnslb: error: zones/ts1.txt:3: ...`) can be repeated
//! in the supervisor's own report when it is an error or a warning (after a
//! `kill -9` the last line is a success line: the reason is then the signal,
//! see [`exit_reason`]). A child that keeps failing before it runs stably is
//! reported at `error` level, naming that reason, each time its backoff grows.
//!
//! A reload's outcome comes back the same way: after each reload a
//! supervised table server writes one line starting with [`RELOAD_REPORT`]
//! on its stderr ([`report_reload`]), which the supervisor takes (it is not
//! forwarded) and hands to whoever waits in [`Supervisor::reload_all`]:
//! `dnslb up` tells `dnslb reload` each table server's outcome so.
//!
//! Children run in their own process group, so a Ctrl-C in the terminal
//! reaches only `dnslb up`, which then stops them in order. If `dnslb up` dies
//! abruptly, a child that calls [`die_with_supervisor`] at start-up gets
//! SIGTERM from the kernel (Linux `PR_SET_PDEATHSIG`).
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Environment variable holding the supervisor's PID, set on every child.
///
/// [`die_with_supervisor`] reads it to arm the parent-death signal.
pub const SUPERVISOR_PID_ENV: &str = "DNSLB_SUPERVISOR_PID";

/// Signals queued per child before further ones are dropped (they coalesce:
/// a second pending SIGHUP would reload the same files again).
const SIGNAL_QUEUE: usize = 4;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// [`SUPERVISOR_PID_ENV`] is set but is not a PID.
    #[error("{SUPERVISOR_PID_ENV} is not a process id: {0:?}")]
    BadSupervisorPid(OsString),
    /// The supervisor that spawned this process is already gone.
    #[error("the supervising dnslb (pid {0}) is gone")]
    SupervisorGone(u32),
    /// The kernel refused to set the parent-death signal.
    #[error("cannot set the parent-death signal: {0}")]
    Prctl(#[source] io::Error),
}

/// One child process to keep running.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Name used in logs and in [`Supervisor::pids`] (the `[[ts]]` name).
    pub name: String,
    /// The program to run; `std::env::current_exe()` in production.
    pub program: PathBuf,
    /// Its arguments, e.g. `ts -c <config> --name <name> --log-format text`.
    pub args: Vec<OsString>,
}

/// Restart delays: exponential from `initial`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart after a failure.
    pub initial: Duration,
    /// Longest delay between restarts.
    pub max: Duration,
    /// A child that ran at least this long before exiting counts as healthy:
    /// its exit starts the backoff again from `initial`.
    pub stable_after: Duration,
}

impl Default for Backoff {
    /// 200 ms doubling up to 10 s; 30 s of uptime resets it.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            stable_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before restarting after `consecutive_failures` failures in a
    /// row: `initial * 2^(n-1)`, capped at `max` (and never above `max` even
    /// when `initial` is). `n = 0` means "no failure yet" and gives
    /// [`Duration::ZERO`]: the first start is immediate.
    pub fn next_delay(&self, consecutive_failures: u32) -> Duration {
        let Some(exponent) = consecutive_failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        2u32.checked_pow(exponent)
            .and_then(|factor| self.initial.checked_mul(factor))
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// The failure count after a child that ran for `ran` exited: one more
    /// than `previous`, or 1 when the run was long enough to count as stable.
    pub fn failures_after(&self, previous: u32, ran: Duration) -> u32 {
        if ran >= self.stable_after {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

/// A signal [`Supervisor::signal_all`] can forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorSignal {
    /// SIGHUP: reload zones.
    Hup,
}

impl SupervisorSignal {
    fn to_unix(self) -> Signal {
        match self {
            SupervisorSignal::Hup => Signal::HUP,
        }
    }
}

/// What the supervisor shares with one child's task.
#[derive(Debug)]
struct Slot {
    name: String,
    /// Current PID, 0 while no child is running.
    pid: AtomicU32,
    /// Restarts so far (after an exit or a failed spawn).
    restarts: AtomicU64,
    /// Signals to forward to the running child.
    signals: mpsc::Sender<SupervisorSignal>,
    /// The child's last reload outcome or exit, and how many came so far.
    reloads: watch::Sender<(u64, ChildReload)>,
}

/// What became of a table server asked to reload ([`Supervisor::reload_all`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildReload {
    /// It reloaded; what it said of it (`changed=1 zones=3`).
    Applied(String),
    /// It refused the reload (the old zones keep serving); why.
    Refused(String),
    /// It exited instead of answering; why ([`exit_reason`]).
    Exited(String),
    /// It was not running (between restarts): started again at once, on the
    /// files as they are now.
    NotRunning,
    /// No answer within the wait.
    NoAnswer(Duration),
}

impl ChildReload {
    /// Whether the reload is known to be applied.
    pub fn applied(&self) -> bool {
        matches!(self, ChildReload::Applied(_))
    }

    /// One line for the operator.
    pub fn describe(&self) -> String {
        match self {
            ChildReload::Applied(d) => format!("reloaded ({d})"),
            ChildReload::Refused(why) => format!("refused, old zones keep serving: {why}"),
            ChildReload::Exited(why) => format!("exited instead of reloading: {why}"),
            ChildReload::NotRunning => {
                "not running (between restarts): started again now on the new files; its log says whether it serves".to_owned()
            }
            ChildReload::NoAnswer(wait) => {
                format!("no answer within {} s: see its log", wait.as_secs())
            }
        }
    }
}

/// The start of the line a supervised table server writes on stderr after
/// each reload: `RELOAD_REPORT applied DETAIL` or `RELOAD_REPORT refused WHY`.
pub const RELOAD_REPORT: &str = "dnslb-reload-report ";

/// Tells the supervising `dnslb up` (if any: [`SUPERVISOR_PID_ENV`] set)
/// the outcome of a reload, as one [`RELOAD_REPORT`] line on stderr (which
/// the supervisor does not forward). Nothing for a table server run alone.
pub fn report_reload(applied: bool, detail: &str) {
    if std::env::var_os(SUPERVISOR_PID_ENV).is_none() {
        return;
    }
    use std::io::Write;
    let word = if applied { "applied" } else { "refused" };
    let detail = detail.replace(['\n', '\r'], " ");
    // One write: never interleaved with a log line.
    let line = format!("{RELOAD_REPORT}{word} {detail}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A [`RELOAD_REPORT`] line read back (`None`: not one).
fn parse_report(line: &str) -> Option<ChildReload> {
    let rest = line.strip_prefix(RELOAD_REPORT)?;
    let (word, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    match word {
        "applied" => Some(ChildReload::Applied(detail.to_owned())),
        "refused" => Some(ChildReload::Refused(detail.to_owned())),
        _ => None,
    }
}

/// Keeps a set of child processes running; see the module docs.
///
/// Dropping it without [`Supervisor::shutdown`] SIGKILLs the children.
#[derive(Debug)]
pub struct Supervisor {
    /// One per child, in spec order.
    slots: Vec<Arc<Slot>>,
    /// Cancelled to stop: children get SIGTERM.
    stop: CancellationToken,
    /// Cancelled when the grace period is over: children get SIGKILL.
    kill: CancellationToken,
    /// The child tasks (closed at start).
    tracker: TaskTracker,
}

impl Supervisor {
    /// Spawns one task per child and starts every child at once. Cancelling
    /// `token` stops them like [`Supervisor::shutdown`] does, but without a
    /// deadline: call `shutdown` to bound the wait and reap them.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(specs: Vec<ChildSpec>, backoff: Backoff, token: CancellationToken) -> Supervisor {
        let stop = token.child_token();
        let kill = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut slots = Vec::with_capacity(specs.len());
        for spec in specs {
            let (tx, rx) = mpsc::channel(SIGNAL_QUEUE);
            let slot = Arc::new(Slot {
                name: spec.name.clone(),
                pid: AtomicU32::new(0),
                restarts: AtomicU64::new(0),
                signals: tx,
                reloads: watch::Sender::new((0, ChildReload::NotRunning)),
            });
            let task = ChildTask {
                spec,
                backoff,
                slot: Arc::clone(&slot),
                signals: rx,
                stop: stop.clone(),
                kill: kill.clone(),
            };
            tracker.spawn(task.run());
            slots.push(slot);
        }
        tracker.close();
        Supervisor {
            slots,
            stop,
            kill,
            tracker,
        }
    }

    /// Forwards `sig` to every running child. Delivery is asynchronous (each
    /// child's task sends it); a child that is between restarts is started
    /// at once instead (its start reads the current files).
    pub fn signal_all(&self, sig: SupervisorSignal) {
        for slot in &self.slots {
            // Full: a signal of the same kind is already pending. Closed: the
            // task has stopped. Either way there is nothing to do.
            let _ = slot.signals.try_send(sig);
        }
    }

    /// Makes every child reload (SIGHUP, as [`Supervisor::signal_all`]) and
    /// gives a future of each one's outcome, in spec order: its
    /// [`RELOAD_REPORT`], its exit, or no answer within `wait`. It holds no
    /// reference to the supervisor. The reloads of `dnslb up` are one at a
    /// time: the report that comes next is this reload's.
    pub fn reload_all(
        &self,
        wait: Duration,
    ) -> impl std::future::Future<Output = Vec<(String, ChildReload)>> + Send + 'static {
        let waits: Vec<_> = self
            .slots
            .iter()
            .map(|slot| {
                let mut seen = slot.reloads.subscribe();
                let running = slot.pid.load(Ordering::Acquire) != 0;
                let _ = slot.signals.try_send(SupervisorSignal::Hup);
                let name = slot.name.clone();
                async move {
                    if !running {
                        return (name, ChildReload::NotRunning);
                    }
                    let outcome = match tokio::time::timeout(wait, seen.changed()).await {
                        Ok(Ok(())) => seen.borrow_and_update().1.clone(),
                        Ok(Err(_)) => ChildReload::Exited("the supervisor stopped".to_owned()),
                        Err(_) => ChildReload::NoAnswer(wait),
                    };
                    (name, outcome)
                }
            })
            .collect();
        futures_util::future::join_all(waits)
    }

    /// Each child's name and current PID (`None` while it is restarting or
    /// after it stopped), in spec order.
    pub fn pids(&self) -> Vec<(String, Option<u32>)> {
        self.slots
            .iter()
            .map(|slot| {
                let pid = slot.pid.load(Ordering::Acquire);
                (slot.name.clone(), (pid != 0).then_some(pid))
            })
            .collect()
    }

    /// Each child's name and how many times it was restarted, in spec order.
    pub fn restarts(&self) -> Vec<(String, u64)> {
        self.slots
            .iter()
            .map(|slot| (slot.name.clone(), slot.restarts.load(Ordering::Relaxed)))
            .collect()
    }

    /// Stops every child: SIGTERM, up to `grace` for them to exit, then
    /// SIGKILL for the rest. Returns once every child has been reaped.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(grace = ?grace, "table servers still running after the grace period; killing them");
            self.kill.cancel();
            self.tracker.wait().await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // After `shutdown` this is a no-op; otherwise it is the last resort.
        self.stop.cancel();
        self.kill.cancel();
    }
}

/// Arms the parent-death signal in a child started by a [`Supervisor`]: if
/// `dnslb up` dies without stopping it, the kernel sends this process SIGTERM.
/// Call it first thing in `dnslb ts`. Without [`SUPERVISOR_PID_ENV`] (a TS
/// started by hand), or off Linux, it does nothing.
///
/// # Errors
/// The variable is malformed, the kernel refused, or the supervisor died
/// before the signal was armed ([`SuperviseError::SupervisorGone`]: exit).
pub fn die_with_supervisor() -> Result<(), SuperviseError> {
    let Some(value) = std::env::var_os(SUPERVISOR_PID_ENV) else {
        return Ok(());
    };
    let expected = parse_pid(&value)?;
    arm_parent_death_signal(expected)
}

fn parse_pid(value: &OsStr) -> Result<u32, SuperviseError> {
    value
        .to_str()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|&pid| pid != 0)
        .ok_or_else(|| SuperviseError::BadSupervisorPid(value.to_owned()))
}

#[cfg(target_os = "linux")]
fn arm_parent_death_signal(expected: u32) -> Result<(), SuperviseError> {
    rustix::process::set_parent_process_death_signal(Some(Signal::TERM))
        .map_err(|e| SuperviseError::Prctl(e.into()))?;
    // The parent may have died between fork and the prctl: then we have been
    // re-parented already and the signal will never come.
    let parent = rustix::process::getppid().map_or(0, |pid| pid.as_raw_pid());
    if u32::try_from(parent).ok() != Some(expected) {
        return Err(SuperviseError::SupervisorGone(expected));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn arm_parent_death_signal(_expected: u32) -> Result<(), SuperviseError> {
    Ok(())
}

/// Sends `sig` to `pid`. Only call it for a child that has not been reaped.
fn send_signal(pid: u32, sig: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    rustix::process::kill_process(pid, sig).map_err(io::Error::from)
}

/// Failures in a row (without a stable run in between) from which a child's
/// exits are reported as errors.
pub const LOUD_AFTER_FAILURES: u32 = 3;
/// How long the supervisor keeps reading an exited child's last lines.
const LAST_LINES_WAIT: Duration = Duration::from_millis(500);
/// Longest child line kept as the reason it exited.
const REASON_MAX: usize = 300;

/// Whether the failure that brought a child to `failures` in a row (and a
/// restart delay of `delay`, after `previous` before it) is reported at
/// `error` level: from [`LOUD_AFTER_FAILURES`] on, each time the delay grows.
pub fn loud_failure(failures: u32, delay: Duration, previous: Duration) -> bool {
    failures >= LOUD_AFTER_FAILURES && delay > previous
}

/// A child's stderr, forwarded line by line to ours; remembers its last line
/// (and whether it was an error or a warning), and hands its reload reports
/// to the slot's watchers.
struct ChildOutput {
    lines: Option<Lines<BufReader<ChildStderr>>>,
    last: Option<(String, bool)>,
    reloads: watch::Sender<(u64, ChildReload)>,
}

impl ChildOutput {
    fn new(stderr: Option<ChildStderr>, reloads: watch::Sender<(u64, ChildReload)>) -> Self {
        ChildOutput {
            lines: stderr.map(|e| BufReader::new(e).lines()),
            last: None,
            reloads,
        }
    }

    /// Forwards the next line; false at the end of the output.
    async fn forward_one(&mut self) -> bool {
        let Some(lines) = self.lines.as_mut() else {
            return false;
        };
        match lines.next_line().await {
            Ok(Some(line)) => {
                use std::io::Write;
                if let Some(report) = parse_report(&line) {
                    publish(&self.reloads, report);
                    return true;
                }
                // One write per line: never interleaved mid-line.
                let mut out = std::io::stderr().lock();
                let _ = out.write_all(format!("{line}\n").as_bytes());
                if !line.trim().is_empty() {
                    let text = reason_of(&line).chars().take(REASON_MAX).collect();
                    self.last = Some((text, is_problem_line(&line)));
                }
                true
            }
            Ok(None) | Err(_) => {
                self.lines = None;
                false
            }
        }
    }

    /// Forwards whatever is left of an exited child's output (bounded).
    async fn drain(&mut self) {
        let _ = tokio::time::timeout(LAST_LINES_WAIT, async { while self.forward_one().await {} })
            .await;
    }

    /// Why the child exited with `status`: see [`exit_reason`].
    fn reason(&self, status: &io::Result<ExitStatus>) -> String {
        use std::os::unix::process::ExitStatusExt;
        let (signal, code) = match status {
            Ok(s) => (s.signal(), s.code()),
            Err(_) => (None, None),
        };
        let last = self
            .last
            .as_ref()
            .map(|(l, problem)| (l.as_str(), *problem));
        exit_reason(signal, code, last)
    }
}

/// Hands `outcome` to whoever waits in [`Supervisor::reload_all`].
fn publish(reloads: &watch::Sender<(u64, ChildReload)>, outcome: ChildReload) {
    reloads.send_modify(|(count, last)| {
        *count += 1;
        *last = outcome;
    });
}

/// Why a child exited, for the restart line's `reason`: its last line when
/// that line is an error or a warning (`dnslb: error: zones/ts1.txt:3:
/// ...`); else what the exit itself says (`killed by signal 9 (SIGKILL)`,
/// `exited with code 1`), never a success line such as "table server
/// ready" that merely came last. `last`: the last line and whether it is an
/// error or a warning.
pub fn exit_reason(signal: Option<i32>, code: Option<i32>, last: Option<(&str, bool)>) -> String {
    if let Some((line, true)) = last {
        return line.to_owned();
    }
    let exit = match (signal, code) {
        (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => "its exit status is unknown".to_owned(),
    };
    match last {
        Some(_) => format!("{exit}; no error logged before"),
        None => format!("{exit}; it printed nothing"),
    }
}

/// The usual name of signal `sig`.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "another signal",
    }
}

/// Whether a child's line is an error or a warning: a text log line whose
/// level is `ERROR` or `WARN`, a JSON one whose `level` is, the binary's
/// own `dnslb: error: ...`, or a line in no log format at all (a panic's
/// message); an `INFO`, `DEBUG` or `TRACE` line is not.
fn is_problem_line(line: &str) -> bool {
    if line.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
    {
        return matches!(
            v.get("level").and_then(|l| l.as_str()),
            Some("ERROR" | "WARN")
        );
    }
    // Text: `TIMESTAMP LEVEL target: message`, the level maybe first.
    for word in line.split_whitespace().take(2) {
        match word {
            "ERROR" | "WARN" => return true,
            "INFO" | "DEBUG" | "TRACE" => return false,
            _ => {}
        }
    }
    true
}

/// What a child's line says: the line itself, or the message of a JSON
/// log line (`--log-format json`).
fn reason_of(line: &str) -> std::borrow::Cow<'_, str> {
    if line.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
        && let Some(msg) = v.pointer("/fields/message").and_then(|m| m.as_str())
    {
        return msg.to_owned().into();
    }
    line.into()
}

/// How one run of a child ended.
enum RunEnd {
    /// It exited (or was killed) on its own; restart it.
    Exited(io::Result<ExitStatus>),
    /// The supervisor is stopping and the child has been reaped.
    Stopped,
}

/// The task that keeps one child running.
struct ChildTask {
    spec: ChildSpec,
    backoff: Backoff,
    slot: Arc<Slot>,
    signals: mpsc::Receiver<SupervisorSignal>,
    stop: CancellationToken,
    kill: CancellationToken,
}

impl ChildTask {
    async fn run(mut self) {
        let name = self.spec.name.clone();
        let mut failures: u32 = 0;
        let mut previous = Duration::ZERO;
        while !self.stop.is_cancelled() {
            let delay = match self.command().spawn() {
                Ok(mut child) => {
                    let started = Instant::now();
                    let pid = child.id().unwrap_or(0);
                    self.slot.pid.store(pid, Ordering::Release);
                    info!(ts = %name, pid, "table server started");
                    let reloads = self.slot.reloads.clone();
                    let mut output = ChildOutput::new(child.stderr.take(), reloads);
                    let end = self.supervise(&mut child, &mut output).await;
                    self.slot.pid.store(0, Ordering::Release);
                    match end {
                        RunEnd::Stopped => return,
                        RunEnd::Exited(_) if self.stop.is_cancelled() => return,
                        RunEnd::Exited(result) => {
                            output.drain().await;
                            failures = self.backoff.failures_after(failures, started.elapsed());
                            let delay = self.backoff.next_delay(failures);
                            let reason = output.reason(&result);
                            let status = match result {
                                Ok(status) => status.to_string(),
                                Err(err) => err.to_string(),
                            };
                            if loud_failure(failures, delay, previous) {
                                error!(
                                    ts = %name, %status, failures, restart_in = ?delay,
                                    reason, "table server keeps failing; its backend stays down"
                                );
                            } else {
                                warn!(
                                    ts = %name, %status, restart_in = ?delay,
                                    reason, "table server exited; restarting"
                                );
                            }
                            publish(&self.slot.reloads, ChildReload::Exited(reason));
                            delay
                        }
                    }
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let delay = self.backoff.next_delay(failures);
                    warn!(
                        ts = %name, program = %self.spec.program.display(), error = %err,
                        restart_in = ?delay, "table server failed to start; retrying"
                    );
                    delay
                }
            };
            previous = delay;
            self.slot.restarts.fetch_add(1, Ordering::Relaxed);
            if !self.wait_backoff(delay).await {
                return;
            }
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
            // Only the supervisor speaks for the service (Type=notify).
            .env_remove(crate::systemd::SOCKET_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            // Own process group: a terminal's Ctrl-C goes to `dnslb up` only,
            // which then stops the children itself.
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    /// Sleeps `delay` between runs. A SIGHUP meant for the child that is
    /// not there ends the wait at once: the operator has fixed what made it
    /// fail (a zone file, a port), and its names should not wait out a
    /// backoff of up to `max` for it (its failure count is kept: failing
    /// again, it backs off longer). Returns false when the supervisor is
    /// stopping.
    async fn wait_backoff(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = &mut sleep => true,
            Some(SupervisorSignal::Hup) = self.signals.recv() => {
                info!(ts = %self.spec.name, "reload: restarting the table server now, not after its backoff");
                true
            }
        }
    }

    /// Waits for `child` to exit, forwarding signals and its output; on
    /// stop, terminates it.
    async fn supervise(&mut self, child: &mut Child, output: &mut ChildOutput) -> RunEnd {
        loop {
            tokio::select! {
                result = child.wait() => return RunEnd::Exited(result),
                _ = output.forward_one(), if output.lines.is_some() => {}
                () = self.stop.cancelled() => break,
                Some(sig) = self.signals.recv() => {
                    if let Some(result) = self.deliver(child, sig.to_unix()) {
                        return RunEnd::Exited(result);
                    }
                }
            }
        }
        // Stopping: SIGTERM, then wait until it exits or the grace is over.
        if self.deliver(child, Signal::TERM).is_none() {
            let exited = async {
                // Its last lines still come through while it stops.
                let (r, ()) = tokio::join!(child.wait(), output.drain());
                r
            };
            tokio::select! {
                _ = exited => {}
                () = self.kill.cancelled() => {
                    // SIGKILL unless already reaped; then reap.
                    if let Err(err) = child.start_kill() {
                        warn!(ts = %self.spec.name, error = %err, "cannot kill table server");
                    }
                    if let Err(err) = child.wait().await {
                        warn!(ts = %self.spec.name, error = %err, "cannot reap table server");
                    }
                }
            }
        }
        RunEnd::Stopped
    }

    /// Sends `sig` to `child` if it has not exited. Returns its exit status
    /// if it had (and is now reaped), so the PID is never reused under us.
    fn deliver(&self, child: &mut Child, sig: Signal) -> Option<io::Result<ExitStatus>> {
        match child.try_wait() {
            Ok(Some(status)) => return Some(Ok(status)),
            Ok(None) => {}
            Err(err) => return Some(Err(err)),
        }
        // Not reaped, so the PID is still this child's (alive or zombie).
        let pid = child.id()?;
        if let Err(err) = send_signal(pid, sig) {
            warn!(ts = %self.spec.name, pid, signal = ?sig, error = %err, "cannot signal table server");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn backoff(initial: u64, max: u64) -> Backoff {
        Backoff {
            initial: ms(initial),
            max: ms(max),
            stable_after: Duration::from_secs(30),
        }
    }

    fn spec(name: &str, program: &str, args: &[&str]) -> ChildSpec {
        ChildSpec {
            name: name.to_owned(),
            program: PathBuf::from(program),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Polls `pids()` until child `i` has a PID other than `not`, for up to 5 s.
    async fn wait_pid(sup: &Supervisor, i: usize, not: Option<u32>) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = sup.pids()[i].1.filter(|&p| Some(p) != not) {
                return pid;
            }
            assert!(Instant::now() < deadline, "no new pid for child {i}");
            tokio::time::sleep(ms(10)).await;
        }
    }

    /// A supervisor of one child, `program` with `args`, once the child
    /// has created `ready` (for up to 30 s), and the child's PID.
    async fn start_ready(program: &str, args: &[&str], ready: &Path) -> (Supervisor, u32) {
        let sup = Supervisor::start(
            vec![spec("ts1", program, args)],
            backoff(50, 200),
            CancellationToken::new(),
        );
        let pid = wait_pid(&sup, 0, None).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the child never got ready");
            tokio::time::sleep(ms(20)).await;
        }
        (sup, pid)
    }

    #[test]
    fn backoff_sequence_and_cap() {
        let b = Backoff::default();
        let got: Vec<_> = (0..9).map(|n| b.next_delay(n)).collect();
        let want: Vec<_> = [0, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(got, want);
        assert_eq!(b.next_delay(40), b.max);
        assert_eq!(b.next_delay(u32::MAX), b.max);
        // An initial above the cap is capped too.
        assert_eq!(backoff(500, 100).next_delay(1), ms(100));
    }

    #[test]
    fn backoff_resets_after_stable_run() {
        let b = Backoff::default();
        assert_eq!(b.failures_after(0, ms(10)), 1);
        assert_eq!(b.failures_after(5, ms(10)), 6);
        assert_eq!(b.failures_after(5, Duration::from_secs(30)), 1);
        assert_eq!(b.failures_after(u32::MAX, ms(1)), u32::MAX);
        // After a stable run the next restart waits only `initial`.
        assert_eq!(
            b.next_delay(b.failures_after(7, Duration::from_secs(60))),
            b.initial
        );
    }

    #[test]
    fn repeated_start_up_failures_are_loud_each_time_the_backoff_grows() {
        let b = Backoff::default();
        let mut previous = Duration::ZERO;
        let mut loud = Vec::new();
        for failures in 1..=10 {
            let delay = b.next_delay(failures);
            loud.push(loud_failure(failures, delay, previous));
            previous = delay;
        }
        // Quiet for the first two, loud while the delay doubles (3rd to 7th
        // failure: 800 ms to 10 s), quiet again once it is capped.
        assert_eq!(
            loud,
            [
                false, false, true, true, true, true, true, false, false, false
            ]
        );
    }

    #[test]
    fn a_json_line_gives_its_message_as_the_reason() {
        let line = r#"{"timestamp":"t","level":"ERROR","fields":{"ts":"ts1","message":"dnslb: error: z.txt:3: bad"},"target":"dnslb"}"#;
        assert_eq!(reason_of(line), "dnslb: error: z.txt:3: bad");
        assert_eq!(reason_of("dnslb: error: x"), "dnslb: error: x");
        assert_eq!(reason_of("{not json"), "{not json");
    }

    #[test]
    fn the_reason_of_an_exit_quotes_an_error_line_never_a_success_line() {
        let ready = "2026-11-28T08:30:02Z  INFO dnslb::roles::ts: table server ready ts=ts1";
        assert!(!is_problem_line(ready));
        assert_eq!(
            exit_reason(Some(9), None, Some((ready, false))),
            "killed by signal 9 (SIGKILL); no error logged before"
        );
        assert_eq!(
            exit_reason(None, Some(0), None),
            "exited with code 0; it printed nothing"
        );
        let error = "dnslb: error: zones/ts1.txt:3: bad IPv4 address";
        assert!(is_problem_line(error));
        assert_eq!(exit_reason(None, Some(1), Some((error, true))), error);
        let warn = "2026-11-28T08:30:02Z  WARN dnslb::roles::ts: reload refused ts=ts1";
        assert!(is_problem_line(warn));
        // JSON lines by their level; a panic's message (no log format) is one.
        assert!(is_problem_line(
            r#"{"level":"ERROR","fields":{"message":"x"}}"#
        ));
        assert!(!is_problem_line(
            r#"{"level":"INFO","fields":{"message":"x"}}"#
        ));
        assert!(is_problem_line("thread 'main' panicked at src/x.rs:1:1:"));
    }

    #[test]
    fn a_reload_report_is_read_back() {
        let line = format!("{RELOAD_REPORT}applied changed=1 zones=3");
        assert_eq!(
            parse_report(&line),
            Some(ChildReload::Applied("changed=1 zones=3".into()))
        );
        let line = format!("{RELOAD_REPORT}refused z.txt:3: bad");
        assert_eq!(
            parse_report(&line),
            Some(ChildReload::Refused("z.txt:3: bad".into()))
        );
        assert_eq!(parse_report("INFO reload done"), None);
        assert_eq!(parse_report(&format!("{RELOAD_REPORT}maybe x")), None);
    }

    /// A child that answers a SIGHUP with a report: `reload_all` gives it;
    /// the report line is not forwarded as a log line.
    #[tokio::test]
    async fn reload_all_waits_for_each_childs_report() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let code = format!(
            "import pathlib, signal, sys, time\n\
             def hup(*a):\n    sys.stderr.write({RELOAD_REPORT:?} + 'refused z.txt:3: bad\\n'); sys.stderr.flush()\n\
             signal.signal(signal.SIGHUP, hup)\n\
             pathlib.Path({:?}).touch()\n\
             while True: time.sleep(0.05)\n",
            ready.display().to_string()
        );
        let (sup, _) = start_ready("python3", &["-c", &code], &ready).await;
        let got = sup.reload_all(Duration::from_secs(20)).await;
        assert_eq!(
            got,
            [(
                "ts1".to_owned(),
                ChildReload::Refused("z.txt:3: bad".into())
            )]
        );
        sup.shutdown(Duration::from_secs(5)).await;
    }

    #[test]
    fn supervisor_pid_env() {
        assert_eq!(parse_pid(OsStr::new("1234")).unwrap(), 1234);
        for bad in ["", "0", "-1", "abc", "99999999999"] {
            assert!(matches!(
                parse_pid(OsStr::new(bad)),
                Err(SuperviseError::BadSupervisorPid(_))
            ));
        }
    }

    #[tokio::test]
    async fn restarts_killed_child_and_shutdown_reaps_all() {
        let sup = Supervisor::start(
            vec![
                spec("ts1", "/bin/sleep", &["30"]),
                spec("ts2", "/bin/sleep", &["30"]),
            ],
            backoff(50, 200),
            CancellationToken::new(),
        );
        let first = wait_pid(&sup, 0, None).await;
        let other = wait_pid(&sup, 1, None).await;
        assert!(alive(first) && alive(other));

        send_signal(first, Signal::KILL).unwrap();
        let second = tokio::time::timeout(Duration::from_secs(2), wait_pid(&sup, 0, Some(first)))
            .await
            .expect("restarted within 2 s");
        assert_ne!(first, second);
        assert!(!alive(first), "killed child was reaped");
        assert_eq!(
            sup.pids()[1].1,
            Some(other),
            "the other child was left alone"
        );
        assert_eq!(sup.restarts(), vec![("ts1".into(), 1), ("ts2".into(), 0)]);

        let started = Instant::now();
        sup.shutdown(Duration::from_secs(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "SIGTERM was enough"
        );
        for pid in [first, second, other] {
            assert!(!alive(pid), "pid {pid} still exists");
        }
    }

    /// A supervisor of one child `ts1` running `program` (one that cannot
    /// run for long), backing off from 20 ms up to 100 ms, once it has
    /// counted `n` restarts (polling, up to 20 s: a loaded machine is slow,
    /// never wrong); and how long that took since it started.
    async fn restarted(program: &str, n: u64) -> (Supervisor, Duration) {
        let from = Instant::now();
        let sup = Supervisor::start(
            vec![spec("ts1", program, &[])],
            backoff(20, 100),
            CancellationToken::new(),
        );
        let deadline = from + Duration::from_secs(20);
        while sup.restarts()[0].1 < n {
            assert!(Instant::now() < deadline, "fewer than {n} restarts in 20 s");
            tokio::time::sleep(ms(5)).await;
        }
        (sup, from.elapsed())
    }

    /// A child that fails at once is restarted after each back-off delay
    /// (20, 40, 80, then 100 ms; a restart is counted as its delay begins):
    /// the fifth is counted no sooner than the first four delays' sum. A lower bound: a loaded machine
    /// only makes it later, and a supervisor that restarted without waiting
    /// would be there in a few milliseconds.
    #[tokio::test]
    async fn failing_child_backs_off() {
        let (sup, took) = restarted("/bin/false", 5).await;
        assert!(
            took >= ms(20 + 40 + 80 + 100),
            "five restarts after {took:?}: the back-off was not waited"
        );
        sup.shutdown(Duration::from_secs(1)).await;
    }

    /// A child in its backoff (here a long one, after failing at start) is
    /// started at once by a SIGHUP: the fix an operator reloads for is not
    /// held back for up to `max`.
    #[tokio::test]
    async fn hup_restarts_a_child_in_its_backoff_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        // Appends a line per run, then fails at once.
        let code = format!(
            "import sys\nopen({:?}, 'a').write('run\\n')\nsys.exit(1)\n",
            runs.display().to_string()
        );
        let sup = Supervisor::start(
            vec![spec("ts1", "python3", &["-c", &code])],
            backoff(60_000, 60_000),
            CancellationToken::new(),
        );
        let count = || {
            std::fs::read_to_string(&runs)
                .map(|s| s.lines().count())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while count() < 1 || sup.restarts()[0].1 < 1 {
            assert!(Instant::now() < deadline, "the child never ran");
            tokio::time::sleep(ms(20)).await;
        }
        // In a 60 s backoff now; a SIGHUP starts it again at once.
        sup.signal_all(SupervisorSignal::Hup);
        while count() < 2 {
            assert!(
                Instant::now() < deadline,
                "not restarted by the SIGHUP (waiting out its 60 s backoff)"
            );
            tokio::time::sleep(ms(20)).await;
        }
        sup.shutdown(Duration::from_secs(1)).await;
    }

    /// A program that cannot be started is retried after the back-off (the
    /// second failure is counted 20 ms after the first at the soonest), and
    /// has no PID meanwhile.
    #[tokio::test]
    async fn missing_program_is_retried() {
        let (sup, took) = restarted("/nonexistent/dnslb", 2).await;
        assert!(took >= ms(20), "two retries after {took:?}");
        assert_eq!(sup.pids()[0].1, None);
        sup.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn hup_reaches_child() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hup");
        let ready = dir.path().join("ready");
        // The child says when its handler is installed: a HUP before that
        // would kill it (and a restart would follow), which is not what is
        // tested. Python, not a shell: a shell cannot trap a signal it was
        // started with ignored (as under `nohup`), Python's handler replaces it.
        let code = format!(
            "import pathlib, signal, time\n\
             signal.signal(signal.SIGHUP, lambda *a: pathlib.Path({:?}).write_text('hup'))\n\
             pathlib.Path({:?}).touch()\n\
             while True: time.sleep(0.05)\n",
            file.display().to_string(),
            ready.display().to_string()
        );
        let (sup, pid) = start_ready("python3", &["-c", &code], &ready).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        // Resend until the trap has run (a signal can arrive mid-`sleep`).
        while !file.exists() {
            assert!(Instant::now() < deadline, "HUP never arrived");
            sup.signal_all(SupervisorSignal::Hup);
            tokio::time::sleep(ms(50)).await;
        }
        assert_eq!(sup.pids()[0].1, Some(pid), "HUP did not restart the child");
        sup.shutdown(Duration::from_secs(5)).await;
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn stragglers_get_sigkill_after_grace() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        // The shell says when it ignores SIGTERM: a TERM before that would
        // stop it at once, and `shutdown` would return early.
        let script = format!(
            "trap '' TERM; touch '{}'; while :; do sleep 0.05; done",
            ready.display()
        );
        let (sup, pid) = start_ready("/bin/sh", &["-c", &script], &ready).await;
        let started = Instant::now();
        sup.shutdown(ms(300)).await;
        let took = started.elapsed();
        assert!(
            took >= ms(300),
            "returned before the grace period: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn cancelling_the_token_stops_children() {
        let token = CancellationToken::new();
        let sup = Supervisor::start(
            vec![spec("ts1", "/bin/sleep", &["30"])],
            backoff(50, 200),
            token.clone(),
        );
        let pid = wait_pid(&sup, 0, None).await;
        token.cancel();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sup.pids()[0].1.is_some() {
            assert!(Instant::now() < deadline, "child not stopped");
            tokio::time::sleep(ms(10)).await;
        }
        assert!(!alive(pid), "stopped child was reaped");
        sup.shutdown(Duration::from_secs(1)).await;
    }
}

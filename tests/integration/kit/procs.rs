//! Child processes and the plumbing around them, shared by every module that
//! runs real programs: a guard that stops a child by PID ([`Proc`]), the
//! `dnslb` binary launcher, free ports on 127.0.0.1, `dig`/`kdig` runs with
//! a time limit, and polling with a deadline.
//!
//! Nothing here sleeps and hopes: a wait is a bounded poll of real state, and
//! every child is stopped when its guard is dropped, so a failing test leaves
//! nothing running.
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::env::path_str;

/// The `dnslb` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dnslb");

/// How long a dropped [`Proc`] may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_WAIT: Duration = Duration::from_secs(3);

/// How long a `dig` or `kdig` run may take before the test calls it hung.
pub const TOOL_LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The process guard
// ---------------------------------------------------------------------------

/// Bytes a background thread reads from a child's pipe until EOF.
type Captured = Arc<Mutex<Vec<u8>>>;

/// Reads `from` into `into` on a thread of its own until EOF (or an error),
/// so that the child never blocks on a full pipe.
fn drain(mut from: impl Read + Send + 'static, into: Captured) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Sends `sig` to the process `pid`.
pub fn kill_pid(pid: u32, sig: Signal) -> rustix::io::Result<()> {
    let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, sig)
}

/// How long a SIGSTOPped process may take until all its threads have stopped.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(10);

/// Whether every thread of `pid` is stopped (state `T` or `t` in
/// `/proc/PID/task/TID/stat`). `None` while one still runs; `Some(false)`
/// if the process is gone.
fn all_threads_stopped(pid: u32) -> Option<bool> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(false);
    };
    for task in tasks.flatten() {
        // A thread that ended between the listing and the read is not running.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "TID (comm) S ...": the comm may hold spaces and parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if !matches!(state, Some('T' | 't')) {
            return None;
        }
    }
    Some(true)
}

/// Waits until every thread of `pid` has stopped after a SIGSTOP. The
/// kernel stops a multi-threaded process only once one of its threads has
/// taken the signal, and the others run on until then (on a busy machine,
/// for milliseconds): a test that stalls a server must not send its next
/// query before the server has really stopped.
fn wait_stopped(pid: u32) -> Result<(), String> {
    match poll_until(PAUSE_LIMIT, Duration::from_millis(1), || {
        all_threads_stopped(pid)
    }) {
        Some(true) => Ok(()),
        Some(false) => Err("ended instead of stopping on SIGSTOP".to_owned()),
        None => Err(format!("still running {PAUSE_LIMIT:?} after SIGSTOP")),
    }
}

/// Sends SIGCONT to a SIGSTOPped process when dropped, so that a failing
/// test never leaves it stopped (its guard could not stop it then).
#[must_use = "dropping it resumes the process at once"]
pub struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill_pid(self.0, Signal::CONT);
    }
}

/// Sends SIGSTOP to `pid` and returns once all its threads have stopped,
/// with the guard that resumes it.
pub fn pause_pid(pid: u32) -> Resume {
    kill_pid(pid, Signal::STOP).unwrap_or_else(|e| panic!("kill STOP {pid}: {e}"));
    let resume = Resume(pid);
    if let Err(why) = wait_stopped(pid) {
        panic!("process {pid} {why}");
    }
    resume
}

/// A child process with its stdout and stderr read continuously in the
/// background (so the pipes never fill). Dropping it stops the process by
/// PID: SIGTERM, up to [`STOP_WAIT`], then SIGKILL; if the test is panicking,
/// the child's stderr is printed.
///
/// Once the child has been reaped its PID may belong to another process, so
/// it is never signalled after that.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Captured,
    stderr: Captured,
    drains: Vec<JoinHandle<()>>,
    /// The exit status, once the child has been reaped.
    status: Option<ExitStatus>,
}

/// What a finished process printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// `dnslb ARGS`, to be started in `cwd`: logging at `info` whatever the
/// caller's `RUST_LOG`, and not believing it runs under `dnslb up` even if
/// the test runs under one.
pub fn dnslb_command<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
        .current_dir(cwd);
    cmd
}

impl Proc {
    /// Starts `cmd` with stdin from `/dev/null`; `name` stands for it in messages.
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        Proc::spawn_io(name, cmd, Stdio::null())
    }

    fn spawn_io(name: &str, mut cmd: Command, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} (is it installed?): {e}"));
        let stdout = Captured::default();
        let stderr = Captured::default();
        let drains = vec![
            drain(child.stdout.take().unwrap(), stdout.clone()),
            drain(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            drains,
            status: None,
        }
    }

    /// Starts `dnslb ARGS` in `cwd` (see [`dnslb_command`]).
    pub fn dnslb<S: AsRef<OsStr>>(name: &str, args: &[S], cwd: &Path) -> Proc {
        Proc::spawn(name, dnslb_command(args, cwd))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `limit` for the process to end.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        poll_until(limit, Duration::from_millis(5), || self.exited())
    }

    /// Sends `sig` by PID. Panics if the process has already ended (its PID
    /// is no longer its own) or the signal cannot be sent.
    pub fn signal(&mut self, sig: Signal) {
        if let Some(status) = self.exited() {
            panic!(
                "{} ended ({status}) before it could be sent {sig:?}; stderr:\n{}",
                self.name,
                self.stderr_now()
            );
        }
        kill_pid(self.pid(), sig)
            .unwrap_or_else(|e| panic!("kill {sig:?} {} ({}): {e}", self.pid(), self.name));
    }

    /// Stops the process with SIGSTOP and returns once all its threads have
    /// stopped, with the guard that resumes it ([`pause_pid`]).
    pub fn pause(&mut self) -> Resume {
        self.signal(Signal::STOP);
        let resume = Resume(self.pid());
        if let Err(why) = wait_stopped(self.pid()) {
            panic!("{} {why}; stderr:\n{}", self.name, self.stderr_now());
        }
        resume
    }

    /// SIGKILL by PID (unless it has already ended), and reap it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        if self.exited().is_none() {
            self.signal(Signal::KILL);
            self.status = Some(self.child.wait().expect("wait"));
        }
        self.status.unwrap()
    }

    /// What the process wrote to stderr so far, in whole lines. While the
    /// pipe is open its reader may hold part of a line (it reads at most
    /// 8 KiB at a time): that part is left out until the line's end is in.
    /// Once the pipe has reached its end, everything.
    ///
    /// "So far" is as far as the reader has got: an answer, a signal or a
    /// metric seen by the test does not mean that the lines the process
    /// wrote before it are here yet. Wait for a line ([`Proc::wait_line`],
    /// [`wait_stderr`]) before asserting on what it or the lines before it
    /// say.
    pub fn stderr_now(&self) -> String {
        let buf = self.stderr.lock().unwrap();
        let ended = self.drains.get(1).is_none_or(JoinHandle::is_finished);
        let end = if ended {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1)
        };
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }

    /// Everything the reader has of stderr, a line it holds part of too.
    fn stderr_raw(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until a whole line of stderr holds `needle` (at most `limit`;
    /// the process must stay up meanwhile) and returns the first such line.
    pub async fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_line_where(&format!("`{needle}`"), limit, |l| l.contains(needle))
            .await
    }

    /// [`Proc::wait_line`] for the first whole line `wanted` accepts (`what`
    /// names it in the failure).
    pub async fn wait_line_where(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let found = poll_until_async(limit, Duration::from_millis(20), async || {
            self.assert_running();
            let log = self.stderr_now();
            log.lines().find(|l| wanted(l)).map(str::to_owned)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "{}: {what} not logged within {limit:?}; stderr:\n{}",
                self.name,
                self.stderr_now()
            )
        })
    }

    /// Panics (with its stderr) if the process has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited early ({status}); stderr:\n{}",
                self.name,
                self.stderr_now()
            );
        }
    }

    /// SIGTERM, then [`Proc::finish`]: how it ended and everything it wrote,
    /// for asserting that it logged nothing of a kind (a line the pipe's
    /// reader had not got to while it ran is in).
    pub fn stop(mut self, limit: Duration) -> Output {
        self.signal(Signal::TERM);
        self.finish(limit)
    }

    /// Waits for the process to end on its own (at most `limit`, or the test
    /// fails) and collects everything it wrote (up to the pipes' EOF).
    pub fn finish(mut self, limit: Duration) -> Output {
        let Some(status) = self.wait_exit(limit) else {
            panic!(
                "{} did not exit within {limit:?}; stderr so far:\n{}",
                self.name,
                self.stderr_now()
            );
        };
        for reader in self.drains.drain(..) {
            reader.join().expect("a pipe reader");
        }
        let text = |buf: &Captured| String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        Output {
            status,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Not `exited()`: a panic here, during a panic, would abort the run.
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = kill_pid(self.pid(), Signal::TERM);
            let child = &mut self.child;
            let gone = poll_until(STOP_WAIT, Duration::from_millis(10), || {
                child.try_wait().ok().flatten()
            });
            if gone.is_none() {
                let _ = self.child.kill(); // SIGKILL: it is not reaped yet
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- stderr of {} ---\n{}", self.name, self.stderr_raw());
        }
    }
}

/// Runs `cmd` (named `what`) to its end within `limit`, stdin `/dev/null`;
/// it must succeed, or the failure names it, its status and output, then
/// `context`.
pub fn run_ok(what: &str, cmd: Command, limit: Duration, context: &str) -> Output {
    let out = run(what, cmd, None, limit);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}{context}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// Runs `cmd` to its end, feeding it `input` on stdin (`None`: `/dev/null`);
/// the test fails if it does not end within `limit` (it is stopped then).
pub fn run(name: &str, cmd: Command, input: Option<&[u8]>, limit: Duration) -> Output {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut p = Proc::spawn_io(name, cmd, stdin);
    if let Some(bytes) = input {
        // Dropped at the end of the block: the child sees EOF. A child that
        // ends before reading its input (a bad flag refused at once) closes
        // the pipe first: that is its answer, judged from its output.
        let mut pipe = p.child.stdin.take().unwrap();
        if let Err(err) = pipe.write_all(bytes) {
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{name}: {err}");
        }
    }
    p.finish(limit)
}

/// Runs `dnslb ARGS` in `cwd` to its end (at most `limit`), feeding it
/// `input` on stdin (see [`run`]).
pub fn run_dnslb(args: &[&str], cwd: &Path, input: Option<&[u8]>, limit: Duration) -> Output {
    let name = format!("dnslb {}", args.join(" "));
    run(&name, dnslb_command(args, cwd), input, limit)
}

/// `dnslb ARGS` from `/`, run to its end (at most [`TOOL_LIMIT`]) off the
/// runtime's threads: (exit ok, stdout, stderr).
pub async fn dnslb_cli(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_dnslb(&args, Path::new("/"), None, TOOL_LIMIT);
        (out.status.success(), out.stdout, out.stderr)
    })
    .await
    .unwrap()
}

/// Runs `dnslb check -c CONFIG` in `cwd` to its end (at most 10 s).
pub fn dnslb_check(config: &Path, cwd: &Path) -> Output {
    run_dnslb(
        &["check", "-c", path_str(config)],
        cwd,
        None,
        Duration::from_secs(10),
    )
}

/// `@IP -p PORT` of `server`, then `args`: the command line of `dig`,
/// `kdig` or `delv` asking that server.
pub fn tool_args(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!("@{}", server.ip()),
        "-p".to_owned(),
        server.port().to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

/// Runs `dig` or `kdig` (`prog`) with `args` from `/` to its end, at most
/// [`TOOL_LIMIT`]; how it ended is for the caller to judge.
pub fn run_tool<S: AsRef<OsStr>>(prog: &str, args: &[S]) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args).current_dir("/");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    run(
        &format!("`{prog} {}`", shown.join(" ")),
        cmd,
        None,
        TOOL_LIMIT,
    )
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// Ports handed out so far by [`free_ports`] in this test binary.
static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The kernel's ephemeral port range (what `bind(port 0)` picks from).
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// `n` distinct ports free for both UDP and TCP on 127.0.0.1, each checked
/// by binding it (the sockets are held until all are chosen, then dropped).
/// No port is handed out twice in one run of the test binary.
///
/// They are taken from the 10 000 ports just below the kernel's ephemeral
/// range when there is room: a port from `bind(port 0)` would be in that
/// range, where the LS's upstream sockets and every other test's clients
/// (all bound to port 0) could be handed it between our check and the
/// server's bind, or while a killed server's port is unused.
pub fn free_ports(n: usize) -> Vec<u16> {
    let below = ephemeral_range()
        .map(|(lo, _)| lo)
        .filter(|&lo| lo >= 12_000);
    let mut given = GIVEN.lock().unwrap();
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..10_000 {
        if ports.len() == n {
            return ports;
        }
        let udp = match below {
            Some(lo) => UdpSocket::bind(("127.0.0.1", rand::random_range(lo - 10_000..lo))),
            None => UdpSocket::bind("127.0.0.1:0"),
        };
        let Ok(udp) = udp else { continue };
        let port = udp.local_addr().unwrap().port();
        if given.contains(&port) {
            continue;
        }
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            ports.push(port);
            held.push((udp, tcp));
        }
    }
    panic!("no {n} free ports found");
}

/// [`free_ports`] as an array: `let [dns, metrics] = ports();`.
pub fn ports<const N: usize>() -> [u16; N] {
    free_ports(N)
        .try_into()
        .unwrap_or_else(|_| unreachable!("N ports"))
}

/// One port as [`free_ports`] picks them.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// 127.0.0.1:`port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether both UDP and TCP can bind 127.0.0.1:`port` (without SO_REUSEPORT,
/// so a server's SO_REUSEPORT socket still there makes it fail).
pub fn port_is_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

// ---------------------------------------------------------------------------
// Polling with a deadline
// ---------------------------------------------------------------------------

/// Calls `probe` until it gives `Some`, sleeping `pause` between two calls:
/// that value, or `None` once `limit` has passed (the probe runs at least
/// once, and once more after the last pause). Blocks the thread.
pub fn poll_until<T>(
    limit: Duration,
    pause: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
    }
}

/// [`poll_until`] for an async probe, pausing on the tokio timer.
pub async fn poll_until_async<T, F>(limit: Duration, pause: Duration, mut probe: F) -> Option<T>
where
    F: AsyncFnMut() -> Option<T>,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Some(v) => return Some(v),
            None if Instant::now() >= deadline => return None,
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// Latency summary: "n=.. min=.. p50=.. max=.." in ms.
pub fn summary(samples: &[Duration]) -> String {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return "n=0".into();
    }
    format!(
        "n={} min={:.1}ms p50={:.1}ms max={:.1}ms",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    )
}

/// Runs a peer's config checker `cmd` (e.g. `nsd-checkconf FILE`) and fails
/// the test, showing `text` (the config, file `file`), if it rejects it.
pub fn assert_config_accepted(mut cmd: Command, file: &str, text: &str) {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let check = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} (is it installed?): {e}"));
    assert!(
        check.status.success(),
        "{prog} rejects the generated config:\n{}{}\n--- {file} ---\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Polls `proc`'s stderr every 20 ms until `needle` occurs `count` times in
/// whole lines ([`Proc::stderr_now`]); panics after `limit` or if it exits.
pub async fn wait_stderr(proc: &mut Proc, needle: &str, count: usize, limit: Duration) -> Duration {
    let t = Instant::now();
    let found = poll_until_async(limit, Duration::from_millis(20), async || {
        proc.assert_running();
        (proc.stderr_now().matches(needle).count() >= count).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "`{needle}` not logged {count} time(s) within {limit:?}; stderr:\n{}",
        proc.stderr_now()
    );
    t.elapsed()
}

/// How long [`ZoneServer::wait_ready`] waits for the peer to answer.
const ZONE_READY_LIMIT: Duration = Duration::from_secs(15);

/// A name a peer answers by its endpoints' health: `label.zone` (`zone`
/// with no final dot; TTL 30) answers those of `endpoints` that a TCP
/// connect to `port` reaches.
#[derive(Debug, Clone, Copy)]
pub struct FollowedName<'a> {
    pub zone: &'a str,
    pub label: &'a str,
    pub endpoints: &'a [IpAddr],
    pub port: u16,
}

/// A peer program serving one zone on an address the test picks (gdnsd,
/// PowerDNS): its process (stopped by PID when dropped), its address, the
/// zone (no final dot) and the folder of its files.
pub struct ZoneServer {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub zone: String,
    _dir: tempfile::TempDir,
}

impl ZoneServer {
    /// Starts `cmd` (the program `name`), serving `zone` at `addr` from `dir`.
    pub fn spawn(
        name: &str,
        cmd: Command,
        (addr, zone): (SocketAddr, &str),
        dir: tempfile::TempDir,
    ) -> ZoneServer {
        ZoneServer {
            proc: Proc::spawn(name, cmd),
            addr,
            zone: zone.to_owned(),
            _dir: dir,
        }
    }

    /// Waits until the peer answers its zone's SOA (panics with its stderr
    /// if it exits or takes too long).
    pub async fn wait_ready(&mut self) {
        let (addr, zone) = (self.addr, format!("{}.", self.zone));
        super::wait_soa(addr, &zone, ZONE_READY_LIMIT, &mut [&mut self.proc], |m| {
            m.metadata.response_code == hickory_proto::op::ResponseCode::NoError
        })
        .await;
    }
}

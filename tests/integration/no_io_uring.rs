//! The LS where io_uring is forbidden, as container runtimes' seccomp
//! profiles (and `kernel.io_uring_disabled`) often forbid it: the LS's loops
//! are epoll and blocking receives (docs/BENCHMARKS.md, "The worker loop":
//! io_uring was measured and not chosen), so it starts and answers on every
//! transport with `io_uring_setup`, `io_uring_enter` and `io_uring_register`
//! failing with `EPERM`, and has nothing to say about it in its log.
//!
//! `dnslb ls` runs as a child of `bench/wake/deny_uring.c` (built with `cc`
//! into the test's folder: it installs the seccomp filter, unprivileged with
//! `PR_SET_NO_NEW_PRIVS`, and execs the command; x86-64). The test checks
//! that the kernel holds the LS to a filter (`Seccomp: 2` in
//! `/proc/PID/status`) and that `io_uring_setup` fails under the same
//! wrapper (a python3 probe) before asking over UDP, TCP, DNS over TLS and
//! DNS over HTTPS (kdig).
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::tls::{HOST, Pki};
use crate::kit::{
    Proc, crate_dir, dnslb_command, free_ports, need, path_str, run_tool, start_ts_table,
    wait_answers,
};

const TABLE: &str = "www.uring.example 10.40.0.1 A\n";

/// `io_uring_setup`'s number (the same on every architecture since 5.1).
const IO_URING_SETUP: u32 = 425;

/// The `Seccomp:` mode the kernel shows for `pid` (2: a filter).
fn seccomp_mode(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|m| m.trim().to_owned())
}

/// `cmd` run by `deny_uring`: its program and arguments after the wrapper's.
fn under(deny: &Path, cmd: &Command) -> Command {
    let mut wrapped = Command::new(deny);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

#[cfg(target_arch = "x86_64")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_serves_every_transport_with_io_uring_forbidden() {
    let test = "no_io_uring::the_ls_serves_every_transport_with_io_uring_forbidden";
    let Some([kdig, python, cc]) = need(test, ["kdig", "python3", "cc"]) else {
        return;
    };
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let (cert, key) = pki.leaf("ls");
    let ts = start_ts_table(&pki.dir, "t.txt", TABLE).await;
    let ports = free_ports(3);
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (plain, tls, https) = (at(ports[0]), at(ports[1]), at(ports[2]));
    let files = format!(
        "cert = \"{}\"\nkey = \"{}\"\n",
        path_str(&cert),
        path_str(&key)
    );
    let config = pki.path().join("ls.toml");
    std::fs::write(
        &config,
        format!(
            "[ls]\nlisten = [\"{plain}\"]\nworkers = 2\n\n\
             [ls.tls]\nlisten = [\"{tls}\"]\n{files}\n\
             [ls.https]\nlisten = [\"{https}\"]\n{files}\n\
             [[ls.backend]]\nname = \"ts\"\naddr = \"{}\"\n",
            ts.addr
        ),
    )
    .unwrap();
    let deny = pki.path().join("deny_uring");
    let source = crate_dir().join("bench/wake/deny_uring.c");
    let built = run_tool(
        path_str(&cc),
        &["-O2", "-o", path_str(&deny), path_str(&source)],
    );
    assert!(built.status.success(), "cc deny_uring.c: {}", built.stderr);
    // The wrapper does what it says: io_uring_setup under it fails with EPERM.
    let probe = format!(
        "import ctypes; libc = ctypes.CDLL(None, use_errno=True); \
         r = libc.syscall({IO_URING_SETUP}, 1, ctypes.create_string_buffer(120)); \
         print(r, ctypes.get_errno())"
    );
    let probed = run_tool(path_str(&deny), &[path_str(&python), "-c", &probe]);
    assert_eq!(
        probed.stdout.trim(),
        "-1 1",
        "io_uring_setup under deny_uring (result, errno: EPERM is 1): {}",
        probed.stderr
    );
    let cmd = dnslb_command(&["ls", "-c", path_str(&config)], Path::new("/"));
    let mut ls = Proc::spawn("dnslb ls (io_uring forbidden)", under(&deny, &cmd));
    let mode = crate::kit::poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
        // The wrapper's own command line names ls.toml too, before it has
        // installed its filter: read the mode once the process is dnslb.
        let exe = std::fs::read_link(format!("/proc/{}/exe", ls.pid())).ok()?;
        let dnslb = Path::new(crate::kit::procs::BIN).canonicalize().ok()?;
        seccomp_mode(ls.pid()).filter(|_| exe == dnslb)
    });
    assert_eq!(mode.as_deref(), Some("2"), "the LS runs under the filter");
    wait_answers(plain, "www.uring.example", "10.40.0.1", &mut [&mut ls]).await;

    let ca = format!("+tls-ca={}", path_str(&pki.ca()));
    let host = format!("+tls-hostname={HOST}");
    // kdig takes `+tls-ca` as asking for TLS: the plain TCP query goes without.
    let tls_args = [ca.as_str(), host.as_str()];
    let asks: [(u16, &str, &[&str]); 3] = [
        (plain.port(), "+tcp", &[]),
        (tls.port(), "+tls", &tls_args),
        (https.port(), "+https", &tls_args),
    ];
    for (port, how, more) in asks {
        let port = port.to_string();
        let mut args = vec!["@127.0.0.1", "-p", &port, how];
        args.extend_from_slice(more);
        args.extend(["+retry=0", "+time=5", "www.uring.example", "A"]);
        let out = run_tool(path_str(&kdig), &args).stdout;
        assert!(
            out.contains("NOERROR") && out.contains("10.40.0.1"),
            "{how}: {out}"
        );
    }
    ls.signal(rustix::process::Signal::TERM);
    let status = ls.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the LS stopped cleanly: {status:?}"
    );
    let log = ls.stderr_now();
    assert!(
        !log.to_lowercase().contains("uring"),
        "nothing about io_uring in the log:\n{log}"
    );
    ts.stop().await;
}

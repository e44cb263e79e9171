//! dnsdist (PowerDNS's DNS load balancer) as a peer: started in the
//! foreground (`--supervised`) with its Lua config in a temporary folder,
//! its console on a local port with a random key (read with `dnsdist -C
//! CONF -c -e 'showServers()'`), the security poll off (no query leaves the
//! machine); stopped by PID with its [`Proc`].
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Proc, assert_config_accepted, local, poll_until, run};

/// Standard base64 of `bytes` (the console key's format).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// dnsdist with its config in a temporary folder.
pub struct Dnsdist {
    /// Declared before `dir`: the process stops before its folder goes.
    pub proc: Proc,
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    bin: PathBuf,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsdist {
    /// dnsdist on 127.0.0.1:`port`, console on `console`, round-robin over
    /// `backends` (name, address), each health-checked with `example.test.
    /// SOA` every second.
    pub fn start(bin: &Path, port: u16, console: u16, backends: &[(&str, SocketAddr)]) -> Dnsdist {
        let servers: Vec<String> = backends
            .iter()
            .map(|(name, addr)| {
                format!(
                    "newServer{{address=\"{addr}\", name=\"{name}\", healthCheckMode=\"auto\", \
                     checkName=\"example.test.\", checkType=\"SOA\", checkInterval=1, \
                     maxCheckFailures=1, rise=1}}\n"
                )
            })
            .collect();
        Self::with_servers(bin, port, console, &servers.concat())
    }

    /// dnsdist on 127.0.0.1:`port`, console on `console`, forwarding every
    /// query as it came to `backend`, held up whatever its health checks
    /// say (`setUp()`): a forwarder in front of a server on the same host.
    pub fn in_front_of(bin: &Path, port: u16, console: u16, backend: SocketAddr) -> Dnsdist {
        let server = format!("newServer{{address=\"{backend}\", name=\"ls\"}}:setUp()\n");
        Self::with_servers(bin, port, console, &server)
    }

    /// dnsdist on 127.0.0.1 with plain DNS on `ports.0`, DNS over TLS
    /// (`addTLSLocal`, the certificate and key `pair`) on `ports.1`, its
    /// console on `ports.2`, forwarding every query to `backend` (held up).
    pub fn dot_in_front_of(
        bin: &Path,
        ports: (u16, u16, u16),
        pair: (&Path, &Path),
        backend: SocketAddr,
    ) -> Dnsdist {
        let (plain, dot, console) = ports;
        let lines = format!(
            "addTLSLocal(\"127.0.0.1:{dot}\", \"{}\", \"{}\")\n\
             newServer{{address=\"{backend}\", name=\"ts\"}}:setUp()\n",
            pair.0.display(),
            pair.1.display()
        );
        Self::with_servers(bin, plain, console, &lines)
    }

    /// dnsdist with `servers` (its `newServer` lines, and any other Lua
    /// after them).
    pub fn with_servers(bin: &Path, port: u16, console: u16, servers: &str) -> Dnsdist {
        let dir = tempfile::tempdir().unwrap();
        let key = base64(&rand::random::<[u8; 32]>());
        let mut lua = format!(
            "setSecurityPollSuffix(\"\")\n\
             setLocal(\"127.0.0.1:{port}\")\n\
             controlSocket(\"127.0.0.1:{console}\")\n\
             setKey(\"{key}\")\n\
             setServerPolicy(roundrobin)\n"
        );
        lua.push_str(servers);
        let conf = dir.path().join("dnsdist.conf");
        std::fs::write(&conf, &lua).unwrap();
        let mut check = Command::new(bin);
        check.arg("--check-config").arg("-C").arg(&conf);
        assert_config_accepted(check, "dnsdist.conf", &lua);
        // dnsdist logs to stdout: `sh` sends that to stderr, where [`Proc`]
        // keeps it for `stderr_now`, and `exec`s dnsdist (same PID).
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec \"$0\" \"$@\" 1>&2"])
            .arg(bin)
            .args(["--supervised", "--disable-syslog", "-C"])
            .arg(&conf)
            .current_dir(dir.path());
        Dnsdist {
            proc: Proc::spawn("dnsdist", cmd),
            addr: local(port),
            bin: bin.to_owned(),
            conf,
            _dir: dir,
        }
    }

    /// Runs `lua` on dnsdist's console: what it printed, or the error (the
    /// console may not listen yet).
    pub fn console(&self, lua: &str) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-C").arg(&self.conf).args(["-c", "-e", lua]);
        let out = run("dnsdist console", cmd, None, Duration::from_secs(10));
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    }

    /// The servers as `showServers()` lists them: (name, state, queries).
    pub fn servers(&self) -> Result<Vec<(String, String, u64)>, String> {
        let text = self.console("showServers()")?;
        // "#   Name  Address  State  Qps  Qlim Ord Wt  Queries ..."
        Ok(text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|f| f.parse::<u32>().is_ok())
            })
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_owned(), f[3].to_owned(), f[8].parse().unwrap_or(0))
            })
            .collect())
    }

    /// Polls `showServers()` until `done` holds for the list; panics with the
    /// last listing and dnsdist's log after `limit`.
    pub fn wait_servers(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[(String, String, u64)]) -> bool,
    ) -> Vec<(String, String, u64)> {
        let mut last = Err("not asked".to_owned());
        let found = poll_until(limit, Duration::from_millis(100), || {
            self.proc.assert_running();
            let s = self.servers();
            if let Ok(s) = &s
                && done(s)
            {
                return Some(s.clone());
            }
            last = s;
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "dnsdist: {what} not seen within {limit:?}; last showServers(): {last:?}\n\
                 --- dnsdist stderr ---\n{}",
                self.proc.stderr_now()
            )
        })
    }
}

//! Network namespaces a test makes ([`Netns`], deleted on drop), the veth
//! links between them, a thread's sockets opened inside one
//! ([`enter_netns`], or a closure run there by [`in_netns`]), and BIRD 2
//! run inside one ([`Bird`]).
//!
//! Nothing here reaches the machine's own network: every address lives in
//! namespaces the test created. A test needs root (`ip netns add`); the
//! caller checks with [`netns_or_skip`].
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::env::{find_program, skip};
use super::procs::{Proc, poll_until};

/// `ip`'s path when namespaces can be made here (root, `ip` installed),
/// else `None` after [`skip`].
pub fn netns_or_skip(test: &str) -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        skip(test, "not root: network namespaces need it");
        return None;
    }
    let Some(ip) = find_program("ip") else {
        skip(test, "ip (iproute2) not installed");
        return None;
    };
    Some(ip)
}

/// A network namespace with its loopback up; dropping it deletes it (after
/// the processes in it are gone: drop those first).
pub struct Netns {
    pub name: String,
    ip: PathBuf,
}

impl Netns {
    /// `ip netns add PREFIX-TAG`, `lo` up.
    pub fn create(ip: &Path, prefix: &str, tag: &str) -> Netns {
        let ns = Netns {
            name: format!("{prefix}-{tag}"),
            ip: ip.to_owned(),
        };
        let add = Command::new(ip)
            .args(["netns", "add", &ns.name])
            .output()
            .unwrap();
        assert!(add.status.success(), "ip netns add {}: {add:?}", ns.name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A name prefix unique to this run: `dl-PID-XXXX`.
    pub fn unique_prefix(tag: &str) -> String {
        format!(
            "dl{tag}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    }

    /// `ip -n NAME ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        ip_in(&self.ip, &self.name, args);
    }

    /// `ip -n NAME ARGS`'s output.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let out = Command::new(&self.ip)
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sysctl -w` of `settings` inside the namespace.
    pub fn sysctl(&self, settings: &[&str]) {
        let out = Command::new(&self.ip)
            .args(["netns", "exec", &self.name, "sysctl", "-qw"])
            .args(settings)
            .output()
            .unwrap();
        assert!(out.status.success(), "sysctl {settings:?}: {out:?}");
    }

    /// A veth pair: `here_if` in this namespace, `there_if` in `there`.
    pub fn veth(&self, here_if: &str, there: &Netns, there_if: &str) {
        let out = Command::new(&self.ip)
            .args(["link", "add", here_if, "netns", &self.name, "type", "veth"])
            .args(["peer", "name", there_if, "netns", &there.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "ip link add {here_if}: {out:?}");
        self.ip(&["link", "set", here_if, "up"]);
        there.ip(&["link", "set", there_if, "up"]);
    }

    /// `prog args` run inside the namespace, as a [`Command`].
    pub fn command(&self, prog: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.name])
            .arg(prog)
            .args(args)
            .current_dir("/");
        cmd
    }

    /// `dnslb ARGS` in `dir`, inside the namespace (logging at info).
    pub fn dnslb(&self, name: &str, args: &[&str], dir: &Path) -> Proc {
        let inner = super::dnslb_command(args, dir);
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.name, super::BIN])
            .args(inner.get_args())
            .env("RUST_LOG", "info")
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
            .current_dir(dir);
        Proc::spawn(name, cmd)
    }

    /// `curl -s URL` inside the namespace (5 s at most): the body, empty
    /// when curl got none.
    pub fn curl(&self, url: &str) -> String {
        let curl = find_program("curl").expect("curl");
        let out = self
            .command(&curl, &["-s", "--max-time", "5", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `raw` sent over UDP from a socket inside the namespace `ns` to `to`: the
/// answer's bytes, or `None` after `wait`.
pub fn ask_raw_in(ns: &str, to: SocketAddr, raw: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let raw = raw.to_vec();
    in_netns(ns, move || {
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(wait)).unwrap();
        sock.send_to(&raw, to).unwrap();
        let mut buf = vec![0u8; 65_535];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
}

/// Moves the calling thread into the namespace `name` (for a thread of its
/// own: its sockets then live there).
pub fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap();
}

/// `f`'s value, `f` run on a thread of its own moved into the namespace
/// `name` (its sockets, and `/proc/thread-self/net`, are the namespace's).
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_owned();
    std::thread::spawn(move || {
        enter_netns(&name);
        f()
    })
    .join()
    .unwrap()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let del = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .output();
        if !del.is_ok_and(|o| o.status.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

/// BIRD 2 (`bird -f`) running inside a namespace, on a config the test
/// wrote, its control socket in the test's folder; stopped by PID.
pub struct Bird {
    pub proc: Proc,
    pub socket: PathBuf,
    birdc: PathBuf,
}

impl Bird {
    /// Writes `conf` as `dir/NAME.conf` and starts BIRD on it in `ns`;
    /// returns once its control socket answers.
    pub fn start(
        ns: &Netns,
        bird: &Path,
        birdc: &Path,
        dir: &Path,
        name: &str,
        conf: &str,
    ) -> Bird {
        let conf_path = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let socket = dir.join(format!("{name}.ctl"));
        let pid = dir.join(format!("{name}.pid"));
        let args = [
            "-f",
            "-c",
            conf_path.to_str().unwrap(),
            "-s",
            socket.to_str().unwrap(),
            "-P",
            pid.to_str().unwrap(),
        ];
        let mut b = Bird {
            proc: Proc::spawn(&format!("bird {name}"), ns.command(bird, &args)),
            socket,
            birdc: birdc.to_owned(),
        };
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
            b.birdc(&["show", "status"])
                .contains("Daemon is up")
                .then_some(())
        });
        if up.is_none() {
            b.proc.assert_running();
            panic!("bird {name} never answered: {}", b.proc.stderr_now());
        }
        b
    }

    /// `birdc -s SOCKET ARGS`'s output.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `ip -n NETNS ARGS` (`ip` the program), which must succeed.
pub fn ip_in(ip: &Path, netns: &str, args: &[&str]) {
    let out = Command::new(ip)
        .args(["-n", netns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {netns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces a doc's recipe names (`anycast-r`, `xdp-s`...), given
/// names of this run for the walk ([`RecipeNetns::rewrite`]) and deleted
/// when the test ends, whatever the walk did.
pub struct RecipeNetns {
    ip: PathBuf,
    doc: Vec<String>,
    /// This run's names, in the doc's order.
    pub names: Vec<String>,
}

impl RecipeNetns {
    /// This run's names for `doc` (`PREFIX-LAST`, `LAST` the doc name's part
    /// after its last `-`).
    pub fn new(ip: &Path, doc: &[&str]) -> RecipeNetns {
        let prefix = Netns::unique_prefix("w");
        RecipeNetns {
            ip: ip.to_owned(),
            doc: doc.iter().map(|d| (*d).to_owned()).collect(),
            names: doc
                .iter()
                .map(|n| format!("{prefix}-{}", n.rsplit('-').next().unwrap()))
                .collect(),
        }
    }

    /// `text` with the doc's namespace names replaced by this run's.
    pub fn rewrite(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for (from, to) in self.doc.iter().zip(&self.names) {
            t = t.replace(from.as_str(), to);
        }
        t
    }
}

impl Drop for RecipeNetns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new(&self.ip).args(["netns", "del", ns]).output();
        }
    }
}

//! Unbound as a peer, run in the foreground with its config written to a
//! folder (and checked by `unbound-checkconf` when installed, bounded):
//! a recursive resolver with one stub zone in front of a server under test
//! ([`Unbound::start_for`]), or any config ([`spawn_unbound`], e.g. a
//! secondary by `auth-zone`). No query can leave the machine: every config
//! here listens and sends on 127.0.0.1 only.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::client::wait_for;
use super::commands::PEER_READY_LIMIT;
use super::env::find_program;
use super::procs::{Proc, TOOL_LIMIT, local, run_ok};

/// Unbound with its config in a temporary folder.
pub struct Unbound {
    /// Declared before `dir`: the process stops before its folder goes.
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// Unbound on 127.0.0.1:`port`, resolving `zone` through the stub
    /// server `server`, refusing every other name, with `modules` as its
    /// `module-config` and `extra` (whole `server:` lines, each indented)
    /// added to its `server:` clause.
    pub fn start_for(
        bin: &Path,
        port: u16,
        (zone, server): (&str, SocketAddr),
        modules: &str,
        extra: &str,
    ) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "{}\
             \x20 logfile: \"\"\n\
             \x20 log-servfail: yes\n\
             \x20 verbosity: 1\n\
             \x20 module-config: \"{modules}\"\n\
             \x20 auto-trust-anchor-file: \"\"\n\
             \x20 qname-minimisation: no\n\
             \x20 local-zone: \".\" refuse\n\
             \x20 local-zone: \"{zone}\" transparent\n\
             {extra}\
             remote-control:\n\
             \x20 control-enable: no\n\
             stub-zone:\n\
             \x20 name: \"{zone}\"\n\
             \x20 stub-addr: {}@{}\n",
            server_clause(port, dir.path()),
            server.ip(),
            server.port()
        );
        Unbound {
            proc: spawn_unbound(bin, dir.path(), &conf),
            addr: local(port),
            _dir: dir,
        }
    }

    /// Polls a name Unbound refuses by itself (no upstream involved) until
    /// it answers.
    pub async fn wait_ready(&mut self) {
        wait_for(
            self.addr,
            "ready.dnslb-test.",
            RecordType::A,
            true,
            PEER_READY_LIMIT,
            &mut [&mut self.proc],
            |m| m.metadata.response_code == ResponseCode::Refused,
        )
        .await;
    }
}

/// Writes `conf` to `dir/unbound.conf`, has `unbound-checkconf` accept it
/// (when installed), and starts `bin -d -c` on it from `dir`.
pub fn spawn_unbound(bin: &Path, dir: &Path, conf: &str) -> Proc {
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    if let Some(check) = find_program("unbound-checkconf") {
        let mut cmd = Command::new(check);
        cmd.arg(&path);
        let context = format!("--- unbound.conf ---\n{conf}");
        run_ok("unbound-checkconf", cmd, TOOL_LIMIT, &context);
    }
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(&path).current_dir(dir);
    Proc::spawn("unbound", cmd)
}

/// The start of a `server:` clause every Unbound here shares: one thread on
/// 127.0.0.1:`port` (IPv4 only), in the foreground, no syslog, no chroot or
/// user change, its files in `dir`, asking servers on 127.0.0.1 only, from
/// 127.0.0.1, answering only 127.0.0.0/8.
pub fn server_clause(port: u16, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "server:\n\
         \x20 interface: 127.0.0.1\n\
         \x20 port: {port}\n\
         \x20 do-ip6: no\n\
         \x20 do-daemonize: no\n\
         \x20 use-syslog: no\n\
         \x20 chroot: \"\"\n\
         \x20 username: \"\"\n\
         \x20 directory: \"{d}\"\n\
         \x20 pidfile: \"{d}/unbound.pid\"\n\
         \x20 num-threads: 1\n\
         \x20 do-not-query-localhost: no\n\
         \x20 outgoing-interface: 127.0.0.1\n\
         \x20 access-control: 127.0.0.0/8 allow\n"
    )
}

//! NSD as a peer of the tests: a reference primary serving a zone file
//! (interop's differential test) or a secondary transferring a zone from a
//! TS and following its NOTIFY (xfr).
//!
//! NSD runs in the foreground (`-d`) in a process group of its own, with its
//! config (checked by `nsd-checkconf` first), zone, state and log in a
//! temporary folder. The guard stops it by that group's id when dropped.
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::{Pid, Signal};
use tokio::net::TcpStream;

use crate::kit;
use crate::kit::{STOP_WAIT, free_port, local, poll_until, poll_until_async};

/// How long [`Nsd::wait_ready`] waits for NSD to answer.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// An NSD running in the foreground with everything it needs in a temporary
/// folder. Dropping it stops NSD and its helper processes (its process group,
/// by that id: SIGTERM, up to [`STOP_WAIT`], SIGKILL) and removes the folder.
pub struct Nsd {
    child: Child,
    /// The child has been waited for: its PID (and group id) may be reused,
    /// so it must not be signalled any more.
    reaped: bool,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Where NSD keeps `zone` (with or without its final dot) in `dir`.
fn zone_path(dir: &Path, zone: &str) -> PathBuf {
    dir.join(format!("{}.zone", zone.trim_end_matches('.')))
}

impl Nsd {
    /// NSD on a free port, authoritative for `zone` with `zone_text` as its
    /// zone file. Call [`Nsd::wait_ready`] before querying it.
    pub fn primary(zone: &str, zone_text: &str) -> Nsd {
        Nsd::primary_bytes(zone, zone_text.as_bytes())
    }

    /// [`Nsd::primary`] with a zone file that need not be UTF-8.
    pub fn primary_bytes(zone: &str, zone_file: &[u8]) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(zone_path(dir.path(), zone), zone_file).unwrap();
        Nsd::start(dir, free_port(), zone, "", "")
    }

    /// NSD on a free port, primary for `zone` (`zone_text` its file),
    /// allowing transfers from 127.0.0.1 and NOTIFYing
    /// 127.0.0.1:`notify_port`. Change it with [`Nsd::change_zone`].
    pub fn primary_notifying(zone: &str, zone_text: &str, notify_port: u16) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(zone_path(dir.path(), zone), zone_text).unwrap();
        let options = format!(
            "\x20 provide-xfr: 127.0.0.1 NOKEY\n\
             \x20 notify: 127.0.0.1@{notify_port} NOKEY\n"
        );
        Nsd::start(dir, free_port(), zone, &options, "")
    }

    /// Rewrites `zone`'s file and tells NSD (SIGHUP: the zone files that
    /// changed are read again, and their secondaries NOTIFYed).
    pub fn change_zone(&mut self, zone: &str, zone_text: &str) {
        std::fs::write(zone_path(self.dir.path(), zone), zone_text).unwrap();
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, Signal::HUP).unwrap();
    }

    /// NSD on a free port, authoritative for each `(zone, zone_text)` of
    /// `zones` (at least one).
    pub fn primaries(zones: &[(&str, &str)]) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        let mut clauses = String::new();
        for (i, (zone, text)) in zones.iter().enumerate() {
            let path = zone_path(dir.path(), zone);
            std::fs::write(&path, text).unwrap();
            if i > 0 {
                clauses.push_str(&format!(
                    "zone:\n\x20 name: \"{zone}\"\n\x20 zonefile: \"{}\"\n",
                    path.display()
                ));
            }
        }
        Nsd::start(dir, free_port(), zones[0].0, "", &clauses)
    }

    /// [`Nsd::primary`] with response rate limiting: `rrl-ratelimit` of
    /// `rate` a second, `rrl-slip` of `slip`, per /24 and /56 (its defaults
    /// written out).
    pub fn primary_with_rrl(zone: &str, zone_text: &str, rate: u32, slip: u32) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(zone_path(dir.path(), zone), zone_text).unwrap();
        let server = format!(
            "server:\n\
             \x20 rrl-ratelimit: {rate}\n\
             \x20 rrl-slip: {slip}\n\
             \x20 rrl-ipv4-prefix-length: 24\n\
             \x20 rrl-ipv6-prefix-length: 56\n"
        );
        Nsd::start(dir, free_port(), zone, "", &server)
    }

    /// NSD on `port`, a secondary of `zone` transferring from `primary` and
    /// accepting NOTIFY from 127.0.0.1. The zone file does not exist yet:
    /// the data must come by AXFR.
    pub fn secondary(port: u16, zone: &str, primary: SocketAddr) -> Nsd {
        Nsd::secondary_notified_by(port, zone, primary, "127.0.0.1")
    }

    /// [`Nsd::secondary`], accepting NOTIFY only from `notify_from`.
    pub fn secondary_notified_by(
        port: u16,
        zone: &str,
        primary: SocketAddr,
        notify_from: &str,
    ) -> Nsd {
        let zone_options = format!(
            "\x20 request-xfr: {}@{} NOKEY\n\
             \x20 allow-notify: {notify_from} NOKEY\n",
            primary.ip(),
            primary.port()
        );
        Nsd::start(tempfile::tempdir().unwrap(), port, zone, &zone_options, "")
    }

    /// [`Nsd::secondary`] with the TSIG key `(algorithm, name, secret)`: its
    /// transfers and SOA queries signed, NOTIFYs accepted only signed.
    pub fn secondary_with_key(
        port: u16,
        zone: &str,
        primary: SocketAddr,
        (algorithm, name, secret): (&str, &str, &str),
    ) -> Nsd {
        let key = format!(
            "key:\n\x20 name: \"{name}\"\n\x20 algorithm: {algorithm}\n\x20 secret: \"{secret}\"\n"
        );
        let zone_options = format!(
            "\x20 request-xfr: {}@{} {name}\n\
             \x20 allow-notify: 127.0.0.1 {name}\n",
            primary.ip(),
            primary.port()
        );
        Nsd::start(
            tempfile::tempdir().unwrap(),
            port,
            zone,
            &zone_options,
            &key,
        )
    }

    /// Writes and checks an nsd.conf in `dir` serving `zone` (with
    /// `zone_options` added to its `zone:` clause, `clauses` before it) on
    /// `port`, and starts NSD.
    fn start(
        dir: tempfile::TempDir,
        port: u16,
        zone: &str,
        zone_options: &str,
        clauses: &str,
    ) -> Nsd {
        let d = dir.path();
        let p = |f: &str| d.join(f).display().to_string();
        // `refuse-any: no`: the differential test compares answers to ANY.
        let conf = format!(
            "server:\n\
             \x20 ip-address: 127.0.0.1@{port}\n\
             \x20 port: {port}\n\
             \x20 do-ip4: yes\n\
             \x20 do-ip6: no\n\
             \x20 server-count: 1\n\
             \x20 username: \"\"\n\
             \x20 chroot: \"\"\n\
             \x20 zonesdir: \"{dir}\"\n\
             \x20 pidfile: \"{pid}\"\n\
             \x20 logfile: \"{log}\"\n\
             \x20 xfrdfile: \"{xfrd}\"\n\
             \x20 xfrdir: \"{dir}\"\n\
             \x20 zonelistfile: \"{zl}\"\n\
             \x20 database: \"\"\n\
             \x20 minimal-responses: yes\n\
             \x20 refuse-any: no\n\
             \x20 hide-version: yes\n\
             \x20 verbosity: 2\n\
             remote-control:\n\
             \x20 control-enable: no\n\
             {clauses}\
             zone:\n\
             \x20 name: \"{zone}\"\n\
             \x20 zonefile: \"{zf}\"\n\
             {zone_options}",
            dir = d.display(),
            pid = p("nsd.pid"),
            log = p("nsd.log"),
            xfrd = p("xfrd.state"),
            zl = p("zone.list"),
            zf = zone_path(d, zone).display(),
        );
        let conf_file = d.join("nsd.conf");
        std::fs::write(&conf_file, &conf).unwrap();

        let mut check = Command::new("nsd-checkconf");
        check.arg(&conf_file);
        kit::assert_config_accepted(check, "nsd.conf", &conf);

        let out = File::create(d.join("nsd.stdout")).unwrap();
        let err = File::create(d.join("nsd.stderr")).unwrap();
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nsd: {e}"));
        Nsd {
            child,
            reaped: false,
            addr: local(port),
            dir,
        }
    }

    /// The zone file of `zone` (what [`Nsd::primary`] wrote).
    pub fn zone_file(&self, zone: &str) -> PathBuf {
        zone_path(self.dir.path(), zone)
    }

    /// NSD's log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- nsd.log ---\n{}--- nsd stderr ---\n{}",
            read("nsd.log"),
            read("nsd.stderr")
        )
    }

    /// Panics (with NSD's logs) if NSD has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.reaped = true;
            panic!("nsd exited early ({status})\n{}", self.logs());
        }
    }

    /// Polls NSD with an SOA query for `zone` (UDP, then TCP) until it
    /// answers NOERROR; panics with NSD's log if it exits or takes too long.
    pub async fn wait_ready(&mut self, zone: &str) {
        let q = kit::query(zone, RecordType::SOA, None);
        let bytes = q.to_vec().unwrap();
        // Connection refused comes back at once; do not spin on it.
        let ready = poll_until_async(READY_LIMIT, Duration::from_millis(20), async || {
            self.check_alive();
            let wait = Duration::from_millis(100);
            let answered = kit::udp_raw_wait(self.addr, &bytes, wait)
                .await
                .is_some_and(|raw| {
                    Message::from_vec(&raw)
                        .is_ok_and(|m| m.metadata.response_code == ResponseCode::NoError)
                });
            (answered && TcpStream::connect(self.addr).await.is_ok()).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "nsd did not answer on {} within {READY_LIMIT:?}\n{}",
            self.addr,
            self.logs()
        );
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // NSD stops its helpers and exits on SIGTERM; the group signal also
        // reaches helpers whose parent died first. Until we reap the main
        // process its PID, hence the group id, cannot be reused.
        let group = Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, Signal::TERM);
        let child = &mut self.child;
        let gone = poll_until(STOP_WAIT, Duration::from_millis(10), || {
            child.try_wait().ok().flatten()
        });
        if gone.is_none() {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

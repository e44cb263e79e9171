//! Knot DNS (`knotd`) as a peer of the tests: a primary serving a zone file,
//! or a secondary transferring a zone from a TS and following its NOTIFY.
//!
//! knotd runs in the foreground (its default) as one process, logging to
//! stderr, with its config (checked by `knotc conf-check` first), zone files,
//! databases, control socket and PID file in a temporary folder. The [`Proc`]
//! guard stops it by PID; the folder goes after it.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::{
    ASK_POLL as POLL, ASK_POLL_WAIT as POLL_WAIT, Proc, ask, find_program, free_port, local,
    poll_until_async,
};

/// How long knotd may take to load its zone and answer.
const READY_LIMIT: Duration = Duration::from_secs(15);

/// A knotd with everything it needs in a temporary folder.
pub struct Knot {
    /// Declared before `dir`: the process stops before its folder goes.
    pub proc: Proc,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Knot {
    /// knotd on a free port, primary for `zone` with `zone_text` as its zone
    /// file. Call [`Knot::wait_ready`] before querying it.
    pub fn primary(knotd: &Path, zone: &str, zone_text: &str) -> Knot {
        Knot::primary_with(knotd, zone, zone_text, "")
    }

    /// [`Knot::primary`] with `more` lines in its zone clause.
    fn primary_with(knotd: &Path, zone: &str, zone_text: &str, more: &str) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("primary.zone"), zone_text).unwrap();
        let clause = format!(
            "  - domain: {zone}\n    file: \"{}\"\n{more}",
            dir.path().join("primary.zone").display()
        );
        Knot::start(knotd, dir, free_port(), "", &clause)
    }

    /// knotd on a free port, primary for `zone` with `zone_text` as its zone
    /// file, allowing transfers from 127.0.0.1 and NOTIFYing
    /// 127.0.0.1:`notify_port`; a changed file is loaded by difference
    /// (`zonefile-load: difference`), so it answers IXFR. Change it with
    /// [`Knot::change_zone`].
    pub fn primary_notifying(knotd: &Path, zone: &str, zone_text: &str, notify_port: u16) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("primary.zone"), zone_text).unwrap();
        let remote = format!(
            "remote:\n  - id: secondary\n    address: 127.0.0.1@{notify_port}\n\
             acl:\n  - id: xfr_out\n    address: 127.0.0.1\n    action: transfer\n"
        );
        let clause = format!(
            "  - domain: {zone}\n    file: \"{}\"\n    notify: secondary\n    acl: xfr_out\n    zonefile-load: difference\n",
            dir.path().join("primary.zone").display()
        );
        Knot::start(knotd, dir, free_port(), &remote, &clause)
    }

    /// knotd on a free port consuming the catalog zone `catalog` (RFC 9432,
    /// `catalog-role: interpret`) from `primary`: each member a secondary
    /// of `primary` too, NOTIFYs taken from 127.0.0.1.
    pub fn catalog_consumer(knotd: &Path, catalog: &str, primary: SocketAddr) -> Knot {
        Knot::catalog_consumer_on(knotd, free_port(), catalog, primary)
    }

    /// [`Knot::catalog_consumer`] on `port`, for a primary that must know
    /// the port (to NOTIFY it) before knotd starts: start knotd once the
    /// primary serves, or its first refresh fails and waits out a retry.
    pub fn catalog_consumer_on(
        knotd: &Path,
        port: u16,
        catalog: &str,
        primary: SocketAddr,
    ) -> Knot {
        let at = CatalogAt {
            ns: None,
            listen: format!("127.0.0.1@{port}"),
            notify_from: "127.0.0.1".into(),
        };
        Knot::catalog_consumer_at(knotd, catalog, primary, at, local(port))
    }

    /// [`Knot::catalog_consumer`] run inside the network namespace `ns`,
    /// listening on every address of it at `port` (the primary's NOTIFYs
    /// come over its links), taking NOTIFYs from `notify_from` (the
    /// primary's address as the namespace sees it). Query it from inside
    /// `ns` at 127.0.0.1:`port`.
    pub fn catalog_consumer_in(
        knotd: &Path,
        ns: &super::Netns,
        port: u16,
        catalog: &str,
        primary: SocketAddr,
        notify_from: &str,
    ) -> Knot {
        let at = CatalogAt {
            ns: Some(ns),
            listen: format!("0.0.0.0@{port}"),
            notify_from: notify_from.into(),
        };
        Knot::catalog_consumer_at(knotd, catalog, primary, at, local(port))
    }

    fn catalog_consumer_at(
        knotd: &Path,
        catalog: &str,
        primary: SocketAddr,
        at: CatalogAt,
        addr: SocketAddr,
    ) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let remote = format!(
            "remote:\n  - id: primary\n    address: {}@{}\n\
             acl:\n  - id: notify_from_primary\n    address: {}\n    action: notify\n",
            primary.ip(),
            primary.port(),
            at.notify_from
        );
        let member = format!(
            "\x20 - id: member\n\
             \x20   storage: \"{d}\"\n\
             \x20   file: \"%s.zone\"\n\
             \x20   zonefile-sync: -1\n\
             \x20   journal-content: changes\n\
             \x20   master: primary\n\
             \x20   acl: notify_from_primary\n"
        );
        let clause = format!(
            "  - domain: {catalog}\n    master: primary\n    acl: notify_from_primary\n\
             \x20   catalog-role: interpret\n    catalog-template: member\n"
        );
        let conf = write_conf_with(dir.path(), &at.listen, &remote, &member, &clause);
        if let Err(e) = conf_check(&conf) {
            panic!("knotc conf-check rejects the generated config: {e}");
        }
        Knot {
            proc: spawn(knotd, &conf, dir.path(), at.ns),
            addr,
            dir,
        }
    }

    /// Rewrites the zone file of [`Knot::primary_notifying`] and tells knotd
    /// (SIGHUP: the configuration and the changed zones reloaded).
    pub fn change_zone(&mut self, zone_text: &str) {
        std::fs::write(self.dir.path().join("primary.zone"), zone_text).unwrap();
        self.proc.signal(rustix::process::Signal::HUP);
    }

    /// [`Knot::primary`] with `mod-cookies` loaded for every zone (DNS
    /// Cookies, RFC 7873: a server cookie on every answer to a query with a
    /// client cookie).
    pub fn primary_with_cookies(knotd: &Path, zone: &str, zone_text: &str) -> Knot {
        Knot::primary_with(knotd, zone, zone_text, "    module: mod-cookies\n")
    }

    /// [`Knot::primary`] with `mod-rrl` loaded for the zone: `rate-limit`
    /// of `rate` a second, `slip` of `slip` (Knot counts per /24 and /56).
    pub fn primary_with_rrl(
        knotd: &Path,
        zone: &str,
        zone_text: &str,
        rate: u32,
        slip: u32,
    ) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("primary.zone"), zone_text).unwrap();
        let rrl = format!("mod-rrl:\n  - id: flood\n    rate-limit: {rate}\n    slip: {slip}\n");
        let clause = format!(
            "  - domain: {zone}\n    file: \"{}\"\n    module: mod-rrl/flood\n",
            dir.path().join("primary.zone").display()
        );
        Knot::start(knotd, dir, free_port(), &rrl, &clause)
    }

    /// knotd on `port`, a secondary of `zone` transferring from `primary`
    /// and accepting NOTIFY from 127.0.0.1. There is no zone file: the data
    /// can only come by zone transfer.
    pub fn secondary(knotd: &Path, port: u16, zone: &str, primary: SocketAddr) -> Knot {
        Knot::secondary_notified_by(knotd, port, zone, primary, "127.0.0.1")
    }

    /// [`Knot::secondary`], accepting NOTIFY only from `notify_from` (an
    /// address other than the primary's makes Knot refuse its NOTIFY).
    pub fn secondary_notified_by(
        knotd: &Path,
        port: u16,
        zone: &str,
        primary: SocketAddr,
        notify_from: &str,
    ) -> Knot {
        let remote = primary_remote(primary, notify_from);
        Knot::secondary_with(knotd, port, zone, &remote)
    }

    /// [`Knot::secondary`] signing with `key` (algorithm, name, secret) and
    /// accepting only NOTIFYs signed with it.
    pub fn secondary_with_key(
        knotd: &Path,
        port: u16,
        zone: &str,
        primary: SocketAddr,
        key: (&str, &str, &str),
    ) -> Knot {
        let (algorithm, name, secret) = key;
        let remote = format!(
            "key:\n  - id: {name}\n    algorithm: {algorithm}\n    secret: {secret}\n\
             remote:\n  - id: primary\n    address: {}@{}\n    key: {name}\n\
             acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    key: {name}\n    action: notify\n",
            primary.ip(),
            primary.port()
        );
        Knot::secondary_with(knotd, port, zone, &remote)
    }

    /// A secondary of `zone` from the remote `primary` of the `remote`
    /// (remote, acl and key sections), NOTIFYs allowed by its
    /// `notify_from_primary` acl.
    fn secondary_with(knotd: &Path, port: u16, zone: &str, remote: &str) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let clause = |keyword: &str| {
            format!("  - domain: {zone}\n    {keyword}: primary\n    acl: notify_from_primary\n")
        };
        // Knot 3.2 calls the primaries `master`; later versions also (or
        // only) `primary`: the first that `knotc conf-check` accepts.
        let chosen = ["master", "primary"]
            .map(clause)
            .into_iter()
            .find(|c| conf_check(&write_conf(dir.path(), port, remote, c)).is_ok())
            .unwrap_or_else(|| clause("master"));
        Knot::start(knotd, dir, port, remote, &chosen)
    }

    /// Writes and checks the config (see [`write_conf`]) and starts knotd.
    fn start(
        knotd: &Path,
        dir: tempfile::TempDir,
        port: u16,
        remote_acl: &str,
        zone_clause: &str,
    ) -> Knot {
        let conf = write_conf(dir.path(), port, remote_acl, zone_clause);
        if let Err(e) = conf_check(&conf) {
            panic!("knotc conf-check rejects the generated config: {e}");
        }
        Knot {
            proc: spawn(knotd, &conf, dir.path(), None),
            addr: local(port),
            dir,
        }
    }

    /// knotd's log (its stderr) and config, for failure messages.
    pub fn logs(&self) -> String {
        let conf = std::fs::read_to_string(self.dir.path().join("knot.conf")).unwrap_or_default();
        format!(
            "--- knotd stderr ---\n{}--- knot.conf ---\n{conf}",
            self.proc.stderr_now()
        )
    }

    /// Polls `zone SOA` until an authoritative NOERROR; panics (with the
    /// log) if knotd exits or after [`READY_LIMIT`].
    pub async fn wait_ready(&mut self, zone: &str) {
        let addr = self.addr;
        let proc = &mut self.proc;
        let ready = poll_until_async(READY_LIMIT, POLL, async || {
            proc.assert_running();
            let m = ask(addr, zone, RecordType::SOA, false, POLL_WAIT).await?;
            (m.metadata.response_code == ResponseCode::NoError && m.metadata.authoritative)
                .then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "knotd did not serve {zone} on {addr} within {READY_LIMIT:?}\n{}",
            self.logs()
        );
    }
}

/// knotd on `conf`, in `dir`, inside `ns` when given.
fn spawn(knotd: &Path, conf: &Path, dir: &Path, ns: Option<&super::Netns>) -> Proc {
    let mut cmd = match ns {
        Some(ns) => ns.command(knotd, &["-c", conf.to_str().unwrap()]),
        None => {
            let mut c = Command::new(knotd);
            c.arg("-c").arg(conf);
            c
        }
    };
    cmd.current_dir(dir);
    Proc::spawn("knotd", cmd)
}

/// Where a catalog consumer runs: its namespace (None: this one), what it
/// listens on, whose NOTIFYs it takes.
struct CatalogAt<'a> {
    ns: Option<&'a super::Netns>,
    listen: String,
    notify_from: String,
}

/// The remote `primary` and the acl `notify_from_primary` (NOTIFYs from
/// `notify_from`).
fn primary_remote(primary: SocketAddr, notify_from: &str) -> String {
    format!(
        "remote:\n  - id: primary\n    address: {}@{}\n\
         acl:\n  - id: notify_from_primary\n    address: {notify_from}\n    action: notify\n",
        primary.ip(),
        primary.port()
    )
}

/// Writes `dir/knot.conf`: 127.0.0.1@`port`, one worker of each kind, log to
/// stderr, state in `dir`, `remote_acl` (remote/acl sections) and the zone
/// list item `zone_clause`. Returns its path.
fn write_conf(dir: &Path, port: u16, remote_acl: &str, zone_clause: &str) -> std::path::PathBuf {
    let listen = format!("127.0.0.1@{port}");
    write_conf_with(dir, &listen, remote_acl, "", zone_clause)
}

/// [`write_conf`] listening on `listen` (Knot's `ADDR@PORT`), with
/// `templates` (more items of the template list) after the default one.
fn write_conf_with(
    dir: &Path,
    listen: &str,
    remote_acl: &str,
    templates: &str,
    zone_clause: &str,
) -> std::path::PathBuf {
    let d = dir.display();
    // zonefile-sync -1: a transferred zone is kept in memory and in the
    // journal only; journal-content changes: what a secondary keeps.
    let conf = format!(
        "server:\n\
         \x20 rundir: \"{d}\"\n\
         \x20 pidfile: \"{d}/knot.pid\"\n\
         \x20 listen: {listen}\n\
         \x20 udp-workers: 1\n\
         \x20 tcp-workers: 1\n\
         \x20 background-workers: 1\n\
         log:\n\
         \x20 - target: stderr\n\
         \x20   any: info\n\
         database:\n\
         \x20 storage: \"{d}\"\n\
         control:\n\
         \x20 listen: \"{d}/knot.sock\"\n\
         {remote_acl}\
         template:\n\
         \x20 - id: default\n\
         \x20   storage: \"{d}\"\n\
         \x20   file: \"%s.zone\"\n\
         \x20   zonefile-sync: -1\n\
         \x20   journal-content: changes\n\
         {templates}\
         zone:\n\
         {zone_clause}"
    );
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// `knotc -c CONF conf-check` when knotc is installed (it comes with knotd).
fn conf_check(conf: &Path) -> Result<(), String> {
    let Some(knotc) = find_program("knotc") else {
        return Ok(());
    };
    let out = Command::new(knotc)
        .arg("-c")
        .arg(conf)
        .arg("conf-check")
        .output()
        .unwrap_or_else(|e| panic!("cannot run knotc: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}\n--- knot.conf ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(conf).unwrap_or_default()
    ))
}

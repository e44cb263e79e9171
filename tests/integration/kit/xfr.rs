//! Zone transfers as the tests drive them: `dnslb ts` as a child process
//! with a PROJ table ([`TsProc`], [`tbl_table`]) and what its log says of
//! the NOTIFYs it sent ([`assert_all_acknowledged`]).
/// How long a TS child may take to answer its zone's SOA.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// One readiness ask's wait for its answer.
const QUERY_WAIT: Duration = Duration::from_millis(250);
/// How often a wait polls.
const POLL: Duration = Duration::from_millis(20);

use super::{self as kit, ZoneDir, ask, soa_serial};
use super::{Proc, free_port, local, poll_until_async};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A `dnslb ts -c CONFIG --name primary`, stopped by its [`Proc`] guard.
pub struct TsProc {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
    /// The folder it runs in (not the config's).
    _cwd: tempfile::TempDir,
}

impl TsProc {
    /// Writes [`ts_config`] (serving `file`, notifying `notify_port`, with
    /// `extra`) to `dir/config.toml` with a free port and starts the TS from
    /// another folder; waits until it answers `zone SOA`. Tries again with
    /// another port if one was taken in between.
    pub(crate) async fn start(
        dir: &Path,
        (file, extra): (&str, &str),
        notify_port: u16,
        zone: &str,
    ) -> TsProc {
        let mut cwd = tempfile::tempdir().unwrap();
        let config_path = dir.join("config.toml");
        let config_arg = config_path.to_str().unwrap().to_owned();
        for _ in 0..3 {
            let port = free_port();
            std::fs::write(&config_path, ts_config(port, file, notify_port, extra)).unwrap();
            let proc = Proc::dnslb(
                "dnslb ts --name primary",
                &["ts", "-c", &config_arg, "--name", "primary"],
                cwd.path(),
            );
            let mut ts = TsProc {
                proc,
                addr: local(port),
                _cwd: cwd,
            };
            if ts.wait_ready(zone).await {
                return ts;
            }
            let err = ts.proc.finish(READY_LIMIT).stderr;
            assert!(err.contains("cannot listen"), "dnslb ts failed:\n{err}");
            cwd = tempfile::tempdir().unwrap();
        }
        panic!("no free port for the TS after three tries");
    }

    /// [`TsProc::start`] serving [`tbl_table`] (as `tbl.test.`, in a folder
    /// of its own) and notifying `notify_port`: the folder, the table's path
    /// (to edit) and the TS.
    pub(crate) async fn start_tbl(notify_port: u16) -> (ZoneDir, std::path::PathBuf, TsProc) {
        let dir = ZoneDir::new();
        let table = dir.write("tbl.txt", &tbl_table(""));
        let tbl = ("tbl.txt", "origin = \"tbl.test.\"\n");
        let ts = TsProc::start(dir.path(), tbl, notify_port, "tbl.test.").await;
        (dir, table, ts)
    }

    /// `dnslb ts -c DIR/config.toml --name NAME` with `config` written there,
    /// serving on 127.0.0.1:`port` (which the config must name), started
    /// from another folder and not waited for (see [`TsProc::wait_serving`]).
    pub(crate) fn spawn(dir: &Path, name: &str, port: u16, config: &str) -> TsProc {
        let cwd = tempfile::tempdir().unwrap();
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let config_arg = config_path.to_str().unwrap().to_owned();
        let proc = Proc::dnslb(
            &format!("dnslb ts --name {name}"),
            &["ts", "-c", &config_arg, "--name", name],
            cwd.path(),
        );
        TsProc {
            proc,
            addr: local(port),
            _cwd: cwd,
        }
    }

    /// Waits until it answers `zone SOA` (authoritative NOERROR); panics
    /// with its log if it exits or after ten seconds.
    pub(crate) async fn wait_serving(&mut self, zone: &str) {
        if !self.wait_ready(zone).await {
            panic!("the TS exited; stderr:\n{}", self.stderr_now());
        }
    }

    pub(crate) fn stderr_now(&self) -> String {
        self.proc.stderr_now()
    }

    /// Polls `zone SOA` until an authoritative NOERROR: `true`; `false` if the
    /// process exited first; panics after [`READY_LIMIT`].
    async fn wait_ready(&mut self, zone: &str) -> bool {
        let addr = self.addr;
        let proc = &mut self.proc;
        let ready = poll_until_async(READY_LIMIT, POLL, async || {
            if proc.exited().is_some() {
                return Some(false);
            }
            let m = ask(addr, zone, RecordType::SOA, false, QUERY_WAIT).await;
            m.is_some_and(|m| {
                m.metadata.response_code == ResponseCode::NoError && soa_serial(&m).is_some()
            })
            .then_some(true)
        })
        .await;
        ready.unwrap_or_else(|| {
            panic!(
                "the TS did not answer {zone} SOA on {addr} within {READY_LIMIT:?}; stderr:\n{}",
                self.stderr_now()
            )
        })
    }

    /// SIGHUP, by PID.
    pub(crate) fn reload(&mut self) {
        self.proc.signal(Signal::HUP);
    }

    /// Polls the TS's log until `needle` occurs at least `count` times
    /// ([`kit::wait_stderr`]: the TS must stay up meanwhile); how long that
    /// took.
    pub(crate) async fn wait_log(
        &mut self,
        needle: &str,
        count: usize,
        limit: Duration,
    ) -> Duration {
        kit::wait_stderr(&mut self.proc, needle, count, limit).await
    }

    /// Waits for a whole line of the TS's log holding `needle` and returns
    /// it ([`Proc::wait_line`]).
    pub(crate) async fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        self.proc.wait_line(needle, limit).await
    }

    /// [`Proc::wait_line_where`] on the TS's log.
    pub(crate) async fn wait_line_where(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        self.proc.wait_line_where(what, limit, wanted).await
    }
}

/// The TS's log `log` holds no NOTIFY the secondary `who` left unacknowledged.
pub fn assert_all_acknowledged(log: &str, who: &str) {
    assert!(
        !log.contains("notify not acknowledged"),
        "every NOTIFY should be acknowledged by {who}:\n{log}"
    );
}

/// A PROJ table for `tbl.test.` (NS, A, TXT), then the `extra` lines.
pub fn tbl_table(extra: &str) -> String {
    format!(
        "# PROJ table for tbl.test.\n\
         ns1.tbl.test - NS\n\
         ns1.tbl.test 192.0.2.53 A\n\
         www.tbl.test 192.0.2.1 A\n\
         info.tbl.test \"table text\" TXT\n\
         {extra}"
    )
}

/// What the secondary `who` at `addr` serves of sec.test. after its first
/// transfer: the primary's TXT ([`assert_primary_txt`]), serial 1, and no
/// new.sec.test. yet ([`assert_not_yet`]). Each name is asked until an
/// answer comes.
pub async fn assert_first_copy(addr: SocketAddr, who: &str) {
    assert_primary_txt(&ask_copy(addr, "info.sec.test.", RecordType::TXT).await);
    let soa = ask_copy(addr, "sec.test.", RecordType::SOA).await;
    assert_eq!(
        authoritative_serial(&soa),
        Some(1),
        "{who}'s serial: {}",
        kit::show(&soa)
    );
    assert_not_yet(&ask_copy(addr, "new.sec.test.", RecordType::A).await, who);
}

/// `name qtype` from a secondary at `addr`, asked until an answer comes.
pub async fn ask_copy(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    kit::wait_for(addr, name, qtype, false, READY_LIMIT, &mut [], |_| true).await
}

/// `info.sec.test. TXT` from a secondary: authoritative, the one TXT record
/// the primary serves.
pub fn assert_primary_txt(txt: &Message) {
    assert!(
        txt.metadata.authoritative
            && txt.answers.len() == 1
            && txt.answers[0]
                .data
                .to_string()
                .contains("hello from the primary"),
        "TXT as the TS serves it: {}",
        kit::show(txt)
    );
}

/// `new.sec.test.` from the secondary `who` before the edit: an
/// authoritative NXDOMAIN.
pub fn assert_not_yet(before: &Message, who: &str) {
    assert!(
        before.metadata.response_code == ResponseCode::NXDomain && before.metadata.authoritative,
        "new.sec.test. does not exist yet on {who}: {}",
        kit::show(before)
    );
}

/// What the secondary `who` at `addr` serves of tbl.test. after its first
/// transfer: the TS's synthesized serial `serial`, and its NS record
/// ([`assert_tbl_ns`]).
pub async fn assert_tbl_copy(addr: SocketAddr, who: &str, serial: u32) {
    let soa = ask_copy(addr, "tbl.test.", RecordType::SOA).await;
    assert_eq!(
        authoritative_serial(&soa),
        Some(serial),
        "{who} serves the TS's synthesized serial: {}",
        kit::show(&soa)
    );
    assert_tbl_ns(&ask_copy(addr, "tbl.test.", RecordType::NS).await);
}

/// The serial of an authoritative NOERROR answer with an SOA.
pub fn authoritative_serial(soa: &Message) -> Option<u32> {
    (soa.metadata.response_code == ResponseCode::NoError && soa.metadata.authoritative)
        .then(|| soa_serial(soa))
        .flatten()
}

/// `tbl.test. NS` from a secondary: `ns1.tbl.test.` alone.
pub fn assert_tbl_ns(ns: &Message) {
    assert_eq!(
        ns.answers
            .iter()
            .map(|r| r.data.to_string())
            .collect::<Vec<_>>(),
        vec!["ns1.tbl.test.".to_string()],
        "{}",
        kit::show(ns)
    );
}

/// The synthesized serial went up from `s1` to `s2` (RFC 1982).
pub fn assert_serial_up(s1: u32, s2: u32) {
    assert!(
        s2 > s1 && s2.wrapping_sub(s1) < 1 << 31,
        "the synthesized serial must go up (RFC 1982): {s1} -> {s2}"
    );
}

/// The TS's log `log` holds one acknowledged NOTIFY: the unchanged reload
/// sent none.
pub fn assert_one_notify(log: &str) {
    assert_eq!(
        log.matches("notify acknowledged").count(),
        1,
        "one NOTIFY: the unchanged reload sends none; stderr:\n{log}"
    );
}

/// `sec.test.` with `serial`, refresh 3600, retry 600; `extra` appended.
pub fn sec_zone(serial: u32, extra: &str) -> String {
    format!(
        "$ORIGIN sec.test.\n\
         $TTL 300\n\
         @     IN SOA ns1.sec.test. hostmaster.sec.test. {serial} 3600 600 604800 60\n\
         @     IN NS  ns1\n\
         ns1   IN A   192.0.2.53\n\
         www   IN A   192.0.2.1\n\
         www   IN A   192.0.2.2\n\
         info  IN TXT \"hello from the primary\"\n\
         {extra}"
    )
}

/// The `[[ts]]` section: `zones` on 127.0.0.1:`port`, AXFR for 127.0.0.0/8,
/// NOTIFY to 127.0.0.1:`notify_port`, `extra` added.
pub fn ts_config(port: u16, zones: &str, notify_port: u16, extra: &str) -> String {
    format!(
        "[[ts]]\n\
         name = \"primary\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         zones = [\"{zones}\"]\n\
         axfr_allow = [\"127.0.0.0/8\"]\n\
         notify = [\"127.0.0.1:{notify_port}\"]\n\
         workers = 1\n\
         {extra}"
    )
}

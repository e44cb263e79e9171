//! dnstap collectors and readers: `fstrm_capture` (fstrm-bin) listening on a
//! Unix socket and writing a Frame Streams file, and the lines
//! `dnstap-read` (bind9-dnsutils) and `dnstap-ldns` print of that file.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;

use super::procs::{Proc, poll_until, run};

/// The programs a dnstap test needs.
pub const DNSTAP_TOOLS: [&str; 3] = ["fstrm_capture", "dnstap-read", "dnstap-ldns"];

/// `fstrm_capture -t protobuf:dnstap.Dnstap -u SOCK -w FILE`, stopped by PID.
pub struct Capture {
    proc: Option<Proc>,
    /// The socket it listens on.
    pub sock: PathBuf,
    /// The file it writes.
    pub file: PathBuf,
}

impl Capture {
    /// Starts a collector on `sock` writing `file`, and waits until the
    /// socket is there.
    pub fn start(sock: &Path, file: &Path) -> Capture {
        let mut cmd = Command::new("fstrm_capture");
        cmd.args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(sock)
            .arg("-w")
            .arg(file);
        // A socket left by a killed collector is in the way.
        let _ = std::fs::remove_file(sock);
        let mut proc = Proc::spawn("fstrm_capture", cmd);
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
            proc.assert_running();
            sock.exists().then_some(())
        });
        assert!(up.is_some(), "fstrm_capture made no socket at {sock:?}");
        Capture {
            proc: Some(proc),
            sock: sock.to_path_buf(),
            file: file.to_path_buf(),
        }
    }

    /// Stops it with SIGTERM (it closes its file with STOP) and waits.
    pub fn stop(mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(Signal::TERM);
            assert!(
                p.wait_exit(Duration::from_secs(10)).is_some(),
                "fstrm_capture did not stop"
            );
        }
    }

    /// Kills it with SIGKILL (a collector dying), leaving its file as it was.
    pub fn kill(mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill_hard();
        }
    }
}

/// The lines `dnstap-read FILE` prints, one a message: `TIME CQ FROM -> TO
/// UDP 28b name/IN/A`.
pub fn dnstap_read_lines(file: &Path) -> Vec<String> {
    let out = tool("dnstap-read", &[file.as_os_str()]);
    out.lines().map(str::to_owned).collect()
}

/// What `dnstap-read -y FILE` prints: YAML documents with each message in
/// dig's text.
pub fn dnstap_read_yaml(file: &Path) -> String {
    tool("dnstap-read", &["-y".as_ref(), file.as_os_str()])
}

/// What `dnstap-ldns -y -r FILE` prints.
pub fn dnstap_ldns_yaml(file: &Path) -> String {
    tool(
        "dnstap-ldns",
        &["-y".as_ref(), "-r".as_ref(), file.as_os_str()],
    )
}

/// Runs a reader to its end; its stdout, or a panic with what it said.
fn tool(prog: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    let out = run(prog, cmd, None, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed ({}):\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

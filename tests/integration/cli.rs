//! Command-line tests: the real `dnslb` binary as a child process, real sockets on
//! 127.0.0.1, `dig` as the client (README's command table, §3, §6, §7).
//!
//! Every process a test starts is owned by a [`Proc`], which stops it by PID when dropped
//! (SIGTERM, then SIGKILL after a bounded wait), so a failing test leaves nothing behind.
//! Nothing waits for a fixed time and hopes: readiness and reloads are polled with real DNS
//! queries (or by reading the log) until a deadline.
//!
//! The fixtures live in `tests/data/`: each bad config names the problems `dnslb check` must
//! print in `# expect: PATH:LINE: MESSAGE` comments, PATH relative to `tests/data/` (the
//! program prints it joined to the folder of the config, as given on the command line).
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;

use crate::kit::{
    BIN, Output, Proc, dnslb_command, free_port, free_ports, poll_until, run as run_cmd, run_dnslb,
    run_tool,
};

/// How long a command that should end on its own may run before the test calls it hung.
const RUN_LIMIT: Duration = Duration::from_secs(10);
/// How long a server may take to answer its first query.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// How long a reload (or its refusal) may take to show.
const RELOAD_LIMIT: Duration = Duration::from_secs(5);
/// How long a stopped server may take to exit.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(20);

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

// ---------------------------------------------------------------------------------------
// Processes

/// Runs `dnslb ARGS` in `cwd` to its end (at most [`RUN_LIMIT`]).
fn run_in(args: &[&str], cwd: &Path) -> Output {
    run_dnslb(args, cwd, None, RUN_LIMIT)
}

/// Runs `dnslb ARGS` in a fresh empty folder.
fn run(args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    run_in(args, cwd.path())
}

/// A failure the way README's command table wants it: non-zero exit, something on stderr, no panic.
#[track_caller]
fn assert_clean_failure(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what}: exited 0\n{out:#?}");
    assert!(
        out.status.code().is_some(),
        "{what}: killed by a signal\n{out:#?}"
    );
    assert!(!out.stderr.trim().is_empty(), "{what}: nothing on stderr");
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(
            !out.stderr.contains(bad),
            "{what}: {bad:?} on stderr:\n{}",
            out.stderr
        );
    }
}

/// Like [`assert_clean_failure`], with exactly one line on stderr, which is returned.
#[track_caller]
fn assert_one_line_failure<'a>(out: &'a Output, what: &str) -> &'a str {
    assert_clean_failure(out, what);
    let lines = out.stderr_lines();
    assert_eq!(
        lines.len(),
        1,
        "{what}: wanted one line on stderr, got:\n{}",
        out.stderr
    );
    lines[0]
}

// ---------------------------------------------------------------------------------------
// DNS over dig

/// The parts of a dig answer the tests look at.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: String,
    /// Records of the answer section, fields separated by one space.
    answer: Vec<String>,
    /// Records of the authority section, fields separated by one space.
    authority: Vec<String>,
}

impl Dig {
    /// The SOA serial of the first SOA in the answer or authority section.
    fn soa_serial(&self) -> u32 {
        let soa = self
            .answer
            .iter()
            .chain(&self.authority)
            .find(|r| r.split(' ').nth(3) == Some("SOA"))
            .unwrap_or_else(|| panic!("no SOA in {self:#?}"));
        soa.split(' ').nth(6).unwrap().parse().unwrap()
    }

    fn has(&self, record: &str) -> bool {
        self.answer.iter().any(|r| r == record)
    }
}

/// Asks `name`/`qtype` of 127.0.0.1:`port` over UDP with RD=0; `None` when no answer came.
fn dig(port: u16, name: &str, qtype: &str) -> Option<Dig> {
    let out = run_tool(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+norec",
            "+time=1",
            "+tries=1",
            name,
            qtype,
        ],
    );
    let text = out.stdout;
    let header = text.lines().find(|l| l.starts_with(";; ->>HEADER<<-"))?;
    let status = header
        .split("status: ")
        .nth(1)?
        .split(',')
        .next()?
        .to_owned();
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))?
        .split(';')
        .next()?
        .to_owned();
    let section = |title: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    Some(Dig {
        status,
        flags,
        answer: section(";; ANSWER SECTION:"),
        authority: section(";; AUTHORITY SECTION:"),
    })
}

/// [`dig`] that must get an answer.
#[track_caller]
fn ask(port: u16, name: &str, qtype: &str) -> Dig {
    dig(port, name, qtype).unwrap_or_else(|| panic!("no answer to {name} {qtype} on port {port}"))
}

// ---------------------------------------------------------------------------------------
// A table server started from a config, in a temporary folder

/// `tests/data/good.toml` and its zones copied into a temporary folder, listening on a
/// free port, and a `dnslb ts -c DIR/config.toml --name ts1` serving it, started from
/// another folder so that relative zone paths only work against the config's folder.
struct ConfigTs {
    proc: Proc,
    port: u16,
    dir: tempfile::TempDir,
    _cwd: tempfile::TempDir,
}

impl ConfigTs {
    fn start() -> ConfigTs {
        let dir = tempfile::tempdir().unwrap();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        for file in ["good.txt", "good.zone"] {
            std::fs::copy(data_dir().join("zones").join(file), zones.join(file)).unwrap();
        }
        let template = std::fs::read_to_string(data_dir().join("good.toml")).unwrap();
        assert!(template.contains("\"127.0.0.1:0\""));
        let cwd = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let config_arg = config.to_str().unwrap().to_owned();
        // Another process may take the free port before the server binds it: try again.
        for _ in 0..3 {
            let port = free_port();
            let text = template.replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{port}\""));
            std::fs::write(&config, text).unwrap();
            let mut proc = Proc::dnslb(
                "dnslb ts --name ts1",
                &["ts", "-c", &config_arg, "--name", "ts1"],
                cwd.path(),
            );
            if wait_ready(&mut proc, port, "www.example.com") {
                return ConfigTs {
                    proc,
                    port,
                    dir,
                    _cwd: cwd,
                };
            }
            let err = proc.finish(RUN_LIMIT).stderr;
            assert!(err.contains("cannot listen"), "dnslb ts failed:\n{err}");
        }
        panic!("no free port after three tries");
    }

    /// The table the server reads (`zones/good.txt` in the temporary folder).
    fn table(&self) -> PathBuf {
        self.dir.path().join("zones/good.txt")
    }
}

/// Polls `name` A until the server answers NOERROR: `true`; `false` if it exited first.
/// Panics if it neither answers nor exits within [`READY_LIMIT`].
fn wait_ready(proc: &mut Proc, port: u16, name: &str) -> bool {
    let ready = poll_until(READY_LIMIT, POLL, || {
        if proc.exited().is_some() {
            return Some(false);
        }
        dig(port, name, "A")
            .is_some_and(|d| d.status == "NOERROR")
            .then_some(true)
    });
    ready.unwrap_or_else(|| {
        panic!(
            "no answer from port {port} within {READY_LIMIT:?}; stderr:\n{}",
            proc.stderr_now()
        )
    })
}

// ---------------------------------------------------------------------------------------
// dnslb check

/// The `# expect:` lines of a fixture, as the program must print them when the config is
/// given as `config_arg` (its folder joined with the path the fixture names).
fn expected_problems(fixture: &str, config_arg: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join(fixture)).unwrap();
    let folder = config_arg.parent().unwrap();
    let expected: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|want| {
            let (path, rest) = want.split_once(':').unwrap();
            format!("{}:{rest}", folder.join(path).display())
        })
        .collect();
    assert!(!expected.is_empty(), "{fixture} has no '# expect:' line");
    expected
}

/// `dnslb check` on a bad fixture, by absolute path from elsewhere and by relative path
/// from `tests/data`: exit code 1 and exactly the expected lines on stderr.
#[track_caller]
fn check_reports(fixture: &str) {
    let absolute = data_dir().join(fixture);
    let elsewhere = tempfile::tempdir().unwrap();
    for (config_arg, cwd) in [
        (absolute.as_path(), elsewhere.path()),
        (Path::new(fixture), data_dir().as_path()),
    ] {
        let want = expected_problems(fixture, config_arg);
        let out = run_in(&["check", "-c", config_arg.to_str().unwrap()], cwd);
        assert_clean_failure(&out, fixture);
        assert_eq!(out.status.code(), Some(1), "{fixture}: {out:#?}");
        assert_eq!(
            out.stderr_lines(),
            want,
            "{fixture}: stderr:\n{}",
            out.stderr
        );
    }
}

/// `dnslb check -c CONFIG` succeeds and says `CONFIG: ok`, nothing else.
fn check_accepts(config: &Path) {
    let out = run(&["check", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(
        out.stderr_lines(),
        vec![format!("{}: ok", config.display())]
    );
}

#[test]
fn check_accepts_the_shipped_config() {
    check_accepts(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"));
}

#[test]
fn check_accepts_the_good_fixture() {
    check_accepts(&data_dir().join("good.toml"));
}

#[test]
fn check_reports_an_unknown_key_with_its_line() {
    check_reports("unknown_key.toml");
}

#[test]
fn check_reports_a_bad_enum_value() {
    check_reports("bad_enum.toml");
}

#[test]
fn check_reports_a_bad_cidr() {
    check_reports("bad_cidr.toml");
}

#[test]
fn check_reports_a_bad_health_query() {
    check_reports("bad_health_query.toml");
}

#[test]
fn check_reports_a_bad_ts_origin() {
    check_reports("ts_bad_origin.toml");
}

/// Runs `dnslb` with `args(config, want)`, `config` the fixture's path and
/// `want` its one problem as `dnslb check` words it: one line of failure,
/// holding `want`.
fn refused_as_check_words(fixture: &str, args: impl FnOnce(&Path, &str) -> Vec<String>) {
    let config = data_dir().join(fixture);
    let [want] = expected_problems(fixture, &config).try_into().unwrap();
    let args = args(&config, &want);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let line = assert_one_line_failure(&out, fixture);
    assert!(
        line.contains(&want),
        "{fixture}: wanted {want:?}, got {line:?}"
    );
}

/// `dnslb ls -c` and `dnslb ts -c --name` load the config the way `dnslb check` reads it:
/// a bad `health.query` or `origin` is the same one `file:line` line, before anything
/// listens.
#[test]
fn servers_refuse_a_bad_health_query_or_origin_with_its_line() {
    for (fixture, args) in [
        ("bad_health_query.toml", &["ls", "-c"][..]),
        ("ts_bad_origin.toml", &["ts", "--name", "ts1", "-c"][..]),
    ] {
        refused_as_check_words(fixture, |config, _| {
            let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            args.push(config.to_str().unwrap().to_owned());
            args
        });
    }
}

/// `dnslb ts --origin` is parsed like `origin` in the config, with a clear line.
#[test]
fn ts_refuses_a_bad_origin_flag() {
    let zone = data_dir().join("zones/good.txt");
    let out = run(&[
        "ts",
        "--listen",
        "127.0.0.1:0",
        "--zone",
        zone.to_str().unwrap(),
        "--origin",
        "a..b",
    ]);
    let line = assert_one_line_failure(&out, "bad --origin");
    assert!(line.contains("origin \"a..b\" is not a DNS name"), "{line}");
}

#[test]
fn check_reports_a_duplicate_ts_name() {
    check_reports("dup_ts.toml");
}

#[test]
fn check_reports_a_bad_ipv4_in_a_table() {
    check_reports("ts_bad_ipv4.toml");
}

#[test]
fn check_reports_an_unknown_type_in_a_table() {
    check_reports("ts_bad_type.toml");
}

#[test]
fn check_reports_a_line_with_two_fields() {
    check_reports("ts_two_fields.toml");
}

#[test]
fn check_reports_a_missing_zone_file() {
    // The config line that names it and its [[ts]] come first, then the
    // file as it was looked for (joined to the config's folder): two paths,
    // so not an `# expect:` line.
    let fixture = "ts_missing_zone.toml";
    let absolute = data_dir().join(fixture);
    let elsewhere = tempfile::tempdir().unwrap();
    for (config_arg, cwd) in [
        (absolute.as_path(), elsewhere.path()),
        (Path::new(fixture), data_dir().as_path()),
    ] {
        let out = run_in(&["check", "-c", config_arg.to_str().unwrap()], cwd);
        assert_clean_failure(&out, fixture);
        let folder = config_arg.parent().unwrap();
        assert_eq!(
            out.stderr_lines(),
            [format!(
                "{}:5: ts.zones: [[ts]] ts1: {}: cannot read: No such file or directory (os error 2)",
                config_arg.display(),
                folder.join("zones/missing.txt").display()
            )]
        );
    }
}

#[test]
fn check_reports_a_broken_record_in_a_master_file() {
    check_reports("ts_bad_master.toml");
}

#[test]
fn check_refuses_a_signed_zone_split_across_partitions() {
    check_reports("signed_split.toml");
    // The same table servers, each holding the whole zone: replicated is fine.
    check_accepts(&data_dir().join("signed_replicated.toml"));
}

#[test]
fn check_reports_a_cname_beside_other_data() {
    check_reports("ts_cname_beside_a.toml");
}

#[test]
fn check_reports_every_broken_zone_file() {
    check_reports("two_broken.toml");
}

#[test]
fn check_reports_an_unreadable_config() {
    let out = run(&["check", "-c", "no-such-config.toml"]);
    let line = assert_one_line_failure(&out, "missing config");
    assert!(
        line.starts_with("no-such-config.toml: cannot read"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------
// dnslb ts: refusals

/// `dnslb ts --listen 127.0.0.1:0 --zone FILE` on each bad zone of the fixtures: one line
/// naming `file:line` (the same words as `dnslb check`), non-zero exit, no panic.
#[test]
fn ts_refuses_a_bad_zone_file() {
    for fixture in [
        "ts_bad_ipv4.toml",
        "ts_bad_type.toml",
        "ts_two_fields.toml",
        "ts_bad_master.toml",
        "ts_cname_beside_a.toml",
    ] {
        refused_as_check_words(fixture, |_, want| {
            let zone = want.split(':').next().unwrap();
            ["ts", "--listen", "127.0.0.1:0", "--zone", zone]
                .map(String::from)
                .to_vec()
        });
    }
}

#[test]
fn ts_refuses_a_missing_zone_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let missing = missing.to_str().unwrap();
    let out = run(&["ts", "--listen", "127.0.0.1:0", "--zone", missing]);
    let line = assert_one_line_failure(&out, "missing zone");
    assert!(line.contains(&format!("{missing}: cannot read")), "{line}");
}

/// `dnslb ts` on an address already taken: one line naming the address, with
/// the OS error once (it was once printed twice, as Display and as source).
fn ts_on_a_taken_address(addr: &str, what: &str) {
    let zone = data_dir().join("zones/good.txt");
    let out = run(&["ts", "--listen", addr, "--zone", zone.to_str().unwrap()]);
    let line = assert_one_line_failure(&out, what);
    assert!(line.contains(addr) && line.contains("in use"), "{line}");
    assert_eq!(line.matches("in use").count(), 1, "{line}");
}

#[test]
fn ts_refuses_a_udp_port_in_use() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    ts_on_a_taken_address(&taken.local_addr().unwrap().to_string(), "udp port in use");
}

#[test]
fn ts_refuses_a_tcp_port_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    ts_on_a_taken_address(&taken.local_addr().unwrap().to_string(), "tcp port in use");
}

/// The uid and gid the privilege test drops to: `nobody` and `nogroup`.
const NOBODY: u32 = 65_534;

/// `dnslb ARGS` without privileges: as it is when the test is not root, else
/// through `setpriv` as `nobody` (which drops every capability). An error
/// saying why when that cannot be arranged here.
fn unprivileged_dnslb(args: &[&str], cwd: &Path) -> Result<Command, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(dnslb_command(args, cwd));
    }
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .args(["--clear-groups", "--", BIN])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV)
            .current_dir(cwd);
        cmd
    };
    // nobody must be able to run the binary at all (a checkout in a private
    // home folder would not let it).
    let help = run_cmd(
        "setpriv dnslb --help",
        as_nobody(&["--help"]),
        None,
        RUN_LIMIT,
    );
    if help.status.success() {
        Ok(as_nobody(args))
    } else {
        Err(format!(
            "nobody cannot run dnslb via setpriv: {}",
            help.stderr.trim()
        ))
    }
}

/// Binding port 53 without root or CAP_NET_BIND_SERVICE fails with one line
/// that says how to grant the capability (the message itself, and that port
/// 5300 gets no hint, are unit-tested in `server::socket`).
#[test]
fn ts_on_port_53_without_privilege_says_how_to_fix_it() {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    if start.is_some_and(|p| p <= 53) {
        let why = format!("net.ipv4.ip_unprivileged_port_start = {start:?} lets anyone bind 53");
        crate::kit::skip("ts_on_port_53_without_privilege_says_how_to_fix_it", &why);
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let zone = data_dir().join("zones/good.txt");
    let args = [
        "ts",
        "--listen",
        "127.0.0.1:53",
        "--zone",
        zone.to_str().unwrap(),
    ];
    let cmd = match unprivileged_dnslb(&args, cwd.path()) {
        Ok(cmd) => cmd,
        Err(why) => {
            crate::kit::skip("ts_on_port_53_without_privilege", &why);
            return;
        }
    };
    let out = run_cmd("unprivileged dnslb ts on :53", cmd, None, RUN_LIMIT);
    let line = assert_one_line_failure(&out, "port 53 without privilege");
    for want in [
        "cannot listen on 127.0.0.1:53",
        "Permission denied",
        "CAP_NET_BIND_SERVICE",
        "setcap cap_net_bind_service=+ep $(command -v dnslb)",
        // A TS's unit is named, not only the LS's.
        "dnslb-ts@.service for a TS",
    ] {
        assert!(line.contains(want), "{want:?} missing from: {line}");
    }
}

#[test]
fn ts_rejects_bad_arguments() {
    let zone = data_dir().join("zones/good.txt");
    let zone = zone.to_str().unwrap();
    let config = data_dir().join("good.toml");
    let config = config.to_str().unwrap();
    let serve = ["ts", "--listen", "127.0.0.1:0", "--zone", zone];
    let with = |extra: &[&'static str]| -> Vec<String> {
        serve.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    // (arguments, a word the message must hold, whether it is our own one-line message)
    let cases: Vec<(Vec<String>, &str, bool)> = vec![
        (vec!["ts".into()], "--listen", true),
        (with(&["--on-miss", "bogus"]), "bogus", true),
        (with(&["--delay-ratio", "2"]), "--delay-ratio", true),
        (with(&["--drop-ratio=-0.5"]), "--drop-ratio", true),
        (with(&["--delay-ratio", "lots"]), "lots", false),
        (with(&["--workers=-1"]), "--workers", false),
        (
            vec![
                "ts".into(),
                "--listen".into(),
                "localhost".into(),
                "--zone".into(),
                zone.into(),
            ],
            "localhost",
            false,
        ),
        (
            vec!["ts".into(), "-c".into(), config.into()],
            "--name",
            false,
        ),
        (
            vec![
                "ts".into(),
                "-c".into(),
                config.into(),
                "--name".into(),
                "ts9".into(),
            ],
            "ts9",
            true,
        ),
        (with(&["--bogus-flag"]), "--bogus-flag", false),
    ];
    for (args, word, one_line) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let what = args.join(" ");
        let out = run(&args);
        assert_clean_failure(&out, &what);
        if one_line {
            assert_one_line_failure(&out, &what);
        }
        let first = out.stderr_lines()[0];
        assert!(first.contains("error"), "{what}: {first}");
        assert!(
            out.stderr.contains(word),
            "{what}: {word:?} not in:\n{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// dnslb ts: serving, reloading, stopping

#[test]
fn ts_from_config_serves_zones_relative_to_the_config() {
    let ts = ConfigTs::start();
    let www = ask(ts.port, "www.example.com", "A");
    assert_eq!(www.status, "NOERROR");
    assert_eq!(www.flags, "qr aa", "{www:#?}");
    assert_eq!(www.answer, vec!["www.example.com. 300 IN A 192.0.2.10"]);
    // The master file beside it, with its own TTL.
    let master = ask(ts.port, "www.fixture.test", "A");
    assert_eq!(
        (master.status.as_str(), master.flags.as_str()),
        ("NOERROR", "qr aa")
    );
    assert_eq!(
        master.answer,
        vec!["www.fixture.test. 3600 IN A 192.0.2.80"]
    );
    // A name the tables do not hold: authoritative NXDOMAIN with the SOA.
    let miss = ask(ts.port, "nothing.example.com", "A");
    assert_eq!(
        (miss.status.as_str(), miss.flags.as_str()),
        ("NXDOMAIN", "qr aa")
    );
    assert!(miss.answer.is_empty());
    miss.soa_serial();
    // SIGINT stops it cleanly.
    let mut proc = ts.proc;
    proc.signal(Signal::INT);
    let status = proc.wait_exit(STOP_LIMIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGINT: {status:?}\n{}",
        proc.stderr_now()
    );
}

#[test]
fn sighup_reloads_and_a_broken_file_keeps_the_old_data() {
    let mut ts = ConfigTs::start();
    let port = ts.port;
    let table = ts.table();
    let original = std::fs::read_to_string(&table).unwrap();
    let serial_before = ask(port, ".", "SOA").soa_serial();
    assert!(ask(port, "new.example.com", "A").status == "NXDOMAIN");

    // A new name: after SIGHUP it answers, and the SOA serial went up.
    let updated = format!("{original}new.example.com 192.0.2.99 A\n");
    std::fs::write(&table, &updated).unwrap();
    ts.proc.signal(Signal::HUP);
    let reloaded = poll_until(RELOAD_LIMIT, POLL, || {
        dig(port, "new.example.com", "A")
            .is_some_and(|d| d.has("new.example.com. 300 IN A 192.0.2.99"))
            .then_some(())
    })
    .is_some();
    assert!(
        reloaded,
        "new name not served after SIGHUP:\n{}",
        ts.proc.stderr_now()
    );
    let serial_after = ask(port, ".", "SOA").soa_serial();
    assert!(
        serial_after > serial_before,
        "serial {serial_before} -> {serial_after}"
    );

    // A broken line: refused with file:line in the log, and the old data keeps serving.
    let bad_line = updated.lines().count() + 2;
    let broken = format!("{updated}fresh.example.com 192.0.2.77 A\nbroken.example.com 192.0.2 A\n");
    std::fs::write(&table, broken).unwrap();
    ts.proc.signal(Signal::HUP);
    let want = format!("{}:{bad_line}: bad IPv4 address '192.0.2'", table.display());
    let logged = poll_until(RELOAD_LIMIT, POLL, || {
        ts.proc
            .stderr_now()
            .lines()
            .any(|l| l.contains(&want))
            .then_some(())
    })
    .is_some();
    assert!(logged, "no {want:?} in the log:\n{}", ts.proc.stderr_now());
    assert!(
        ts.proc.exited().is_none(),
        "the server died on a broken reload"
    );
    for (name, record) in [
        ("new.example.com", "new.example.com. 300 IN A 192.0.2.99"),
        ("www.example.com", "www.example.com. 300 IN A 192.0.2.10"),
    ] {
        let d = ask(port, name, "A");
        assert!(d.has(record), "{name} after a refused reload: {d:#?}");
    }
    // Nothing of the broken file was taken, not even its good lines.
    assert_eq!(ask(port, "fresh.example.com", "A").status, "NXDOMAIN");
    assert_eq!(ask(port, ".", "SOA").soa_serial(), serial_after);

    // SIGTERM: exit 0, promptly, without a panic (its whole stderr, read
    // to the pipe's end: a panic's lines are its last).
    let end = ts.proc.stop(STOP_LIMIT);
    assert!(
        end.status.success(),
        "SIGTERM: {}\n{}",
        end.status,
        end.stderr
    );
    assert!(!end.stderr.contains("panicked"), "{}", end.stderr);
}

// ---------------------------------------------------------------------------------------
// Help and usage

/// The subcommands `dnslb --help` lists (without `help` itself).
fn subcommands() -> Vec<String> {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:#?}");
    out.stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_has_help() {
    let commands = subcommands();
    for needed in ["ts", "check"] {
        assert!(
            commands.iter().any(|c| c == needed),
            "{needed} not in {commands:?}"
        );
    }
    for command in &commands {
        let out = run(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help: {out:#?}");
        assert!(
            out.stdout.contains(&format!("Usage: dnslb {command}")),
            "{command} --help:\n{}",
            out.stdout
        );
    }
    let ts_help = run(&["ts", "--help"]).stdout;
    for flag in [
        "--listen",
        "--zone",
        "--name",
        "--on-miss",
        "--delay-ratio",
        "--drop-ratio",
    ] {
        assert!(ts_help.contains(flag), "ts --help lacks {flag}:\n{ts_help}");
    }
}

#[test]
fn no_subcommand_is_an_error() {
    let out = run(&[]);
    assert_clean_failure(&out, "dnslb");
    assert!(out.stderr.contains("Usage"), "{}", out.stderr);
    let out = run(&["bogus-command"]);
    assert_clean_failure(&out, "dnslb bogus-command");
}

/// A relative `[ls.dnstap] socket` that is short as spelled but too
/// long once resolved against the config's folder: `dnslb check` says so
/// whether `-c` is relative or absolute, and `dnslb up` refuses at start,
/// once, with the line, before any child starts (its table servers, given
/// the absolute path, crash-looped on it).
#[test]
fn a_dnstap_socket_too_long_once_resolved_stops_up_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::copy(data_dir().join("zones/good.txt"), zones.join("good.txt")).unwrap();
    let folder_len = dir.path().as_os_str().len();
    // At most 107 bytes as spelled; past 107 once joined to the folder.
    let name = "a".repeat(107 - folder_len);
    let [ts, dns] = free_ports(2)[..] else {
        unreachable!()
    };
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{dns}\"]\nworkers = 1\n\n\
         [ls.dnstap]\nsocket = \"{name}\"\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{ts}\"\n\n\
         [[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:{ts}\"\nzones = [\"zones/good.txt\"]\nworkers = 1\n"
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let want = "config.toml:6: ls.dnstap.socket:";
    for arg in ["config.toml", config.to_str().unwrap()] {
        let out = run_in(&["check", "-c", arg], dir.path());
        assert_clean_failure(&out, &format!("dnslb check -c {arg}"));
        assert!(out.stderr.contains(want), "check -c {arg}:\n{}", out.stderr);
    }
    let out = run_in(&["up", "-c", "config.toml"], dir.path());
    assert_clean_failure(&out, "dnslb up");
    assert!(out.stderr.contains(want), "{}", out.stderr);
    assert!(out.stderr.contains("nothing started"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("table server exited"),
        "{}",
        out.stderr
    );
}

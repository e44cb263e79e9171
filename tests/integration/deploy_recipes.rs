//! DEPLOY.md's recipes run as written:
//!
//! - (operator-walk 5) the DS of a zone signed with BIND's tools, from the
//!   block that follows `dnssec-signzone`, run as it stands over a KSK and a
//!   ZSK (`dnssec-dsfromkey` over the glob of both was "fatal: extraneous
//!   arguments");
//! - "Secondaries and catalogs" and "Anycast", each walked as an operator
//!   would in a folder holding a copy of `zones/` (and of `deploy/anycast/`):
//!   each block whose first line names a file (`# primary.toml`,
//!   `; zones/shop.zone`) written there when the walk reaches it, each line
//!   of its ```sh recipe blocks run in turn: `CMD &` started as a job (a
//!   [`Proc`], stopped by PID), `kill %?TEXT` and `kill $(jobs -p)`
//!   stopping those jobs (SIGTERM, each must exit), `kill -s SIG %?TEXT`
//!   only sending the signal (STOP, CONT, TERM) and `wait %?TEXT` waiting
//!   for that job to end (`%?"TWO WORDS"` names a job as sh reads it), a
//!   command with a `# comment` run again (up to [`SETTLE`], the anycast
//!   walk [`ANYCAST_SETTLE`]) until its output shows what the comment says
//!   (an operator asking again until the transfer came, until BGP moved),
//!   any other run once and exiting 0. Rewritten, and only this: the doc's
//!   ports, when one is taken, to free ones; knotd's `/run/knot` and
//!   `/var/lib/knot` to folders of the test (the latter made first, as
//!   Debian's knot package makes it); the anycast walk's namespace names to
//!   names of this run (deleted by the walk, and by a guard if it fails).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::docs::{check_claims, fenced, file_of, with_zones};
use crate::kit::{
    BIN, Netns, Proc, crate_dir, free_ports, need, netns_or_skip, poll_until, run_ok,
};

/// The lines of DEPLOY.md from the one starting with `first` to the one
/// starting with `last`, both included.
fn recipe(first: &str, last: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(first).expect("the recipe's first line");
    let end = start + text[start..].find(last).expect("the recipe's last line") + last.len();
    text[start..end].to_owned()
}

#[test]
fn the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds() {
    let Some([keygen, _]) = need(
        "the_ds_recipe_for_a_zone_signed_with_bind_prints_the_ksks_ds",
        ["dnssec-keygen", "dnssec-dsfromkey"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for flags in [&["-f", "KSK"][..], &[]] {
        let out = Command::new(&keygen)
            .args(["-q", "-a", "ECDSAP256SHA256"])
            .args(flags)
            .args(["-n", "ZONE", "example.test"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let script = recipe("for k in Kexample.test.+013+*.key", "\ndone");
    let out = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("example.test. IN DS "), "{stdout}");
}

/// The ports of the "Secondaries and catalogs" walk: the primary, ts3, Knot.
const WALK_PORTS: [u16; 3] = [5301, 5303, 5353];
/// How long a command with a claim is asked again until its output shows it.
pub(crate) const SETTLE: Duration = Duration::from_secs(10);

/// The text of DEPLOY.md's section `title` (up to the next `## `).
fn section(title: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(title).expect("the section");
    let rest = &text[start + title.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Whether `port` is free on 127.0.0.1 for both UDP and TCP.
pub(crate) fn port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The words of a job list: whitespace-separated, a `"..."` kept whole
/// (its quotes dropped), as sh reads `%?"dnslb ls"`.
fn words(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The jobs a `kill` or `wait` line names: `%?TEXT` (the one job whose
/// command holds TEXT; `%?"TWO WORDS"` too) or `$(jobs -p)` (every job).
fn named_jobs(args: &str, jobs: &[(String, Proc)]) -> Vec<usize> {
    if args.trim() == "$(jobs -p)" {
        return (0..jobs.len()).collect();
    }
    words(args)
        .iter()
        .map(|a| {
            let text = a
                .strip_prefix("%?")
                .unwrap_or_else(|| panic!("{a}: not %?TEXT"));
            let found: Vec<usize> = (0..jobs.len())
                .filter(|&i| jobs[i].0.contains(text))
                .collect();
            assert_eq!(
                found.len(),
                1,
                "{a}: jobs {:?}",
                jobs.iter().map(|j| &j.0).collect::<Vec<_>>()
            );
            found[0]
        })
        .collect()
}

/// The jobs' logs, for failure messages.
fn job_logs(jobs: &[(String, Proc)]) -> String {
    jobs.iter()
        .map(|(cmd, p)| format!("--- {cmd}\n{}", p.stderr_now()))
        .collect()
}

/// The signal a `kill -s NAME` names.
fn signal_named(name: &str) -> rustix::process::Signal {
    use rustix::process::Signal;
    match name {
        "STOP" => Signal::STOP,
        "CONT" => Signal::CONT,
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        _ => panic!("kill -s {name}: not a signal the walk knows"),
    }
}

/// `cmd` with each of `programs`' names, where it stands as a command word
/// (first, or after a space: `ip netns exec NS dnslb ls`), made its path.
fn with_programs(cmd: &str, programs: &[(&str, &Path)]) -> String {
    let mut cmd = cmd.to_owned();
    for (name, path) in programs {
        let path = path.display().to_string();
        if let Some(rest) = cmd.strip_prefix(&format!("{name} ")) {
            cmd = format!("{path} {rest}");
        }
        cmd = cmd.replace(&format!(" {name} "), &format!(" {path} "));
    }
    cmd
}

/// What a walk did: the files it wrote (`--- NAME` and the text) and how
/// many commands it ran.
pub(crate) struct Walked {
    pub(crate) files: Vec<String>,
    pub(crate) ran: usize,
}

/// Walks DEPLOY.md's section `title` in `dir` as an operator would (see the
/// header): the files written, each line of its ```sh recipe blocks run,
/// `rewrite` applied to both, each of `programs` run from its path, a
/// command with a claim asked again for up to `settle`. Every job must have
/// been stopped by the walk itself.
pub(crate) fn walk(
    title: &str,
    dir: &Path,
    rewrite: &dyn Fn(&str) -> String,
    programs: &[(&str, &Path)],
    settle: Duration,
) -> Walked {
    let blocks = fenced(&section(title)).unwrap();
    let mut jobs: Vec<(String, Proc)> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut ran = 0;
    for (line, info, body) in &blocks {
        if let Some(name) = file_of(body) {
            let text = rewrite(body);
            std::fs::write(dir.join(name), &text).unwrap();
            files.push(format!("--- {name}\n{text}"));
            continue;
        }
        if info != "sh recipe" {
            continue;
        }
        for text in body.lines().filter(|l| !l.trim().is_empty()) {
            let at = format!("DEPLOY.md block of line {line}: `{text}`");
            let (cmd, comment) = text.split_once(" #").unwrap_or((text, ""));
            let cmd = with_programs(&rewrite(cmd.trim()), programs);
            ran += 1;
            if let Some(job) = cmd.strip_suffix('&') {
                jobs.push((cmd.clone(), start_job(job.trim(), dir)));
            } else if let Some(rest) = cmd.strip_prefix("kill -s ") {
                // A signal sent, the job left running (or stopped) as it is.
                let (sig, args) = rest.split_once(' ').expect("kill -s NAME JOBS");
                for i in named_jobs(args, &jobs) {
                    jobs[i].1.signal(signal_named(sig));
                }
            } else if let Some(args) = cmd
                .strip_prefix("kill ")
                .or_else(|| cmd.strip_prefix("wait "))
            {
                let mut named = named_jobs(args, &jobs);
                named.sort_unstable();
                for i in named.into_iter().rev() {
                    let (cmd_of, mut p) = jobs.remove(i);
                    if cmd.starts_with("kill ") {
                        p.signal(rustix::process::Signal::TERM);
                    }
                    let status = p.wait_exit(Duration::from_secs(30));
                    assert!(status.is_some(), "{at}: {cmd_of} did not end");
                }
            } else if comment.trim().is_empty() {
                run_ok(
                    &at,
                    shell(&cmd, dir),
                    Duration::from_secs(30),
                    &job_logs(&jobs),
                );
            } else {
                let mut last = String::new();
                let shown = poll_until(settle, Duration::from_millis(100), || {
                    let out = crate::kit::run(&at, shell(&cmd, dir), None, Duration::from_secs(10));
                    last = format!("{}{}", out.stdout, out.stderr);
                    check_claims(text, comment, &out.stdout).ok()
                });
                assert!(
                    shown.is_some(),
                    "{at}: not shown within {settle:?}; last output:\n{last}\n{}{}",
                    job_logs(&jobs),
                    files.concat()
                );
            }
        }
    }
    assert!(jobs.is_empty(), "jobs left running: {}", job_logs(&jobs));
    Walked { files, ran }
}

#[test]
fn the_secondaries_and_catalogs_recipe_runs_as_written() {
    const TEST: &str = "the_secondaries_and_catalogs_recipe_runs_as_written";
    let Some([knotd, _]) = need(TEST, ["knotd", "dig"]) else {
        return;
    };
    let dir = with_zones();
    let d = dir.path();
    let ports: Vec<u16> = if WALK_PORTS.iter().all(|&p| port_free(p)) {
        WALK_PORTS.to_vec()
    } else {
        free_ports(WALK_PORTS.len())
    };
    let rewrite = |text: &str| -> String {
        let mut t = text
            .replace("/run/knot", &d.join("run-knot").display().to_string())
            .replace("/var/lib/knot", &d.join("lib-knot").display().to_string());
        for (from, to) in WALK_PORTS.iter().zip(&ports) {
            t = t.replace(&from.to_string(), &to.to_string());
        }
        t
    };
    // /var/lib/knot exists where knot is installed (the package makes it).
    std::fs::create_dir(d.join("lib-knot")).unwrap();
    let programs = [("dnslb", Path::new(BIN)), ("knotd", knotd.as_path())];
    let w = walk(
        "## Secondaries and catalogs",
        d,
        &rewrite,
        &programs,
        SETTLE,
    );
    assert!(
        w.files.len() >= 4 && w.ran >= 10,
        "only {} files and {} commands in the walk",
        w.files.len(),
        w.ran
    );
}

/// The namespaces of the "Anycast" walk (the router, the LS host); the test
/// gives them names of its own.
const WALK_NETNS: [&str; 2] = ["anycast-r", "anycast-h1"];
/// How long the anycast walk waits for a claim: BIRD's BGP session waits
/// 5 s (`start delay time`) before its first connection, then the probe's
/// `rise` rounds.
const ANYCAST_SETTLE: Duration = Duration::from_secs(40);

/// Deletes the walk's namespaces when the test ends, whatever the walk did
/// (its own last lines delete them: then this finds none).
struct NetnsGone(std::path::PathBuf, Vec<String>);

impl Drop for NetnsGone {
    fn drop(&mut self) {
        for ns in &self.1 {
            let _ = Command::new(&self.0).args(["netns", "del", ns]).output();
        }
    }
}

#[test]
fn the_anycast_recipe_runs_as_written() {
    const TEST: &str = "the_anycast_recipe_runs_as_written";
    let Some(ip) = netns_or_skip(TEST) else {
        return;
    };
    if need(TEST, ["bird", "birdc", "dig"]).is_none() {
        return;
    }
    let dir = with_zones();
    let d = dir.path();
    copy_dir(
        &crate_dir().join("deploy/anycast"),
        &d.join("deploy/anycast"),
    );
    let prefix = Netns::unique_prefix("w");
    let names: Vec<String> = WALK_NETNS
        .iter()
        .map(|n| format!("{prefix}-{}", n.rsplit('-').next().unwrap()))
        .collect();
    let _gone = NetnsGone(ip, names.clone());
    let rewrite = |text: &str| -> String {
        let mut t = text.to_owned();
        for (from, to) in WALK_NETNS.iter().zip(&names) {
            t = t.replace(from, to);
        }
        t
    };
    let w = walk(
        "## Anycast",
        d,
        &rewrite,
        &[("dnslb", Path::new(BIN))],
        ANYCAST_SETTLE,
    );
    assert!(
        w.files.len() >= 2 && w.ran >= 20,
        "only {} files and {} commands in the walk",
        w.files.len(),
        w.ran
    );
    for ns in &names {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "the walk left the namespace {ns}"
        );
    }
}

/// `from`'s files copied into `to` (made), as a checkout holds them.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// `sh -c CMD` in `dir`.
fn shell(cmd: &str, dir: &Path) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(cmd).current_dir(dir);
    sh
}

/// `CMD` started as a job in `dir` (exec'd by sh: its PID is the job's).
fn start_job(cmd: &str, dir: &Path) -> Proc {
    Proc::spawn(cmd, shell(&format!("exec {cmd}"), dir))
}

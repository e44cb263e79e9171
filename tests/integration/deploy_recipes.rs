//! DEPLOY.md's recipes run as written:
//!
//! - (operator-walk 5) the DS of a zone signed with BIND's tools, from the
//!   block that follows `dnssec-signzone`, run as it stands over a KSK and a
//!   ZSK (`dnssec-dsfromkey` over the glob of both was "fatal: extraneous
//!   arguments");
//! - "Secondaries and catalogs", walked as an operator would in a folder
//!   holding a copy of `zones/`: each block whose first line names a file
//!   (`# primary.toml`, `; zones/shop.zone`) written there when the walk
//!   reaches it, each line of its ```sh recipe blocks run in turn: `CMD &`
//!   started as a job (a [`Proc`], stopped by PID), `kill %?TEXT` and
//!   `kill $(jobs -p)` stopping those jobs (SIGTERM, each must exit), a
//!   command with a `# comment` run again (up to [`SETTLE`]) until its output
//!   shows what the comment says (an operator asking again until the
//!   transfer came), any other run once and exiting 0. Rewritten, and only
//!   this: the doc's ports, when one is taken, to free ones; knotd's
//!   `/run/knot` and `/var/lib/knot` to folders of the test (the latter
//!   made first, as Debian's knot package makes it).
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::docs::{check_claims, fenced, file_of, with_zones};
use crate::kit::{BIN, Proc, crate_dir, free_ports, need, poll_until, run_ok};

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
const SETTLE: Duration = Duration::from_secs(10);

/// The text of DEPLOY.md's section `title` (up to the next `## `).
fn section(title: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(title).expect("the section");
    let rest = &text[start + title.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Whether `port` is free on 127.0.0.1 for both UDP and TCP.
fn port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The jobs a `kill` line names: `%?TEXT` (the one job whose command holds
/// TEXT) or `$(jobs -p)` (every job).
fn named_jobs(args: &str, jobs: &[(String, Proc)]) -> Vec<usize> {
    if args.trim() == "$(jobs -p)" {
        return (0..jobs.len()).collect();
    }
    args.split_whitespace()
        .map(|a| {
            let text = a
                .strip_prefix("%?")
                .unwrap_or_else(|| panic!("kill {a}: not %?TEXT"));
            let found: Vec<usize> = (0..jobs.len())
                .filter(|&i| jobs[i].0.contains(text))
                .collect();
            assert_eq!(
                found.len(),
                1,
                "kill {a}: jobs {:?}",
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
    let blocks = fenced(&section("## Secondaries and catalogs")).unwrap();
    let mut jobs: Vec<(String, Proc)> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut ran = 0;
    for (line, info, body) in &blocks {
        if let Some(name) = file_of(body) {
            let text = rewrite(body);
            std::fs::write(d.join(name), &text).unwrap();
            files.push(format!("--- {name}\n{text}"));
            continue;
        }
        if info != "sh recipe" {
            continue;
        }
        for text in body.lines().filter(|l| !l.trim().is_empty()) {
            let at = format!("DEPLOY.md block of line {line}: `{text}`");
            let (cmd, comment) = text.split_once(" #").unwrap_or((text, ""));
            let cmd = rewrite(cmd.trim());
            let cmd = match cmd.split_once(' ') {
                Some(("dnslb", rest)) => format!("{BIN} {rest}"),
                Some(("knotd", rest)) => format!("{} {rest}", knotd.display()),
                _ => cmd,
            };
            ran += 1;
            if let Some(job) = cmd.strip_suffix('&') {
                jobs.push((cmd.clone(), start_job(job.trim(), d)));
            } else if let Some(args) = cmd.strip_prefix("kill ") {
                let mut named = named_jobs(args, &jobs);
                named.sort_unstable();
                for i in named.into_iter().rev() {
                    let (cmd, mut p) = jobs.remove(i);
                    p.signal(rustix::process::Signal::TERM);
                    let status = p.wait_exit(Duration::from_secs(10));
                    assert!(status.is_some(), "{at}: {cmd} did not stop on SIGTERM");
                }
            } else if comment.trim().is_empty() {
                run_ok(
                    &at,
                    shell(&cmd, d),
                    Duration::from_secs(30),
                    &job_logs(&jobs),
                );
            } else {
                let mut last = String::new();
                let shown = poll_until(SETTLE, Duration::from_millis(100), || {
                    let out = crate::kit::run(&at, shell(&cmd, d), None, Duration::from_secs(10));
                    last = format!("{}{}", out.stdout, out.stderr);
                    check_claims(text, comment, &out.stdout).ok()
                });
                assert!(
                    shown.is_some(),
                    "{at}: not shown within {SETTLE:?}; last output:\n{last}\n{}{}",
                    job_logs(&jobs),
                    files.concat()
                );
            }
        }
    }
    assert!(jobs.is_empty(), "jobs left running: {}", job_logs(&jobs));
    assert!(
        files.len() >= 4 && ran >= 10,
        "only {} files and {ran} commands in the walk",
        files.len()
    );
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

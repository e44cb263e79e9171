//! The docs' code blocks as tests read them, and DEPLOY.md's recipes
//! walked as an operator would (tests/integration/docs.rs and
//! deploy_recipes.rs say what each checks): the fenced blocks of a text, a
//! folder holding a copy of `zones/`, the file a block is, the claims a
//! command's `# comment` makes of its output; the walk of a section
//! ([`walk`]: its files written, its ```sh recipe lines run as jobs,
//! signals and waits) on the doc's ports or free ones ([`walk_ports`]).
use std::ops::RangeBounds;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::kit::{Proc, crate_dir, free_ports, poll_until, run_ok};

/// The fenced blocks (``` at any indentation) of `text`: (the line of the
/// opening fence, its info string, the body), in order.
pub fn fenced(text: &str) -> Result<Vec<(usize, String, String)>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some((i + 1, info.trim().to_owned(), String::new(), indent))
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                let (line, info, body, _) = open.take().unwrap();
                out.push((line, info, body));
            }
            (Some((_, _, body, indent)), _) => {
                body.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    match open {
        Some((line, ..)) => Err(format!("the code block of line {line} is never closed")),
        None => Ok(out),
    }
}

/// A temporary folder holding a copy of `zones/`, where config files go.
pub fn with_zones() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    for e in std::fs::read_dir(crate_dir().join("zones")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join("zones").join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// The file a block is, from its first line (`# NAME`, `; NAME` or
/// `-- NAME`, one word with a dot): a recipe's file.
pub fn file_of(body: &str) -> Option<&str> {
    let first = body.lines().next()?;
    let name = first
        .strip_prefix("# ")
        .or(first.strip_prefix("; "))
        .or(first.strip_prefix("-- "))?
        .trim();
    (!name.contains(' ') && name.contains('.')).then_some(name)
}

/// What a command's `# comment` promises of its output, checked: `no
/// output`, an rcode, the IPv4 addresses it names, `flags include aa`, and
/// each `TEXT` it quotes in backquotes (the output holds it).
pub fn check_claims(cmd: &str, comment: &str, out: &str) -> Result<(), String> {
    if comment.trim_start().starts_with("no output") && !out.trim().is_empty() {
        return Err(format!("{cmd}: says no output, got:\n{out}"));
    }
    for quoted in comment.split('`').skip(1).step_by(2) {
        if !out.contains(quoted) {
            return Err(format!("{cmd}: says `{quoted}`, got:\n{out}"));
        }
    }
    for rcode in ["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] {
        if comment.contains(rcode) && !out.contains(&format!("status: {rcode}")) {
            return Err(format!("{cmd}: says {rcode}, got:\n{out}"));
        }
    }
    for word in comment.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let word = word.trim_end_matches('.');
        if word.parse::<std::net::Ipv4Addr>().is_ok() && !out.contains(word) {
            return Err(format!("{cmd}: says {word}, got:\n{out}"));
        }
    }
    if comment.contains("flags include aa") {
        let flags = out.lines().find(|l| l.contains(";; flags:")).unwrap_or("");
        if !flags
            .split(';')
            .nth(2)
            .is_some_and(|f| f.split_whitespace().any(|w| w == "aa"))
        {
            return Err(format!("{cmd}: says flags include aa, got:\n{out}"));
        }
    }
    Ok(())
}

/// How long a command with a claim is asked again until its output shows it.
pub const SETTLE: Duration = Duration::from_secs(10);

/// The text of DEPLOY.md's section `title` (up to the next `## `).
fn section(title: &str) -> String {
    let text = std::fs::read_to_string(crate_dir().join("docs/DEPLOY.md")).unwrap();
    let start = text.find(title).expect("the section");
    let rest = &text[start + title.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Whether `port` is free on 127.0.0.1 for both UDP and TCP.
pub fn port_free(port: u16) -> bool {
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
pub struct Walked {
    pub files: Vec<String>,
    pub ran: usize,
}

impl Walked {
    /// The walk wrote a number of files in `files` and ran `ran` commands
    /// at least: a section that lost its blocks fails here.
    pub fn assert_walked(&self, files: impl RangeBounds<usize> + std::fmt::Debug, ran: usize) {
        assert!(
            files.contains(&self.files.len()) && self.ran >= ran,
            "{} files (want {files:?}) and {} commands (want {ran} or more) in the walk",
            self.files.len(),
            self.ran
        );
    }
}

/// The ports a walk uses in place of the doc's `wanted`: those when all are
/// free on 127.0.0.1, else as many free ones.
pub fn walk_ports(wanted: &[u16]) -> Vec<u16> {
    if wanted.iter().all(|&p| port_free(p)) {
        wanted.to_vec()
    } else {
        free_ports(wanted.len())
    }
}

/// `text` with each of the doc's ports `from` replaced by its `to`.
pub fn move_ports(text: &str, from: &[u16], to: &[u16]) -> String {
    let mut t = text.to_owned();
    for (from, to) in from.iter().zip(to) {
        t = t.replace(&from.to_string(), &to.to_string());
    }
    t
}

/// Walks DEPLOY.md's section `title` in `dir` as an operator would (see the
/// header): the files written, each line of its ```sh recipe blocks run,
/// `rewrite` applied to both, each of `programs` run from its path, a
/// command with a claim asked again for up to `settle`. Every job must have
/// been stopped by the walk itself.
pub fn walk(
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

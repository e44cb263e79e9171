//! Reloads that fail loudly and whole, as real processes on 127.0.0.1:
//! `dnslb up` (two table server children and the LS) and `dnslb ts`,
//! SIGHUP and `dnslb reload`, and what the supervisor says of a child it
//! did not stop itself.
//!
//! - Under `dnslb up` a SIGHUP with a broken `config.toml` reloads nothing:
//!   the zone edit made with it is not served by the table server (nor
//!   through the LS) until the config is fixed; then both are.
//! - `dnslb ts` alone: a config that does not read refuses the zone edit too.
//! - `dnslb reload`: a broken zone is refused (exit 1, file:line), by the
//!   deployment too, which reads its certificates again all the same (a
//!   renewal is served); a change only a restart applies is named on its
//!   role's line (exit 0); a good change is served as soon as it returns (no poll:
//!   it waits for each role); a broken config the deployment reads is
//!   refused by every role, one line each; no `ls.metrics`: exit 1, saying
//!   how to reload instead.
//! - A table server child killed with SIGKILL is logged as killed by that
//!   signal, not with its last (success) line as the reason.
//!
//! Every process is stopped by its PID (the [`Proc`] guard); readiness and
//! log lines are polled within bounds.
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;

use crate::kit::{
    Output, Proc, READY_LIMIT, answers_with, free_ports, kill_pid, local, ls_fixed_head_toml,
    pids_of, run_dnslb, udp_ask, wait_answers, wait_log, write_up_pair,
};

/// How long a reload's log line may take to show.
const RELOAD_LIMIT: Duration = Duration::from_secs(20);
/// How long `dnslb reload` may run.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// A UDP query's wait.
const ASK_WAIT: Duration = Duration::from_secs(2);

/// The name edited in ts2's table, its address before and after.
const NAME: &str = "www.example.org";
const OLD: &str = "198.51.100.10";
const NEW: &str = "198.51.100.99";

/// A `dnslb up` deployment in its own folder: the LS on `dns` (metrics
/// on `metrics`), ts1 and ts2 on their ports, serving copies of the
/// `tests/data/ls` tables.
struct Deployment {
    dir: tempfile::TempDir,
    config: PathBuf,
    dns: u16,
    ts2: u16,
    metrics: u16,
}

impl Deployment {
    /// The config written (with `metrics = false`: no `ls.metrics`).
    fn write(metrics: bool) -> Deployment {
        Deployment::write_with(metrics, "")
    }

    /// [`Deployment::write`], `ls_tables` (`[ls.tls]`...) after the `[ls]`.
    fn write_with(metrics: bool, ls_tables: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let [dns, ts1, ts2, m] = free_ports(4)[..] else {
            unreachable!()
        };
        let mut ls = ls_fixed_head_toml(dns, "hedge", "partitioned");
        if metrics {
            ls.push_str(&format!("metrics = \"127.0.0.1:{m}\"\n"));
        }
        ls.push_str(ls_tables);
        let config = write_up_pair(dir.path(), &ls, ts1, ts2);
        Deployment {
            dir,
            config,
            dns,
            ts2,
            metrics: m,
        }
    }

    /// `dnslb up` on it, once the LS answers a name of each table.
    async fn up(&self) -> Proc {
        let mut up = Proc::dnslb("dnslb up", &["up", "-c", "config.toml"], self.dir.path());
        wait_answers(
            local(self.dns),
            "www.example.com",
            "192.0.2.10",
            &mut [&mut up],
        )
        .await;
        wait_answers(local(self.dns), NAME, OLD, &mut [&mut up]).await;
        up
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// ts2's table with [`NAME`] moved to [`NEW`].
    fn edit_ts2(&self) {
        edit(&self.file("ts2.txt"), OLD, NEW);
    }

    /// The config with a strategy that does not exist; its `file:line`.
    fn break_config(&self) -> String {
        edit(
            &self.config,
            "strategy = \"hedge\"",
            "strategy = \"hedgee\"",
        );
        at_line(&self.config, "strategy = ")
    }

    fn fix_config(&self) {
        edit(
            &self.config,
            "strategy = \"hedgee\"",
            "strategy = \"hedge\"",
        );
    }

    /// ts1's table with a line that does not read; its `ts1.txt:LINE`.
    fn break_ts1(&self) -> String {
        let ts1 = self.file("ts1.txt");
        let good = std::fs::read_to_string(&ts1).unwrap();
        std::fs::write(&ts1, format!("{good}broken.example.com 192.0.2 A\n")).unwrap();
        format!("ts1.txt:{}", good.lines().count() + 1)
    }

    /// `dnslb reload ARGS` in its folder.
    fn reload(&self, args: &[&str]) -> Output {
        let mut all = vec!["reload"];
        all.extend_from_slice(args);
        run_dnslb(&all, self.dir.path(), None, RUN_LIMIT)
    }
}

/// `path` with `from` replaced by `to` (which must be there).
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// `NAME:LINE` of the first line of `path` holding `needle`.
fn at_line(path: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    format!("{}:{line}", path.file_name().unwrap().to_string_lossy())
}

/// The A answer of `port` for `name` is exactly `ip`.
async fn serves(port: u16, name: &str, ip: &str) -> bool {
    udp_ask(local(port), name, ASK_WAIT)
        .await
        .is_some_and(|m| answers_with(&m, ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reloads_nothing_on_sighup_while_the_config_is_broken() {
    let _load = crate::kit::timed().await;
    let d = Deployment::write(true);
    let mut up = d.up().await;
    // A change of a table and of config.toml together, the config broken.
    d.edit_ts2();
    let at = d.break_config();
    up.signal(Signal::HUP);
    let line = up
        .wait_line("reload refused, nothing reloaded", RELOAD_LIMIT)
        .await;
    assert!(line.contains(&format!("{at}: ls.strategy")), "{line}");
    // Nothing of the change: the table server was not told, and serves
    // the old address, as the LS does.
    assert!(serves(d.ts2, NAME, OLD).await, "ts2 applied half a change");
    assert!(
        serves(d.dns, NAME, OLD).await,
        "the LS serves half a change"
    );
    let log = up.stderr_now();
    assert!(!log.contains("reload done"), "{log}");
    // Fixed: the whole change is applied at the next SIGHUP.
    d.fix_config();
    up.signal(Signal::HUP);
    wait_answers(local(d.ts2), NAME, NEW, &mut [&mut up]).await;
    wait_answers(local(d.dns), NAME, NEW, &mut [&mut up]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_alone_refuses_its_zone_edits_while_its_config_does_not_read() {
    let _load = crate::kit::timed().await;
    let d = Deployment::write(false);
    let mut ts = Proc::dnslb(
        "dnslb ts",
        &["ts", "-c", "config.toml", "--name", "ts2"],
        d.dir.path(),
    );
    wait_answers(local(d.ts2), NAME, OLD, &mut [&mut ts]).await;
    d.edit_ts2();
    let at = d.break_config();
    ts.signal(Signal::HUP);
    let line = ts
        .wait_line(
            "reload refused: the config file does not read",
            RELOAD_LIMIT,
        )
        .await;
    assert!(line.contains(&at), "{line}");
    assert!(serves(d.ts2, NAME, OLD).await, "the zone edit was applied");
    d.fix_config();
    ts.signal(Signal::HUP);
    wait_answers(local(d.ts2), NAME, NEW, &mut [&mut ts]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnslb_reload_checks_first_then_waits_for_every_role() {
    let _load = crate::kit::timed().await;
    let d = Deployment::write(true);
    let mut up = d.up().await;

    // A broken zone: exit 1 with its file:line, and the deployment, asked
    // all the same, refuses it whole.
    let ts1 = d.file("ts1.txt");
    let good = std::fs::read_to_string(&ts1).unwrap();
    let at = d.break_ts1();
    let out = d.reload(&["-c", "config.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    assert!(
        out.stderr.contains(&format!("{at}: bad IPv4 address")),
        "{out:#?}"
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(
        lines[0].starts_with("ls: refused, nothing reloaded: ") && lines[0].contains(&at),
        "{out:#?}"
    );
    assert!(
        !lines[0].contains("certificates"),
        "no certificate: {out:#?}"
    );
    assert!(lines[1].starts_with("ts1: not signalled"), "{out:#?}");
    std::fs::write(&ts1, &good).unwrap();

    // A good change: served as soon as `dnslb reload` returns, each role's
    // outcome on its own line.
    d.edit_ts2();
    let out = d.reload(&["-c", "config.toml"]);
    assert!(out.status.success(), "{out:#?}\n{}", up.stderr_now());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(lines[0].starts_with("ls: reloaded"), "{out:#?}");
    assert!(lines[1].starts_with("ts1: reloaded (changed=0"), "{out:#?}");
    assert!(lines[2].starts_with("ts2: reloaded (changed=1"), "{out:#?}");
    assert!(serves(d.ts2, NAME, NEW).await, "ts2 after dnslb reload");
    assert!(serves(d.dns, NAME, NEW).await, "the LS after dnslb reload");

    // The deployment's config broken, a good copy checked here: the running
    // deployment checks too, and every role says it reloaded nothing.
    let copy = d.file("copy.toml");
    std::fs::copy(&d.config, &copy).unwrap();
    let at = d.break_config();
    edit(&d.file("ts2.txt"), NEW, OLD);
    let addr = format!("127.0.0.1:{}", d.metrics);
    let out = d.reload(&["-c", "copy.toml", "--addr", &addr]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(
        lines[0].starts_with("ls: refused, nothing reloaded: ") && lines[0].contains(&at),
        "{out:#?}"
    );
    assert!(lines[1].starts_with("ts1: not signalled"), "{out:#?}");
    assert!(lines[2].starts_with("ts2: not signalled"), "{out:#?}");
    assert!(
        out.stderr.contains("reload not applied by ls, ts1, ts2"),
        "{out:#?}"
    );
    assert!(serves(d.ts2, NAME, NEW).await, "ts2 reloaded half a change");
    up.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refused_for_a_broken_zone_still_serves_the_renewed_certificate() {
    use crate::kit::tls::{Pki, connect, der_of, served};
    let test = "a_reload_refused_for_a_broken_zone_still_serves_the_renewed_certificate";
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let _load = crate::kit::timed().await;
    let (old_pem, old_key) = pki.leaf("old");
    let (new_pem, new_key) = pki.leaf("new");
    let (pem, key) = (pki.path().join("live.pem"), pki.path().join("live.key"));
    std::fs::copy(&old_pem, &pem).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let tls = local(free_ports(1)[0]);
    let d = Deployment::write_with(
        true,
        &format!(
            "\n[ls.tls]\nlisten = [\"{tls}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
            pem.display(),
            key.display()
        ),
    );
    let mut up = d.up().await;
    let client = pki.client();
    assert_eq!(served(&connect(&client, tls).await), der_of(&old_pem));

    // A renewal (certbot's deploy hook runs `dnslb reload`) while a zone
    // is broken: refused, exit 1, and the new certificate served.
    let at = d.break_ts1();
    std::fs::copy(&new_pem, &pem).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let out = d.reload(&["-c", "config.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    let ls = out.stdout.lines().next().unwrap_or_default();
    assert!(
        ls.starts_with("ls: refused, nothing reloaded: ")
            && ls.contains(&at)
            && ls.ends_with("; certificates re-read"),
        "{out:#?}"
    );
    assert_eq!(served(&connect(&client, tls).await), der_of(&new_pem));
    let line = up
        .wait_line("reload refused, nothing reloaded", RELOAD_LIMIT)
        .await;
    assert!(line.contains("certificates re-read"), "{line}");
    assert!(serves(d.ts2, NAME, OLD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnslb_reload_names_what_only_a_restart_applies() {
    let _load = crate::kit::timed().await;
    let d = Deployment::write(true);
    let mut up = d.up().await;
    let moved = free_ports(1)[0];
    edit(
        &d.config,
        &format!("listen = \"127.0.0.1:{}\"", d.ts2),
        &format!("listen = \"127.0.0.1:{moved}\""),
    );
    // Applied as knotc's reload is (exit 0), the line saying what waits.
    let out = d.reload(&["-c", "config.toml"]);
    assert!(out.status.success(), "{out:#?}\n{}", up.stderr_now());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:#?}");
    assert!(
        lines[2].starts_with("ts2: reloaded (")
            && lines[2].ends_with("; not applied until a restart: listen)"),
        "{out:#?}"
    );
    assert!(!lines[1].contains("restart"), "{out:#?}");
    assert!(serves(d.ts2, NAME, OLD).await, "still on its old port");
    up.assert_running();
}

#[test]
fn dnslb_reload_without_a_control_listener_says_how_to_reload() {
    let d = Deployment::write(false);
    let out = d.reload(&["-c", "config.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:#?}");
    for says in ["no ls.metrics address", "SIGHUP", "kill -HUP"] {
        assert!(out.stderr.contains(says), "{says:?}: {out:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_child_is_logged_as_killed_not_with_its_last_line() {
    let _load = crate::kit::timed().await;
    let d = Deployment::write(false);
    let mut up = d.up().await;
    let pid = wait_log(&mut up, READY_LIMIT, "start of ts1", |log| {
        pids_of(log, "ts1").first().copied()
    });
    kill_pid(pid, Signal::KILL).unwrap();
    let line = up
        .wait_line_where("the exit of ts1", RELOAD_LIMIT, |l| {
            l.contains("table server exited") && l.contains("ts=ts1")
        })
        .await;
    assert!(
        line.contains("reason=\"killed by signal 9 (SIGKILL); no error logged before\""),
        "{line}"
    );
    assert!(!line.contains("table server ready"), "{line}");
}

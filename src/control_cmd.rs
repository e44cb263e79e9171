//! The live-control commands (docs/CONFIG.md (the LS) "Live control"): `dnslb backend NAME
//! drain|down|auto`, `dnslb blocks [add NET|NAME --for S --action A | clear]`,
//! `dnslb top` and `dnslb reload`, each one request to a running LS's metrics listener
//! (at the config's `ls.metrics`, or `--addr`), as `dnslb status` does
//! (`status::ask_json`). A state-changing request carries the header the
//! listener wants of it and, when one is known (`--key`, else
//! `DNSLB_API_KEY`, else the config's `ls.api_key`), the `api_key`.
//! [`render_blocks`], [`render_top`] and [`render_reload`] are pure.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;

use crate::config::Config;
use crate::ls::backend::admin::AdminState;
use crate::ls::dynblock::{BlockInfo, TopReport};
use crate::metrics::{BackendAnswer, CONTROL_HEADER, ClearAnswer, RELOAD_PATH, ReloadAnswer};
use crate::roles::reload::CHILD_RELOAD_WAIT;
use crate::status::{FETCH_TIMEOUT, StatusError, ask_json, env_key, metrics_addr};

/// Where the LS is, and the key to show it. Its flags are global: given
/// before or after a subcommand (`dnslb blocks -c F add X`, `dnslb blocks
/// add X -c F`), they are the same flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlTo {
    /// The config file: the LS is asked at its `ls.metrics` address (and
    /// its `ls.api_key` is sent when there is one).
    #[arg(short, long, global = true, default_value = "config.toml")]
    pub config: PathBuf,
    /// Ask this metrics address instead.
    #[arg(long, global = true, value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
    /// The `api_key` (needed when the LS is not reached over loopback);
    /// default: `DNSLB_API_KEY`, else the config's `ls.api_key`.
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,
}

impl ControlTo {
    /// The address to ask, and the key to send.
    fn resolve(&self) -> Result<(SocketAddr, Option<String>), StatusError> {
        let addr = metrics_addr(&self.config, self.addr)?;
        let key = self.key.clone().or_else(env_key).or_else(|| {
            Config::load(&self.config)
                .ok()
                .and_then(|c| c.ls)
                .and_then(|ls| ls.api_key)
        });
        Ok((addr, key))
    }

    /// One request of `method` on `path`, decoded from JSON.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, StatusError> {
        let (addr, key) = self.resolve()?;
        let key = key.as_deref();
        ask_json(addr, method, path, CONTROL_HEADER, key, FETCH_TIMEOUT).await
    }
}

/// How long `dnslb reload` waits for every role's outcome: the LS's wait
/// for its table servers' and time for the check before it.
pub const RELOAD_WAIT: Duration = Duration::from_secs(CHILD_RELOAD_WAIT.as_secs() + 60);

/// Why `dnslb reload` could not ask for a reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// No control listener to ask.
    #[error(
        "{}: no ls.metrics address, so there is no control listener to ask for a reload and wait for \
         its outcome: set ls.metrics (e.g. \"127.0.0.1:5390\") and restart, or give --addr; \
         meanwhile send SIGHUP to the dnslb up, dnslb ls or dnslb ts process (kill -HUP PID; \
         under systemd, its MainPID), whose log then says what was reloaded",
        path.display()
    )]
    NoListener {
        /// The config file.
        path: PathBuf,
    },
    /// The LS could not be asked, or refused the request.
    #[error(transparent)]
    Ask(#[from] StatusError),
}

/// `dnslb reload`: asks the running LS (and under `dnslb up` its table
/// servers) to reload, as SIGHUP does, and waits for every role's outcome.
/// The caller checks the config first.
///
/// # Errors
/// No control listener, the LS unreachable, or the request refused (gate).
pub async fn reload(to: &ControlTo) -> Result<ReloadAnswer, ReloadError> {
    if to.addr.is_none() {
        let no_listener = Config::load(&to.config)
            .map_err(StatusError::from)?
            .ls
            .and_then(|ls| ls.metrics)
            .is_none();
        if no_listener {
            return Err(ReloadError::NoListener {
                path: to.config.clone(),
            });
        }
    }
    let (addr, key) = to.resolve()?;
    let key = key.as_deref();
    let answer = ask_json(
        addr,
        Method::POST,
        RELOAD_PATH,
        CONTROL_HEADER,
        key,
        RELOAD_WAIT,
    )
    .await?;
    Ok(answer)
}

/// What `dnslb reload` saw: the problems of its own check of the config
/// and every zone, and the running deployment's answer (asked all the same:
/// the deployment refuses a broken change too, but reads its certificates
/// again, as a renewal's deploy hook wants).
#[derive(Debug)]
pub struct ReloadRun {
    /// The check's `file:line: problem` lines (none: the config is good).
    pub problems: Vec<String>,
    /// The deployment's answer, or why it could not be had.
    pub answer: Result<ReloadAnswer, ReloadError>,
}

impl ReloadRun {
    /// Why `dnslb reload` fails (`None`: every role reloaded a good
    /// config), given the config file it checked.
    pub fn failure(&self, config: &std::path::Path) -> Option<String> {
        let broken = || {
            format!(
                "{}: the config or a zone is broken: fix it, then reload again",
                config.display()
            )
        };
        match &self.answer {
            Err(e) if self.problems.is_empty() => Some(e.to_string()),
            Err(e) => Some(format!("{}: {e}", broken())),
            Ok(_) if !self.problems.is_empty() => Some(broken()),
            Ok(a) if !a.applied => {
                let refused: Vec<&str> = (a.roles.iter())
                    .filter(|r| !r.applied)
                    .map(|r| r.role.as_str())
                    .collect();
                Some(format!("reload not applied by {}", refused.join(", ")))
            }
            Ok(_) => None,
        }
    }
}

/// `dnslb reload` whole: checks the config and every zone (as `dnslb
/// check`), then asks the deployment to reload and waits for its answer.
pub async fn reload_checked(to: &ControlTo) -> ReloadRun {
    ReloadRun {
        problems: crate::check::check(&to.config),
        answer: reload(to).await,
    }
}

/// The outcome as `dnslb reload` prints it: one line per role, the LS first.
pub fn render_reload(a: &ReloadAnswer) -> String {
    a.roles
        .iter()
        .map(|r| format!("{}: {}\n", r.role, r.detail))
        .collect()
}

/// A query string of `pairs`, percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// `dnslb backend NAME STATE`: the line to print.
///
/// # Errors
/// The LS unreachable, no such backend, or refused.
pub async fn backend(to: &ControlTo, name: &str, state: AdminState) -> Result<String, StatusError> {
    let name_path: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let path = format!(
        "/backend/{name_path}?{}",
        query(&[("state", state.as_str())])
    );
    let a: BackendAnswer = to.ask(Method::POST, &path).await?;
    let mut out = format!("backend {}: {} (was {})\n", a.backend, a.state, a.previous);
    if !a.effect.is_empty() {
        out += &format!("  {}\n", a.effect);
    }
    Ok(out)
}

/// `dnslb blocks`: the blocks in force, as a table.
///
/// # Errors
/// The LS unreachable.
pub async fn blocks(to: &ControlTo) -> Result<String, StatusError> {
    let list: Vec<BlockInfo> = to.ask(Method::GET, "/blocks").await?;
    Ok(render_blocks(&list))
}

/// `dnslb blocks add TARGET --for SECS --action ACTION`: the blocks in force after.
///
/// # Errors
/// A bad target, the table full, the LS unreachable, or refused.
pub async fn add_block(
    to: &ControlTo,
    target: &str,
    secs: u64,
    action: crate::config::DynAction,
) -> Result<String, StatusError> {
    let secs = secs.to_string();
    let path = format!(
        "/blocks?{}",
        query(&[
            ("target", target),
            ("for", &secs),
            ("action", action.as_str())
        ])
    );
    let list: Vec<BlockInfo> = to.ask(Method::POST, &path).await?;
    Ok(render_blocks(&list))
}

/// `dnslb blocks clear`: how many were lifted.
///
/// # Errors
/// The LS unreachable, or refused.
pub async fn clear_blocks(to: &ControlTo) -> Result<String, StatusError> {
    let a: ClearAnswer = to.ask(Method::POST, "/blocks/clear").await?;
    let s = if a.cleared == 1 { "" } else { "s" };
    Ok(format!("{} block{s} lifted\n", a.cleared))
}

/// `dnslb top`: the busiest of the last `seconds`, `n` of each, the names
/// cut to their last `labels` labels when given.
///
/// # Errors
/// The LS unreachable.
pub async fn top(
    to: &ControlTo,
    seconds: usize,
    n: usize,
    labels: Option<usize>,
) -> Result<String, StatusError> {
    let (seconds, n) = (seconds.to_string(), n.to_string());
    let labels = labels.map(|l| l.to_string());
    let mut pairs = vec![("seconds", seconds.as_str()), ("n", n.as_str())];
    if let Some(l) = &labels {
        pairs.push(("labels", l.as_str()));
    }
    let path = format!("/top?{}", query(&pairs));
    let r: TopReport = to.ask(Method::GET, &path).await?;
    Ok(render_top(&r))
}

/// The blocks as `dnslb blocks` prints them.
pub fn render_blocks(list: &[BlockInfo]) -> String {
    if list.is_empty() {
        return "no blocks in force\n".to_owned();
    }
    let mut out = String::new();
    let w = list
        .iter()
        .map(|b| b.target.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let r = list.iter().map(|b| b.rule.len()).max().unwrap_or(0).max(4);
    let _ = writeln!(
        out,
        "{:<w$}  {:<r$}  {:<8}  {:>9}  {:>7}  reason",
        "target", "rule", "action", "secs left", "blocked"
    );
    for b in list {
        let _ = writeln!(
            out,
            "{:<w$}  {:<r$}  {:<8}  {:>9}  {:>7}  {}",
            b.target, b.rule, b.action, b.seconds_left, b.queries_blocked, b.reason
        );
    }
    out
}

/// The report as `dnslb top` prints it.
pub fn render_top(r: &TopReport) -> String {
    let mut out = format!("last {} s\n", r.seconds);
    if let Some(note) = &r.note {
        let _ = writeln!(out, "({note})");
    }
    let names = match r.labels {
        Some(l) => format!("names (last {l} labels)"),
        None => "names".to_owned(),
    };
    for (title, list) in [
        ("clients", &r.clients),
        (names.as_str(), &r.names),
        ("types", &r.qtypes),
        ("rcodes", &r.rcodes),
    ] {
        let _ = writeln!(out, "\n{title}:");
        if list.is_empty() {
            out.push_str("  (none)\n");
        }
        for e in list.iter() {
            let _ = writeln!(out, "  {:>9}  {}", e.count, e.key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ls::dynblock::TopEntry;

    #[test]
    fn reload_fails_on_a_broken_check_a_refusing_role_or_no_answer() {
        use crate::metrics::RoleReload;
        let role = |name: &str, applied| RoleReload {
            role: name.into(),
            applied,
            detail: String::new(),
        };
        let config = std::path::Path::new("c.toml");
        let run = |problems: &[&str], answer| ReloadRun {
            problems: problems.iter().map(|p| (*p).to_owned()).collect(),
            answer,
        };
        let good = ReloadAnswer::of(vec![role("ls", true), role("ts1", true)]);
        assert_eq!(run(&[], Ok(good.clone())).failure(config), None);
        let broken = run(&["z.txt:3: bad"], Ok(good)).failure(config);
        assert_eq!(
            broken.as_deref(),
            Some("c.toml: the config or a zone is broken: fix it, then reload again")
        );
        let refused = ReloadAnswer::of(vec![
            role("ls", true),
            role("ts1", false),
            role("ts2", false),
        ]);
        assert_eq!(
            run(&[], Ok(refused)).failure(config).as_deref(),
            Some("reload not applied by ts1, ts2")
        );
        let none = || {
            Err(ReloadError::NoListener {
                path: config.into(),
            })
        };
        let unreached = run(&[], none()).failure(config).unwrap_or_default();
        assert!(unreached.starts_with("c.toml"), "{unreached}");
        let both = run(&["z.txt:3: bad"], none())
            .failure(config)
            .unwrap_or_default();
        assert!(
            both.starts_with("c.toml: the config or a zone is broken"),
            "{both}"
        );
    }

    #[test]
    fn blocks_and_top_print_as_tables() {
        assert_eq!(render_blocks(&[]), "no blocks in force\n");
        let b = BlockInfo {
            target: "192.0.2.1".into(),
            kind: "client".into(),
            rule: "floods".into(),
            reason: "120 queries in 1 s, over 100/s".into(),
            action: "drop".into(),
            seconds_left: 42,
            queries_blocked: 7,
        };
        let text = render_blocks(&[b]);
        assert!(text.starts_with("target     rule    action"), "{text}");
        assert!(
            text.contains("192.0.2.1  floods  drop             42        7  120 queries"),
            "{text}"
        );
        let r = TopReport {
            seconds: 3,
            clients: vec![TopEntry {
                key: "192.0.2.1".into(),
                count: 12,
            }],
            ..TopReport::default()
        };
        let text = render_top(&r);
        assert!(
            text.contains("clients:\n         12  192.0.2.1\n"),
            "{text}"
        );
        assert!(text.contains("names:\n  (none)\n"), "{text}");
    }
}

//! A reload of a running deployment (SIGHUP, or `POST /reload` from
//! `dnslb reload`), and its outcome for each role ([`Reloader::run`]).
//!
//! Under `dnslb up` it is all or nothing across the roles: the whole new
//! config and every zone are checked first, as `dnslb check` does; when
//! anything is wrong nothing is reloaded (not the LS, no table server is
//! signalled) and one line names every problem with its `file:line`. Else
//! the LS applies its `[ls]` and certificates ([`LsLive`]), then each table
//! server is signalled and its outcome awaited (its report on the pipe of its
//! stderr, [`crate::supervise::report_reload`]). Under `dnslb ls` the LS's
//! own part only (a config it cannot read is refused whole).
//!
//! Reloads run one at a time, in the order asked: each reads the files as
//! they are when it begins.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::{Config, LsConfig};
use crate::ls::Balancer;
use crate::metrics::{ReloadAnswer, RoleReload};
use crate::server::conn_rate::ConnRate;
use crate::server::forwarded::TrustedProxies;
use crate::server::tls::CertSwap;
use crate::supervise::{ChildReload, Supervisor};

/// How long a reload waits for each table server's outcome.
pub const CHILD_RELOAD_WAIT: Duration = Duration::from_secs(60);

/// What a reload changes of a running LS.
pub(super) struct LsLive {
    /// The `[ls]` as started: what only a restart applies is judged against it.
    pub(super) lsc: LsConfig,
    pub(super) balancer: Arc<Balancer>,
    /// The `[ls.tls]` certificate, re-read on reload.
    pub(super) certs: Option<Arc<CertSwap>>,
    /// The `[ls.https]` certificate (none: plain HTTP), re-read on reload.
    pub(super) https_certs: Option<Arc<CertSwap>>,
    /// The `[ls.quic]` certificate, re-read on reload.
    pub(super) quic_certs: Option<Arc<CertSwap>>,
    /// `[ls.tls]`'s `conn_rate_limit`, applied again on reload.
    pub(super) dot_rate: Arc<ConnRate>,
    /// `[ls.https]`'s `conn_rate_limit`, applied again on reload.
    pub(super) doh_rate: Arc<ConnRate>,
    /// `[ls.https]`'s `trusted_proxies`, applied again on reload.
    pub(super) trusted: Arc<TrustedProxies>,
}

impl LsLive {
    /// The LS's part of a reload: its `[ls]` (see [`reload_config`]) and its
    /// certificates. Applied when the config was and every certificate was.
    fn reload(&self, started: &Config, children: bool) -> RoleReload {
        let (new, config) = reload_config(started, Some((&self.lsc, &self.balancer)), children);
        let new_ls = new.as_ref().and_then(|c| c.ls.as_ref());
        if let Some(new_ls) = new_ls {
            set_conn_rates(new_ls, &self.dot_rate, &self.doh_rate);
            self.trusted.set(trusted_proxies(new_ls));
        }
        // A config refused for any reason (a typo in a backend...) must not
        // block a certificate renewal: the files the running config names are
        // read again then.
        let files = match new.as_ref() {
            Some(_) => new_ls,
            None => Some(&self.lsc),
        };
        let certs = self.reread_certs(files);
        let (applied, detail) = match (config, certs) {
            (Err(why), _) => (
                false,
                format!("refused, the old config keeps serving: {why}"),
            ),
            (Ok(_), Some(Err(why))) => (false, format!("config reloaded, but {why}")),
            (Ok(done), _) => (true, format!("reloaded ({done})")),
        };
        RoleReload {
            role: "ls".into(),
            applied,
            detail,
        }
    }

    /// Reads again the certificate and key files `files` names for each
    /// encrypted listener (none: the old certificates keep serving) and
    /// counts it; `None` when the LS serves no certificate.
    fn reread_certs(&self, files: Option<&LsConfig>) -> Option<Result<(), String>> {
        let mut certs: Option<Result<(), String>> = None;
        if let Some(c) = &self.certs {
            let tls = files.and_then(|l| l.tls.as_ref());
            certs = Some(reload_cert("ls.tls", c, tls.map(|t| (&*t.cert, &*t.key))));
        }
        if let Some(c) = &self.https_certs {
            let https = files.and_then(|l| l.https.as_ref());
            let pair = https.and_then(|h| Some((h.cert.as_deref()?, h.key.as_deref()?)));
            let done = reload_cert("ls.https", c, pair);
            certs = Some(certs.unwrap_or(Ok(())).and(done));
        }
        if let Some(c) = &self.quic_certs {
            let quic = files.and_then(|l| l.quic.as_ref());
            let done = reload_cert("ls.quic", c, quic.map(|q| (&*q.cert, &*q.key)));
            certs = Some(certs.unwrap_or(Ok(())).and(done));
        }
        self.export_not_after();
        // One count a reload: applied when every certificate was.
        if let (Some(done), Some(stats)) = (&certs, self.balancer.metrics().tls.get()) {
            let c = match done {
                Ok(()) => &stats.cert_reloads,
                Err(_) => &stats.cert_reloads_refused,
            };
            c.fetch_add(1, Relaxed);
        }
        certs
    }

    /// Exports the notAfter of each certificate served on /metrics (once the
    /// encrypted listeners' counters exist).
    pub(super) fn export_not_after(&self) {
        let Some(stats) = self.balancer.metrics().tls.get() else {
            return;
        };
        let set = |certs: &Option<Arc<CertSwap>>, at: &std::sync::atomic::AtomicI64| {
            at.store(certs.as_ref().map_or(0, |c| c.not_after()), Relaxed);
        };
        set(&self.certs, &stats.dot_not_after);
        set(&self.https_certs, &stats.doh_not_after);
    }
}

/// The reload of a running LS and (under `up`) its table servers.
pub(super) struct Reloader {
    /// The config as started.
    started: Config,
    ls: Option<LsLive>,
    /// The table servers of `dnslb up` (weak: the supervisor is stopped by
    /// whoever owns it, a reload in flight must not keep it).
    children: std::sync::OnceLock<Weak<Supervisor>>,
    /// One reload at a time.
    one: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// The reload of `started`'s LS (`ls`, if any); no table servers yet.
    pub(super) fn new(started: Config, ls: Option<LsLive>) -> Self {
        Reloader {
            started,
            ls,
            children: std::sync::OnceLock::new(),
            one: tokio::sync::Mutex::new(()),
        }
    }

    /// Under `dnslb up`: a reload checks everything first and reaches
    /// `children` too (the first call only counts).
    pub(super) fn set_children(&self, children: &Arc<Supervisor>) {
        let _ = self.children.set(Arc::downgrade(children));
    }

    /// The LS's part.
    pub(super) fn ls(&self) -> Option<&LsLive> {
        self.ls.as_ref()
    }

    /// Reloads (see the module's docs) and gives each role's outcome, the LS's first.
    pub(super) async fn run(&self) -> ReloadAnswer {
        let _one = self.one.lock().await;
        let under_up = self.children.get().is_some();
        let names: Vec<String> = self.started.ts.iter().map(|t| t.name.clone()).collect();
        if under_up {
            let path = self.started.path.clone();
            let problems = tokio::task::spawn_blocking(move || crate::check::check(&path))
                .await
                .unwrap_or_else(|e| vec![format!("the check stopped: {e}")]);
            if !problems.is_empty() {
                let problems = problems.join("; ");
                // A certificate renewal (certbot's deploy hook reloads) is
                // not held up by a mistake elsewhere: the files the running
                // config names are read again all the same.
                let certs = self.ls.as_ref().and_then(|ls| {
                    ls.balancer.metrics().reloads_refused.fetch_add(1, Relaxed);
                    ls.reread_certs(Some(&ls.lsc))
                });
                let certificates = certs_note(certs.as_ref());
                warn!(%problems, "reload refused, nothing reloaded (neither the LS nor any table server){certificates}: the old config and zones keep serving");
                return refused_whole(self.ls.is_some(), &names, &problems, certs.as_ref());
            }
        }
        let mut roles = Vec::new();
        match &self.ls {
            Some(ls) => roles.push(ls.reload(&self.started, under_up)),
            None if under_up => {
                let _ = reload_config(&self.started, None, true);
            }
            None => {}
        }
        let sup = self.children.get().and_then(Weak::upgrade);
        if let Some(sup) = sup {
            let outcomes = sup.reload_all(CHILD_RELOAD_WAIT);
            drop(sup);
            for (name, outcome) in outcomes.await {
                if !outcome.applied() && !matches!(outcome, ChildReload::Refused(_)) {
                    // A refusal the TS logged itself; this it could not.
                    warn!(ts = %name, outcome = %outcome.describe(), "reload: no outcome from the table server");
                }
                roles.push(RoleReload {
                    applied: outcome.applied(),
                    detail: outcome.describe(),
                    role: name,
                });
            }
        }
        ReloadAnswer::of(roles)
    }
}

/// The answer of a reload refused before anything was reloaded: every role
/// (the LS when there is one, each table server) refused for `why`.
/// `certs` is the outcome of reading the LS's certificates again (none: it
/// serves none).
fn refused_whole(
    ls: bool,
    tables: &[String],
    why: &str,
    certs: Option<&Result<(), String>>,
) -> ReloadAnswer {
    let ls = ls.then(|| RoleReload {
        role: "ls".into(),
        applied: false,
        detail: format!("refused, nothing reloaded: {why}{}", certs_note(certs)),
    });
    let tables = tables.iter().map(|t| RoleReload {
        role: t.clone(),
        applied: false,
        detail: "not signalled: nothing is reloaded while the config or a zone is broken".into(),
    });
    ReloadAnswer::of(ls.into_iter().chain(tables).collect())
}

/// What a refused reload says of the certificates it read again: nothing
/// when the LS serves none.
fn certs_note(certs: Option<&Result<(), String>>) -> String {
    match certs {
        None => String::new(),
        Some(Ok(())) => "; certificates re-read".into(),
        Some(Err(why)) => format!("; certificates not re-read: {why}"),
    }
}

/// Applies `lsc`'s `conn_rate_limit`s (0 without the table) to the DoT and DoH limits.
pub(super) fn set_conn_rates(lsc: &LsConfig, dot: &ConnRate, doh: &ConnRate) {
    let v6 = lsc.rate_limit_v6_prefix;
    dot.set(lsc.tls.as_ref().map_or(0, |t| t.conn_rate_limit), v6);
    doh.set(lsc.https.as_ref().map_or(0, |h| h.conn_rate_limit), v6);
}

/// `lsc`'s `[ls.https] trusted_proxies` (none without the table).
pub(super) fn trusted_proxies(lsc: &LsConfig) -> Vec<ipnet::IpNet> {
    lsc.https
        .as_ref()
        .map_or_else(Vec::new, |h| h.trusted_proxies.clone())
}

/// The certificate part of a reload, for the listeners of `table`: the certificate
/// and key files the new config names (`pair`) are read again and serve new
/// connections; with no `pair` (the new config was refused or has none) or a pair
/// that cannot be served, the old certificate keeps serving (and why is returned).
fn reload_cert(
    table: &str,
    certs: &CertSwap,
    pair: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(), String> {
    let result = match pair {
        Some((cert, key)) => certs.reload(cert, key).map_err(|e| e.to_string()),
        None => Err("no usable certificate and key in the config".into()),
    };
    match &result {
        Ok(()) => {
            info!(table, "tls certificate reloaded");
            warn_expiry(table, certs);
        }
        Err(err) => {
            warn!(table, %err, "tls certificate reload refused; the old certificate keeps serving");
        }
    }
    result.map_err(|err| format!("{table}: certificate refused: {err}"))
}

/// Warns when the certificate `certs` serves for `table` expires within
/// 14 days (`config::expiry_warning_days`).
pub(super) fn warn_expiry(table: &str, certs: &CertSwap) {
    let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
    if let Some(days) = crate::config::expiry_warning_days(certs.not_after(), now) {
        warn!(
            table,
            days, "the tls certificate expires within 14 days: renew it, then SIGHUP"
        );
    }
}

/// A reload of the config: rereads the config at `started.path`; applies its `[ls]`
/// to the running LS (`ls`, when there is one) and warns about what only a restart
/// applies: `[ls]` keys read at start, and (with `children`, under `up`) any
/// change to a `[[ts]]` or to the inline secret, algorithm or secret file of
/// the `[[key]]` it names, which its child read at start (a HUP makes it
/// reread its zone files and its key's `secret_file`, nothing else). Returns
/// the new config when it was read, and what was done of the `[ls]` or why
/// it was refused.
pub(super) fn reload_config(
    started: &Config,
    ls: Option<(&LsConfig, &Balancer)>,
    children: bool,
) -> (Option<Config>, Result<String, String>) {
    let refused = |why: String| {
        if let Some((_, balancer)) = ls {
            balancer.metrics().reloads_refused.fetch_add(1, Relaxed);
        }
        Err(why)
    };
    let new = match Config::load(&started.path) {
        Ok(new) => new,
        Err(err) => {
            warn!(%err, "reload refused; old config keeps serving");
            return (None, refused(err.to_string()));
        }
    };
    if children {
        let mut changed = crate::config::ts_restart_changes(&started.ts, &new.ts);
        changed.extend(crate::config::key_restart_changes(started, &new));
        if !changed.is_empty() {
            let changed = changed.join("; ");
            warn!(%changed, "reload: [[ts]] changed: {changed}; only a restart of dnslb up applies that (the zone files are reread now)");
        }
    }
    let done = match (ls, &new.ls) {
        (Some((lsc, balancer)), Some(new_ls)) => {
            let keys = crate::config::ls_restart_only_changes(lsc, new_ls).join(", ");
            if !keys.is_empty() {
                warn!(%keys, "reload: [ls] {keys} changed; only a restart applies them (the rest is applied now)");
            }
            balancer.reload(new_ls);
            balancer.metrics().reloads_applied.fetch_add(1, Relaxed);
            info!(
                backends = new_ls.backend.len(),
                pools = new_ls.pool.len(),
                "ls reload done"
            );
            let mut done = format!(
                "backends={} pools={}",
                new_ls.backend.len(),
                new_ls.pool.len()
            );
            if !keys.is_empty() {
                done += &format!("; not applied until a restart: {keys}");
            }
            Ok(done)
        }
        (Some(_), None) => {
            warn!("reload refused: the new config has no [ls]; old one keeps serving");
            refused(format!(
                "{}: the new config has no [ls]; the old one keeps serving",
                started.path.display()
            ))
        }
        (None, Some(_)) if children => {
            warn!("reload: the config now has an [ls]; only a restart of dnslb up starts it");
            Ok("no LS".into())
        }
        _ => Ok("no LS".into()),
    };
    (Some(new), done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_refused_before_anything_names_every_role() {
        let a = refused_whole(true, &["ts1".into(), "ts2".into()], "c.toml:3: bad", None);
        assert!(!a.applied);
        let roles: Vec<_> = a.roles.iter().map(|r| (&*r.role, r.applied)).collect();
        assert_eq!(roles, [("ls", false), ("ts1", false), ("ts2", false)]);
        assert_eq!(
            a.roles[0].detail,
            "refused, nothing reloaded: c.toml:3: bad"
        );
        assert!(refused_whole(false, &["ts1".into()], "x", None).roles[0].role == "ts1");
    }

    #[test]
    fn a_reload_refused_before_anything_says_the_certificates_were_read_again() {
        let done = refused_whole(true, &[], "z.txt:1: bad", Some(&Ok(())));
        assert_eq!(
            done.roles[0].detail,
            "refused, nothing reloaded: z.txt:1: bad; certificates re-read"
        );
        let failed = Err("ls.tls: certificate refused: no key".to_owned());
        let not = refused_whole(true, &[], "z.txt:1: bad", Some(&failed));
        assert!(!not.applied);
        assert!(
            not.roles[0]
                .detail
                .ends_with("; certificates not re-read: ls.tls: certificate refused: no key")
        );
    }
}

//! `dnslb check`: validates a config and every zone it names, collecting all
//! problems as `file:line: what is wrong` lines, and warnings (which do not
//! make the config bad) as `file:line: warning: what to know` lines. Beside
//! the config's own rules and each zone's, one rule needs both: a signed
//! zone must not be split across the partitions of a partitioned LS (docs/CONFIG.md (the TS)).
pub mod pool_cover;
pub mod proxy_senders;

use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::rr::Name;
use tracing::Level;

use crate::config::{Config, Layout, LsConfig};
use crate::logging::{self, LogFormat};
use crate::ts::dnssec::policy;
use crate::ts::error::ZoneError;
use crate::ts::zone::Catalog;
use crate::ts::{self, TsSettings, zonefile};

/// What `dnslb check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Problems: the config is bad while there is one.
    pub problems: Vec<String>,
    /// Warnings: worth knowing, the config is good all the same.
    pub warnings: Vec<String>,
    /// Notes: what the config will do here (the interfaces that run XDP).
    pub notes: Vec<String>,
}

/// The zones the `[[ts]]` `i` of `cfg` (whose text is `text`) has both
/// from a zone file (in `catalog`) and as a secondary zone.
fn doubled(cfg: &Config, text: &str, i: usize, catalog: &Catalog) -> Vec<String> {
    let Some(tc) = cfg.ts.get(i) else {
        return Vec::new();
    };
    catalog
        .zones()
        .iter()
        .filter(|z| tc.secondary_zones().any(|s| s.name.eq_ignore_root(z.origin())))
        .map(|z| {
            let msg = format!(
                "the zone {} is given twice, by a zone file and as a secondary zone: give each zone once",
                z.origin()
            );
            cfg.problem_at(text, &format!("ts.{i}.zones"), msg)
                .to_string()
        })
        .collect()
}

/// For a config at `path` its rules refused: the zones given both by a
/// file and as a secondary zone all the same (found by reading the zone
/// files), so that one `check` names every zone given twice.
fn doubled_in_unchecked(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(cfg) = Config::parse(&text, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, tc) in cfg.ts.iter().enumerate() {
        if tc.secondary_zones().next().is_none() {
            continue;
        }
        let settings = TsSettings::from_config(tc);
        if let Ok(catalog) = ts::load_catalog_noting(&settings, 1, &mut Vec::new()) {
            out.extend(doubled(&cfg, &text, i, &catalog));
        }
    }
    out
}

/// Every problem found in the config at `path` and its zones (empty: all good).
pub fn check(path: &Path) -> Vec<String> {
    check_all(path).problems
}

/// The warning for a TS's zone control bound off loopback with no
/// `api_key`: anyone who reaches it reads its zones' status, and no request
/// can change anything (a state-changing one needs the key there).
fn open_control(ts: &crate::config::TsConfig) -> Option<String> {
    let addr = ts.control.filter(|a| !a.ip().is_loopback())?;
    ts.api_key.is_none().then(|| {
        format!(
            "warning: {addr} is not loopback and there is no api_key: whoever reaches it reads the zones' \
             status, and nothing can be reloaded, notified or transferred through it \
             (set api_key, or bind control to loopback)"
        )
    })
}

/// `dnslb check`: writes every problem and warning of the config at `path`
/// on stderr as the logs are (each a line, or an event: every line of
/// stderr is then JSON), then `PATH: ok` when there is no problem. True
/// when the config is good.
pub fn report(path: &Path, format: LogFormat) -> bool {
    let CheckReport {
        problems,
        warnings,
        notes,
    } = check_all(path);
    for n in &notes {
        logging::to_stderr(format, Level::INFO, n);
    }
    for p in &problems {
        logging::to_stderr(format, Level::ERROR, p);
    }
    for w in &warnings {
        logging::to_stderr(format, Level::WARN, w);
    }
    if !problems.is_empty() {
        return false;
    }
    logging::to_stderr(format, Level::INFO, &format!("{}: ok", path.display()));
    true
}

/// Every problem and warning found in the config at `path` and its zones.
pub fn check_all(path: &Path) -> CheckReport {
    let cfg = match Config::diagnose_file(path) {
        Ok(c) => c,
        Err(errs) => {
            let mut problems: Vec<String> = errs.iter().map(ToString::to_string).collect();
            problems.extend(doubled_in_unchecked(path));
            return CheckReport {
                problems,
                warnings: Vec::new(),
                notes: Vec::new(),
            };
        }
    };
    let mut warnings = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut push = |p: String| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    let partitioned = cfg
        .ls
        .as_ref()
        .filter(|ls| ls.layout == Layout::Partitioned);
    let mut served = Vec::new();
    let mut config_text = None;
    let pooled = cfg.ls.as_ref().filter(|ls| !ls.pool.is_empty());
    let mut tables = Vec::new();
    for (i, tc) in cfg.ts.iter().enumerate() {
        let mut settings = TsSettings::from_config(tc);
        // Its secondary zones' names, as the TS starts with them: a service
        // may not be in one.
        settings.secondaries = TsSettings::from_config_in(&cfg, tc).secondaries;
        let text =
            config_text.get_or_insert_with(|| std::fs::read_to_string(path).unwrap_or_default());
        // The zones loaded as the TS loads them, each file read and parsed
        // once. A load stops at the first problem: when it fails, each file
        // is read again on its own, so every bad line of every file is
        // reported (the load's warnings then dropped, as when no load
        // followed them); when no file has one, the load's error is about
        // the zones the files build together (e.g. a CNAME beside other
        // data). A load that succeeds means no file has a bad line (each
        // file's first is the load's error): the files are not read twice.
        let noted = warnings.len();
        let loaded = ts::load_catalog_noting(&settings, 1, &mut warnings);
        if loaded.is_err() {
            let file_problems = zone_file_problems(&cfg, text, i, &settings);
            if !file_problems.is_empty() {
                warnings.truncate(noted);
                file_problems.into_iter().for_each(&mut push);
                continue;
            }
        }
        match loaded {
            Err(e) => push(e.to_string()),
            Ok(catalog) => {
                // What the TS would refuse at start for its signing: keys
                // unreadable or none active, a zone it cannot sign.
                let now = ts::clock::now_u32();
                for z in catalog
                    .zones()
                    .iter()
                    .filter(|z| policy::signs(&settings, z))
                {
                    match policy::dry_run(&settings, z, now) {
                        Ok(warning) => warnings.extend(warning),
                        Err(e) => push(format!("[[ts]] {}: {e}", settings.name)),
                    }
                }
                doubled(&cfg, text, i, &catalog)
                    .into_iter()
                    .for_each(&mut push);
                if partitioned.is_some_and(|ls| tc.listen.iter().any(|&l| is_backend(ls, l))) {
                    served.push(served_zones(i, &settings, &catalog));
                }
                if pooled.is_some() {
                    tables.push(pool_table(&settings, tc.listen.clone(), &catalog));
                }
            }
        }
    }
    if !served.is_empty() {
        // The rule's problems are the config's: re-read it for the lines.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (i, msg) in split_signed_zones(&served) {
            push(
                cfg.problem_at(&text, &format!("ts.{i}.zones"), msg)
                    .to_string(),
            );
        }
    }
    if let Some(ls) = pooled {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (i, msg) in pool_cover::excluded_holders(ls, &tables) {
            let at = format!("ls.pool.{i}.backends");
            warnings.push(cfg.problem_at(&text, &at, msg).to_string());
        }
    }
    if let Some(ls) = &cfg.ls {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
        for (at, msg) in expiring_certificates(ls, now) {
            warnings.push(cfg.problem_at(&text, at, msg).to_string());
        }
        if let Some(msg) = ls
            .anycast
            .as_ref()
            .and_then(|a| crate::config::probe_warning(a, ls.longest_timeout_ms()))
        {
            warnings.push(cfg.problem_at(&text, "ls.anycast", msg).to_string());
        }
        for msg in crate::ls::identity::probe_warnings(ls) {
            warnings.push(cfg.problem_at(&text, "ls.anycast.query", msg).to_string());
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for (at, msg) in proxy_senders::wide_senders(&cfg) {
        warnings.push(cfg.problem_at(&text, &at, msg).to_string());
    }
    for (i, ts) in cfg.ts.iter().enumerate() {
        if let Some(msg) = open_control(ts) {
            let at = format!("ts.{i}.control");
            warnings.push(cfg.problem_at(&text, &at, msg).to_string());
        }
    }
    let mut notes = Vec::new();
    let ls_ifaces = cfg.ls.iter().filter_map(|ls| ls.xdp.as_ref());
    let xdp = (ls_ifaces
        .flat_map(|x| &x.interfaces)
        .map(|i| ("[ls]".to_owned(), "LS", i)))
    .chain(
        cfg.ts
            .iter()
            .flat_map(|tc| (tc.xdp.iter()).map(|i| (format!("[[ts]] {}", tc.name), "TS", i))),
    );
    for (who, role, iface) in xdp {
        match crate::xdp::preflight::preflight(iface) {
            Ok(n) => notes.push(format!("{who}: xdp: {n}")),
            Err(why) => warnings.push(format!(
                "{who}: xdp: {why}; the {role} will serve it through sockets"
            )),
        }
    }
    // A file named by several table servers is warned about once.
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    CheckReport {
        problems,
        warnings,
        notes,
    }
}

/// A warning for each certificate of `[ls.tls]` and `[ls.https]` whose leaf
/// expires within 14 days of `now` (an expired one is a problem of the
/// config already): the key naming its file, and the message.
fn expiring_certificates(ls: &LsConfig, now: i64) -> Vec<(&'static str, String)> {
    let tls = ls.tls.as_ref().map(|t| ("ls.tls.cert", t.cert.as_path()));
    let https = ls
        .https
        .as_ref()
        .and_then(|h| Some(("ls.https.cert", h.cert.as_deref()?)));
    tls.into_iter()
        .chain(https)
        .filter_map(|(at, file)| {
            let (secs, shown) = crate::config::file_not_after(file)?;
            let days = crate::config::expiry_warning_days(secs, now)?;
            let msg = format!(
                "warning: the certificate {} expires on {shown} (notAfter), in {days} days (less than 14): renew it, then SIGHUP",
                file.display()
            );
            Some((at, msg))
        })
        .collect()
}

/// Every problem of the zone files of the `[[ts]]` at `index` (`settings`
/// made from it), each file on its own: every bad line, as
/// `named-checkzone` lists them. A file that cannot be read is named with
/// the config line that names it and its `[[ts]]` (`text`: the config's).
fn zone_file_problems(
    cfg: &Config,
    text: &str,
    index: usize,
    settings: &TsSettings,
) -> Vec<String> {
    let mut out = Vec::new();
    for (n, file) in settings.zones.iter().enumerate() {
        let problems = zonefile::check_file_all(file, &settings.origin);
        let full = problems.len() >= zonefile::MAX_PROBLEMS;
        for problem in problems {
            let shown = match problem {
                ZoneError::Io { .. } => {
                    let msg = format!("[[ts]] {}: {problem}", settings.name);
                    cfg.problem_at(text, &format!("ts.{index}.zones.{n}"), msg)
                        .to_string()
                }
                other => other.to_string(),
            };
            out.push(shown);
        }
        if full {
            out.push(format!(
                "{}: more problems not shown (the first {} are)",
                file.display(),
                zonefile::MAX_PROBLEMS
            ));
        }
    }
    out
}

/// The zones one table server serves, as the split rule sees them.
#[derive(Debug)]
struct Served {
    /// The `[[ts]]`'s index in the config.
    index: usize,
    /// Its name.
    name: String,
    /// Whether it signs its zones itself (`dnssec`).
    signs: bool,
    /// Each zone it serves, and whether it is signed (by the TS, or pre-signed).
    zones: Vec<(Name, bool)>,
}

/// Whether the LS `ls` sends queries to a TS listening on `listen`.
fn is_backend(ls: &LsConfig, listen: SocketAddr) -> bool {
    ls.backend.iter().any(|b| {
        b.addr == listen
            || (b.addr.port() == listen.port()
                && listen.ip().is_unspecified()
                && b.addr.is_ipv4() == listen.is_ipv4())
    })
}

/// The names a TS listening on `listen` holds, for the pools' rule.
fn pool_table(
    settings: &TsSettings,
    listen: Vec<SocketAddr>,
    catalog: &Catalog,
) -> pool_cover::Table {
    let names = catalog
        .zones()
        .iter()
        .flat_map(|z| z.records().into_iter().map(|(name, _, _)| name))
        .collect();
    pool_cover::Table {
        name: settings.name.clone(),
        listen,
        names,
    }
}

/// The zones of the TS `index` with `settings` (`catalog` loaded from them).
fn served_zones(index: usize, settings: &TsSettings, catalog: &Catalog) -> Served {
    let signs = settings.dnssec.is_some();
    let zones = catalog
        .zones()
        .iter()
        .map(|z| (z.origin().clone(), signs || z.is_presigned()))
        .collect();
    Served {
        index,
        name: settings.name.clone(),
        signs,
        zones,
    }
}

/// The signed zones held in parts by several table servers that are
/// partitions of one partitioned LS (`served`: those table servers): for
/// each, the index of the second `[[ts]]` holding it and what is wrong. Each
/// partition's NSEC or NSEC3 chain would deny the names of the others to a
/// resolver that synthesizes answers from it (RFC 8198).
fn split_signed_zones(served: &[Served]) -> Vec<(usize, String)> {
    let mut origins: Vec<&Name> = Vec::new();
    for s in served {
        for (origin, _) in &s.zones {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    let mut out = Vec::new();
    for origin in origins {
        let holders: Vec<(&Served, bool)> = served
            .iter()
            .filter_map(|s| {
                let zone = s.zones.iter().find(|(o, _)| o == origin)?;
                Some((s, zone.1))
            })
            .collect();
        let signers: Vec<&Served> = holders.iter().filter(|h| h.1).map(|h| h.0).collect();
        if holders.len() < 2 || signers.is_empty() {
            continue;
        }
        let names: Vec<&str> = holders.iter().map(|h| h.0.name.as_str()).collect();
        let why = if signers[0].signs {
            format!("{} signs it (dnssec)", signers[0].name)
        } else {
            format!("{}'s zone file holds its DNSKEY", signers[0].name)
        };
        out.push((
            holders[1].0.index,
            format!(
                "the signed zone {origin} ({why}) is split across partitions: table servers {} \
                 each hold part of it under ls.layout = \"partitioned\", and each one's \
                 NSEC chain would deny the others' names to resolvers (RFC 8198); serve it \
                 whole from one table server, or set ls.layout = \"replicated\"",
                names.join(", ")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(index: usize, signs: bool, zones: &[(&str, bool)]) -> Served {
        Served {
            index,
            name: format!("ts{}", index + 1),
            signs,
            zones: zones
                .iter()
                .map(|(o, s)| (Name::from_ascii(o).unwrap(), *s))
                .collect(),
        }
    }

    /// `dnslb check` names the rule that would drop a forwarded
    /// probe question, at the probe question's line.
    #[test]
    fn check_warns_of_a_rule_that_drops_the_probe_s_question() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[ls]\nmetrics = \"127.0.0.1:5390\"\n\n[ls.anycast]\nquery = \"www.b.test. A\"\n\n\
             [[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n\n\
             [[ls.rule]]\nname = \"nothing-else\"\nmatch = { suffix = [\".\"] }\naction = \"drop\"\n",
        )
        .unwrap();
        let report = check_all(&path);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let w: Vec<&String> = report
            .warnings
            .iter()
            .filter(|w| w.contains("\"nothing-else\" drops the probe's question"))
            .collect();
        assert_eq!(w.len(), 1, "{:?}", report.warnings);
        assert!(w[0].contains("c.toml:5:"), "{}", w[0]);
    }

    #[test]
    fn a_signed_zone_held_by_two_partitions_is_refused_once() {
        let split = split_signed_zones(&[
            served(0, true, &[("example.com.", true)]),
            served(1, false, &[("example.com.", false), ("other.", false)]),
            served(2, false, &[("Example.COM.", false)]),
        ]);
        assert_eq!(split.len(), 1, "{split:?}");
        assert_eq!(split[0].0, 1);
        assert!(
            split[0].1.starts_with(
                "the signed zone example.com. (ts1 signs it (dnssec)) is split across \
                 partitions: table servers ts1, ts2, ts3 each hold part of it"
            ),
            "{}",
            split[0].1
        );
    }

    #[test]
    fn a_pre_signed_zone_counts_and_whole_or_unsigned_zones_pass() {
        let split = split_signed_zones(&[
            served(0, false, &[("a.test.", false)]),
            served(3, false, &[("a.test.", true)]),
        ]);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].0, 3);
        assert!(split[0].1.contains("(ts4's zone file holds its DNSKEY)"));
        // Unsigned zones may be split; a signed zone held whole by one TS is fine.
        let ok = split_signed_zones(&[
            served(0, false, &[("signed.test.", true), ("shared.test.", false)]),
            served(1, false, &[("shared.test.", false), ("b.test.", false)]),
        ]);
        assert_eq!(ok, []);
    }
}

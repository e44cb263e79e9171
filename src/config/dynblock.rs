//! `[[ls.dynamic_block]]`: [`DynBlockConfig`], a rule that blocks a client
//! group (or, for `name-rate`, a name under a suffix) that crosses a
//! threshold over a window, for a while (docs/CONFIG.md (the LS) "Rules and dynamic
//! blocks"); and the rules it must follow ([`problems`]), reported by
//! `validate` at the line of the key. The live control keys of `[ls]`
//! (`api_key`, `control_allow`) are checked here too.

use std::fmt;
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::values::{de_nets, de_opt_name};

/// Most `[[ls.dynamic_block]]` rules (each one a counter column per client
/// group in every worker's table).
pub const MAX_DYN_BLOCKS: usize = 32;
/// The longest `window_s`: one hour.
pub const MAX_WINDOW_S: u64 = 3600;
/// The longest `block_s` (and `dnslb blocks add --for`): one day.
pub const MAX_BLOCK_S: u64 = 86_400;
/// The shortest `api_key` taken: 16 characters.
pub const MIN_API_KEY_LEN: usize = 16;

keyword_enum! {
    /// `kind` of a `[[ls.dynamic_block]]`: what is counted, per client group
    /// (or per name for `name-rate`).
    DynKind, default QueryRate {
        /// Queries per second.
        QueryRate = "query-rate",
        /// Answers with `rcode` per second.
        RcodeRate = "rcode-rate",
        /// The share of answers with `rcode` (at least `min_responses` answers).
        RcodeRatio = "rcode-ratio",
        /// Queries of type `qtype` per second.
        QtypeRate = "qtype-rate",
        /// Answer bytes per second.
        ResponseBytesRate = "response-bytes-rate",
        /// Queries per second for the names under `suffix`, keyed by the
        /// name's label under it (the registered part), whoever sends them.
        NameRate = "name-rate",
    }
}

keyword_enum! {
    /// What a blocked query gets.
    DynAction, default Drop {
        /// No answer.
        Drop = "drop",
        /// REFUSED.
        Refuse = "refuse",
        /// TC=1 over UDP (a real client retries over TCP, which is not
        /// blocked); over TCP, DoT and DoH the query passes.
        Truncate = "truncate",
        /// NXDOMAIN.
        Nxdomain = "nxdomain",
    }
}

keyword_enum! {
    /// `rcode` of an `rcode-rate` or `rcode-ratio` rule.
    DynRcode, default Nxdomain {
        /// NOERROR (0).
        Noerror = "NOERROR",
        /// FORMERR (1).
        Formerr = "FORMERR",
        /// SERVFAIL (2).
        Servfail = "SERVFAIL",
        /// NXDOMAIN (3).
        Nxdomain = "NXDOMAIN",
        /// NOTIMP (4).
        Notimp = "NOTIMP",
        /// REFUSED (5).
        Refused = "REFUSED",
    }
}

impl DynRcode {
    /// The rcode's number in the header.
    pub fn code(self) -> u8 {
        match self {
            Self::Noerror => 0,
            Self::Formerr => 1,
            Self::Servfail => 2,
            Self::Nxdomain => 3,
            Self::Notimp => 4,
            Self::Refused => 5,
        }
    }
}

/// `[[ls.dynamic_block]]`: one dynamic block rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynBlockConfig {
    /// Name in logs, metrics and the list of blocks (unique, non-empty).
    pub name: String,
    /// What is counted. \[query-rate\]
    #[serde(default)]
    pub kind: DynKind,
    /// The answer code counted by `rcode-rate` and `rcode-ratio` (needed there only).
    #[serde(default)]
    pub rcode: Option<DynRcode>,
    /// The query type counted by `qtype-rate` (needed there only).
    #[serde(default, deserialize_with = "de_qtype")]
    pub qtype: Option<RecordType>,
    /// The suffix of `name-rate` (needed there only): its name is keyed by the
    /// label under it (the registered part).
    #[serde(default, deserialize_with = "de_opt_name")]
    pub suffix: Option<Name>,
    /// Fewest answers in a window before `rcode-ratio` judges. \[20\]
    #[serde(default = "default_min_responses")]
    pub min_responses: u64,
    /// Per second averaged over `window_s` (bytes per second for
    /// `response-bytes-rate`); a share in (0, 1] for `rcode-ratio`.
    pub threshold: f64,
    /// The window the threshold is judged over, in seconds. \[10\]
    #[serde(default = "default_window_s")]
    pub window_s: u64,
    /// How long a block lasts, in seconds. \[60\]
    #[serde(default = "default_block_s")]
    pub block_s: u64,
    /// What a blocked query gets. \[drop\]
    #[serde(default)]
    pub action: DynAction,
    /// Over this (below `threshold`), a line is logged and nothing blocked.
    /// \[none\]
    #[serde(default)]
    pub warn_threshold: Option<f64>,
    /// Client networks never blocked by this rule (a bare IP is a /32 or /128).
    /// \[none\]
    #[serde(default, deserialize_with = "de_nets")]
    pub exclude: Vec<IpNet>,
    /// Its blocks made, warnings and blocks lifted also go to dnstap
    /// (`[ls.dnstap]`), as a CLIENT_QUERY whose `extra` says what happened.
    /// \[false\]
    #[serde(default)]
    pub log: bool,
}

fn default_min_responses() -> u64 {
    20
}

fn default_window_s() -> u64 {
    10
}

fn default_block_s() -> u64 {
    60
}

impl DynBlockConfig {
    /// A rule `name` of `kind` over `threshold`, every other key at its default.
    pub fn new(name: &str, kind: DynKind, threshold: f64) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            rcode: None,
            qtype: None,
            suffix: None,
            min_responses: default_min_responses(),
            threshold,
            window_s: default_window_s(),
            block_s: default_block_s(),
            action: DynAction::default(),
            warn_threshold: None,
            exclude: Vec::new(),
            log: false,
        }
    }
}

impl fmt::Display for DynBlockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.name, self.kind)?;
        if let Some(r) = self.rcode {
            write!(f, " {r}")?;
        }
        if let Some(t) = self.qtype {
            write!(f, " {t}")?;
        }
        if let Some(s) = &self.suffix {
            write!(f, " under {s}")?;
        }
        write!(f, " > {} over {} s)", self.threshold, self.window_s)
    }
}

/// Deserializes an optional record type (`"ANY"`, `"TXT"`, any case).
fn de_qtype<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RecordType>, D::Error> {
    let text = String::deserialize(deserializer)?;
    RecordType::from_str(&text.to_ascii_uppercase())
        .map(Some)
        .map_err(|_| de::Error::custom(format!("unknown record type {text:?}")))
}

/// Why an rcode rule may not count SERVFAIL: a SERVFAIL is the backends'
/// failure, not the client's doing (a load balancer does not block its
/// clients because a backend broke); the LS passes one on only when it is
/// the authority's own (AA=1: no live endpoint) and no backend answered.
const SERVFAIL_REFUSED: &str = "SERVFAIL is not counted: a backend's SERVFAIL is passed on \
     only when it is authoritative (AA=1, a service with no live endpoint) and no backend gave \
     a useful answer (else the LS asks the next backend, and answers its own SERVFAIL when every \
     backend failed); either way it is no doing of the client's, so no client is blocked for it; \
     count NXDOMAIN, REFUSED or the client's queries (query-rate) instead";

/// The rules of `[[ls.dynamic_block]]`, `api_key` and `control_allow`: each
/// problem as (the key's dotted path, what is wrong), for `validate` to
/// place at its line.
pub(super) fn problems(
    rules: &[DynBlockConfig],
    api_key: Option<&str>,
    control_allow: &[IpNet],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |path: String, msg: String| out.push((path, msg));
    if rules.len() > MAX_DYN_BLOCKS {
        push(
            "ls.dynamic_block".into(),
            format!("at most {MAX_DYN_BLOCKS} rules, got {}", rules.len()),
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = |k: &str| format!("ls.dynamic_block.{i}.{k}");
        let name = rule.name.as_str();
        if name.trim().is_empty() {
            push(key("name"), "a dynamic block name must not be empty".into());
        } else if seen.contains(&name) {
            push(
                key("name"),
                format!("duplicate dynamic block name {name:?}"),
            );
        }
        seen.push(name);
        let kind = rule.kind;
        let needs = |what: &str| format!("{kind} needs {what}");
        let only = |what: &str, of: &str| format!("{what} is for {of} rules only, not {kind}");
        let ratio = kind == DynKind::RcodeRatio;
        match (
            rule.rcode.is_some(),
            matches!(kind, DynKind::RcodeRate | DynKind::RcodeRatio),
        ) {
            (false, true) => push(key("rcode"), needs("rcode (e.g. \"NXDOMAIN\")")),
            (true, false) => push(key("rcode"), only("rcode", "rcode-rate and rcode-ratio")),
            (true, true) if rule.rcode == Some(DynRcode::Servfail) => {
                push(key("rcode"), SERVFAIL_REFUSED.into());
            }
            _ => {}
        }
        match (rule.qtype.is_some(), kind == DynKind::QtypeRate) {
            (false, true) => push(key("qtype"), needs("qtype (e.g. \"ANY\")")),
            (true, false) => push(key("qtype"), only("qtype", "qtype-rate")),
            _ => {}
        }
        match (&rule.suffix, kind == DynKind::NameRate) {
            (None, true) => push(key("suffix"), needs("suffix (e.g. \"example.com\")")),
            (Some(_), false) => push(key("suffix"), only("suffix", "name-rate")),
            _ => {}
        }
        if kind == DynKind::NameRate && !rule.exclude.is_empty() {
            push(
                key("exclude"),
                "a name-rate rule blocks names, not clients: exclude does not apply".into(),
            );
        }
        let t = rule.threshold;
        if !(t.is_finite() && t > 0.0) {
            push(key("threshold"), format!("must be above 0, got {t}"));
        } else if ratio && t > 1.0 {
            push(
                key("threshold"),
                format!("an rcode-ratio threshold is a share in (0, 1], got {t}"),
            );
        }
        if let Some(w) = rule.warn_threshold
            && !(w.is_finite() && w > 0.0 && w < t)
        {
            push(
                key("warn_threshold"),
                format!("must be above 0 and below threshold ({t}), got {w}"),
            );
        }
        if !(1..=MAX_WINDOW_S).contains(&rule.window_s) {
            push(
                key("window_s"),
                format!("must be in [1, {MAX_WINDOW_S}], got {}", rule.window_s),
            );
        }
        if !(1..=MAX_BLOCK_S).contains(&rule.block_s) {
            push(
                key("block_s"),
                format!("must be in [1, {MAX_BLOCK_S}], got {}", rule.block_s),
            );
        }
        if ratio && rule.min_responses == 0 {
            push(key("min_responses"), "must be at least 1".into());
        }
    }
    if let Some(k) = api_key
        && (k.chars().count() < MIN_API_KEY_LEN || k.trim() != k)
    {
        push(
            "ls.api_key".into(),
            format!(
                "must be at least {MIN_API_KEY_LEN} characters, without leading or trailing white space"
            ),
        );
    }
    if control_allow.is_empty() {
        push(
            "ls.control_allow".into(),
            "needs at least one network (loopback is [\"127.0.0.0/8\", \"::1/128\"])".into(),
        );
    }
    out
}

/// `control_allow` when omitted: loopback.
pub(super) fn default_control_allow() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: DynKind) -> DynBlockConfig {
        DynBlockConfig::new("r", kind, 10.0)
    }

    fn said_of(rules: &[DynBlockConfig], key: Option<&str>, allow: &[IpNet]) -> Vec<String> {
        problems(rules, key, allow)
            .into_iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect()
    }

    fn said(rules: Vec<DynBlockConfig>) -> Vec<String> {
        said_of(&rules, None, &default_control_allow())
    }

    #[test]
    fn each_kind_needs_its_own_key_and_no_other() {
        let bare: Vec<_> = DynKind::ALL.iter().map(|&k| rule(k)).collect();
        let got = said(bare);
        assert_eq!(
            got,
            [
                "ls.dynamic_block.1.name: duplicate dynamic block name \"r\"",
                "ls.dynamic_block.1.rcode: rcode-rate needs rcode (e.g. \"NXDOMAIN\")",
                "ls.dynamic_block.2.name: duplicate dynamic block name \"r\"",
                "ls.dynamic_block.2.rcode: rcode-ratio needs rcode (e.g. \"NXDOMAIN\")",
                "ls.dynamic_block.2.threshold: an rcode-ratio threshold is a share in (0, 1], got 10",
                "ls.dynamic_block.3.name: duplicate dynamic block name \"r\"",
                "ls.dynamic_block.3.qtype: qtype-rate needs qtype (e.g. \"ANY\")",
                "ls.dynamic_block.4.name: duplicate dynamic block name \"r\"",
                "ls.dynamic_block.5.name: duplicate dynamic block name \"r\"",
                "ls.dynamic_block.5.suffix: name-rate needs suffix (e.g. \"example.com\")",
            ]
        );
        let mut q = rule(DynKind::QueryRate);
        q.rcode = Some(DynRcode::Servfail);
        q.qtype = Some(RecordType::ANY);
        q.suffix = Some(Name::root());
        assert_eq!(
            said(vec![q]),
            [
                "ls.dynamic_block.0.rcode: rcode is for rcode-rate and rcode-ratio rules only, not query-rate",
                "ls.dynamic_block.0.qtype: qtype is for qtype-rate rules only, not query-rate",
                "ls.dynamic_block.0.suffix: suffix is for name-rate rules only, not query-rate",
            ]
        );
    }

    #[test]
    fn thresholds_windows_and_keys_are_bounded() {
        let mut r = rule(DynKind::QueryRate);
        r.threshold = 0.0;
        r.window_s = 0;
        r.block_s = MAX_BLOCK_S + 1;
        r.warn_threshold = Some(5.0);
        assert_eq!(
            said_of(&[r], Some("short"), &[]),
            [
                "ls.dynamic_block.0.threshold: must be above 0, got 0",
                "ls.dynamic_block.0.warn_threshold: must be above 0 and below threshold (0), got 5",
                "ls.dynamic_block.0.window_s: must be in [1, 3600], got 0",
                "ls.dynamic_block.0.block_s: must be in [1, 86400], got 86401",
                "ls.api_key: must be at least 16 characters, without leading or trailing white space",
                "ls.control_allow: needs at least one network (loopback is [\"127.0.0.0/8\", \"::1/128\"])",
            ]
        );
        for kind in [DynKind::RcodeRate, DynKind::RcodeRatio] {
            let mut sf = rule(kind);
            sf.rcode = Some(DynRcode::Servfail);
            sf.threshold = 0.5;
            let said = said(vec![sf]);
            assert_eq!(said.len(), 1, "{said:?}");
            assert!(
                said[0].starts_with("ls.dynamic_block.0.rcode: SERVFAIL is not counted: "),
                "{said:?}"
            );
        }
        let mut ok = rule(DynKind::RcodeRatio);
        ok.rcode = Some(DynRcode::Nxdomain);
        ok.threshold = 0.5;
        ok.warn_threshold = Some(0.25);
        assert!(said(vec![ok]).is_empty());
    }
}

//! `[ls.anycast]`: [`AnycastConfig`], how an LS's health is tied to a route
//! announcement by BIRD (docs/DEPLOY.md "A fleet", docs/DEPLOY.md "Anycast"): the
//! LS's own part (`drain_s`: how long it keeps answering after SIGTERM turned
//! `/ready` to 503) and `dnslb anycast`'s (the probe: what it asks, how often,
//! its hysteresis, and which BIRD protocols it enables and disables through
//! which control socket), and the rules those keys follow.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::values::{ProbeQuestion, de_opt_addr};

/// `[ls.anycast]`: the table omitted = no anycast (SIGTERM stops at once, as
/// without a fleet).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnycastConfig {
    /// After SIGTERM: `/ready` turns 503 at once (the probe withdraws the
    /// route), then the LS keeps answering this many seconds while the routers
    /// converge, then stops. \[5\]
    pub drain_s: u64,
    /// Where the probe sends its DNS query. \[the first `ls.listen` address,
    /// loopback for an unspecified one\]
    #[serde(deserialize_with = "de_opt_addr")]
    pub probe: Option<SocketAddr>,
    /// The probe's question, `"NAME TYPE"`; `id.server. TXT` and
    /// `hostname.bind. TXT` are asked in class CH and answered by the LS
    /// itself. \["id.server. TXT"\]
    pub query: ProbeQuestion,
    /// One probe round (a DNS query and `GET /ready`) this often, in ms. \[200\]
    pub interval_ms: u64,
    /// One probe's timeout, in ms (below `interval_ms`). \[150\]
    pub timeout_ms: u64,
    /// Rounds in a row that timed out which withdraw the route (a refused
    /// port or a 503 withdraws at once). \[2\]
    pub fall: u32,
    /// Good rounds in a row which announce it. \[3\]
    pub rise: u32,
    /// BIRD's control socket (`bird -s`). \[/run/bird/bird.ctl\]
    pub bird_socket: PathBuf,
    /// The BIRD protocols enabled while the LS is healthy and disabled
    /// otherwise: the static protocols holding the service /32 and /128.
    /// \[["anycast4", "anycast6"]\]
    pub protocols: Vec<String>,
}

impl Default for AnycastConfig {
    fn default() -> Self {
        Self {
            drain_s: 5,
            probe: None,
            query: ProbeQuestion::id_server(),
            interval_ms: 200,
            timeout_ms: 150,
            fall: 2,
            rise: 3,
            bird_socket: PathBuf::from("/run/bird/bird.ctl"),
            protocols: vec!["anycast4".into(), "anycast6".into()],
        }
    }
}

/// The longest `drain_s`: past it a stop would outlive any service manager's
/// patience (systemd's default is 90 s).
pub const DRAIN_S_MAX: u64 = 60;

/// The problems of `a` (`[ls.anycast]`) in an `[ls]` whose metrics listener
/// is `metrics`: each as (key, message).
pub(super) fn problems(
    a: &AnycastConfig,
    metrics: Option<SocketAddr>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if metrics.is_none() {
        out.push((
            "ls.anycast",
            "needs ls.metrics: the probe reads /ready there, which turns 503 the moment a stop begins".into(),
        ));
    }
    if a.drain_s > DRAIN_S_MAX {
        out.push((
            "ls.anycast.drain_s",
            format!("at most {DRAIN_S_MAX} seconds"),
        ));
    }
    if a.interval_ms == 0 {
        out.push(("ls.anycast.interval_ms", "must be at least 1".into()));
    }
    if a.timeout_ms == 0 || a.timeout_ms >= a.interval_ms {
        out.push((
            "ls.anycast.timeout_ms",
            "must be at least 1 and below interval_ms (one round ends before the next starts)"
                .into(),
        ));
    }
    if a.fall == 0 {
        out.push(("ls.anycast.fall", "must be at least 1".into()));
    }
    if a.rise == 0 {
        out.push(("ls.anycast.rise", "must be at least 1".into()));
    }
    if a.protocols.is_empty() {
        out.push(("ls.anycast.protocols", "names no BIRD protocol".into()));
    }
    for p in &a.protocols {
        let ok = !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.starts_with(|c: char| c.is_ascii_alphabetic());
        if !ok {
            out.push((
                "ls.anycast.protocols",
                format!("{p:?} is not a BIRD protocol name (a letter, then letters, digits, _)"),
            ));
        }
    }
    out
}

/// The longest `identity`: one TXT string.
const IDENTITY_MAX: usize = 255;

/// The problem of `[ls] identity`, if any: 1 to 255 bytes of printable
/// text (one TXT string; `hide_identity` is the way to tell nothing).
/// As (key, message).
pub(super) fn identity_problem(identity: Option<&str>) -> Option<(String, String)> {
    let id = identity?;
    let printable = id.chars().all(|c| !c.is_control());
    (id.is_empty() || id.len() > IDENTITY_MAX || !printable).then(|| {
        let msg = format!(
            "must be 1 to {IDENTITY_MAX} bytes of printable text, got {} bytes (to tell nothing, set hide_identity = true)",
            id.len()
        );
        ("ls.identity".to_owned(), msg)
    })
}

/// The warning for `a` in an `[ls]` whose answer deadline is `ls_timeout_ms`:
/// a question the LS forwards to its backends (not `id.server.`/
/// `hostname.bind.` TXT) waits for them, so a hung or dead backend makes
/// every LS in front of it miss the probe and be withdrawn.
pub fn probe_warning(a: &AnycastConfig, ls_timeout_ms: u64) -> Option<String> {
    let q = &a.query;
    (!q.is_identity()).then(|| {
        format!(
            "warning: the probe asks \"{q}\", which the LS forwards to its backends: a hung or dead backend (whose answer the LS waits up to its timeout_ms, {ls_timeout_ms} ms, for) fails the probe (timeout_ms {}) and withdraws every LS in front of it; ask \"id.server. TXT\" (the default), which the LS answers itself",
            a.timeout_ms
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Option<SocketAddr> {
        Some("127.0.0.1:5390".parse().unwrap())
    }

    #[test]
    fn the_defaults_are_valid_and_withdraw_within_a_second() {
        let a = AnycastConfig::default();
        assert!(problems(&a, metrics()).is_empty());
        // The worst case of timeouts only: the last good round just before the
        // failure, then `fall` rounds that each end by their timeout.
        let worst = a.interval_ms * u64::from(a.fall) + a.timeout_ms;
        assert!(worst < 1000, "{worst} ms");
    }

    #[test]
    fn the_file_is_checked_with_lines_and_the_table_read() {
        let path = std::path::Path::new("c.toml");
        let text = |metrics: &str| {
            format!(
                "[ls]\n{metrics}\n[ls.anycast]\ndrain_s = 3\nprotocols = [\"a4\"]\n\n\
                 [[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n"
            )
        };
        let cfg =
            crate::config::Config::from_toml(&text("metrics = \"127.0.0.1:5390\""), path).unwrap();
        let a = cfg.ls.as_ref().unwrap().anycast.as_ref().unwrap();
        assert_eq!(
            (a.drain_s, a.interval_ms, &a.protocols[..]),
            (3, 200, &["a4".to_owned()][..])
        );
        let err = crate::config::Config::from_toml(&text(""), path)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:3:") && err.contains("needs ls.metrics"),
            "{err}"
        );
        let err = crate::config::Config::from_toml("[ls]\n[ls.anycast]\ndrain = 3\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key 'drain'"), "{err}");
    }

    #[test]
    fn a_relative_bird_socket_is_in_the_config_folder_and_the_probe_asks_the_ls_itself() {
        let text = "[ls]\nmetrics = \"127.0.0.1:5390\"\n[ls.anycast]\nbird_socket = \"bird.ctl\"\n\n\
                    [[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n";
        let path = std::path::Path::new("/etc/dnslb/c.toml");
        let cfg = crate::config::Config::from_toml(text, path).unwrap();
        let a = cfg.ls.as_ref().unwrap().anycast.as_ref().unwrap();
        assert_eq!(a.bird_socket, std::path::Path::new("/etc/dnslb/bird.ctl"));
        // The default question is the LS's own: no warning; a question
        // its backends answer: warned, with the deadlines.
        assert_eq!(a.query.to_string(), "id.server. TXT");
        assert!(a.query.is_identity());
        assert_eq!(probe_warning(a, 1500), None);
        let soa = AnycastConfig {
            query: ". SOA".parse().unwrap(),
            ..a.clone()
        };
        let w = probe_warning(&soa, 1500).unwrap();
        assert!(w.contains("1500 ms") && w.contains("timeout_ms 150"), "{w}");
    }

    #[test]
    fn an_identity_is_one_printable_txt_string() {
        let path = std::path::Path::new("c.toml");
        let text = |v: &str| {
            format!(
                "[ls]\nidentity = {v}\nhide_identity = true\n\
                 [[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n"
            )
        };
        let cfg = crate::config::Config::from_toml(&text("\"ls-1.example\""), path).unwrap();
        let ls = cfg.ls.unwrap();
        assert_eq!(ls.identity.as_deref(), Some("ls-1.example"));
        assert!(ls.hide_identity);
        let long = format!("\"{}\"", "a".repeat(256));
        for bad in ["\"\"", "\"a\\nb\"", long.as_str()] {
            let err = crate::config::Config::from_toml(&text(bad), path)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.toml:2: ls.identity: must be 1 to 255"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let a = AnycastConfig {
            drain_s: 600,
            timeout_ms: 200,
            fall: 0,
            protocols: vec!["any cast".into()],
            ..AnycastConfig::default()
        };
        let keys: Vec<&str> = problems(&a, None).iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "ls.anycast",
                "ls.anycast.drain_s",
                "ls.anycast.timeout_ms",
                "ls.anycast.fall",
                "ls.anycast.protocols"
            ]
        );
    }
}

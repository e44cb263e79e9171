//! What a reload cannot apply: the `[ls]` keys read only at start
//! ([`ls_restart_only_changes`]), the `[[ts]]` whose child read them at start
//! ([`ts_restart_changes`]) and the `[[key]]` a `[[ts]]` names, which its
//! child read at start too ([`key_restart_changes`]; a `secret_file`'s
//! content is reread on each reload). Pure comparisons (free functions over
//! the old and the new table); the caller warns.
//!
//! Each table's keys are listed once here, each with how a reload takes it
//! (`ls_keys::RESTART_ONLY` / `RELOADED` and the policy keys, `ts_keys::RESTART` / `TS_RELOADED`,
//! `key_keys::RESTART`); a unit test holds each list to the keys serde accepts, so a
//! key added to a struct without its line here fails it.

use super::{Config, KeyConfig, LsConfig, TsConfig};

/// A key's name and whether it differs between an old and a new table.
type Differs<T> = (&'static str, fn(&T, &T) -> bool);

/// `[(key, |old, new| old.key != new.key), ...]` for the keys named.
macro_rules! differs {
    ($t:ty: $($key:ident),+ $(,)?) => {
        &[$((stringify!($key), (|o: &$t, n: &$t| o.$key != n.$key) as fn(&$t, &$t) -> bool)),+]
    };
}

/// The `[ls]` keys, each with how a reload takes it.
mod ls_keys {
    use super::{Differs, LsConfig, doh_bound, dot_bound};

    /// The `[ls]` keys only read at start (sockets, threads, the in-flight cap), each
    /// with what of it is bound then: `[ls.tls]`'s and `[ls.https]`'s certificate files
    /// are re-read on reload, the rest of them is not.
    pub(super) const RESTART_ONLY: &[Differs<LsConfig>] = &[
        ("listen", |o, n| o.listen != n.listen),
        ("workers", |o, n| o.workers != n.workers),
        ("metrics", |o, n| o.metrics != n.metrics),
        ("max_inflight", |o, n| o.max_inflight != n.max_inflight),
        ("tls", |o, n| dot_bound(o) != dot_bound(n)),
        ("https", |o, n| doh_bound(o) != doh_bound(n)),
        ("quic", |o, n| {
            let bound = |c: &LsConfig| c.quic.as_ref().map(|q| q.listen.clone());
            bound(o) != bound(n)
        }),
        ("dnstap", |o, n| o.dnstap != n.dnstap),
        ("anycast", |o, n| o.anycast != n.anycast),
        ("xdp", |o, n| o.xdp != n.xdp),
        ("cookie_secret", |o, n| o.cookie_secret != n.cookie_secret),
        ("proxy_from", |o, n| o.proxy_from != n.proxy_from),
    ];

    /// The `[ls]` keys a reload applies, besides the policy keys
    /// ([`PolicyConfig::KEYS`](super::PolicyConfig::KEYS)). Nothing reads it but the
    /// test that holds these lists to the keys of `[ls]`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) const RELOADED: &[&str] = &[
        "synth_ttl",
        "try_timeout_ms",
        "hedge_delay_ms",
        "hedge_percentile",
        "hedge_min_ms",
        "hedge_max_ms",
        "hedge_budget_pct",
        "backend_limit_min",
        "backend_limit_max",
        "allow",
        "rate_limit_qps",
        "rate_limit_v6_prefix",
        "sticky_size",
        "cache",
        "health",
        "backend",
        "pool",
        "rule",
        "response_rule",
        "api_key",
        "control_allow",
        "ecs",
        "identity",
        "hide_identity",
        "dynamic_block",
    ];
}

/// The `[ls]` keys that differ between the running `old` and the reloaded
/// `new` but are only read at start (sockets, threads, the in-flight cap).
pub fn ls_restart_only_changes(old: &LsConfig, new: &LsConfig) -> Vec<&'static str> {
    changed(ls_keys::RESTART_ONLY, old, new)
}

/// What of `[ls.tls]` is bound at start: its addresses.
fn dot_bound(c: &LsConfig) -> Option<Vec<std::net::SocketAddr>> {
    c.tls.as_ref().map(|t| t.listen.clone())
}

/// What of `[ls.https]` is bound at start: its addresses, its path, whether it
/// serves TLS, and whether HTTP/3 too.
fn doh_bound(c: &LsConfig) -> Option<(Vec<std::net::SocketAddr>, String, bool, bool)> {
    let h = c.https.as_ref()?;
    Some((h.listen.clone(), h.path.clone(), h.cert.is_some(), h.http3))
}

/// The keys of `keys` whose values differ between `old` and `new`, in list order.
fn changed<T>(keys: &[Differs<T>], old: &T, new: &T) -> Vec<&'static str> {
    keys.iter()
        .filter(|(_, differs)| differs(old, new))
        .map(|(key, _)| *key)
        .collect()
}

/// The `[[ts]]` keys, each with how a reload takes it.
mod ts_keys {
    use super::{Differs, TsConfig};

    /// The `[[ts]]` keys, each read by its child at start (`name` aside: it says
    /// which `[[ts]]` is which); `quic`'s certificate and key files' content is
    /// reread on reload, their paths are not.
    pub(super) const RESTART: &[Differs<TsConfig>] = differs!(TsConfig:
        listen, origin, ttl, on_miss, axfr_allow, xfr_key, notify, ixfr_history,
        fault, workers, metrics, nsid, dnssec, dnstap, service, state_dir, catalog,
        catalog_from, xdp, cookie_secret,
        control, api_key, control_allow, rrl, quic, proxy_from,
    );
}

/// The `[[ts]]` keys a reload applies: `zones` (files and secondary zones
/// added, removed or changed, by the child that rereads the config). Nothing
/// reads it but the test that holds these lists to the keys of `[[ts]]`.
#[cfg_attr(not(test), allow(dead_code))]
const TS_RELOADED: &[&str] = &["zones"];

/// The `[[key]]` keys, each with how a reload takes it.
mod key_keys {
    use super::{Differs, KeyConfig};

    /// The `[[key]]` keys a TS child read at start (`name` aside: it says which
    /// `[[key]]` is which); a `secret_file`'s content is reread on reload.
    pub(super) const RESTART: &[Differs<KeyConfig>] =
        differs!(KeyConfig: secret, algorithm, secret_file);
}

/// The `[[ts]]` that differ between `old` and `new` (by name), each with the
/// keys that changed, or added / removed.
pub fn ts_restart_changes(old: &[TsConfig], new: &[TsConfig]) -> Vec<String> {
    let mut out = Vec::new();
    for o in old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            out.push(format!("{} removed", o.name));
            continue;
        };
        let keys = changed(ts_keys::RESTART, o, n);
        if !keys.is_empty() {
            out.push(format!("{} ({})", o.name, keys.join(", ")));
        }
    }
    for n in new {
        if !old.iter().any(|o| o.name == n.name) {
            out.push(format!("{} added", n.name));
        }
    }
    out
}

/// The `[[ts]]` (by name, in both) whose transfer key, the `[[key]]` its
/// `xfr_key` names, differs between `old` and `new` in what its child
/// read at start: an inline `secret`, the `algorithm`, the `secret_file`
/// path. Each as `ts ([[key]] "name": secret, ...)`; a `secret_file`
/// whose content alone changed is not one (reread on reload).
pub fn key_restart_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for o in &old.ts {
        let Some(n) = new.ts_by_name(&o.name) else {
            continue;
        };
        let (Some(ok), Some(nk)) = (old.xfr_key_of(o), new.xfr_key_of(n)) else {
            continue;
        };
        let fields = changed(key_keys::RESTART, ok, nk);
        if !fields.is_empty() {
            out.push(format!(
                "{} ([[key]] {:?}: {})",
                o.name,
                nk.name,
                fields.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::tests::toml_keys;
    use crate::config::{Denial, Dnssec, DnssecAlgorithm, PolicyConfig};

    /// `keys`, sorted, failing on one listed twice.
    fn sorted<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        let len = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), len, "a key listed twice: {keys:?}");
        keys
    }

    #[test]
    fn every_ls_key_is_restart_only_or_reloaded() {
        let listed = ls_keys::RESTART_ONLY
            .iter()
            .map(|(key, _)| *key)
            .chain(ls_keys::RELOADED.iter().copied())
            .chain(PolicyConfig::KEYS.iter().copied());
        let keys = toml_keys::<LsConfig>();
        assert_eq!(sorted(listed), sorted(keys.iter().map(String::as_str)));
    }

    #[test]
    fn every_ts_and_key_key_is_compared_on_reload() {
        let listed = ts_keys::RESTART.iter().map(|(key, _)| *key);
        let keys = toml_keys::<TsConfig>();
        assert_eq!(
            sorted(listed.chain(["name"]).chain(TS_RELOADED.iter().copied())),
            sorted(keys.iter().map(String::as_str))
        );
        let listed = key_keys::RESTART.iter().map(|(key, _)| *key);
        let keys = toml_keys::<KeyConfig>();
        assert_eq!(
            sorted(listed.chain(["name"])),
            sorted(keys.iter().map(String::as_str))
        );
    }

    #[test]
    fn restart_only_keys_are_named() {
        let old = LsConfig::default();
        let mut new = old.clone();
        new.timeout_ms += 1;
        new.rate_limit_qps = 7;
        assert!(ls_restart_only_changes(&old, &new).is_empty());
        new.metrics = Some("127.0.0.1:9".parse().unwrap());
        assert_eq!(ls_restart_only_changes(&old, &new), ["metrics"]);
        new.workers = old.workers + 1;
        new.listen = vec!["127.0.0.1:5".parse().unwrap()];
        new.max_inflight = old.max_inflight + 1;
        assert_eq!(
            ls_restart_only_changes(&old, &new),
            ["listen", "workers", "metrics", "max_inflight"]
        );
    }

    #[test]
    fn ts_changes_name_the_server_and_keys() {
        let ts = |name: &str, port: u16| {
            TsConfig::new(
                name,
                SocketAddr::from(([127, 0, 0, 1], port)),
                vec!["a.txt".into()],
            )
        };
        let old = vec![ts("ts1", 5301), ts("ts2", 5302)];
        assert!(ts_restart_changes(&old, &old).is_empty());
        let mut new = vec![ts("ts1", 5311), ts("ts3", 5303)];
        new[0].ttl = 60;
        assert_eq!(
            ts_restart_changes(&old, &new),
            ["ts1 (listen, ttl)", "ts2 removed", "ts3 added"]
        );
        let mut signed = old.clone();
        signed[1].dnssec = Some(Dnssec {
            keys: "keys".into(),
            algorithm: DnssecAlgorithm::default(),
            denial: Denial::default(),
        });
        assert_eq!(ts_restart_changes(&old, &signed), ["ts2 (dnssec)"]);
    }

    #[test]
    fn a_changed_inline_secret_is_named_as_restart_only() {
        const A: &str = "kQn0sD3l9Ui1u6m2sXJ1mR0bJx6g7h8Zq2yq1cV4aUk=";
        const B: &str = "3q2+7wAAAAARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4g=";
        let config = |secret: &str, algorithm: &str| {
            let text = format!(
                "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\nxfr_key = \"xfr\"\n\n\
                 [[key]]\nname = \"xfr\"\nalgorithm = \"{algorithm}\"\nsecret = \"{secret}\"\n"
            );
            Config::from_toml(&text, std::path::Path::new("c.toml")).unwrap()
        };
        let old = config(A, "hmac-sha256");
        assert!(key_restart_changes(&old, &old).is_empty());
        assert_eq!(
            key_restart_changes(&old, &config(B, "hmac-sha256")),
            ["ts1 ([[key]] \"xfr\": secret)"]
        );
        assert_eq!(
            key_restart_changes(&old, &config(B, "hmac-sha384")),
            ["ts1 ([[key]] \"xfr\": secret, algorithm)"]
        );
    }
}

//! What a reload cannot apply: the `[ls]` keys read only at start
//! ([`LsConfig::restart_only_changes`]), the `[[ts]]` whose child read them at start
//! ([`TsConfig::restart_changes`]) and the `[[key]]` a `[[ts]]` names, which its
//! child read at start too ([`Config::key_restart_changes`]; a `secret_file`'s
//! content is reread on each reload). Pure comparisons; the caller warns.

use super::{Config, LsConfig, TsConfig};

impl LsConfig {
    /// The `[ls]` keys that differ between the running `self` and the reloaded
    /// `new` but are only read at start (sockets, threads, the in-flight cap).
    pub fn restart_only_changes(&self, new: &LsConfig) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.listen != new.listen {
            keys.push("listen");
        }
        if self.workers != new.workers {
            keys.push("workers");
        }
        if self.metrics != new.metrics {
            keys.push("metrics");
        }
        if self.max_inflight != new.max_inflight {
            keys.push("max_inflight");
        }
        let dot = |c: &LsConfig| c.tls.as_ref().map(|t| t.listen.clone());
        if dot(self) != dot(new) {
            keys.push("tls");
        }
        // The certificate files are re-read on reload; the rest is bound at start.
        let doh = |c: &LsConfig| {
            let h = c.https.as_ref()?;
            Some((h.listen.clone(), h.path.clone(), h.cert.is_some()))
        };
        if doh(self) != doh(new) {
            keys.push("https");
        }
        if self.dnstap != new.dnstap {
            keys.push("dnstap");
        }
        keys
    }
}

impl TsConfig {
    /// The `[[ts]]` that differ between `old` and `new` (by name), each with the
    /// keys that changed, or added / removed.
    pub fn restart_changes(old: &[TsConfig], new: &[TsConfig]) -> Vec<String> {
        let mut out = Vec::new();
        for o in old {
            let Some(n) = new.iter().find(|n| n.name == o.name) else {
                out.push(format!("{} removed", o.name));
                continue;
            };
            let mut keys = Vec::new();
            let mut diff = |k: &'static str, differs: bool| {
                if differs {
                    keys.push(k);
                }
            };
            diff("listen", o.listen != n.listen);
            diff("zones", o.zones != n.zones);
            diff("origin", o.origin != n.origin);
            diff("ttl", o.ttl != n.ttl);
            diff("on_miss", o.on_miss != n.on_miss);
            diff("axfr_allow", o.axfr_allow != n.axfr_allow);
            diff("xfr_key", o.xfr_key != n.xfr_key);
            diff("notify", o.notify != n.notify);
            diff("ixfr_history", o.ixfr_history != n.ixfr_history);
            diff("fault", o.fault != n.fault);
            diff("workers", o.workers != n.workers);
            diff("metrics", o.metrics != n.metrics);
            diff("nsid", o.nsid != n.nsid);
            diff("dnstap", o.dnstap != n.dnstap);
            if !keys.is_empty() {
                out.push(format!("{} ({})", o.name, keys.join(", ")));
            } else if o != n {
                out.push(o.name.clone());
            }
        }
        for n in new {
            if !old.iter().any(|o| o.name == n.name) {
                out.push(format!("{} added", n.name));
            }
        }
        out
    }
}

impl Config {
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
            let fields: Vec<&str> = [
                ("secret", ok.secret != nk.secret),
                ("algorithm", ok.algorithm != nk.algorithm),
                ("secret_file", ok.secret_file != nk.secret_file),
            ]
            .into_iter()
            .filter_map(|(f, differs)| differs.then_some(f))
            .collect();
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
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn restart_only_keys_are_named() {
        let old = LsConfig::default();
        let mut new = old.clone();
        new.timeout_ms += 1;
        new.rate_limit_qps = 7;
        assert!(old.restart_only_changes(&new).is_empty());
        new.metrics = Some("127.0.0.1:9".parse().unwrap());
        assert_eq!(old.restart_only_changes(&new), ["metrics"]);
        new.workers = old.workers + 1;
        new.listen = vec!["127.0.0.1:5".parse().unwrap()];
        new.max_inflight = old.max_inflight + 1;
        assert_eq!(
            old.restart_only_changes(&new),
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
        assert!(TsConfig::restart_changes(&old, &old).is_empty());
        let mut new = vec![ts("ts1", 5311), ts("ts3", 5303)];
        new[0].ttl = 60;
        assert_eq!(
            TsConfig::restart_changes(&old, &new),
            ["ts1 (listen, ttl)", "ts2 removed", "ts3 added"]
        );
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
        assert!(Config::key_restart_changes(&old, &old).is_empty());
        assert_eq!(
            Config::key_restart_changes(&old, &config(B, "hmac-sha256")),
            ["ts1 ([[key]] \"xfr\": secret)"]
        );
        assert_eq!(
            Config::key_restart_changes(&old, &config(B, "hmac-sha384")),
            ["ts1 ([[key]] \"xfr\": secret, algorithm)"]
        );
    }
}

//! The `config.toml` schema (docs/CONFIG.md): parsing, defaults, path resolution and validation.
//!
//! One file drives the whole deployment: an optional `[ls]` table (the load balancer, its
//! `[ls.health]` probes and its `[[ls.backend]]` list) and any number of `[[ts]]` table
//! servers. Every table rejects unknown keys, every missing key takes the default of docs/CONFIG.md,
//! and every problem is reported as a [`ConfigError`] that prints as `file:line: what is
//! wrong`, naming the key.
//!
//! Parsing ([`Config::from_toml`], [`Config::load`]) and validation ([`Config::validate`],
//! [`Config::problems`]) are separate steps so tests can build a [`Config`] in code and
//! `dnslb check` can list every problem at once ([`Config::diagnose`]). Line numbers come
//! from the spans of toml's own parser ([`toml::de::DeTable`]), so they stay right for
//! dotted keys, inline tables and multi-line arrays.
//!
//! # Layout
//! - [`Config`] and its loading live here; [`LsConfig`] (with [`HealthConfig`],
//!   [`BackendConfig`] and the keyword enums) in `ls`, [`CacheConfig`] in `cache`,
//!   [`TlsConfig`] and [`HttpsConfig`] (and the reading of their certificates) in `tls`, its
//!   [`PoolConfig`]s in `pool`, its query and response rules ([`RuleConfig`],
//!   [`ResponseRuleConfig`]) in `rules`, [`TsConfig`] (with [`Fault`] and [`OnMiss`]) in `ts`,
//!   its `[[ts.service]]` ([`ServiceConfig`]) in `service`, their rules in `service_checks`.
//! - `policy`: the policy keys a pool may set over `[ls]`'s, declared once
//!   (`policy_keys!`), and [`PolicyConfig`], their values for `[ls]` or a pool.
//! - `values`: the string values of the schema (addresses, networks, DNS names, the
//!   [`ProbeQuestion`]), parsed while the file is read, and their serde adapters.
//! - `error`: [`ConfigError`] and the rewriting of toml's messages; `source_map`: where
//!   each key is in the text.
//! - `validate`: the rules of [`Config::problems`] (those of `[[ls.rule]]` and
//!   `[[ls.response_rule]]` in `validate/rule_checks`).
//! - `dnstap`: [`DnstapConfig`], `[ls.dnstap]` and `dnstap` in `[[ts]]`, with its rules.
//! - `cores`: how many CPUs this process may run on ([`available_cores`], the default
//!   `workers`): its affinity mask and cgroup v2 CPU quota.
//! - `anycast`: [`AnycastConfig`], `[ls.anycast]` (the stop's drain, `dnslb anycast`'s
//!   probe and the BIRD protocols it drives), with its rules.
//! - `rrl`: [`RrlConfig`], `rrl` in `[[ts]]` (response rate limiting).
//! - `key`: [`KeyConfig`], the TSIG keys (`[[key]]`) and the reading of their secrets.
//! - `dynblock`: [`DynBlockConfig`] (`[[ls.dynamic_block]]`) and the rules of it and of
//!   `api_key` and `control_allow`.
//! - `changes`: what a reload cannot apply ([`ls_restart_only_changes`],
//!   [`ts_restart_changes`], [`key_restart_changes`]), from each table's keys listed once with how a
//!   reload takes them (a test holds the lists to the keys serde accepts).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Declares a keyword enum: a `config.toml` value that is one of a few strings, with
/// `ALL`, `as_str`, `Default` and `Display` (used by `ls` and `ts`).
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident, default $default:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in the order docs/CONFIG.md lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value written as `text` in `config.toml` (or on the command line).
            pub fn from_keyword(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// The value as written in `config.toml`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// First: its `policy_keys!` declares fields of `ls` and `pool`.
#[macro_use]
mod policy;

mod anycast;
mod backend_link;
mod cache;
mod changes;
mod cookie;
pub mod cores;
mod dnstap;
mod dynblock;
mod error;
mod key;
mod listen;
mod ls;
mod pool;
mod quic;
mod rrl;
mod rules;
mod service;
mod service_checks;
mod source_map;
#[cfg(test)]
mod tests;
mod tls;
mod ts;
mod validate;
mod values;

pub use anycast::{AnycastConfig, DRAIN_S_MAX, probe_warning};
pub use backend_link::{BackendTransport, link_problems, load_roots, server_name};
pub use cache::CacheConfig;
pub use changes::{key_restart_changes, ls_restart_only_changes, ts_restart_changes};
pub use cookie::CookieSecrets;
pub use dnstap::{
    DNSTAP_QUEUE_BYTES, DNSTAP_QUEUE_MAX, DNSTAP_QUEUE_SIZE, DnstapConfig, DnstapMessage,
    DnstapSide,
};
pub use dynblock::{
    DynAction, DynBlockConfig, DynKind, DynRcode, MAX_BLOCK_S, MAX_DYN_BLOCKS, MAX_WINDOW_S,
    MIN_API_KEY_LEN,
};
pub use error::ConfigError;
pub use key::{KeyAlgorithm, KeyConfig, KeyError};
pub use ls::{
    BACKEND_LIMIT_MAX, BACKEND_LIMIT_MIN, BackendConfig, HealthConfig, HedgeDelay, LsConfig,
    LsXdpConfig, XdpUpstream,
};
pub use policy::PolicyConfig;
pub use pool::{PoolConfig, zone_text};
pub use quic::QuicConfig;
pub use rrl::RrlConfig;
pub use rules::{
    EDE_BLOCKED, EDE_CENSORED, EDE_FILTERED, MAX_DELAY_MS, Opcode, QType, Rcode, ResponseAction,
    ResponseMatch, ResponseRuleConfig, RuleAction, RuleConfig, RuleMatch, RuleTransport,
    SPOOF_TTL_DEFAULT,
};
pub use service::{
    CheckConfig, CheckKind, EndpointConfig, Select, ServiceConfig, ViewConfig, WhenAllDown,
};
pub use service_checks::MAX_SERVICE_ANSWERS;
pub use tls::{
    CertError, EXPIRY_WARNING_SECS, HttpsConfig, TlsConfig, expiry_warning_days, file_not_after,
    load_certified_key, not_after,
};
pub use ts::{
    Denial, Dnssec, DnssecAlgorithm, Fault, OnMiss, SecondaryZoneConfig, TsConfig, ZoneList,
};
pub(crate) use validate::MAX_STICKY_SIZE;
pub use values::{
    EcsMode, Layout, OnTimeout, Order, ProbeQuestion, Strategy, ValueError, parse_name,
};

use error::parse_error;
use source_map::SourceMap;

/// The whole deployment: what `config.toml` says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The load balancer, `[ls]`; `None` when the file has no `[ls]` table.
    #[serde(default)]
    pub ls: Option<LsConfig>,
    /// The table servers, `[[ts]]`, in file order.
    #[serde(default)]
    pub ts: Vec<TsConfig>,
    /// The TSIG keys, `[[key]]`, that a `[[ts]]` names in `xfr_key`.
    #[serde(default)]
    pub key: Vec<KeyConfig>,
    /// The file this config was read from (not a TOML key). Relative paths inside the file
    /// have already been resolved against its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The number of CPUs this process may run on (its affinity mask, lowered to its cgroup
/// v2 CPU quota rounded up; at least 1): the default worker count. See [`cores`].
pub fn available_cores() -> usize {
    cores::detect().count
}

impl Config {
    /// Parses `text` (the contents of the file at `path`), resolves relative zone paths
    /// against `path`'s folder, and validates the result.
    ///
    /// # Errors
    ///
    /// The first problem: [`ConfigError::Parse`] for bad TOML or a value that does not fit
    /// the schema, [`ConfigError::Invalid`] for a broken rule (see [`Config::problems`]).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config = Self::parse(text, path)?;
        let first = validate::problems_in(&config, Some(&SourceMap::new(text)))
            .into_iter()
            .next();
        match first {
            Some(problem) => Err(problem),
            None => Ok(config),
        }
    }

    /// Reads the file at `path`, then [`Config::from_toml`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read, else as [`Config::from_toml`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::from_toml(&read(path)?, path)
    }

    /// Like [`Config::from_toml`], but returns every problem (in file order where known),
    /// for `dnslb check`. The list is never empty on `Err`.
    ///
    /// # Errors
    ///
    /// One parse error, or every validation problem.
    pub fn diagnose(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let config = Self::parse(text, path).map_err(|e| vec![e])?;
        let problems = validate::problems_in(&config, Some(&SourceMap::new(text)));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Reads the file at `path`, then [`Config::diagnose`].
    ///
    /// # Errors
    ///
    /// As [`Config::diagnose`], or the read error.
    pub fn diagnose_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = read(path).map_err(|e| vec![e])?;
        Self::diagnose(&text, path)
    }

    /// Parses `text` and resolves relative zone paths against `path`'s folder, without
    /// validating.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for bad TOML or a value that does not fit the schema.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        config.path = path.to_path_buf();
        let folder = path.parent().unwrap_or(Path::new(""));
        if let Some(ls) = &mut config.ls {
            let files = ls.tls.iter_mut().flat_map(|t| [&mut t.cert, &mut t.key]);
            let https = ls.https.iter_mut().flat_map(|h| [&mut h.cert, &mut h.key]);
            let quic = ls.quic.iter_mut().flat_map(|q| [&mut q.cert, &mut q.key]);
            for file in files.chain(https.flatten()).chain(quic) {
                if file.is_relative() {
                    *file = folder.join(&*file);
                }
            }
            for ca in ls.backend.iter_mut().filter_map(|b| b.ca.as_mut()) {
                if ca.is_relative() {
                    *ca = folder.join(&*ca);
                }
            }
            if let Some(socket) = ls.dnstap.as_mut().and_then(|d| d.socket.as_mut()) {
                *socket = socket_path(folder, socket);
            }
            if let Some(a) = &mut ls.anycast {
                a.bird_socket = socket_path(folder, &a.bird_socket);
            }
        }
        let map = SourceMap::new(text);
        for (i, ts) in config.ts.iter_mut().enumerate() {
            for (j, s) in ts.service.iter_mut().enumerate() {
                let line = map.line_of_any(&[&format!("ts.{i}.service.{j}.name")]);
                s.at = match line {
                    Some(l) => format!("{}:{l}", path.display()),
                    None => path.display().to_string(),
                };
            }
            for zone in &mut ts.zones {
                if zone.is_relative() {
                    *zone = folder.join(&*zone);
                }
            }
            if let Some(dir) = &mut ts.state_dir
                && dir.is_relative()
            {
                *dir = folder.join(&*dir);
            }
            if let Some(d) = &mut ts.dnssec
                && d.keys.is_relative()
            {
                d.keys = folder.join(&d.keys);
            }
            if let Some(socket) = ts.dnstap.as_mut().and_then(|d| d.socket.as_mut()) {
                *socket = socket_path(folder, socket);
            }
            for file in ts.quic.iter_mut().flat_map(|q| [&mut q.cert, &mut q.key]) {
                if file.is_relative() {
                    *file = folder.join(&*file);
                }
            }
        }
        for key in &mut config.key {
            if let Some(file) = &mut key.secret_file
                && file.is_relative()
            {
                *file = folder.join(&*file);
            }
        }
        let notify_tsig = config.ls.as_ref().map(|ls| {
            ls.backend
                .iter()
                .filter_map(|b| Some((b.name.clone(), config.notify_key_of(b)?.clone())))
                .collect()
        });
        if let (Some(ls), Some(keys)) = (&mut config.ls, notify_tsig) {
            ls.notify_tsig = keys;
        }
        Ok(config)
    }

    /// The `[[key]]` the NOTIFYs of `backend` must be signed with: the one
    /// its `notify_key` names, else the `xfr_key` of the `[[ts]]` of this
    /// file listening at its address (that TS signs its NOTIFYs with it);
    /// `None`: its NOTIFYs may come unsigned.
    pub fn notify_key_of(&self, backend: &BackendConfig) -> Option<&KeyConfig> {
        let name = match &backend.notify_key {
            Some(name) => name.as_str(),
            None => self
                .ts_at(backend.addr)
                .and_then(|ts| ts.xfr_key.as_deref())?,
        };
        self.key.iter().find(|k| k.name == name)
    }

    /// The `[[ts]]` of this file listening at `addr` (a backend's address),
    /// if any.
    pub fn ts_at(&self, addr: std::net::SocketAddr) -> Option<&TsConfig> {
        (self.ts.iter()).find(|ts| ts.listen.iter().any(|l| validate::overlap(addr, *l)))
    }

    /// The `[[ts]]` named `name`.
    pub fn ts_by_name(&self, name: &str) -> Option<&TsConfig> {
        self.ts.iter().find(|ts| ts.name == name)
    }

    /// The `[[key]]` called `name`, if any.
    pub fn key_named(&self, name: Option<&str>) -> Option<&KeyConfig> {
        let name = name?;
        self.key.iter().find(|k| k.name == name)
    }

    /// The `[[key]]` a `[[ts]]`'s `xfr_key` names.
    pub fn xfr_key_of(&self, ts: &TsConfig) -> Option<&KeyConfig> {
        let name = ts.xfr_key.as_deref()?;
        self.key.iter().find(|k| k.name == name)
    }

    /// Checks the rules of the schema; see [`Config::problems`].
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every rule this config breaks, without line numbers (the source text is not kept;
    /// [`Config::diagnose`] adds them).
    ///
    /// The rules: `[ls]` or a `[[ts]]` exists; ts and backend names are non-empty and
    /// unique; `[ls]` has at least one backend; no two listeners (`ls.listen`,
    /// `ls.metrics`, each `ts.listen` and `ts.metrics`) share an address (port 0 aside)
    /// and no backend is the LS itself; timeouts, intervals, workers, `max_inflight`, `fall` and `rise` are at
    /// least 1; `hedge_percentile` is in (0, 100], `hedge_budget_pct` in [0, 100],
    /// `hedge_min_ms <= hedge_max_ms`; `ls.cache.max_entries` and `max_ttl` are at least 1
    /// and `neg_ttl <= max_ttl`; fault ratios are in [0, 1]; TTLs fit RFC 2181;
    /// every ts has zones; every pool has a unique non-empty name, backends (each an
    /// `[[ls.backend]]`, named once) and zones, and no zone is in two pools (case and a
    /// final dot aside); the `[ls.tls]` and `[ls.https]` certificate and key files can
    /// be read, hold a certificate chain and a key, and belong together (this rule
    /// reads files), `[ls.https]` has both or neither, and its `path` starts with `/`;
    /// `[[key]]` names are unique DNS names, each key has `secret` or `secret_file`
    /// (read here), base64, at least half the hash long, and each `xfr_key` and
    /// backend `notify_key` names one (a backend that is a `[[ts]]` of this file
    /// has no `notify_key` but its `xfr_key`);
    /// a `[[ts]]` that is a backend of `[ls]` and has no `xfr_key` does not allow
    /// transfers (`axfr_allow`) from the address the LS sends to it from.
    /// (A bad `origin`, pool zone or `health.query` is a parse error,
    /// like a bad address: those values are typed.)
    pub fn problems(&self) -> Vec<ConfigError> {
        validate::problems_in(self, None)
    }

    /// A problem `msg` with the key at `path` (dotted, with array indices, e.g.
    /// `ts.1.zones`), at the key's line in `text` (the file this config was read from),
    /// for the rules that need more than the config to check (`dnslb check` reads the
    /// zones too): `config.toml:14: ts.zones: msg`.
    pub fn problem_at(&self, text: &str, path: &str, msg: String) -> ConfigError {
        validate::problem_at(&self.path, text, path, msg)
    }
}

/// Reads a config file.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: path.to_path_buf(),
        msg: format!("cannot read: {e}"),
    })
}

/// A dnstap `socket` as it is connected to: relative to the config's
/// `folder`, made absolute against the working directory when `-c` was
/// relative, so its length (at most 107 bytes) is checked on the path
/// used, whatever way `-c` is spelled (`dnslb check -c x.toml` and `dnslb
/// up`'s children, which get the absolute path, judge the same path).
fn socket_path(folder: &Path, socket: &Path) -> PathBuf {
    if socket.as_os_str().is_empty() || socket.is_absolute() {
        return socket.to_path_buf();
    }
    let joined = folder.join(socket);
    std::path::absolute(&joined).unwrap_or(joined)
}

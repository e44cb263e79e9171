//! The `config.toml` schema (SPEC §7): parsing, defaults, path resolution and validation.
//!
//! One file drives the whole deployment: an optional `[ls]` table (the load balancer, its
//! `[ls.health]` probes and its `[[ls.backend]]` list) and any number of `[[ts]]` table
//! servers. Every table rejects unknown keys, every missing key takes the default of SPEC §7,
//! and every problem is reported as a [`ConfigError`] that prints as `file:line: what is
//! wrong`, naming the key.
//!
//! Parsing ([`Config::from_toml`], [`Config::load`]) and validation ([`Config::validate`],
//! [`Config::problems`]) are separate steps so tests can build a [`Config`] in code and
//! `dnslb check` can list every problem at once ([`Config::diagnose`]). Line numbers come
//! from the spans of toml's own parser ([`toml::de::DeTable`]), so they stay right for
//! dotted keys, inline tables and multi-line arrays.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use toml::de::{DeTable, DeValue};

/// Client networks allowed when `ls.allow` is omitted: loopback and the private ranges.
const DEFAULT_ALLOW: [&str; 5] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
];
/// The largest TTL a record may carry (RFC 2181 §8).
const MAX_TTL: u32 = i32::MAX as u32;

/// A typed problem with a config file.
///
/// Displays as `file:line: what is wrong` when the line is known, else `file: what is wrong`
/// (or just `what is wrong` when the file is unknown, e.g. for a config built in code). The
/// message always names the key, e.g. `ls.strategy: expected one of race, hedge, sequential,
/// got "fast"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}", located(file, None, msg))]
    Io {
        /// The file that was read.
        file: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// The file is not valid TOML, or does not fit the schema (unknown key, wrong type,
    /// bad enum value, bad address or network).
    #[error("{}", located(file, *line, msg))]
    Parse {
        /// The file that was parsed.
        file: PathBuf,
        /// The 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// The file parsed but a value breaks a rule (duplicate name, out-of-range number, two
    /// listeners on one address, ...).
    #[error("{}", located(file, *line, msg))]
    Invalid {
        /// The file the config came from (empty for a config built in code).
        file: PathBuf,
        /// The 1-based line of the offending key, when it could be found.
        line: Option<usize>,
        /// What is wrong, naming the key.
        msg: String,
    },
}

impl ConfigError {
    /// The file the problem is in (empty when unknown).
    pub fn file(&self) -> &Path {
        match self {
            Self::Io { file, .. } | Self::Parse { file, .. } | Self::Invalid { file, .. } => file,
        }
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Io { .. } => None,
            Self::Parse { line, .. } | Self::Invalid { line, .. } => *line,
        }
    }

    /// What is wrong, without the `file:line: ` prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Io { msg, .. } | Self::Parse { msg, .. } | Self::Invalid { msg, .. } => msg,
        }
    }

    /// A problem found outside any file (e.g. by [`HealthConfig::probe_question`]).
    fn detached(msg: String) -> Self {
        Self::Invalid {
            file: PathBuf::new(),
            line: None,
            msg,
        }
    }
}

/// Formats `file:line: msg`, leaving out the parts that are unknown.
fn located(file: &Path, line: Option<usize>, msg: &str) -> String {
    match (file.as_os_str().is_empty(), line) {
        (true, _) => msg.to_owned(),
        (false, Some(line)) => format!("{}:{line}: {msg}", file.display()),
        (false, None) => format!("{}: {msg}", file.display()),
    }
}

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
    /// The file this config was read from (not a TOML key). Relative paths inside the file
    /// have already been resolved against its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident, default $default:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order SPEC §7 lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

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

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum! {
    /// `ls.strategy`: how many backends a query goes to, and when.
    Strategy, default Hedge {
        /// Send to every usable backend at once; the first useful answer wins.
        Race = "race",
        /// Send to the first backend, then to the next after the hedge delay, and so on.
        Hedge = "hedge",
        /// One backend at a time; move on after `try_timeout_ms` or on SERVFAIL/REFUSED.
        Sequential = "sequential",
    }
}

keyword_enum! {
    /// `ls.order`: which backend is asked first (for hedge and sequential).
    Order, default LeastOutstanding {
        /// The backend with the fewest queries in flight.
        LeastOutstanding = "least-outstanding",
        /// Each backend in turn.
        RoundRobin = "round-robin",
        /// The backend that last answered this name, then the others.
        Sticky = "sticky",
        /// A hash of the query name picks the first backend.
        ConsistentHash = "consistent-hash",
        /// Config order.
        Fixed = "fixed",
        /// Random, in proportion to each backend's `weight`.
        WeightedRandom = "weighted-random",
    }
}

keyword_enum! {
    /// `ls.layout`: how names are spread over the backends.
    Layout, default Partitioned {
        /// Each backend holds some of the names: an NXDOMAIN moves on to the next backend.
        Partitioned = "partitioned",
        /// Every backend holds every name: the first authoritative answer is final.
        Replicated = "replicated",
    }
}

keyword_enum! {
    /// `ls.on_timeout`: the LS's answer when no backend gave a final one in time.
    OnTimeout, default Nxdomain {
        /// A synthesized NXDOMAIN (with an Extended DNS Error saying who was tried).
        Nxdomain = "nxdomain",
        /// A synthesized SERVFAIL.
        Servfail = "servfail",
        /// No answer at all.
        Drop = "drop",
    }
}

keyword_enum! {
    /// `ts.on_miss`: the TS's answer for a name it does not hold.
    OnMiss, default Nxdomain {
        /// NXDOMAIN with the SOA in the authority section.
        Nxdomain = "nxdomain",
        /// No answer at all (the original course project's behaviour).
        Silent = "silent",
    }
}

/// `ls.hedge_delay_ms`: how long to wait before hedging to the next backend.
///
/// In TOML, a number of milliseconds or the string `"adaptive"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HedgeDelay {
    /// Always this many milliseconds.
    Fixed(u64),
    /// `hedge_percentile` of the backend's recent latency, clamped to
    /// `[hedge_min_ms, hedge_max_ms]`.
    #[default]
    Adaptive,
}

impl fmt::Display for HedgeDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(ms) => write!(f, "{ms}"),
            Self::Adaptive => f.write_str("adaptive"),
        }
    }
}

impl<'de> Deserialize<'de> for HedgeDelay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HedgeDelayVisitor;

        impl Visitor<'_> for HedgeDelayVisitor {
            type Value = HedgeDelay;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of milliseconds or \"adaptive\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HedgeDelay, E> {
                Ok(HedgeDelay::Fixed(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HedgeDelay, E> {
                u64::try_from(v)
                    .map(HedgeDelay::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<HedgeDelay, E> {
                if v == "adaptive" {
                    Ok(HedgeDelay::Adaptive)
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(HedgeDelayVisitor)
    }
}

/// `[ls]`: the load balancer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LsConfig {
    /// Addresses to serve on, UDP and TCP on each. [`127.0.0.1:5300`]
    #[serde(deserialize_with = "de_addrs")]
    pub listen: Vec<SocketAddr>,
    /// SO_REUSEPORT sockets/threads per listener. [number of cores]
    pub workers: usize,
    /// How many backends a query goes to, and when. [hedge]
    pub strategy: Strategy,
    /// Who is asked first. [least-outstanding]
    pub order: Order,
    /// How names are spread over the backends. [partitioned]
    pub layout: Layout,
    /// Deadline for a final answer, in ms. [1500]
    pub timeout_ms: u64,
    /// What to answer at the deadline. [nxdomain]
    pub on_timeout: OnTimeout,
    /// Negative TTL (SOA minimum) of synthesized answers, in seconds. [5]
    pub synth_ttl: u32,
    /// Per-backend timeout under `sequential`, in ms. [500]
    pub try_timeout_ms: u64,
    /// Delay before hedging to the next backend. [adaptive]
    pub hedge_delay_ms: HedgeDelay,
    /// Latency percentile used by the adaptive hedge delay, in (0, 100]. [95]
    pub hedge_percentile: f64,
    /// Lower clamp of the adaptive hedge delay, in ms. [2]
    pub hedge_min_ms: u64,
    /// Upper clamp of the adaptive hedge delay, in ms. [200]
    pub hedge_max_ms: u64,
    /// Extra upstream queries allowed for delay-triggered hedges, in % of client queries. [10]
    pub hedge_budget_pct: f64,
    /// Client queries in flight past which new ones get SERVFAIL at once. [65536]
    pub max_inflight: usize,
    /// Client networks allowed to query (others get REFUSED); a bare IP is a /32 or /128.
    /// [loopback and private ranges]
    #[serde(deserialize_with = "de_nets")]
    pub allow: Vec<IpNet>,
    /// Queries per second per client IP; 0 = off. [0]
    pub rate_limit_qps: u32,
    /// Address of the metrics and status HTTP server; `None` (key omitted) = off. [off]
    #[serde(deserialize_with = "de_opt_addr")]
    pub metrics: Option<SocketAddr>,
    /// Most names the `sticky` order remembers (bounds its memory). [100000]
    pub sticky_size: usize,
    /// Active health checks, `[ls.health]`.
    pub health: HealthConfig,
    /// The backends, `[[ls.backend]]`, in config order.
    pub backend: Vec<BackendConfig>,
}

impl Default for LsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            workers: available_cores(),
            strategy: Strategy::default(),
            order: Order::default(),
            layout: Layout::default(),
            timeout_ms: 1500,
            on_timeout: OnTimeout::default(),
            synth_ttl: 5,
            try_timeout_ms: 500,
            hedge_delay_ms: HedgeDelay::default(),
            hedge_percentile: 95.0,
            hedge_min_ms: 2,
            hedge_max_ms: 200,
            hedge_budget_pct: 10.0,
            max_inflight: 65536,
            allow: DEFAULT_ALLOW
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
            rate_limit_qps: 0,
            metrics: None,
            sticky_size: 100_000,
            health: HealthConfig::default(),
            backend: Vec::new(),
        }
    }
}

/// `[ls.health]`: active probes of the backends and the up/down hysteresis.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Probe every backend this often, in ms. [1000]
    pub interval_ms: u64,
    /// Also probe after this many client queries; 0 = off. [0]
    pub every_queries: u64,
    /// The probe's question, `"NAME TYPE"`. [". SOA"]
    pub query: String,
    /// Failures in a row that mark a backend down. [3]
    pub fall: u32,
    /// Successes in a row that mark a backend up. [2]
    pub rise: u32,
    /// One probe's timeout, in ms. [500]
    pub timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            every_queries: 0,
            query: ". SOA".to_owned(),
            fall: 3,
            rise: 2,
            timeout_ms: 500,
        }
    }
}

impl HealthConfig {
    /// The probe's question: `query` parsed as `NAME TYPE`, e.g. `". SOA"` or
    /// `"example.com A"`. The name is made fully qualified; the type is case-insensitive.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (without a file or line) when `query` is not a name and a
    /// record type.
    pub fn probe_question(&self) -> Result<(Name, RecordType), ConfigError> {
        parse_question(&self.query).map_err(|msg| {
            ConfigError::detached(format!("ls.health.query: {msg}, got {:?}", self.query))
        })
    }
}

/// Parses `NAME TYPE`; the error says what is wrong (the caller adds the key).
fn parse_question(text: &str) -> Result<(Name, RecordType), String> {
    let mut words = text.split_whitespace();
    let (Some(name), Some(rtype), None) = (words.next(), words.next(), words.next()) else {
        return Err("expected \"NAME TYPE\", like \". SOA\" or \"example.com A\"".to_owned());
    };
    let name = parse_name(name)?;
    let rtype = RecordType::from_str(&rtype.to_ascii_uppercase())
        .map_err(|_| format!("unknown record type {rtype:?}"))?;
    Ok((name, rtype))
}

/// Parses a DNS name and makes it fully qualified.
fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} is not a DNS name"));
    }
    let mut name = Name::from_ascii(text).map_err(|e| {
        let why = e.to_string();
        format!(
            "{text:?} is not a DNS name: {}",
            why.trim_end_matches([':', ' '])
        )
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `[[ls.backend]]`: one upstream DNS server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Name used in logs, metrics and the EDE text (unique, non-empty).
    pub name: String,
    /// Where to send its queries.
    #[serde(deserialize_with = "de_addr")]
    pub addr: SocketAddr,
    /// Share under `weighted-random`. [1]
    #[serde(default = "one")]
    pub weight: u32,
}

/// The default backend weight.
fn one() -> u32 {
    1
}

/// `[[ts]]`: one table server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsConfig {
    /// Name used by `dnslb ts --name` and in logs (unique, non-empty).
    pub name: String,
    /// Address to serve on, UDP and TCP.
    #[serde(deserialize_with = "de_addr")]
    pub listen: SocketAddr,
    /// PROJ tables and/or `.zone` files; relative paths are resolved against the config
    /// file's folder by [`Config::from_toml`].
    pub zones: Vec<PathBuf>,
    /// Origin (SOA owner) of the PROJ tables. ["."]
    #[serde(default = "root_origin")]
    pub origin: String,
    /// TTL of the records served, in seconds. [300]
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// What to answer for a name it does not hold. [nxdomain]
    #[serde(default)]
    pub on_miss: OnMiss,
    /// Clients allowed to transfer the zone (AXFR); a bare IP is a /32 or /128. [none]
    #[serde(default, deserialize_with = "de_nets")]
    pub axfr_allow: Vec<IpNet>,
    /// Secondaries to NOTIFY on reload. [none]
    #[serde(default, deserialize_with = "de_addrs")]
    pub notify: Vec<SocketAddr>,
    /// Fault injection for experiments. [off]
    #[serde(default)]
    pub fault: Fault,
    /// UDP workers; `None` = number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
}

/// The default TS origin, the root.
fn root_origin() -> String {
    ".".to_owned()
}

/// The default TS TTL.
fn default_ttl() -> u32 {
    300
}

impl TsConfig {
    /// A table server with every optional key at its default.
    pub fn new(name: impl Into<String>, listen: SocketAddr, zones: Vec<PathBuf>) -> Self {
        Self {
            name: name.into(),
            listen,
            zones,
            origin: root_origin(),
            ttl: default_ttl(),
            on_miss: OnMiss::default(),
            axfr_allow: Vec::new(),
            notify: Vec::new(),
            fault: Fault::default(),
            workers: None,
        }
    }

    /// `origin` as a fully qualified DNS name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (without a file or line) when `origin` is not a DNS name.
    pub fn origin_name(&self) -> Result<Name, ConfigError> {
        parse_name(&self.origin).map_err(|msg| ConfigError::detached(format!("ts.origin: {msg}")))
    }

    /// UDP workers to run: `workers`, or the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(available_cores)
    }
}

/// `ts.fault`: fault injection knobs, all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    /// How long a delayed answer waits, in ms.
    pub delay_ms: u64,
    /// Fraction of answers delayed by `delay_ms`, in [0, 1].
    pub delay_ratio: f64,
    /// Fraction of queries dropped without an answer, in [0, 1].
    pub drop_ratio: f64,
}

/// The number of cores this process may use (1 when unknown): the default worker count.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Deserializes a string with `parse`, inside the deserializer so that toml points the
/// error at the bad string itself (not at the array holding it).
fn parse_str<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ParseVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }

    impl<T> Visitor<'_> for ParseVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(ParseVisitor { expecting, parse })
}

/// A socket address from a TOML string; its error shows the bad value.
struct AddrDe(SocketAddr);

impl<'de> Deserialize<'de> for AddrDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "an address like \"127.0.0.1:5300\"", |text| {
            text.trim().parse().map(AddrDe).map_err(|_| {
                format!(
                    "invalid address {text:?}: expected IP:port, like \"127.0.0.1:5300\" or \"[::1]:5300\""
                )
            })
        })
    }
}

/// A network from a TOML string: CIDR (`10.0.0.0/8`) or a bare IP (a /32 or /128).
struct NetDe(IpNet);

impl<'de> Deserialize<'de> for NetDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a network like \"10.0.0.0/8\"", |text| {
            let trimmed = text.trim();
            let net = if trimmed.contains('/') {
                trimmed.parse::<IpNet>().ok()
            } else {
                trimmed.parse::<IpAddr>().ok().map(IpNet::from)
            };
            net.map(NetDe).ok_or_else(|| {
                format!(
                    "invalid network {text:?}: expected CIDR like \"10.0.0.0/8\" or an IP address"
                )
            })
        })
    }
}

/// Deserializes one socket address.
fn de_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    AddrDe::deserialize(deserializer).map(|addr| addr.0)
}

/// Deserializes a list of socket addresses.
fn de_addrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<AddrDe>::deserialize(deserializer).map(|v| v.into_iter().map(|a| a.0).collect())
}

/// Deserializes a socket address that is present (a missing key is `None`).
fn de_opt_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    de_addr(deserializer).map(Some)
}

/// Deserializes a list of networks.
fn de_nets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<NetDe>::deserialize(deserializer).map(|v| v.into_iter().map(|n| n.0).collect())
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
        let first = config
            .problems_in(Some(&SourceMap::new(text)))
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
        let problems = config.problems_in(Some(&SourceMap::new(text)));
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
        for ts in &mut config.ts {
            for zone in &mut ts.zones {
                if zone.is_relative() {
                    *zone = folder.join(&*zone);
                }
            }
        }
        Ok(config)
    }

    /// The `[[ts]]` named `name`.
    pub fn ts_by_name(&self, name: &str) -> Option<&TsConfig> {
        self.ts.iter().find(|ts| ts.name == name)
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
    /// `ls.metrics`, each `ts.listen`) share an address (port 0 aside) and no backend is
    /// the LS itself; timeouts, intervals, workers, `max_inflight`, `fall` and `rise` are at
    /// least 1; `hedge_percentile` is in (0, 100], `hedge_budget_pct` in [0, 100],
    /// `hedge_min_ms <= hedge_max_ms`; fault ratios are in [0, 1]; TTLs fit RFC 2181;
    /// every ts has zones; `origin` and `health.query` parse.
    pub fn problems(&self) -> Vec<ConfigError> {
        self.problems_in(None)
    }

    /// The rules of [`Config::problems`], with lines looked up in `map` when given.
    fn problems_in(&self, map: Option<&SourceMap<'_>>) -> Vec<ConfigError> {
        let mut check = Checker {
            file: &self.path,
            map,
            out: Vec::new(),
        };
        if self.ls.is_none() && self.ts.is_empty() {
            check.push(
                &[""],
                "nothing to run: the config has neither [ls] nor [[ts]]".into(),
            );
        }
        if let Some(ls) = &self.ls {
            check_ls(ls, &mut check);
        }
        check_names(
            self.ts.iter().map(|ts| ts.name.as_str()),
            "ts",
            "table server",
            &mut check,
        );
        for (i, ts) in self.ts.iter().enumerate() {
            check_ts(i, ts, &mut check);
        }
        check_listeners(self, &mut check);
        check.out.sort_by_key(|e| e.line().unwrap_or(usize::MAX));
        check.out
    }
}

/// Reads a config file.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: path.to_path_buf(),
        msg: format!("cannot read: {e}"),
    })
}

/// Collects validation problems, finding each one's line.
struct Checker<'a> {
    /// The config file.
    file: &'a Path,
    /// Where keys are in the file, when the text is known.
    map: Option<&'a SourceMap<'a>>,
    /// The problems found so far.
    out: Vec<ConfigError>,
}

impl Checker<'_> {
    /// Records a problem with the key at `paths[0]` (dotted, with array indices, e.g.
    /// `ts.1.name`); the line is that of the first path found in the file, else of the
    /// nearest enclosing table.
    fn push(&mut self, paths: &[&str], msg: String) {
        let line = self.map.and_then(|map| map.line_of_any(paths));
        let key = paths.first().map(|p| display_path(p)).unwrap_or_default();
        let msg = if key.is_empty() {
            msg
        } else {
            format!("{key}: {msg}")
        };
        self.out.push(ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            msg,
        });
    }

    /// Records `msg` unless `ok`.
    fn require(&mut self, ok: bool, path: &str, msg: impl FnOnce() -> String) {
        if !ok {
            self.push(&[path], msg());
        }
    }
}

/// The rules for `[ls]`.
fn check_ls(ls: &LsConfig, check: &mut Checker<'_>) {
    if ls.backend.is_empty() {
        check.push(
            &["ls.backend", "ls"],
            "[ls] needs at least one [[ls.backend]]".into(),
        );
    }
    check_names(
        ls.backend.iter().map(|b| b.name.as_str()),
        "ls.backend",
        "backend",
        check,
    );
    for (i, backend) in ls.backend.iter().enumerate() {
        let addr = backend.addr;
        check.require(
            addr.port() != 0 && !addr.ip().is_unspecified(),
            &format!("ls.backend.{i}.addr"),
            || format!("{addr} is not an address queries can be sent to"),
        );
    }
    if ls.order == Order::WeightedRandom && !ls.backend.is_empty() {
        check.require(ls.backend.iter().any(|b| b.weight > 0), "ls.order", || {
            "weighted-random needs a backend with weight > 0".into()
        });
    }
    check.require(!ls.listen.is_empty(), "ls.listen", || {
        "needs at least one address".into()
    });
    check.require(ls.workers >= 1, "ls.workers", || {
        "must be at least 1".into()
    });
    check.require(ls.timeout_ms > 0, "ls.timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(ls.try_timeout_ms > 0, "ls.try_timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(ls.synth_ttl <= MAX_TTL, "ls.synth_ttl", || {
        format!("must be at most {MAX_TTL} (RFC 2181), got {}", ls.synth_ttl)
    });
    let pct = ls.hedge_percentile;
    check.require(pct > 0.0 && pct <= 100.0, "ls.hedge_percentile", || {
        format!("must be in (0, 100], got {pct}")
    });
    if ls.hedge_min_ms > ls.hedge_max_ms {
        check.push(
            &["ls.hedge_min_ms", "ls.hedge_max_ms"],
            format!(
                "hedge_min_ms ({}) must not exceed hedge_max_ms ({})",
                ls.hedge_min_ms, ls.hedge_max_ms
            ),
        );
    }
    let budget = ls.hedge_budget_pct;
    check.require(
        (0.0..=100.0).contains(&budget),
        "ls.hedge_budget_pct",
        || format!("must be in [0, 100], got {budget}"),
    );
    check.require(ls.max_inflight >= 1, "ls.max_inflight", || {
        "must be at least 1".into()
    });
    let health = &ls.health;
    check.require(health.interval_ms > 0, "ls.health.interval_ms", || {
        "must be at least 1".into()
    });
    check.require(health.timeout_ms > 0, "ls.health.timeout_ms", || {
        "must be at least 1".into()
    });
    check.require(health.fall >= 1, "ls.health.fall", || {
        "must be at least 1".into()
    });
    check.require(health.rise >= 1, "ls.health.rise", || {
        "must be at least 1".into()
    });
    if let Err(msg) = parse_question(&health.query) {
        check.push(
            &["ls.health.query"],
            format!("{msg}, got {:?}", health.query),
        );
    }
}

/// The rules for the `[[ts]]` at index `i`.
fn check_ts(i: usize, ts: &TsConfig, check: &mut Checker<'_>) {
    let key = |k: &str| format!("ts.{i}.{k}");
    let who = &ts.name;
    check.require(!ts.zones.is_empty(), &key("zones"), || {
        format!("table server {who:?} needs at least one zone file")
    });
    if let Err(msg) = parse_name(&ts.origin) {
        check.push(&[&key("origin")], msg);
    }
    check.require(ts.ttl <= MAX_TTL, &key("ttl"), || {
        format!("must be at most {MAX_TTL} (RFC 2181), got {}", ts.ttl)
    });
    check.require(ts.workers != Some(0), &key("workers"), || {
        "must be at least 1".into()
    });
    for (name, ratio) in [
        ("delay_ratio", ts.fault.delay_ratio),
        ("drop_ratio", ts.fault.drop_ratio),
    ] {
        check.require(
            (0.0..=1.0).contains(&ratio),
            &key(&format!("fault.{name}")),
            || format!("must be in [0, 1], got {ratio}"),
        );
    }
}

/// Names under `table` (an array of tables) must be non-empty and unique.
fn check_names<'n>(
    names: impl Iterator<Item = &'n str>,
    table: &str,
    what: &str,
    check: &mut Checker<'_>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.enumerate() {
        let path = format!("{table}.{i}.name");
        if name.trim().is_empty() {
            check.push(&[&path], format!("a {what} name must not be empty"));
        } else if seen.contains(&name) {
            check.push(&[&path], format!("duplicate {what} name {name:?}"));
        }
        seen.push(name);
    }
}

/// No two listeners on one address, and no backend pointing at the LS's own listener.
fn check_listeners(config: &Config, check: &mut Checker<'_>) {
    let mut listeners: Vec<(String, String, SocketAddr)> = Vec::new();
    if let Some(ls) = &config.ls {
        for (i, addr) in ls.listen.iter().enumerate() {
            listeners.push((format!("ls.listen.{i}"), "ls.listen".into(), *addr));
        }
        if let Some(addr) = ls.metrics {
            listeners.push(("ls.metrics".into(), "ls.metrics".into(), addr));
        }
    }
    for (i, ts) in config.ts.iter().enumerate() {
        let owner = format!("table server {:?}", ts.name);
        listeners.push((format!("ts.{i}.listen"), owner, ts.listen));
    }
    for (j, (path, _, addr)) in listeners.iter().enumerate() {
        if let Some((_, owner, _)) = listeners[..j].iter().find(|l| overlap(l.2, *addr)) {
            check.push(&[path], format!("{addr} is already used by {owner}"));
        }
    }
    if let Some(ls) = &config.ls {
        for (i, backend) in ls.backend.iter().enumerate() {
            if ls.listen.iter().any(|l| overlap(*l, backend.addr)) {
                check.push(
                    &[&format!("ls.backend.{i}.addr")],
                    format!(
                        "{} is the LS's own listener; it would forward to itself",
                        backend.addr
                    ),
                );
            }
        }
    }
}

/// Whether sockets bound to `a` and `b` would compete for the same port.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// A dotted path with array indices (`ts.1.fault.drop_ratio`) as shown to users
/// (`ts.fault.drop_ratio`).
fn display_path(path: &str) -> String {
    path.split('.')
        .filter(|seg| !seg.is_empty() && seg.parse::<usize>().is_err())
        .collect::<Vec<_>>()
        .join(".")
}

/// Turns a toml/serde error into a [`ConfigError::Parse`] naming the line and the key.
fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let raw = err.message().trim().replace('\n', "; ");
    let (line, msg) = match err.span() {
        Some(span) => {
            let map = SourceMap::new(text);
            (Some(map.line_at(span.start)), describe(&map, span, &raw))
        }
        None => (None, raw),
    };
    ConfigError::Parse {
        file: path.to_path_buf(),
        line,
        msg,
    }
}

/// Rewrites serde's message for the value or key at `span` so it names the key.
fn describe(map: &SourceMap<'_>, span: Range<usize>, raw: &str) -> String {
    if raw == "duplicate key" {
        let key = map.text.get(span).unwrap_or_default();
        return format!("duplicate key '{key}'");
    }
    let Some(node) = map.node_at(span.start) else {
        return raw.to_owned();
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let parent = node.path.rsplit_once('.').map_or("", |(p, _)| p);
        let what = if node.table { "table" } else { "key" };
        let mut msg = format!("unknown {what} '{field}' {}", table_label(parent));
        let known = backticked(expected);
        match closest(field, &known) {
            Some(best) => msg.push_str(&format!(" (did you mean '{best}'?)")),
            None if !known.is_empty() => {
                msg.push_str(&format!("; valid keys: {}", known.join(", ")));
            }
            None => {}
        }
        return msg;
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("missing key '{field}' {}", table_label(&node.path));
    }
    let key = display_path(&node.path);
    if let Some(choices) = keyword_choices(&key) {
        // serde says "unknown variant `x`, expected ..." for a bad string and toml says
        // "wanted string or table" for a number or a bool: say the same for both.
        let got = map.text.get(span).unwrap_or_default().trim();
        return format!("{key}: expected one of {}, got {got}", choices.join(", "));
    }
    if key.is_empty() {
        raw.to_owned()
    } else {
        format!("{key}: {raw}")
    }
}

/// The values allowed for the keyword key `key` (as shown to users), if it is one.
fn keyword_choices(key: &str) -> Option<Vec<&'static str>> {
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Option<Vec<&'static str>> {
        Some(all.iter().map(|&v| name(v)).collect())
    }
    match key {
        "ls.strategy" => names(Strategy::ALL, Strategy::as_str),
        "ls.order" => names(Order::ALL, Order::as_str),
        "ls.layout" => names(Layout::ALL, Layout::as_str),
        "ls.on_timeout" => names(OnTimeout::ALL, OnTimeout::as_str),
        "ts.on_miss" => names(OnMiss::ALL, OnMiss::as_str),
        _ => None,
    }
}

/// `in [ls]`, `in [[ts]]`, `at top level` for a table's indexed path.
fn table_label(path: &str) -> String {
    let name = display_path(path);
    if name.is_empty() {
        "at top level".to_owned()
    } else if path
        .rsplit('.')
        .next()
        .is_some_and(|seg| seg.parse::<usize>().is_ok())
    {
        format!("in [[{name}]]")
    } else {
        format!("in [{name}]")
    }
}

/// The words between backticks in serde's "expected ..." text.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The known key closest to a misspelt `word`, if it is close enough to be a typo.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// One key, table or array element of the file, with where it is.
#[derive(Debug)]
struct Node {
    /// Dotted path with array indices, e.g. `ls.backend.1.addr`.
    path: String,
    /// Where the key is written (for array elements: where the element is).
    key: Range<usize>,
    /// Where the value is written (for `[table]` headers: the header).
    value: Range<usize>,
    /// Whether the value is a table.
    table: bool,
}

/// Where each key of a TOML text is, from toml's own spanned parse.
struct SourceMap<'a> {
    /// The text.
    text: &'a str,
    /// Every key and array element (empty when the text is not valid TOML).
    nodes: Vec<Node>,
}

impl<'a> SourceMap<'a> {
    /// Indexes `text`.
    fn new(text: &'a str) -> Self {
        let mut nodes = Vec::new();
        if let Ok(root) = DeTable::parse(text) {
            index_table(root.get_ref(), "", &mut nodes);
        }
        Self { text, nodes }
    }

    /// The 1-based line of byte `offset`.
    fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The line of the first of `paths` written in the file, else of the nearest table
    /// enclosing the first path.
    fn line_of_any(&self, paths: &[&str]) -> Option<usize> {
        let exact = paths.iter().find_map(|p| self.find(p));
        let node = exact.or_else(|| {
            let mut path = *paths.first()?;
            while let Some((parent, _)) = path.rsplit_once('.') {
                if let Some(node) = self.find(parent) {
                    return Some(node);
                }
                path = parent;
            }
            None
        })?;
        Some(self.line_at(node.key.start))
    }

    /// The node at exactly `path`.
    fn find(&self, path: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.path == path)
    }

    /// The key written at `offset`, else the innermost value containing it.
    fn node_at(&self, offset: usize) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.key.start == offset && n.key != n.value)
            .or_else(|| {
                self.nodes
                    .iter()
                    .filter(|n| {
                        n.value.start <= offset && offset < n.value.end.max(n.value.start + 1)
                    })
                    .max_by_key(|n| n.path.len())
            })
    }
}

/// Adds a node for every key under `table` (at `prefix`) to `out`, recursively.
fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Node>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        index_value(value.get_ref(), &path, key.span(), value.span(), out);
    }
}

/// Adds the node for one value, and for what it contains.
fn index_value(
    value: &DeValue<'_>,
    path: &str,
    key: Range<usize>,
    span: Range<usize>,
    out: &mut Vec<Node>,
) {
    out.push(Node {
        path: path.to_owned(),
        key,
        value: span,
        table: value.is_table(),
    });
    match value {
        DeValue::Table(table) => index_table(table, path, out),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                let span = item.span();
                index_value(
                    item.get_ref(),
                    &format!("{path}.{i}"),
                    span.clone(),
                    span,
                    out,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "config.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new(FILE))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// A minimal valid config with one backend and one ts, for the rule tests.
    const BASE: &str = r#"[ls]
listen = ["127.0.0.1:5300"]

[[ls.backend]]
name = "ts1"
addr = "127.0.0.1:5301"

[[ts]]
name = "ts1"
listen = "127.0.0.1:5301"
zones = ["zones/ts1.txt"]
"#;

    #[test]
    fn shipped_config_parses_to_the_default_deployment() {
        let path = Path::new("/etc/dnslb/config.toml");
        let config = Config::from_toml(include_str!("../config.toml"), path).unwrap();
        assert_eq!(config.path, path);
        let ls = config.ls.as_ref().unwrap();
        assert_eq!(ls.listen, vec![addr("127.0.0.1:5300")]);
        assert_eq!(ls.strategy, Strategy::Hedge);
        assert_eq!(ls.order, Order::LeastOutstanding);
        assert_eq!(ls.layout, Layout::Partitioned);
        assert_eq!(ls.metrics, Some(addr("127.0.0.1:9153")));
        assert_eq!(ls.health, HealthConfig::default());
        assert_eq!(
            ls.backend,
            vec![
                BackendConfig {
                    name: "ts1".into(),
                    addr: addr("127.0.0.1:5301"),
                    weight: 1
                },
                BackendConfig {
                    name: "ts2".into(),
                    addr: addr("127.0.0.1:5302"),
                    weight: 1
                },
            ]
        );
        // Everything else is at its default.
        let expected = LsConfig {
            metrics: ls.metrics,
            backend: ls.backend.clone(),
            ..LsConfig::default()
        };
        assert_eq!(*ls, expected);

        assert_eq!(config.ts.len(), 2);
        let ts1 = config.ts_by_name("ts1").unwrap();
        let mut want = TsConfig::new(
            "ts1",
            addr("127.0.0.1:5301"),
            vec![PathBuf::from("/etc/dnslb/zones/ts1.txt")],
        );
        want.axfr_allow = vec![net("127.0.0.0/8")];
        assert_eq!(*ts1, want);
        let ts2 = config.ts_by_name("ts2").unwrap();
        assert_eq!(ts2.listen, addr("127.0.0.1:5302"));
        assert_eq!(ts2.zones, vec![PathBuf::from("/etc/dnslb/zones/ts2.txt")]);
        assert_eq!(ts2.axfr_allow, vec![net("127.0.0.0/8")]);
        assert!(config.ts_by_name("ts3").is_none());
    }

    #[test]
    fn shipped_config_mentions_every_key() {
        let text = include_str!("../config.toml");
        for key in [
            "listen",
            "workers",
            "strategy",
            "order",
            "layout",
            "timeout_ms",
            "on_timeout",
            "synth_ttl",
            "try_timeout_ms",
            "hedge_delay_ms",
            "hedge_percentile",
            "hedge_min_ms",
            "hedge_max_ms",
            "hedge_budget_pct",
            "max_inflight",
            "allow",
            "rate_limit_qps",
            "metrics",
            "sticky_size",
            "interval_ms",
            "every_queries",
            "query",
            "fall",
            "rise",
            "name",
            "addr",
            "weight",
            "zones",
            "origin",
            "ttl",
            "on_miss",
            "axfr_allow",
            "notify",
            "fault",
            "delay_ms",
            "delay_ratio",
            "drop_ratio",
        ] {
            assert!(text.contains(&format!("{key} =")), "{key} missing");
        }
    }

    #[test]
    fn omitted_keys_take_the_spec_defaults() {
        let config = parse(
            "[ls]\n[[ls.backend]]\nname = \"a\"\naddr = \"10.0.0.1:53\"\n\
             [[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.txt\"]\n",
        )
        .unwrap();
        let ls = config.ls.unwrap();
        assert_eq!(ls.listen, vec![addr("127.0.0.1:5300")]);
        assert_eq!(ls.workers, available_cores());
        assert_eq!(ls.strategy, Strategy::Hedge);
        assert_eq!(ls.order, Order::LeastOutstanding);
        assert_eq!(ls.layout, Layout::Partitioned);
        assert_eq!(ls.timeout_ms, 1500);
        assert_eq!(ls.on_timeout, OnTimeout::Nxdomain);
        assert_eq!(ls.synth_ttl, 5);
        assert_eq!(ls.try_timeout_ms, 500);
        assert_eq!(ls.hedge_delay_ms, HedgeDelay::Adaptive);
        assert_eq!(ls.hedge_percentile, 95.0);
        assert_eq!(ls.hedge_min_ms, 2);
        assert_eq!(ls.hedge_max_ms, 200);
        assert_eq!(ls.hedge_budget_pct, 10.0);
        assert_eq!(ls.max_inflight, 65536);
        assert_eq!(
            ls.allow,
            [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16"
            ]
            .map(net)
            .to_vec()
        );
        assert_eq!(ls.rate_limit_qps, 0);
        assert_eq!(ls.metrics, None);
        assert_eq!(ls.sticky_size, 100_000);
        assert_eq!(
            ls.health,
            HealthConfig {
                interval_ms: 1000,
                every_queries: 0,
                query: ". SOA".into(),
                fall: 3,
                rise: 2,
                timeout_ms: 500,
            }
        );
        assert_eq!(ls.backend[0].weight, 1);
        let ts = &config.ts[0];
        assert_eq!(ts.origin, ".");
        assert_eq!(ts.ttl, 300);
        assert_eq!(ts.on_miss, OnMiss::Nxdomain);
        assert!(ts.axfr_allow.is_empty());
        assert!(ts.notify.is_empty());
        assert_eq!(ts.fault, Fault::default());
        assert_eq!(ts.workers, None);
        assert_eq!(ts.worker_count(), available_cores());
        assert_eq!(
            *ts,
            TsConfig::new("t", addr("127.0.0.1:0"), vec!["z.txt".into()])
        );
    }

    #[test]
    fn ts_only_config_has_no_ls() {
        let config =
            parse("[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.txt\"]\n").unwrap();
        assert!(config.ls.is_none());
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"
[ls]
listen = ["127.0.0.1:6300", "[::1]:6300"]
workers = 3
strategy = "sequential"
order = "weighted-random"
layout = "replicated"
timeout_ms = 900
on_timeout = "drop"
synth_ttl = 7
try_timeout_ms = 300
hedge_delay_ms = 20
hedge_percentile = 99.5
hedge_min_ms = 1
hedge_max_ms = 50
hedge_budget_pct = 5.5
max_inflight = 10
allow = ["0.0.0.0/0", "192.0.2.7", "2001:db8::1"]
rate_limit_qps = 100
metrics = "127.0.0.1:9999"
sticky_size = 10
health = { interval_ms = 10, every_queries = 100, query = "example.com a", fall = 1, rise = 4, timeout_ms = 9 }
backend = [{ name = "x", addr = "[::1]:53", weight = 3 }]

[[ts]]
name = "t"
listen = "127.0.0.1:6301"
zones = ["/abs/a.zone", "b.txt"]
origin = "example.com"
ttl = 60
on_miss = "silent"
axfr_allow = ["::1"]
notify = ["127.0.0.1:53"]
fault.delay_ms = 30
fault.delay_ratio = 0.5
fault.drop_ratio = 1
workers = 2
"#,
        )
        .unwrap();
        let ls = config.ls.unwrap();
        assert_eq!(ls.listen, vec![addr("127.0.0.1:6300"), addr("[::1]:6300")]);
        assert_eq!(ls.workers, 3);
        assert_eq!(ls.strategy, Strategy::Sequential);
        assert_eq!(ls.order, Order::WeightedRandom);
        assert_eq!(ls.layout, Layout::Replicated);
        assert_eq!(ls.timeout_ms, 900);
        assert_eq!(ls.on_timeout, OnTimeout::Drop);
        assert_eq!(ls.synth_ttl, 7);
        assert_eq!(ls.try_timeout_ms, 300);
        assert_eq!(ls.hedge_delay_ms, HedgeDelay::Fixed(20));
        assert_eq!(ls.hedge_percentile, 99.5);
        assert_eq!((ls.hedge_min_ms, ls.hedge_max_ms), (1, 50));
        assert_eq!(ls.hedge_budget_pct, 5.5);
        assert_eq!(ls.max_inflight, 10);
        assert_eq!(
            ls.allow,
            vec![
                net("0.0.0.0/0"),
                net("192.0.2.7/32"),
                net("2001:db8::1/128")
            ]
        );
        assert_eq!(ls.rate_limit_qps, 100);
        assert_eq!(ls.metrics, Some(addr("127.0.0.1:9999")));
        assert_eq!(ls.sticky_size, 10);
        assert_eq!(ls.health.interval_ms, 10);
        assert_eq!(ls.health.every_queries, 100);
        assert_eq!(
            (ls.health.fall, ls.health.rise, ls.health.timeout_ms),
            (1, 4, 9)
        );
        assert_eq!(
            ls.health.probe_question().unwrap(),
            (Name::from_ascii("example.com.").unwrap(), RecordType::A)
        );
        assert_eq!(ls.backend[0].weight, 3);
        let ts = &config.ts[0];
        assert_eq!(
            ts.zones,
            vec![PathBuf::from("/abs/a.zone"), PathBuf::from("b.txt")]
        );
        assert_eq!(
            ts.origin_name().unwrap(),
            Name::from_ascii("example.com.").unwrap()
        );
        assert_eq!(ts.ttl, 60);
        assert_eq!(ts.on_miss, OnMiss::Silent);
        assert_eq!(ts.axfr_allow, vec![net("::1/128")]);
        assert_eq!(ts.notify, vec![addr("127.0.0.1:53")]);
        assert_eq!(
            ts.fault,
            Fault {
                delay_ms: 30,
                delay_ratio: 0.5,
                drop_ratio: 1.0
            }
        );
        assert_eq!(ts.workers, Some(2));
    }

    #[test]
    fn hedge_delay_is_a_number_or_adaptive() {
        let delay = |v: &str| {
            let text = BASE.replace("[ls]\n", &format!("[ls]\nhedge_delay_ms = {v}\n"));
            parse(&text).map(|c| c.ls.unwrap().hedge_delay_ms)
        };
        assert_eq!(delay("20").unwrap(), HedgeDelay::Fixed(20));
        assert_eq!(delay("0").unwrap(), HedgeDelay::Fixed(0));
        assert_eq!(delay("\"adaptive\"").unwrap(), HedgeDelay::Adaptive);
        for bad in ["\"fast\"", "-5", "2.5"] {
            let e = delay(bad).unwrap_err();
            assert_eq!(e.line(), Some(2), "{e}");
            assert!(
                e.to_string()
                    .starts_with("config.toml:2: ls.hedge_delay_ms: "),
                "{e}"
            );
            assert!(e.to_string().contains("\"adaptive\""), "{e}");
        }
        assert_eq!(HedgeDelay::Fixed(20).to_string(), "20");
        assert_eq!(HedgeDelay::Adaptive.to_string(), "adaptive");
    }

    #[test]
    fn percentages_accept_integers_and_floats() {
        let text = BASE.replace(
            "[ls]\n",
            "[ls]\nhedge_percentile = 90\nhedge_budget_pct = 2.5\n",
        );
        let ls = parse(&text).unwrap().ls.unwrap();
        assert_eq!(ls.hedge_percentile, 90.0);
        assert_eq!(ls.hedge_budget_pct, 2.5);
    }

    #[test]
    fn unknown_key_at_top_level() {
        assert_eq!(
            err("[ls]\n\nlisten = []\n").lines().count(),
            1,
            "sanity: errors are one line"
        );
        let e = parse("# hi\nverbose = true\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(
            e.to_string(),
            "config.toml:2: unknown key 'verbose' at top level; valid keys: ls, ts"
        );
        assert_eq!(
            err("\n[lss]\nworkers = 1\n"),
            "config.toml:2: unknown table 'lss' at top level (did you mean 'ls'?)"
        );
    }

    #[test]
    fn unknown_key_in_ls() {
        let text = BASE.replace("[ls]\n", "[ls]\nworkers = 2\nhedge_dealy_ms = 20\n");
        assert_eq!(
            err(&text),
            "config.toml:3: unknown key 'hedge_dealy_ms' in [ls] (did you mean 'hedge_delay_ms'?)"
        );
        let text = format!("{BASE}\n[ls.health]\nfal = 2\n");
        assert_eq!(
            err(&text),
            "config.toml:14: unknown key 'fal' in [ls.health] (did you mean 'fall'?)"
        );
        let text = BASE.replace(
            "addr = \"127.0.0.1:5301\"",
            "addr = \"127.0.0.1:5301\"\nport = 1",
        );
        assert!(
            err(&text).starts_with("config.toml:7: unknown key 'port' in [[ls.backend]]"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn unknown_key_in_ts() {
        let text = format!("{BASE}on_mis = \"silent\"\n");
        assert_eq!(
            err(&text),
            "config.toml:12: unknown key 'on_mis' in [[ts]] (did you mean 'on_miss'?)"
        );
        // The second [[ts]], so the line must not be that of the first.
        let text = format!(
            "{BASE}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5302\"\nzones = []\ncolour = 1\n"
        );
        assert!(err(&text).starts_with("config.toml:17: unknown key 'colour' in [[ts]]"));
    }

    #[test]
    fn unknown_key_in_fault() {
        let text = format!("{BASE}fault = {{ delay_ms = 5, drop = 0.1 }}\n");
        assert_eq!(
            err(&text),
            "config.toml:12: unknown key 'drop' in [ts.fault]; valid keys: delay_ms, delay_ratio, drop_ratio"
        );
        let text = format!("{BASE}\n[ts.fault]\ndelay_ms = 5\ndelay_ration = 0.1\n");
        assert_eq!(
            err(&text),
            "config.toml:15: unknown key 'delay_ration' in [ts.fault] (did you mean 'delay_ratio'?)"
        );
    }

    #[test]
    fn bad_enum_value_lists_the_choices() {
        let text = BASE.replace("[ls]\n", "[ls]\n# comment\n\n\n\nstrategy = \"fast\"\n");
        assert_eq!(
            err(&text),
            "config.toml:6: ls.strategy: expected one of race, hedge, sequential, got \"fast\""
        );
        let text = BASE.replace("[ls]\n", "[ls]\norder = \"random\"\n");
        assert_eq!(
            err(&text),
            "config.toml:2: ls.order: expected one of least-outstanding, round-robin, sticky, \
             consistent-hash, fixed, weighted-random, got \"random\""
        );
        let text = format!("{BASE}on_miss = \"ignore\"\n");
        assert_eq!(
            err(&text),
            "config.toml:12: ts.on_miss: expected one of nxdomain, silent, got \"ignore\""
        );
        let text = BASE.replace("[ls]\n", "[ls]\non_timeout = 3\n");
        assert_eq!(
            err(&text),
            "config.toml:2: ls.on_timeout: expected one of nxdomain, servfail, drop, got 3"
        );
    }

    #[test]
    fn keyword_names_match_serde() {
        fn check<T: for<'de> Deserialize<'de> + PartialEq + fmt::Debug + Copy>(
            all: &[T],
            name: impl Fn(T) -> &'static str,
        ) {
            for &v in all {
                let parsed: T =
                    T::deserialize(de::value::StrDeserializer::<de::value::Error>::new(name(v)))
                        .unwrap();
                assert_eq!(parsed, v);
            }
        }
        check(Strategy::ALL, Strategy::as_str);
        check(Order::ALL, Order::as_str);
        check(Layout::ALL, Layout::as_str);
        check(OnTimeout::ALL, OnTimeout::as_str);
        check(OnMiss::ALL, OnMiss::as_str);
        assert_eq!(Order::ConsistentHash.to_string(), "consistent-hash");
    }

    #[test]
    fn bad_cidr_names_the_key_and_line() {
        let text = BASE.replace(
            "[ls]\n",
            "[ls]\nallow = [\n  \"127.0.0.0/8\",\n  \"10.0.0.0/33\",\n]\n",
        );
        assert_eq!(
            err(&text),
            "config.toml:4: ls.allow: invalid network \"10.0.0.0/33\": expected CIDR like \
             \"10.0.0.0/8\" or an IP address"
        );
        let text = format!("{BASE}axfr_allow = [\"localhost\"]\n");
        assert!(
            err(&text).starts_with("config.toml:12: ts.axfr_allow: invalid network \"localhost\"")
        );
    }

    #[test]
    fn bad_address_names_the_key_and_line() {
        let text = BASE.replace("\"127.0.0.1:5301\"\n\n", "\"127.0.0.1\"\n\n");
        assert_eq!(
            err(&text),
            "config.toml:6: ls.backend.addr: invalid address \"127.0.0.1\": expected IP:port, \
             like \"127.0.0.1:5300\" or \"[::1]:5300\""
        );
    }

    #[test]
    fn wrong_type_and_missing_key() {
        let text = format!("{BASE}ttl = \"long\"\n");
        assert_eq!(
            err(&text),
            "config.toml:12: ts.ttl: invalid type: string \"long\", expected u32"
        );
        let text = format!("{BASE}ttl = -1\n");
        assert!(err(&text).starts_with("config.toml:12: ts.ttl: invalid value"));
        let text = BASE.replace("zones = [\"zones/ts1.txt\"]\n", "");
        assert_eq!(err(&text), "config.toml:8: missing key 'zones' in [[ts]]");
    }

    #[test]
    fn toml_syntax_errors_have_a_line() {
        let e = parse("[ls]\nworkers = 2\nworkers = 3\n").unwrap_err();
        assert_eq!(e.to_string(), "config.toml:3: duplicate key 'workers'");
        let e = parse("[ls]\n\nstrategy = hedge\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { line: Some(3), .. }), "{e}");
        assert!(e.to_string().starts_with("config.toml:3: "));
        assert_eq!(e.to_string().lines().count(), 1);
    }

    #[test]
    fn relative_zone_paths_resolve_against_the_config_folder() {
        let config = Config::from_toml(BASE, Path::new("/srv/dns/config.toml")).unwrap();
        assert_eq!(
            config.ts[0].zones,
            vec![PathBuf::from("/srv/dns/zones/ts1.txt")]
        );
        let config = Config::from_toml(BASE, Path::new("config.toml")).unwrap();
        assert_eq!(config.ts[0].zones, vec![PathBuf::from("zones/ts1.txt")]);
        let text = BASE.replace("zones/ts1.txt", "/var/zones/ts1.txt");
        let config = Config::from_toml(&text, Path::new("/srv/dns/config.toml")).unwrap();
        assert_eq!(
            config.ts[0].zones,
            vec![PathBuf::from("/var/zones/ts1.txt")]
        );
    }

    #[test]
    fn load_reads_the_file_and_reports_io_errors() {
        let dir = std::env::temp_dir().join(format!("dnslb-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, BASE).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.path, path);
        assert_eq!(config.ts[0].zones, vec![dir.join("zones/ts1.txt")]);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot read: ", path.display()))
        );
    }

    /// Asserts that `text` breaks exactly one rule, reported as `want` (line and message).
    #[track_caller]
    fn rejects(text: &str, want: &str) {
        match Config::diagnose(text, Path::new(FILE)) {
            Ok(_) => panic!("accepted, wanted {want}"),
            Err(problems) => {
                let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
                assert_eq!(got, vec![want.to_owned()]);
            }
        }
        assert_eq!(parse(text).unwrap_err().to_string(), want);
    }

    fn ls_with(lines: &str) -> String {
        BASE.replace("[ls]\n", &format!("[ls]\n{lines}\n"))
    }

    #[test]
    fn base_is_valid() {
        parse(BASE).unwrap();
    }

    #[test]
    fn rejects_an_empty_config() {
        rejects(
            "# nothing\n",
            "config.toml: nothing to run: the config has neither [ls] nor [[ts]]",
        );
    }

    #[test]
    fn rejects_bad_ts_names() {
        let second = "\n[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5302\"\nzones = [\"b\"]\n";
        rejects(
            &format!("{BASE}{second}"),
            "config.toml:14: ts.name: duplicate table server name \"ts1\"",
        );
        rejects(
            &BASE.replace("name = \"ts1\"\nlisten", "name = \"\"\nlisten"),
            "config.toml:9: ts.name: a table server name must not be empty",
        );
    }

    #[test]
    fn rejects_bad_backend_names() {
        let second = "[[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5302\"\n\n[[ts]]";
        rejects(
            &BASE.replacen("[[ts]]", second, 1),
            "config.toml:9: ls.backend.name: duplicate backend name \"ts1\"",
        );
        rejects(
            &BASE.replace("name = \"ts1\"\naddr", "name = \" \"\naddr"),
            "config.toml:5: ls.backend.name: a backend name must not be empty",
        );
    }

    #[test]
    fn rejects_ls_without_backends() {
        let text = "\n[ls]\nworkers = 1\n";
        rejects(
            text,
            "config.toml:2: ls.backend: [ls] needs at least one [[ls.backend]]",
        );
    }

    #[test]
    fn rejects_listeners_on_one_address() {
        rejects(
            &BASE.replace("listen = \"127.0.0.1:5301\"", "listen = \"127.0.0.1:5300\""),
            "config.toml:10: ts.listen: 127.0.0.1:5300 is already used by ls.listen",
        );
        rejects(
            &ls_with("metrics = \"0.0.0.0:5301\""),
            "config.toml:11: ts.listen: 127.0.0.1:5301 is already used by ls.metrics",
        );
        let two_ts = format!(
            "{BASE}\n[[ts]]\nname = \"ts2\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"b\"]\n"
        );
        rejects(
            &two_ts,
            "config.toml:15: ts.listen: 127.0.0.1:5301 is already used by table server \"ts1\"",
        );
        // Port 0 (the OS picks a free port) never conflicts.
        let text = BASE
            .replace("127.0.0.1:5300", "127.0.0.1:0")
            .replace("listen = \"127.0.0.1:5301\"", "listen = \"127.0.0.1:0\"");
        parse(&text).unwrap();
    }

    #[test]
    fn rejects_a_backend_that_is_the_ls_itself() {
        rejects(
            &BASE.replace("addr = \"127.0.0.1:5301\"", "addr = \"127.0.0.1:5300\""),
            "config.toml:6: ls.backend.addr: 127.0.0.1:5300 is the LS's own listener; \
             it would forward to itself",
        );
        rejects(
            &BASE.replace("addr = \"127.0.0.1:5301\"", "addr = \"0.0.0.0:5301\""),
            "config.toml:6: ls.backend.addr: 0.0.0.0:5301 is not an address queries can be sent to",
        );
    }

    #[test]
    fn rejects_out_of_range_numbers() {
        let cases = [
            (
                "hedge_percentile = 0",
                "ls.hedge_percentile: must be in (0, 100], got 0",
            ),
            (
                "hedge_percentile = 100.5",
                "ls.hedge_percentile: must be in (0, 100], got 100.5",
            ),
            (
                "hedge_percentile = nan",
                "ls.hedge_percentile: must be in (0, 100], got NaN",
            ),
            (
                "hedge_budget_pct = -1",
                "ls.hedge_budget_pct: must be in [0, 100], got -1",
            ),
            (
                "hedge_budget_pct = 101",
                "ls.hedge_budget_pct: must be in [0, 100], got 101",
            ),
            (
                "hedge_min_ms = 300",
                "ls.hedge_min_ms: hedge_min_ms (300) must not exceed hedge_max_ms (200)",
            ),
            ("workers = 0", "ls.workers: must be at least 1"),
            ("timeout_ms = 0", "ls.timeout_ms: must be at least 1"),
            (
                "try_timeout_ms = 0",
                "ls.try_timeout_ms: must be at least 1",
            ),
            ("max_inflight = 0", "ls.max_inflight: must be at least 1"),
            ("health.fall = 0", "ls.health.fall: must be at least 1"),
            ("health.rise = 0", "ls.health.rise: must be at least 1"),
            (
                "health.interval_ms = 0",
                "ls.health.interval_ms: must be at least 1",
            ),
            (
                "synth_ttl = 4294967295",
                "ls.synth_ttl: must be at most 2147483647 (RFC 2181), got 4294967295",
            ),
        ];
        for (line, msg) in cases {
            rejects(&ls_with(line), &format!("config.toml:2: {msg}"));
        }
        // Budget bounds are inclusive.
        parse(&ls_with("hedge_budget_pct = 0")).unwrap();
        parse(&ls_with("hedge_budget_pct = 100\nhedge_percentile = 100")).unwrap();
        parse(&ls_with("hedge_min_ms = 7\nhedge_max_ms = 7")).unwrap();
    }

    #[test]
    fn min_above_max_points_at_the_key_that_is_written() {
        // hedge_min_ms is left at its default (2): the line is that of hedge_max_ms.
        rejects(
            &ls_with("\nhedge_max_ms = 1"),
            "config.toml:3: ls.hedge_min_ms: hedge_min_ms (2) must not exceed hedge_max_ms (1)",
        );
    }

    #[test]
    fn rejects_bad_health_query() {
        let text = format!("{BASE}\n[ls.health]\nquery = \"example.com BOGUS\"\n");
        rejects(
            &text,
            "config.toml:14: ls.health.query: unknown record type \"BOGUS\", got \"example.com BOGUS\"",
        );
        let health = HealthConfig {
            query: "SOA".into(),
            ..HealthConfig::default()
        };
        assert_eq!(
            health.probe_question().unwrap_err().to_string(),
            "ls.health.query: expected \"NAME TYPE\", like \". SOA\" or \"example.com A\", got \"SOA\""
        );
        assert_eq!(
            HealthConfig::default().probe_question().unwrap(),
            (Name::root(), RecordType::SOA)
        );
    }

    #[test]
    fn rejects_bad_ts_values() {
        rejects(
            &BASE.replace("zones = [\"zones/ts1.txt\"]", "zones = []"),
            "config.toml:11: ts.zones: table server \"ts1\" needs at least one zone file",
        );
        rejects(
            &format!("{BASE}origin = \"bad..name\"\n"),
            "config.toml:12: ts.origin: \"bad..name\" is not a DNS name: \
             Malformed label",
        );
        rejects(
            &format!("{BASE}fault = {{ drop_ratio = 1.5 }}\n"),
            "config.toml:12: ts.fault.drop_ratio: must be in [0, 1], got 1.5",
        );
        rejects(
            &format!("{BASE}\n[ts.fault]\ndelay_ms = 1\ndelay_ratio = -0.1\n"),
            "config.toml:15: ts.fault.delay_ratio: must be in [0, 1], got -0.1",
        );
        rejects(
            &format!("{BASE}workers = 0\n"),
            "config.toml:12: ts.workers: must be at least 1",
        );
    }

    #[test]
    fn problems_lists_every_rule_broken_in_file_order() {
        let text = ls_with("workers = 0\ntimeout_ms = 0")
            .replace("zones = [\"zones/ts1.txt\"]", "zones = []");
        let problems = Config::diagnose(&text, Path::new(FILE)).unwrap_err();
        let lines: Vec<_> = problems.iter().map(ConfigError::line).collect();
        assert_eq!(lines, vec![Some(2), Some(3), Some(13)]);
        // Built in code: same problems, no lines and no file.
        let config = Config::parse(&text, Path::new("")).unwrap();
        let problems = config.problems();
        assert_eq!(problems.len(), 3);
        assert!(problems.iter().all(|p| p.line().is_none()));
        assert_eq!(problems[0].to_string(), "ls.workers: must be at least 1");
        assert_eq!(config.validate().unwrap_err(), problems[0]);
    }

    #[test]
    fn configs_built_in_code_validate() {
        let mut ls = LsConfig::default();
        ls.backend.push(BackendConfig {
            name: "a".into(),
            addr: addr("127.0.0.1:5301"),
            weight: 1,
        });
        let config = Config {
            ls: Some(ls),
            ts: vec![TsConfig::new("a", addr("127.0.0.1:5301"), vec!["z".into()])],
            path: PathBuf::new(),
        };
        config.validate().unwrap();
    }
}

//! `[ls]`: [`LsConfig`], its `[ls.health]` and `[[ls.backend]]` tables, and the
//! [`HedgeDelay`] its key takes (its `[ls.cache]` table is in `cache`, its `[ls.tls]`
//! and `[ls.https]` in `tls`, its `[ls.dnstap]` in `dnstap`, its `[ls.anycast]` in `anycast`, its `[[ls.pool]]` tables in `pool`, its `[[ls.rule]]` and
//! `[[ls.response_rule]]` in `rules`, the keyword enums `[ls]` and `[[ls.pool]]` share
//! in `values`, its policy keys, which a pool may set too, declared once in `policy`).

use std::fmt;
use std::net::SocketAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::Deserializer;

use super::anycast::AnycastConfig;
use super::available_cores;
use super::cache::CacheConfig;
use super::dnstap::DnstapConfig;
use super::dynblock::DynBlockConfig;
use super::key::KeyConfig;
use super::pool::PoolConfig;
use super::quic::QuicConfig;
use super::rules::{ResponseRuleConfig, RuleConfig};
use super::tls::{HttpsConfig, TlsConfig};
use super::values::{
    EcsMode, Layout, OnTimeout, Order, ProbeQuestion, Strategy, de_addr, de_addrs, de_nets,
    de_opt_addr, de_word_or_number,
};

/// Client networks allowed when `ls.allow` is omitted: loopback and the private ranges.
const DEFAULT_ALLOW: [&str; 5] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
];

/// `backend_limit_min`'s default.
pub const BACKEND_LIMIT_MIN: u32 = 256;
/// `backend_limit_max`'s default: on (docs/BENCHMARKS.md "Overload": with
/// the LS reading faster than its backend answers, answered p99 18 ms in 10
/// of 10 rounds with it, up to 209 ms without).
pub const BACKEND_LIMIT_MAX: u32 = 4096;

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
        // serde's own words for a bad value ("invalid value: ..., expected ...").
        const EXPECTING: &str = "a whole number of milliseconds or \"adaptive\"";
        de_word_or_number(
            deserializer,
            EXPECTING,
            |v| match v {
                "adaptive" => Ok(HedgeDelay::Adaptive),
                _ => Err(format!("invalid value: string {v:?}, expected {EXPECTING}")),
            },
            |n| {
                u64::try_from(n)
                    .map(HedgeDelay::Fixed)
                    .map_err(|_| format!("invalid value: integer `{n}`, expected {EXPECTING}"))
            },
        )
    }
}

policy_keys!(ls_struct! {
/// `[ls]`: the load balancer. Its policy keys (`strategy`, `order`, `layout`,
/// `timeout_ms`, `on_timeout`: the ones a pool may set) come first, from `policy_keys!`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LsConfig {
    /// Addresses to serve on, UDP and TCP on each. \[`127.0.0.1:5300`\]
    #[serde(deserialize_with = "de_addrs")]
    pub listen: Vec<SocketAddr>,
    /// SO_REUSEPORT sockets/threads per listener. \[the CPUs this process may run on:
    /// its affinity mask, lowered to its cgroup v2 CPU quota rounded up\]
    pub workers: usize,
    /// Negative TTL (SOA minimum) of synthesized answers, in seconds. \[5\]
    pub synth_ttl: u32,
    /// Per-backend timeout under `sequential`, in ms. \[500\]
    pub try_timeout_ms: u64,
    /// Delay before hedging to the next backend. \[adaptive\]
    pub hedge_delay_ms: HedgeDelay,
    /// Latency percentile used by the adaptive hedge delay, in (0, 100]. \[95\]
    pub hedge_percentile: f64,
    /// Lower clamp of the adaptive hedge delay, in ms. \[2\]
    pub hedge_min_ms: u64,
    /// Upper clamp of the adaptive hedge delay, in ms. \[200\]
    pub hedge_max_ms: u64,
    /// Extra upstream queries allowed for delay-triggered hedges, in % of client queries. \[10\]
    pub hedge_budget_pct: f64,
    /// Client queries in flight past which new ones get SERVFAIL at once. \[65536\]
    pub max_inflight: usize,
    /// Lowest adaptive concurrency limit of a backend. \[256\]
    pub backend_limit_min: u32,
    /// Highest (and first) adaptive concurrency limit of a backend; 0 = no
    /// limit. \[0\]
    pub backend_limit_max: u32,
    /// Client networks allowed to query (others get REFUSED); a bare IP is a /32 or /128.
    /// \[loopback and private ranges\]
    #[serde(deserialize_with = "de_nets")]
    pub allow: Vec<IpNet>,
    /// Queries per second per client IP; 0 = off. \[0\]
    pub rate_limit_qps: u32,
    /// IPv6 clients share one rate-limit bucket per prefix of this length (a
    /// holder of a /64 can rotate addresses inside it), in [1, 128]. \[64\]
    pub rate_limit_v6_prefix: u8,
    /// Address of the metrics and status HTTP server; `None` (key omitted) = off. \[off\]
    #[serde(deserialize_with = "de_opt_addr")]
    pub metrics: Option<SocketAddr>,
    /// The key a state-changing request to the metrics listener must carry
    /// when it does not come from loopback. \[none: only loopback may\]
    pub api_key: Option<String>,
    /// Networks whose state-changing requests the metrics listener takes.
    /// \[loopback\]
    #[serde(deserialize_with = "de_nets")]
    pub control_allow: Vec<IpNet>,
    /// What the LS does with a client's EDNS Client Subnet option (RFC 7871)
    /// on the query it forwards. \[pass\]
    pub ecs: EcsMode,
    /// The text the LS answers `id.server.` and `hostname.bind.` (CH TXT,
    /// RFC 4892) with. \[the kernel's host name\]
    pub identity: Option<String>,
    /// Those questions answered REFUSED, but the anycast probe's (UDP from
    /// loopback). \[false\]
    pub hide_identity: bool,
    /// The dynamic block rules, `[[ls.dynamic_block]]`, in config order. \[none\]
    pub dynamic_block: Vec<DynBlockConfig>,
    /// Most names the `sticky` order remembers (bounds its memory). \[100000\]
    pub sticky_size: usize,
    /// The packet cache, `[ls.cache]`; `None` (table omitted) = no cache. \[off\]
    pub cache: Option<CacheConfig>,
    /// DNS over TLS, `[ls.tls]`; `None` (table omitted) = off. \[off\]
    pub tls: Option<TlsConfig>,
    /// DNS over HTTPS, `[ls.https]`; `None` (table omitted) = off. \[off\]
    pub https: Option<HttpsConfig>,
    /// DNS over QUIC, `[ls.quic]`; `None` (table omitted) = off. \[off\]
    pub quic: Option<QuicConfig>,
    /// dnstap of the client and forwarder messages, `[ls.dnstap]`; `None`
    /// (table omitted) = off. \[off\]
    pub dnstap: Option<DnstapConfig>,
    /// Anycast, `[ls.anycast]`: the stop's drain and `dnslb anycast`'s
    /// probe; `None` (table omitted) = off. \[off\]
    pub anycast: Option<AnycastConfig>,
    /// UDP through AF_XDP, `[ls.xdp]`; `None` (table omitted) = sockets only. \[off\]
    pub xdp: Option<LsXdpConfig>,
    /// Active health checks, `[ls.health]`.
    pub health: HealthConfig,
    /// The backends, `[[ls.backend]]`, in config order.
    pub backend: Vec<BackendConfig>,
    /// The pools, `[[ls.pool]]`, in config order: the names under their zones are
    /// asked of their backends only. \[none\]
    pub pool: Vec<PoolConfig>,
    /// The query rules, `[[ls.rule]]`, checked in config order at the door. \[none\]
    pub rule: Vec<RuleConfig>,
    /// The rules on the backends' answers, `[[ls.response_rule]]`, in config
    /// order. \[none\]
    pub response_rule: Vec<ResponseRuleConfig>,
    /// Not a TOML key: the TSIG key each backend's NOTIFYs must be signed
    /// with, by backend name, resolved from the whole file when it is read
    /// ([`super::Config::notify_key_of`]: its `notify_key`, else the
    /// `xfr_key` of the `[[ts]]` of this file it is).
    #[serde(skip)]
    pub notify_tsig: Vec<(String, KeyConfig)>,
    /// DNS Cookies' server secrets (RFC 9018) of the answers the LS makes
    /// itself, 32 hex digits each: the first makes server cookies, each is
    /// accepted. \[a random one made at start\]
    pub cookie_secret: super::cookie::CookieSecrets,
    /// Front load balancers whose PROXY protocol v2 header is required and
    /// believed: everything the LS does per client then uses the client it
    /// names. \[none\]
    #[serde(deserialize_with = "de_nets")]
    pub proxy_from: Vec<IpNet>,
}
});

impl Default for LsConfig {
    fn default() -> Self {
        policy_keys!(ls_defaults! { LsConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            workers: available_cores(),
            synth_ttl: 5,
            try_timeout_ms: 500,
            hedge_delay_ms: HedgeDelay::default(),
            hedge_percentile: 95.0,
            hedge_min_ms: 2,
            hedge_max_ms: 200,
            hedge_budget_pct: 10.0,
            max_inflight: 65536,
            backend_limit_min: BACKEND_LIMIT_MIN,
            backend_limit_max: BACKEND_LIMIT_MAX,
            allow: DEFAULT_ALLOW
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
            rate_limit_qps: 0,
            rate_limit_v6_prefix: 64,
            metrics: None,
            api_key: None,
            control_allow: super::dynblock::default_control_allow(),
            ecs: EcsMode::Pass,
            identity: None,
            hide_identity: false,
            dynamic_block: Vec::new(),
            sticky_size: 100_000,
            cache: None,
            tls: None,
            https: None,
            quic: None,
            dnstap: None,
            anycast: None,
            xdp: None,
            health: HealthConfig::default(),
            backend: Vec::new(),
            pool: Vec::new(),
            rule: Vec::new(),
            response_rule: Vec::new(),
            notify_tsig: Vec::new(),
            cookie_secret: Default::default(),
            proxy_from: Vec::new(),
        } })
    }
}

/// `[ls.health]`: active probes of the backends and the up/down hysteresis.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Probe every backend this often, in ms. \[1000\]
    pub interval_ms: u64,
    /// Also probe after this many client queries; 0 = off. \[0\]
    pub every_queries: u64,
    /// The probe's question, `"NAME TYPE"` in TOML, checked when the file is read.
    /// \[". SOA"\]
    pub query: ProbeQuestion,
    /// Failures in a row that mark a backend down. \[3\]
    pub fall: u32,
    /// Successes in a row that mark a backend up. \[2\]
    pub rise: u32,
    /// One probe's timeout, in ms. \[500\]
    pub timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            every_queries: 0,
            query: ProbeQuestion::root_soa(),
            fall: 3,
            rise: 2,
            timeout_ms: 500,
        }
    }
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
    /// Share under `weighted-random`. \[1\]
    #[serde(default = "one")]
    pub weight: u32,
    /// The `[[key]]` its NOTIFYs must be signed with (RFC 8945): then a
    /// NOTIFY from its address flushes the cache only when its TSIG
    /// verifies, and an unsigned one is refused. \[the `xfr_key` of the
    /// `[[ts]]` of this file at `addr`, if any; else none\]
    #[serde(default)]
    pub notify_key: Option<String>,
    /// How queries and health checks reach it: `udp`, `tls` or `quic`. \[udp\]
    #[serde(default)]
    pub transport: super::BackendTransport,
    /// The name its certificate must carry (tls, quic). \[the IP of `addr`\]
    #[serde(default)]
    pub tls_name: Option<String>,
    /// The PEM file of the roots its certificate is checked against (tls,
    /// quic; required with them); relative to the config file's folder.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// Send it a PROXY protocol v2 header naming the client: before each
    /// UDP query, at the start of a TCP connection (one client's queries
    /// a connection: no reuse across clients); a LOCAL one before each
    /// health check. Not with `tls` or `quic`. \[false\]
    #[serde(default)]
    pub proxy: bool,
}

/// The default backend weight.
fn one() -> u32 {
    1
}

/// `[ls.xdp]`: the LS's UDP through AF_XDP on these interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LsXdpConfig {
    /// Interfaces whose UDP to `listen` goes through AF_XDP (every queue of each).
    pub interfaces: Vec<String>,
    /// How the LS reaches its backends. \[sockets\]
    #[serde(default)]
    pub upstream: XdpUpstream,
}

/// `upstream` in `[ls.xdp]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpUpstream {
    /// Through the kernel's sockets.
    #[default]
    Sockets,
    /// Through the AF_XDP sockets (backends behind the same interfaces).
    Xdp,
}

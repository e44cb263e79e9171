//! What a TS serves and how ([`TsSettings`]), from a `[[ts]]` section of the
//! config or from `dnslb ts`'s flags ([`parse_origin`]).
use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::config::{
    Config, Dnssec, Fault, KeyConfig, OnMiss, RrlConfig, SecondaryZoneConfig, ServiceConfig,
    TsConfig, ValueError, parse_name,
};
use crate::dns::cookie::ServerSecrets;

/// What a TS serves and how.
#[derive(Debug, Clone)]
pub struct TsSettings {
    /// Name used in logs.
    pub name: String,
    /// Zone files: PROJ tables and `.zone` master files.
    pub zones: Vec<PathBuf>,
    /// Origin of the PROJ tables.
    pub origin: Name,
    /// TTL of PROJ-table records.
    pub ttl: u32,
    /// What to do for a name that does not exist.
    pub on_miss: OnMiss,
    /// Clients allowed to transfer zones (AXFR over TCP).
    pub axfr_allow: Vec<IpNet>,
    /// The TSIG key transfers must be signed with, which signs their answers
    /// and the NOTIFYs (its secret re-read on each reload); `None`: off.
    pub xfr_key: Option<KeyConfig>,
    /// Secondaries to NOTIFY when a zone changes on reload.
    pub notify: Vec<SocketAddr>,
    /// Zone versions whose differences are kept for IXFR; 0 = none.
    pub ixfr_history: u32,
    /// Fault injection.
    pub fault: Fault,
    /// Name server identifier returned to queries that ask for it (RFC 5001).
    pub nsid: Option<String>,
    /// Sign the zones served (keys, algorithm, denial); `None`: served as read.
    pub dnssec: Option<Dnssec>,
    /// Health-following names (`[[ts.service]]`), added to their zones
    /// with every endpoint at load.
    pub services: Vec<ServiceConfig>,
    /// The zones served as a secondary, each with the `[[key]]` it names.
    pub secondaries: Vec<Secondary>,
    /// Where the secondary zones' last good copies are kept; `None`: nowhere.
    pub state_dir: Option<PathBuf>,
    /// The catalog zone it publishes of the zones of its files (RFC 9432).
    pub catalog: Option<Name>,
    /// The config file and its `[[ts]]` as read at start (`dnslb ts -c`),
    /// but for its zone files (`zones`: a TS of 100,000 zones keeps their
    /// paths once): a reload reads the file again to warn of the keys only
    /// a restart applies ([`TsSettings::started_as`]). `None`: not from a
    /// file.
    pub started_from: Option<(PathBuf, Box<TsConfig>)>,
    /// The catalog zone it consumes (RFC 9432): its members become
    /// secondary zones of its primary, with its key.
    pub catalog_from: Option<Secondary>,
    /// DNS Cookies' server secrets (`cookie_secret`, else one made at random).
    pub cookies: ServerSecrets,
    /// Whether it answers DNS Cookies: only with `cookie_secret` set (as
    /// NSD's `answer-cookie` and Knot's `mod-cookies` are turned on), so
    /// that the TSs behind one LS share the secret their cookies need.
    pub cookies_on: bool,
    /// Response rate limiting of its UDP answers (`rrl`); off by default.
    pub rrl: RrlConfig,
    /// Senders whose PROXY v2 header is required and believed; none: off.
    pub proxy_from: Vec<IpNet>,
}

/// A zone served as a secondary of a primary.
#[derive(Debug, Clone)]
pub struct Secondary {
    /// The zone.
    pub name: Name,
    /// The primary it transfers from and takes NOTIFYs from.
    pub primary: SocketAddr,
    /// The key its transfers and NOTIFYs are signed with.
    pub key: Option<KeyConfig>,
}

impl Secondary {
    /// The secondary zone `s` of `config`, with the `[[key]]` it names.
    fn of(config: &Config, s: &SecondaryZoneConfig) -> Self {
        Secondary {
            name: s.name.clone(),
            primary: s.primary,
            key: config.key_named(s.xfr_key.as_deref()).cloned(),
        }
    }
}

impl TsSettings {
    /// Whether `origin` is one of its secondary zones.
    pub fn is_secondary(&self, origin: &Name) -> bool {
        self.secondaries
            .iter()
            .any(|s| s.name.eq_ignore_root(origin))
    }
}

impl TsSettings {
    /// Settings from a `[[ts]]` section, whose values were all checked when the config
    /// was read.
    pub fn from_config(c: &TsConfig) -> Self {
        TsSettings {
            name: c.name.clone(),
            zones: c.zones.files.clone(),
            origin: c.origin.clone(),
            ttl: c.ttl,
            on_miss: c.on_miss,
            axfr_allow: c.axfr_allow.clone(),
            xfr_key: None,
            notify: c.notify.clone(),
            ixfr_history: c.ixfr_history,
            fault: c.fault,
            nsid: c.nsid.clone(),
            dnssec: c.dnssec.clone(),
            services: c.service.clone(),
            secondaries: Vec::new(),
            state_dir: c.state_dir.clone(),
            catalog: c.catalog.clone(),
            started_from: None,
            catalog_from: None,
            cookies: c.cookie_secret.server_secrets(),
            cookies_on: c.cookie_secret.is_set(),
            rrl: c.rrl.clone(),
            proxy_from: c.proxy_from.clone(),
        }
    }

    /// Settings from the `[[ts]]` `c` of `config`, with the `[[key]]` its
    /// `xfr_key` names.
    pub fn from_config_in(config: &Config, c: &TsConfig) -> Self {
        TsSettings {
            xfr_key: config.xfr_key_of(c).cloned(),
            secondaries: c
                .zones
                .secondaries
                .iter()
                .map(|s| Secondary::of(config, s))
                .collect(),
            // Its zone files are `zones`.
            started_from: Some((config.path.clone(), Box::new(c.without_files()))),
            catalog_from: c.catalog_from.as_ref().map(|s| Secondary::of(config, s)),
            ..Self::from_config(c)
        }
    }

    /// The config file it started from and its `[[ts]]` as read then, zone
    /// files included; `None` when not started from a file.
    pub fn started_as(&self) -> Option<(&std::path::Path, TsConfig)> {
        let (path, started) = self.started_from.as_ref()?;
        Some((path, started.with_files(&self.zones)))
    }

    /// Settings named `test` serving `zones`, every other key at its `[[ts]]`
    /// default (tests set the few they need over it).
    pub fn for_test(zones: Vec<PathBuf>) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::from_config(&TsConfig::new("test", listen, zones))
    }
}

impl TsSettings {
    /// A TS called `name` serving `zones`, PROJ tables under `origin` at
    /// `ttl`, and nothing else: NXDOMAIN for a miss, no transfers, no key,
    /// no NOTIFY, no faults, no NSID, 10 IXFR versions, no signing (`dnslb
    /// ts --listen` without a config, before its flags apply).
    pub fn serving(name: String, zones: Vec<PathBuf>, origin: Name, ttl: u32) -> Self {
        TsSettings {
            name,
            zones,
            origin,
            ttl,
            on_miss: OnMiss::Nxdomain,
            axfr_allow: Vec::new(),
            xfr_key: None,
            notify: Vec::new(),
            fault: Fault::default(),
            nsid: None,
            ixfr_history: 10,
            dnssec: None,
            services: Vec::new(),
            secondaries: Vec::new(),
            state_dir: None,
            catalog: None,
            started_from: None,
            catalog_from: None,
            cookies: ServerSecrets::random(),
            cookies_on: false,
            rrl: RrlConfig::default(),
            proxy_from: Vec::new(),
        }
    }
}

/// An origin given as text (`dnslb ts --origin`) that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0}")]
pub struct OriginError(pub ValueError);

/// Parses an origin such as `.` or `example.com` as a fully qualified name, as
/// `origin` in `config.toml` is parsed.
///
/// # Errors
/// Not a DNS name; the message shows the text, e.g.
/// `origin "a..b" is not a DNS name: Malformed label`.
pub fn parse_origin(s: &str) -> Result<Name, OriginError> {
    parse_name(s).map_err(OriginError)
}

//! `[[ts]]`: [`TsConfig`], one table server, with its [`Fault`] knobs and [`OnMiss`].

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use super::available_cores;
use super::cookie::CookieSecrets;
use super::dnstap::DnstapConfig;
use super::service::ServiceConfig;
use super::values::{de_addr, de_addrs, de_name, de_nets, de_opt_addr, de_opt_name};

keyword_enum! {
    /// `ts.on_miss`: the TS's answer for a name it does not hold.
    OnMiss, default Nxdomain {
        /// NXDOMAIN with the SOA in the authority section.
        Nxdomain = "nxdomain",
        /// No answer at all (the original course project's behaviour).
        Silent = "silent",
    }
}

keyword_enum! {
    /// `ts.dnssec.algorithm`: the algorithm of the keys the TS signs with.
    DnssecAlgorithm, default EcdsaP256Sha256 {
        /// ECDSA P-256 with SHA-256 (algorithm 13, RFC 6605).
        EcdsaP256Sha256 = "ecdsap256sha256",
        /// Ed25519 (algorithm 15, RFC 8080).
        Ed25519 = "ed25519",
    }
}

keyword_enum! {
    /// `ts.dnssec.denial`: how the TS's signed zones prove that names and types
    /// do not exist.
    Denial, default Nsec {
        /// NSEC (RFC 4034): owner names in the clear.
        Nsec = "nsec",
        /// NSEC3 (RFC 5155) as RFC 9276 asks: SHA-1, 0 iterations, no salt, no opt-out.
        Nsec3 = "nsec3",
    }
}

/// `ts.dnssec`: the TS signs its zones (PROJ tables and unsigned zone files) itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnssec {
    /// Folder of the zones' keys, in BIND's `K<zone>+<alg>+<tag>.key/.private` files
    /// (made on first start when absent); relative to the config file's folder.
    pub keys: PathBuf,
    /// Algorithm of the keys made and used. \[ecdsap256sha256\]
    #[serde(default)]
    pub algorithm: DnssecAlgorithm,
    /// Denial of existence. \[nsec\]
    #[serde(default)]
    pub denial: Denial,
}

/// `[[ts]]`: one table server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsConfig {
    /// Name used by `dnslb ts --name` and in logs (unique, non-empty).
    pub name: String,
    /// Addresses to serve on, UDP and TCP on each: one (`"ADDR"`) or a
    /// list; at least one.
    #[serde(deserialize_with = "super::listen::de_listen")]
    pub listen: Vec<SocketAddr>,
    /// PROJ tables and/or `.zone` files; relative paths are resolved against the config
    /// file's folder by [`Config::from_toml`](super::Config::from_toml). An entry may
    /// instead be a secondary zone, `{ name, primary, xfr_key }` ([`SecondaryZoneConfig`]).
    pub zones: ZoneList,
    /// Origin (SOA owner) of the PROJ tables, fully qualified; checked when the file is
    /// read. \["."\]
    #[serde(default = "root_origin", deserialize_with = "de_name")]
    pub origin: Name,
    /// TTL of the records served, in seconds. \[300\]
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// What to answer for a name it does not hold. \[nxdomain\]
    #[serde(default)]
    pub on_miss: OnMiss,
    /// Clients allowed to transfer the zone (AXFR); a bare IP is a /32 or /128. \[none\]
    #[serde(default, deserialize_with = "de_nets")]
    pub axfr_allow: Vec<IpNet>,
    /// The `[[key]]` whose TSIG an AXFR or IXFR must carry, and that signs the
    /// answers and the NOTIFYs sent. \[none\]
    #[serde(default)]
    pub xfr_key: Option<String>,
    /// Secondaries to NOTIFY on reload. \[none\]
    #[serde(default, deserialize_with = "de_addrs")]
    pub notify: Vec<SocketAddr>,
    /// Zone versions whose differences are kept for IXFR (RFC 1995); 0 = no
    /// IXFR (every transfer is a full one). \[10\]
    #[serde(default = "default_ixfr_history")]
    pub ixfr_history: u32,
    /// Fault injection for experiments. \[off\]
    #[serde(default)]
    pub fault: Fault,
    /// UDP workers; `None` = the CPUs this process may run on ([`super::available_cores`]).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Address of its own Prometheus `/metrics` HTTP server; `None` (key omitted) = off.
    /// \[off\]
    #[serde(default, deserialize_with = "de_opt_addr")]
    pub metrics: Option<SocketAddr>,
    /// Name server identifier (NSID, RFC 5001) returned, as the bytes of this string,
    /// to a query whose OPT asks for it (`dig +nsid`); 1 to 128 bytes.
    /// \[none\]
    #[serde(default)]
    pub nsid: Option<String>,
    /// Sign the zones it serves from PROJ tables and unsigned zone files; `None` (key
    /// omitted): served as read (unsigned, or pre-signed). \[off\]
    #[serde(default)]
    pub dnssec: Option<Dnssec>,
    /// Folder of the secondary zones' last good copies (made if missing);
    /// relative to the config file's folder. \[none: secondary zones are kept
    /// in memory only\]
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Publish a catalog zone (RFC 9432 v2) of this name listing the zones of
    /// its files. \[none\]
    #[serde(default, deserialize_with = "de_opt_name")]
    pub catalog: Option<Name>,
    /// Consume a catalog zone (RFC 9432 v2): `{ name, primary, xfr_key }`;
    /// each member becomes a secondary zone of that primary. \[none\]
    #[serde(default)]
    pub catalog_from: Option<SecondaryZoneConfig>,
    /// dnstap of the auth messages (`{ socket | tcp, messages, ... }`, as
    /// `[ls.dnstap]`); `None` (key omitted) = off. \[off\]
    #[serde(default)]
    pub dnstap: Option<DnstapConfig>,
    /// Health-following names, `[[ts.service]]` (docs/CONFIG.md (the TS)). \[none\]
    #[serde(default)]
    pub service: Vec<ServiceConfig>,
    /// Interfaces whose UDP to `listen` goes through AF_XDP (an XDP program
    /// on each, a socket per queue); where XDP cannot attach, sockets serve
    /// and the log says why. \[none\]
    #[serde(default)]
    pub xdp: Vec<String>,
    /// DNS Cookies' server secrets (RFC 9018), 32 hex digits each: the
    /// first makes server cookies, each is accepted. \[a random one made at
    /// start\]
    #[serde(default)]
    pub cookie_secret: CookieSecrets,
    /// Address of its zone control HTTP listener (`dnslb zone ...`); `None`
    /// (key omitted) = off. \[off\]
    #[serde(default, deserialize_with = "de_opt_addr")]
    pub control: Option<SocketAddr>,
    /// The key a state-changing request to `control` must carry when it
    /// does not come from loopback (or `control` is not bound to loopback).
    /// \[none: only loopback may\]
    #[serde(default)]
    pub api_key: Option<String>,
    /// Networks whose state-changing requests `control` takes. \[loopback\]
    #[serde(
        default = "super::dynblock::default_control_allow",
        deserialize_with = "de_nets"
    )]
    pub control_allow: Vec<IpNet>,
    /// Response rate limiting (UDP): `{ responses_per_s, slip, ipv4_prefix,
    /// ipv6_prefix, exempt, log_only }`. \[off\]
    #[serde(default)]
    pub rrl: super::RrlConfig,
    /// DNS over QUIC (RFC 9250), `{ listen, cert, key }` as `[ls.quic]`;
    /// zone transfers over it as over TCP. \[off\]
    #[serde(default)]
    pub quic: Option<super::QuicConfig>,
    /// Senders (LSs, front load balancers) whose PROXY protocol v2 header
    /// is required and believed. \[none\]
    #[serde(default, deserialize_with = "de_nets")]
    pub proxy_from: Vec<IpNet>,
}

/// Longest `ts.nsid`, in bytes: the OPT that carries it (4 + 128 bytes of option,
/// 11 of record) then fits with a question of the longest name (255 + 4 bytes) and the
/// header in 512 bytes, so even a truncated answer to a plain 512-byte client has room.
pub(crate) const NSID_MAX_LEN: usize = 128;

/// The default TS origin, the root.
fn root_origin() -> Name {
    Name::root()
}

/// The default number of zone versions kept for IXFR.
fn default_ixfr_history() -> u32 {
    10
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
            listen: vec![listen],
            zones: ZoneList::from(zones),
            origin: root_origin(),
            ttl: default_ttl(),
            on_miss: OnMiss::default(),
            axfr_allow: Vec::new(),
            xfr_key: None,
            notify: Vec::new(),
            ixfr_history: default_ixfr_history(),
            fault: Fault::default(),
            workers: None,
            metrics: None,
            nsid: None,
            dnssec: None,
            dnstap: None,
            service: Vec::new(),
            state_dir: None,
            catalog: None,
            catalog_from: None,
            xdp: Vec::new(),
            cookie_secret: CookieSecrets::default(),
            control: None,
            api_key: None,
            control_allow: super::dynblock::default_control_allow(),
            rrl: super::RrlConfig::default(),
            quic: None,
            proxy_from: Vec::new(),
        }
    }

    /// The zones it takes from primaries: its secondary zones, and the
    /// catalog it consumes.
    pub fn secondary_zones(&self) -> impl Iterator<Item = &SecondaryZoneConfig> {
        self.zones.secondaries.iter().chain(&self.catalog_from)
    }

    /// A copy of this `[[ts]]` but for the paths of its zone files, left
    /// empty (a TS of 100,000 zones keeps its paths once, in its settings,
    /// not a second time in the `[[ts]]` it started from: see
    /// [`TsConfig::with_files`]).
    pub fn without_files(&self) -> TsConfig {
        let TsConfig {
            name,
            listen,
            zones,
            origin,
            ttl,
            on_miss,
            axfr_allow,
            xfr_key,
            notify,
            ixfr_history,
            fault,
            workers,
            metrics,
            nsid,
            dnssec,
            dnstap,
            service,
            state_dir,
            catalog,
            catalog_from,
            xdp,
            cookie_secret,
            control,
            api_key,
            control_allow,
            rrl,
            quic,
            proxy_from,
        } = self;
        TsConfig {
            name: name.clone(),
            listen: listen.clone(),
            zones: ZoneList {
                files: Vec::new(),
                secondaries: zones.secondaries.clone(),
            },
            origin: origin.clone(),
            ttl: *ttl,
            on_miss: *on_miss,
            axfr_allow: axfr_allow.clone(),
            xfr_key: xfr_key.clone(),
            notify: notify.clone(),
            ixfr_history: *ixfr_history,
            fault: *fault,
            workers: *workers,
            metrics: *metrics,
            nsid: nsid.clone(),
            dnssec: dnssec.clone(),
            dnstap: dnstap.clone(),
            service: service.clone(),
            state_dir: state_dir.clone(),
            catalog: catalog.clone(),
            catalog_from: catalog_from.clone(),
            xdp: xdp.clone(),
            cookie_secret: cookie_secret.clone(),
            control: *control,
            api_key: api_key.clone(),
            control_allow: control_allow.clone(),
            rrl: rrl.clone(),
            quic: quic.clone(),
            proxy_from: proxy_from.clone(),
        }
    }

    /// This `[[ts]]` (one made by [`TsConfig::without_files`]) with `files`
    /// as its zone files' paths again.
    pub fn with_files(&self, files: &[PathBuf]) -> TsConfig {
        let mut whole = self.clone();
        whole.zones.files = files.to_vec();
        whole
    }

    /// UDP workers to run: `workers`, or the CPUs this process may run on.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(available_cores)
    }
}

/// A zone a TS serves as a secondary: `{ name, primary, xfr_key }` in `zones`
/// (and the catalog zone of `catalog_from`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryZoneConfig {
    /// The zone's name.
    #[serde(deserialize_with = "de_name")]
    pub name: Name,
    /// The primary's address (`addr:port`), which it transfers from and
    /// takes NOTIFYs from.
    #[serde(deserialize_with = "de_addr")]
    pub primary: SocketAddr,
    /// The `[[key]]` its transfers and NOTIFYs are signed with. \[none\]
    #[serde(default)]
    pub xfr_key: Option<String>,
}

/// `ts.zones`: the zone files, and the zones served as a secondary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneList {
    /// PROJ tables and `.zone` files, in config order.
    pub files: Vec<PathBuf>,
    /// Secondary zones, in config order.
    pub secondaries: Vec<SecondaryZoneConfig>,
}

impl From<Vec<PathBuf>> for ZoneList {
    fn from(files: Vec<PathBuf>) -> Self {
        ZoneList {
            files,
            secondaries: Vec::new(),
        }
    }
}

impl std::ops::Deref for ZoneList {
    type Target = Vec<PathBuf>;
    fn deref(&self) -> &Vec<PathBuf> {
        &self.files
    }
}

impl std::ops::DerefMut for ZoneList {
    fn deref_mut(&mut self) -> &mut Vec<PathBuf> {
        &mut self.files
    }
}

impl PartialEq<Vec<PathBuf>> for ZoneList {
    fn eq(&self, other: &Vec<PathBuf>) -> bool {
        self.secondaries.is_empty() && self.files == *other
    }
}

impl<'a> IntoIterator for &'a mut ZoneList {
    type Item = &'a mut PathBuf;
    type IntoIter = std::slice::IterMut<'a, PathBuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.files.iter_mut()
    }
}

/// What is wrong with a `zones` entry, as the list raises it: an entry's
/// own words (toml hands a date or time over as a table with one private
/// key, which would otherwise be named as an unknown key).
fn entry_error(raw: &str) -> String {
    if raw.contains("$__toml_private_datetime") {
        return "an entry is a date or time: expected a zone file's path, or { name, primary, xfr_key }"
            .to_owned();
    }
    format!("in an entry: {}", raw.trim_end())
}

impl<'de> Deserialize<'de> for ZoneList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
        use std::fmt;
        /// The entries, each a file's path (a string) or a secondary zone (a
        /// table), told apart by the kind of the value: serde's untagged enum
        /// buffered every entry and tried each variant on it (a tenth of the
        /// start of a TS of 100,000 zone files, before any was read).
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = ZoneList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of zone files and secondary zones")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ZoneList, A::Error> {
                let mut list = ZoneList::default();
                list.files.reserve(seq.size_hint().unwrap_or(0));
                loop {
                    match seq.next_element::<Entry>() {
                        Ok(Some(Entry::File(f))) => list.files.push(f),
                        Ok(Some(Entry::Secondary(s))) => list.secondaries.push(s),
                        Ok(None) => return Ok(list),
                        // Raised again here, with no place of its own: the
                        // error is placed at `zones` (its line and key), as
                        // the untagged enum placed it, and says what is wrong.
                        // Said as an entry's, so that an unknown key is not
                        // taken for one of [[ts]] (the table `zones` is in).
                        Err(e) => return Err(de::Error::custom(entry_error(&e.to_string()))),
                    }
                }
            }
        }
        enum Entry {
            File(PathBuf),
            Secondary(SecondaryZoneConfig),
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(OneEntry)
            }
        }
        struct OneEntry;
        impl<'de> Visitor<'de> for OneEntry {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a zone file's path, or { name, primary, xfr_key } for a secondary zone",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry::File(PathBuf::from(v)))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Entry, E> {
                Ok(Entry::File(PathBuf::from(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                SecondaryZoneConfig::deserialize(MapAccessDeserializer::new(map))
                    .map(Entry::Secondary)
            }
        }
        d.deserialize_seq(Entries)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const BASE: &str = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\n";

    #[test]
    fn zones_may_be_secondary_zones_with_a_state_dir() {
        let text = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\n\
            zones = [\"t.txt\", { name = \"example.net\", primary = \"192.0.2.1:53\", xfr_key = \"xfr\" }]\n\
            state_dir = \"state\"\n\n[[key]]\nname = \"xfr\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"\n";
        let c = Config::from_toml(text, Path::new("/etc/dnslb/c.toml")).unwrap();
        let ts = &c.ts[0];
        assert_eq!(ts.zones.files, vec![Path::new("/etc/dnslb/t.txt")]);
        let s = &ts.zones.secondaries[0];
        assert_eq!(s.name.to_ascii(), "example.net.");
        assert_eq!(s.primary.to_string(), "192.0.2.1:53");
        assert_eq!(s.xfr_key.as_deref(), Some("xfr"));
        assert_eq!(ts.state_dir.as_deref(), Some(Path::new("/etc/dnslb/state")));
        c.validate().unwrap();
        assert_eq!(
            c.key_named(s.xfr_key.as_deref()).map(|k| k.name.as_str()),
            Some("xfr")
        );
        // Only secondary zones: enough; a key no [[key]] names: refused.
        let only = text.replace("\"t.txt\", ", "");
        Config::from_toml(&only, Path::new("c.toml"))
            .unwrap()
            .validate()
            .unwrap();
        let unknown = only.replace("xfr_key = \"xfr\"", "xfr_key = \"nope\"");
        let err = Config::from_toml(&unknown, Path::new("c.toml"))
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(err.contains("xfr_key: names key \"nope\""), "{err}");
        // An entry's error, as the list raises it.
        let entry_err = |text: &str| {
            Config::from_toml(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        // An unknown key in the entry: named, not "did not match any
        // variant" (each entry is read by its kind, not tried as each
        // variant in turn), and as an entry's key, not one of [[ts]].
        let err = entry_err(&only.replace("xfr_key = \"xfr\"", "primry = \"x\""));
        assert!(err.contains("primry"), "{err}");
        assert!(err.contains("ts.zones: in an entry"), "{err}");
        assert!(!err.contains("in [[ts]]"), "{err}");
        let err = entry_err(&only.replace("zones = [", "zones = [1979-05-27, "));
        assert!(err.contains("a date or time"), "{err}");
        assert!(!err.contains("private"), "{err}");
        let err = entry_err(&only.replace("zones = [", "zones = [5, "));
        assert!(err.contains("a zone file's path"), "{err}");
    }

    #[test]
    fn a_zone_given_twice_or_a_ts_its_own_primary_is_refused_at_its_line() {
        let text = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\n\
            zones = [{ name = \"p.test\", primary = \"192.0.2.1:53\" }, { name = \"P.test.\", primary = \"192.0.2.2:53\" }]\n";
        let err = Config::from_toml(text, Path::new("c.toml"))
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml:4:") && err.contains("P.test. is given twice"),
            "{err}"
        );
        let own = text
            .replace("P.test.", "q.test")
            .replace("192.0.2.2:53", "127.0.0.1:5301");
        let err = Config::from_toml(&own, Path::new("c.toml"))
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be its own primary"), "{err}");
        let cat = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\n\
            zones = [{ name = \"p.test\", primary = \"192.0.2.1:53\" }]\n\
            catalog_from = { name = \"p.test.\", primary = \"192.0.2.1:53\" }\n";
        let err = Config::from_toml(cat, Path::new("c.toml"))
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is given twice"), "{err}");
    }

    #[test]
    fn the_zone_control_keys_are_read_and_checked_at_their_line() {
        let c = Config::from_toml(BASE, Path::new("c.toml")).unwrap();
        assert_eq!((c.ts[0].control, c.ts[0].api_key.as_deref()), (None, None));
        assert_eq!(c.ts[0].control_allow.len(), 2, "loopback");
        let ok = format!(
            "{BASE}control = \"127.0.0.1:5391\"\napi_key = \"0123456789abcdef\"\ncontrol_allow = [\"10.0.0.0/8\"]\n"
        );
        let c = Config::from_toml(&ok, Path::new("c.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ts[0].control, Some("127.0.0.1:5391".parse().unwrap()));
        for (from, to, want) in [
            (
                "0123456789abcdef",
                "short",
                "c.toml:6: ts.api_key: must be at least 16 characters",
            ),
            (
                "[\"10.0.0.0/8\"]",
                "[]",
                "c.toml:7: ts.control_allow: needs at least one network",
            ),
            (
                "127.0.0.1:5391",
                "127.0.0.1:5301",
                "c.toml:5: ts.control: 127.0.0.1:5301 is already used",
            ),
        ] {
            let text = ok.replace(from, to);
            let err = Config::from_toml(&text, Path::new("c.toml"))
                .and_then(|c| c.validate())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn nsid_is_optional_and_read_as_a_string() {
        let c = Config::from_toml(BASE, Path::new("c.toml")).unwrap();
        assert_eq!(c.ts[0].nsid, None);
        let text = format!("{BASE}nsid = \"ts1.east\"\n");
        let c = Config::from_toml(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.ts[0].nsid.as_deref(), Some("ts1.east"));
    }

    #[test]
    fn dnssec_keys_are_relative_to_the_config_folder_and_values_checked() {
        use super::{Denial, Dnssec, DnssecAlgorithm};
        let c = Config::from_toml(BASE, Path::new("c.toml")).unwrap();
        assert_eq!(c.ts[0].dnssec, None);
        let read = |line: &str| -> Dnssec {
            let text = format!("{BASE}dnssec = {line}\n");
            let c = Config::from_toml(&text, Path::new("/etc/dnslb/c.toml")).unwrap();
            c.ts[0].dnssec.clone().unwrap()
        };
        let d = read(r#"{ keys = "k", denial = "nsec3" }"#);
        assert_eq!(d.keys, Path::new("/etc/dnslb/k"));
        assert_eq!(d.algorithm, DnssecAlgorithm::EcdsaP256Sha256);
        assert_eq!(d.denial, Denial::Nsec3);
        let d = read(r#"{ keys = "/var/k", algorithm = "ed25519" }"#);
        assert_eq!(d.keys, Path::new("/var/k"));
        assert_eq!(
            (d.algorithm, d.denial),
            (DnssecAlgorithm::Ed25519, Denial::Nsec)
        );
        // The keywords as docs/CONFIG.md writes them.
        let d = read(r#"{ keys = "k", algorithm = "ecdsap256sha256", denial = "nsec" }"#);
        assert_eq!(d.algorithm, DnssecAlgorithm::EcdsaP256Sha256);

        for (line, want) in [
            (
                r#"{ keys = "k", algorithm = "rsasha256" }"#,
                r#"ts.dnssec.algorithm: expected one of ecdsap256sha256, ed25519, got "rsasha256""#,
            ),
            (
                r#"{ keys = "k", denial = "nsec5" }"#,
                r#"ts.dnssec.denial: expected one of nsec, nsec3, got "nsec5""#,
            ),
        ] {
            let text = format!("{BASE}\ndnssec = {line}\n");
            let err = Config::from_toml(&text, Path::new("c.toml")).unwrap_err();
            assert_eq!(err.to_string(), format!("c.toml:6: {want}"));
        }
    }

    #[test]
    fn nsid_must_be_1_to_128_bytes() {
        let at_most = format!("{BASE}nsid = \"{}\"\n", "x".repeat(128));
        assert!(Config::from_toml(&at_most, Path::new("c.toml")).is_ok());
        for (value, got) in [(String::new(), 0), ("x".repeat(129), 129)] {
            let text = format!("{BASE}nsid = \"{value}\"\n");
            let err = Config::from_toml(&text, Path::new("c.toml")).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("c.toml:5: ts.nsid: must be 1 to 128 bytes, got {got}")
            );
        }
        let text = format!("{BASE}nsid = 7\n");
        assert!(Config::from_toml(&text, Path::new("c.toml")).is_err());
    }
}

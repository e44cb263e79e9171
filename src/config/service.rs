//! `[[ts.service]]`: [`ServiceConfig`], one health-following name of a TS
//! (docs/CONFIG.md (the TS) "Service answers"), with its [`Select`] policy, its endpoints'
//! [`CheckConfig`], its [`EndpointConfig`]s and [`ViewConfig`]s, and what it
//! answers when none is live ([`WhenAllDown`]). Parsing only: the rules are
//! in `validate/service_checks.rs`; the rules that need the zones (the name
//! inside a zone of the TS, no other data at that owner) are checked when the
//! TS loads them.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::Deserializer;

use super::values::{ProbeQuestion, de_name, de_nets, de_word_or_table};

keyword_enum! {
    /// `ts.service.select`: which live endpoints a service answers with.
    Select, default All {
        /// Every live endpoint, at most `max_answers`.
        All = "all",
        /// `pick` live endpoints drawn by weight, without repetition, per query.
        Weighted = "weighted",
        /// The first group (in order, or the view's) with `min_live` live endpoints.
        Failover = "failover",
    }
}

keyword_enum! {
    /// `ts.service.check.kind`: how an endpoint is probed.
    CheckKind, default None {
        /// TCP connect to `port`.
        Tcp = "tcp",
        /// HTTP/1.1 GET of `path` on `port`, status `expect`.
        Http = "http",
        /// A DNS query (`query`) to `port`.
        Dns = "dns",
        /// Never probed: always up.
        None = "none",
    }
}

/// `ts.service.when_all_down`: the answer when no endpoint is live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WhenAllDown {
    /// Every endpoint, as if all were live (fail-open, as gdnsd answers below its
    /// threshold). The default.
    #[default]
    All,
    /// SERVFAIL.
    Servfail,
    /// A CNAME to this name (`{ fallback = "sorry.example.org." }`).
    Fallback(Name),
}

/// The table form of `when_all_down`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackTable {
    #[serde(deserialize_with = "de_name")]
    fallback: Name,
}

impl<'de> Deserialize<'de> for WhenAllDown {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de_word_or_table(
            deserializer,
            "\"all\", \"servfail\" or { fallback = \"name\" }",
            |v| match v {
                "all" => Ok(WhenAllDown::All),
                "servfail" => Ok(WhenAllDown::Servfail),
                _ => Err(format!(
                    "expected \"all\", \"servfail\" or {{ fallback = \"name\" }}, got {v:?}"
                )),
            },
            |t: FallbackTable| Ok(WhenAllDown::Fallback(t.fallback)),
        )
    }
}

/// `ts.service.check`: how the endpoints of a service are probed; `"none"` or a
/// table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// `tcp`, `http`, `dns` or `none`. \[none\]
    #[serde(default)]
    pub kind: CheckKind,
    /// The port probed (required but for `none`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `http`: the path asked for. \["/"\]
    #[serde(default = "default_path")]
    pub path: String,
    /// `http`: the status that means up. \[200\]
    #[serde(default = "default_expect")]
    pub expect: u16,
    /// `http`: the Host header. \[the endpoint's address\]
    #[serde(default)]
    pub host: Option<String>,
    /// `dns`: the question asked, `"NAME TYPE"`. \[". SOA"\]
    #[serde(default)]
    pub query: ProbeQuestion,
    /// Probe every endpoint this often, in ms. \[1000\]
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// One probe's timeout, in ms. \[500\]
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Successes in a row that mark an endpoint up. \[2\]
    #[serde(default = "two")]
    pub rise: u32,
    /// Failures in a row that mark an endpoint down. \[2\]
    #[serde(default = "two")]
    pub fall: u32,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            kind: CheckKind::None,
            port: None,
            path: default_path(),
            expect: default_expect(),
            host: None,
            query: ProbeQuestion::default(),
            interval_ms: default_interval(),
            timeout_ms: default_timeout(),
            rise: 2,
            fall: 2,
        }
    }
}

/// `check = "none"` or `check = { kind = ..., ... }`.
fn de_check<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CheckConfig, D::Error> {
    de_word_or_table(
        deserializer,
        "\"none\" or a table { kind = \"tcp\" | \"http\" | \"dns\", port, ... }",
        |v| {
            if v == "none" {
                Ok(CheckConfig::default())
            } else {
                Err(format!(
                    "expected \"none\" or a table {{ kind = \"tcp\" | \"http\" | \"dns\", port, ... }}, got {v:?}"
                ))
            }
        },
        |t: CheckConfig| Ok(t),
    )
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Its address: an IPv4 one is answered to A queries, an IPv6 one to AAAA.
    pub addr: IpAddr,
    /// Its share under `weighted`. \[1\]
    #[serde(default = "one")]
    pub weight: u32,
    /// The group it belongs to, for `failover` and views. \[""\]
    #[serde(default)]
    pub group: String,
}

/// One view: client networks mapped to a group order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// The client networks (by ECS source prefix, else source address).
    #[serde(deserialize_with = "de_nets")]
    pub clients: Vec<IpNet>,
    /// The groups, in the order tried; only these answer for these clients.
    pub groups: Vec<String>,
}

/// `[[ts.service]]`: one owner name answered with its live endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The owner name, inside a zone the TS serves (fully qualified).
    #[serde(deserialize_with = "de_name")]
    pub name: Name,
    /// TTL of its answers, in seconds. \[30\]
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// `all`, `weighted` or `failover`. \[all\]
    #[serde(default)]
    pub select: Select,
    /// Most addresses in one answer (`all`, `failover`). \[8\]
    #[serde(default = "default_max_answers")]
    pub max_answers: u32,
    /// Endpoints drawn per answer under `weighted`. \[1\]
    #[serde(default = "one")]
    pub pick: u32,
    /// Live endpoints a group needs to answer under `failover`. \[1\]
    #[serde(default = "one")]
    pub min_live: u32,
    /// The answer when no endpoint is live. \[all\]
    #[serde(default)]
    pub when_all_down: WhenAllDown,
    /// How its endpoints are probed. \["none"\]
    #[serde(default, deserialize_with = "de_check")]
    pub check: CheckConfig,
    /// Its endpoints, in order.
    pub endpoint: Vec<EndpointConfig>,
    /// Client networks mapped to group orders; the first view holding the
    /// client applies. \[none\]
    #[serde(default)]
    pub view: Vec<ViewConfig>,
    /// Where `name` is written: the config file and line (not a TOML key;
    /// filled when the file is read, for the errors the zones find).
    #[serde(skip)]
    pub at: String,
}

impl ServiceConfig {
    /// The groups of its endpoints, each once, in the order they first appear.
    pub fn groups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.endpoint {
            if !out.contains(&e.group.as_str()) {
                out.push(&e.group);
            }
        }
        out
    }
}

fn default_path() -> String {
    "/".into()
}
fn default_expect() -> u16 {
    200
}
fn default_interval() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    500
}
fn two() -> u32 {
    2
}
fn one() -> u32 {
    1
}
fn default_ttl() -> u32 {
    30
}
fn default_max_answers() -> u32 {
    8
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const BASE: &str =
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.zone\"]\n\n";

    fn read(service: &str) -> Result<Config, String> {
        let text = format!("{BASE}[[ts.service]]\n{service}");
        Config::from_toml(&text, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_spec_example_reads_with_its_values_and_defaults() {
        let c = read(
            r#"name = "www.example.org"
select = "failover"
when_all_down = { fallback = "sorry.example.org." }
check = { kind = "http", port = 80, path = "/healthz", expect = 200, interval_ms = 1000, timeout_ms = 500, rise = 2, fall = 2 }
endpoint = [ { addr = "192.0.2.10", weight = 3, group = "dc1" },
             { addr = "192.0.2.11", weight = 1, group = "dc1" },
             { addr = "2001:db8::10", group = "dc2" } ]
view = [ { clients = ["10.0.0.0/8"], groups = ["dc2", "dc1"] } ]
"#,
        )
        .unwrap();
        let s = &c.ts[0].service[0];
        assert_eq!(s.name, Name::from_ascii("www.example.org.").unwrap());
        assert_eq!((s.ttl, s.max_answers, s.pick, s.min_live), (30, 8, 1, 1));
        assert_eq!(s.select, Select::Failover);
        assert_eq!(
            s.when_all_down,
            WhenAllDown::Fallback(Name::from_ascii("sorry.example.org.").unwrap())
        );
        assert_eq!(s.check.kind, CheckKind::Http);
        assert_eq!(
            (s.check.port, s.check.path.as_str()),
            (Some(80), "/healthz")
        );
        assert_eq!(s.endpoint[2].weight, 1);
        assert_eq!(s.groups(), ["dc1", "dc2"]);
        assert_eq!(s.view[0].groups, ["dc2", "dc1"]);
        assert_eq!(s.at, "c.toml:7");

        let c = read("name = \"a.example\"\nendpoint = [ { addr = \"192.0.2.1\" } ]\n").unwrap();
        let s = &c.ts[0].service[0];
        assert_eq!(s.select, Select::All);
        assert_eq!(s.when_all_down, WhenAllDown::All);
        assert_eq!(s.check, CheckConfig::default());
        let c = read("name = \"a.example\"\ncheck = \"none\"\nwhen_all_down = \"servfail\"\nendpoint = [ { addr = \"192.0.2.1\" } ]\n").unwrap();
        assert_eq!(c.ts[0].service[0].when_all_down, WhenAllDown::Servfail);
    }

    #[test]
    fn mistakes_are_reported_at_their_line() {
        let ep = "endpoint = [ { addr = \"192.0.2.1\", group = \"a\" } ]\n";
        for (text, want) in [
            (
                format!("name = \"a.example\"\n{ep}view = [ {{ clients = [\"10.0.0.0/8\"], groups = [\"b\"] }} ]\n"),
                "c.toml:9: ts.service.view.groups: names group \"b\", which no endpoint has (groups: \"a\")",
            ),
            (
                format!("name = \"a.example\"\nselect = \"random\"\n{ep}"),
                "c.toml:8: ts.service.select: expected one of all, weighted, failover, got \"random\"",
            ),
            (
                format!("name = \"a.example\"\ncheck = {{ kind = \"tcp\" }}\n{ep}"),
                "c.toml:8: ts.service.check: a tcp check needs a port (1 to 65535)",
            ),
            (
                format!("name = \"a.example\"\nmax_answers = 0\n{ep}"),
                "c.toml:8: ts.service.max_answers: must be at least 1",
            ),
            (
                "name = \"a.example\"\nendpoint = [ { addr = \"192.0.2.1\" }, { addr = \"192.0.2.1\" } ]\n".into(),
                "c.toml:8: ts.service.endpoint.addr: 192.0.2.1 is an endpoint of this service already",
            ),
            (
                "name = \"a.example\"\nendpoint = []\n".into(),
                "c.toml:8: ts.service.endpoint: service a.example. needs at least one endpoint",
            ),
            // Refused: taken, every probe of these would fail.
            (
                format!("name = \"a.example\"\ncheck = {{ kind = \"http\", port = 80, path = \"/a b\" }}\n{ep}"),
                "c.toml:8: ts.service.check: path must hold no space or control character, got \"/a b\"",
            ),
            (
                format!("name = \"a.example\"\ncheck = {{ kind = \"http\", port = 80, host = \"a b\" }}\n{ep}"),
                "c.toml:8: ts.service.check: host must be a name or address with no space or control character, got \"a b\"",
            ),
            (
                format!("name = \"a.example\"\nwhen_all_down = \"none\"\n{ep}"),
                "c.toml:8: ts.service.when_all_down: expected \"all\", \"servfail\" or { fallback = \"name\" }, got \"none\"",
            ),
            (
                format!("name = \"a.example\"\nwhen_all_down = 1\n{ep}"),
                "c.toml:8: ts.service.when_all_down: invalid type: integer `1`, expected \"all\", \"servfail\" or { fallback = \"name\" }",
            ),
            (
                format!("name = \"a.example\"\ncheck = \"tcp\"\n{ep}"),
                "c.toml:8: ts.service.check: expected \"none\" or a table { kind = \"tcp\" | \"http\" | \"dns\", port, ... }, got \"tcp\"",
            ),
            (
                format!("name = \"a.example\"\ncheck = true\n{ep}"),
                "c.toml:8: ts.service.check: invalid type: boolean `true`, expected \"none\" or a table { kind = \"tcp\" | \"http\" | \"dns\", port, ... }",
            ),
            (
                "name = \"a.example\"\nendpoint = [ { addr = \"0.0.0.0\" } ]\n".into(),
                "c.toml:8: ts.service.endpoint.addr: 0.0.0.0 is no address a client can reach (unspecified, multicast, broadcast, or IPv4 written as IPv6: give the IPv4 address)",
            ),
        ] {
            assert_eq!(read(&text).unwrap_err(), want, "{text}");
        }
        for addr in [
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::ffff:192.0.2.1",
        ] {
            let err = read(&format!(
                "name = \"a.example\"\nendpoint = [ {{ addr = \"{addr}\" }} ]\n"
            ))
            .unwrap_err();
            assert!(
                err.contains("no address a client can reach"),
                "{addr}: {err}"
            );
        }
        // Unknown keys, in the service and in its tables: each named, at its line.
        for (text, key) in [
            (format!("name = \"a.example\"\nweight = 3\n{ep}"), "weight"),
            (
                "name = \"a.example\"\nendpoint = [ { addr = \"192.0.2.1\", wieght = 2 } ]\n"
                    .to_owned(),
                "wieght",
            ),
            (
                format!(
                    "name = \"a.example\"\ncheck = {{ kind = \"tcp\", port = 80, prot = 1 }}\n{ep}"
                ),
                "prot",
            ),
        ] {
            let err = read(&text).unwrap_err();
            assert!(err.starts_with("c.toml:8:") && err.contains(key), "{err}");
        }
        let err = read(&format!(
            "name = \"a.example\"\n{ep}[[ts.service]]\nname = \"A.example.\"\n{ep}"
        ))
        .unwrap_err();
        assert!(err.contains("earlier [[ts.service]]"), "{err}");
    }

    /// Fallbacks that loop through the TS's services are refused: taken,
    /// with both down the TS would answer each name with a CNAME to the
    /// other.
    #[test]
    fn fallbacks_that_loop_through_services_are_refused_once_per_loop() {
        let ep = "endpoint = [ { addr = \"192.0.2.1\" } ]\n";
        let svc = |name: &str, to: &str| {
            format!("name = \"{name}\"\nwhen_all_down = {{ fallback = \"{to}\" }}\n{ep}")
        };
        let two = format!(
            "{}[[ts.service]]\n{}",
            svc("a.example", "b.example"),
            svc("B.example", "a.example.")
        );
        assert_eq!(
            read(&two).unwrap_err(),
            "c.toml:8: ts.service.when_all_down: the fallbacks loop (a.example. -> B.example. -> \
             a.example.): with their endpoints all down the CNAMEs would point at each other"
        );
        // Three, entered from a service outside the loop: one error, at the
        // loop's first service.
        let three = format!(
            "{}[[ts.service]]\n{}[[ts.service]]\n{}[[ts.service]]\n{}",
            svc("in.example", "y.example"),
            svc("x.example", "y.example"),
            svc("y.example", "z.example"),
            svc("z.example", "x.example"),
        );
        let err = read(&three).unwrap_err();
        assert_eq!(err.matches("the fallbacks loop").count(), 1, "{err}");
        assert!(
            err.contains("(x.example. -> y.example. -> z.example. -> x.example.)"),
            "{err}"
        );
        // A chain that ends (in a service without a fallback, or outside the
        // services) is fine.
        let chain = format!(
            "{}[[ts.service]]\n{}[[ts.service]]\nname = \"q.example\"\n{ep}",
            svc("o.example", "p.example"),
            svc("p.example", "q.example"),
        );
        read(&chain).unwrap();
        read(&svc("o.example", "sorry.example.net")).unwrap();
    }
}

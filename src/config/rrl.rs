//! `rrl` in `[[ts]]`: [`RrlConfig`], the TS's response rate limiting (as
//! NSD's `rrl-*` and Knot's `mod-rrl` options), off by default.
use ipnet::IpNet;
use serde::Deserialize;

use super::values::de_nets;

/// `ts.rrl`: responses per second per client network and answer; UDP only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    /// Responses per second to one client network for one answer (a name,
    /// a zone's negative answers, its errors); 0 = off. \[0\]
    pub responses_per_s: u32,
    /// Every `slip`-th limited answer is sent truncated (TC=1, no records),
    /// the others dropped; 0 = never (all dropped), 1 = always. \[2\]
    pub slip: u32,
    /// IPv4 clients share a limit per network of this prefix length. \[24\]
    pub ipv4_prefix: u8,
    /// IPv6 clients share a limit per network of this prefix length. \[56\]
    pub ipv6_prefix: u8,
    /// Networks never limited; a bare IP is a /32 or /128. \[none\]
    #[serde(deserialize_with = "de_nets")]
    pub exempt: Vec<IpNet>,
    /// Count and log what would be limited, and limit nothing. \[false\]
    pub log_only: bool,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            responses_per_s: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            log_only: false,
        }
    }
}

impl RrlConfig {
    /// Whether it limits (or, `log_only`, counts) anything.
    pub fn is_on(&self) -> bool {
        self.responses_per_s > 0
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const BASE: &str = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:5301\"\nzones = [\"t.txt\"]\n";

    fn read(line: &str) -> Result<RrlConfig, String> {
        let text = format!("{BASE}rrl = {line}\n");
        Config::from_toml(&text, Path::new("c.toml"))
            .and_then(|c| c.validate().map(|()| c))
            .map(|c| c.ts[0].rrl.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rrl_is_off_by_default_and_read_with_defaults() {
        let c = Config::from_toml(BASE, Path::new("c.toml")).unwrap();
        assert_eq!(c.ts[0].rrl, RrlConfig::default());
        assert!(!c.ts[0].rrl.is_on());
        let r = read("{ responses_per_s = 20 }").unwrap();
        assert!(r.is_on());
        assert_eq!((r.slip, r.ipv4_prefix, r.ipv6_prefix), (2, 24, 56));
        let r = read(
            r#"{ responses_per_s = 5, slip = 0, ipv4_prefix = 32, ipv6_prefix = 64, exempt = ["192.0.2.0/24", "2001:db8::1"], log_only = true }"#,
        )
        .unwrap();
        assert_eq!(r.slip, 0);
        assert_eq!(r.exempt.len(), 2);
        assert_eq!(r.exempt[1].prefix_len(), 128, "a bare IP is one address");
        assert!(r.log_only);
    }

    #[test]
    fn bad_rrl_values_are_refused_at_their_line() {
        for (line, want) in [
            (
                "{ responses_per_s = 20, ipv4_prefix = 33 }",
                "c.toml:5: ts.rrl.ipv4_prefix: must be 1 to 32, got 33",
            ),
            (
                "{ responses_per_s = 20, ipv6_prefix = 0 }",
                "c.toml:5: ts.rrl.ipv6_prefix: must be 1 to 128, got 0",
            ),
            (
                "{ responses_per_s = 20, slip = 101 }",
                "c.toml:5: ts.rrl.slip: must be at most 100, got 101",
            ),
            (
                "{ responses_per_s = 20000000 }",
                "c.toml:5: ts.rrl.responses_per_s: must be at most 10000000, got 20000000",
            ),
            (
                "{ log_only = true }",
                "c.toml:5: ts.rrl.log_only: counts what responses_per_s would limit: set responses_per_s above 0",
            ),
        ] {
            assert_eq!(read(line).unwrap_err(), want, "{line}");
        }
        let err = read(r#"{ responses_per_s = 20, exempt = ["nope"] }"#).unwrap_err();
        assert!(err.starts_with("c.toml:5:"), "{err}");
        let err = read("{ responses_per_s = 20, burst = 3 }").unwrap_err();
        assert!(err.contains("burst"), "{err}");
    }
}

//! Signed zones made as the test runs: an unsigned zone file signed in a
//! temporary folder by the real tools (`dnssec-keygen`/`dnssec-signzone` or
//! `ldns-keygen`/`ldns-signzone`), ECDSA P-256, a KSK and a ZSK, NSEC or
//! NSEC3 (RFC 9276: no salt, 0 iterations; opt-out on request), with a fixed
//! signature validity window so that every server given the file serves the
//! same bytes. It hands back the signed file, the keys, and the zone's trust
//! anchor (the KSK's DS and DNSKEY, and a `delv -a` file holding it).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::env::{crate_dir, path_str};
use super::procs::{Output, TOOL_LIMIT, run_ok};

/// Which tool set signs the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// BIND's `dnssec-keygen` and `dnssec-signzone`.
    Bind,
    /// NLnet Labs' `ldns-keygen` and `ldns-signzone`.
    Ldns,
}

/// How the signed zone denies existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Nsec,
    /// NSEC3, no salt, 0 iterations.
    Nsec3,
    /// [`Denial::Nsec3`] with the opt-out flag (unsigned delegations get no NSEC3).
    Nsec3OptOut,
}

impl Signer {
    /// The programs this signer runs (for [`super::env::need`]).
    pub fn programs(self) -> [&'static str; 2] {
        match self {
            Signer::Bind => ["dnssec-keygen", "dnssec-signzone"],
            Signer::Ldns => ["ldns-keygen", "ldns-signzone"],
        }
    }
}

/// `tests/data/dnssec/NAME`: the unsigned zones the DNSSEC tests sign.
pub fn dnssec_fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/data/dnssec").join(name)
}

/// A zone signed in a temporary folder (removed on drop). Some fields
/// record what was signed for tests to inspect, though none reads them today.
#[allow(dead_code)]
pub struct SignedZone {
    /// The zone's name, with its final dot.
    pub zone: String,
    /// The signed zone file.
    pub file: PathBuf,
    /// The key files (`.key` and `.private` of the KSK, then of the ZSK).
    pub keys: Vec<PathBuf>,
    /// The KSK as a DNSKEY record (`zone. IN DNSKEY 257 3 13 ...`).
    pub dnskey: String,
    /// The KSK's DS record (SHA-256): what the parent would hold.
    pub ds: String,
    /// A `trust-anchors { ... static-ds ... };` file for `delv -a`.
    pub anchor: PathBuf,
    pub signer: Signer,
    pub denial: Denial,
    dir: tempfile::TempDir,
}

impl SignedZone {
    /// The signed file's text.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap()
    }

    /// The owners of the NSEC3 records in the signed file, lower case
    /// (empty for an NSEC zone). Both signers write one record a line with
    /// its owner first.
    pub fn nsec3_owners(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| !l.starts_with(';'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 4 && f[3] == "NSEC3").then(|| f[0].to_ascii_lowercase())
            })
            .collect()
    }

    /// The folder holding the keys and the signed file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `prog ARGS` in `dir`, at most [`TOOL_LIMIT`]; panics with its
/// output unless it succeeds.
pub fn run_in(dir: &Path, prog: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args).current_dir(dir);
    let name = format!("`{prog} {}`", args.join(" "));
    run_ok(&name, cmd, TOOL_LIMIT, "")
}

/// [`run_in`]'s stdout, trimmed (a key's base name, a DS line).
pub fn stdout_in(dir: &Path, prog: &str, args: &[&str]) -> String {
    run_in(dir, prog, args).stdout.trim().to_owned()
}

/// The smallest zone a signing test signs: `origin`'s SOA (serial
/// `serial`, TTL 300), `NS ns1`, `ns1 A 192.0.2.1`, `www A 192.0.2.10`.
pub fn small_zone(origin: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 604800 300\n\
         @ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.10\n"
    )
}

/// The signatures' validity, from an hour ago to 30 days ahead, in
/// seconds since the epoch (both signers take that form).
fn validity() -> (String, String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let from = now - Duration::from_secs(3600);
    let until = now + Duration::from_secs(30 * 86_400);
    (from.as_secs().to_string(), until.as_secs().to_string())
}

/// The DNSKEY record of a `.key` file (comments and line breaks of the key
/// text removed): `zone. IN DNSKEY FLAGS 3 ALG BASE64`.
fn dnskey_of(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).unwrap();
    let line = text
        .lines()
        .map(|l| l.split(';').next().unwrap_or_default())
        .find(|l| l.contains("DNSKEY"))
        .unwrap_or_else(|| panic!("no DNSKEY in {}:\n{text}", key_file.display()));
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = f.iter().position(|&w| w == "DNSKEY").unwrap();
    format!(
        "{} IN DNSKEY {} {} {} {}",
        f[0],
        f[at + 1],
        f[at + 2],
        f[at + 3],
        f[at + 4..].concat()
    )
}

/// A DS line as `dnssec-dsfromkey` and `dnslb ds` print it (`zone. [TTL]
/// IN DS TAG ALG 2 HEX...`) as a `delv -a` trust anchor entry.
pub fn static_ds(ds: &str) -> String {
    let f: Vec<&str> = ds.split_whitespace().collect();
    let at = f.iter().position(|&w| w == "DS");
    let at = at
        .filter(|at| f.len() > at + 4)
        .unwrap_or_else(|| panic!("not a DS: {ds}"));
    format!(
        "{} static-ds {} {} {} \"{}\";",
        f[0],
        f[at + 1],
        f[at + 2],
        f[at + 3],
        f[at + 4..].concat()
    )
}

/// Signs `unsigned` (the zone `zone`, with or without its final dot) with
/// fresh keys made by `signer`'s tools, denial `denial`.
pub fn sign_zone(zone: &str, unsigned: &Path, signer: Signer, denial: Denial) -> SignedZone {
    let zone = format!("{}.", zone.trim_end_matches('.'));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(unsigned, d.join("unsigned.zone")).unwrap();
    let (from, until) = validity();
    let keygen = |ksk: bool| -> String {
        let out = match signer {
            Signer::Bind => {
                let mut args = vec!["-q", "-a", "ECDSAP256SHA256", "-n", "ZONE"];
                if ksk {
                    args.extend(["-f", "KSK"]);
                }
                args.push(&zone);
                run_in(d, "dnssec-keygen", &args)
            }
            Signer::Ldns => {
                let mut args = vec!["-a", "ECDSAP256SHA256"];
                if ksk {
                    args.push("-k");
                }
                args.push(&zone);
                run_in(d, "ldns-keygen", &args)
            }
        };
        out.stdout.trim().to_owned()
    };
    let (ksk, zsk) = (keygen(true), keygen(false));
    let signed = "signed.zone";
    match signer {
        Signer::Bind => {
            // -O full: one record a line, owner first (nsec3_owners reads it).
            let mut args = vec![
                "-q", "-S", "-K", ".", "-o", &zone, "-s", &from, "-e", &until, "-O", "full", "-f",
                signed,
            ];
            if denial != Denial::Nsec {
                args.extend(["-3", "-", "-H", "0"]);
            }
            if denial == Denial::Nsec3OptOut {
                args.push("-A");
            }
            args.push("unsigned.zone");
            run_in(d, "dnssec-signzone", &args);
        }
        Signer::Ldns => {
            let mut args = vec!["-o", &zone, "-i", &from, "-e", &until, "-f", signed];
            if denial != Denial::Nsec {
                args.extend(["-n", "-t", "0", "-s", ""]);
            }
            if denial == Denial::Nsec3OptOut {
                args.push("-p");
            }
            args.extend(["unsigned.zone", &ksk, &zsk]);
            run_in(d, "ldns-signzone", &args);
        }
    }
    let ksk_key = d.join(format!("{ksk}.key"));
    let ds = stdout_in(d, "dnssec-dsfromkey", &["-2", path_str(&ksk_key)]);
    let anchor = d.join("anchor.conf");
    std::fs::write(
        &anchor,
        format!("trust-anchors {{ {} }};\n", static_ds(&ds)),
    )
    .unwrap();
    let keys = [&ksk, &zsk]
        .iter()
        .flat_map(|k| [d.join(format!("{k}.key")), d.join(format!("{k}.private"))])
        .collect();
    SignedZone {
        dnskey: dnskey_of(&ksk_key),
        file: d.join(signed),
        zone,
        keys,
        ds,
        anchor,
        signer,
        denial,
        dir,
    }
}

/// `dig AXFR`'s output as a zone file the DNSSEC tools read: comments and
/// blank lines out, and the SOA that closes the transfer dropped (a zone
/// file holds it once).
pub fn axfr_zone_file(dig_out: &str) -> String {
    let mut seen_soa = false;
    dig_out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter(|l| {
            let soa = l.split_whitespace().nth(3) == Some("SOA");
            let keep = !(soa && seen_soa);
            seen_soa |= soa;
            keep
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

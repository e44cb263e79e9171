//! DNSSEC answers checked by `delv`: the cases both zones of the
//! differential test ask ([`ZONES`], each a [`Case`]), a trust anchor from
//! a key folder ([`anchor`]), one `delv` run ([`delv`]) and every case
//! validated against a server ([`delv_every_case`]).
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::RecordType;

use super::{self as kit, SignedZone};

use RecordType::{A, AAAA, CNAME, DNSKEY, DS, MX, NS, NSEC, TXT};

/// Stands for the first NSEC3 owner name of the signed zone in [`Case::name`]
/// (a case asked only of NSEC3 zones).
pub const NSEC3_OWNER: &str = "<nsec3 owner>";

/// One question of the table.
pub struct Case {
    pub(crate) name: &'static str,
    pub(crate) qtype: RecordType,
    /// What the case is about, for failure messages.
    pub(crate) what: &'static str,
    /// Whether `delv` can resolve it from the zone's server alone (no
    /// referral to follow, no name outside the zone).
    pub(crate) delv: bool,
    /// CD=1 and AD=1 in the query (both servers clear them).
    pub cd_ad: bool,
    /// An answer synthesised from a wildcard: with NSEC3 opt-out a
    /// validator calls it insecure, not validated (the opt-out NSEC3 that
    /// covers the name may hide an unsigned delegation, RFC 5155 §6).
    pub expanded: bool,
}

/// RFC 4035 Appendix A's `example.`: Appendix B's answers, then the cases
/// around them.
pub const EXAMPLE: &[Case] = &[
    case("x.w.example.", MX, "positive answer (RFC 4035 B.1)"),
    case("ml.example.", A, "NXDOMAIN (B.2)"),
    case("ns1.example.", MX, "NODATA (B.3)"),
    no_delv(case("mc.a.example.", MX, "referral, signed zone: DS (B.4)")),
    no_delv(case(
        "mc.b.example.",
        MX,
        "referral, unsigned zone: no DS (B.5)",
    )),
    expanded(case("a.z.w.example.", MX, "wildcard answer (B.6)")),
    case("a.z.w.example.", AAAA, "wildcard NODATA (B.7)"),
    case("ai.example.", DS, "DS NODATA (B.8)"),
    case("a.example.", DS, "DS at a signed cut, from the parent"),
    case("b.example.", DS, "DS at an unsigned cut: NODATA, parent"),
    case("y.w.example.", A, "NODATA at an empty non-terminal"),
    case("w.example.", MX, "NODATA at the wildcard's parent (ENT)"),
    case("example.", DNSKEY, "the apex DNSKEY"),
    no_delv(case(
        "ns1.a.example.",
        A,
        "glue below a signed cut: referral",
    )),
    case(NSEC3_OWNER, A, "an NSEC3 owner name: nonexistent"),
];

/// `sig.test.`: wildcards, empty non-terminals (ENT), a signed and an
/// unsigned delegation, CNAME chains into and out of the zone.
pub const SIG_TEST: &[Case] = &[
    case("www.sig.test.", A, "positive answer"),
    case("short.sig.test.", A, "positive answer, TTL 60"),
    case("nope.sig.test.", A, "NXDOMAIN"),
    case("z.ent.sig.test.", A, "NXDOMAIN below an ENT"),
    case("www.sig.test.", MX, "NODATA"),
    case("ent.sig.test.", A, "NODATA at an ENT"),
    case("y.ent.sig.test.", TXT, "NODATA at an ENT"),
    case("b.c.sig.test.", A, "NODATA in a chain of ENTs"),
    expanded(case("foo.wild.sig.test.", A, "wildcard answer")),
    expanded(case("a.b.wild.sig.test.", TXT, "wildcard, two labels")),
    case("foo.wild.sig.test.", AAAA, "wildcard NODATA"),
    case("wild.sig.test.", A, "NODATA at the wildcard's parent"),
    no_delv(case("host.secure.sig.test.", A, "referral, signed: DS")),
    no_delv(case("secure.sig.test.", NS, "NS at a signed cut: referral")),
    case(
        "secure.sig.test.",
        DS,
        "DS at a signed cut, from the parent",
    ),
    no_delv(case("host.insecure.sig.test.", A, "referral, no-DS proof")),
    case("insecure.sig.test.", DS, "DS at an unsigned cut: NODATA"),
    no_delv(case("host.ext.sig.test.", A, "referral, out-of-zone NS")),
    case("alias.sig.test.", A, "CNAME to a name of the zone"),
    case("alias.sig.test.", CNAME, "the CNAME itself"),
    case(
        "alias.sig.test.",
        NSEC,
        "NSEC at a CNAME owner: the owner's (NSEC zones; NSEC3 zones follow the CNAME)",
    ),
    case("chain.sig.test.", A, "CNAME chain"),
    no_delv(case("out.sig.test.", A, "CNAME out of the zone")),
    case("towild.sig.test.", A, "CNAME to a wildcard"),
    no_delv(case(
        "tosecure.sig.test.",
        A,
        "CNAME into a signed delegation",
    )),
    case("dangling.sig.test.", A, "CNAME to a nonexistent name"),
    case("tc.sig.test.", TXT, "fits 512 bytes only without its RRSIG"),
    case("sig.test.", DNSKEY, "the apex DNSKEY"),
    case(NSEC3_OWNER, A, "an NSEC3 owner name: nonexistent"),
    Case {
        cd_ad: true,
        delv: false,
        ..case("www.sig.test.", A, "CD=1 and AD=1 in the query")
    },
];

/// The zones of the table (a fixture `tests/data/dnssec/ZONE.zone` each)
/// and their cases: every answer kind of RFC 4035 §3.1 and RFC 5155 §7.2.
pub const ZONES: [(&str, &[Case]); 2] = [("example", EXAMPLE), ("sig.test", SIG_TEST)];

/// A `delv -a` file trusting the zone `zone`'s SEP keys in `keys` (their
/// DS, as `dnssec-dsfromkey` computes it from the files the TS wrote).
pub fn anchor(keys: &Path, zone: &str, out: &Path) -> PathBuf {
    let mut text = String::from("trust-anchors {\n");
    let prefix = format!("K{zone}+");
    for e in std::fs::read_dir(keys).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with(&prefix) && name.ends_with(".key")) {
            continue;
        }
        let ds = kit::run_tool("dnssec-dsfromkey", &["-2", kit::path_str(&path)]);
        assert!(
            ds.status.success(),
            "dnssec-dsfromkey {name}: {}",
            ds.stderr
        );
        for line in ds.stdout.lines() {
            writeln!(text, "  {}", kit::static_ds(line)).unwrap();
        }
    }
    text.push_str("};\n");
    assert!(
        text.contains("static-ds"),
        "no key of {zone} in {}",
        keys.display()
    );
    let file = out.join(format!("{zone}.anchor"));
    std::fs::write(&file, text).unwrap();
    file
}

/// `timeout 5 delv -a ANCHOR +root=ZONE @SERVER NAME QTYPE`: `delv`'s
/// output for one question, trusting the anchor file `anchor` for `zone`
/// (no final dot).
pub fn delv(anchor: &Path, zone: &str, server: SocketAddr, name: &str, qtype: &str) -> kit::Output {
    let root = format!("+root={}.", zone.trim_end_matches('.'));
    let delv = ["-a", kit::path_str(anchor), &root, name, qtype];
    let args = [
        vec!["5".to_owned(), "delv".to_owned()],
        kit::tool_args(server, &delv),
    ]
    .concat();
    kit::run_tool("timeout", &args)
}

/// Asks `delv`, trusting the DS of each zone's keys in `keys` (anchor
/// files written to `out`), every in-zone case of [`ZONES`] at `server`:
/// how many it asked, and each answer it did not call "fully validated".
pub fn delv_every_case(server: SocketAddr, keys: &Path, out: &Path) -> (usize, String) {
    let mut failures = String::new();
    let mut checked = 0;
    for (zone, cases) in ZONES {
        let anchor = anchor(keys, &format!("{zone}."), out);
        // Not qtype NSEC: in an NSEC3 zone the TS follows the CNAME as
        // NSD does, which BIND's resolver calls a format error (dnssec.rs
        // asks it of NSEC zones only).
        let asked = |c: &&Case| {
            c.delv && c.name != NSEC3_OWNER && c.qtype != hickory_proto::rr::RecordType::NSEC
        };
        for c in cases.iter().filter(asked) {
            let out = delv(&anchor, zone, server, c.name, &c.qtype.to_string());
            checked += 1;
            if !out.stdout.contains("fully validated") {
                writeln!(
                    failures,
                    "\n== {} {} ({}):\n{}{}",
                    c.name, c.qtype, c.what, out.stdout, out.stderr
                )
                .unwrap();
            }
        }
    }
    (checked, failures)
}

pub const fn case(name: &'static str, qtype: RecordType, what: &'static str) -> Case {
    Case {
        name,
        qtype,
        what,
        delv: true,
        cd_ad: false,
        expanded: false,
    }
}

/// A case `delv` cannot resolve against one authoritative server.
pub const fn no_delv(c: Case) -> Case {
    Case { delv: false, ..c }
}

/// A wildcard answer (see [`Case::expanded`]).
pub const fn expanded(c: Case) -> Case {
    Case {
        expanded: true,
        ..c
    }
}

/// `delv` against `server` for `name`/`qtype`, validating from `signed`'s
/// trust anchor ([`delv`]): its output and how it ended, in one string.
pub fn delv_signed(
    signed: &SignedZone,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> String {
    let out = delv(
        &signed.anchor,
        &signed.zone,
        server,
        name,
        &qtype.to_string(),
    );
    format!("{}{}({})", out.stdout, out.stderr, out.status)
}

//! Master files the other servers refuse are refused, and files they load are
//! served as they serve them (each case compared with `nsd-checkzone`,
//! `kzonecheck` and `named-checkzone`). Each zone is small and inline: it is written to a
//! `.zone` file and loaded as a TS loads it ([`load_catalog_noting`]), so the
//! reader's checks and the zone builder's both apply; what a TS would serve
//! is read back from the compiled zone.
use std::path::PathBuf;

use dnslb::ts::load_catalog_noting;
use dnslb::ts::zone::Catalog;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::kit;

/// The head of every zone: origin `t.test.`, SOA, NS (lines 1-4).
const HEAD: &str = "$ORIGIN t.test.\n$TTL 300\n@ SOA ns h 1 7200 3600 1209600 300\n@ NS ns\n";

/// Loads `body` after [`HEAD`] (raw bytes, so CRs and NULs go in as
/// written) as the TS does: the catalog or the error line, and the warnings.
fn load(body: &[u8]) -> (Result<Catalog, String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("t.zone");
    let mut text = HEAD.as_bytes().to_vec();
    text.extend_from_slice(body);
    std::fs::write(&file, text).unwrap();
    let mut warnings = Vec::new();
    let loaded = load_catalog_noting(&kit::ts_settings(vec![file]), 1, &mut warnings);
    let strip = |s: String| s.replace(&format!("{}/", dir.path().display()), "");
    (
        loaded.map_err(|e| strip(e.to_string())),
        warnings.into_iter().map(strip).collect(),
    )
}

/// The error of a zone that must be refused.
fn refused(body: &str) -> String {
    match load(body.as_bytes()).0 {
        Ok(_) => panic!("loaded, but NSD, Knot and BIND refuse it:\n{body}"),
        Err(e) => e,
    }
}

/// The records (owner lower-cased, TTL, data) a loaded zone serves at `owner` of `rtype`.
fn served(catalog: &Catalog, owner: &str, rtype: RecordType) -> Vec<(u32, RData)> {
    let owner = Name::from_ascii(owner).unwrap().to_lowercase();
    catalog.zones()[0]
        .records()
        .into_iter()
        .filter(|(n, _, d)| n.to_lowercase() == owner && d.record_type() == rtype)
        .map(|(_, ttl, d)| (ttl, d))
        .collect()
}

fn loads(body: &[u8]) -> (Catalog, Vec<String>) {
    match load(body) {
        (Ok(c), w) => (c, w),
        (Err(e), _) => panic!("refused: {e}"),
    }
}

#[test]
fn a_bare_cr_ends_a_record_and_never_merges_two() {
    // `t TXT "a"<CR>u TXT "b"`: two records, never one TXT "a" "u" "TXT" "b".
    let (zone, _) = loads(b"t TXT \"a\"\ru TXT \"b\"\n");
    let txt = |owner| {
        served(&zone, owner, RecordType::TXT)
            .into_iter()
            .map(|(_, d)| d.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(txt("t.t.test."), ["a"]);
    assert_eq!(txt("u.t.test."), ["b"]);
    // A line that starts after a CR with white space has a blank owner, as
    // NSD and BIND read it (not "bad TTL '192.0.2.3'").
    let (zone, _) = loads(b"a A 192.0.2.2\n\r A 192.0.2.3\n");
    assert_eq!(served(&zone, "a.t.test.", RecordType::A).len(), 2);
    // Lines are counted at a bare CR, as BIND counts them.
    assert_eq!(
        refused("a A 1.2.3.4\rb A 1.2.3\n"),
        "t.zone:6: bad IPv4 address '1.2.3'"
    );
}

#[test]
fn a_cname_at_the_apex_is_refused_beside_the_soa() {
    // The SOA is data at the apex, even with no NS there.
    let (loaded, _) = load(b"");
    assert!(loaded.is_ok());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.zone");
    std::fs::write(
        &file,
        "$ORIGIN t.test.\n@ SOA ns h 1 2 3 4 5\n@ CNAME other.test.\n",
    )
    .unwrap();
    let err = load_catalog_noting(&kit::ts_settings(vec![file]), 1, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("t.zone:3: t.test. has a CNAME and other data (RFC 1034 §3.6.2)"),
        "{err}"
    );
    // The same in a PROJ table, whose SOA is made up.
    let table = dir.path().join("t.txt");
    std::fs::write(&table, "example.com www.example.org CNAME\n").unwrap();
    let mut settings = kit::ts_settings(vec![table]);
    settings.origin = Name::from_ascii("example.com.").unwrap();
    let err = load_catalog_noting(&settings, 1, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("t.txt:1: example.com. has a CNAME and other data (RFC 1034 §3.6.2)"),
        "{err}"
    );
}

/// How many DNAMEs `d.t.test.` holds once `body` loads.
fn dnames_at_d(body: &[u8]) -> usize {
    let (zone, _) = loads(body);
    served(&zone, "d.t.test.", RecordType::DNAME).len()
}

#[test]
fn two_dnames_at_one_name_are_refused_and_a_repeated_one_merged() {
    // NSD "multiple DNAMEs at the same name", Knot, BIND: all refuse.
    assert_eq!(
        refused("d DNAME x.test.\nd DNAME y.test.\n"),
        "t.zone:6: d.t.test. has more than one DNAME (a name holds at most one)"
    );
    assert_eq!(dnames_at_d(b"d DNAME x.test.\nD DNAME X.test.\n"), 1);
}

#[test]
fn data_below_a_dname_is_refused() {
    // NSD "DNAME ... has data below it", Knot "child record exists under DNAME".
    let why =
        "data below the DNAME at d.t.test. (RFC 6672 §2.3: a DNAME owner has no names below it)";
    for body in [
        "d DNAME x.test.\nx.d A 192.0.2.1\n",
        "x.d A 192.0.2.1\nd DNAME x.test.\n",
    ] {
        let err = refused(body);
        let line = if body.starts_with('x') { 5 } else { 6 };
        assert_eq!(err, format!("t.zone:{line}: {why}"), "{body}");
    }
    assert_eq!(
        refused("d DNAME x.test.\nsub.d NS ns.x.test.\n"),
        format!("t.zone:6: {why}")
    );
    // At the apex: the zone's own NS host below it.
    assert_eq!(
        refused("@ DNAME other.test.\nns A 192.0.2.53\n"),
        "t.zone:6: data below the DNAME at t.test. (RFC 6672 §2.3: a DNAME owner has no names below it)"
    );
    // A DNAME with nothing below it, and data beside it, load.
    assert_eq!(
        dnames_at_d(b"d DNAME x.test.\nd TXT \"here\"\nd2 A 192.0.2.1\n"),
        1
    );
}

#[test]
fn records_equal_but_for_the_case_of_a_name_are_one_record() {
    // NSD, Knot and BIND keep one (RFC 4343, RFC 2181 §5).
    let (zone, _) =
        loads(b"@ NS NS\n@ MX 10 mail\n@ MX 10 MAIL\nx NSEC a.t.test. A\nx NSEC A.T.test. A\n");
    assert_eq!(served(&zone, "t.test.", RecordType::NS).len(), 1);
    assert_eq!(served(&zone, "t.test.", RecordType::MX).len(), 1);
    assert_eq!(served(&zone, "x.t.test.", RecordType::NSEC).len(), 1);
    // Case in data that is not a name still makes two records.
    let (zone, _) = loads(b"t TXT \"a\"\nt TXT \"A\"\n@ MX 65 a\n@ MX 97 a\n");
    assert_eq!(served(&zone, "t.t.test.", RecordType::TXT).len(), 2);
    assert_eq!(served(&zone, "t.test.", RecordType::MX).len(), 2);
}

#[test]
fn an_exact_duplicate_cname_loads_as_one_and_two_different_ones_are_refused() {
    // The same CNAME twice is not "more than one CNAME at this name".
    let (zone, _) = loads(b"c CNAME ns\nc CNAME NS\n");
    assert_eq!(served(&zone, "c.t.test.", RecordType::CNAME).len(), 1);
    assert_eq!(
        refused("c CNAME ns\nc CNAME other.test.\n"),
        "t.zone:6: c.t.test. has more than one CNAME (a name holds at most one)"
    );
    assert_eq!(
        refused("c CNAME ns\nc A 192.0.2.1\n"),
        "t.zone:6: c.t.test. has a CNAME and other data (RFC 1034 §3.6.2)"
    );
}

#[test]
fn a_ttl_of_2_to_the_31_or_more_is_read_as_0_with_a_warning() {
    // RFC 2181 §8; BIND sets it to 0 and warns, NSD and Knot load it.
    let (zone, warnings) = loads(b"a 2147483648 A 192.0.2.2\nb 4294967295 A 192.0.2.3\n");
    assert_eq!(served(&zone, "a.t.test.", RecordType::A)[0].0, 0);
    assert_eq!(served(&zone, "b.t.test.", RecordType::A)[0].0, 0);
    assert_eq!(
        warnings,
        [
            "t.zone:5: warning: TTL 2147483648 is over 2147483647 and read as 0 (RFC 2181 §8) (2 such TTLs in this file)"
        ]
    );
    let (zone, warnings) = loads(b"$TTL 3000000000\nc A 192.0.2.4\n");
    assert_eq!(served(&zone, "c.t.test.", RecordType::A)[0].0, 0);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        refused("a 4294967296 A 192.0.2.2\n"),
        "t.zone:5: bad TTL '4294967296'"
    );
}

#[test]
fn an_rrset_of_mixed_ttls_is_warned_about() {
    // NSD "TTL 60 does not match the TTL 300 of the A RRset", BIND
    // "TTL set to prior TTL".
    let (zone, warnings) = loads(b"a 300 A 192.0.2.2\n$TTL 60\n A 192.0.2.3\nb A 192.0.2.4\n");
    assert!(
        served(&zone, "a.t.test.", RecordType::A)
            .iter()
            .all(|(ttl, _)| *ttl == 60)
    );
    assert_eq!(
        warnings,
        [
            "t.zone:7: warning: TTL 60 differs from the TTL 300 of the A RRset of a.t.test. before \
          it: the RRset is served at the lowest TTL of its records (RFC 2181 §5.2)"
        ]
    );
    let (_, warnings) = loads(b"a 300 A 192.0.2.2\na 300 A 192.0.2.3\n");
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn svcb_params_are_checked_against_each_other_and_keys_are_lower_case() {
    // RFC 9460 §8 and §7.1.1; NSD, Knot and BIND refuse these.
    assert_eq!(
        refused("s SVCB 1 . mandatory=port alpn=h2\n"),
        "t.zone:5: mandatory lists port but the record has no such SvcParam (RFC 9460 §8)"
    );
    assert_eq!(
        refused("s HTTPS 1 . no-default-alpn\n"),
        "t.zone:5: no-default-alpn without alpn (RFC 9460 §7.1.1)"
    );
    assert_eq!(
        refused("s SVCB 1 . ALPN=h2\n"),
        "t.zone:5: SvcParamKey 'ALPN' in upper case (keys are written in lower case, RFC 9460 §2.1)"
    );
    assert!(refused("s SVCB 1 . Port=80\n").contains("'Port' in upper case"));
    let (zone, _) =
        loads(b"s SVCB 1 . mandatory=alpn,port alpn=h2 port=80 no-default-alpn key9=x\n");
    assert_eq!(served(&zone, "s.t.test.", RecordType::SVCB).len(), 1);
}

#[test]
fn a_record_no_message_can_carry_is_refused() {
    // 257 strings of 254 bytes: 65,535 bytes of RDATA. BIND: "ran out of space".
    let strings = vec![format!("\"{}\"", "x".repeat(254)); 257].join(" ");
    let err = refused(&format!("big TXT {strings}\n"));
    assert!(err.starts_with("t.zone:5: a record of "), "{err}");
    assert!(
        err.contains("no answer or transfer could carry it"),
        "{err}"
    );
    // A big record that fits still loads: 200 strings, 51,000 bytes.
    let strings = vec![format!("\"{}\"", "x".repeat(254)); 200].join(" ");
    loads(format!("big TXT {strings}\n").as_bytes());
}

#[test]
fn an_error_line_quoting_a_huge_token_is_cut() {
    // A 1 MB unknown type is not echoed whole.
    let huge = "x".repeat(1 << 20);
    let err = refused(&format!("a {huge} 192.0.2.2\n"));
    assert!(err.len() < 1000, "{} bytes", err.len());
    assert!(
        err.starts_with("t.zone:5: unknown type 'xxxx"),
        "{}",
        &err[..60]
    );
    assert!(err.contains("bytes cut]"), "{}", &err[..60]);
}

#[test]
fn a_nul_byte_is_refused() {
    // BIND and Knot refuse it; never served as `"a\000b"`.
    for body in [
        &b"t TXT a\0b\n"[..],
        b"a\0 A 192.0.2.1\n",
        b"t TXT \"a\0b\"\n",
    ] {
        let Err(err) = load(body).0 else {
            panic!("loaded a NUL byte: {body:?}")
        };
        assert!(err.starts_with("t.zone:5: a NUL byte"), "{err}");
    }
}

#[test]
fn a_name_outside_the_zone_is_named() {
    // NSD "x.other.test. is outside the zone".
    assert_eq!(
        refused("x.other.test. A 192.0.2.1\n"),
        "t.zone:5: x.other.test. is outside the zone t.test."
    );
}

//! The TS answers and reads master files as NSD 4.6 does: DNAME, long
//! CNAME chains, CNAMEs across the zones one TS serves, each RRSIG's own
//! TTL, DS at a served child's apex, and the reader's types, SVCB params,
//! escapes, TTLs and generic data. None is ignored.
//!
//! The served cases put the same question to NSD and to a TS serving the same
//! zone file; the reader cases call the reader on a file NSD 4.6.1 reads
//! (checked with `nsd-checkzone`).
use std::path::Path;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::kit;
use crate::kit::Nsd;
use crate::kit::{Via, send, show_sections};

const ZONE: &str = "rv.test";

const HEAD: &str = "$ORIGIN rv.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 604800 60
@ NS ns1
ns1 A 192.0.2.53
host A 192.0.2.1
";

/// Asks NSD and a TS serving `HEAD` + `body` the question `name` `qtype`
/// over UDP with EDNS 1232; returns (NSD's answer, the TS's answer).
async fn both(body: &str, name: &str, qtype: RecordType) -> (Message, Message) {
    let text = format!("{HEAD}{body}");
    let mut nsd = Nsd::primary(ZONE, &text);
    let ts = kit::start_ts(kit::ts_settings(vec![nsd.zone_file(ZONE)])).await;
    nsd.wait_ready(ZONE).await;
    let q = kit::query(name, qtype, Some(1232)).to_vec().unwrap();
    let n = send(nsd.addr, &q, Via::Udp).await.unwrap();
    let t = send(ts.addr, &q, Via::Udp).await.unwrap();
    ts.stop().await;
    (n, t)
}

/// The reader on `HEAD` + `body`.
fn read(body: &str) -> Result<Vec<dnslb::ts::source::SourceRecord>, String> {
    let text = format!("{HEAD}{body}");
    dnslb::ts::zonefile::parse_zone_file(&text, Path::new("rv.zone"), None)
        .map(|(_, records)| records)
        .map_err(|e| e.to_string())
}

/// The reader accepts DNAME since today, but the answer writer knows nothing
/// of it: every name below a DNAME is answered NXDOMAIN, AA=1, where NSD
/// synthesizes the CNAME (RFC 6672 §3.2). Before today the file was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_below_a_dname_is_not_nxdomain() {
    let body = "dn DNAME host.example.org.\n";
    let (n, t) = both(body, "q.dn.rv.test.", RecordType::A).await;
    assert_eq!(
        n.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        show_sections(&n)
    );
    assert_eq!(
        t.metadata.response_code,
        n.metadata.response_code,
        "NSD:\n{}TS:\n{}",
        show_sections(&n),
        show_sections(&t)
    );
    assert_eq!(
        t.answers.len(),
        n.answers.len(),
        "TS:\n{}",
        show_sections(&t)
    );
}

/// A chain of 8 CNAMEs whose last target holds the A: NSD answers the 8
/// CNAMEs and the A, the TS stops after the 8th CNAME (MAX_CNAME_CHAIN counts
/// lookups that wrote a CNAME, so the 9th name is never looked up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_eight_cnames_ends_in_the_data() {
    let mut body = String::new();
    for i in 1..8 {
        body.push_str(&format!("d{i} CNAME d{}\n", i + 1));
    }
    body.push_str("d8 CNAME host\n");
    let (n, t) = both(&body, "d1.rv.test.", RecordType::A).await;
    assert_eq!(n.answers.len(), 9, "NSD:\n{}", show_sections(&n));
    assert_eq!(
        t.answers.len(),
        n.answers.len(),
        "NSD:\n{}TS:\n{}",
        show_sections(&n),
        show_sections(&t)
    );
}

/// Types NSD 4.6.1 reads in their presentation form; the reader refuses each
/// ("type LOC is read only in RFC 3597's generic form").
#[test]
fn types_nsd_reads_are_read() {
    let lines = [
        "LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
        "WKS 192.0.2.1 TCP 25 80",
        "APL 1:192.168.32.0/21 !1:192.168.38.0/28",
        "IPSECKEY 10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
        "EUI48 00-00-5e-00-53-2a",
        "EUI64 00-00-5e-ef-10-00-00-2a",
        "NID 10 0014:4fff:ff20:ee64",
        "L32 10 10.1.2.0",
        "L64 10 2001:0db8:1140:1000",
        "LP 10 l64-subnet1.rv.test.",
        "X25 311061700956",
        "ISDN 150862028003217 004",
        "NSAP 0x47.0005.80.005a00.0000.0001.e133.ffffff000161.00",
        "PX 10 net2.it. PRMD-net2.ADMD-p400.C-it.",
        "AVC \"app-name:WOLFGANG|app-class:OAM\"",
    ];
    let refused: Vec<String> = lines
        .iter()
        .filter_map(|l| read(&format!("x {l}\n")).err())
        .collect();
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

/// RFC 9460 §2.1: SvcParams in presentation form may come in any order (NSD
/// sorts them); a quoted value may hold white space; a target may hold
/// escaped bytes (`a\.b`).
#[test]
fn svcb_params_as_nsd_reads_them() {
    let lines = [
        "x HTTPS 1 . key65000=\"\\001\\002\" no-default-alpn alpn=h3\n",
        "x HTTPS 1 . key65000=\"a b\"\n",
        // The target is handed to hickory as `a\046b`, which it reads as
        // octal: "Malformed label: a&b".
        "x SVCB 1 a\\.b alpn=h2\n",
    ];
    let refused: Vec<String> = lines.iter().filter_map(|l| read(l).err()).collect();
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

/// `alpn="h2\\,h3"` is one ALPN id `h2,h3` (the char-string escape `\\`, then
/// the list's `\,`; RFC 9460 §A.1), as NSD serves it: key 1, length 6, one
/// id of 5 bytes. The reader hands the raw text to hickory's parser, which
/// skips the char-string level, and stores other bytes.
#[test]
fn svcb_escaped_alpn_bytes_as_nsd() {
    let records = read("x HTTPS 1 . alpn=\"h2\\\\,h3\"\n").unwrap();
    let https = records
        .iter()
        .find(|r| r.data.record_type() == RecordType::HTTPS)
        .unwrap();
    let RData::Unknown { rdata, .. } = &https.data else {
        panic!("{:?}", https.data);
    };
    let want: &[u8] = &[0, 1, 0, 0, 1, 0, 6, 5, b'h', b'2', b',', b'h', b'3'];
    assert_eq!(rdata.anything.as_slice(), want);
}

/// A TTL of many unit terms overflows the u64 sum in `fields::duration`:
/// a panic in any build with overflow checks (tests, fuzzing, debug), a
/// wrapped value in release.
#[test]
fn a_long_ttl_token_is_an_error_not_a_panic() {
    let ttl = "4294967295w".repeat(7200);
    let got = std::panic::catch_unwind(|| read(&format!("$TTL {ttl}\nx A 192.0.2.9\n")));
    assert!(matches!(got, Ok(Err(_))), "the reader panicked");
}

/// NSD 4.6.1 reads `\1` (fewer than three digits) as the character `1`;
/// the reader refuses the file.
#[test]
fn short_digit_escape_as_nsd() {
    assert!(read("x TXT \"a\\1b\"\n").is_ok());
}

/// The answer (UDP, EDNS 1232) to `name` `qtype` from a TS serving
/// `p.test.` (delegating `c.p.test.`) with `parent_body` and the child
/// `c.p.test.` with `child_body`.
async fn parent_and_child(
    parent_body: &str,
    child_body: &str,
    name: &str,
    qtype: RecordType,
) -> Message {
    let dir = kit::ZoneDir::new();
    let parent = dir.write(
        "p.zone",
        &format!(
            "$ORIGIN p.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 604800 60\n@ NS ns1\n\
             ns1 A 192.0.2.53\nc NS ns1.c\nns1.c A 192.0.2.54\n{parent_body}"
        ),
    );
    let child = dir.write(
        "c.zone",
        &format!(
            "$ORIGIN c.p.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 604800 60\n@ NS ns1\n\
             ns1 A 192.0.2.54\n{child_body}"
        ),
    );
    let ts = kit::start_ts(kit::ts_settings(vec![parent, child])).await;
    let q = kit::query(name, qtype, Some(1232)).to_vec().unwrap();
    let answer = send(ts.addr, &q, Via::Udp).await.unwrap();
    ts.stop().await;
    answer
}

/// The zones of [`cnames_across_served_zones_are_followed_as_nsd_does`]:
/// `p.test.` delegating `c.p.test.` (also served), and `o.test.`, a zone
/// beside them.
const ACROSS: [(&str, &str); 3] = [
    (
        "p.test",
        "$ORIGIN p.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 604800 60\n@ NS ns1\n\
         ns1 A 192.0.2.53\nc NS ns1.c\nns1.c A 192.0.2.54\n\
         www CNAME host.c.p.test.\nmiss CNAME nope.c.p.test.\nchain CNAME a.c.p.test.\n\
         loop CNAME l.c.p.test.\nside CNAME www.o.test.\ndeep CNAME x.d.c.p.test.\n",
    ),
    (
        "c.p.test",
        "$ORIGIN c.p.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 604800 60\n@ NS ns1\n\
         ns1 A 192.0.2.54\nhost A 192.0.2.10\na CNAME b\nb CNAME www.p.test.\n\
         l CNAME loop.p.test.\nd NS ns.elsewhere.test.\n",
    ),
    (
        "o.test",
        "$ORIGIN o.test.\n$TTL 300\n@ SOA ns1 h 1 3600 600 604800 60\n@ NS ns1\n\
         ns1 A 192.0.2.55\nwww A 192.0.2.77\n",
    ),
];

/// A TS serving a parent, its delegated child and a zone beside them: a
/// CNAME whose target another served zone holds goes on in that zone, as
/// NSD serving the same three files answers: the child's data (not the
/// parent's referral), the child's NXDOMAIN with its SOA, a chain back and
/// forth between the zones, a loop across them (each CNAME once), the zone
/// beside, and a referral at a cut of the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cnames_across_served_zones_are_followed_as_nsd_does() {
    let mut nsd = Nsd::primaries(&ACROSS);
    let files = ACROSS.iter().map(|(z, _)| nsd.zone_file(z)).collect();
    let ts = kit::start_ts(kit::ts_settings(files)).await;
    for (zone, _) in ACROSS {
        nsd.wait_ready(zone).await;
    }
    let mut wrong = Vec::new();
    for name in ["www", "miss", "chain", "loop", "side", "deep"] {
        let name = format!("{name}.p.test.");
        let q = kit::query(&name, RecordType::A, Some(1232))
            .to_vec()
            .unwrap();
        let n = send(nsd.addr, &q, Via::Udp).await.unwrap();
        let t = send(ts.addr, &q, Via::Udp).await.unwrap();
        let diff = kit::differences(&kit::answer_view(&n), &kit::answer_view(&t));
        if !diff.is_empty() {
            wrong.push(format!(
                "{name} A:\n{}\nNSD:\n{}TS:\n{}",
                diff.join("\n"),
                show_sections(&n),
                show_sections(&t)
            ));
        }
        if name == "www.p.test." {
            assert!(
                t.answers.iter().any(|r| r.record_type() == RecordType::A),
                "the child's A: TS:\n{}",
                show_sections(&t)
            );
        }
    }
    ts.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Pre-signed zones load since today, but the zone builder merges every
/// RRSIG at a name into one set with the lowest TTL: an RRSIG covering an A
/// of TTL 300 is served (to RRSIG queries and in AXFR) with the TTL of the
/// NSEC's RRSIG beside it, the zone's negative TTL. NSD keeps each RRSIG's
/// TTL (RFC 4034 §3: the covered RRset's); validators cap the cached RRset
/// at the RRSIG's TTL, so every signed name is cached only that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rrsig_keeps_its_ttl() {
    let body = "x 300 A 192.0.2.9
x 300 RRSIG A 13 3 300 20361231000000 20250101000000 1 rv.test. AAAA
x 60 NSEC y.rv.test. A RRSIG NSEC
x 60 RRSIG NSEC 13 3 60 20361231000000 20250101000000 1 rv.test. AAAA
";
    let (n, t) = both(body, "x.rv.test.", RecordType::RRSIG).await;
    // The RRSIG covering A: type covered (the first two bytes) is 1.
    let ttl_of_a_sig = |m: &Message| {
        m.answers.iter().find_map(|r| {
            let covers_a = match &r.data {
                RData::Unknown { rdata, .. } => rdata.anything.starts_with(&[0, 1]),
                other => other.to_string().starts_with("A "),
            };
            (r.record_type() == RecordType::RRSIG && covers_a).then_some(r.ttl)
        })
    };
    assert_eq!(ttl_of_a_sig(&n), Some(300), "NSD:\n{}", show_sections(&n));
    assert_eq!(ttl_of_a_sig(&t), Some(300), "TS:\n{}", show_sections(&t));
}

/// RFC 3597 §5: data in the generic form must be valid for a known type.
/// Types kept as raw bytes (SRV, NSEC3PARAM, DS, ...) are not checked: a
/// one-byte SRV loads and is served, and `kdig` calls the answer a malformed
/// packet. NSD refuses each of these files.
#[test]
fn generic_form_data_is_checked_against_its_type() {
    for line in [
        "x SRV \\# 1 00\n",
        "x NSEC3PARAM \\# 1 01\n",
        "x DS \\# 0\n",
    ] {
        assert!(read(line).is_err(), "{line} was read");
    }
}

/// A pre-signed zone whose signatures have expired loads (the TS serves
/// what it was given, as NSD does), but `dnslb check` says so at the first
/// expired RRSIG's line, with how many there are, and the config stays
/// good (exit 0, `ok`).
#[test]
fn check_warns_about_expired_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    // HEAD is 6 lines: the first expired RRSIG is line 8.
    let body = "x 300 A 192.0.2.9
x 300 RRSIG A 13 3 300 20250102000000 20241201000000 1 rv.test. AAAA
x 60 NSEC rv.test. A RRSIG NSEC
x 60 RRSIG NSEC 13 3 60 20250103000000 20241201000000 1 rv.test. AAAA
@ 60 NSEC x.rv.test. NS SOA RRSIG NSEC
@ 60 RRSIG NSEC 13 2 60 20361231000000 20250101000000 1 rv.test. AAAA
";
    std::fs::write(zones.join("x.zone"), format!("{HEAD}{body}")).unwrap();
    let config = dir.path().join("dnslb.toml");
    let toml = "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [\"zones/x.zone\"]\n";
    std::fs::write(&config, toml).unwrap();
    let out = crate::kit::run_dnslb(
        &["check", "-c", config.to_str().unwrap()],
        dir.path(),
        None,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{out:#?}");
    let warning = format!(
        "{}:8: warning: the RRSIG of x.rv.test. expired at 20250102000000 (2 signatures in \
         this file)",
        dir.path().join("zones/x.zone").display()
    );
    let ok = format!("{}: ok", config.display());
    assert_eq!(out.stderr_lines(), vec![warning.as_str(), ok.as_str()]);
}

/// A TS serving a parent and its delegated child: a DS question for the
/// child's apex belongs to the parent (RFC 4035 §3.1.4.1: a server
/// authoritative for both answers DS from the parent side; the DS set, or
/// the parent's NODATA and its proof, lives there). NSD 4.6.1 and Knot
/// serving the same two files answer NODATA with the parent's SOA; the TS
/// picks the child (the longest origin) and answers NODATA with the child's
/// SOA, which a validator cannot use to prove the child insecure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ds_question_at_a_served_child_apex_is_answered_from_the_parent() {
    let t = parent_and_child("", "", "c.p.test.", RecordType::DS).await;
    let soa_owner = t
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.to_ascii());
    assert_eq!(
        soa_owner.as_deref(),
        Some("p.test."),
        "TS:\n{}",
        show_sections(&t)
    );
}

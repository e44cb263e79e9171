//! Master files read as NSD 4.6 reads them. Each file of
//! `tests/data/zones/hard/` holds one hard case (quoted strings in parentheses, decimal
//! escapes, RFC 3597 generic data, SPF, DNAME, `@` in data, no `$TTL`, the DNSSEC types)
//! and lists its queries in `; query: OWNER TYPE` lines. The same file is served by NSD
//! and by the TS; for every query the two answers must have the same rcode and AA flag and
//! the same answer records, compared byte for byte in RDATA (names in RDATA uncompressed
//! and lower-cased, since NSD compresses them against the question).
//!
//! Also: bad files are refused with `file:line`, by the TS as by `dnslb check`.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dnslb::ts::load_catalog;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::kit;
use crate::kit::Nsd;

/// Every hard case is a zone of this origin.
const ZONE: &str = "hard.test.";

fn hard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zones/hard")
}

/// The labels of an owner as written in a `; query:` line (`@`, `\DDD`, `\X`, relative
/// to [`ZONE`]), decoded here independently of the reader under test.
fn owner(text: &str) -> Name {
    let mut labels: Vec<Vec<u8>> = Vec::new();
    if text != "@" {
        let bytes = text.as_bytes();
        let mut label = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                    let digits = std::str::from_utf8(&bytes[at + 1..at + 4]).unwrap();
                    label.push(digits.parse::<u8>().unwrap());
                    at += 4;
                }
                b'\\' => {
                    label.push(bytes[at + 1]);
                    at += 2;
                }
                b'.' => {
                    labels.push(std::mem::take(&mut label));
                    at += 1;
                }
                c => {
                    label.push(c);
                    at += 1;
                }
            }
        }
        labels.push(label);
    }
    labels.push(b"hard".to_vec());
    labels.push(b"test".to_vec());
    let mut name = Name::from_labels(labels).unwrap();
    name.set_fqdn(true);
    name
}

/// The `; query: OWNER TYPE` lines of a hard case.
fn queries(text: &str) -> Vec<(String, Name, RecordType)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("; query: "))
        .map(|q| {
            let (o, t) = q.split_once(' ').unwrap();
            let qtype = match t.strip_prefix("TYPE") {
                Some(code) => RecordType::from(code.parse::<u16>().unwrap()),
                None => t.parse::<RecordType>().unwrap(),
            };
            (q.to_owned(), owner(o), qtype)
        })
        .collect()
}

/// Reads a name at `at` of `msg` (following compression pointers): its wire form,
/// lower-cased, and where the name ends in place.
fn read_name(msg: &[u8], mut at: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut end = None;
    loop {
        let len = msg[at];
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(at + 2);
            at = usize::from(u16::from_be_bytes([len & 0x3f, msg[at + 1]]));
            continue;
        }
        out.push(len);
        if len == 0 {
            break;
        }
        out.extend(msg[at + 1..at + 1 + usize::from(len)].to_ascii_lowercase());
        at += 1 + usize::from(len);
    }
    (out, end.unwrap_or(at + 1))
}

/// The answer records of a raw message: owner, type, TTL and RDATA, names in the RDATA
/// of the RFC 1035 types expanded and lower-cased.
fn answer_records(msg: &[u8]) -> BTreeSet<(Vec<u8>, u16, u32, Vec<u8>)> {
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let (qd, an) = (count(4), count(6));
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at).1 + 4;
    }
    let mut out = BTreeSet::new();
    for _ in 0..an {
        let (name, next) = read_name(msg, at);
        at = next;
        let rtype = count(at);
        let ttl = u32::from_be_bytes(msg[at + 4..at + 8].try_into().unwrap());
        let len = usize::from(count(at + 8));
        let start = at + 10;
        let rdata = msg[start..start + len].to_vec();
        // The types whose RDATA names may be compressed (RFC 3597 §4).
        let names_then_fixed: Option<(usize, usize)> = match rtype {
            2 | 5 | 12 | 7 | 8 | 9 | 3 | 4 => Some((0, 1)),
            15 => Some((2, 1)),
            6 | 14 => Some((0, 2)),
            _ => None,
        };
        let rdata = match names_then_fixed {
            None => rdata,
            Some((prefix, names)) => {
                let mut data = msg[start..start + prefix].to_vec();
                let mut p = start + prefix;
                for _ in 0..names {
                    let (n, next) = read_name(msg, p);
                    data.extend(n);
                    p = next;
                }
                data.extend_from_slice(&msg[p..start + len]);
                data
            }
        };
        out.insert((name, rtype, ttl, rdata));
        at = start + len;
    }
    out
}

fn query_bytes(name: &Name, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(name.clone(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// Serves `file` by NSD and by the TS and compares the answers to its queries; returns
/// what differs (empty when equal) and the number of answer records compared.
async fn compare(file: &Path) -> (String, usize) {
    let bytes = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let asked = queries(&text);
    assert!(!asked.is_empty(), "{} lists no '; query:'", file.display());
    let mut nsd = Nsd::primary_bytes(ZONE, &bytes);
    let settings = kit::ts_settings(vec![file.to_path_buf()]);
    let ts = match load_catalog(&settings, 1) {
        Ok(_) => kit::start_ts(settings).await,
        Err(e) => {
            return (format!("{}: the TS refuses it: {e}\n", file.display()), 0);
        }
    };
    nsd.wait_ready(ZONE).await;
    let mut report = String::new();
    let mut compared = 0;
    for (shown, name, qtype) in &asked {
        let bytes = query_bytes(name, *qtype);
        let n = kit::udp_raw(nsd.addr, &bytes).await.expect("NSD answers");
        let t = kit::udp_raw(ts.addr, &bytes).await.expect("the TS answers");
        let (rn, rt) = (answer_records(&n), answer_records(&t));
        let header = |m: &[u8]| (m[3] & 0x0f, m[2] & 0x04 != 0, m[2] & 0x02 != 0);
        // NSD must have answered with data, or the query proves nothing.
        if rn.is_empty() || header(&n) != (0, true, false) {
            writeln!(
                report,
                "{}: {shown}: NSD gave no answer record",
                file.display()
            )
            .unwrap();
        }
        if header(&n) != header(&t) || rn != rt {
            writeln!(
                report,
                "{}: {shown}:\n  NSD (rcode, aa, tc) {:?} {rn:x?}\n  TS  (rcode, aa, tc) {:?} {rt:x?}",
                file.display(),
                header(&n),
                header(&t)
            )
            .unwrap();
        }
        compared += rn.len();
    }
    ts.stop().await;
    (report, compared)
}

/// Every hard case, served by NSD and by the TS: the same answers, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_zone_files_are_served_as_nsd_serves_them() {
    if crate::kit::need("hard_zone_files", ["nsd"]).is_none() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(hard_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zone"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut report = String::new();
    let mut compared = 0;
    for file in &files {
        let (diff, n) = compare(file).await;
        report.push_str(&diff);
        compared += n;
    }
    assert!(report.is_empty(), "answers differ from NSD's:\n{report}");
    assert!(compared >= 30, "only {compared} records compared");
}

/// Bad master files: the TS refuses each with `file:line: what`, the line of the fault.
#[test]
fn bad_master_files_are_refused_at_their_line() {
    let head = "$ORIGIN bad.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
    let cases = [
        ("x TXT \"open\n", 6, "quoted string not closed"),
        ("x TXT ( \"a\" \"b\"\n\n", 6, "not closed"),
        ("x A 192.0.2.1 )\n", 6, "')' with no '('"),
        (&format!("x TXT {}\n", "a".repeat(256)), 6, "256 bytes"),
        ("x TYPE65280 \\# 3 0a00\n", 6, "says 3 bytes"),
        ("x TYPE65280 0a00\n", 6, "generic form"),
        ("x BOGUS 1\n", 6, "unknown type 'BOGUS'"),
        ("x MX 10\n", 6, "missing exchange name"),
        (
            "y A 1.2.3.4\nx RRSIG A 13 2 60 (\n 20301301000000 1 1 bad.test. AQID )\n",
            8,
            "signature time",
        ),
        (
            "x NSEC y A BOGUS\n",
            6,
            "unknown type 'BOGUS' in the bitmap",
        ),
        ("a\\256b A 192.0.2.1\n", 6, "over 255"),
        ("$INCLUDE missing.zone\n", 6, "$INCLUDE: "),
    ];
    let dir = kit::ZoneDir::new();
    for (tail, line, what) in cases {
        let file = dir.write("bad.zone", &format!("{head}{tail}"));
        let err = load_catalog(&kit::ts_settings(vec![file.clone()]), 1)
            .err()
            .unwrap_or_else(|| panic!("{tail:?} was accepted"))
            .to_string();
        let want = format!("{}:{line}: ", file.display());
        assert!(
            err.starts_with(&want) && err.contains(what),
            "{tail:?}: {err}"
        );
    }
}

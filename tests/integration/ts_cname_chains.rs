//! Where a CNAME chain ends, the TS against NSD.
//!
//! NSD and an in-process TS serve the same zone file,
//! `tests/data/zones/cname_chains.zone`: CNAMEs into a delegated child and
//! onto its glue, loops, a CNAME to an empty non-terminal, ANY at a CNAME's
//! owner, and the other ends a chain can have (a missing name, a name out of
//! the zone, the apex, a wildcard, a wildcard CNAME). Each question is sent
//! to both, and the answers must agree in rcode, AA, TC and the records of
//! each section (order within a section aside).
//!
//! Every question goes over UDP without EDNS, over UDP and TCP with EDNS
//! (DO=0), both answered by the TS's plain reader, and over UDP and TCP with
//! an NSID request, which that reader declines when the TS has an `nsid`: the
//! full decoder answers those (the NSID in the answer shows it did), so both
//! paths are held to NSD.
//!
//! The same comparison holds DNAME redirection (RFC 6672) to NSD, with
//! `tests/data/zones/dname.zone` and `dname_apex.zone`.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use hickory_proto::rr::RecordType::{self, A, AAAA, ANY, CNAME, DNAME, DS, MX, NS, SOA, TXT};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};

use crate::kit;
use crate::kit::Nsd;
use crate::kit::{Via, record_text, send, show_sections};

const ZONE: &str = "cname.test";
/// The TS's NSID: its presence in an answer shows the full decoder answered.
const NSID: &str = "h3-ts";

fn zone_text(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zones")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

/// How one question is put.
#[derive(Debug, Clone, Copy)]
struct Way {
    via: Via,
    /// EDNS payload size (DO=0), if any.
    edns: Option<u16>,
    /// With an empty NSID option: the TS's full decoder path.
    nsid: bool,
}

const WAYS: [Way; 5] = [
    Way {
        via: Via::Udp,
        edns: None,
        nsid: false,
    },
    Way {
        via: Via::Udp,
        edns: Some(1232),
        nsid: false,
    },
    Way {
        via: Via::Tcp,
        edns: Some(4096),
        nsid: false,
    },
    Way {
        via: Via::Udp,
        edns: Some(1232),
        nsid: true,
    },
    Way {
        via: Via::Tcp,
        edns: Some(4096),
        nsid: true,
    },
];

fn question(name: &str, qtype: RecordType, way: Way) -> Message {
    let mut m = kit::query(name, qtype, way.edns);
    if way.nsid {
        let mut e = m.edns.clone().unwrap();
        e.options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        m.set_edns(e);
    }
    m
}

/// What the two servers must agree on: the header bits and each section as
/// a sorted list (duplicates kept, so a record written twice shows).
#[derive(Debug, PartialEq)]
struct Seen {
    rcode: String,
    aa: bool,
    tc: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn seen(m: &Message) -> Seen {
    let md = &m.metadata;
    let sorted = |rs: &[hickory_proto::rr::Record]| {
        let mut v: Vec<String> = rs.iter().map(record_text).collect();
        v.sort();
        v
    };
    // By design the TS adds no addresses of the targets of an NS answer
    // (NSD does even with minimal-responses): those are left out on both
    // sides, as in interop's differential test. Referral glue is kept.
    let ns_answer: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_ascii().to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let additional: Vec<_> = m
        .additionals
        .iter()
        .filter(|r| {
            !(matches!(r.record_type(), A | AAAA)
                && ns_answer.contains(&r.name.to_ascii().to_ascii_lowercase()))
        })
        .cloned()
        .collect();
    Seen {
        rcode: md.response_code.to_string(),
        aa: md.authoritative,
        tc: md.truncation,
        answer: sorted(&m.answers),
        authority: sorted(&m.authorities),
        additional: sorted(&additional),
    }
}

/// Puts every question in `cases` to NSD and to a TS serving the same file,
/// every [`WAYS`] way, and panics listing each answer that differs.
async fn agree_with_nsd(cases: &[(&str, RecordType)]) {
    agree_in(ZONE, "cname_chains.zone", cases).await;
}

/// [`agree_with_nsd`] for the zone `zone` in `tests/data/zones/<file>`;
/// a label `@` asks for the apex.
async fn agree_in(zone: &str, file: &str, cases: &[(&str, RecordType)]) {
    let mut nsd = Nsd::primary(zone, &zone_text(file));
    let mut settings = kit::ts_settings(vec![nsd.zone_file(zone)]);
    settings.nsid = Some(NSID.into());
    let ts = kit::start_ts(settings).await;
    nsd.wait_ready(zone).await;
    let mut report = String::new();
    for &(label, qtype) in cases {
        let name = match label {
            "@" => format!("{zone}."),
            _ => format!("{label}.{zone}."),
        };
        for way in WAYS {
            let q = question(&name, qtype, way).to_vec().unwrap();
            let at = |addr: SocketAddr| send(addr, &q, way.via);
            let (n, t) = match (at(nsd.addr).await, at(ts.addr).await) {
                (Ok(n), Ok(t)) => (n, t),
                (n, t) => {
                    let ok = |r: Result<Message, String>| r.map(|_| "answered");
                    writeln!(
                        report,
                        "\n{name} {qtype} {way:?}: NSD {:?}, TS {:?}",
                        ok(n),
                        ok(t)
                    )
                    .unwrap();
                    continue;
                }
            };
            let full_path = kit::nsid_of(&t).is_some_and(|p| p == NSID.as_bytes());
            if full_path != way.nsid {
                writeln!(
                    report,
                    "\n{name} {qtype} {way:?}: TS NSID present = {full_path}"
                )
                .unwrap();
            }
            if seen(&n) != seen(&t) {
                writeln!(
                    report,
                    "\n{name} {qtype} {way:?}: differs\n  NSD:\n{}  TS:\n{}",
                    show_sections(&n),
                    show_sections(&t)
                )
                .unwrap();
            }
        }
    }
    ts.stop().await;
    assert!(report.is_empty(), "the TS and NSD disagree:{report}");
}

/// A CNAME (or a chain) into a delegated child answers the CNAME
/// and the child's referral, AA=1; a CNAME to the cut itself too, but DS
/// there is the parent's (NODATA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_into_a_delegation_answers_the_referral() {
    agree_with_nsd(&[
        ("www", A),
        ("www", AAAA),
        ("www", TXT),
        ("deep", A),
        ("tocut", A),
        ("tocut", NS),
        ("tocut", DS),
    ])
    .await;
}

/// A CNAME to a glue name answers the referral, not the glue as data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_to_glue_answers_the_referral() {
    agree_with_nsd(&[("glued", A), ("glued", AAAA), ("glued", MX)]).await;
}

/// A loop returns each CNAME once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_loops_return_each_record_once() {
    agree_with_nsd(&[("a", A), ("b", TXT), ("self", A), ("l1", A), ("l1", AAAA)]).await;
}

/// A CNAME to an empty non-terminal is NODATA with the SOA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_to_an_empty_non_terminal_is_nodata_with_the_soa() {
    agree_with_nsd(&[("toent", A), ("toent", TXT)]).await;
}

/// ANY at a CNAME's owner is the CNAME alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_at_a_cname_owner_is_the_cname_alone() {
    agree_with_nsd(&[
        ("alias", ANY),
        ("chain", ANY),
        ("www", ANY),
        ("toapex", ANY),
        ("self", ANY),
    ])
    .await;
}

/// The other ends of a chain: a hit, a chain, NODATA and NXDOMAIN at the
/// target, out of the zone, the apex, a wildcard and a wildcard CNAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_cname_chain_ends_answer_as_nsd() {
    agree_with_nsd(&[
        ("alias", A),
        ("alias", CNAME),
        ("alias", MX),
        ("chain", A),
        ("chain", CNAME),
        ("nx", A),
        ("ext", A),
        ("toapex", SOA),
        ("toapex", NS),
        ("toapex", MX),
        ("towild", A),
        ("towild", TXT),
        ("towcn", A),
        ("foo.wcn", A),
        ("foo.wcn", AAAA),
    ])
    .await;
}

const DNAME_ZONE: &str = "dname.test";

/// A name below a DNAME owner: the DNAME, a CNAME synthesized from it
/// (RFC 6672 §3.1) and the chain followed in the zone as for a CNAME: a
/// hit, NODATA, NXDOMAIN, an empty non-terminal, a wildcard, a CNAME at the
/// target (in and out of the zone), other types and ANY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dname_below_its_owner_is_synthesized_and_followed() {
    agree_in(
        DNAME_ZONE,
        "dname.zone",
        &[
            ("www.dn", A),
            ("WwW.Dn", A),
            ("www.dn", AAAA),
            ("www.dn", CNAME),
            ("www.dn", DNAME),
            ("www.dn", ANY),
            ("nowhere.dn", A),
            ("y.dn", A),
            ("x.y.dn", A),
            ("deeper.x.y.dn", A),
            ("foo.wild.dn", A),
            ("foo.wild.dn", TXT),
            ("alias.dn", A),
            ("alias.dn", ANY),
            ("away.dn", A),
            ("www.out", A),
            ("a.b.out", MX),
        ],
    )
    .await;
}

/// At the DNAME's owner the DNAME is ordinary data: no synthesis. (ANY
/// there is left out: NSD 4.6 answers the A alone, the TS one RRset over
/// UDP and all over TCP by design, a difference that is not DNAME's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dname_at_its_owner_is_ordinary_data() {
    agree_in(
        DNAME_ZONE,
        "dname.zone",
        &[
            ("dn", DNAME),
            ("dn", A),
            ("dn", AAAA),
            ("dn", CNAME),
            ("out", DNAME),
            ("out", A),
        ],
    )
    .await;
}

/// DNAMEs into a delegation and below a cut, mixed with CNAMEs, in loops,
/// and a synthesized name over 255 bytes (YXDOMAIN, RFC 6672 §2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dname_chains_cuts_loops_and_long_names_answer_as_nsd() {
    agree_in(
        DNAME_ZONE,
        "dname.zone",
        &[
            ("www.todel", A),
            ("ns.todel", A),
            ("www.todel", DS),
            ("www.dn.sub", A),
            ("dn.sub", DNAME),
            ("cn", A),
            ("cn2", A),
            ("cn2", ANY),
            ("back.dn", A),
            ("a.loop", A),
            ("a.loop2", TXT),
            ("a.grow", A),
            ("x.long", A),
            ("mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm.mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm.mmmmmmmmmmmmmmm.long", A),
            ("mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm.mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm.mmmmmmmmmmmmmmm.long", DNAME),
        ],
    )
    .await;
}

/// A DNAME at the apex redirects every name below it; the apex keeps its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dname_at_the_apex_redirects_the_names_below_it() {
    agree_in(
        "apex.test",
        "dname_apex.zone",
        &[
            ("@", DNAME),
            ("@", A),
            ("@", SOA),
            ("@", NS),
            ("www", A),
            ("a.b", AAAA),
            ("www", ANY),
        ],
    )
    .await;
}

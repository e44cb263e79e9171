//! Signed zones served by the TS, checked against NSD case by case.
//!
//! Two unsigned zones (RFC 4035 Appendix A's `example.`, and `sig.test.`
//! with wildcards, empty non-terminals, a signed and an unsigned
//! delegation, CNAME chains into and out of the zone) are signed as the
//! test runs ([`kit::sign_zone`]) by `dnssec-signzone` (NSEC, NSEC3,
//! NSEC3 opt-out) and by `ldns-signzone` (NSEC, NSEC3). NSD and a `dnslb
//! ts` process serve the same signed file, and every case of [`ZONES`] is
//! asked of both with DO=0 and DO=1, over UDP at 512 and 1232 bytes and
//! over TCP: rcode, flags, OPT and each section's RRsets must agree
//! ([`kit::differences`]). `delv`, given the zone's trust anchor, must call
//! every in-zone answer "fully validated", from NSD (which proves the
//! fixtures) and from the TS; a wildcard answer under NSEC3 opt-out is
//! "unsigned" to a validator, from either server ([`Case::expanded`]).
use std::fmt::Write as _;
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::kit::Nsd;
use crate::kit::{self, Denial, Proc, SignedZone, Signer};
use crate::kit::{Case, NSEC3_OWNER, SIG_TEST, ZONES, delv_signed};
use crate::kit::{Via, send};

use RecordType::{A, NSEC};

/// The signers and denials every case is asked under.
const VARIANTS: [(Signer, Denial); 5] = [
    (Signer::Bind, Denial::Nsec),
    (Signer::Bind, Denial::Nsec3),
    (Signer::Bind, Denial::Nsec3OptOut),
    (Signer::Ldns, Denial::Nsec),
    (Signer::Ldns, Denial::Nsec3),
];

/// How a query is sent: UDP with its EDNS payload size, or TCP.
const TRANSPORTS: [(Via, u16); 3] = [(Via::Udp, 512), (Via::Udp, 1232), (Via::Tcp, 1232)];

/// The name a case asks in `zone` (`None`: the case does not apply).
fn case_name(c: &Case, zone: &SignedZone) -> Option<String> {
    if c.name != NSEC3_OWNER {
        return Some(c.name.to_owned());
    }
    zone.nsec3_owners().into_iter().next()
}

/// The query of case `c` for `name`: RD=0, EDNS with `payload` and DO as given.
fn case_query(c: &Case, name: &str, payload: u16, dnssec_ok: bool) -> Message {
    let mut q = kit::query(name, c.qtype, None);
    q.metadata.id = rand::random();
    q.metadata.checking_disabled = c.cd_ad;
    q.metadata.authentic_data = c.cd_ad;
    let mut e = Edns::new();
    e.set_max_payload(payload).set_dnssec_ok(dnssec_ok);
    q.set_edns(e);
    q
}

/// NSD and a `dnslb ts` process serving the same signed zone.
struct Pair {
    signed: SignedZone,
    nsd: Nsd,
    ts: Proc,
    ts_addr: SocketAddr,
}

/// Signs fixture `zone` with `signer`/`denial` and starts NSD and a TS on
/// the signed file; both answer the zone's SOA when this returns.
async fn serve_both(zone: &str, signer: Signer, denial: Denial) -> Pair {
    serve_edited(zone, signer, denial, |text| text).await
}

/// [`serve_both`], the TS serving the signed file as `edit` changes it.
async fn serve_edited(
    zone: &str,
    signer: Signer,
    denial: Denial,
    edit: fn(String) -> String,
) -> Pair {
    let unsigned = kit::dnssec_fixture(&format!("{zone}.zone"));
    let signed = kit::sign_zone(zone, &unsigned, signer, denial);
    let mut nsd = Nsd::primary_bytes(zone, &std::fs::read(&signed.file).unwrap());
    let port = kit::free_port();
    let file = signed.dir().join("ts.zone");
    std::fs::write(&file, edit(signed.text())).unwrap();
    let mut ts = Proc::dnslb("dnslb ts", &kit::ts_args(port, &[&file]), signed.dir());
    let ts_addr = kit::local(port);
    nsd.wait_ready(zone).await;
    kit::wait_soa(ts_addr, zone, kit::READY_LIMIT, &mut [&mut ts], |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    Pair {
        signed,
        nsd,
        ts,
        ts_addr,
    }
}

/// Whether NSD, both signers' tools and `extra` are installed; if not,
/// [`kit::skip`]s `test` (a failure under `DNSLB_REQUIRE_PEERS`).
fn tools_present(test: &str, extra: &[&str]) -> bool {
    let mut progs = vec!["nsd", "dnssec-dsfromkey"];
    for (signer, _) in VARIANTS {
        progs.extend(signer.programs());
    }
    progs.extend(extra);
    for p in progs {
        if kit::find_program(p).is_none() {
            kit::skip(test, &format!("{p} not installed"));
            return false;
        }
    }
    true
}

/// What [`differential`] found: answers compared, how many differ, how
/// many NSD truncated, and the differences printed.
#[derive(Default)]
struct Tally {
    asked: usize,
    mismatches: usize,
    truncated: usize,
    report: String,
}

/// Asks every case of the table, over every transport, of NSD and the TS
/// serving each zone signed by `signer` with `denial`, with DO as given.
async fn differential(signer: Signer, denial: Denial, dnssec_ok: bool, t: &mut Tally) {
    for (zone, cases) in ZONES {
        let mut pair = serve_both(zone, signer, denial).await;
        for c in cases {
            let Some(name) = case_name(c, &pair.signed) else {
                continue;
            };
            for (via, payload) in TRANSPORTS {
                let q = case_query(c, &name, payload, dnssec_ok);
                let bytes = q.to_vec().unwrap();
                let from_nsd = send(pair.nsd.addr, &bytes, via).await;
                let from_ts = send(pair.ts_addr, &bytes, via).await;
                t.asked += 1;
                let diff = match (&from_nsd, &from_ts) {
                    (Ok(n), Ok(t)) => kit::differences(&kit::answer_view(n), &kit::answer_view(t)),
                    _ => vec![format!(
                        "NSD: {:?}, TS: {:?}",
                        from_nsd.as_ref().err(),
                        from_ts.as_ref().err()
                    )],
                };
                t.truncated += usize::from(from_nsd.as_ref().is_ok_and(|n| n.metadata.truncation));
                if diff.is_empty() {
                    continue;
                }
                t.mismatches += 1;
                let show_sections = |m: &Result<Message, String>| match m {
                    Ok(m) => kit::dig(m),
                    Err(e) => format!("    {e}\n"),
                };
                writeln!(
                    t.report,
                    "\n== {signer:?}/{denial:?}: {name} {} ({}) over {via:?}, EDNS {payload}, DO={}{}: differs in\n  {}\n  NSD:\n{}  TS:\n{}",
                    c.qtype,
                    c.what,
                    u8::from(dnssec_ok),
                    if c.cd_ad { ", CD=1 AD=1" } else { "" },
                    diff.join("\n  "),
                    show_sections(&from_nsd),
                    show_sections(&from_ts)
                )
                .unwrap();
            }
        }
        pair.ts.assert_running();
    }
}

/// [`differential`] for each of `variants`; panics with every difference,
/// both answers printed section by section.
async fn check_differential(test: &str, signer: Signer, denial: Denial, dnssec_ok: bool) {
    if !tools_present(test, &[]) {
        return;
    }
    let mut t = Tally::default();
    differential(signer, denial, dnssec_ok, &mut t).await;
    assert!(t.asked > 0, "{test}: no case asked");
    // DO=1 answers with NSEC3 proofs at 512 bytes do not fit: the table
    // must have exercised truncation, or its 512-byte column proves nothing.
    assert!(
        !dnssec_ok || t.truncated > 0,
        "{test}: no DO=1 answer from NSD was truncated at 512 bytes"
    );
    assert!(
        t.mismatches == 0,
        "{test}: {} of {} answers differ between NSD and the TS:{}",
        t.mismatches,
        t.asked,
        t.report
    );
}

/// One test per signer, denial and DO bit, all running [`check_differential`].
macro_rules! differential_tests {
    ($($test:ident: $signer:ident $denial:ident $do:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            check_differential(stringify!($test), Signer::$signer, Denial::$denial, $do).await;
        }
    )*};
}

differential_tests! {
    bind_nsec_do0: Bind Nsec false;
    bind_nsec3_do0: Bind Nsec3 false;
    bind_nsec3_optout_do0: Bind Nsec3OptOut false;
    ldns_nsec_do0: Ldns Nsec false;
    ldns_nsec3_do0: Ldns Nsec3 false;
    bind_nsec_do1: Bind Nsec true;
    bind_nsec3_do1: Bind Nsec3 true;
    bind_nsec3_optout_do1: Bind Nsec3OptOut true;
    ldns_nsec_do1: Ldns Nsec true;
    ldns_nsec3_do1: Ldns Nsec3 true;
}

/// `delv` calls every in-zone case "fully validated" from the server
/// `pick` chooses of each [`Pair`], for every signer and denial.
async fn delv_validates(test: &str, pick: fn(&Pair) -> SocketAddr) {
    if !tools_present(test, &["delv", "timeout"]) {
        return;
    }
    let mut failures = String::new();
    let mut checked = 0;
    for (signer, denial) in VARIANTS {
        for (zone, cases) in ZONES {
            let mut pair = serve_both(zone, signer, denial).await;
            for c in cases.iter().filter(|c| c.delv) {
                let Some(name) = case_name(c, &pair.signed) else {
                    continue;
                };
                // NSEC at a CNAME owner of an NSEC3 zone (no NSEC there):
                // NSD and the TS follow the CNAME, which BIND's resolver
                // calls a format error ("CNAME response for NSEC RR").
                if c.qtype == NSEC && denial != Denial::Nsec {
                    continue;
                }
                let said = delv_signed(&pair.signed, pick(&pair), &name, c.qtype);
                checked += 1;
                let insecure = c.expanded && denial == Denial::Nsec3OptOut;
                let want = if insecure {
                    "; unsigned answer"
                } else {
                    "fully validated"
                };
                if !said.contains(want) {
                    writeln!(
                        failures,
                        "\n== {signer:?}/{denial:?} {name} {} ({}), not {want:?}:\n{said}",
                        c.qtype, c.what
                    )
                    .unwrap();
                }
            }
            pair.ts.assert_running();
        }
    }
    assert!(checked > 0);
    assert!(failures.is_empty(), "{test}: delv disagrees:{failures}");
}

/// The fixtures are right: NSD serving them validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_nsd() {
    delv_validates("delv_validates_nsd", |p| p.nsd.addr).await;
}

/// The TS's answers validate as NSD's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delv_validates_ts() {
    delv_validates("delv_validates_ts", |p| p.ts_addr).await;
}

// ---------------------------------------------------------------------------
// The comparison itself must see a wrong answer
// ---------------------------------------------------------------------------

/// The differential sees a TS that answers unlike NSD, end to end: here
/// one serving the signed zone without the signature of `www A`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_sees_a_missing_signature() {
    if !tools_present("differential_sees_a_missing_signature", &[]) {
        return;
    }
    let drop_sig = |text: String| {
        let keep = |l: &&str| {
            let f: Vec<&str> = l.split_whitespace().collect();
            !(f.len() > 4 && f[0] == "www.sig.test." && f[3] == "RRSIG" && f[4] == "A")
        };
        let kept: Vec<&str> = text.lines().filter(keep).collect();
        assert!(
            kept.len() < text.lines().count(),
            "no RRSIG of www A in:\n{text}"
        );
        kept.join("\n") + "\n"
    };
    let mut pair = serve_edited("sig.test", Signer::Bind, Denial::Nsec, drop_sig).await;
    let q = case_query(&SIG_TEST[0], "www.sig.test.", 1232, true);
    let bytes = q.to_vec().unwrap();
    let from_nsd = send(pair.nsd.addr, &bytes, Via::Tcp).await.unwrap();
    let from_ts = send(pair.ts_addr, &bytes, Via::Tcp).await.unwrap();
    let diff = kit::differences(&kit::answer_view(&from_nsd), &kit::answer_view(&from_ts));
    assert!(
        diff.iter()
            .any(|d| d.starts_with("answer section") && d.contains("RRSIG(A)")),
        "the missing RRSIG went unseen: {diff:?}\nNSD:\n{}TS:\n{}",
        kit::dig(&from_nsd),
        kit::dig(&from_ts)
    );
    pair.ts.assert_running();
}

/// An RRSIG record over `covered` at `owner` (signature bytes `sig`).
fn rrsig(owner: &str, ttl: u32, covered: RecordType, sig: u8) -> Record {
    let mut rdata = u16::from(covered).to_be_bytes().to_vec();
    rdata.extend([13, 2]); // algorithm, labels
    rdata.extend(ttl.to_be_bytes());
    rdata.extend(2_000_000_000u32.to_be_bytes()); // expiration
    rdata.extend(1_700_000_000u32.to_be_bytes()); // inception
    rdata.extend(12345u16.to_be_bytes());
    rdata.extend(b"\x03sig\x04test\x00");
    rdata.extend([sig; 64]);
    let data = RData::Unknown {
        code: RecordType::RRSIG,
        rdata: NULL::with(rdata),
    };
    Record::from_rdata(Name::from_ascii(owner).unwrap(), ttl, data)
}

/// A DO=1 positive answer: `www A` with its RRSIG, and a second A.
fn signed_answer() -> Message {
    let mut m = case_query(&SIG_TEST[0], "www.sig.test.", 1232, true);
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.authoritative = true;
    let a = |ip: [u8; 4]| {
        Record::from_rdata(
            Name::from_ascii("www.sig.test.").unwrap(),
            3600,
            RData::A(std::net::Ipv4Addr::from(ip).into()),
        )
    };
    m.add_answer(a([192, 0, 2, 10]));
    m.add_answer(rrsig("www.sig.test.", 3600, A, 1));
    m.add_answer(a([192, 0, 2, 11]));
    m
}

/// Round-trips `m` through the wire, as the tests receive answers.
fn wire(m: &Message) -> Message {
    Message::from_vec(&m.to_vec().unwrap()).unwrap()
}

#[test]
fn comparison_sees_every_wrong_answer() {
    let right = wire(&signed_answer());
    let view = |m: &Message| kit::answer_view(&wire(m));
    // The same RRsets in another order, and an owner in another case, agree.
    let mut reordered = signed_answer();
    reordered.answers.reverse();
    reordered.answers[0].name = Name::from_ascii("WWW.Sig.Test.").unwrap();
    assert_eq!(
        kit::differences(&view(&right), &view(&reordered)),
        Vec::<String>::new()
    );

    type Spoil = fn(&mut Message);
    let wrongs: [(&str, Spoil); 9] = [
        ("answer section", |m| {
            m.answers.remove(1);
        }),
        ("answer section", |m| {
            m.answers[1] = rrsig("www.sig.test.", 3600, A, 2)
        }),
        ("answer section", |m| {
            m.answers[1] = rrsig("www.sig.test.", 60, A, 1)
        }),
        ("answer section", |m| m.answers[0].ttl = 60),
        ("authority section", |m| {
            m.add_authority(rrsig("sig.test.", 300, RecordType::SOA, 1));
        }),
        ("cd", |m| {
            m.metadata.checking_disabled = !m.metadata.checking_disabled
        }),
        ("tc", |m| m.metadata.truncation = true),
        ("opt", |m| {
            m.edns.as_mut().unwrap().set_dnssec_ok(false);
        }),
        ("rcode", |m| {
            m.metadata.response_code = ResponseCode::NXDomain
        }),
    ];
    for (field, spoil) in wrongs {
        let mut wrong = signed_answer();
        spoil(&mut wrong);
        let diff = kit::differences(&view(&right), &view(&wrong));
        assert!(
            diff.iter().any(|d| d.starts_with(field)),
            "a wrong {field} went unseen: {diff:?}\n{}",
            kit::dig(&wire(&wrong))
        );
    }
    // The printed answer names the DNSSEC record in presentation form.
    let shown = kit::dig(&right);
    assert!(
        shown.contains("RRSIG A 13 2 3600 2000000000 1700000000 12345 sig.test."),
        "{shown}"
    );
}

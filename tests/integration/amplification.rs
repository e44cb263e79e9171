//! Amplification over UDP: how many bytes the TS and the LS send back per
//! byte of query, for the queries that make that ratio largest (ANY at the
//! apex and at a name with many RRsets, names with one big RRset, with and
//! without EDNS), and the caps that bound it: no UDP answer over
//! [`dns::UDP_PAYLOAD_MAX`] whatever EDNS says, none over 512 bytes without
//! EDNS, and TC=1 when the whole answer does not fit.
//!
//! Each server runs in-process on 127.0.0.1:0, serving
//! `tests/data/attacks/amp.zone`; the LS fronts the TS. The table of
//! measured ratios is printed (`--nocapture` shows it).
use std::net::SocketAddr;
use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};

use dnslb::dns;

use crate::kit::{self, TestLs, TestTs};

/// The zone every case asks about.
fn amp_zone() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/attacks/amp.zone")
}

/// The questions that give the largest answers.
const QUESTIONS: [(&str, RecordType); 6] = [
    ("amp.test.", RecordType::ANY),
    ("m.amp.test.", RecordType::ANY),
    ("big.amp.test.", RecordType::TXT),
    ("v6.amp.test.", RecordType::AAAA),
    ("fill.amp.test.", RecordType::AAAA),
    ("amp.test.", RecordType::TXT),
];

/// Client EDNS sizes tried: none, the usual, the maximum, and too small.
const EDNS: [Option<u16>; 5] = [None, Some(512), Some(1232), Some(4096), Some(65_535)];

/// The largest UDP answer a client advertising `edns` may get.
fn udp_limit(edns: Option<u16>) -> usize {
    match edns {
        None => usize::from(dns::UDP_PAYLOAD_PLAIN),
        Some(n) => usize::from(n.clamp(dns::UDP_PAYLOAD_PLAIN, dns::UDP_PAYLOAD_MAX)),
    }
}

/// The RRsets (owner, type) of the answer section, in order of first appearance.
fn rrsets(m: &Message) -> Vec<(Name, RecordType)> {
    let mut sets: Vec<(Name, RecordType)> = Vec::new();
    for r in &m.answers {
        let key = (r.name.clone(), r.record_type());
        if !sets.contains(&key) {
            sets.push(key);
        }
    }
    sets
}

/// One measured case.
struct Measured {
    who: &'static str,
    name: &'static str,
    qtype: RecordType,
    edns: Option<u16>,
    query: usize,
    answer: usize,
    tc: bool,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.answer as f64 / self.query as f64
    }
}

/// Asks every question with every EDNS size over UDP (and once over TCP for
/// the whole answer), checks the caps, and returns the measurements.
async fn measure(who: &'static str, addr: SocketAddr) -> Vec<Measured> {
    let mut out = Vec::new();
    for (name, qtype) in QUESTIONS {
        let full = kit::tcp(addr, &kit::query(name, qtype, Some(4096))).await;
        let full_sets = rrsets(&full);
        assert!(
            !full.answers.is_empty(),
            "{who}: {name} {qtype} over TCP has no answer"
        );
        if qtype == RecordType::ANY && name == "amp.test." {
            // Over TCP ANY gets the whole node, from the TS and through the
            // LS (which asks its backend over TCP for a TCP client's ANY).
            assert!(
                full_sets.len() > 1,
                "{who}: ANY at the apex over TCP must be the whole node, got {full_sets:?}"
            );
        }
        let full_len = full.to_vec().unwrap().len();
        for edns in EDNS {
            let q = kit::query(name, qtype, edns).to_vec().unwrap();
            let raw = kit::udp_raw(addr, &q)
                .await
                .unwrap_or_else(|| panic!("{who}: no UDP answer to {name} {qtype} edns {edns:?}"));
            let m = Message::from_vec(&raw).unwrap();
            let limit = udp_limit(edns);
            let case = format!("{who}: {name} {qtype} edns {edns:?}");
            assert!(
                raw.len() <= limit,
                "{case}: a {}-byte UDP answer over the {limit}-byte cap",
                raw.len()
            );
            assert!(
                raw.len() <= usize::from(dns::UDP_PAYLOAD_MAX),
                "{case}: over UDP_PAYLOAD_MAX"
            );
            if full_len > limit && qtype != RecordType::ANY {
                assert!(
                    m.truncation,
                    "{case}: the whole answer ({full_len} B) does not fit {limit} B, yet TC=0"
                );
            }
            if !m.truncation {
                let sets = rrsets(&m);
                if qtype == RecordType::ANY {
                    // RFC 8482 (ACCEPTED ON PURPOSE): over UDP an ANY may be
                    // answered with a single RRset (as Knot does) instead of
                    // the whole node; both are accepted here.
                    assert!(
                        sets.len() == 1 || sets == full_sets,
                        "{case}: ANY over UDP is neither one RRset (RFC 8482) nor the whole node: {sets:?}"
                    );
                } else {
                    assert_eq!(
                        m.answers.len(),
                        full.answers.len(),
                        "{case}: TC=0 but records are missing"
                    );
                }
            }
            out.push(Measured {
                who,
                name,
                qtype,
                edns,
                query: q.len(),
                answer: raw.len(),
                tc: m.truncation,
            });
        }
    }
    out
}

fn print_table(rows: &[Measured]) {
    for r in rows {
        eprintln!(
            "amplification {:<3} {:<15} {:<5} edns={:<6} query={:>3} B answer={:>4} B tc={} ratio={:.1}",
            r.who,
            r.name,
            r.qtype.to_string(),
            r.edns.map_or("none".to_owned(), |n| n.to_string()),
            r.query,
            r.answer,
            u8::from(r.tc),
            r.ratio()
        );
    }
    let max = rows
        .iter()
        .max_by(|a, b| a.ratio().total_cmp(&b.ratio()))
        .expect("some rows");
    eprintln!(
        "amplification {}: largest ratio {:.1} ({} {} edns {:?}: {} B for {} B)",
        max.who,
        max.ratio(),
        max.name,
        max.qtype,
        max.edns,
        max.answer,
        max.query
    );
    let any = rows
        .iter()
        .filter(|r| r.qtype == RecordType::ANY)
        .max_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    if let Some(a) = any {
        eprintln!(
            "amplification {}: largest ANY ratio {:.1} ({} edns {:?}: {} B for {} B)",
            a.who,
            a.ratio(),
            a.name,
            a.edns,
            a.answer,
            a.query
        );
    }
}

/// The ratios printed, bounded: no answer exceeds the client's cap (512
/// bytes without EDNS, [`dns::UDP_PAYLOAD_MAX`] with it, so the ratio is at
/// most cap / query); a truncated answer (TC=1) is no larger than its
/// query (the header, the question, and the OPT echoed); and ANY, the classic
/// amplifier, does no worse than the worst single type asked with the same
/// EDNS size (RFC 8482: one RRset), within 512 bytes.
fn bound_ratios(rows: &[Measured]) {
    for r in rows {
        let case = format!("{} {} {} edns {:?}", r.who, r.name, r.qtype, r.edns);
        let cap = udp_limit(r.edns) as f64 / r.query as f64;
        assert!(
            r.ratio() <= cap,
            "{case}: ratio {:.1} over the cap's {cap:.1}",
            r.ratio()
        );
        if r.tc {
            assert!(
                r.answer <= r.query,
                "{case}: a TC=1 answer of {} B for a {} B query",
                r.answer,
                r.query
            );
        }
        if r.qtype == RecordType::ANY {
            let worst_single = rows
                .iter()
                .filter(|o| o.qtype != RecordType::ANY && o.edns == r.edns)
                .map(Measured::ratio)
                .fold(0.0, f64::max);
            assert!(
                r.ratio() <= worst_single && r.answer <= usize::from(dns::UDP_PAYLOAD_PLAIN),
                "{case}: ANY ratio {:.1} ({} B) beats the worst single type's {worst_single:.1}",
                r.ratio(),
                r.answer
            );
        }
    }
}

async fn start() -> (TestTs, TestLs) {
    let ts = kit::start_ts(kit::ts_settings(vec![amp_zone()])).await;
    let mut cfg = kit::ls_config(&[("ts", ts.addr)]);
    cfg.layout = dnslb::config::Layout::Replicated;
    let ls = kit::start_ls(cfg).await;
    (ts, ls)
}

#[tokio::test]
async fn udp_answers_stay_within_the_caps_for_the_ts_and_the_ls() {
    let (ts, ls) = start().await;
    let ts_rows = measure("ts", ts.addr).await;
    let ls_rows = measure("ls", ls.addr).await;
    print_table(&ts_rows);
    print_table(&ls_rows);
    bound_ratios(&ts_rows);
    bound_ratios(&ls_rows);
    // The LS forwards: it adds no byte to what the TS would send.
    for (t, l) in ts_rows.iter().zip(&ls_rows) {
        assert_eq!(
            (t.name, t.qtype, t.edns, t.answer, t.tc),
            (l.name, l.qtype, l.edns, l.answer, l.tc),
            "the LS's answer differs in size from the TS's it forwards"
        );
    }
    ls.stop().await;
    ts.stop().await;
}

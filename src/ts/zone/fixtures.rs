//! Test helpers of the zone's unit tests: records, zones, and questions
//! asked through the TS's message assembly, parsed back.
use std::path::PathBuf;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{Catalog, Zone};
use crate::dns::Transport;
use crate::ts::answer::{Asked, assemble};
use crate::ts::source::SourceRecord;
use crate::ts::wire::NameKey;

pub(super) fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

pub(super) fn rec(n: &str, data: RData) -> SourceRecord {
    SourceRecord {
        name: name(n),
        ttl: 300,
        data,
        line: 1,
    }
}

pub(super) fn a(ip: &str) -> RData {
    RData::A(A(ip.parse().unwrap()))
}

pub(super) fn soa() -> (u32, SOA) {
    (
        300,
        SOA::new(name("ns."), name("hostmaster."), 1, 3600, 600, 86400, 60),
    )
}

pub(super) fn zone(records: Vec<SourceRecord>) -> Zone {
    zone_at(".", records)
}

/// A zone of `records` at `origin`, with the fixture's SOA.
pub(super) fn zone_at(origin: &str, records: Vec<SourceRecord>) -> Zone {
    super::build::zone(
        name(origin),
        vec![(0, records)],
        &[PathBuf::from("t")],
        |_, _| soa(),
    )
    .unwrap()
}

/// The whole answer (TCP) to `qname`/`qtype` from the zone of `catalog`
/// that answers it, a CNAME chain going on in its other zones; parsed back.
pub(super) fn ask_in(catalog: &Catalog, qname: &str, qtype: RecordType) -> Message {
    let question = Query::query(name(qname), qtype).to_bytes().unwrap();
    let key = NameKey::read(&question).unwrap();
    let zone = catalog.find(&key, u16::from(qtype)).unwrap();
    let asked = Asked {
        id: 7,
        flags: 0,
        question: &question,
        qname: &key,
        qtype,
        dnssec_ok: false,
    };
    let (msg, _) = assemble(catalog, zone, asked, None, u16::MAX, Transport::Tcp);
    Message::from_vec(&msg).unwrap()
}

/// The answer to `qname`/`qtype` within `max` bytes over `transport`,
/// parsed back; its ID and question are checked.
pub(super) fn ask_over(
    z: &Zone,
    qname: &str,
    qtype: RecordType,
    max: u16,
    transport: Transport,
) -> Message {
    ask_with(z, qname, qtype, (max, transport), (0x0100, false))
}

/// The answer to `qname`/`qtype` within `max` bytes over `transport`, the
/// query's flags word and DO bit as given, parsed back; its ID and
/// question are checked.
pub(super) fn ask_with(
    z: &Zone,
    qname: &str,
    qtype: RecordType,
    (max, transport): (u16, Transport),
    (flags, dnssec_ok): (u16, bool),
) -> Message {
    let question = Query::query(name(qname), qtype).to_bytes().unwrap();
    let key = NameKey::read(&question).unwrap();
    let asked = Asked {
        id: 7,
        flags,
        question: &question,
        qname: &key,
        qtype,
        dnssec_ok,
    };
    let (msg, _) = assemble(&Catalog::default(), z, asked, None, max, transport);
    let m = Message::from_vec(&msg).unwrap();
    assert_eq!(m.id, 7);
    assert_eq!(m.queries[0].name().to_ascii(), name(qname).to_ascii());
    m
}

/// The whole answer message to `qname`/`qtype`, over TCP, parsed back.
pub(super) fn ask(z: &Zone, qname: &str, qtype: RecordType) -> Message {
    ask_over(z, qname, qtype, u16::MAX, Transport::Tcp)
}

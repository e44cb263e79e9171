//! Test-only module: built under #[cfg(test)] (see `dns/mod.rs`). Names
//! and queries for the unit tests of every side (the DNS helpers, the LS,
//! the TS, `dnslb resolve`): one copy each.
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// A query for `name` and `qtype`, RD=1, ID 0x1234, with an OPT of UDP
/// size `edns` when given.
pub(crate) fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// A query for `name` (dotted, ASCII) written by hand: ID 7, RD=1, one
/// question of type A class IN, no OPT; the header's counts at 12 bytes
/// for a test to change.
pub(crate) fn a_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// `text` as a [`Name`].
pub(crate) fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// `text` (dotted, ASCII, no escapes; the final dot optional) in wire form,
/// the root label included.
pub(crate) fn wire_name(text: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in text.split('.').filter(|l| !l.is_empty()) {
        w.push(u8::try_from(label.len()).unwrap());
        w.extend_from_slice(label.as_bytes());
    }
    w.push(0);
    w
}

/// `zone`'s SOA record at TTL 300 with serial `serial`: MNAME `ns.` and
/// RNAME `h.` under `zone` (dotted, with its final dot), refresh 60, retry
/// 10, expire 600, minimum 30.
pub(crate) fn soa(zone: &str, serial: u32) -> Record {
    let (mname, rname) = (name(&format!("ns.{zone}")), name(&format!("h.{zone}")));
    let data = SOA::new(mname, rname, serial, 60, 10, 600, 30);
    Record::from_rdata(name(zone), 300, RData::SOA(data))
}

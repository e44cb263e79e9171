//! Test-only module: built under #[cfg(test)] (see `dns/mod.rs`). Queries
//! for the unit tests of the DNS helpers and of the LS's rules.
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

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

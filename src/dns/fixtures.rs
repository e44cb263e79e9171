//! Test helpers of the DNS helpers' unit tests.
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

pub(super) fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

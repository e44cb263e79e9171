//! Header flags of the NOTIMP answer to an opcode the server does not
//! implement (docs/CONFIG.md (the TS): "An opcode other than QUERY and NOTIFY: NOTIMP"), from
//! the TS and from the LS, over UDP and TCP.
//!
//! RD, CD, AD, RA and Z are defined for QUERY only, so the answer to any other
//! opcode has them clear whatever the request said; it keeps the ID, the
//! opcode, the question, and an OPT when the request had one (RFC 6891 §7).
//! The requests set every flag bit a query can carry (QR=0; AA, TC, RD, RA, Z,
//! AD, CD all 1), so a server that copies any of them is caught.
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use crate::kit::{
    ZoneDir, ls_config, query, start_ls, start_ts_table, tcp_recv, tcp_send, udp_raw,
};

/// IQUERY (obsolete), STATUS, UPDATE and unassigned opcodes.
const OPCODES: [u8; 7] = [1, 2, 3, 5, 6, 9, 15];

const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
const Z: u8 = 0x40;
const AD: u8 = 0x20;
const CD: u8 = 0x10;

/// A query for `www.example. A` with `opcode`, ID `id`, every flag bit set
/// (QR aside), and an OPT when `edns`.
fn request(opcode: u8, id: u16, edns: bool) -> Vec<u8> {
    let mut m = query("www.example.", RecordType::A, None);
    m.metadata.id = id;
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    let mut raw = m.to_vec().unwrap();
    raw[2] = (opcode << 3) | AA | TC | RD;
    raw[3] = RA | Z | AD | CD;
    raw
}

/// Checks the answer to `request(opcode, id, edns)`.
fn assert_notimp(who: &str, opcode: u8, id: u16, edns: bool, raw: &[u8]) {
    let ctx = format!("{who}, opcode {opcode}, edns {edns}: {raw:02x?}");
    assert!(raw.len() >= 12, "{ctx}: short answer");
    assert_eq!(u16::from_be_bytes([raw[0], raw[1]]), id, "{ctx}: ID kept");
    assert_eq!(raw[2] & 0x80, 0x80, "{ctx}: QR=1");
    assert_eq!((raw[2] >> 3) & 0x0f, opcode, "{ctx}: opcode echoed");
    assert_eq!(raw[3] & 0x0f, 4, "{ctx}: NOTIMP");
    let flags = [
        ("AA", raw[2] & AA),
        ("TC", raw[2] & TC),
        ("RD", raw[2] & RD),
        ("RA", raw[3] & RA),
        ("Z", raw[3] & Z),
        ("AD", raw[3] & AD),
        ("CD", raw[3] & CD),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(_, bit)| *bit != 0)
        .map(|(name, _)| *name)
        .collect();
    assert!(
        set.is_empty(),
        "{ctx}: flags set in a NOTIMP answer: {set:?}"
    );
    let m = Message::from_vec(raw).unwrap();
    assert_eq!(m.queries.len(), 1, "{ctx}: question echoed");
    assert_eq!(m.queries[0].name().to_ascii(), "www.example.", "{ctx}");
    assert_eq!(m.queries[0].query_type(), RecordType::A, "{ctx}");
    assert!(m.answers.is_empty() && m.authorities.is_empty(), "{ctx}");
    assert_eq!(m.edns.is_some(), edns, "{ctx}: an OPT for an OPT");
}

/// Sends every request in [`OPCODES`] to `addr` over UDP and TCP.
async fn check_server(who: &str, addr: SocketAddr) {
    let mut id = 0x5a00u16;
    for opcode in OPCODES {
        for edns in [false, true] {
            id += 1;
            let req = request(opcode, id, edns);
            let raw = udp_raw(addr, &req)
                .await
                .unwrap_or_else(|| panic!("{who}: opcode {opcode} unanswered over UDP"));
            assert_notimp(&format!("{who} over UDP"), opcode, id, edns, &raw);

            let mut s = TcpStream::connect(addr).await.unwrap();
            tcp_send(&mut s, &req).await;
            let raw = tcp_recv(&mut s)
                .await
                .unwrap_or_else(|| panic!("{who}: opcode {opcode} unanswered over TCP"));
            assert_notimp(&format!("{who} over TCP"), opcode, id, edns, &raw);
        }
    }
}

#[tokio::test]
async fn unknown_opcodes_get_notimp_with_only_qr_set_from_ts_and_ls() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", "www.example 192.0.2.1 A\n").await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    check_server("TS", ts.addr).await;
    check_server("LS", ls.addr).await;
    ls.stop().await;
    ts.stop().await;
}

//! DNS Cookies (RFC 7873) through the LS's packet cache, with a
//! cookie-aware backend: Knot with `mod-cookies`. A resolver that has learnt
//! the backend's server cookie (on a miss) expects a cookie on every answer
//! from the LS's address and takes one without it as spoofed (BIND:
//! "missing expected cookie", then TCP). A hit echoes the client's cookie:
//! its own client cookie with the server cookie it holds.
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::kit::Knot;
use crate::kit::{ls_config, query, start_ls, udp_raw};
use crate::kit::{need, peers_fixture};

/// `name` A with an OPT carrying COOKIE `cookie`.
fn with_cookie(name: &str, cookie: &[u8]) -> Vec<u8> {
    let mut m = query(name, RecordType::A, Some(1232));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// The payload of the COOKIE option of a raw answer, if it has one (read
/// from the wire: the OPT is the last record and the COOKIE its last
/// option, in the LS's answers and in Knot's).
fn cookie_of(raw: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(raw).unwrap();
    m.edns.as_ref()?.option(EdnsCode::Cookie)?;
    let at = raw.windows(2).rposition(|w| w == [0, 10])?;
    let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
    (at + 4 + len == raw.len()).then(|| raw[at + 4..].to_vec())
}

/// Asks `addr` and returns the answer with its COOKIE.
async fn ask(addr: SocketAddr, q: &[u8]) -> (Message, Option<Vec<u8>>) {
    let raw = udp_raw(addr, q).await.expect("an answer");
    (Message::from_vec(&raw).unwrap(), cookie_of(&raw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_carries_the_cookie_a_cookie_aware_backend_gave() {
    let Some([knotd]) = need("cache_cookies", ["knotd"]) else {
        return;
    };
    let zone = std::fs::read_to_string(peers_fixture("example.test.zone")).unwrap();
    let mut knot = Knot::primary_with_cookies(&knotd, "example.test.", &zone);
    knot.wait_ready("example.test.").await;
    let mut cfg = ls_config(&[("knot", knot.addr)]);
    cfg.cache = Some(dnslb::config::CacheConfig::default());
    let ls = start_ls(cfg).await;

    // A client cookie alone: Knot answers BADCOOKIE with its server cookie
    // (a SERVFAIL-like answer: never cached).
    let client = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11];
    let (m, first) = ask(ls.addr, &with_cookie("mail.example.test.", &client)).await;
    assert!(
        [ResponseCode::NoError, ResponseCode::BADCOOKIE].contains(&m.metadata.response_code),
        "{:?}",
        m.metadata.response_code
    );
    let first = first.unwrap_or_else(|| panic!("Knot gave no cookie:\n{}", knot.logs()));
    assert!(first.len() > 8 && first[..8] == client, "{first:02x?}");
    // Client and server cookie, a new name: a miss, then hits.
    let ours = with_cookie("www.example.test.", &first);
    for round in 0..3 {
        let (m, cookie) = ask(ls.addr, &ours).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{round}");
        let cookie = cookie.unwrap_or_else(|| panic!("round {round}: no COOKIE in the answer"));
        assert_eq!(cookie[..8], client, "round {round}: our client cookie");
        assert!(cookie.len() >= 16, "round {round}: a server cookie");
    }
    let s = ls.balancer.state().cache.as_ref().unwrap().stats();
    assert!(s.hits >= 2, "{s:?}");
    ls.stop().await;
}

//! The DNS over HTTPS request path: any HTTP request parts a client (or a proxy in
//! front of the LS) can send, before any DNS is read.
//!
//! Input: one control byte (bits 0-1: GET, POST, PUT, DELETE; bit 2: the peer is
//! a trusted proxy), then up to five fields separated by `\n`: the URL path, its
//! query string (none when empty), the `Content-Type` (none when empty), the
//! `X-Forwarded-For` values (several separated by `\r`), and the body (the rest,
//! `\n` included). Properties: no panic; [`query_of`] accepts only the configured
//! path, GET or POST, a POST only of `application/dns-message`, and returns a
//! message of 12 to 65,535 bytes (a POST's the body itself); [`max_age`] of any
//! bytes does not panic; the client [`client_of`] names is the peer unless the
//! peer is trusted, and otherwise the peer or an address written in the header.
#![no_main]

use std::net::SocketAddr;

use dnslb::server::doh::{DohRefusal, HttpQuery, MAX_QUERY, max_age, query_of};
use dnslb::server::forwarded::{ClientAddr, client_of};
use hyper::Method;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/dns-query";

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let method = match ctl & 3 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PUT,
        _ => Method::DELETE,
    };
    let mut fields = rest.splitn(5, |b| *b == b'\n');
    let mut next = || fields.next().unwrap_or_default();
    let (path, query, content_type, xff, body) = (next(), next(), next(), next(), next());
    let path = String::from_utf8_lossy(path);
    let query = String::from_utf8_lossy(query);
    let req = HttpQuery {
        method: &method,
        path: &path,
        query: (!query.is_empty()).then_some(&*query),
        content_type: (!content_type.is_empty()).then_some(content_type),
        body,
    };
    match query_of(&req, PATH) {
        Ok(raw) => {
            assert_eq!(path, PATH, "accepted on another path");
            assert!((12..=MAX_QUERY).contains(&raw.len()), "{} bytes", raw.len());
            if method == Method::POST {
                assert_eq!(raw, body, "a POST's query is its body");
                let ct = std::str::from_utf8(content_type).expect("accepted a non-UTF-8 type");
                let media = ct.split(';').next().unwrap_or_default().trim();
                assert!(
                    media.eq_ignore_ascii_case("application/dns-message"),
                    "{ct:?}"
                );
            } else {
                assert_eq!(method, Method::GET, "accepted {method}");
            }
            let _ = max_age(&raw);
        }
        Err(DohRefusal::NotFound) => assert_ne!(path, PATH),
        Err(DohRefusal::MethodNotAllowed) => {
            assert!(method != Method::GET && method != Method::POST);
        }
        Err(DohRefusal::UnsupportedType) => assert_eq!(method, Method::POST),
        Err(DohRefusal::BadRequest | DohRefusal::TooLarge) => {}
    }
    let _ = max_age(body);
    let peer: SocketAddr = if ctl & 4 == 0 {
        "192.0.2.1:4000".parse().expect("addr")
    } else {
        "10.0.0.1:4000".parse().expect("addr")
    };
    let trusted: dnslb::guard::netset::NetSet = [
        "10.0.0.0/8".parse().expect("net"),
        "2001:db8::/32".parse().expect("net"),
    ]
    .into_iter()
    .collect();
    let headers: Vec<&[u8]> = xff.split(|b| *b == b'\r').collect();
    let header_text = String::from_utf8_lossy(xff);
    match client_of(peer, headers.iter().copied(), &trusted) {
        ClientAddr::Peer(a) | ClientAddr::Malformed(a) => assert_eq!(a, peer),
        ClientAddr::Forwarded(a) => {
            assert!(ctl & 4 != 0, "believed an untrusted peer");
            // The address is written in the header (in some form).
            let ip = a.ip();
            let v4_mapped = match ip {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
                std::net::IpAddr::V4(_) => false,
            };
            assert!(
                v4_mapped || header_text.contains(&ip.to_string()) || ip.is_ipv6(),
                "{a} not in {header_text:?}"
            );
        }
    }
});

//! The LS's packet cache: a backend's answer stored, then a hostile query
//! answered from it.
//!
//! The answer is offered to the cache as the LS offers a winning answer
//! (`PacketCache::insert`, with the query it answered); then a second query
//! is looked up (`PacketCache::lookup`, or `PacketCache::stale` as at a
//! deadline) some seconds later, and its hit written out.
//!
//! Input: one control byte (bit 0: TCP; bit 1: the stale lookup; bit 2:
//! the second query's letters case-swapped when it is derived), the age in
//! seconds of the lookup, the query's length (two bytes, big-endian), the
//! query, the answer's length (two bytes), the answer, then the second
//! query; when none is given, the first with another ID (and the case
//! swapped by bit 2).
//! Property: no panic; a hit carries the second query's ID and its
//! question bytes as sent, fits the client's UDP size, and (when the
//! backend's answer was one hickory-proto reads, under the client's ID, RD
//! bit and question: a compression pointer into the header reads them) is
//! a DNS answer to that question, with the backend's rcode.
#![no_main]

use std::time::{Duration, Instant};

use dnslb::config::CacheConfig;
use dnslb::dns::{self, HEADER_LEN, Transport};
use dnslb::ls::cache::{Hit, PacketCache};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

/// Splits a two-byte length and that many bytes off the front of `data`.
fn take(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let [hi, lo, rest @ ..] = data else {
        return None;
    };
    rest.split_at_checked(usize::from(u16::from_be_bytes([*hi, *lo])))
}

fuzz_target!(|data: &[u8]| {
    let [ctl, age, rest @ ..] = data else {
        return;
    };
    let transport = dnslb_fuzz::transport(*ctl);
    let Some((query, rest)) = take(rest) else {
        return;
    };
    let Some((answer, query2)) = take(rest) else {
        return;
    };
    let mut second = query2.to_vec();
    if second.is_empty() {
        second = query.to_vec();
        if let Some(id) = second.get_mut(..2) {
            id[0] ^= 0xa5;
        }
        if ctl & 4 != 0
            && let Some(q) = second.get_mut(HEADER_LEN..)
        {
            for b in q.iter_mut().filter(|b| b.is_ascii_alphabetic()) {
                *b ^= 0x20;
            }
        }
    }
    let cache = PacketCache::new(&CacheConfig {
        max_entries: 8,
        ..CacheConfig::default()
    });
    let t0 = Instant::now();
    let stored = cache.insert(query, transport, answer, t0).is_ok();
    let now = t0 + Duration::from_secs(u64::from(*age));
    let mut out = Vec::with_capacity(512);
    let hit = if ctl & 2 == 0 {
        cache.lookup(&second, transport, now, &mut out)
    } else {
        cache.stale(&second, transport, now, &mut out)
    };
    if hit == Hit::Miss {
        assert!(out.is_empty(), "a miss left bytes to send");
        return;
    }
    assert!(stored, "a hit from an empty cache");
    assert!(cache.key(&second, transport).is_some(), "a hit has a key");
    let question_end = dns::peek_plain_query(&second)
        .map(|(_, end)| end)
        .expect("a hit's query is a plain one");
    assert_eq!(out.get(..2), second.get(..2), "the client's ID");
    assert_eq!(
        out.get(HEADER_LEN..question_end),
        second.get(HEADER_LEN..question_end),
        "the client's question bytes"
    );
    if transport == Transport::Udp {
        assert!(out.len() <= dns::client_max_size(&second, transport));
    }
    // The backend's answer as the client gets it: its ID, RD bit and
    // question bytes (a compression pointer into the header reads them).
    let mut under = answer.to_vec();
    if let (Some(head), Some(id), Some(&flags)) =
        (under.get_mut(..3), second.get(..2), second.get(2))
    {
        head[..2].copy_from_slice(id);
        head[2] = (head[2] & !1) | (flags & 1);
    }
    if let (Some(to), Some(from)) = (
        under.get_mut(HEADER_LEN..question_end),
        second.get(HEADER_LEN..question_end),
    ) {
        to.copy_from_slice(from);
    }
    if let Ok(backend) = Message::from_vec(&under) {
        dnslb_fuzz::check_answer(&second, &out, transport);
        let served = Message::from_vec(&out).expect("checked above");
        assert_eq!(
            served.metadata.response_code, backend.metadata.response_code,
            "the backend's rcode"
        );
    }
});

//! A hit made the client's answer ([`write`]): the stored answer copied
//! into a buffer the caller owns (nothing allocated when it has room), with
//! the client's ID, RD bit and question bytes (0x20 case kept), every TTL
//! aged by the whole seconds spent in the cache (or 30 for a stale answer,
//! RFC 8767), and an OPT made for this client when its query had one: UDP
//! size 1232, its DO bit echoed, the EDNS Client Subnet option (RFC 7871
//! §7.2.2: the query's family, source prefix and address, the scope the
//! backend returned) when the backend's answer carried one, a COOKIE (RFC
//! 7873) when the client sent one, and for a stale answer an Extended DNS
//! Error (RFC 8914) 3 "Stale Answer", or 19 "Stale NXDOMAIN Answer".
//!
//! Cookies: a resolver that has learnt a backend's server cookie (through a
//! miss, forwarded) expects one on every answer from the LS's address, and
//! takes an answer without it as spoofed (BIND: "missing expected cookie",
//! then the question again over TCP). A hit echoes the client's COOKIE as
//! sent when it carries a server cookie (nothing of another client's comes
//! from the cache), and room is kept for the LS's own cookie, which
//! `ls::cookies` puts in after the hit (the LS's server cookie, echoed or
//! fresh; a server cookie the LS did not make, the backend's, stays as
//! sent). Not in the key: every client's cookie differs.
//!
//! An answer longer than the client can take (its UDP size clamped to
//! [512, 1232], 512 without an OPT) is cut to its header and question,
//! TC=1, with the OPT: the client asks again over TCP. Cutting to whole
//! RRsets instead would hand a stub a partial answer it may use as if
//! whole (RFC 2181 §9 wants TC=1 whenever required data is left out), and
//! it is what the LS does to an oversized backend answer and NSD does to
//! its own: one rule for every answer of the LS.
use std::time::Instant;

use super::key::{COOKIE_OPTION, CacheClient, ECS_OPTION, Ecs};
use super::stored::{Entry, Kind, TTL_MAX};
use crate::dns::cookie::REPLY_COOKIE_LEN;
use crate::dns::{HEADER_LEN, TYPE_OPT, UDP_PAYLOAD_MAX};

/// The TTL of every record of a stale answer (RFC 8767 §5).
pub const STALE_TTL: u32 = 30;
/// EDNS option code of an Extended DNS Error (RFC 8914).
const EDE_OPTION: u16 = 15;
/// Extended DNS Error "Stale Answer".
pub const EDE_STALE: u16 = 3;
/// Extended DNS Error "Stale NXDOMAIN Answer".
pub const EDE_STALE_NXDOMAIN: u16 = 19;

/// Writes the answer to `query` (its `client` view) from `entry` into
/// `out` (cleared first), aged for `now`, stale or not. `false` (and `out`
/// to be ignored) when the query's question does not fit the entry's.
pub(super) fn write(
    entry: &Entry,
    query: &[u8],
    client: &CacheClient,
    now: Instant,
    stale: bool,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let question = query.get(HEADER_LEN..client.question_end);
    let Some(question) = question.filter(|q| HEADER_LEN + q.len() == entry.question_end) else {
        return false;
    };
    out.extend_from_slice(&entry.msg);
    let Some((head, rest)) = out
        .get_mut(..entry.question_end)
        .and_then(|m| m.split_at_mut_checked(HEADER_LEN))
    else {
        return false;
    };
    head[..2].copy_from_slice(&client.id.to_be_bytes());
    head[2] = (head[2] & !0x01) | u8::from(client.rd);
    rest.copy_from_slice(question);
    let age =
        u32::try_from(now.saturating_duration_since(entry.stored_at).as_secs()).unwrap_or(u32::MAX);
    for &at in entry.ttls.iter() {
        let at = usize::from(at);
        if let Some(field) = out.get_mut(at..at + 4) {
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            // Past 2^31 - 1 a TTL counts as 0 (RFC 2181 §8), wherever it sits.
            let ttl = if ttl > TTL_MAX { 0 } else { ttl };
            let aged = if stale {
                STALE_TTL
            } else {
                ttl.saturating_sub(age)
            };
            field.copy_from_slice(&aged.to_be_bytes());
        }
    }
    let ede = stale.then_some(if entry.kind == Kind::NxDomain {
        EDE_STALE_NXDOMAIN
    } else {
        EDE_STALE
    });
    let ecs = entry
        .key
        .ecs
        .as_ref()
        .zip(entry.ecs_scope)
        .filter(|_| client.edns_do.is_some());
    let cookie = cookie_for(query, client);
    let opt_len = match client.edns_do {
        None => 0,
        Some(_) => {
            OPT_LEN
                + ede.map_or(0, |_| EDE_LEN)
                + ecs.map_or(0, |(e, _)| 8 + e.addr_bytes().len())
                // Room for the LS's own cookie, put in after the hit.
                + client.cookie.map_or(0, |(_, len)| 4 + len.max(REPLY_COOKIE_LEN))
        }
    };
    if out.len() + opt_len > client.max_size {
        out.truncate(entry.question_end);
        if let Some(head) = out.get_mut(..HEADER_LEN) {
            head[2] |= 0x02; // TC
            head[6..].fill(0); // no records
        }
    }
    if let Some(dnssec_ok) = client.edns_do {
        push_opt(out, dnssec_ok, (ecs, cookie), ede);
    }
    true
}

/// Length of an OPT with no options.
const OPT_LEN: usize = 11;
/// Length of an EDE option with no text.
const EDE_LEN: usize = 6;

/// The COOKIE of a hit's answer (see the module header): the client's
/// own, when it carries a server cookie.
fn cookie_for<'a>(query: &'a [u8], client: &CacheClient) -> Option<&'a [u8]> {
    let (at, len) = client.cookie.filter(|&(_, len)| len > 8)?;
    query.get(at..at + len)
}

/// A hit's EDNS options besides the EDE: an ECS option (the query's and
/// the answer's scope) and a COOKIE.
type Options<'a> = (Option<(&'a Ecs, u8)>, Option<&'a [u8]>);

/// Appends the client's OPT (with the `options` and an EDE option `ede`,
/// when given) and counts it in ARCOUNT.
fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool, options: Options<'_>, ede: Option<u16>) {
    let (ecs, cookie) = options;
    let [size_hi, size_lo] = UDP_PAYLOAD_MAX.to_be_bytes();
    let [type_hi, type_lo] = TYPE_OPT.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    // An ECS option is at most 4 + 4 + 16 bytes, a COOKIE 4 + 40: no
    // overflow.
    let ecs_len = ecs.map_or(0, |(e, _)| 8 + e.addr_bytes().len());
    let cookie_len = cookie.map_or(0, |c| 4 + c.len());
    let rdlen = ede.map_or(0, |_| EDE_LEN) + ecs_len + cookie_len;
    let [rdlen_hi, rdlen_lo] = u16::try_from(rdlen).unwrap_or_default().to_be_bytes();
    // Root owner, OPT, class = UDP size, extended rcode 0, version 0, flags.
    out.extend_from_slice(&[
        0, type_hi, type_lo, size_hi, size_lo, 0, 0, flags, 0, rdlen_hi, rdlen_lo,
    ]);
    if let Some((e, scope)) = ecs {
        let addr = e.addr_bytes();
        let [opt_hi, opt_lo] = ECS_OPTION.to_be_bytes();
        let [len_hi, len_lo] = u16::try_from(4 + addr.len())
            .unwrap_or_default()
            .to_be_bytes();
        let [fam_hi, fam_lo] = e.family.to_be_bytes();
        out.extend_from_slice(&[
            opt_hi, opt_lo, len_hi, len_lo, fam_hi, fam_lo, e.source, scope,
        ]);
        out.extend_from_slice(addr);
    }
    if let Some(sent) = cookie {
        let [opt_hi, opt_lo] = COOKIE_OPTION.to_be_bytes();
        let [len_hi, len_lo] = u16::try_from(sent.len()).unwrap_or_default().to_be_bytes();
        out.extend_from_slice(&[opt_hi, opt_lo, len_hi, len_lo]);
        out.extend_from_slice(sent);
    }
    if let Some(code) = ede {
        let [opt_hi, opt_lo] = EDE_OPTION.to_be_bytes();
        let [code_hi, code_lo] = code.to_be_bytes();
        out.extend_from_slice(&[opt_hi, opt_lo, 0, 2, code_hi, code_lo]);
    }
    if let Some(count) = out.get_mut(10..12) {
        let n = u16::from_be_bytes([count[0], count[1]]).saturating_add(1);
        count.copy_from_slice(&n.to_be_bytes());
    }
}

//! EDNS Client Subnet (RFC 7871) as the LS forwards it (SPEC §5, `ecs` in
//! `[ls]`): the upstream query for a mode ([`edit_query`]: `add` puts the
//! client's /24 or /56 in when it sent none, as dnsdist's `useClientSubnet`
//! with its default `setECSOverride(false)` keeps a client's own option;
//! `off` takes the option out) and the answer mended to match what the
//! client sent ([`mend_answer`]: the option out of it, and the OPT the LS
//! added). Pure: both write only into the caller's buffers. The drivers
//! edit a client query at the door, before the cache is asked (so an added
//! option is in the cache's key), and mend every answer the client gets
//! ([`super::reply`]).
use std::net::IpAddr;

use crate::config::EcsMode;
use crate::dns::{RecordAt, u16_at, walk_message};

/// EDNS option code of Client Subnet (RFC 7871 §6).
const CLIENT_SUBNET: u16 = 8;
/// The source prefix `add` gives an IPv4 client (dnsdist's default
/// `setECSSourcePrefixV4(24)`).
pub const ADD_PREFIX_V4: u8 = 24;
/// The source prefix `add` gives an IPv6 client (`setECSSourcePrefixV6(56)`).
pub const ADD_PREFIX_V6: u8 = 56;
/// The UDP payload size of an OPT the LS adds to a query that had none: 512,
/// all a client without EDNS takes (RFC 1035 §4.2.1), so the backend
/// truncates for it.
const ADDED_PAYLOAD: u16 = 512;

/// What [`edit_query`] changed in a client's query: the answer is mended
/// by it ([`mend_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsEdit {
    /// The client's option taken out (`off`).
    Removed,
    /// An option added to the client's OPT (`add`).
    AddedOption,
    /// An OPT with an option added to a query without one (`add`).
    AddedOpt,
}

/// The offsets of the ECS option within `msg`'s OPT `opt` (from its code
/// to past its data), if it holds one.
fn find_option(msg: &[u8], opt: &RecordAt) -> Option<(usize, usize)> {
    let mut pos = opt.rdata_start;
    while pos + 4 <= opt.rdata_end {
        let code = u16_at(msg, pos)?;
        let end = pos + 4 + usize::from(u16_at(msg, pos + 2)?);
        if end > opt.rdata_end {
            return None;
        }
        if code == CLIENT_SUBNET {
            return Some((pos, end));
        }
        pos = end;
    }
    None
}

/// Appends the ECS option `add` sends for `client`: its address at
/// [`ADD_PREFIX_V4`] or [`ADD_PREFIX_V6`], SCOPE 0 (an IPv4-mapped IPv6
/// address counts as IPv4).
fn write_option(client: IpAddr, out: &mut Vec<u8>) {
    let (family, prefix, octets): (u16, u8, [u8; 16]) = match client.to_canonical() {
        IpAddr::V4(a) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            (1, ADD_PREFIX_V4, o)
        }
        IpAddr::V6(a) => (2, ADD_PREFIX_V6, a.octets()),
    };
    // Both prefixes are whole octets: no bits to clear past them.
    let need = usize::from(prefix / 8);
    out.extend_from_slice(&CLIENT_SUBNET.to_be_bytes());
    out.extend_from_slice(&u16::from(4 + prefix / 8).to_be_bytes());
    out.extend_from_slice(&family.to_be_bytes());
    out.extend_from_slice(&[prefix, 0]);
    out.extend_from_slice(&octets[..need]);
}

/// Adds `by` to the 16-bit field at `at` of `msg` (an RDLENGTH or a count).
fn bump(msg: &mut [u8], at: usize, by: i32) -> Option<()> {
    let now = i32::from(u16_at(msg, at)?);
    let new = u16::try_from(now + by).ok()?;
    msg.get_mut(at..at + 2)?.copy_from_slice(&new.to_be_bytes());
    Some(())
}

/// The upstream query for client query `raw` from `client` under `mode`,
/// written into `out` (cleared first): `None` when it goes as sent (`pass`;
/// `add` to a query with its own option; `off` to one without; a query
/// signed with TSIG or SIG(0), whose signature an edit would break; one
/// whose records cannot be walked, for the backend to judge). An edited
/// query leaves any bytes after its last record out: an OPT appended after
/// them would be read as junk.
pub fn edit_query(raw: &[u8], mode: EcsMode, client: IpAddr, out: &mut Vec<u8>) -> Option<EcsEdit> {
    if mode == EcsMode::Pass {
        return None;
    }
    let walk = walk_message(raw)?;
    if walk.signed {
        return None;
    }
    // The message without any trailing junk: an OPT added after junk would
    // not be where the backend looks for it.
    let raw = raw.get(..walk.end)?;
    let option = walk.opt.as_ref().and_then(|o| find_option(raw, o));
    out.clear();
    match (mode, walk.opt, option) {
        (EcsMode::Off, Some(opt), Some((start, end))) => {
            out.extend_from_slice(raw.get(..start)?);
            out.extend_from_slice(raw.get(end..)?);
            let less = i32::try_from(end - start).ok()?;
            bump(out, opt.rdlen_at, -less)?;
            Some(EcsEdit::Removed)
        }
        (EcsMode::Add, Some(opt), None) => {
            out.extend_from_slice(raw.get(..opt.rdata_end)?);
            write_option(client, out);
            let more = out.len() - opt.rdata_end;
            out.extend_from_slice(raw.get(opt.rdata_end..)?);
            bump(out, opt.rdlen_at, i32::try_from(more).ok()?)?;
            Some(EcsEdit::AddedOption)
        }
        (EcsMode::Add, None, _) => {
            out.extend_from_slice(raw);
            out.push(0);
            out.extend_from_slice(&41u16.to_be_bytes());
            out.extend_from_slice(&ADDED_PAYLOAD.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            let rdlen_at = out.len();
            out.extend_from_slice(&[0, 0]);
            write_option(client, out);
            let rdlen = i32::try_from(out.len() - rdlen_at - 2).ok()?;
            bump(out, rdlen_at, rdlen)?;
            bump(out, 10, 1)?;
            Some(EcsEdit::AddedOpt)
        }
        _ => None,
    }
}

/// Mends a backend's answer `msg` to a query the LS changed by `edit`, in
/// place: its ECS option taken out (the client sent none, or sent one the
/// backend never saw: RFC 7871 §7.2.1, as from a server without ECS), and
/// for [`EcsEdit::AddedOpt`] the whole OPT (the client sent none). An
/// answer that cannot be walked or is signed is left as it is.
pub fn mend_answer(msg: &mut Vec<u8>, edit: EcsEdit) {
    let Some(walk) = walk_message(msg) else {
        return;
    };
    let Some(opt) = walk.opt.filter(|_| !walk.signed) else {
        return;
    };
    if edit == EcsEdit::AddedOpt {
        if bump(msg, 10, -1).is_some() {
            msg.drain(opt.start..opt.rdata_end);
        }
        return;
    }
    if let Some((start, end)) = find_option(msg, &opt) {
        let less = i32::try_from(end - start).unwrap_or(0);
        if bump(msg, opt.rdlen_at, -less).is_some() {
            msg.drain(start..end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    fn query(edns: bool, subnet: Option<(&str, u8)>) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.example.org.").unwrap(),
            RecordType::A,
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            if let Some((addr, prefix)) = subnet {
                let s = ClientSubnet::new(addr.parse::<IpAddr>().unwrap(), prefix, 0);
                e.options_mut().insert(EdnsOption::Subnet(s));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn subnet(m: &Message) -> Option<(IpAddr, u8, u8)> {
        match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
            EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix(), s.scope_prefix())),
            _ => None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `q` from `client` under `mode`: the edit, and the query as sent
    /// when it was edited.
    fn edited(q: &[u8], mode: EcsMode, client: &str) -> (Option<EcsEdit>, Option<Message>) {
        let mut out = Vec::new();
        let edit = edit_query(q, mode, ip(client), &mut out);
        (
            edit,
            edit.is_some().then(|| Message::from_vec(&out).unwrap()),
        )
    }

    #[test]
    fn an_edited_query_leaves_trailing_junk_out() {
        let junk = [0xde, 0xad, 0xbe, 0xef, 0x00];
        for (edns, own, mode, want) in [
            (false, None, EcsMode::Add, EcsEdit::AddedOpt),
            (true, None, EcsMode::Add, EcsEdit::AddedOption),
            (true, Some(("10.1.2.0", 24)), EcsMode::Off, EcsEdit::Removed),
        ] {
            let clean = query(edns, own);
            let mut dirty = clean.clone();
            dirty.extend_from_slice(&junk);
            let mut from_clean = Vec::new();
            let mut from_dirty = Vec::new();
            let client = ip("192.0.2.77");
            assert_eq!(
                edit_query(&clean, mode, client, &mut from_clean),
                Some(want)
            );
            assert_eq!(
                edit_query(&dirty, mode, client, &mut from_dirty),
                Some(want)
            );
            // The same bytes as from the query without the junk, which a
            // parser reads whole: the option (or none) where it belongs.
            assert_eq!(from_dirty, from_clean, "{mode:?} {edns}");
            let m = Message::from_vec(&from_dirty).unwrap();
            let want_subnet = (mode == EcsMode::Add).then(|| (ip("192.0.2.0"), 24, 0));
            assert_eq!(subnet(&m), want_subnet, "{mode:?} {edns}");
        }

        // Junk that reads as an OPT with the client's own subnet, behind a
        // query whose ARCOUNT is 0: not a record of the query, so the LS's
        // option is the one the backend sees (before, the backend read the
        // junk as the query's OPT: a client could choose its own subnet).
        let mut spoof = query(false, None);
        let fake_ecs = [
            0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 0, 1, 2, 3,
        ];
        spoof.extend_from_slice(&fake_ecs);
        let (edit, m) = edited(&spoof, EcsMode::Add, "192.0.2.77");
        assert_eq!(edit, Some(EcsEdit::AddedOpt));
        assert_eq!(subnet(&m.unwrap()), Some((ip("192.0.2.0"), 24, 0)));
    }

    #[test]
    fn pass_changes_nothing() {
        let q = query(true, Some(("10.1.2.0", 24)));
        assert_eq!(edited(&q, EcsMode::Pass, "127.0.0.2").0, None);
    }

    #[test]
    fn add_puts_the_client_s_24_or_56_in_and_keeps_a_client_s_own() {
        let q = query(true, None);
        for (client, net, prefix) in [
            ("192.0.2.77", "192.0.2.0", 24),
            ("2001:db8:1:2ff::9", "2001:db8:1:200::", 56),
            ("::ffff:198.51.100.9", "198.51.100.0", 24),
        ] {
            let (edit, m) = edited(&q, EcsMode::Add, client);
            assert_eq!(edit, Some(EcsEdit::AddedOption), "{client}");
            let m = m.unwrap();
            assert_eq!(subnet(&m), Some((ip(net), prefix, 0)), "{client}");
            assert_eq!(m.edns.as_ref().unwrap().max_payload(), 1232);
        }

        // No OPT: one added, of 512 bytes, the option in it.
        let plain = query(false, None);
        let (edit, m) = edited(&plain, EcsMode::Add, "10.9.8.7");
        assert_eq!(edit, Some(EcsEdit::AddedOpt));
        let m = m.unwrap();
        assert_eq!(subnet(&m), Some((ip("10.9.8.0"), 24, 0)));
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), 512);

        // The client's own option goes as sent (dnsdist's setECSOverride(false)).
        let own = query(true, Some(("10.1.2.0", 24)));
        assert_eq!(edited(&own, EcsMode::Add, "127.0.0.2").0, None);
    }

    #[test]
    fn off_takes_the_option_out() {
        let mut out = Vec::new();
        let q = query(true, Some(("10.1.2.0", 24)));
        let edit = edit_query(&q, EcsMode::Off, ip("127.0.0.2"), &mut out);
        assert_eq!(edit, Some(EcsEdit::Removed));
        let m = Message::from_vec(&out).unwrap();
        assert!(m.edns.is_some(), "the OPT stays");
        assert_eq!(subnet(&m), None);
        assert_eq!(out.len(), q.len() - 11);
        let none = query(true, None);
        assert_eq!(edited(&none, EcsMode::Off, "127.0.0.2").0, None);
    }

    #[test]
    fn the_answer_loses_the_option_and_the_opt_the_ls_added() {
        let mut out = Vec::new();
        let plain = query(false, None);
        edit_query(&plain, EcsMode::Add, ip("10.9.8.7"), &mut out);
        // The backend's answer: the query with QR set and its option echoed
        // at scope 8 (the same bytes but for the scope and the flag).
        let mut answer = out.clone();
        answer[2] |= 0x80;
        let scope_at = answer.len() - 4;
        answer[scope_at] = 8;
        let m = Message::from_vec(&answer).unwrap();
        assert_eq!(subnet(&m), Some((ip("10.9.8.0"), 24, 8)));
        let mut mended = answer.clone();
        mend_answer(&mut mended, EcsEdit::AddedOpt);
        assert_eq!(mended, {
            let mut p = plain.clone();
            p[2] |= 0x80;
            p
        });
        // With the client's own OPT: the option out, the OPT kept.
        let mut with_opt = query(true, Some(("10.9.8.0", 24)));
        with_opt[2] |= 0x80;
        mend_answer(&mut with_opt, EcsEdit::AddedOption);
        let m = Message::from_vec(&with_opt).unwrap();
        assert!(m.edns.is_some());
        assert_eq!(subnet(&m), None);
        // Hostile bytes: left alone, no panic.
        let mut junk = vec![0u8, 1, 2];
        mend_answer(&mut junk, EcsEdit::Removed);
        assert_eq!(junk, [0, 1, 2]);
    }
}

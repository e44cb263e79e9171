//! The answer writer: [`answer`] turns a question into the
//! answer, authority and additional sections by copying the arena's bytes
//! behind compression pointers to names already in the message, following
//! RFC 1034 §4.3.2: data, CNAME chains, referrals at delegations,
//! wildcards, and negative answers with the SOA (RFC 2308, RFC 8020).
//! DNAME redirection (RFC 6672) is `dname.rs`'s. The message around it
//! (header, question, EDNS, truncation) is `ts/answer.rs`'s.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::dname;
use super::proof::{self, Denial, Wildcards, push_sigs};
use super::store::{NameEntry, SET_DO_ONLY, push_set};
use super::{Catalog, MAX_CNAME_CHAIN, Written, Zone};
use crate::dns::HEADER_LEN;
use crate::ts::wire::{NameKey, name_at, push_name_ref};

/// One walk down a CNAME chain, which may cross the zones of a catalog:
/// where each name looked up sits in the message (uncompressed), where each
/// DNAME owner written sits, and the next lookup's number.
struct Walk {
    chain: [usize; MAX_CNAME_CHAIN + 1],
    dnames: [usize; MAX_CNAME_CHAIN + 1],
    step: usize,
}

/// Where a chain goes on in another zone: that zone, and the target's
/// offset in the message and name.
type Onward<'z> = Option<(&'z Zone, usize, NameKey)>;

/// What a name is in a zone.
enum Found<'z> {
    Node(NameEntry<'z>),
    /// No such name, but the wildcard at its closest encloser (RFC 4592),
    /// that many labels up.
    Wild(NameEntry<'z>, usize),
    /// Exists only as the parent of other names (or the apex with no records of its own).
    Empty,
    /// No such name; how many labels up its closest encloser is, when the
    /// wildcard search found out.
    Missing(Option<usize>),
}

/// How a question is asked: its name (lower-cased, as written at
/// [`HEADER_LEN`]), its type, whether ANY gets every RRset (TCP) and
/// whether DNSSEC records are wanted (DO=1).
#[derive(Clone, Copy)]
pub struct Question<'q> {
    /// The question's name, lower-cased.
    pub qname: &'q NameKey,
    /// Its type.
    pub qtype: RecordType,
    /// ANY answered with every RRset (TCP), else with one (RFC 8482 §4.1).
    pub all_of_any: bool,
    /// DO=1: RRSIGs beside each RRset, and denial proofs (RFC 4035 §3.1).
    pub dnssec_ok: bool,
}

/// Writes the answer to a question `q` (whose name must be at or below
/// the origin) after the header and question already in `msg`, whose
/// name sits at [`HEADER_LEN`] as the client spelled it. Records
/// owned by the question's name point to it, so the client's spelling
/// (and 0x20 case) is kept. ANY gets every RRset when `q.all_of_any`
/// (TCP), otherwise one (RFC 8482 §4.1).
///
/// A CNAME is followed (RFC 1034 §4.3.2 step 3a) while its target lies in
/// the zone, and each name of the chain is looked up as the question's
/// own: at or below a cut it ends in a referral, a missing name in
/// NXDOMAIN, an empty non-terminal or a name without the type in NODATA,
/// each negative with the SOA (RFC 2308 §2.1, §2.2). A chain stops at a
/// name it has already written, so a loop returns each CNAME once, and
/// after [`MAX_CNAME_CHAIN`] + 1 lookups (a chain of that many CNAMEs
/// still ends in its data). Questions for CNAME or ANY at a CNAME's owner get the CNAME alone.
///
/// A name below a DNAME's owner (RFC 6672 §3.1; not below a cut) gets
/// the DNAME and a CNAME synthesized from it (owned by the name, the
/// DNAME's TTL, the owner's suffix replaced by the DNAME's target, the
/// rest lower-cased), followed as any CNAME; YXDOMAIN when that name
/// would exceed 255 bytes (§2.2); a CNAME question ends at that CNAME.
/// A DNAME met again is not written twice, and ends the chain when its
/// target lies below its owner. At the owner itself the DNAME is
/// ordinary data. All as NSD 4.6 answers.
///
/// A chain whose target another zone of `catalog` answers (a child
/// zone below one of `zone`'s cuts, or any other zone this TS
/// serves: [`Catalog::find`]) goes on in that zone, from the
/// data to the negative answer with that zone's SOA, as NSD answers;
/// [`MAX_CNAME_CHAIN`] and the loop check hold for the whole chain.
/// With DO=1 a chain leaves no zone after a wildcard answer (its
/// proofs end the authority section): the referral or the out-of-zone
/// target ends it there, as it does in a TS without the other zone.
///
/// With DO=1 in a signed zone, each RRset written in the answer and
/// authority sections is followed by its RRSIGs, and negative and
/// wildcard answers and referrals carry their proofs (`proof.rs`).
pub fn answer<'z>(
    zone: &'z Zone,
    msg: &mut Vec<u8>,
    q: Question<'_>,
    catalog: &'z Catalog,
) -> Written {
    answer_from(zone, msg, q, (HEADER_LEN, q.qname.clone()), catalog)
}

/// [`answer`] from the name `key` written at `owner_at` in
/// `msg` (a CNAME's target the caller wrote, in `zone`) rather than
/// from the question's name: the chain goes on from there as it would
/// after one of the zone's own CNAMEs.
pub fn answer_from<'z>(
    zone: &'z Zone,
    msg: &mut Vec<u8>,
    q: Question<'_>,
    (owner_at, key): (usize, NameKey),
    catalog: &'z Catalog,
) -> Written {
    let mut w = Written::new();
    let mut walk = Walk {
        chain: [0; MAX_CNAME_CHAIN + 1],
        dnames: [0; MAX_CNAME_CHAIN + 1],
        step: 0,
    };
    let qt = u16::from(q.qtype);
    let (mut here, mut owner_at, mut key) = (zone, owner_at, key);
    loop {
        let mut wild = Wildcards::default();
        let onward = |k: &NameKey| {
            catalog
                .find(k, qt)
                .filter(|&other| !std::ptr::eq(other, here))
        };
        let next = write_chain(
            here,
            msg,
            q,
            (owner_at, key),
            &mut walk,
            &mut w,
            &mut wild,
            &onward,
        );
        match next {
            Some((other, at, target)) => (here, owner_at, key) = (other, at, target),
            None => {
                // A referral wrote its own before its glue.
                if q.dnssec_ok {
                    proof::wildcards(here, msg, q.qname, &mut wild, &mut w);
                }
                return w;
            }
        }
    }
}

/// [`answer`]'s walk down the CNAME chain in `zone`, from
/// `key` written at `owner_at`; the names answered from a wildcard are
/// noted in `wild` for their proofs. When a target is another zone's
/// (`onward`), the zone, the target's offset and name.
#[allow(clippy::too_many_arguments)]
fn write_chain<'z>(
    zone: &Zone,
    msg: &mut Vec<u8>,
    q: Question<'_>,
    (mut owner_at, mut key): (usize, NameKey),
    walk: &mut Walk,
    w: &mut Written,
    wild: &mut Wildcards,
    onward: &dyn Fn(&NameKey) -> Option<&'z Zone>,
) -> Onward<'z> {
    let (qname, qtype, dnssec_ok) = (q.qname, q.qtype, q.dnssec_ok);
    let qt = u16::from(qtype);
    // The zone answering `target` when it is another one, unless this
    // zone's wildcard proofs are still to come (see `answer`).
    let elsewhere = |target: &NameKey, wild: &Wildcards| {
        (!dnssec_ok || wild.is_empty())
            .then(|| onward(target))
            .flatten()
    };
    // One lookup per CNAME followed, and one for the name it ends at.
    for step in walk.step..=MAX_CNAME_CHAIN {
        walk.step = step + 1;
        walk.chain[step] = owner_at;
        if let Some((at, dname)) = dname::above(zone, &key) {
            let again = walk.dnames[..step]
                .iter()
                .any(|&d| d != 0 && name_at(msg, d).eq_ignore_ascii_case(&key.bytes()[at..]));
            walk.dnames[step] = owner_at + at;
            let target = dname::synthesize(msg, &key, owner_at, at, dname, again, w);
            if dnssec_ok && !again {
                w.answers += proof::push_sigs_of(
                    zone,
                    msg,
                    owner_at + at,
                    &key.bytes()[at..],
                    RecordType::DNAME,
                );
            }
            match target {
                Some(_) if qtype == RecordType::CNAME => return None,
                Some(target_at) => {
                    let target = msg.get(target_at..).and_then(NameKey::read)?;
                    let seen = walk.chain[..=step]
                        .iter()
                        .any(|&at| name_at(msg, at).eq_ignore_ascii_case(target.bytes()));
                    if seen {
                        return None;
                    }
                    if let Some(other) = elsewhere(&target, wild) {
                        return Some((other, target_at, target));
                    }
                    if !target.is_under(&zone.origin_key) {
                        return None;
                    }
                    owner_at = target_at;
                    key = target;
                    continue;
                }
                None => return None,
            }
        }
        if zone.has_delegations
            && referral(zone, msg, (qname, &key), owner_at, qt, dnssec_ok, w, wild)
        {
            // After a CNAME the answer section holds this zone's data: the
            // answer stays authoritative, the referral rides along (as NSD).
            w.authoritative |= w.answers > 0;
            return None;
        }
        let first = w.answers;
        let at_apex = key.bytes() == &*zone.origin_key;
        if at_apex && (qtype == RecordType::SOA || qtype == RecordType::ANY) {
            w.answers += push_soa(zone, msg, owner_at);
            if dnssec_ok {
                w.answers += proof::push_sigs_of(zone, msg, owner_at, key.bytes(), RecordType::SOA);
            }
            if qtype == RecordType::SOA || !q.all_of_any {
                return None;
            }
        }
        let (node, wildcard) = match find(zone, &key) {
            Found::Node(n) => (n, None),
            Found::Wild(n, below) => (n, Some(below)),
            Found::Empty => {
                if w.answers == first {
                    push_negative(zone, msg, qname, w);
                    if dnssec_ok {
                        proof::deny(zone, msg, qname, &key, Denial::Empty, w);
                    }
                }
                return None;
            }
            Found::Missing(below) => {
                w.rcode = ResponseCode::NXDomain;
                push_negative(zone, msg, qname, w);
                if dnssec_ok {
                    proof::deny(zone, msg, qname, &key, Denial::Missing(below), w);
                }
                return None;
            }
        };
        // A question for the CNAME, for ANY or for the RRSIGs at the
        // owner is answered there (as NSD does); so is one for the NSEC
        // when the owner has its own (an NSEC zone), as NSD and Knot do.
        let own_nsec = qtype == RecordType::NSEC && node.set(qt).is_some();
        let cname = match node.set(u16::from(RecordType::CNAME)) {
            Some(c)
                if !own_nsec
                    && !matches!(
                        qtype,
                        RecordType::CNAME | RecordType::ANY | RecordType::RRSIG
                    ) =>
            {
                c
            }
            _ => {
                let before = w.answers;
                if qtype == RecordType::ANY {
                    for set in node.sets().filter(|s| s.flags & SET_DO_ONLY == 0) {
                        if w.answers > before && !q.all_of_any {
                            break;
                        }
                        w.answers += push_set(msg, owner_at, set, None);
                        if dnssec_ok {
                            w.answers += push_sigs(msg, owner_at, node, set.rtype);
                        }
                    }
                } else if qtype == RecordType::RRSIG {
                    for set in node.sig_sets() {
                        w.answers += push_set(msg, owner_at, set, None);
                    }
                } else if let Some(set) = node.set(qt) {
                    w.answers += push_set(msg, owner_at, set, None);
                    if dnssec_ok {
                        w.answers += push_sigs(msg, owner_at, node, qt);
                    }
                }
                if w.answers == before {
                    push_negative(zone, msg, qname, w);
                    if dnssec_ok {
                        let denial = match wildcard {
                            Some(below) => Denial::WildNoData(node, below),
                            None => Denial::NoData(node),
                        };
                        proof::deny(zone, msg, qname, &key, denial, w);
                    }
                } else if let Some(below) = wildcard {
                    wild.note(owner_at, below);
                }
                return None;
            }
        };
        let mut target_at = [0usize; 1];
        w.answers += push_set(msg, owner_at, cname, Some(&mut target_at[..]));
        if dnssec_ok {
            w.answers += push_sigs(msg, owner_at, node, u16::from(RecordType::CNAME));
        }
        if let Some(below) = wildcard {
            wild.note(owner_at, below);
        }
        let target = msg.get(target_at[0]..).and_then(NameKey::read)?;
        let seen = walk.chain[..=step]
            .iter()
            .any(|&at| name_at(msg, at).eq_ignore_ascii_case(target.bytes()));
        if seen {
            return None; // a loop: every CNAME of it is written once
        }
        if let Some(other) = elsewhere(&target, wild) {
            return Some((other, target_at[0], target));
        }
        if !target.is_under(&zone.origin_key) {
            return None; // out of zone: the client's resolver follows it
        }
        owner_at = target_at[0];
        key = target;
    }
    None
}

/// The SOA as an answer owned by the name at `owner_at`.
fn push_soa(zone: &Zone, msg: &mut Vec<u8>, owner_at: usize) -> u16 {
    push_name_ref(msg, owner_at);
    let origin_at = (zone.origin_key.len() > 1).then_some(owner_at);
    zone.soa_record.write(msg, origin_at, &zone.origin_key);
    1
}

/// The SOA in the authority section of a negative answer, owned by the
/// origin as it ends the question's name.
fn push_negative(zone: &Zone, msg: &mut Vec<u8>, qname: &NameKey, w: &mut Written) {
    zone.push_origin(msg, qname);
    let origin_at = zone.origin_in_question(qname);
    zone.soa_record
        .write_negative(msg, origin_at, &zone.origin_key);
    w.authority += 1;
}

/// The wildcard (`*.` and its closest encloser, RFC 4592) that answers
/// `key` in `zone`, when `key` has no entry of its own: the name response
/// rate limiting counts a wildcard's answers under, as NSD does.
pub fn wildcard_source(zone: &Zone, key: &NameKey) -> Option<NameKey> {
    match find(zone, key) {
        Found::Wild(_, below) => NameKey::wildcard_of(key.suffix(below).1),
        _ => None,
    }
}

/// The entry of `key`: its own, a wildcard's, or none (empty non-terminal or missing).
fn find<'z>(zone: &'z Zone, key: &NameKey) -> Found<'z> {
    if let Some(e) = zone.store.get(key.bytes()).filter(|e| !e.is_nsec3()) {
        return if e.is_empty() {
            Found::Empty
        } else {
            Found::Node(e)
        };
    }
    if zone.has_wildcards {
        let below = zone.closest_encloser(key);
        let (_, up) = key.suffix(below);
        return match NameKey::wildcard_of(up).and_then(|w| zone.store.get(w.bytes())) {
            Some(e) if !e.is_empty() => Found::Wild(e, below),
            _ => Found::Missing(Some(below)),
        };
    }
    Found::Missing(None)
}

/// A referral when `name` (the question's or a CNAME target's, written
/// at `written_at` in `msg`) is at or below a delegation point (not for DS
/// at the cut): the NS set in authority, glue from the zone in additional;
/// with DO=1, the DS set and its RRSIGs, or the proof there is none.
#[allow(clippy::too_many_arguments)]
fn referral(
    zone: &Zone,
    msg: &mut Vec<u8>,
    (qname, name): (&NameKey, &NameKey),
    written_at: usize,
    qt: u16,
    dnssec_ok: bool,
    w: &mut Written,
    wild: &mut Wildcards,
) -> bool {
    let apex_labels = zone.origin.num_labels() as usize;
    let labels = name.labels();
    // Walk from just below the apex down to the name itself.
    for n in (apex_labels + 1)..=labels {
        let (at, cut) = name.suffix(labels - n);
        let Some((entry, ns)) = zone
            .store
            .get(cut)
            .filter(|e| !e.is_empty())
            .and_then(|e| Some((e, e.set(u16::from(RecordType::NS))?)))
        else {
            continue;
        };
        if n == labels && qt == u16::from(RecordType::DS) {
            return false;
        }
        w.authoritative = false;
        let mut targets = [0usize; 32];
        w.authority += push_set(msg, written_at + at, ns, Some(&mut targets[..]));
        if dnssec_ok && let Some(cut_key) = NameKey::read(cut) {
            proof::delegation(zone, msg, qname, (entry, &cut_key), written_at + at, w);
            // The chain's wildcard proofs, in authority before the glue.
            proof::wildcards(zone, msg, qname, wild, w);
        }
        let written = usize::from(ns.count).min(targets.len());
        for &t in &targets[..written] {
            let Some(glue) = msg
                .get(t..)
                .and_then(NameKey::read)
                .and_then(|k| zone.store.get(k.bytes()))
            else {
                continue;
            };
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = glue.set(u16::from(rtype)) {
                    w.additional += push_set(msg, t, set, None);
                }
            }
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::dns::Transport;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{CNAME, NS};

    #[test]
    fn hit_nodata_nxdomain_and_ent() {
        let z = zone(vec![
            rec("www.google.com.", a("8.6.4.2")),
            rec("www.google.com.", a("8.6.4.3")),
        ]);
        let ans = ask(&z, "WWW.Google.com.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert!(ans.metadata.authoritative && ans.metadata.recursion_desired);
        assert_eq!(ans.answers.len(), 2);
        assert_eq!(ans.answers[0].name.to_ascii(), "WWW.Google.com.");
        let nodata = ask(&z, "WWW.Google.com.", RecordType::AAAA);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(nodata.authorities[0].ttl, 60);
        let ent = ask(&z, "google.com.", RecordType::A);
        assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ent.authorities.len(), 1);
        let miss = ask(&z, "mail.google.com.", RecordType::A);
        assert_eq!(miss.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(miss.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn cname_is_followed_inside_the_zone() {
        let z = zone(vec![
            rec("alias.test.", RData::CNAME(CNAME(name("www.test.")))),
            rec("www.test.", a("1.2.3.4")),
            rec("dangling.test.", RData::CNAME(CNAME(name("nowhere.test.")))),
        ]);
        let ans = ask(&z, "alias.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 2);
        assert_eq!(ans.answers[1].name.to_ascii(), "www.test.");
        assert_eq!(ans.answers[1].data, a("1.2.3.4"));
        assert_eq!(ask(&z, "alias.test.", RecordType::CNAME).answers.len(), 1);
        let ans = ask(&z, "dangling.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(ans.answers.len(), 1);
    }

    #[test]
    fn cname_goes_on_in_another_zone_of_the_catalog() {
        let cname = |owner: &str, target: &str| rec(owner, RData::CNAME(CNAME(name(target))));
        let parent = zone(vec![
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("192.0.2.53")),
            cname("www.test.", "host.sub.test."),
            cname("miss.test.", "nope.sub.test."),
            cname("loop.test.", "back.sub.test."),
        ]);
        let child = zone_at(
            "sub.test.",
            vec![
                rec("host.sub.test.", a("1.2.3.4")),
                cname("back.sub.test.", "loop.test."),
            ],
        );
        let catalog = Catalog::new(vec![parent.clone(), child]);
        // The child's data, not the parent's referral.
        let ans = ask_in(&catalog, "www.test.", RecordType::A);
        assert!(ans.authoritative, "{ans:?}");
        assert_eq!(ans.answers.len(), 2, "{ans:?}");
        assert_eq!(ans.answers[1].data, a("1.2.3.4"));
        assert!(ans.authorities.is_empty(), "{ans:?}");
        // The child's NXDOMAIN, with its SOA.
        let ans = ask_in(&catalog, "miss.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.authorities[0].name.to_ascii(), "sub.test.");
        // A loop across the zones: each CNAME once.
        let ans = ask_in(&catalog, "loop.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 2, "{ans:?}");
        // The parent alone still refers.
        let ans = ask_in(&Catalog::new(vec![parent]), "www.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.authorities[0].record_type(), RecordType::NS);
    }

    #[test]
    fn a_chain_of_the_most_cnames_reaches_the_data_and_one_more_stops() {
        // c0 -> c1 -> ... -> c{n} holding the A: n CNAMEs.
        let chain = |n: usize| {
            let mut records: Vec<_> = (0..n)
                .map(|i| {
                    let target = name(&format!("c{}.test.", i + 1));
                    rec(&format!("c{i}.test."), RData::CNAME(CNAME(target)))
                })
                .collect();
            records.push(rec(&format!("c{n}.test."), a("1.2.3.4")));
            zone(records)
        };
        let ans = ask(&chain(MAX_CNAME_CHAIN), "c0.test.", RecordType::A);
        assert_eq!(ans.answers.len(), MAX_CNAME_CHAIN + 1);
        assert_eq!(ans.answers[MAX_CNAME_CHAIN].data, a("1.2.3.4"));
        // MAX + 1 lookups, each writing a CNAME; the resolver follows the last.
        let ans = ask(&chain(MAX_CNAME_CHAIN + 1), "c0.test.", RecordType::A);
        assert_eq!(ans.answers.len(), MAX_CNAME_CHAIN + 1);
        assert!(
            ans.answers
                .iter()
                .all(|r| r.record_type() == RecordType::CNAME)
        );
    }

    #[test]
    fn cname_loops_write_each_record_once() {
        let z = zone(vec![
            rec("a.test.", RData::CNAME(CNAME(name("b.test.")))),
            rec("b.test.", RData::CNAME(CNAME(name("A.test.")))),
            rec("self.test.", RData::CNAME(CNAME(name("self.test.")))),
            rec("l1.test.", RData::CNAME(CNAME(name("l2.test.")))),
            rec("l2.test.", RData::CNAME(CNAME(name("l3.test.")))),
            rec("l3.test.", RData::CNAME(CNAME(name("l2.test.")))),
        ]);
        for (q, len) in [("a.test.", 2), ("SELF.test.", 1), ("l1.test.", 3)] {
            let ans = ask(&z, q, RecordType::A);
            assert_eq!(ans.answers.len(), len, "{q}");
            assert_eq!(ans.metadata.response_code, ResponseCode::NoError, "{q}");
        }
    }

    /// A zone with a delegated `sub.test.` and CNAMEs into it.
    fn delegating() -> Zone {
        zone(vec![
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
            rec("www.test.", RData::CNAME(CNAME(name("host.sub.test.")))),
            rec("glued.test.", RData::CNAME(CNAME(name("ns.sub.test.")))),
            rec("tocut.test.", RData::CNAME(CNAME(name("sub.test.")))),
        ])
    }

    #[test]
    fn cname_into_a_delegation_is_the_cname_and_a_referral() {
        let z = delegating();
        for q in ["www.test.", "glued.test.", "tocut.test."] {
            let ans = ask(&z, q, RecordType::A);
            assert_eq!(ans.metadata.response_code, ResponseCode::NoError, "{q}");
            assert!(ans.metadata.authoritative, "{q}: AA as NSD sets it");
            assert_eq!(ans.answers.len(), 1, "{q}: the CNAME alone");
            assert_eq!(ans.answers[0].record_type(), RecordType::CNAME, "{q}");
            assert_eq!(ans.authorities.len(), 1, "{q}");
            assert_eq!(ans.authorities[0].record_type(), RecordType::NS, "{q}");
            assert_eq!(ans.authorities[0].name.to_ascii(), "sub.test.", "{q}");
            assert_eq!(ans.additionals.len(), 1, "{q}: the glue");
            assert_eq!(ans.additionals[0].data, a("6.6.6.6"), "{q}");
        }
        // DS at the cut is the parent's: NODATA after the CNAME.
        let ds = ask(&z, "tocut.test.", RecordType::DS);
        assert!(ds.metadata.authoritative);
        assert_eq!(ds.answers.len(), 1);
        assert_eq!(ds.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn cname_to_an_empty_non_terminal_is_nodata_with_the_soa() {
        let z = zone(vec![
            rec("x.y.test.", a("1.2.3.4")),
            rec("toent.test.", RData::CNAME(CNAME(name("y.test.")))),
        ]);
        let ans = ask(&z, "toent.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.authorities.len(), 1);
        assert_eq!(ans.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn any_at_a_cname_owner_is_the_cname_alone() {
        let z = zone(vec![
            rec("alias.test.", RData::CNAME(CNAME(name("www.test.")))),
            rec("www.test.", a("1.2.3.4")),
        ]);
        for transport in [Transport::Udp, Transport::Tcp] {
            let ans = ask_over(&z, "alias.test.", RecordType::ANY, 1232, transport);
            assert_eq!(ans.answers.len(), 1, "{transport:?}");
            assert_eq!(ans.answers[0].record_type(), RecordType::CNAME);
            assert!(ans.authorities.is_empty(), "{transport:?}");
        }
    }

    #[test]
    fn wildcard_and_delegation() {
        let z = zone(vec![
            rec("*.w.test.", a("5.5.5.5")),
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
        ]);
        let ans = ask(&z, "x.w.test.", RecordType::A);
        assert_eq!(ans.answers.len(), 1);
        assert_eq!(ans.answers[0].name.to_ascii(), "x.w.test.");
        let ans = ask(&z, "deep.sub.test.", RecordType::A);
        assert!(!ans.metadata.authoritative);
        assert_eq!(ans.authorities.len(), 1);
        assert_eq!(ans.authorities[0].name.to_ascii(), "sub.test.");
        assert_eq!(ans.additionals.len(), 1);
        assert_eq!(ans.additionals[0].name.to_ascii(), "ns.sub.test.");
        // DS at the cut is the parent's: not a referral.
        let ds = ask(&z, "sub.test.", RecordType::DS);
        assert!(ds.metadata.authoritative && ds.answers.is_empty());
    }

    #[test]
    fn any_is_one_rrset_over_udp_and_all_over_tcp() {
        let z = zone(vec![
            rec("m.test.", a("1.1.1.1")),
            rec(
                "m.test.",
                RData::AAAA("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into()),
            ),
        ]);
        assert_eq!(ask(&z, "m.test.", RecordType::ANY).answers.len(), 2);
        let udp = ask_over(&z, "m.test.", RecordType::ANY, 512, Transport::Udp);
        assert_eq!(udp.answers.len(), 1);
    }

    #[test]
    fn truncation_keeps_the_question_alone() {
        let many: Vec<_> = (0..60)
            .map(|i| rec("big.test.", a(&format!("10.0.0.{i}"))))
            .collect();
        let z = zone(many);
        let m = ask_over(&z, "big.test.", RecordType::A, 512, Transport::Udp);
        assert!(m.metadata.truncation && m.answers.is_empty() && m.queries.len() == 1);
        assert_eq!(ask(&z, "big.test.", RecordType::A).answers.len(), 60);
    }
}

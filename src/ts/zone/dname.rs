//! DNAME redirection (RFC 6672) for the answer writer: the DNAME above a
//! name, and the CNAME it synthesizes for that name (`write.rs` follows it
//! as any CNAME).
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::store::{Set, be32, push_record, push_set};
use super::{Written, Zone};
use crate::ts::wire::{NAME_MAX, NameKey, push_name_ref};

/// The DNAME at the closest ancestor of `name` (in `zone`, below no
/// cut) that owns one, and that owner's offset in `name`.
pub(super) fn above<'z>(zone: &'z Zone, name: &NameKey) -> Option<(usize, Set<'z>)> {
    if !zone.has_dnames {
        return None;
    }
    let apex_labels = zone.origin.num_labels() as usize;
    let labels = name.labels();
    // From the apex down to the name's parent: a cut or a DNAME higher
    // up occludes what lies below it.
    for n in apex_labels..labels {
        let (at, owner) = name.suffix(labels - n);
        let Some(e) = zone.store.get(owner).filter(|e| !e.is_empty()) else {
            continue;
        };
        if n > apex_labels && e.set(u16::from(RecordType::NS)).is_some() {
            return None; // the referral's
        }
        if let Some(d) = e.set(u16::from(RecordType::DNAME)) {
            return Some((at, d));
        }
    }
    None
}

/// Writes `dname` (owned by the suffix at `at` of `name`, written at
/// `owner_at`; unless `written` already) and the CNAME it synthesizes
/// for `name`; the offset of that CNAME's target in `msg`. `None` when
/// the target would exceed 255 bytes (YXDOMAIN set) or when a DNAME met
/// again points below itself (it would grow the name forever; NSD
/// stops there too).
pub(super) fn synthesize(
    msg: &mut Vec<u8>,
    name: &NameKey,
    owner_at: usize,
    at: usize,
    dname: Set<'_>,
    written: bool,
    w: &mut Written,
) -> Option<usize> {
    let record = dname.records().next()?;
    let ttl = be32(record, 4);
    let mut new = [0u8; NAME_MAX];
    let target = NameKey::read(record.get(10..)?)?;
    let owner = &name.bytes()[at..];
    if written && target.is_under(owner) {
        return None;
    }
    if !written {
        w.answers += push_set(msg, owner_at + at, dname, None);
    }
    // The target as the zone spells it.
    let suffix = record.get(10..10 + target.wire_len())?;
    let len = at + suffix.len();
    if len > NAME_MAX {
        w.rcode = ResponseCode::YXDomain;
        return None;
    }
    new[..at].copy_from_slice(&name.bytes()[..at]);
    new[at..len].copy_from_slice(suffix);
    push_name_ref(msg, owner_at);
    let rdata = &new[..len];
    push_record(msg, u16::from(RecordType::CNAME), ttl, rdata);
    w.answers += 1;
    Some(msg.len() - len)
}

#[cfg(test)]
mod tests {
    use super::super::encode::wire_into;
    use super::super::fixtures::*;
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{CNAME, NS};

    /// A DNAME as the zone-file reader gives it: its wire RDATA, unparsed.
    fn dname(target: &str) -> RData {
        let mut wire = Vec::new();
        wire_into(&name(target), &mut wire).unwrap();
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: hickory_proto::rr::rdata::NULL::with(wire),
        }
    }

    /// A zone with DNAMEs: into the zone, out of it, into a delegation, in
    /// a loop, onto a name below itself, and below a cut.
    fn redirecting() -> Zone {
        let mut ttl600 = rec("dn.test.", dname("Target.test."));
        ttl600.ttl = 600;
        zone(vec![
            ttl600,
            rec("dn.test.", a("1.1.1.1")),
            rec("www.target.test.", a("2.2.2.2")),
            rec("out.test.", dname("example.org.")),
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
            rec("todel.test.", dname("sub.test.")),
            rec("deep.sub.test.", dname("target.test.")),
            rec("loop.test.", dname("loop2.test.")),
            rec("loop2.test.", dname("loop.test.")),
            rec("grow.test.", dname("x.grow.test.")),
            rec("cn.test.", RData::CNAME(CNAME(name("www.dn.test.")))),
        ])
    }

    #[test]
    fn dname_synthesizes_a_cname_and_follows_it() {
        let z = redirecting();
        let ans = ask(&z, "WWW.dn.test.", RecordType::A);
        assert_eq!(ans.metadata.response_code, ResponseCode::NoError);
        assert!(ans.metadata.authoritative);
        let [d, c, hit] = &ans.answers[..] else {
            panic!("{:?}", ans.answers)
        };
        assert_eq!((d.name.to_ascii(), d.ttl), ("dn.test.".into(), 600));
        assert_eq!(d.data, dname("Target.test."));
        // Owned by the question's name, the DNAME's TTL, the prefix lower-cased.
        assert_eq!(c.name.to_ascii(), "WWW.dn.test.");
        assert_eq!(c.ttl, 600);
        assert_eq!(c.data, RData::CNAME(CNAME(name("www.Target.test."))));
        // The target's address.
        assert_eq!(hit.data, a("2.2.2.2"));
        // The target's NODATA and NXDOMAIN, with the SOA.
        let nodata = ask(&z, "www.dn.test.", RecordType::AAAA);
        assert_eq!(nodata.answers.len(), 2);
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        let nx = ask(&z, "a.b.dn.test.", RecordType::A);
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(nx.answers.len(), 2);
        // A CNAME question ends at the synthesized CNAME.
        let cname = ask(&z, "www.dn.test.", RecordType::CNAME);
        assert_eq!(cname.answers.len(), 2);
        assert!(cname.authorities.is_empty());
        // A CNAME into a DNAME'd name: CNAME, DNAME, CNAME, A.
        assert_eq!(ask(&z, "cn.test.", RecordType::A).answers.len(), 4);
        // This zone is the root's: example.org. is in it, and missing.
        let out = ask(&z, "www.out.test.", RecordType::A);
        assert_eq!(out.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(out.answers.len(), 2);
        assert_eq!(
            out.answers[1].data,
            RData::CNAME(CNAME(name("www.example.org.")))
        );
    }

    #[test]
    fn dname_at_its_owner_and_below_a_cut_is_not_synthesized() {
        let z = redirecting();
        let own = ask(&z, "dn.test.", RecordType::DNAME);
        assert_eq!(own.answers.len(), 1);
        assert_eq!(
            ask(&z, "dn.test.", RecordType::A).answers[0].data,
            a("1.1.1.1")
        );
        let nodata = ask(&z, "dn.test.", RecordType::AAAA);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        // Below a cut: the child's DNAME, so a referral.
        let below = ask(&z, "www.deep.sub.test.", RecordType::A);
        assert!(!below.metadata.authoritative);
        assert!(below.answers.is_empty());
        assert_eq!(below.authorities[0].record_type(), RecordType::NS);
    }

    #[test]
    fn dname_into_a_delegation_loops_and_long_names() {
        let z = redirecting();
        let del = ask(&z, "www.todel.test.", RecordType::A);
        assert!(del.metadata.authoritative);
        assert_eq!(del.answers.len(), 2);
        assert_eq!(del.authorities[0].record_type(), RecordType::NS);
        assert_eq!(del.additionals[0].data, a("6.6.6.6"));
        // A loop through two DNAMEs: each DNAME and CNAME once.
        let lp = ask(&z, "a.loop.test.", RecordType::A);
        assert_eq!(lp.metadata.response_code, ResponseCode::NoError);
        assert_eq!(lp.answers.len(), 4);
        // A DNAME onto a name below itself is applied once.
        let grow = ask(&z, "a.grow.test.", RecordType::A);
        assert_eq!(grow.answers.len(), 2);
        assert_eq!(
            grow.answers[1].data,
            RData::CNAME(CNAME(name("a.x.grow.test.")))
        );
        // A synthesized name over 255 bytes: YXDOMAIN with the DNAME.
        let label = "a".repeat(60);
        let long = format!("{label}.{label}.{label}.{}.dn.test.", "b".repeat(59));
        // 252 bytes in wire format; `target` is 4 bytes longer than `dn`.
        let wire_len = long.len() + 1;
        assert!(wire_len <= NAME_MAX && wire_len + 4 > NAME_MAX);
        let yx = ask(&z, &long, RecordType::A);
        assert_eq!(yx.metadata.response_code, ResponseCode::YXDomain);
        assert_eq!(yx.answers.len(), 1);
        assert_eq!(yx.answers[0].record_type(), RecordType::DNAME);
    }
}

//! What an answer is, for response rate limiting: its [`AnswerClass`] and
//! the name it is counted under, read from the answer as it was written
//! (its header, its question) and the zone that holds the question's name,
//! as NSD classifies its answers: data by the query's name (ANY, RRSIG and
//! DNSKEY answers apart from the rest), a wildcard's answers by the
//! wildcard, NXDOMAIN, NODATA, referrals and errors by the zone (the root
//! when no zone holds the name). So a flood of random names under one zone
//! is one bucket, and cannot dodge the limit name by name.
//! And [`slipped`]: an answer cut to what a limited client gets when it
//! slips.
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{HEADER_LEN, WireHeader};
use crate::ts::wire::NameKey;
use crate::ts::zone::{Catalog, write};

/// What an answer is: answers of one class and name share a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerClass {
    /// Data at the query's name (or a truncated answer for it).
    Positive,
    /// Data from a wildcard (counted under the wildcard).
    Wildcard,
    /// No data of that type (counted under the zone).
    Nodata,
    /// No such name (counted under the zone).
    Nxdomain,
    /// A referral to a child zone (counted under the zone).
    Referral,
    /// An answer to ANY.
    Any,
    /// An answer to RRSIG.
    Rrsig,
    /// An answer to DNSKEY.
    Dnskey,
    /// Any other rcode: REFUSED, FORMERR, SERVFAIL... (counted under the
    /// zone, or the root).
    Error,
}

impl AnswerClass {
    /// Its name in logs, as NSD spells its types.
    pub fn label(self) -> &'static str {
        match self {
            AnswerClass::Positive => "positive",
            AnswerClass::Wildcard => "wildcard",
            AnswerClass::Nodata => "nodata",
            AnswerClass::Nxdomain => "nxdomain",
            AnswerClass::Referral => "referral",
            AnswerClass::Any => "any",
            AnswerClass::Rrsig => "rrsig",
            AnswerClass::Dnskey => "dnskey",
            AnswerClass::Error => "error",
        }
    }
}

/// An answer's class and the name (lower-cased wire form) it is counted under.
pub struct Classified {
    /// Its class.
    pub class: AnswerClass,
    /// The name.
    pub name: NameKey,
}

/// The root name, in wire form.
const ROOT: &[u8] = &[0];

/// The class and name of the answer `msg` (with `rcode`, its whole rcode,
/// extended bits included), its question's name looked up in `catalog`;
/// `None` for the answer to a NOTIFY (from a primary: never limited);
/// the answer to any other opcode than QUERY is an error of the root.
pub fn classify(msg: &[u8], rcode: ResponseCode, catalog: &Catalog) -> Option<Classified> {
    let h = WireHeader::read(msg)?;
    // NOTIFY (opcode 4): a primary's, never limited (its answer is no
    // larger than it). Any other opcode is limited as an error.
    let opcode = (h.flags >> 11) & 0x0f;
    if opcode == 4 {
        return None;
    }
    let root = || NameKey::read(ROOT);
    let asked = (h.qdcount == 1 && opcode == 0)
        .then(|| {
            let qname = NameKey::read(msg.get(HEADER_LEN..)?)?;
            let at = HEADER_LEN + qname.wire_len();
            let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
            Some((qname, qtype))
        })
        .flatten();
    let Some((qname, qtype)) = asked else {
        return Some(Classified {
            class: AnswerClass::Error,
            name: root()?,
        });
    };
    let zone = catalog.find(&qname, qtype);
    let zone_name = || zone.map_or_else(root, |z| NameKey::read(z.origin_wire()));
    let truncated = h.flags & 0x0200 != 0;
    let authoritative = h.flags & 0x0400 != 0;
    let (class, name) = match rcode {
        ResponseCode::NXDomain => (AnswerClass::Nxdomain, zone_name()?),
        ResponseCode::NoError if h.ancount == 0 && truncated => (AnswerClass::Positive, qname),
        ResponseCode::NoError if h.ancount == 0 && !authoritative => {
            (AnswerClass::Referral, zone_name()?)
        }
        ResponseCode::NoError if h.ancount == 0 => (AnswerClass::Nodata, zone_name()?),
        ResponseCode::NoError => match RecordType::from(qtype) {
            RecordType::ANY => (AnswerClass::Any, qname),
            RecordType::RRSIG => (AnswerClass::Rrsig, qname),
            t => match zone.and_then(|z| write::wildcard_source(z, &qname)) {
                Some(wild) => (AnswerClass::Wildcard, wild),
                None if t == RecordType::DNSKEY => (AnswerClass::Dnskey, qname),
                None => (AnswerClass::Positive, qname),
            },
        },
        _ => (AnswerClass::Error, zone_name()?),
    };
    Some(Classified { class, name })
}

/// `msg`, an answer, cut to what a client that slips gets (as NSD and Knot
/// cut it): the header with TC=1 and its rcode, the question, and of the
/// records only the OPT (EDNS, its options as they were, and the upper bits
/// of an extended rcode such as BADCOOKIE); an answer whose question cannot
/// be read keeps the header (and the OPT) alone.
pub fn slipped(mut msg: Vec<u8>) -> Vec<u8> {
    let Some(h) = WireHeader::read(&msg) else {
        return msg;
    };
    let opt = crate::dns::walk_message(&msg)
        .and_then(|w| w.opt)
        .and_then(|o| msg.get(o.start..o.rdata_end))
        .map(<[u8]>::to_vec);
    let question = (h.qdcount == 1)
        .then(|| crate::ts::wire::uncompressed_len(msg.get(HEADER_LEN..)?))
        .flatten()
        .map(|len| len + 4)
        .filter(|q| HEADER_LEN + q <= msg.len());
    let (end, qdcount) = match question {
        Some(q) => (HEADER_LEN + q, 1u16),
        None => (HEADER_LEN, 0),
    };
    msg.truncate(end);
    let flags = h.flags | 0x0200;
    msg[2..4].copy_from_slice(&flags.to_be_bytes());
    let arcount = u16::from(opt.is_some());
    for (i, count) in [qdcount, 0, 0, arcount].into_iter().enumerate() {
        msg[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
    }
    msg.extend_from_slice(opt.as_deref().unwrap_or_default());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response header (QR=1, `flags` or'd in) with `ancount` answers to
    /// the question `name`/`qtype`.
    fn answer(name: &str, qtype: RecordType, flags: u16, ancount: u16) -> Vec<u8> {
        let mut m = vec![0, 1];
        m.extend_from_slice(&(0x8000 | flags).to_be_bytes());
        for c in [1, ancount, 0, 0] {
            m.extend_from_slice(&u16::to_be_bytes(c));
        }
        m.extend_from_slice(&crate::dns::fixtures::wire_name(name));
        m.extend_from_slice(&u16::from(qtype).to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    fn catalog() -> Catalog {
        use crate::ts::source::SourceRecord;
        use hickory_proto::rr::rdata::{A, NS, SOA};
        use hickory_proto::rr::{Name, RData};
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let rec = |n: &str, data: RData| SourceRecord {
            name: name(n),
            ttl: 300,
            data,
            line: 1,
        };
        let a = |ip: [u8; 4]| RData::A(A(ip.into()));
        let records = vec![
            rec("www.example.", a([192, 0, 2, 1])),
            rec("*.wild.example.", a([192, 0, 2, 2])),
            rec("child.example.", RData::NS(NS(name("ns.child.example.")))),
        ];
        let soa = SOA::new(name("ns."), name("h."), 1, 3600, 600, 86400, 300);
        let files = [std::path::PathBuf::from("t")];
        let zone =
            crate::ts::zone::build::zone(name("example."), vec![(0, records)], &files, |_, _| {
                (300, soa)
            })
            .unwrap();
        Catalog::new(vec![zone])
    }

    fn class_of(msg: &[u8], rcode: ResponseCode) -> (AnswerClass, Vec<u8>) {
        let c = classify(msg, rcode, &catalog()).unwrap();
        (c.class, c.name.bytes().to_vec())
    }

    fn wire(name: &str) -> Vec<u8> {
        crate::dns::fixtures::wire_name(name)
    }

    #[test]
    fn answers_are_counted_under_their_name_or_their_zone() {
        use AnswerClass::*;
        use RecordType::{A, ANY, DNSKEY, RRSIG};
        let ok = ResponseCode::NoError;
        let aa = 0x0400;
        let cases = [
            (
                answer("WWW.example.", A, aa, 1),
                ok,
                Positive,
                "www.example.",
            ),
            (
                answer("a.b.wild.example.", A, aa, 1),
                ok,
                Wildcard,
                "*.wild.example.",
            ),
            (answer("www.example.", ANY, aa, 1), ok, Any, "www.example."),
            (
                answer("www.example.", RRSIG, aa, 1),
                ok,
                Rrsig,
                "www.example.",
            ),
            (answer("example.", DNSKEY, aa, 1), ok, Dnskey, "example."),
            (
                answer("www.example.", RecordType::MX, aa, 0),
                ok,
                Nodata,
                "example.",
            ),
            (
                answer("x.child.example.", A, 0, 0),
                ok,
                Referral,
                "example.",
            ),
            (
                answer("www.example.", A, aa | 0x0200, 0),
                ok,
                Positive,
                "www.example.",
            ),
            (
                answer("nope.example.", A, aa | 3, 0),
                ResponseCode::NXDomain,
                Nxdomain,
                "example.",
            ),
            (
                answer("www.example.", A, 2, 0),
                ResponseCode::ServFail,
                Error,
                "example.",
            ),
            (
                answer("other.test.", A, 5, 0),
                ResponseCode::Refused,
                Error,
                ".",
            ),
            (
                answer("www.example.", A, aa, 0),
                ResponseCode::BADVERS,
                Error,
                "example.",
            ),
        ];
        for (msg, rcode, class, name) in cases {
            assert_eq!(
                class_of(&msg, rcode),
                (class, wire(name)),
                "{name} {class:?}"
            );
        }
        // No question (a FORMERR to a message without one): an error of the root.
        let mut formerr = answer("www.example.", A, 1, 0);
        formerr[5] = 0;
        formerr.truncate(HEADER_LEN);
        let r = ResponseCode::FormErr;
        assert_eq!(class_of(&formerr, r), (AnswerClass::Error, wire(".")));
        // A NOTIFY's answer: not limited at all; another opcode's: an error.
        let notify = answer("example.", RecordType::SOA, 4 << 11 | aa, 0);
        assert!(classify(&notify, ok, &catalog()).is_none());
        let update = answer("example.", RecordType::SOA, 5 << 11 | 4, 0);
        let r = ResponseCode::NotImp;
        assert_eq!(class_of(&update, r), (AnswerClass::Error, wire(".")));
        assert!(classify(&[0; 5], ok, &catalog()).is_none(), "a runt");
    }

    #[test]
    fn a_slipped_answer_is_the_header_and_question_with_tc() {
        let mut full = answer("www.example.", RecordType::A, 0x0400, 1);
        let question_end = full.len();
        full.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        let s = slipped(full.clone());
        assert_eq!(s.len(), question_end);
        assert_eq!(s[HEADER_LEN..], full[HEADER_LEN..question_end]);
        let h = WireHeader::read(&s).unwrap();
        assert_eq!(h.flags, 0x8000 | 0x0400 | 0x0200, "TC set, the rest kept");
        assert_eq!((h.qdcount, h.ancount, h.nscount), (1, 0, 0));
        assert_eq!(s[10..12], [0, 0], "no additional records");
        // A header alone stays a header, TC set.
        let s = slipped(full[..HEADER_LEN].to_vec());
        assert_eq!(s.len(), HEADER_LEN);
        assert_eq!(WireHeader::read(&s).unwrap().qdcount, 0);
        assert_eq!(slipped(vec![1, 2, 3]), vec![1, 2, 3], "a runt as it was");
    }

    #[test]
    fn a_slipped_answer_keeps_its_opt_and_an_extended_rcode() {
        // BADCOOKIE (23): 7 in the header, 1 in the OPT's TTL, a COOKIE.
        let mut full = answer("www.example.", RecordType::A, 0x0400 | 7, 1);
        let question_end = full.len();
        full.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        let opt = [0, 0, 41, 4, 0xd0, 1, 0, 0, 0, 0, 8, 0, 10, 0, 4, 1, 2, 3, 4];
        full.extend_from_slice(&opt);
        full[11] = 1;
        let s = slipped(full);
        assert_eq!(s.len(), question_end + opt.len());
        assert_eq!(s[question_end..], opt, "the OPT as it was");
        let h = WireHeader::read(&s).unwrap();
        assert_eq!(h.flags & 0x020f, 0x0207, "TC, the rcode's low bits");
        assert_eq!((h.qdcount, h.ancount, h.nscount), (1, 0, 0));
        assert_eq!(s[10..12], [0, 1], "the OPT alone");
    }
}

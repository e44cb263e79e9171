//! DNSSEC in answers (RFC 4035 §3.1): the RRSIGs written beside each RRset
//! for a DO=1 query, and the NSEC records that prove a negative answer, a
//! wildcard expansion or a delegation without a DS. What a signed zone
//! holds is served as it was signed: nothing is signed here.
//!
//! The proofs, per RFC 4035 §3.1.3: NODATA gets the NSEC of the name
//! itself (at an empty non-terminal, the NSEC that covers it); NXDOMAIN the
//! NSEC covering the name and the one covering the wildcard at its closest
//! encloser; an answer from a wildcard the NSEC covering the name asked;
//! a wildcard NODATA both of those; a referral the DS set and its RRSIGs,
//! or the NSEC at the cut showing there is no DS (§3.1.4). Each proof comes
//! with its RRSIGs, and the SOA of a negative answer with its own, at the
//! SOA's lowered TTL. A record needed twice is written once.
use super::canon;
use super::nsec3::Hashed;
use super::rtype::{DS, NSEC, NSEC3};
use super::store::{NameEntry, push_set};
use super::{Written, Zone};
use crate::ts::wire::{NameKey, push_name_ref};

/// Names of one CNAME chain answered from a wildcard, at the most: every
/// name of the longest chain the writer follows.
const WILDCARDS_MAX: usize = super::MAX_CNAME_CHAIN + 1;
/// Proof records of one answer told apart, at the most (each wildcard of a
/// chain may need its own).
const PROOFS_MAX: usize = 2 * WILDCARDS_MAX;

/// Why a name has no answer of the type asked.
#[derive(Clone, Copy)]
pub(super) enum Denial<'z> {
    /// The name does not exist (NXDOMAIN); how many of its labels lie
    /// below its closest encloser, when the lookup found out.
    Missing(Option<usize>),
    /// The name is an empty non-terminal (NODATA).
    Empty,
    /// The name exists without the type (NODATA).
    NoData(NameEntry<'z>),
    /// The name matched this wildcard, which lacks the type (NODATA); how
    /// many of its labels lie below the wildcard's parent, its closest encloser.
    WildNoData(NameEntry<'z>, usize),
}

/// Where in the message the names answered from a wildcard are written.
#[derive(Default)]
pub(super) struct Wildcards {
    /// Each name's offset in the message, and how many of its labels lie
    /// below its closest encloser.
    at: [(usize, usize); WILDCARDS_MAX],
    n: usize,
}

impl Wildcards {
    /// No name noted.
    pub(super) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Notes the name at `at` as answered from a wildcard `below` labels
    /// under the name's closest encloser.
    pub(super) fn note(&mut self, at: usize, below: usize) {
        if let Some(slot) = self.at.get_mut(self.n) {
            *slot = (at, below);
            self.n += 1;
        }
    }
}

/// The proofs already written, by owner (each name's arena bytes).
struct Seen {
    owners: [usize; PROOFS_MAX],
    n: usize,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            owners: [0; PROOFS_MAX],
            n: 0,
        }
    }
}

impl Seen {
    /// True the first time `e` is offered.
    fn first(&mut self, e: &NameEntry<'_>) -> bool {
        let id = e.owner.as_ptr() as usize;
        if self.owners[..self.n].contains(&id) {
            return false;
        }
        if let Some(slot) = self.owners.get_mut(self.n) {
            *slot = id;
            self.n += 1;
        }
        true
    }
}

/// Writes the RRSIGs of `e` covering `covered`, owned by the name at
/// `owner_at`; how many.
pub(super) fn push_sigs(msg: &mut Vec<u8>, owner_at: usize, e: NameEntry<'_>, covered: u16) -> u16 {
    e.sigs(covered)
        .map_or(0, |set| push_set(msg, owner_at, set, None))
}

/// [`push_sigs`] for the name `owner` (lower-cased), looked up.
pub(super) fn push_sigs_of(
    zone: &Zone,
    msg: &mut Vec<u8>,
    owner_at: usize,
    owner: &[u8],
    rtype: hickory_proto::rr::RecordType,
) -> u16 {
    zone.store
        .get(owner)
        .map_or(0, |e| push_sigs(msg, owner_at, e, u16::from(rtype)))
}

/// The proof of a negative answer for `key` (the question's name or
/// the CNAME target it ended at), after its SOA: the SOA's RRSIGs and
/// the NSEC or NSEC3 records of `denial`.
pub(super) fn deny(
    zone: &Zone,
    msg: &mut Vec<u8>,
    qname: &NameKey,
    key: &NameKey,
    denial: Denial<'_>,
    w: &mut Written,
) {
    w.authority += push_negative_sigs(zone, msg, qname);
    let mut p = Prover::new(zone, msg, qname, w);
    if !zone.nsec.is_empty() {
        match denial {
            Denial::NoData(e) => p.push(e, NSEC),
            Denial::Empty => p.cover(key.bytes()),
            Denial::Missing(below) => {
                p.cover(key.bytes());
                let below = below.unwrap_or_else(|| zone.closest_encloser(key));
                let (_, encloser) = key.suffix(below);
                if let Some(wildcard) = NameKey::wildcard_of(encloser) {
                    p.cover(wildcard.bytes());
                }
            }
            Denial::WildNoData(e, _) => {
                p.cover(key.bytes());
                p.push(e, NSEC);
            }
        }
    } else if zone.nsec3.is_some() {
        match denial {
            // RFC 5155 §7.2.3, §7.2.4: the name's own NSEC3, or (an
            // opt-out span's DS) the closest provable encloser proof.
            Denial::NoData(_) | Denial::Empty => p.matching_or_encloser(key),
            // §7.2.2 and §7.2.5: the closest encloser proof, and the
            // NSEC3 covering the wildcard (NXDOMAIN) or matching it
            // (wildcard NODATA).
            Denial::Missing(_) | Denial::WildNoData(..) => {
                let below = match denial {
                    Denial::Missing(Some(below)) | Denial::WildNoData(_, below) => below,
                    _ => zone.closest_encloser(key),
                };
                let skip = p.encloser_proof(key, below);
                p.wildcard_cover(key.suffix(skip).1);
            }
        }
    }
}

/// The proofs that the names noted in `wild` do not exist themselves
/// (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6): the NSEC covering each, or the
/// NSEC3 covering its next closer name.
pub(super) fn wildcards(
    zone: &Zone,
    msg: &mut Vec<u8>,
    qname: &NameKey,
    wild: &mut Wildcards,
    w: &mut Written,
) {
    let notes = std::mem::take(wild);
    let mut p = Prover::new(zone, msg, qname, w);
    for &(at, below) in &notes.at[..notes.n] {
        let Some(key) = p.msg.get(at..).and_then(NameKey::read) else {
            continue;
        };
        if !zone.nsec.is_empty() {
            p.cover(key.bytes());
        } else {
            p.hashed(key.suffix(below - 1).1);
        }
    }
}

/// At a delegation to `cut` (its NS set just written, owned by the name
/// at `cut_at`): the DS set and its RRSIGs, or the proof there is none
/// (RFC 4035 §3.1.4: the cut's NSEC; RFC 5155 §7.2.7: its NSEC3, or in
/// an opt-out span the closest provable encloser proof).
pub(super) fn delegation(
    zone: &Zone,
    msg: &mut Vec<u8>,
    qname: &NameKey,
    (cut, cut_key): (NameEntry<'_>, &NameKey),
    cut_at: usize,
    w: &mut Written,
) {
    let mut p = Prover::new(zone, msg, qname, w);
    if let Some(ds) = cut.set(DS) {
        p.w.authority += push_set(p.msg, cut_at, ds, None);
        p.w.authority += push_sigs(p.msg, cut_at, cut, DS);
    } else if cut.set(NSEC).is_some() {
        p.push(cut, NSEC);
    } else if zone.nsec3.is_some() {
        p.matching_or_encloser(cut_key);
    }
}

/// The SOA's RRSIGs at its negative TTL, owned by the origin.
fn push_negative_sigs(zone: &Zone, msg: &mut Vec<u8>, qname: &NameKey) -> u16 {
    let mut n = 0;
    let b = &zone.negative_soa_sigs;
    let mut pos = 0;
    while let Some(r) = b.get(pos..pos + 10 + usize::from(super::store::be16(b, pos + 8))) {
        zone.push_origin(msg, qname);
        msg.extend_from_slice(r);
        pos += r.len();
        n += 1;
    }
    n
}

/// Writes proofs into the authority section of one answer, each record
/// (with its RRSIGs) once.
struct Prover<'a, 'z> {
    zone: &'z Zone,
    msg: &'a mut Vec<u8>,
    qname: &'a NameKey,
    w: &'a mut Written,
    done: Seen,
}

impl<'a, 'z> Prover<'a, 'z> {
    fn new(zone: &'z Zone, msg: &'a mut Vec<u8>, qname: &'a NameKey, w: &'a mut Written) -> Self {
        Prover {
            zone,
            msg,
            qname,
            w,
            done: Seen::default(),
        }
    }

    /// The NSEC that matches or covers `name` (lower-cased wire form).
    fn cover(&mut self, name: &[u8]) {
        if let Some(e) = canon::at_or_before(&self.zone.store, &self.zone.nsec, name) {
            self.push(e, NSEC);
        }
    }

    /// The NSEC3 that matches or covers the hash of `name`; whether it matched.
    fn hashed(&mut self, name: &[u8]) -> bool {
        self.nsec3(name, true)
    }

    /// The NSEC3 matching `name`, when there is one (nothing written otherwise).
    fn matching(&mut self, name: &[u8]) -> bool {
        match self.linked(name) {
            Some((own, _)) => {
                self.push(own, NSEC3);
                true
            }
            None => self.nsec3(name, false),
        }
    }

    /// The NSEC3 matching or covering the wildcard child of `encloser`.
    fn wildcard_cover(&mut self, encloser: &[u8]) {
        match self.linked(encloser) {
            Some((_, wildcard)) => self.push(wildcard, NSEC3),
            None => {
                if let Some(wildcard) = NameKey::wildcard_of(encloser) {
                    self.hashed(wildcard.bytes());
                }
            }
        }
    }

    /// `name`'s NSEC3 and its wildcard child's, as linked at load.
    fn linked(&self, name: &[u8]) -> Option<(NameEntry<'z>, NameEntry<'z>)> {
        let chain = self.zone.nsec3.as_deref()?;
        chain.linked(&self.zone.store, name)
    }

    /// The NSEC3 matching the hash of `name`, or (`covering`) the one
    /// covering it; whether it matched.
    fn nsec3(&mut self, name: &[u8], covering: bool) -> bool {
        let Some(chain) = &self.zone.nsec3 else {
            return false;
        };
        let (e, matched) = match chain.find(&self.zone.store, name) {
            Some(Hashed::Matches(e)) => (e, true),
            Some(Hashed::Covered(e)) if covering => (e, false),
            _ => return false,
        };
        self.push(e, NSEC3);
        matched
    }

    /// The NSEC3 matching `key`, or else the closest provable encloser proof.
    fn matching_or_encloser(&mut self, key: &NameKey) {
        if !self.matching(key.bytes()) {
            self.encloser_proof(key, 1);
        }
    }

    /// The closest (provable) encloser proof of `key` (RFC 5155 §7.2.1):
    /// the NSEC3 matching the nearest ancestor at least `skip` labels up
    /// that has one, and the NSEC3 covering the name one label below it
    /// (the next closer name). How many labels up that encloser is.
    fn encloser_proof(&mut self, key: &NameKey, skip: usize) -> usize {
        let labels = key.labels();
        let found = (skip.max(1)..=labels).find(|&s| self.matching(key.suffix(s).1));
        let at = found.unwrap_or(labels);
        self.hashed(key.suffix(at - 1).1);
        at
    }

    /// The `rtype` (NSEC or NSEC3) set of `e` and its RRSIGs, unless
    /// written already.
    fn push(&mut self, e: NameEntry<'_>, rtype: u16) {
        let Some(set) = e.set(rtype) else {
            return;
        };
        if !self.done.first(&e) {
            return;
        }
        let owner_at = self.push_owner(e.owner);
        let mut first = true;
        for r in set.records() {
            if !first {
                push_name_ref(self.msg, owner_at);
            }
            first = false;
            self.msg.extend_from_slice(r);
            self.w.authority += 1;
        }
        self.w.authority += push_sigs(self.msg, owner_at, e, rtype);
    }

    /// Writes `owner` (a name of this zone, as stored) with its origin
    /// pointing to where the origin ends the question's name; where it starts.
    fn push_owner(&mut self, owner: &[u8]) -> usize {
        let at = self.msg.len();
        let origin = &self.zone.origin_key;
        let prefix = owner.len().saturating_sub(origin.len());
        let ends_in_origin = owner
            .get(prefix..)
            .is_some_and(|o| o.eq_ignore_ascii_case(origin));
        match self.zone.origin_in_question(self.qname) {
            Some(origin_at) if ends_in_origin => {
                self.msg.extend_from_slice(&owner[..prefix]);
                push_name_ref(self.msg, origin_at);
            }
            _ => self.msg.extend_from_slice(owner),
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{Record, RecordType};

    use super::super::Zone;
    use super::super::fixtures::ask_with;
    use crate::dns::Transport;
    use crate::ts::zonefile::parse_zone_file;

    /// A zone signed with NSEC (signatures of three zero bytes: their
    /// placement is under test, not their value). Canonical order:
    /// example, a, ns1, sub (signed delegation), unsigned (no DS), *.w,
    /// x.y (y an empty non-terminal); the chain wraps back to the apex.
    const SIGNED: &str = "$ORIGIN example.
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
@ DNSKEY 257 3 13 AAAA
@ RRSIG SOA 13 1 3600 20301231000000 20200101000000 1 example. AAAA
@ RRSIG NS 13 1 3600 20301231000000 20200101000000 1 example. AAAA
@ RRSIG DNSKEY 13 1 3600 20301231000000 20200101000000 1 example. AAAA
@ 300 NSEC a.example. NS SOA RRSIG NSEC DNSKEY
@ RRSIG NSEC 13 1 300 20301231000000 20200101000000 1 example. AAAA
a A 192.0.2.1
a RRSIG A 13 2 3600 20301231000000 20200101000000 1 example. AAAA
a 300 NSEC ns1.example. A RRSIG NSEC
a RRSIG NSEC 13 2 300 20301231000000 20200101000000 1 example. AAAA
ns1 A 192.0.2.53
ns1 RRSIG A 13 2 3600 20301231000000 20200101000000 1 example. AAAA
ns1 300 NSEC sub.example. A RRSIG NSEC
ns1 RRSIG NSEC 13 2 300 20301231000000 20200101000000 1 example. AAAA
sub NS ns.sub
sub DS 12345 13 2 AAAA
sub RRSIG DS 13 2 3600 20301231000000 20200101000000 1 example. AAAA
sub 300 NSEC unsigned.example. NS DS RRSIG NSEC
sub RRSIG NSEC 13 2 300 20301231000000 20200101000000 1 example. AAAA
ns.sub A 192.0.2.54
unsigned NS ns.sub
unsigned 300 NSEC *.w.example. NS RRSIG NSEC
unsigned RRSIG NSEC 13 2 300 20301231000000 20200101000000 1 example. AAAA
*.w A 192.0.2.9
*.w RRSIG A 13 2 3600 20301231000000 20200101000000 1 example. AAAA
*.w 300 NSEC x.y.example. A RRSIG NSEC
*.w RRSIG NSEC 13 2 300 20301231000000 20200101000000 1 example. AAAA
x.y A 192.0.2.10
x.y RRSIG A 13 3 3600 20301231000000 20200101000000 1 example. AAAA
x.y 300 NSEC example. A RRSIG NSEC
x.y RRSIG NSEC 13 3 300 20301231000000 20200101000000 1 example. AAAA
";

    fn signed() -> Zone {
        let file = Path::new("signed.zone");
        let (origin, records) = parse_zone_file(SIGNED, file, None).unwrap();
        super::super::build::zone(
            origin,
            vec![(0, records)],
            &[PathBuf::from(file)],
            |_, _| unreachable!("the file has an SOA"),
        )
        .unwrap()
    }

    /// The answer to a DO=1 (or DO=0) query over TCP.
    fn ask(z: &Zone, qname: &str, qtype: RecordType, dnssec_ok: bool) -> Message {
        ask_with(
            z,
            qname,
            qtype,
            (u16::MAX, Transport::Tcp),
            (0x0100, dnssec_ok),
        )
    }

    /// Each record of a section as `owner type` (RRSIGs as `owner RRSIG(covered)`) and its TTL.
    fn shape(records: &[Record]) -> Vec<(String, String, u32)> {
        records
            .iter()
            .map(|r| {
                let t = match r.record_type() {
                    RecordType::RRSIG => {
                        // The wire rdata, whether hickory decoded the RRSIG
                        // (its `dnssec` features, on in test builds) or not.
                        let covered =
                            hickory_proto::serialize::binary::BinEncodable::to_bytes(&r.data)
                                .ok()
                                .and_then(|b| b.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])))
                                .unwrap_or(0);
                        format!("RRSIG({})", RecordType::from(covered))
                    }
                    t => t.to_string(),
                };
                (r.name.to_ascii().to_lowercase(), t, r.ttl)
            })
            .collect()
    }

    /// A section written `owner TYPE ttl, ...`.
    fn section(records: &[Record]) -> String {
        let rows: Vec<String> = shape(records)
            .into_iter()
            .map(|(n, t, ttl)| format!("{n} {t} {ttl}"))
            .collect();
        rows.join(", ")
    }

    /// One DO=1 question and its answer: rcode, AA, and the answer,
    /// authority and additional sections as [`section`] writes them.
    struct Case {
        qname: &'static str,
        qtype: RecordType,
        rcode: ResponseCode,
        aa: bool,
        sections: [&'static str; 3],
    }

    const fn case(
        qname: &'static str,
        qtype: RecordType,
        (rcode, aa): (ResponseCode, bool),
        sections: [&'static str; 3],
    ) -> Case {
        Case {
            qname,
            qtype,
            rcode,
            aa,
            sections,
        }
    }

    const OK: (ResponseCode, bool) = (ResponseCode::NoError, true);
    const NX: (ResponseCode, bool) = (ResponseCode::NXDomain, true);
    const REFERRAL: (ResponseCode, bool) = (ResponseCode::NoError, false);
    /// A negative answer's authority: the SOA and its RRSIG at the
    /// negative TTL, then the proof.
    macro_rules! negative {
        ($proof:literal) => {
            concat!("example. SOA 300, example. RRSIG(SOA) 300, ", $proof)
        };
    }

    /// RFC 4035 §3.1's cases against [`SIGNED`], DO=1.
    const CASES: &[Case] = &[
        // §3.1.1: each RRset with its RRSIGs, the 0x20 case of the question kept aside.
        case(
            "A.example.",
            RecordType::A,
            OK,
            ["a.example. A 3600, a.example. RRSIG(A) 3600", "", ""],
        ),
        case(
            "example.",
            RecordType::SOA,
            OK,
            ["example. SOA 3600, example. RRSIG(SOA) 3600", "", ""],
        ),
        // §3.1.3.1: NODATA, the name's own NSEC; the SOA's RRSIG at the negative TTL.
        case(
            "a.example.",
            RecordType::AAAA,
            OK,
            [
                "",
                negative!("a.example. NSEC 300, a.example. RRSIG(NSEC) 300"),
                "",
            ],
        ),
        // §3.1.3.2: NXDOMAIN, the NSEC covering the name and the one covering *.example.
        case(
            "b.example.",
            RecordType::A,
            NX,
            [
                "",
                negative!(
                    "a.example. NSEC 300, a.example. RRSIG(NSEC) 300, example. NSEC 300, example. RRSIG(NSEC) 300"
                ),
                "",
            ],
        ),
        // Below an existing name: one NSEC covers both, written once.
        case(
            "q.ns1.example.",
            RecordType::A,
            NX,
            [
                "",
                negative!("ns1.example. NSEC 300, ns1.example. RRSIG(NSEC) 300"),
                "",
            ],
        ),
        // An empty non-terminal: the NSEC covering it.
        case(
            "y.example.",
            RecordType::A,
            OK,
            [
                "",
                negative!("*.w.example. NSEC 300, *.w.example. RRSIG(NSEC) 300"),
                "",
            ],
        ),
        // §3.1.3.3: a wildcard answer, the NSEC proving the name absent.
        case(
            "z.w.example.",
            RecordType::A,
            OK,
            [
                "z.w.example. A 3600, z.w.example. RRSIG(A) 3600",
                "*.w.example. NSEC 300, *.w.example. RRSIG(NSEC) 300",
                "",
            ],
        ),
        // §3.1.3.4: wildcard NODATA, one NSEC both covering the name and matching the wildcard.
        case(
            "z.w.example.",
            RecordType::AAAA,
            OK,
            [
                "",
                negative!("*.w.example. NSEC 300, *.w.example. RRSIG(NSEC) 300"),
                "",
            ],
        ),
        // §3.1.4: referrals with the DS, or the NSEC at the cut proving there is none.
        case(
            "www.sub.example.",
            RecordType::A,
            REFERRAL,
            [
                "",
                "sub.example. NS 3600, sub.example. DS 3600, sub.example. RRSIG(DS) 3600",
                "ns.sub.example. A 3600",
            ],
        ),
        case(
            "www.unsigned.example.",
            RecordType::A,
            REFERRAL,
            [
                "",
                "unsigned.example. NS 3600, unsigned.example. NSEC 300, unsigned.example. RRSIG(NSEC) 300",
                "ns.sub.example. A 3600",
            ],
        ),
        // §3.1.4.1: a DS question at a cut is the parent's.
        case(
            "sub.example.",
            RecordType::DS,
            OK,
            ["sub.example. DS 3600, sub.example. RRSIG(DS) 3600", "", ""],
        ),
        case(
            "unsigned.example.",
            RecordType::DS,
            OK,
            [
                "",
                negative!("unsigned.example. NSEC 300, unsigned.example. RRSIG(NSEC) 300"),
                "",
            ],
        ),
    ];

    #[test]
    fn do1_answers_carry_rrsigs_and_proofs() {
        let z = signed();
        for c in CASES {
            let m = ask(&z, c.qname, c.qtype, true);
            let what = format!("{} {}", c.qname, c.qtype);
            assert_eq!(m.metadata.response_code, c.rcode, "{what}");
            assert_eq!(m.metadata.authoritative, c.aa, "{what}");
            let got = [&m.answers, &m.authorities, &m.additionals].map(|s| section(s));
            assert_eq!(got, c.sections.map(String::from), "{what}");
        }
    }

    #[test]
    fn do0_answers_are_unchanged() {
        let z = signed();
        for (qname, qtype, authority) in [
            ("a.example.", RecordType::AAAA, "example. SOA 300"),
            ("b.example.", RecordType::A, "example. SOA 300"),
            ("www.sub.example.", RecordType::A, "sub.example. NS 3600"),
        ] {
            let m = ask(&z, qname, qtype, false);
            assert_eq!(section(&m.authorities), authority, "{qname} {qtype}");
        }
        let m = ask(&z, "a.example.", RecordType::A, false);
        assert_eq!(section(&m.answers), "a.example. A 3600");
    }

    #[test]
    fn ad_and_cd_are_cleared_and_rd_kept() {
        let z = signed();
        let m = ask_with(
            &z,
            "a.example.",
            RecordType::A,
            (u16::MAX, Transport::Tcp),
            (0x0130, true),
        );
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.checking_disabled && !m.metadata.authentic_data);
    }

    #[test]
    fn the_owner_of_an_nsec3_record_is_no_name_of_the_zone() {
        let text = format!(
            "{SIGNED}0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 0 0 - 0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM A\n"
        );
        let file = Path::new("n3.zone");
        let (origin, records) = parse_zone_file(&text, file, None).unwrap();
        let z = super::super::build::zone(
            origin,
            vec![(0, records)],
            &[PathBuf::from(file)],
            |_, _| unreachable!(),
        )
        .unwrap();
        let m = ask(
            &z,
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example.",
            RecordType::NSEC3,
            false,
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
}

//! One compiled zone: [`Zone`], its accessors, what the answer writer
//! returns ([`Written`]), and what the writer and the prover both ask of a
//! zone (where the origin ends a question's name, a missing name's closest
//! encloser, the CNAME bound). Its other `impl Zone` blocks live with the
//! work they do (`build.rs`, `write.rs`, `proof.rs`, `transfer.rs`, `sign/`).
#![allow(clippy::module_inception)]
use std::sync::{Arc, OnceLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ring::digest::{Context, SHA256};

use super::encode::{key_of, rdata_into as encode_rdata};
use super::nsec3;
use super::rtype;
use super::signature::Signature;
use super::soa::SoaWire;
use super::store::Store;
use crate::dns::{HEADER_LEN, Rr};
use crate::ts::error::BuildError;
use crate::ts::wire::{NameKey, push_name_ref};

/// Most CNAMEs (written or synthesized from DNAMEs) followed in one answer,
/// across the zones of a catalog too: a chain of this many still reaches its target's data (NSD follows
/// long chains; loops end sooner, at a name already written).
pub(super) const MAX_CNAME_CHAIN: usize = 16;

/// One authoritative zone.
///
/// What every answer reads of it comes first, in one cache line of its
/// own ([`HOT_BYTES`], the struct aligned to it): at 100,000 zones each
/// query's zone is a cache miss, and the fields it read lay across three
/// or four lines of the 296-byte struct.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Zone {
    /// The origin, lower-cased wire form (in the zone itself up to
    /// [`ORIGIN_INLINE`] bytes: a query's zone is found by comparing it,
    /// at 100,000 zones one cache miss less than a key of its own).
    pub(super) origin_key: OriginKey,
    pub(super) store: Store,
    pub(super) soa_ttl: u32,
    /// Whether any NS set sits below the apex (enables the delegation walk).
    pub(super) has_delegations: bool,
    pub(super) has_wildcards: bool,
    /// Whether any name owns a DNAME (enables the redirection walk).
    pub(super) has_dnames: bool,
    /// A secondary zone past its SOA EXPIRE without contact with its
    /// primary: answered SERVFAIL, not served.
    pub(super) expired: bool,
    // What a positive answer does not read.
    /// For a zone the TS signed: its data's digest, keys and validity.
    pub(super) signed: Option<Arc<Signature>>,
    pub(super) origin: Name,
    /// The SOA record (minus owner) for SOA answers and for negative answers
    /// (TTL min(SOA TTL, MINIMUM), RFC 2308 §3); the SOA's serial and its
    /// RDATA as read.
    pub(super) soa_record: SoaWire,
    /// The RRSIGs of the SOA (records minus owner) at the negative answer's TTL.
    pub(super) negative_soa_sigs: Box<[u8]>,
    /// The arena offsets of the names owning an NSEC, in canonical order.
    pub(super) nsec: Arc<[u32]>,
    /// The NSEC3 chain, for a zone signed with hashed denial.
    pub(super) nsec3: Option<Arc<nsec3::Nsec3Chain>>,
    /// The SOA decoded, made when first asked ([`Zone::soa_rr`]: transfers,
    /// the notifier): a load of 100,000 zones decodes none. Boxed: an
    /// `RData` is a few hundred bytes, which every zone (moved from the
    /// builder's thread into the catalog) carried.
    pub(super) soa: OnceLock<Box<RData>>,
    /// True when no file gave an SOA (PROJ tables): the serial is ours to manage.
    pub(super) soa_synthesized: bool,
    /// Which file (index into the TS's zone list) and line gave the SOA.
    pub(super) soa_source: Option<(usize, usize)>,
    /// The requests it answered (`queries.rs`), shared by its versions.
    pub(super) queries: Arc<super::queries::ZoneQueries>,
}

/// The bytes of [`Zone`] every answer reads: its first cache line.
pub(super) const HOT_BYTES: usize = 64;
const _: () = assert!(std::mem::align_of::<Zone>() == HOT_BYTES);

/// The bytes of an origin kept in its zone; longer ones are allocated.
pub(super) const ORIGIN_INLINE: usize = 32;

/// A zone's origin, lower-cased wire form ([`Zone::origin_key`]).
pub(super) type OriginKey = smallvec::SmallVec<[u8; ORIGIN_INLINE]>;

/// What [`write::answer`](super::write::answer) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// AA: false only for referrals.
    pub authoritative: bool,
    /// Records in the answer section.
    pub answers: u16,
    /// Records in the authority section.
    pub authority: u16,
    /// Records in the additional section.
    pub additional: u16,
}

impl Written {
    pub(super) fn new() -> Self {
        Written {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: 0,
            authority: 0,
            additional: 0,
        }
    }
}

impl Zone {
    /// The zone's apex name.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The origin in wire form, lower-cased.
    pub fn origin_wire(&self) -> &[u8] {
        &self.origin_key
    }

    /// True when the SOA was synthesized rather than read from a file.
    pub fn soa_synthesized(&self) -> bool {
        self.soa_synthesized
    }

    /// The file (index into the zone list) and line of the SOA, when read from a file.
    pub fn soa_source(&self) -> Option<(usize, usize)> {
        self.soa_source
    }

    /// The requests it answered (shared by its versions).
    pub fn queries(&self) -> &super::queries::ZoneQueries {
        &self.queries
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.soa_record.serial()
    }

    /// The same zone with another SOA serial (the records are shared, not copied).
    pub fn with_serial(mut self, serial: u32) -> Self {
        self.set_serial(serial);
        self
    }

    /// Sets the SOA serial in place ([`Zone::with_serial`] with no move of
    /// the zone).
    pub fn set_serial(&mut self, serial: u32) {
        self.soa_record.set_serial(serial);
        if let Some(RData::SOA(s)) = self.soa.get_mut().map(|d| &mut **d) {
            s.serial = serial;
        }
    }

    /// Whether this (secondary) zone expired: answered SERVFAIL.
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// The same zone, expired or not (the records are shared, not copied).
    pub fn with_expired(mut self, expired: bool) -> Self {
        self.expired = expired;
        self
    }

    /// True when both zones hold the same records (the serial aside).
    pub fn same_data(&self, other: &Zone) -> bool {
        if self.signed.is_some() || other.signed.is_some() {
            // A zone the TS signed stands for the data it signed.
            return self.origin == other.origin && self.data_digest() == other.data_digest();
        }
        // The SOAs but for their serials, compared in place (a reload of
        // 100,000 zones asks this of each).
        let soa_same =
            self.soa_record
                .same_but_serial(&self.origin_key, &other.soa_record, &other.origin_key);
        self.origin == other.origin
            && self.soa_ttl == other.soa_ttl
            && soa_same
            && (self.store.ptr_eq(&other.store) || self.store.arena() == other.store.arena())
    }

    /// Number of RRsets, the SOA included.
    pub fn rrset_count(&self) -> usize {
        1 + self.store.rrsets()
    }

    /// Bytes of compiled records and index (the zone's share of memory).
    pub fn compiled_bytes(&self) -> usize {
        self.store.compiled_bytes()
    }

    /// The SOA record as stored (for answers to SOA queries and transfers).
    pub fn soa_rr(&self) -> Rr<'_> {
        Rr {
            name: &self.origin,
            ttl: self.soa_ttl,
            data: self.soa(),
        }
    }

    /// The SOA decoded (from its RDATA as read, once).
    pub(super) fn soa(&self) -> &RData {
        self.soa.get_or_init(|| {
            let rdata = self.soa_record.rdata(&self.origin_key);
            Box::new(match SOA::read(&mut BinDecoder::new(&rdata)) {
                Ok(soa) => RData::SOA(soa),
                // Never for a zone built (its SOA was checked): the serial
                // and timers at least.
                Err(_) => RData::SOA(SOA::new(
                    Name::root(),
                    Name::root(),
                    self.serial(),
                    0,
                    0,
                    0,
                    0,
                )),
            })
        })
    }

    /// Every record of the zone except the SOA, decoded (for a zone transfer).
    pub fn records(&self) -> Vec<(Name, u32, RData)> {
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(512);
        for e in self.store.entries() {
            for set in e.sets() {
                for r in set.records() {
                    buf.clear();
                    buf.extend_from_slice(e.owner);
                    buf.extend_from_slice(r);
                    let mut dec = BinDecoder::new(&buf);
                    if let Ok(rec) = Record::<RData>::read(&mut dec) {
                        let ttl = rec.ttl;
                        out.push((rec.name, ttl, rec.data));
                    }
                }
            }
        }
        out
    }

    /// The zone cut nearest this zone's apex on the way down to `name`: the
    /// first name strictly below the apex, `name` itself included, that
    /// owns an NS RRset here (a delegation, secure with a DS or insecure
    /// without). `None` when `name` is not below the apex or no delegation
    /// separates it from the apex: this zone, not a child, speaks for it.
    pub fn cut_toward(&self, name: &Name) -> Option<Name> {
        if !self.origin.zone_of(name) {
            return None;
        }
        let apex = usize::from(self.origin.num_labels());
        (apex + 1..=usize::from(name.num_labels()))
            .map(|n| name.trim_to(n))
            .find(|at| {
                key_of(at)
                    .ok()
                    .and_then(|k| self.store.get(&k))
                    .is_some_and(|e| e.set(rtype::NS).is_some())
            })
    }

    /// Where the origin ends the question's name in `msg`, when it can be
    /// pointed to (not the root).
    pub(super) fn origin_in_question(&self, qname: &NameKey) -> Option<usize> {
        qname
            .offset_of(&self.origin_key)
            .filter(|_| self.origin_key.len() > 1)
            .map(|at| HEADER_LEN + at)
    }

    /// The origin as an owner: a pointer to where it ends the question's
    /// name, or the root's zero byte.
    pub(super) fn push_origin(&self, msg: &mut Vec<u8>, qname: &NameKey) {
        match self.origin_in_question(qname) {
            Some(at) => push_name_ref(msg, at),
            None => msg.extend_from_slice(&self.origin_key),
        }
    }

    /// How many labels of `key` (a name absent from the zone) lie below its
    /// closest encloser (RFC 4592 §3.3.1): the nearest ancestor that exists,
    /// empty non-terminals included, the origin at the latest.
    pub(super) fn closest_encloser(&self, key: &NameKey) -> usize {
        for skip in 1..=key.labels() {
            let (_, up) = key.suffix(skip);
            let exists = self.store.get(up).is_some_and(|e| !e.is_nsec3());
            if exists || up.len() <= self.origin_key.len() {
                return skip;
            }
        }
        key.labels()
    }

    /// True for a zone signed in its files (a DNSKEY at its apex), not by
    /// the TS.
    pub fn is_presigned(&self) -> bool {
        // A DNSKEY with no signature over it is a key pasted into an
        // unsigned file: the TS signs that zone (and drops the key).
        self.signed.is_none()
            && self
                .store
                .get(&self.origin_key)
                .is_some_and(|e| e.set(rtype::DNSKEY).is_some() && e.sigs(rtype::DNSKEY).is_some())
    }

    /// What this zone's signing remembers, when the TS signed it.
    pub fn signature(&self) -> Option<&Signature> {
        self.signed.as_deref()
    }

    /// This zone, its keys' next event ([`Signature::key_event`]) set to
    /// `at`: the keys were read again and do the same, but their timing
    /// may have changed.
    #[must_use]
    pub fn with_key_event(mut self, at: Option<u32>) -> Self {
        if let Some(s) = &mut self.signed {
            Arc::make_mut(s).key_event = at;
        }
        self
    }

    /// SHA-256 of the records and of the SOA but its serial: of the data
    /// before signing, for a zone the TS signed.
    pub(super) fn data_digest(&self) -> [u8; 32] {
        if let Some(s) = &self.signed {
            return s.data;
        }
        let mut c = Context::new(&SHA256);
        c.update(self.store.arena());
        c.update(&self.soa_ttl.to_be_bytes());
        let mut soa = self.soa().clone();
        if let RData::SOA(s) = &mut soa {
            s.serial = 0;
        }
        let mut bytes = Vec::new();
        if encode_rdata(&soa, &mut bytes).is_ok() {
            c.update(&bytes);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(c.finish().as_ref());
        out
    }
}

/// The zone's SOA compiled for answers ([`SoaWire`]) and its RRSIGs for
/// negative answers.
impl Zone {
    /// Encodes the SOA records served in answers and negative answers again
    /// (from the SOA's RDATA as read: the store's RRSIGs of it changed).
    pub(super) fn compile_soa(&mut self) -> Result<(), BuildError> {
        let rdata = self.soa_record.rdata(&self.origin_key);
        self.compile_soa_wire(&rdata, true)
    }

    /// [`Zone::compile_soa`] from the SOA's RDATA in wire form, `rdata`
    /// (as read from the file: the bytes hickory's SOA, decoded from them,
    /// encodes to); its RRSIGs looked up only when `signatures` (the zone
    /// holds an RRSIG).
    pub(super) fn compile_soa_wire(
        &mut self,
        rdata: &[u8],
        signatures: bool,
    ) -> Result<(), BuildError> {
        // MINIMUM: the RDATA's last four bytes (SoaWire::new checks its shape).
        let minimum = rdata
            .last_chunk::<4>()
            .map_or(self.soa_ttl, |m| u32::from_be_bytes(*m));
        let soa = u16::from(RecordType::SOA);
        let negative_ttl = self.soa_ttl.min(minimum);
        self.soa_record = SoaWire::new((self.soa_ttl, negative_ttl), rdata, &self.origin_key)
            .ok_or_else(|| BuildError::Encode {
                rtype: RecordType::SOA,
                reason: "not two names and five numbers".into(),
            })?;
        // The SOA's RRSIGs as a negative answer serves them: with the
        // SOA's lowered TTL (RFC 4035 §3.1.3, RFC 2308 §3).
        let mut sigs = Vec::new();
        let set = signatures
            .then(|| self.store.get(&self.origin_key).and_then(|e| e.sigs(soa)))
            .flatten();
        if let Some(set) = set {
            for r in set.records() {
                sigs.extend_from_slice(&r[..4]);
                sigs.extend_from_slice(&negative_ttl.to_be_bytes());
                sigs.extend_from_slice(&r[8..]);
            }
        }
        self.negative_soa_sigs = sigs.into_boxed_slice();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::NS;

    fn ns(target: &str) -> RData {
        RData::NS(NS(name(target)))
    }

    #[test]
    fn cut_toward_finds_the_delegation_nearest_the_apex() {
        let z = zone_at(
            "d.test.",
            vec![
                rec("d.test.", ns("ns.d.test.")),
                rec("ns.d.test.", a("192.0.2.1")),
                rec("child.d.test.", ns("ns.child.d.test.")),
                rec("ns.child.d.test.", a("192.0.2.2")),
                rec("deep.sub.child.d.test.", a("192.0.2.3")),
                rec("low.sub.d.test.", ns("ns.elsewhere.")),
                rec("www.d.test.", a("192.0.2.4")),
            ],
        );
        let cut = |n: &str| z.cut_toward(&name(n));
        let at = |n: &str| Some(name(n));
        // At the name itself, and at a cut above it.
        assert_eq!(cut("child.d.test."), at("child.d.test."));
        assert_eq!(cut("x.y.child.d.test."), at("child.d.test."));
        // Case does not matter.
        assert_eq!(cut("X.Child.D.Test."), at("Child.D.Test."));
        // Below an empty non-terminal, the cut further down.
        assert_eq!(cut("low.sub.d.test."), at("low.sub.d.test."));
        // No cut: data, an empty non-terminal, a missing name, the apex's
        // own NS, a name outside the zone.
        for asked in [
            "www.d.test.",
            "x.www.d.test.",
            "sub.d.test.",
            "nowhere.d.test.",
            "d.test.",
            "child.other.test.",
        ] {
            assert_eq!(cut(asked), None, "{asked}");
        }
        // The root zone: every name is below its apex.
        let root = zone(vec![rec("test.", ns("ns.test."))]);
        assert_eq!(root.cut_toward(&name("a.b.test.")), Some(name("test.")));
        assert_eq!(root.cut_toward(&name("example.")), None);
    }

    #[test]
    fn same_data_ignores_serial_and_records_round_trip() {
        let z1 = zone(vec![rec("a.test.", a("1.1.1.1"))]);
        let z2 = z1.clone().with_serial(99);
        assert!(z1.same_data(&z2));
        assert_eq!(z2.serial(), 99);
        let z3 = zone(vec![rec("a.test.", a("1.1.1.2"))]);
        assert!(!z1.same_data(&z3));
        let recs = z1.records();
        assert_eq!(recs, vec![(name("a.test."), 300, a("1.1.1.1"))]);
    }
}

#[cfg(test)]
mod layout {
    use super::{HOT_BYTES, Zone};
    use std::mem::{align_of, offset_of};

    /// What an answer reads of its zone lies in the struct's first cache
    /// line, and the struct starts one.
    #[test]
    fn what_an_answer_reads_is_in_the_first_cache_line() {
        assert_eq!(align_of::<Zone>(), HOT_BYTES);
        let ends = [
            offset_of!(Zone, origin_key) + std::mem::size_of::<super::OriginKey>(),
            offset_of!(Zone, store) + std::mem::size_of::<super::Store>(),
            offset_of!(Zone, soa_ttl) + 4,
            offset_of!(Zone, has_delegations) + 1,
            offset_of!(Zone, has_wildcards) + 1,
            offset_of!(Zone, has_dnames) + 1,
            offset_of!(Zone, expired) + 1,
        ];
        assert!(ends.iter().all(|&e| e <= HOT_BYTES), "{ends:?}");
    }
}

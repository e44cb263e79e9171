//! Signing a zone the TS serves (docs/CONFIG.md (the TS) "Signed zones", signed by the TS):
//! [`sign::zone`](zone()) takes a compiled zone (unsigned, or signed here before:
//! its DNSSEC records are dropped and made anew), and compiles a new one
//! holding what a pre-signed zone file would: the DNSKEY RRset, an RRSIG
//! for every authoritative RRset (RFC 4035 §2.2: not the NS RRset of a
//! delegation, not glue), and the NSEC chain (RFC 4035 §2.3) or the NSEC3
//! chain with NSEC3PARAM (RFC 5155 §7.1, RFC 9276's parameters). The
//! answer path then serves it as it serves a pre-signed zone.
//!
//! The names are walked in canonical order, in rounds of [`ROUND`] names
//! signed on every core ([`std::thread::available_parallelism`]), each
//! round's records handed to the zone builder before the next, so a big
//! table never sits in memory as decoded records. The keys come in as
//! [`Keys`] (files and their timing: `ts/dnssec/keys`). The zone remembers its
//! unsigned data's digest, its key tags and the validity of its oldest
//! signature ([`Signature`]): a reload of the same data with the same keys
//! keeps it, and the signer refreshes it before [`Signature::refresh_at`].
//!
//! Signing again over a version signed before (a reload that changed
//! data, a refresh), the signer keeps an RRset's RRSIGs when the RRset is
//! the same, they are those of the keys signing now, and they are not due
//! for refresh ([`keeps`]), as Knot's signer does (`rrsig-refresh`): only
//! changed RRsets, the SOA, changed NSEC/NSEC3 records and signatures
//! near their end are signed anew, so the difference between two versions
//! (an IXFR) holds just those.
//!
//! Rooms: `denial.rs` the chain's records and bitmaps, `signer.rs` what
//! signs ([`RrsetSigner`]) and why signing fails, `online.rs` an RRset
//! signed after the zone as the zone signed its own ([`rrset_like`]).
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering};

use hickory_proto::rr::RData;

use super::Zone;
use super::build::ZoneBuilder;
use super::canonical_rdata;
use super::encode::rdata_into as encode_rdata;
use super::nsec3::{HASH_LEN, nsec3_hash};
use super::rtype::{CDNSKEY, CDS, DNAME, DNSKEY, DS, NS, NSEC, NSEC3, NSEC3PARAM, RRSIG, SOA};
use super::signature::{Signature, refresh_point};
use super::store::{NameEntry, SET_DO_ONLY, be32};
use crate::config::Denial;
use crate::ts::error::BuildError;
use crate::ts::wire::{NameKey, cmp_names};

mod denial;
mod online;
mod signer;

pub use online::{Stamp, rrset_like, rrsig_stamp};
pub use signer::{RrsetSigner, SignError};

/// How long a signature is valid (docs/CONFIG.md (the TS): 14 days).
pub(crate) const VALIDITY: u32 = 14 * 86_400;
/// How far before the signing time a signature's validity starts (clocks
/// of validators run behind).
pub(crate) const BACKDATE: u32 = 3600;
/// Names signed per round (the records of one round are held at once).
const ROUND: usize = 16_384;
/// How long before its refresh point a signature is made anew anyway when
/// the zone is signed, so that signatures made at nearby times are renewed
/// together rather than each at its own moment (Knot's `rrsig-pre-refresh`).
pub(crate) const PRE_REFRESH: u32 = 3600;

/// The keep-or-resign policy: whether the RRSIGs `old` (their RDATA) over
/// an RRset are served again by a signing at `now` instead of made anew.
/// Kept when the RRset is `unchanged` (records and TTL), there is exactly
/// one per key in `signers` (algorithm, tag) and no other, and each is
/// valid now and not due for refresh ([`refresh_point`]) within
/// [`PRE_REFRESH`]. Anything else (a changed RRset, a key rolled, a
/// signature near its end or not yet valid, an RDATA too short) is signed
/// anew.
pub(crate) fn keeps<'r>(
    unchanged: bool,
    old: impl IntoIterator<Item = &'r [u8]>,
    signers: &[(u8, u16)],
    now: u32,
) -> bool {
    if !unchanged {
        return false;
    }
    let mut made_by = Vec::with_capacity(signers.len());
    for rdata in old {
        let (Some(&algorithm), Some(tag)) = (rdata.get(2), rdata.get(16..18)) else {
            return false;
        };
        let (expiration, inception) = (be32(rdata, 8), be32(rdata, 12));
        if now < inception
            || refresh_point(inception, expiration) <= now.saturating_add(PRE_REFRESH)
        {
            return false;
        }
        made_by.push((algorithm, u16::from_be_bytes([tag[0], tag[1]])));
    }
    let mut want = signers.to_vec();
    made_by.sort_unstable();
    want.sort_unstable();
    !want.is_empty() && made_by == want
}

/// The keys a zone is signed with.
pub struct Keys<'k> {
    /// The DNSKEY RDATA of every published key.
    pub dnskeys: Vec<Vec<u8>>,
    /// The keys that sign the DNSKEY, CDS and CDNSKEY RRsets.
    pub for_keys: Vec<&'k dyn RrsetSigner>,
    /// The keys that sign every other RRset.
    pub for_data: Vec<&'k dyn RrsetSigner>,
    /// What the signed zone remembers of these keys ([`Signature::tags`]).
    pub id: Vec<u16>,
    /// When what the keys do next changes (a key published, activated,
    /// retired...): the zone is signed again then.
    pub next_event: Option<u32>,
}

/// Where a name stands in the zone being signed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Apex,
    /// Authoritative data.
    Data,
    /// A delegation point: only its DS (and denial) is signed.
    Cut,
    /// An empty non-terminal: an NSEC3 of its own, no NSEC.
    Empty,
    /// Below a delegation (glue, occluded data) or a DNAME: kept, never signed.
    Below,
}

/// A record a round made: owner (as spelled), type, TTL, RDATA, appended to
/// one buffer.
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn push(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
        self.0.push(owner.len() as u8);
        self.0.extend_from_slice(owner);
        self.0.extend_from_slice(&rtype.to_be_bytes());
        self.0.extend_from_slice(&ttl.to_be_bytes());
        self.0
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.0.extend_from_slice(rdata);
    }

    /// Hands every record to `b`.
    fn drain_into(&self, b: &mut ZoneBuilder) -> Result<(), BuildError> {
        let buf = &self.0;
        let mut pos = 0;
        while let Some(&n) = buf.get(pos) {
            let n = usize::from(n);
            let (owner, head) = (&buf[pos + 1..pos + 1 + n], pos + 1 + n);
            let rtype = u16::from_be_bytes([buf[head], buf[head + 1]]);
            let ttl = be32(buf, head + 2);
            let len = usize::from(u16::from_be_bytes([buf[head + 6], buf[head + 7]]));
            let rdata = &buf[head + 8..head + 8 + len];
            b.add_wire(owner, rtype, ttl, rdata)?;
            pos = head + 8 + len;
        }
        Ok(())
    }
}

/// The RRsets of `e` a signer keeps (its DNSSEC records are made anew).
fn kept<'s>(e: &NameEntry<'s>) -> impl Iterator<Item = super::store::Set<'s>> + 's {
    e.sets().filter(|s| {
        s.flags & SET_DO_ONLY == 0 && !matches!(s.rtype, RRSIG | NSEC | DNSKEY | NSEC3 | NSEC3PARAM)
    })
}

/// One signing of one zone.
struct Signer<'a, 'k> {
    keys: &'a Keys<'k>,
    /// The version signed before, whose fresh signatures of unchanged
    /// RRsets are kept ([`keeps`]).
    previous: Option<&'a Zone>,
    /// The signing time.
    now: u32,
    /// (algorithm, tag) of `keys.for_keys` and of `keys.for_data`.
    signers: [Vec<(u8, u16)>; 2],
    /// The oldest signature in the zone: expiration in the high half,
    /// inception in the low one.
    oldest: AtomicU64,
    /// The latest inception of a signature in the zone.
    latest: AtomicU32,
    denial: Denial,
    /// The origin, lower-cased wire name (the RRSIGs' signer).
    origin: Vec<u8>,
    names: Vec<(NameEntry<'a>, Kind)>,
    /// For each name in the NSEC chain, the index of the next one.
    next: Vec<u32>,
    soa: (u32, Vec<u8>),
    /// TTL of NSEC and NSEC3 records (RFC 9077: the negative answer's).
    denial_ttl: u32,
    inception: u32,
    expiration: u32,
}

/// `zone` signed with `keys` at `now` (seconds since the epoch), its
/// SOA serial `serial`, keeping what [`keeps`] allows of the RRSIGs of
/// `previous` (the version served until now, signed here). See the
/// module docs.
///
/// # Errors
/// [`SignError`]: no key, a key that cannot sign, or a zone too large.
pub fn zone(
    zone: &Zone,
    previous: Option<&Zone>,
    keys: &Keys<'_>,
    denial: Denial,
    serial: u32,
    now: u32,
) -> Result<Zone, SignError> {
    if keys.for_keys.is_empty() || keys.for_data.is_empty() || keys.dnskeys.is_empty() {
        return Err(SignError::NoKey);
    }
    if denial == Denial::Nsec3 && zone.origin_key.len() + 1 + 32 > 255 {
        return Err(SignError::Nsec3OriginTooLong(zone.origin_key.len()));
    }
    let data = zone.data_digest();
    let mut soa = soa_of(zone.soa());
    soa.serial = serial;
    // NSEC and NSEC3 TTL: the negative answer's (RFC 9077).
    let denial_ttl = zone.soa_ttl.min(soa.minimum);
    let soa = RData::SOA(soa);
    let mut soa_rdata = Vec::new();
    encode_rdata(&soa, &mut soa_rdata)?;
    let signer = Signer::plan(
        zone,
        previous.filter(|p| p.signed.is_some()),
        keys,
        denial,
        (zone.soa_ttl, soa_rdata),
        denial_ttl,
        now,
    );
    let mut b = ZoneBuilder::new(zone.origin.clone(), 0);
    run_rounds(signer.names.len(), |i, out| signer.name(i, out), &mut b)?;
    if denial == Denial::Nsec3 {
        let mut hashed: Vec<([u8; HASH_LEN], u32)> = (0..signer.names.len())
            .filter(|&i| signer.names[i].1 != Kind::Below)
            .map(|i| (signer.hash(i), i as u32))
            .collect();
        hashed.sort_unstable();
        run_rounds(hashed.len(), |k, out| signer.nsec3(&hashed, k, out), &mut b)?;
    }
    b.set_soa(zone.soa_ttl, soa.clone(), zone.soa_source);
    let ttl = zone.soa_ttl;
    let mut signed = b.finish(&[], |_, _| (ttl, soa_of(&soa)))?; // not called: the SOA is set
    signed.soa_synthesized = zone.soa_synthesized;
    let oldest = signer.oldest.load(AtomicOrdering::Relaxed);
    signed.signed = Some(Arc::new(Signature {
        data,
        tags: keys.id.clone(),
        inception: oldest as u32,
        expiration: (oldest >> 32) as u32,
        latest_inception: signer.latest.load(AtomicOrdering::Relaxed),
        denial,
        key_event: keys.next_event,
    }));
    Ok(signed)
}

/// The SOA inside `data` (the zone's SOA is always one).
fn soa_of(data: &RData) -> hickory_proto::rr::rdata::SOA {
    match data {
        RData::SOA(s) => s.clone(),
        _ => hickory_proto::rr::rdata::SOA::new(
            hickory_proto::rr::Name::root(),
            hickory_proto::rr::Name::root(),
            0,
            0,
            0,
            0,
            0,
        ),
    }
}

/// Runs `work` for each of `0..n` on every core, in rounds of [`ROUND`],
/// handing each round's records to `b` before the next.
fn run_rounds(
    n: usize,
    work: impl Fn(usize, &mut Out) -> Result<(), SignError> + Sync,
    b: &mut ZoneBuilder,
) -> Result<(), SignError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut start = 0;
    while start < n {
        let end = n.min(start + ROUND);
        let per = (end - start).div_ceil(threads);
        let outs: Vec<Result<Out, SignError>> = std::thread::scope(|s| {
            let work = &work;
            let handles: Vec<_> = (start..end)
                .step_by(per.max(1))
                .map(|from| {
                    let to = end.min(from + per);
                    s.spawn(move || {
                        let mut out = Out::default();
                        for i in from..to {
                            work(i, &mut out)?;
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(SignError::Worker)))
                .collect()
        });
        for out in outs {
            out?.drain_into(b)?;
        }
        start = end;
    }
    Ok(())
}

impl<'a, 'k> Signer<'a, 'k> {
    /// The names of `zone` in canonical order, each with its [`Kind`].
    fn plan(
        zone: &'a Zone,
        previous: Option<&'a Zone>,
        keys: &'a Keys<'k>,
        denial: Denial,
        soa: (u32, Vec<u8>),
        denial_ttl: u32,
        now: u32,
    ) -> Signer<'a, 'k> {
        let origin = zone.origin_key.to_vec();
        let apex_labels = NameKey::read(&origin).map_or(0, |k| k.labels());
        let mut entries: Vec<NameEntry<'a>> =
            zone.store.entries().filter(|e| !e.is_nsec3()).collect();
        entries.sort_unstable_by(|a, b| cmp_names(a.owner, b.owner));
        let owning = |rtype: u16| -> HashSet<Vec<u8>> {
            entries
                .iter()
                .filter(|e| kept(e).any(|s| s.rtype == rtype))
                .map(|e| e.owner.to_ascii_lowercase())
                .collect()
        };
        let mut cuts = owning(NS);
        cuts.remove(&origin);
        // Names below a cut or a DNAME (RFC 6672 §2.4) are no data of the zone.
        let occluding: HashSet<Vec<u8>> = cuts.union(&owning(DNAME)).cloned().collect();
        let names: Vec<(NameEntry<'a>, Kind)> = entries
            .into_iter()
            .map(|e| {
                let key = NameKey::read(e.owner);
                let below = key.as_ref().is_some_and(|k| {
                    (1..k.labels().saturating_sub(apex_labels))
                        .any(|skip| occluding.contains(k.suffix(skip).1))
                });
                let kind = if key.as_ref().is_some_and(|k| k.bytes() == origin.as_slice()) {
                    Kind::Apex
                } else if below {
                    Kind::Below
                } else if key.as_ref().is_some_and(|k| cuts.contains(k.bytes())) {
                    Kind::Cut
                } else if kept(&e).next().is_none() {
                    Kind::Empty
                } else {
                    Kind::Data
                };
                (e, kind)
            })
            .collect();
        // The NSEC chain: apex, data and delegations, wrapping to the apex.
        let mut next = vec![0u32; names.len()];
        let mut following = 0u32;
        for i in (0..names.len()).rev() {
            next[i] = following;
            if matches!(names[i].1, Kind::Apex | Kind::Data | Kind::Cut) {
                following = i as u32;
            }
        }
        let ids = |ks: &[&dyn RrsetSigner]| ks.iter().map(|k| (k.algorithm(), k.tag())).collect();
        Signer {
            keys,
            previous,
            now,
            signers: [ids(&keys.for_keys), ids(&keys.for_data)],
            oldest: AtomicU64::new(u64::MAX),
            latest: AtomicU32::new(0),
            denial,
            origin,
            names,
            next,
            soa,
            denial_ttl,
            inception: now.saturating_sub(BACKDATE),
            expiration: now.saturating_add(VALIDITY),
        }
    }

    /// The types at name `i` as its NSEC or NSEC3 bitmap lists them.
    fn types(&self, i: usize) -> Vec<u16> {
        let (e, kind) = self.names[i];
        let nsec = self.denial == Denial::Nsec;
        let mut t: Vec<u16> = kept(&e)
            .map(|s| s.rtype)
            .filter(|&r| kind != Kind::Cut || r == NS || r == DS)
            .collect();
        match kind {
            Kind::Apex => {
                t.extend([SOA, DNSKEY, RRSIG]);
                t.push(if nsec { NSEC } else { NSEC3PARAM });
            }
            Kind::Data => {
                t.push(RRSIG);
                if nsec {
                    t.push(NSEC);
                }
            }
            Kind::Cut if nsec => t.extend([NSEC, RRSIG]),
            Kind::Cut if t.contains(&DS) => t.push(RRSIG),
            Kind::Cut | Kind::Empty | Kind::Below => {}
        }
        t.sort_unstable();
        t.dedup();
        t
    }

    /// The records of name `i`: its own, their RRSIGs, the apex's DNSKEY,
    /// SOA RRSIG and NSEC3PARAM, and its NSEC.
    fn name(&self, i: usize, out: &mut Out) -> Result<(), SignError> {
        let (e, kind) = self.names[i];
        for set in kept(&e) {
            for r in set.records() {
                out.push(
                    e.owner,
                    set.rtype,
                    be32(r, 4),
                    r.get(10..).unwrap_or_default(),
                );
            }
        }
        if matches!(kind, Kind::Below | Kind::Empty) {
            return Ok(());
        }
        for set in kept(&e).filter(|s| kind != Kind::Cut || s.rtype == DS) {
            let ttl = set.records().next().map_or(0, |r| be32(r, 4));
            let rdatas = canonical_rdata::sorted(
                set.rtype,
                set.records().map(|r| r.get(10..).unwrap_or_default()),
            );
            self.rrsig(e.owner, set.rtype, ttl, &rdatas, out)?;
        }
        if kind == Kind::Apex {
            let (ttl, soa) = &self.soa;
            self.rrsig(e.owner, SOA, *ttl, std::slice::from_ref(soa), out)?;
            for k in &self.keys.dnskeys {
                out.push(e.owner, DNSKEY, *ttl, k);
            }
            self.rrsig(
                e.owner,
                DNSKEY,
                *ttl,
                &canonical_rdata::sorted(DNSKEY, self.keys.dnskeys.iter()),
                out,
            )?;
            if self.denial == Denial::Nsec3 {
                let param = denial::NSEC3PARAM_RDATA.to_vec();
                out.push(e.owner, NSEC3PARAM, 0, &param);
                self.rrsig(e.owner, NSEC3PARAM, 0, &[param], out)?;
            }
        }
        if self.denial == Denial::Nsec {
            let next = self.names[self.next[i] as usize]
                .0
                .owner
                .to_ascii_lowercase();
            let rdata = denial::nsec_rdata(&next, &self.types(i));
            out.push(e.owner, NSEC, self.denial_ttl, &rdata);
            self.rrsig(e.owner, NSEC, self.denial_ttl, &[rdata], out)?;
        }
        Ok(())
    }

    /// The NSEC3 hash of name `i`.
    fn hash(&self, i: usize) -> [u8; HASH_LEN] {
        let lower = self.names[i].0.owner.to_ascii_lowercase();
        nsec3_hash(&lower, &[], 0)
    }

    /// The NSEC3 at position `k` of the chain `hashed` (by hash), and its RRSIG.
    fn nsec3(
        &self,
        hashed: &[([u8; HASH_LEN], u32)],
        k: usize,
        out: &mut Out,
    ) -> Result<(), SignError> {
        let (hash, i) = hashed[k];
        let next = &hashed[(k + 1) % hashed.len()].0;
        let owner = denial::nsec3_owner(&hash, &self.origin);
        let rdata = denial::nsec3_rdata(next, &self.types(i as usize));
        out.push(&owner, NSEC3, self.denial_ttl, &rdata);
        self.rrsig(&owner, NSEC3, self.denial_ttl, &[rdata], out)
    }

    /// Notes a signature valid from `inception` to `expiration` in the zone.
    fn note(&self, inception: u32, expiration: u32) {
        let packed = u64::from(expiration) << 32 | u64::from(inception);
        self.oldest.fetch_min(packed, AtomicOrdering::Relaxed);
        self.latest.fetch_max(inception, AtomicOrdering::Relaxed);
    }

    /// The RRSIGs the previous version holds over the RRset of `rtype` at
    /// `lower` (lower-cased), when [`keeps`] keeps them: that RRset there
    /// had TTL `ttl` and the canonical RDATA `rdatas` too.
    fn kept_sigs(
        &self,
        lower: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: &[Vec<u8>],
    ) -> Option<super::store::Set<'a>> {
        let old = self.previous?.store.get(lower)?;
        let set = old.set(rtype)?;
        let sigs = old.sigs(rtype)?;
        let unchanged = set.records().all(|r| be32(r, 4) == ttl)
            && canonical_rdata::sorted(
                rtype,
                set.records().map(|r| r.get(10..).unwrap_or_default()),
            ) == rdatas;
        let signers = &self.signers[usize::from(!matches!(rtype, DNSKEY | CDS | CDNSKEY))];
        let old_rdatas = sigs.records().map(|r| r.get(10..).unwrap_or_default());
        keeps(unchanged, old_rdatas, signers, self.now).then_some(sigs)
    }

    /// The RRSIGs of the RRset of `rtype` at `owner` (`rdatas` canonical and
    /// sorted), one per key that signs it (RFC 4034 §3, §6): those of the
    /// previous version when [`Signer::kept_sigs`] finds them.
    fn rrsig(
        &self,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: &[Vec<u8>],
        out: &mut Out,
    ) -> Result<(), SignError> {
        let lower = owner.to_ascii_lowercase();
        if let Some(sigs) = self.kept_sigs(&lower, rtype, ttl, rdatas) {
            for r in sigs.records() {
                let rdata = r.get(10..).unwrap_or_default();
                self.note(be32(rdata, 12), be32(rdata, 8));
                out.push(owner, RRSIG, be32(r, 4), rdata);
            }
            return Ok(());
        }
        let signers = if matches!(rtype, DNSKEY | CDS | CDNSKEY) {
            &self.keys.for_keys
        } else {
            &self.keys.for_data
        };
        self.note(self.inception, self.expiration);
        let key = NameKey::read(&lower).ok_or(BuildError::NameTooLong)?;
        let wild = lower.starts_with(b"\x01*");
        let labels = (key.labels() - usize::from(wild)) as u8;
        for s in signers {
            let rdata = online::rrsig_rdata(
                &lower,
                rtype,
                labels,
                ttl,
                (self.inception, self.expiration),
                &self.origin,
                rdatas,
                *s,
            )?;
            out.push(owner, RRSIG, ttl, &rdata);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

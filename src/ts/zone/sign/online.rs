//! RRsets signed after the zone, one at a time: a service's answer sets
//! (`ts/service/signed.rs` keeps them). [`rrset_like`] signs an RRset at
//! an owner of the zone as the zone signed its own RRset there: the same
//! validity, labels, original TTL and keys, only the data new, so a
//! validator sees it as any other signature of the zone. [`rrsig_rdata`]
//! is the RRSIG both this and the zone's signer make.
use super::signer::{RrsetSigner, SignError};
use crate::ts::zone::Zone;
use crate::ts::zone::store::{be16, be32};

/// The RRSIG RDATA over the RRset of `rtype` at `owner` (lower-cased wire
/// form) of TTL `ttl` and RDATA `rdatas` (canonical, sorted: RFC 4034 §6.3),
/// with `labels`, valid from `inception` to `expiration`, by `signer` for the
/// zone `origin` (lower-cased wire form).
///
/// # Errors
/// [`SignError::Crypto`] when the key cannot sign.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rrsig_rdata(
    owner: &[u8],
    rtype: u16,
    labels: u8,
    ttl: u32,
    (inception, expiration): (u32, u32),
    origin: &[u8],
    rdatas: &[Vec<u8>],
    signer: &dyn RrsetSigner,
) -> Result<Vec<u8>, SignError> {
    let mut rdata = Vec::with_capacity(18 + origin.len() + 64);
    rdata.extend_from_slice(&rtype.to_be_bytes());
    rdata.push(signer.algorithm());
    rdata.push(labels);
    rdata.extend_from_slice(&ttl.to_be_bytes());
    rdata.extend_from_slice(&expiration.to_be_bytes());
    rdata.extend_from_slice(&inception.to_be_bytes());
    rdata.extend_from_slice(&signer.tag().to_be_bytes());
    rdata.extend_from_slice(origin);
    let mut data = rdata.clone();
    for rd in rdatas {
        data.extend_from_slice(owner);
        data.extend_from_slice(&rtype.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&ttl.to_be_bytes());
        data.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        data.extend_from_slice(rd);
    }
    rdata.extend_from_slice(&signer.sign(&data)?);
    Ok(rdata)
}

/// What tells one signing of an RRset apart: the first RRSIG's
/// inception, expiration and key tag (a zone signed again, or its keys
/// rolled, gives another).
pub type Stamp = (u32, u32, u16);

/// The [`Stamp`] of the zone's RRSIGs over its RRset of `like` at
/// `owner` (lower-cased wire form); `None` when it has none there.
pub fn rrsig_stamp(zone: &Zone, owner: &[u8], like: u16) -> Option<Stamp> {
    let entry = zone.store.get(owner)?;
    let sig = entry.sigs(like)?.records().next()?.get(10..)?;
    (sig.len() >= 18).then(|| (be32(sig, 12), be32(sig, 8), be16(sig, 16)))
}

/// The RRSIG RDATAs over an RRset of `rtype` at `owner` (lower-cased
/// wire form) of TTL `ttl` and RDATA `rdatas` (canonical, sorted), one
/// for each of the zone's RRSIGs over its own RRset of `like` there:
/// its labels, validity and key (found by algorithm and tag among
/// `signers`), the signature made anew. Empty when the zone has none
/// there (unsigned).
///
/// # Errors
/// [`SignError::NoKey`] when a key that signed the zone is not among
/// `signers`; [`SignError::Crypto`] when it cannot sign.
pub fn rrset_like(
    zone: &Zone,
    owner: &[u8],
    like: u16,
    (rtype, ttl): (u16, u32),
    rdatas: &[Vec<u8>],
    signers: &[&dyn RrsetSigner],
) -> Result<Vec<Vec<u8>>, SignError> {
    let Some(sigs) = zone.store.get(owner).and_then(|e| e.sigs(like)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for r in sigs.records() {
        let Some(old) = r.get(10..).filter(|o| o.len() >= 18) else {
            continue;
        };
        let (algorithm, labels, tag) = (old[2], old[3], be16(old, 16));
        let signer = signers
            .iter()
            .find(|s| s.algorithm() == algorithm && s.tag() == tag)
            .ok_or(SignError::NoKey)?;
        out.push(rrsig_rdata(
            owner,
            rtype,
            labels,
            ttl,
            (be32(old, 12), be32(old, 8)),
            &zone.origin_key,
            rdatas,
            *signer,
        )?);
    }
    Ok(out)
}

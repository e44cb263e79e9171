//! The NSEC3 chain of a zone signed with hashed denial (RFC 5155): its
//! parameters from the apex's NSEC3PARAM, and the NSEC3 owners sorted by
//! hash, so the NSEC3 that matches a name's hash or covers it (the one
//! before it, wrapping around to the last) is found by a binary search.
//!
//! Each name of the zone is linked at load to its own NSEC3 and to the
//! NSEC3 covering its wildcard child (`*.name`), as NSD does: an NXDOMAIN's
//! closest encloser proof and wildcard proof then cost a table lookup each,
//! and only the next closer name is hashed per query.
use std::collections::HashMap;
use std::sync::Arc;

use data_encoding::BASE32HEX_NOPAD;
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};

use super::rtype::{NSEC3, NSEC3PARAM};
use super::store::{NameEntry, Store};

/// SHA-1's length: the only NSEC3 hash algorithm (RFC 5155 §11).
pub(super) const HASH_LEN: usize = 20;
/// Iterations answered with at most (RFC 9276 §3.2 lets a validator fail a
/// zone with more; one treats it as insecure above 150 or sooner): a
/// zone file with more is refused at load (`ts/dnssec/presigned.rs`).
pub(crate) const ITERATIONS_MAX: u16 = 500;

/// An NSEC3 chain: hash parameters and owners in hash order.
#[derive(Debug)]
pub(super) struct Nsec3Chain {
    iterations: u16,
    salt: Box<[u8]>,
    /// Each NSEC3 owner's hash and its entry's arena offset, by hash.
    owners: Box<[([u8; HASH_LEN], u32)]>,
    /// By a name's arena offset: the offsets of the NSEC3 matching it and
    /// of the NSEC3 matching or covering its wildcard child.
    links: HashMap<u32, Links>,
}

/// A name's NSEC3 records, found at load.
#[derive(Debug, Clone, Copy)]
struct Links {
    own: u32,
    wildcard: u32,
}

/// What NSEC3 says of a name's hash.
pub(super) enum Hashed<'s> {
    /// The NSEC3 of this very hash: the name exists.
    Matches(NameEntry<'s>),
    /// The NSEC3 whose span holds the hash: no name has it.
    Covered(NameEntry<'s>),
}

impl Nsec3Chain {
    /// The chain of `store` with the parameters of the apex `apex`'s
    /// NSEC3PARAM (SHA-1, at most [`ITERATIONS_MAX`] iterations); `None`
    /// without one, or without NSEC3 records.
    pub(super) fn of(store: &Store, apex: &[u8]) -> Option<Arc<Nsec3Chain>> {
        let param = store.get(apex)?.set(NSEC3PARAM)?.records().next()?;
        let rdata = param.get(10..)?;
        let (alg, iterations) = (
            *rdata.first()?,
            u16::from_be_bytes([*rdata.get(2)?, *rdata.get(3)?]),
        );
        let salt_len = usize::from(*rdata.get(4)?);
        let salt = rdata.get(5..5 + salt_len)?;
        if alg != 1 || iterations > ITERATIONS_MAX {
            return None;
        }
        let mut owners = Vec::new();
        let mut off = 0;
        while let Some((e, next)) = NameEntry::at(store.arena(), off) {
            if e.is_nsec3()
                && of_chain(e, alg, iterations, salt)
                && let Some(hash) = owner_hash(e.owner)
                && let Ok(at) = u32::try_from(off)
            {
                owners.push((hash, at));
            }
            off = next;
        }
        if owners.is_empty() {
            return None;
        }
        owners.sort_unstable();
        let mut chain = Nsec3Chain {
            iterations,
            salt: salt.into(),
            owners: owners.into(),
            links: HashMap::new(),
        };
        chain.links = chain.link(store);
        Some(Arc::new(chain))
    }

    /// Every name of `store` whose hash an NSEC3 owner has, linked to that
    /// NSEC3 and to the one matching or covering its wildcard child.
    fn link(&self, store: &Store) -> HashMap<u32, Links> {
        let mut links = HashMap::new();
        let mut wild = Vec::with_capacity(2 + 255);
        let mut off = 0;
        while let Some((e, next)) = NameEntry::at(store.arena(), off) {
            let at = u32::try_from(off).ok();
            off = next;
            let Some(at) = at.filter(|_| !e.is_nsec3()) else {
                continue;
            };
            let lower = e.owner.to_ascii_lowercase();
            let Some(own) = self.offset(&self.hash(&lower)).filter(|(_, m)| *m) else {
                continue;
            };
            wild.clear();
            wild.extend_from_slice(&[1, b'*']);
            wild.extend_from_slice(&lower);
            if let Some((wildcard, _)) = self.offset(&self.hash(&wild)) {
                links.insert(
                    at,
                    Links {
                        own: own.0,
                        wildcard,
                    },
                );
            }
        }
        links
    }

    /// The arena offset of the NSEC3 matching or covering `hash`, and
    /// whether it matches.
    fn offset(&self, hash: &[u8; HASH_LEN]) -> Option<(u32, bool)> {
        let after = self.owners.partition_point(|(h, _)| h <= hash);
        let i = after
            .checked_sub(1)
            .or_else(|| self.owners.len().checked_sub(1))?;
        let (h, at) = self.owners.get(i)?;
        Some((*at, h == hash))
    }

    /// The NSEC3 of `name` (lower-cased) and the one matching or covering
    /// its wildcard child, as linked at load; `None` for a name not linked
    /// (then hash it: [`Nsec3Chain::find`]).
    pub(super) fn linked<'s>(
        &self,
        store: &'s Store,
        name: &[u8],
    ) -> Option<(NameEntry<'s>, NameEntry<'s>)> {
        let (_, at) = store.get_at(name)?;
        let l = self.links.get(&at)?;
        let own = NameEntry::at(store.arena(), l.own as usize)?.0;
        let wildcard = NameEntry::at(store.arena(), l.wildcard as usize)?.0;
        Some((own, wildcard))
    }

    /// The hash of `name` (a lower-cased wire name) in this chain.
    pub(super) fn hash(&self, name: &[u8]) -> [u8; HASH_LEN] {
        nsec3_hash(name, &self.salt, self.iterations)
    }

    /// The NSEC3 that matches or covers the hash of `name` (lower-cased).
    pub(super) fn find<'s>(&self, store: &'s Store, name: &[u8]) -> Option<Hashed<'s>> {
        let (at, matches) = self.offset(&self.hash(name))?;
        let (e, _) = NameEntry::at(store.arena(), at as usize)?;
        Some(if matches {
            Hashed::Matches(e)
        } else {
            Hashed::Covered(e)
        })
    }
}

/// True when an NSEC3 of `e` has the hash algorithm, iterations and salt
/// of the NSEC3PARAM: a zone may hold a second chain while its parameters
/// change, and a proof mixing the chains is bogus (RFC 5155 §7.3).
fn of_chain(e: NameEntry<'_>, alg: u8, iterations: u16, salt: &[u8]) -> bool {
    let Some(set) = e.set(NSEC3) else {
        return false;
    };
    set.records().any(|r| {
        let Some(rdata) = r.get(10..) else {
            return false;
        };
        let salt_len = rdata.get(4).map(|&n| usize::from(n));
        rdata.first() == Some(&alg)
            && rdata.get(2..4) == Some(&iterations.to_be_bytes()[..])
            && salt_len.and_then(|n| rdata.get(5..5 + n)) == Some(salt)
    })
}

/// The hash of `name` (a lower-cased wire name), RFC 5155 §5, computed on
/// the stack.
pub(super) fn nsec3_hash(name: &[u8], salt: &[u8], iterations: u16) -> [u8; HASH_LEN] {
    // A name and a salt are at most 255 bytes each.
    let mut buf = [0u8; 2 * 255];
    let salt = &salt[..salt.len().min(255)];
    let name = &name[..name.len().min(255)];
    buf[..name.len()].copy_from_slice(name);
    buf[name.len()..name.len() + salt.len()].copy_from_slice(salt);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(
        digest(&SHA1_FOR_LEGACY_USE_ONLY, &buf[..name.len() + salt.len()]).as_ref(),
    );
    buf[HASH_LEN..HASH_LEN + salt.len()].copy_from_slice(salt);
    for _ in 0..iterations {
        buf[..HASH_LEN].copy_from_slice(&out);
        out.copy_from_slice(
            digest(&SHA1_FOR_LEGACY_USE_ONLY, &buf[..HASH_LEN + salt.len()]).as_ref(),
        );
    }
    out
}

/// The hash an NSEC3 owner's first label spells in base32hex.
pub(crate) fn owner_hash(owner: &[u8]) -> Option<[u8; HASH_LEN]> {
    let len = usize::from(*owner.first()?);
    let label = owner.get(1..1 + len)?.to_ascii_uppercase();
    let bytes = BASE32HEX_NOPAD.decode(&label).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::wire_name as wire;

    #[test]
    fn hashes_as_rfc_5155_appendix_a_lists_them() {
        // RFC 5155 Appendix A: salt aabbccdd, 12 iterations.
        let chain = Nsec3Chain {
            iterations: 12,
            salt: vec![0xaa, 0xbb, 0xcc, 0xdd].into(),
            owners: Box::default(),
            links: HashMap::new(),
        };
        for (name, hash) in [
            ("example", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
            ("a.example", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
            ("ns1.example", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
            ("*.w.example", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
        ] {
            let got = BASE32HEX_NOPAD
                .encode(&chain.hash(&wire(name)))
                .to_ascii_lowercase();
            assert_eq!(got, hash, "{name}");
            assert_eq!(
                owner_hash(&wire(&format!("{hash}.example"))),
                Some(chain.hash(&wire(name)))
            );
        }
    }
}

//! DNSSEC keys of the zones a TS signs, in BIND's files
//! (`K<zone>+<alg>+<tag>.key` and `.private`, as `dnssec-keygen` writes them),
//! so that `dnssec-signzone`, `dnssec-dsfromkey` and `delv` read the same keys.
//!
//! [`ZoneKeys::load_or_create`] reads every key of a zone from the keys
//! folder (of both algorithms during an algorithm rollover, RFC 6781
//! §4.1.4), or makes one CSK (flags 257) of the configured algorithm when
//! there is none. Which
//! keys are in the DNSKEY RRset and which sign is the keys' timing metadata
//! (`Publish`, `Activate`, `Inactive`, `Delete`), read as BIND writes it:
//! an operator rolls a key by adding the next one with `dnssec-keygen` and
//! setting the old one's `Inactive` and `Delete` with `dnssec-settime`.
//! The crypto is ring's (ECDSA P-256 with SHA-256 and fixed-size r||s
//! signatures, RFC 6605; Ed25519, RFC 8080); `dnssec/ds.rs` derives the DS
//! records for the parent zone (`dnslb ds`).
//!
//! # Map
//! - this file: [`ZoneKey`], [`ZoneKeys`] and which keys publish and sign;
//! - `file.rs`: the two files of a key, read and written;
//! - `material.rs`: key pairs (ring), the key tag and the DS digest;
//! - `meta.rs`: the DNSKEY flags, the algorithm number and a key's timing;
//! - `error.rs`: [`DnssecKeyError`].
use std::fmt;
use std::path::Path;

use hickory_proto::rr::Name;

use crate::config::DnssecAlgorithm;

mod error;
mod file;
mod material;
mod meta;
use crate::ts::zone::rtype::{CDNSKEY, CDS, DNSKEY};
pub(in crate::ts::dnssec) use file::origin_text;
pub(crate) use material::key_tag;

pub use error::DnssecKeyError;
use material::KeyPair;
use meta::{REVOKE_FLAG, SEP_FLAG, Timing};
pub use meta::{SETTLE, algorithm_number};

/// Any data type (A): the keys that sign data.
const DATA: u16 = 1;
/// Types whose RRsets the SEP keys sign: DNSKEY, CDS, CDNSKEY.
const KEY_SET_TYPES: [u16; 3] = [DNSKEY, CDS, CDNSKEY];

/// One DNSSEC key of a zone: its DNSKEY, its private half, and whether it is
/// published and signing (as of when it was loaded).
pub struct ZoneKey {
    pair: KeyPair,
    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key.
    rdata: Vec<u8>,
    tag: u16,
    published: bool,
    active: bool,
    /// Published for [`SETTLE`] (a ZSK may then sign data alone).
    settled: bool,
    timing: Timing,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("tag", &self.tag)
            .field("algorithm", &self.algorithm())
            .field("flags", &self.flags())
            .field("published", &self.published)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// The key tag (RFC 4034 Appendix B).
    pub fn tag(&self) -> u16 {
        self.tag
    }

    /// The algorithm number: 13 (ECDSA P-256 SHA-256) or 15 (Ed25519).
    pub fn algorithm(&self) -> u8 {
        self.rdata[3]
    }

    /// The DNSKEY flags: 256 (ZSK) or 257 (KSK or CSK), 384/385 when revoked.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.rdata[0], self.rdata[1]])
    }

    /// The Secure Entry Point flag is set (a KSK or CSK).
    pub fn is_sep(&self) -> bool {
        self.flags() & SEP_FLAG != 0
    }

    /// The REVOKE flag is set (RFC 5011 §7: `dnssec-revoke`).
    pub fn is_revoked(&self) -> bool {
        self.flags() & REVOKE_FLAG != 0
    }

    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key (ECDSA:
    /// X||Y, 64 bytes; Ed25519: 32 bytes).
    pub fn dnskey_rdata(&self) -> &[u8] {
        &self.rdata
    }

    /// The signature of `data`, as the RRSIG's signature field holds it
    /// (ECDSA: r||s, 64 bytes, RFC 6605; Ed25519: 64 bytes, RFC 8080).
    ///
    /// # Errors
    /// [`DnssecKeyError::Crypto`] if ring fails (its random source for ECDSA).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DnssecKeyError> {
        self.pair.sign(data).ok_or(DnssecKeyError::Crypto {
            tag: self.tag,
            what: "signing",
        })
    }

    /// The DS RDATA for this key (RFC 4509): tag, algorithm, digest type 2,
    /// SHA-256 over the owner (wire format, lower case) and the DNSKEY RDATA.
    pub fn ds_sha256(&self, owner_wire_lower: &[u8]) -> Vec<u8> {
        material::ds_sha256(self.tag, &self.rdata, owner_wire_lower)
    }
}

/// The keys of one zone, as found in (or made into) its keys folder.
#[derive(Debug)]
pub struct ZoneKeys {
    /// Every key of the zone, by file name.
    keys: Vec<ZoneKey>,
}

impl ZoneKeys {
    /// Keys of `origin` in `dir`: every `K<origin>+<alg>+<tag>.key/.private`
    /// pair there, of either algorithm the TS signs with; when there is
    /// none, one CSK (flags 257) of `algorithm` is generated and written
    /// (`dir` created if needed, `.private` mode 0600), as `dnssec-keygen`
    /// would name and write it. `now` (seconds since the epoch) decides which
    /// keys are published and active. The folder is locked meanwhile, so
    /// table servers sharing it that start together make one key, not two.
    ///
    /// Keys of two algorithms are an algorithm rollover (RFC 6781 §4.1.4):
    /// every algorithm in the DNSKEY RRset signs every RRset (RFC 4035
    /// §2.2), so an algorithm whose published keys are none of them active
    /// (the old one retired before its Delete, the new one published before
    /// its Activate) signs with those keys anyway (not a standby key).
    ///
    /// # Errors
    /// A file that cannot be read or written, a key file that is not what
    /// BIND writes (`file:line`), a key ring refuses, a `.key` without its
    /// `.private`, a key still published of an algorithm the TS does not
    /// sign with, or keys of which none is active.
    pub fn load_or_create(
        dir: &Path,
        origin: &Name,
        algorithm: DnssecAlgorithm,
        now: u32,
    ) -> Result<ZoneKeys, DnssecKeyError> {
        let io = |source| DnssecKeyError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let _lock = file::lock(dir).map_err(io)?;
        let mut found = file::read_keys(dir, origin, now)?;
        if found.is_empty() {
            found.push(file::create_key(dir, origin, algorithm, now)?);
        }
        ZoneKeys::of(found, dir, origin, now)
    }

    /// The keys [`ZoneKeys::load_or_create`] would use at `now`, read
    /// without writing anything (`dnslb check`): a zone with no key in the
    /// folder, or no folder yet, gets a CSK of `algorithm` made in memory
    /// only, as the TS would make one at start.
    ///
    /// # Errors
    /// As [`ZoneKeys::load_or_create`], but for writing.
    pub fn load_dry(
        dir: &Path,
        origin: &Name,
        algorithm: DnssecAlgorithm,
        now: u32,
    ) -> Result<ZoneKeys, DnssecKeyError> {
        let mut found = if dir.exists() {
            file::read_keys(dir, origin, now)?
        } else {
            Vec::new()
        };
        if found.is_empty() {
            found.push(file::fresh_key(algorithm, now)?.0);
        }
        ZoneKeys::of(found, dir, origin, now)
    }

    /// The keys `found` in `dir` for `origin`, as they sign at `now`.
    fn of(
        found: Vec<file::Loaded>,
        dir: &Path,
        origin: &Name,
        now: u32,
    ) -> Result<ZoneKeys, DnssecKeyError> {
        let mut keys: Vec<ZoneKey> = found
            .into_iter()
            .map(|(pair, rdata, timing)| ZoneKey {
                tag: key_tag(&rdata),
                pair,
                rdata,
                published: timing.published(now),
                active: timing.active(now),
                settled: timing.settled(now),
                timing,
            })
            .collect();
        if !keys.iter().any(|k| k.active) {
            let tags: Vec<String> = keys.iter().map(|k| k.tag.to_string()).collect();
            return Err(DnssecKeyError::NoneActive {
                dir: dir.to_path_buf(),
                origin: file::origin_text(origin),
                tags: tags.join(", "),
            });
        }
        let silent: Vec<u8> = keys
            .iter()
            .filter(|k| k.published)
            .map(ZoneKey::algorithm)
            .filter(|&a| !keys.iter().any(|k| k.active && k.algorithm() == a))
            .collect();
        for k in &mut keys {
            if silent.contains(&k.algorithm()) && k.published && !k.timing.standby() {
                k.active = true;
            }
        }
        Ok(ZoneKeys { keys })
    }

    /// Whether a key of `algorithm` is in the DNSKEY RRset.
    pub fn publishes(&self, algorithm: DnssecAlgorithm) -> bool {
        let number = algorithm_number(algorithm);
        self.published().any(|k| k.algorithm() == number)
    }

    /// The keys in the zone's DNSKEY RRset.
    pub fn published(&self) -> impl Iterator<Item = &ZoneKey> {
        self.keys.iter().filter(|k| k.published)
    }

    /// The keys that sign an RRset of type `rtype`: for DNSKEY, CDS and
    /// CDNSKEY the active SEP keys (every active key if none is SEP); for any
    /// other type the active non-SEP keys once one of them has been published
    /// for [`SETTLE`], every active key while the non-SEP ones are newer, else
    /// the active SEP keys (a CSK signs everything).
    ///
    /// Each algorithm is chosen for on its own: with keys of two, an RRset
    /// has signatures of both.
    pub fn signing(&self, rtype: u16) -> impl Iterator<Item = &ZoneKey> {
        self.keys.iter().filter(move |k| {
            k.active && sep_signs(&self.keys, k.algorithm(), rtype).is_none_or(|s| k.is_sep() == s)
        })
    }

    /// When what the keys do next changes after `now` (a key published,
    /// activated, retired, deleted, or a new ZSK settled): the zone is
    /// signed again then.
    pub fn next_event(&self, now: u32) -> Option<u32> {
        self.keys
            .iter()
            .filter_map(|k| k.timing.next_event(now, !k.is_sep()))
            .min()
    }

    /// The identity of what the keys do: how many keys are published and
    /// their tags, then the same of the keys signing the key set, then of
    /// those signing the data. A signed zone remembers it, to sign again
    /// when a key is added, removed, activated, retired or settled.
    pub fn tags(&self) -> Vec<u16> {
        let mut id = Vec::new();
        let mut group = |tags: Vec<u16>| {
            id.push(u16::try_from(tags.len()).unwrap_or(u16::MAX));
            id.extend(tags);
        };
        group(self.published().map(ZoneKey::tag).collect());
        group(self.signing(DNSKEY).map(ZoneKey::tag).collect());
        group(self.signing(DATA).map(ZoneKey::tag).collect());
        id
    }
}

/// Which active keys of `algorithm` sign `rtype`: `Some(true)` the SEP
/// keys, `Some(false)` the others, `None` all of them.
fn sep_signs(keys: &[ZoneKey], algorithm: u8, rtype: u16) -> Option<bool> {
    let active = || {
        keys.iter()
            .filter(move |k| k.active && k.algorithm() == algorithm)
    };
    let any_sep = active().any(ZoneKey::is_sep);
    if KEY_SET_TYPES.contains(&rtype) {
        any_sep.then_some(true)
    } else if active().any(|k| !k.is_sep() && k.settled) {
        Some(false)
    } else if active().any(|k| !k.is_sep()) && any_sep {
        // A ZSK too new for resolvers to hold: the SEP keys sign data too.
        None
    } else if any_sep {
        Some(true)
    } else {
        None
    }
}

/// The wire form of `name` in lower case (RFC 4034 §6.2), as DS digests and
/// signatures take owner names.
pub fn canonical_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for label in name.iter() {
        // A label is at most 63 bytes: its length fits the byte.
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests;

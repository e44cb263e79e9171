//! A service's answers in a zone the TS signs (docs/CONFIG.md (the TS)
//! "Service answers"): each distinct answer set (the live subset, a
//! `weighted` draw, a view's group, `when_all_down`'s every endpoint or
//! fallback CNAME) is signed once, with the zone's keys and the validity of
//! its other signatures ([`rrset_like`]), on the first DO=1 query that
//! gets it, and kept in [`SignedSets`].
//!
//! Why on first use and not at each health change: a `weighted` service
//! with `pick` below its live endpoints has C(n, k) possible sets, most of
//! which may never be drawn; one cache keyed by the set's content (its
//! sorted endpoints) serves every selector alike, and a set that comes back
//! after a health change is found signed already. The first query of a set
//! waits for one signature (tens of microseconds); queries for the same set
//! meanwhile wait for that one signing (a lock per set), never sign it
//! twice. The key also holds the zone's signature [`Stamp`]: when the zone
//! is signed again (refresh, key roll), its sets are signed anew.
//!
//! The bound: [`SignedSets::new`]'s, at least [`MIN_BOUND`] sets; when it
//! is full, the cache is emptied and fills again from the sets in use.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::compiled::Service;
use super::select::MAX_PICK;
use crate::ts::dnssec::keys::ZoneKeys;
use crate::ts::zone::rtype::{A, AAAA, CNAME, RRSIG};
use crate::ts::zone::sign::{rrset_like, rrsig_stamp};
use crate::ts::zone::{RrsetSigner, Stamp, Zone};

/// The least number of signed sets kept.
pub const MIN_BOUND: usize = 4096;

/// One answer set of one service in one signing of its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SetKey {
    service: usize,
    rtype: u16,
    /// The endpoints (indexes into the service's), sorted, then `u16::MAX`.
    members: [u16; MAX_PICK],
    stamp: Stamp,
}

/// The RRSIGs of one answer set, as an answer carries them.
#[derive(Debug)]
pub struct Rrsigs {
    /// How many records `wire` holds.
    pub count: u16,
    /// The RRSIG records, owner a pointer to the question's name.
    pub wire: Vec<u8>,
}

/// One set's slot: empty until signed (a failure leaves it empty).
type Slot = Arc<Mutex<Option<Arc<Rrsigs>>>>;

/// The answer sets signed so far.
#[derive(Debug)]
pub struct SignedSets {
    slots: Mutex<HashMap<SetKey, Slot>>,
    bound: usize,
}

impl SignedSets {
    /// A cache of at most `bound` sets (at least [`MIN_BOUND`]).
    pub fn new(bound: usize) -> SignedSets {
        SignedSets {
            slots: Mutex::new(HashMap::new()),
            bound: bound.max(MIN_BOUND),
        }
    }

    /// The bound a TS of `services` takes: four times the sets that do not
    /// draw (by view and family), at least [`MIN_BOUND`].
    pub fn bound_for(services: &[Service]) -> usize {
        let fixed: usize = services.iter().map(|s| 2 * (1 + s.views.len())).sum();
        fixed.saturating_mul(4).max(MIN_BOUND)
    }

    /// Sets kept now.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The RRSIGs over the answer of service `index` (`service`) in `zone`
    /// (signed by the TS with `keys`): its endpoints `members` as A or AAAA
    /// records (`rtype`), or, with `rtype` CNAME, its fallback. Signed on
    /// first use, then kept. `None` when the zone holds no signature of the
    /// service (not signed here) or the keys cannot sign: the caller
    /// answers from the zone.
    pub fn rrsigs(
        &self,
        zone: &Zone,
        keys: &ZoneKeys,
        (index, service): (usize, &Service),
        rtype: u16,
        members: &[u16],
    ) -> Option<Arc<Rrsigs>> {
        let like = if rtype == CNAME {
            [A, AAAA]
                .into_iter()
                .find(|&t| rrsig_stamp(zone, &service.key, t).is_some())?
        } else {
            rtype
        };
        let stamp = rrsig_stamp(zone, &service.key, like)?;
        let mut sorted = [u16::MAX; MAX_PICK];
        let n = members.len().min(MAX_PICK);
        sorted[..n].copy_from_slice(&members[..n]);
        sorted[..n].sort_unstable();
        let key = SetKey {
            service: index,
            rtype,
            members: sorted,
            stamp,
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if slots.len() >= self.bound && !slots.contains_key(&key) {
                slots.clear();
            }
            Arc::clone(slots.entry(key).or_default())
        };
        let mut signed = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if signed.is_none() {
            *signed = sign(zone, keys, service, (like, rtype), &sorted[..n]).map(Arc::new);
        }
        signed.clone()
    }
}

/// The RRSIGs of the set `members` of `service` (or its fallback, for
/// `rtype` CNAME), made like the zone's over its RRset of `like` there.
fn sign(
    zone: &Zone,
    keys: &ZoneKeys,
    service: &Service,
    (like, rtype): (u16, u16),
    members: &[u16],
) -> Option<Rrsigs> {
    // Each record: owner pointer (2), type, class, TTL, RDLENGTH, RDATA.
    let records: Vec<&[u8]> = if rtype == CNAME {
        vec![service.fallback.as_deref()?]
    } else {
        members
            .iter()
            .filter_map(|&m| service.endpoints.get(usize::from(m)))
            .map(|e| e.record.as_slice())
            .collect()
    };
    let ttl = records
        .first()
        .and_then(|r| r.get(6..10))
        .map_or(0, |t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
    let mut rdatas: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|r| r.get(12..).map(<[u8]>::to_vec))
        .collect();
    // A, AAAA and a lower-cased uncompressed CNAME target are canonical
    // already (RFC 4034 §6.2); the set sorted and without duplicates (§6.3).
    rdatas.sort_unstable();
    rdatas.dedup();
    let signers: Vec<&dyn RrsetSigner> = keys.signing(A).map(|k| k as &dyn RrsetSigner).collect();
    let made = rrset_like(zone, &service.key, like, (rtype, ttl), &rdatas, &signers).ok()?;
    if made.is_empty() {
        return None;
    }
    let mut wire = Vec::with_capacity(made.iter().map(|r| r.len() + 12).sum());
    for rdata in &made {
        wire.extend_from_slice(&[0xC0, 0x0C]);
        wire.extend_from_slice(&RRSIG.to_be_bytes());
        wire.extend_from_slice(&1u16.to_be_bytes());
        wire.extend_from_slice(&ttl.to_be_bytes());
        wire.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        wire.extend_from_slice(rdata);
    }
    Some(Rrsigs {
        count: u16::try_from(made.len()).ok()?,
        wire,
    })
}

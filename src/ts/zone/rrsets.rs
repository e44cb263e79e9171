//! The RRsets of one owner while a zone is built ([`Building`]): each
//! RRSIG group's TTL taken from the set it covers, the owner's entry flags,
//! and the owner's entry written to the arena of `store.rs`
//! ([`push_entry`]).
use hickory_proto::rr::RecordType;

use super::store::{ENTRY_NSEC3, RRSIG, SET_DO_ONLY, StoreBuilder, push_record};
use crate::ts::error::BuildError;

/// Records of one owner and type while a zone is built: their RDATA as
/// (start, length) in the builder's RDATA buffer. The records of one RRset
/// share the lowest TTL among them (RFC 2181 §5.2). RRSIGs are grouped by
/// the type they cover, each group a set served only with DO=1, with the
/// TTL of the RRset it covers (RFC 4035 §2.2: the RRSIG's TTL is its RRset's).
pub(super) struct Building {
    pub(super) rtype: u16,
    /// For RRSIGs, the type covered; 0 otherwise.
    pub(super) covered: u16,
    pub(super) ttl: u32,
    /// Most RRsets hold a record or two: kept inline, no allocation a set.
    pub(super) data: smallvec::SmallVec<[(usize, usize); 2]>,
}

impl Building {
    fn flags(&self) -> u8 {
        if self.rtype == RRSIG { SET_DO_ONLY } else { 0 }
    }
}

/// The entry flags of a name owning `sets`: [`ENTRY_NSEC3`] when it owns
/// NSEC3 records and nothing else but their RRSIGs.
pub(super) fn entry_flags(sets: &[Building]) -> u8 {
    let nsec3 = u16::from(RecordType::NSEC3);
    let only_nsec3 = sets.iter().any(|s| s.rtype == nsec3)
        && sets
            .iter()
            .all(|s| s.rtype == nsec3 || (s.rtype == RRSIG && s.covered == nsec3));
    if only_nsec3 { ENTRY_NSEC3 } else { 0 }
}

/// Gives each RRSIG group the TTL of the RRset it covers at its name (the
/// SOA's, `soa_ttl`, at the apex); a group covering nothing here keeps its own.
pub(super) fn sig_ttls(sets: &mut [Building], soa_ttl: Option<u32>) {
    let soa = u16::from(RecordType::SOA);
    for i in 0..sets.len() {
        if sets[i].rtype != RRSIG {
            continue;
        }
        let covered = sets[i].covered;
        let ttl = sets
            .iter()
            .find(|s| s.rtype == covered && s.rtype != RRSIG)
            .map(|s| s.ttl)
            .or(soa_ttl.filter(|_| covered == soa));
        if let Some(ttl) = ttl {
            sets[i].ttl = ttl;
        }
    }
}

/// Appends an entry for the owner `owner_wire` with `sets` (whose RDATA
/// lies in `rdata`) to the arena.
pub(super) fn push_entry(
    store: &mut StoreBuilder,
    owner_wire: &[u8],
    flags: u8,
    sets: &[Building],
    rdata: &[u8],
) -> Result<(), BuildError> {
    let arena = &mut store.arena;
    let start = arena.len();
    let name_len = u8::try_from(owner_wire.len()).map_err(|_| BuildError::NameTooLong)?;
    let set_count = u16::try_from(sets.len()).map_err(|_| BuildError::TooManyTypes)?;
    arena.push(name_len);
    arena.extend_from_slice(owner_wire);
    let [n0, n1] = set_count.to_be_bytes();
    // Flags, set count and the sets' length (filled in below) at once.
    arena.extend_from_slice(&[flags, n0, n1, 0, 0, 0, 0]);
    let sets_len_at = arena.len() - 4;
    for set in sets {
        let head = arena.len();
        let count = u16::try_from(set.data.len()).map_err(|_| BuildError::RrsetTooLarge)?;
        let [t0, t1] = set.rtype.to_be_bytes();
        let [c0, c1] = count.to_be_bytes();
        // Type, flags, count and the set's length (filled in below).
        arena.extend_from_slice(&[t0, t1, set.flags(), c0, c1, 0, 0, 0, 0]);
        for &(at, len) in &set.data {
            push_record(arena, set.rtype, set.ttl, &rdata[at..at + len]);
        }
        let len = u32::try_from(arena.len() - head - 9).map_err(|_| BuildError::RrsetTooLarge)?;
        arena[head + 5..head + 9].copy_from_slice(&len.to_be_bytes());
    }
    let sets_len =
        u32::try_from(arena.len() - sets_len_at - 4).map_err(|_| BuildError::ZoneTooLarge)?;
    arena[sets_len_at..sets_len_at + 4].copy_from_slice(&sets_len.to_be_bytes());
    if u32::try_from(arena.len()).is_err() {
        arena.truncate(start);
        return Err(BuildError::RecordsOver4G);
    }
    store.rrsets += sets.len();
    Ok(())
}

//! A builder's records compiled owner by owner: each record read
//! ([`PendingRecord`]) sorted to its owner in file order ([`ByOwner`]), the empty
//! non-terminals found, the names below a DNAME refused, and each owner's
//! records checked (one CNAME, no CNAME beside other data, one DNAME) and
//! written as its RRsets into the arena ([`write_owners`]). The first
//! problem in file order is the one reported ([`FirstError`]).
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::encode::same_rdata;
use super::owners::Owners;
use super::rrsets::{Building, entry_flags, push_entry, sig_ttls};
use super::store::{RRSIG, StoreBuilder};
use crate::ts::error::{BuildError, ZoneError};
use crate::ts::wire::NameKey;

/// One record read, waiting for its zone to be compiled.
pub(super) struct PendingRecord {
    pub(super) owner: u32,
    pub(super) rtype: u16,
    pub(super) file: u32,
    pub(super) ttl: u32,
    pub(super) line: u32,
    pub(super) rdata_at: u32,
    pub(super) rdata_len: u16,
}

impl PendingRecord {
    /// Where its RDATA lies in the builder's RDATA buffer: (start, length).
    fn bytes(&self) -> (usize, usize) {
        (self.rdata_at as usize, usize::from(self.rdata_len))
    }
}

/// `files[idx]`, or an empty path when there is none.
pub(super) fn file_of(files: &[PathBuf], idx: usize) -> &Path {
    files.get(idx).map_or(Path::new(""), PathBuf::as_path)
}

/// The first error by position in the records (file order), each at its
/// record's `file:line`.
pub(super) struct FirstError<'a> {
    files: &'a [PathBuf],
    pending: &'a [PendingRecord],
    first: Option<(usize, ZoneError)>,
}

impl<'a> FirstError<'a> {
    /// None yet, among `pending` read from `files`.
    pub(super) fn new(files: &'a [PathBuf], pending: &'a [PendingRecord]) -> Self {
        FirstError {
            files,
            pending,
            first: None,
        }
    }

    /// Notes `reason` at the record `at`, kept if it is the first so far.
    fn keep(&mut self, at: u32, reason: BuildError) {
        let at = at as usize;
        if self.first.as_ref().is_none_or(|(a, _)| at < *a) {
            let p = &self.pending[at];
            let file = file_of(self.files, p.file as usize);
            self.first = Some((at, ZoneError::build(file, p.line as usize, reason)));
        }
    }

    /// The first error noted, if any.
    pub(super) fn result(self) -> Result<(), ZoneError> {
        self.first.map_or(Ok(()), |(_, err)| Err(err))
    }
}

/// The records of each owner, in file order (a counting sort): owner o's
/// run is `by_owner[starts[o]..starts[o + 1]]`, both in one allocation
/// (zeroed), one zone of 100,000 at a time.
pub(super) struct ByOwner {
    sort: Vec<u32>,
    owners: usize,
}

impl ByOwner {
    /// `pending` sorted by its `owners` owners.
    pub(super) fn sort(owners: usize, pending: &[PendingRecord]) -> Self {
        let mut sort = vec![0u32; owners + 1 + pending.len()];
        let (starts, by_owner) = sort.split_at_mut(owners + 1);
        for p in pending {
            starts[p.owner as usize + 1] += 1;
        }
        for i in 0..owners {
            starts[i + 1] += starts[i];
        }
        // Each owner's start is its cursor while its run is filled, and
        // ends as the next owner's start: moved back one place after.
        for (at, p) in pending.iter().enumerate() {
            let o = p.owner as usize;
            by_owner[starts[o] as usize] = at as u32;
            starts[o] += 1;
        }
        starts.copy_within(0..owners, 1);
        starts[0] = 0;
        ByOwner { sort, owners }
    }

    /// The records of owner `o`, as indices in `pending`, in file order.
    pub(super) fn run(&self, o: usize) -> &[u32] {
        let (starts, by_owner) = self.sort.split_at(self.owners + 1);
        &by_owner[starts[o] as usize..starts[o + 1] as usize]
    }
}

/// A builder's records as the steps of [`write_owners`] read them.
pub(super) struct OwnerRecords<'a> {
    pub(super) owners: &'a Owners,
    pub(super) pending: &'a [PendingRecord],
    /// The RDATA of `pending`, one after the other.
    pub(super) rdata: &'a [u8],
    pub(super) by_owner: &'a ByOwner,
}

/// The empty non-terminals of a zone at `origin_key` owning `owners`:
/// ancestors (below the apex) that own nothing, and the apex itself when
/// it owns nothing; lower-cased, sorted, each once.
pub(super) fn empty_non_terminals(owners: &Owners, origin_key: &[u8]) -> Vec<Vec<u8>> {
    let mut empty: Vec<Vec<u8>> = Vec::new();
    for o in 0..owners.spans.len() {
        // Each ancestor strictly between the name and the apex (every
        // owner is at or below it): the name's suffixes at its labels'
        // starts, in place.
        let name = owners.name(o as u32);
        let apex_at = name.len().saturating_sub(origin_key.len());
        let mut at = name.first().map_or(usize::MAX, |&l| 1 + usize::from(l));
        while at < apex_at {
            let up = &name[at..];
            if owners.find(up).is_none() {
                empty.push(up.to_ascii_lowercase());
            }
            at += 1 + usize::from(up[0]);
        }
    }
    if owners.find(origin_key).is_none() {
        empty.push(origin_key.to_vec());
    }
    empty.sort_unstable();
    empty.dedup();
    empty
}

/// Finds the records below a DNAME (RFC 6672 §2.3: no data below a DNAME
/// owner; NSD and Knot refuse such a zone), the apex `apex_labels` labels
/// deep: notes in `errors` the first record of each owner below one, with
/// the DNAME's owner. An owner of NSEC3 records alone (and their RRSIGs)
/// is not data: a signed zone's hashed names sit below an apex DNAME.
pub(super) fn below_dname(
    records: &OwnerRecords<'_>,
    apex_labels: usize,
    errors: &mut FirstError<'_>,
) {
    let OwnerRecords {
        owners, pending, ..
    } = *records;
    let dname = u16::from(RecordType::DNAME);
    let nsec3 = u16::from(RecordType::NSEC3);
    if !pending.iter().any(|p| p.rtype == dname) {
        return;
    }
    let run = |o: usize| records.by_owner.run(o);
    let has_dname: Vec<bool> = (0..owners.spans.len())
        .map(|o| run(o).iter().any(|&at| pending[at as usize].rtype == dname))
        .collect();
    if !has_dname.contains(&true) {
        return;
    }
    for o in 0..owners.spans.len() {
        let run = run(o);
        let Some(&first) = run.first() else {
            continue;
        };
        if run
            .iter()
            .all(|&at| matches!(pending[at as usize].rtype, t if t == nsec3 || t == RRSIG))
        {
            continue;
        }
        let Some(k) = NameKey::read(owners.name(o as u32)) else {
            continue;
        };
        // Each ancestor at or below the apex.
        for skip in 1..=k.labels().saturating_sub(apex_labels) {
            let (_, up) = k.suffix(skip);
            if let Some(a) = owners.find(up).filter(|&a| has_dname[a as usize]) {
                let name = shown(owners.name(a));
                errors.keep(first, BuildError::BelowDname { name });
                break;
            }
        }
    }
}

/// The owner `name` (wire form) as text, `?` if unreadable.
fn shown(name: &[u8]) -> String {
    Name::read(&mut BinDecoder::new(name)).map_or_else(|_| "?".into(), |n| n.to_string())
}

/// What writing the owners gave: the arena, the kinds of names the zone
/// has, and the first record whose TTL differs from its RRset's.
pub(super) struct OwnersWritten {
    pub(super) store: StoreBuilder,
    pub(super) has_delegations: bool,
    pub(super) has_wildcards: bool,
    pub(super) has_dnames: bool,
    /// The first such record: its file (index), line, and what is wrong.
    ttl_mismatch: Option<(u32, u32, String)>,
    /// How many records' TTLs differ from their RRset's.
    ttl_mismatches: usize,
}

/// Writes each owner's RRsets of `records` into an arena, the names of
/// `empty` given room too (the zone's apex at `origin_key`, its SOA's TTL
/// `apex_soa_ttl`): a record that breaks the rules of its owner is left
/// out, its error noted in `errors`.
pub(super) fn write_owners(
    records: &OwnerRecords<'_>,
    origin_key: &[u8],
    apex_soa_ttl: Option<u32>,
    empty: &[Vec<u8>],
    errors: &mut FirstError<'_>,
) -> OwnersWritten {
    let OwnerRecords {
        owners,
        pending,
        rdata,
        by_owner,
    } = *records;
    let mut out = OwnersWritten {
        store: StoreBuilder::default(),
        has_delegations: false,
        has_wildcards: false,
        has_dnames: false,
        ttl_mismatch: None,
        ttl_mismatches: 0,
    };
    // The arena's size, at most (duplicates aside): reserved once, so it
    // is never copied while it grows.
    let most = owners.names.len()
        + owners.spans.len() * 8
        + empty.iter().map(|k| k.len() + 8).sum::<usize>()
        + pending
            .iter()
            .map(|p| 19 + usize::from(p.rdata_len))
            .sum::<usize>();
    out.store.arena.reserve(most);
    let ns = u16::from(RecordType::NS);
    let mut sets: Vec<Building> = Vec::with_capacity(8);
    for o in 0..owners.spans.len() {
        let run = by_owner.run(o);
        let name = owners.name(o as u32);
        let is_apex = name.eq_ignore_ascii_case(origin_key);
        sets.clear();
        for &at in run {
            let p = &pending[at as usize];
            if let Some(reason) = refused(p, &sets, rdata, name, is_apex) {
                errors.keep(at, reason);
                continue;
            }
            out.add_record(&mut sets, p, rdata, name);
        }
        sig_ttls(&mut sets, apex_soa_ttl.filter(|_| is_apex));
        out.has_wildcards |= name.starts_with(&[1, b'*']);
        out.has_delegations |= !is_apex && sets.iter().any(|s| s.rtype == ns);
        out.has_dnames |= sets.iter().any(|s| s.rtype == u16::from(RecordType::DNAME));
        if let Err(reason) = push_entry(&mut out.store, name, entry_flags(&sets), &sets, rdata) {
            errors.keep(run.first().map_or(0, |&a| a), reason);
        }
    }
    out
}

/// Whether the RDATA at `d` is that of `p` (as its type compares them).
fn same_as(p: &PendingRecord, rdata: &[u8], d: &(usize, usize)) -> bool {
    let bytes = p.bytes();
    same_rdata(
        p.rtype,
        &rdata[d.0..d.0 + d.1],
        &rdata[bytes.0..bytes.0 + bytes.1],
    )
}

/// Why the record `p` cannot join `sets`, the RRsets of its owner `name`
/// (the apex or not) so far: a second CNAME or DNAME, or a CNAME beside
/// other data; `None` when it can.
fn refused(
    p: &PendingRecord,
    sets: &[Building],
    rdata: &[u8],
    name: &[u8],
    is_apex: bool,
) -> Option<BuildError> {
    let (cname, dname) = (u16::from(RecordType::CNAME), u16::from(RecordType::DNAME));
    // RRSIG and NSEC may sit beside a CNAME (RFC 4035 §2.5).
    let beside = |t: u16| t == u16::from(RecordType::RRSIG) || t == u16::from(RecordType::NSEC);
    let cnames = sets.iter().find(|s| s.rtype == cname);
    let has_other = sets.iter().any(|s| s.rtype != cname && !beside(s.rtype));
    let twice = |t: u16| {
        sets.iter()
            .find(|s| s.rtype == t)
            .is_some_and(|s| !s.data.iter().any(|d| same_as(p, rdata, d)))
    };
    // The apex always has other data: its SOA (kept apart).
    if p.rtype == cname && twice(cname) {
        Some(BuildError::SecondSingleton {
            name: shown(name),
            rtype: RecordType::CNAME,
        })
    } else if p.rtype == dname && twice(dname) {
        Some(BuildError::SecondSingleton {
            name: shown(name),
            rtype: RecordType::DNAME,
        })
    } else if (cnames.is_some() && !beside(p.rtype)) || (p.rtype == cname && (has_other || is_apex))
    {
        (p.rtype != cname || cnames.is_none())
            .then(|| BuildError::CnameAndOther { name: shown(name) })
    } else {
        None
    }
}

impl OwnersWritten {
    /// Adds the record `p` of owner `name` to its RRset in `sets` (made
    /// when new): the set's TTL the lowest of its records' (a record whose
    /// TTL differs is noted), a record the set holds already left out.
    fn add_record(
        &mut self,
        sets: &mut Vec<Building>,
        p: &PendingRecord,
        rdata: &[u8],
        name: &[u8],
    ) {
        let bytes = p.bytes();
        let covered = if p.rtype == RRSIG {
            rdata
                .get(bytes.0..bytes.0 + 2)
                .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]))
        } else {
            0
        };
        match sets
            .iter_mut()
            .find(|s| s.rtype == p.rtype && s.covered == covered)
        {
            Some(set) => {
                if set.ttl != p.ttl && p.rtype != RRSIG {
                    self.ttl_mismatches += 1;
                    if self.ttl_mismatch.is_none() {
                        let what = format!(
                            "TTL {} differs from the TTL {} of the {} RRset of {} \
                             before it: the RRset is served at the lowest TTL of its \
                             records (RFC 2181 §5.2)",
                            p.ttl,
                            set.ttl,
                            RecordType::from(p.rtype),
                            shown(name)
                        );
                        self.ttl_mismatch = Some((p.file, p.line, what));
                    }
                }
                set.ttl = set.ttl.min(p.ttl);
                if !set.data.iter().any(|d| same_as(p, rdata, d)) {
                    set.data.push(bytes);
                }
            }
            None => sets.push(Building {
                rtype: p.rtype,
                covered,
                ttl: p.ttl,
                data: smallvec::smallvec![bytes],
            }),
        }
    }

    /// The warning about the first record whose TTL differs from its
    /// RRset's (RFC 2181 §5.2), at its `file:line` in `files`, naming how
    /// many such records the zone has.
    pub(super) fn ttl_warning(&self, files: &[PathBuf]) -> Option<String> {
        let (file, line, what) = self.ttl_mismatch.as_ref()?;
        let others = match self.ttl_mismatches {
            1 => String::new(),
            n => format!(" ({n} such records in this zone)"),
        };
        Some(format!(
            "{}:{line}: warning: {what}{others}",
            file_of(files, *file as usize).display()
        ))
    }
}

//! A compiled zone patched for a few changed owners ([`patched`]):
//! what a secondary serves after an IXFR, made without compiling the whole
//! zone again. The changed owners' records are compiled alone (a small
//! [`ZoneBuilder`] zone: the same grouping, TTL and CNAME rules as a full
//! build), then spliced into a copy of the served arena: the entries of
//! unchanged names copied byte for byte in runs, empty non-terminals added
//! or dropped where the changed names need it (RFC 8020), the index and the
//! DNSSEC chains (NSEC order, NSEC3) made again over the bytes. No record is
//! decoded and no name outside the change is interned; the result answers
//! as a full build of the same records does (the property test below).
//! Where that cannot be promised cheaply (a DNAME in either version: its
//! below-DNAME rule spans names; a zone the TS signed or whose SOA it made)
//! it answers `None` and the caller builds the zone whole.
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use super::Zone;
use super::build::ZoneBuilder;
use super::canon;
use super::encode::key_of;
use super::nsec3::Nsec3Chain;
use super::store::{ENTRY_EMPTY, NameEntry, StoreBuilder};
use crate::ts::source::SourceRecord;
use crate::ts::wire::NameKey;

/// An entry with no sets: an empty non-terminal `key` (lower-cased, as
/// the builder writes them).
fn push_empty(arena: &mut Vec<u8>, key: &[u8]) {
    // Keys come from names of at most 255 bytes.
    arena.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
    arena.extend_from_slice(key);
    arena.push(ENTRY_EMPTY);
    arena.extend_from_slice(&0u16.to_be_bytes());
    arena.extend_from_slice(&0u32.to_be_bytes());
}

/// The ancestors of `key` strictly between it and an apex of
/// `apex_labels` labels, nearest first.
fn ancestors(key: &NameKey, apex_labels: usize) -> impl Iterator<Item = &[u8]> {
    (1..key.labels().saturating_sub(apex_labels)).map(move |skip| key.suffix(skip).1)
}

/// Whether the entry holds an NS set (a delegation away from the apex).
fn has_ns(e: &NameEntry<'_>) -> bool {
    e.set(u16::from(RecordType::NS)).is_some()
}

/// `zone` with the records of `owners` replaced by `records` (every
/// record the new version holds at those names, in the order a full
/// build would take them) and its SOA by `soa`: the zone a full build
/// of the new version makes, for a cost that follows the change (see
/// the module's text). `None` when it cannot be patched (a DNAME, a zone
/// signed here or with a synthesized SOA, records a build refuses):
/// build it whole, which also names what is wrong.
pub fn patched(
    zone: &Zone,
    soa: SourceRecord,
    owners: &[Name],
    records: Vec<SourceRecord>,
) -> Option<Zone> {
    if zone.has_dnames || zone.signed.is_some() || zone.soa_synthesized || zone.expired {
        return None;
    }
    let file = PathBuf::from("patch");
    let mut b = ZoneBuilder::new(zone.origin.clone(), records.len() + 1);
    b.add(0, &file, &soa).ok()?;
    for r in &records {
        b.add(0, &file, r).ok()?;
    }
    let mini = b
        .finish(std::slice::from_ref(&file), |_, _| unreachable_soa())
        .ok()?;
    if mini.has_dnames {
        return None;
    }
    let apex_labels = usize::from(zone.origin.num_labels());
    let old = &zone.store;
    // The changed names (the apex always: its RRSIG of the SOA follows
    // the SOA's TTL), and what each is in the new version.
    let mut changed: HashSet<Vec<u8>> = owners.iter().filter_map(|n| key_of(n).ok()).collect();
    changed.insert(zone.origin_key.to_vec());
    let owns = |k: &[u8]| mini.store.get(k).filter(|e| !e.is_empty());
    // Names that may stop existing: a changed name left with no
    // records, and the empty non-terminals above it.
    let mut maybe_gone: HashMap<Vec<u8>, bool> = HashMap::new();
    for k in &changed {
        if owns(k).is_some() || old.get(k).is_none() {
            continue;
        }
        maybe_gone.insert(k.clone(), false);
        if let Some(nk) = NameKey::read(k) {
            for up in ancestors(&nk, apex_labels) {
                if old.get(up).is_some_and(|e| e.is_empty()) {
                    maybe_gone.insert(up.to_vec(), false);
                }
            }
        }
    }
    maybe_gone.remove(&*zone.origin_key);
    if !maybe_gone.is_empty() {
        // Which still have a name below them (one walk of the names).
        let mut mark = |owner: &[u8]| {
            if let Some(nk) = NameKey::read(owner) {
                for up in ancestors(&nk, apex_labels) {
                    if let Some(below) = maybe_gone.get_mut(up) {
                        *below = true;
                    }
                }
            }
        };
        let mut lower = [0u8; 255];
        for e in old.entries().filter(|e| !e.is_empty()) {
            let lower = lower.get_mut(..e.owner.len())?;
            lower.copy_from_slice(e.owner);
            lower.make_ascii_lowercase();
            if !changed.contains(&*lower) {
                mark(lower);
            }
        }
        for e in mini.store.entries().filter(|e| !e.is_empty()) {
            mark(e.owner);
        }
    }
    // Whether `k` is a name of the new version (before new empty
    // non-terminals are added).
    let exists = |k: &[u8]| {
        if changed.contains(k) {
            owns(k).is_some() || maybe_gone.get(k).copied().unwrap_or(false)
        } else {
            old.get(k).is_some() && maybe_gone.get(k).copied().unwrap_or(true)
        }
    };
    let mut new_empty: Vec<Vec<u8>> = Vec::new();
    let mut added_empty: HashSet<Vec<u8>> = HashSet::new();
    for e in mini.store.entries().filter(|e| !e.is_empty()) {
        let Some(nk) = NameKey::read(e.owner) else {
            continue;
        };
        for up in ancestors(&nk, apex_labels) {
            if !exists(up) && added_empty.insert(up.to_vec()) {
                new_empty.push(up.to_vec());
            }
        }
    }
    // The arena offsets of the old entries that change: replaced,
    // dropped or made empty.
    let mut touched: Vec<(u32, Vec<u8>)> = changed
        .iter()
        .chain(maybe_gone.keys())
        .filter_map(|k| old.get_at(k).map(|(_, at)| (at, k.clone())))
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let mut store = StoreBuilder::default();
    store
        .arena
        .reserve(old.arena().len() + mini.store.arena().len());
    let mut rrsets = old.rrsets();
    let mut from = 0usize;
    let mut lost_flag = false;
    for (at, k) in &touched {
        let at = *at as usize;
        store.arena.extend_from_slice(old.arena().get(from..at)?);
        let (e, next) = NameEntry::at(old.arena(), at)?;
        rrsets -= e.sets().count();
        lost_flag |= e.owner.starts_with(b"\x01*") || (has_ns(&e) && **k != *zone.origin_key);
        if let Some(m) = owns(k) {
            push_copy(&mut store.arena, &m);
            rrsets += m.sets().count();
        } else if exists(k) || **k == *zone.origin_key {
            push_empty(&mut store.arena, k);
        }
        from = next;
    }
    store.arena.extend_from_slice(old.arena().get(from..)?);
    // The new names, then the new empty non-terminals.
    for e in mini.store.entries().filter(|e| !e.is_empty()) {
        let mut lower = e.owner.to_vec();
        lower.make_ascii_lowercase();
        if old.get(&lower).is_none() {
            push_copy(&mut store.arena, &e);
            rrsets += e.sets().count();
        }
    }
    if old.get(&zone.origin_key).is_none() && owns(&zone.origin_key).is_none() {
        new_empty.push(zone.origin_key.to_vec());
    }
    new_empty.sort_unstable();
    for k in &new_empty {
        push_empty(&mut store.arena, k);
    }
    u32::try_from(store.arena.len()).ok()?;
    store.rrsets = rrsets;
    let store = store.freeze();
    let (mut has_delegations, mut has_wildcards) = (
        zone.has_delegations || mini.has_delegations,
        zone.has_wildcards || mini.has_wildcards,
    );
    if lost_flag {
        // A wildcard or a delegation changed: whether any is left.
        has_wildcards = false;
        has_delegations = false;
        for e in store.entries() {
            has_wildcards |= !e.is_empty() && e.owner.starts_with(b"\x01*");
            has_delegations |= has_ns(&e) && !e.owner.eq_ignore_ascii_case(&zone.origin_key);
        }
    }
    let nsec = if zone.nsec.is_empty() && mini.nsec.is_empty() {
        Arc::from(Vec::new())
    } else {
        canon::nsec_order(&store)
    };
    let nsec3 = if zone.nsec3.is_none() && mini.nsec3.is_none() {
        None
    } else {
        Nsec3Chain::of(&store, &zone.origin_key)
    };
    let mut patched = Zone {
        nsec,
        nsec3,
        store,
        has_delegations,
        has_wildcards,
        has_dnames: false,
        expired: false,
        ..mini
    };
    patched.compile_soa().ok()?;
    Some(patched)
}

/// A patch is given its SOA: the builder never makes one.
fn unreachable_soa() -> (u32, hickory_proto::rr::rdata::SOA) {
    let root = Name::root();
    (
        0,
        hickory_proto::rr::rdata::SOA::new(root.clone(), root, 0, 0, 0, 0, 0),
    )
}

/// Appends the entry `e` (of another arena) as it is.
fn push_copy(arena: &mut Vec<u8>, e: &NameEntry<'_>) {
    arena.push(u8::try_from(e.owner.len()).unwrap_or(u8::MAX));
    arena.extend_from_slice(e.owner);
    arena.push(e.flags);
    let sets = e.sets().count();
    arena.extend_from_slice(&u16::try_from(sets).unwrap_or(u16::MAX).to_be_bytes());
    arena.extend_from_slice(
        &u32::try_from(e.sets.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    arena.extend_from_slice(e.sets);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::ts::zonefile::parse_zone_file;

    /// Every record a version may hold: names at several depths (empty
    /// non-terminals come and go), case variants, a wildcard, a delegation
    /// and its glue, a CNAME (refused beside data), NSEC and RRSIG records
    /// (a zone signed by its primary), an NSEC3PARAM-less apex.
    const POOL: &str = "$ORIGIN z.test.
$TTL 300
@ SOA ns hostmaster 1 7200 3600 1209600 60
@ NS ns
@ RRSIG SOA 13 2 300 20301231000000 20200101000000 1 z.test. AAAA
@ RRSIG NS 13 2 300 20301231000000 20200101000000 1 z.test. AAAA
@ 60 NSEC a.z.test. NS SOA RRSIG NSEC
ns A 192.0.2.53
a A 192.0.2.1
A 600 A 192.0.2.2
a TXT hello
a NSEC b.a.z.test. A TXT RRSIG NSEC
a RRSIG A 13 3 300 20301231000000 20200101000000 1 z.test. AAAA
b.a A 192.0.2.3
c.b.a A 192.0.2.4
C.B.a AAAA 2001:db8::1
d.c.b.a TXT deep
*.a A 192.0.2.5
*.w A 192.0.2.6
x.y.w A 192.0.2.7
sub NS ns.sub
sub NS ns.elsewhere.
ns.sub A 192.0.2.8
low.deeper.sub A 192.0.2.9
c CNAME a
c A 192.0.2.10
e MX 10 a
e NSEC z.test. MX RRSIG NSEC
f.e TXT below
";

    /// The pool's records, the SOA first.
    fn pool() -> (Name, Vec<SourceRecord>) {
        parse_zone_file(POOL, Path::new("pool"), None).unwrap()
    }

    /// The version holding `pick` of the pool's records (the SOA aside)
    /// with the SOA at `serial`, in the order a secondary builds it (by
    /// lower-cased owner, then as the pool has them).
    fn version(
        all: &[SourceRecord],
        pick: &[bool],
        serial: u32,
    ) -> (SourceRecord, Vec<SourceRecord>) {
        let mut soa = all[0].clone();
        if let hickory_proto::rr::RData::SOA(s) = &mut soa.data {
            s.serial = serial;
        }
        soa.line = 1;
        let mut recs: Vec<SourceRecord> = all[1..]
            .iter()
            .zip(pick)
            .filter(|(_, p)| **p)
            .map(|(r, _)| r.clone())
            .collect();
        recs.sort_by_key(|r| key_of(&r.name).unwrap());
        (soa, recs)
    }

    fn build(origin: &Name, soa: &SourceRecord, recs: &[SourceRecord]) -> Option<Zone> {
        let mut all = vec![soa.clone()];
        all.extend(recs.iter().cloned());
        let (ttl, s) = match &soa.data {
            hickory_proto::rr::RData::SOA(s) => (soa.ttl, s.clone()),
            _ => unreachable!(),
        };
        super::super::build::zone(
            origin.clone(),
            vec![(0, all)],
            &[PathBuf::from("t")],
            |_, _| (ttl, s),
        )
        .ok()
    }

    /// What a zone answers from, arena order aside: each entry by its
    /// lower-cased owner, the counts and flags, the SOA as written, the
    /// NSEC owners in their order, the NSEC3 chain's presence.
    type Shape = (
        BTreeMap<Vec<u8>, (Vec<u8>, u8, Vec<u8>)>,
        (usize, bool, bool, bool, bool, u32, u32),
        (String, Vec<u8>),
        Vec<Vec<u8>>,
        bool,
    );

    fn shape(z: &Zone) -> Shape {
        let entries = z
            .store
            .entries()
            .map(|e| {
                let mut k = e.owner.to_vec();
                k.make_ascii_lowercase();
                (k, (e.owner.to_vec(), e.flags, e.sets.to_vec()))
            })
            .collect();
        let owner = |at: &u32| {
            NameEntry::at(z.store.arena(), *at as usize)
                .unwrap()
                .0
                .owner
                .to_vec()
        };
        (
            entries,
            (
                z.store.rrsets(),
                z.has_delegations,
                z.has_wildcards,
                z.has_dnames,
                z.expired,
                z.serial(),
                z.soa_ttl,
            ),
            (format!("{:?}", z.soa_record), z.negative_soa_sigs.to_vec()),
            z.nsec.iter().map(owner).collect(),
            z.nsec3.is_some(),
        )
    }

    /// Random deltas between random versions of the pool: the patched
    /// zone is the zone a full build makes, and a version a build refuses
    /// is not patched either.
    #[test]
    fn a_patched_zone_is_the_zone_built_whole() {
        let (origin, all) = pool();
        let n = all.len() - 1;
        let mut runner = TestRunner::new(Config {
            cases: 400,
            ..Config::default()
        });
        let strategy = (
            proptest::collection::vec(proptest::bool::weighted(0.6), n),
            proptest::collection::vec(proptest::bool::weighted(0.2), n),
        );
        let counts = std::sync::Mutex::new((0usize, 0usize));
        runner
            .run(&strategy, |(before, flip)| {
                let (soa0, old_recs) = version(&all, &before, 1);
                let Some(old) = build(&origin, &soa0, &old_recs) else {
                    return Ok(());
                };
                let after: Vec<bool> = before.iter().zip(&flip).map(|(b, f)| b ^ f).collect();
                let (soa1, new_recs) = version(&all, &after, 2);
                // The owners of the records that changed.
                let owners: Vec<Name> = all[1..]
                    .iter()
                    .zip(&flip)
                    .filter(|(_, f)| **f)
                    .map(|(r, _)| r.name.clone())
                    .collect();
                let mut lower: HashSet<Vec<u8>> =
                    owners.iter().map(|o| key_of(o).unwrap()).collect();
                lower.insert(key_of(&origin).unwrap());
                let at_owners: Vec<SourceRecord> = new_recs
                    .iter()
                    .filter(|r| lower.contains(&key_of(&r.name).unwrap()))
                    .cloned()
                    .collect();
                let patched = patched(&old, soa1.clone(), &owners, at_owners);
                let whole = build(&origin, &soa1, &new_recs);
                if whole.is_some() {
                    let mut c = counts.lock().unwrap();
                    c.0 += 1;
                    c.1 += usize::from(patched.is_some());
                }
                match (&patched, &whole) {
                    (Some(p), Some(w)) => prop_assert_eq!(shape(p), shape(w)),
                    (Some(_), None) => prop_assert!(false, "patched a version a build refuses"),
                    // Not patched (a DNAME, refused records): built whole.
                    (None, _) => {}
                }
                Ok(())
            })
            .unwrap();
        let (built, patched) = *counts.lock().unwrap();
        assert!(patched * 2 > built, "{patched} of {built} versions patched");
    }

    /// Most deltas of an ordinary zone are patched (the test above is not
    /// passed by answering `None`), and a delta of one name of a large
    /// zone copies the rest without building it.
    #[test]
    fn an_address_changed_in_a_large_zone_is_patched() {
        let origin = Name::from_ascii("big.test.").unwrap();
        let (_, recs) = pool();
        let mut soa = recs[0].clone();
        soa.name = origin.clone();
        let rec = |i: usize, last: u8| SourceRecord {
            name: Name::from_ascii(format!("n{i}.big.test.")).unwrap(),
            ttl: 300,
            data: hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, last)),
            line: 2,
        };
        let old: Vec<_> = (0..5000).map(|i| rec(i, 1)).collect();
        let zone = build(&origin, &soa, &old).unwrap();
        let mut new = old.clone();
        new[4321] = rec(4321, 2);
        new.push(rec(9999, 3));
        let owners = [new[4321].name.clone(), rec(9999, 3).name];
        let patched = patched(
            &zone,
            soa.clone(),
            &owners,
            vec![new[4321].clone(), rec(9999, 3)],
        )
        .expect("patched");
        new.sort_by_key(|r| key_of(&r.name).unwrap());
        assert_eq!(shape(&patched), shape(&build(&origin, &soa, &new).unwrap()));
    }
}

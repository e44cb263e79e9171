//! The zones a reload keeps as served, unread ([`Keepable`]): each served
//! zone made from master files only, all of them unchanged since the last
//! load (their stamps, see `settle.rs`), and no PROJ table or
//! `[[ts.service]]` joining it.
use std::collections::{HashMap, HashSet};

use crate::ts::settings::TsSettings;
use crate::ts::zone::{Catalog, Zone, key_of};
use crate::ts::zonefile;

use super::settle::{FileHash, FileMemo, FileStamp, Includes};

/// What a reload may keep from the last load: its [`FileMemo`], the files'
/// stamps now, and the zones served, with which of them may be kept
/// as they are (a zone signed here or pre-signed is read again: its
/// signatures age; a secondary zone is not the files').
pub(crate) struct Prior<'a> {
    /// The last load's record of the files.
    pub(crate) memo: &'a FileMemo,
    /// The files' stamps taken just before this read.
    pub(crate) stamps: &'a [Option<FileStamp>],
    /// The zones served.
    pub(crate) served: &'a Catalog,
    /// Whether a served zone may be kept.
    pub(crate) keep: &'a dyn Fn(&Zone) -> bool,
}

/// The zones a reload keeps, and the files it need not read for them:
/// borrowed from the zones served and the last load's memo (a reload of
/// 100,000 zones copied each zone three times before it served one).
#[derive(Default)]
pub(super) struct Keepable<'a> {
    /// By file: the index in `zones` of the zone it belongs to, if kept,
    /// and the content it was read with.
    pub(super) by_file: Vec<Option<(usize, FileHash, Includes)>>,
    /// The zones kept, each with its origin (lower-cased wire form) and
    /// the first of its files.
    pub(super) zones: Vec<(&'a Zone, &'a [u8], usize)>,
    /// Their origins, for a changed file that would join one.
    pub(super) origins: HashSet<&'a [u8]>,
}

impl<'a> Keepable<'a> {
    /// What `prior` allows keeping: each served zone made from master files
    /// only, the same files as last time and every one of them unchanged,
    /// with no PROJ table merged into it and no `[[ts.service]]` at or
    /// below its origin (their records are added at load).
    pub(super) fn of(settings: &TsSettings, prior: &Prior<'a>) -> Self {
        let files = settings.zones.len();
        let (memo, now) = (prior.memo, prior.stamps);
        if memo.origins.len() != files || memo.seen.len() != files || now.len() != files {
            return Keepable::default();
        }
        let mut barred: HashSet<Vec<u8>> = HashSet::new();
        if settings.zones.iter().any(|f| !zonefile::is_master_file(f)) {
            let mut origin = settings.origin.clone();
            origin.set_fqdn(true);
            barred.extend(key_of(&origin).ok());
        }
        for s in &settings.services {
            let mut n = s.name.clone();
            loop {
                barred.extend(key_of(&n).ok());
                if n.is_root() || n.num_labels() == 0 {
                    break;
                }
                n = n.base_name();
            }
        }
        // By origin: whether every file of it is unchanged, and its first
        // file; and the origins in file order (the zones kept keep it).
        let mut groups: HashMap<&[u8], (bool, usize)> = HashMap::with_capacity(files);
        let mut order = Vec::with_capacity(files);
        for (i, origin) in memo.origins.iter().enumerate() {
            if let Some(key) = origin {
                let file = &settings.zones[i];
                let same = memo.seen[i]
                    .as_ref()
                    .is_some_and(|s| s.unchanged(file, now[i].as_ref()));
                groups
                    .entry(&key[..])
                    .and_modify(|g| g.0 &= same)
                    .or_insert_with(|| {
                        order.push(&key[..]);
                        (same, i)
                    });
            }
        }
        let mut keep = Keepable {
            by_file: vec![None; files],
            ..Keepable::default()
        };
        let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(order.len());
        for key in order {
            let Some(&(same, first)) = groups.get(key) else {
                continue;
            };
            if !same || barred.contains(key) {
                continue;
            }
            let Some(zone) = prior.served.with_origin(key).filter(|z| (prior.keep)(z)) else {
                continue;
            };
            index.insert(key, keep.zones.len());
            keep.zones.push((zone, key, first));
            keep.origins.insert(key);
        }
        for (i, origin) in memo.origins.iter().enumerate() {
            let zone = origin.as_ref().and_then(|k| index.get(&k[..]).copied());
            keep.by_file[i] = zone
                .zip(memo.seen[i].as_ref())
                .map(|(z, s)| (z, s.content, s.includes.clone()));
        }
        keep
    }
}

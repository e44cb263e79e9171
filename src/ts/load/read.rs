//! A TS's zone files read into zones while nobody rewrites them
//! (`settle.rs`), with the [`FileMemo`] of what was read: at start every
//! file, at a reload only the files of the zones it cannot keep as served
//! (`keep.rs` decides which from the last memo). [`read_files`] is the one
//! place the table server reads its files.
use crate::ts::error::ZoneError;
use crate::ts::settings::TsSettings;
use crate::ts::zone::{Catalog, Zone};

use super::catalog::{LoadedCatalog, load_catalog_keeping};
use super::keep::Prior;
use super::settle::{FileMemo, FileRead, Look, SETTLE, read_settled};

/// What a reload may keep: the last load's memo, the zones served, and
/// which of them may be kept as they are.
pub(crate) struct Served<'a> {
    /// What the last load read of the files.
    pub(crate) memo: &'a FileMemo,
    /// The zones served.
    pub(crate) catalog: &'a Catalog,
    /// Whether a served zone may be kept.
    pub(crate) keep: &'a dyn Fn(&Zone) -> bool,
}

/// Loads the zones of `settings` from their files, read settled: all of
/// them without `served` (a start), else keeping the zones of `served`
/// whose files did not change. `first` is a look at the files just taken
/// (a reload's, which found some changed), the first try's stamps. Zones
/// whose SOA is synthesized get `clock`; the warnings about the files go
/// to `warnings`.
///
/// # Errors
/// The first bad file or line, or files that changed every time they were
/// read: nothing of this load is used.
pub(crate) fn read_files(
    settings: &TsSettings,
    clock: u32,
    warnings: &mut Vec<String>,
    served: Option<Served<'_>>,
    first: Option<Look>,
) -> Result<(LoadedCatalog, FileMemo), ZoneError> {
    // A start keeps nothing: its first try needs no look before the read.
    let first = first.or_else(|| served.is_none().then(|| Look::blind(settings.zones.len())));
    let (mut loaded, seen) = read_settled(
        &settings.name,
        &settings.zones,
        SETTLE,
        first,
        |now| {
            warnings.clear();
            let prior = served.as_ref().map(|s| Prior {
                memo: s.memo,
                stamps: now,
                served: s.catalog,
                keep: s.keep,
            });
            load_catalog_keeping(settings, clock, warnings, prior).map(with_contents)
        },
        std::thread::sleep,
    )?;
    let origins = std::mem::take(&mut loaded.origins);
    Ok((loaded, FileMemo { seen, origins }))
}

/// A load's result with each file read taken out, as [`read_settled`]
/// wants it.
fn with_contents(mut l: LoadedCatalog) -> (LoadedCatalog, Vec<Option<FileRead>>) {
    let contents = std::mem::take(&mut l.contents);
    (l, contents)
}

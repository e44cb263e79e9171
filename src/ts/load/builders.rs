//! A load's files read in their order into one [`ZoneBuilder`] per zone
//! origin ([`Builders`]): PROJ tables share the TS's origin and are
//! compiled line by line as they are read; each master file brings its
//! own, read and parsed a batch at a time on every core ([`MasterFiles`]).
//! A file whose zone a reload keeps is not read.
use std::collections::VecDeque;
use std::path::Path;

use hickory_proto::rr::Name;

use crate::ts::clock::now_u32;
use crate::ts::dnssec::presigned;
use crate::ts::error::ZoneError;
use crate::ts::settings::TsSettings;
use crate::ts::source::read_bytes_into;
use crate::ts::zone::{ZoneBuilder, key_of};
use crate::ts::{table, zonefile};

use super::keep::Keepable;
use super::origins::ByOrigin;
use super::parse::{Parsed, parse_asked, parse_file, parse_file_or_ask};
use super::settle::{FileHash, FileRead, Includes, content};
use super::spread;

/// By builder (or zone): the first master file and the first PROJ table
/// in it, as indices in the TS's list of files.
pub(super) type Sources = Vec<(Option<usize>, Option<usize>)>;

/// The files read so far: their builders, and what the next reload needs
/// of each file.
pub(super) struct Builders {
    /// One a zone origin. In one vector, not boxed one by one: 100,000
    /// boxes freed after the compile left their memory in the middle of the
    /// heap, kept (the parsed file is boxed instead, for its moves between
    /// threads).
    pub(super) builders: Vec<ZoneBuilder>,
    /// By builder: its first master file and first PROJ table.
    pub(super) sources: Sources,
    /// By origin (lower-cased), the builder's index: a TS of 100,000 zones
    /// finds each file's builder at once, not by a scan of those before it.
    pub(super) by_origin: ByOrigin,
    /// By file: the origin of a master file's zone (lower-cased wire form).
    pub(super) file_origins: Vec<Option<Box<[u8]>>>,
    /// By file: the content read, or the one a kept zone was made of.
    pub(super) contents: Vec<Option<FileRead>>,
}

impl Builders {
    /// Room for a zone a file at once (a TS of 100,000 zones copied its
    /// builders, each a few hundred bytes, at every doubling).
    pub(super) fn with_room(files: usize) -> Self {
        Builders {
            builders: Vec::with_capacity(files),
            sources: Vec::with_capacity(files),
            by_origin: ByOrigin::with_capacity(files),
            file_origins: Vec::with_capacity(files),
            contents: Vec::with_capacity(files),
        }
    }

    /// Reads every file of `settings` in order into its zone's builder,
    /// but those of the zones `keep` holds, master files on `threads`
    /// threads; false when a file read joins a zone `keep` holds (the load
    /// must keep nothing).
    ///
    /// # Errors
    /// The first bad file or line in file order.
    pub(super) fn read_all(
        &mut self,
        settings: &TsSettings,
        warnings: &mut Vec<String>,
        keep: &Keepable<'_>,
        threads: usize,
    ) -> Result<bool, ZoneError> {
        let mut table_origin = settings.origin.clone();
        table_origin.set_fqdn(true);
        let mut masters = MasterFiles::new(settings, keep, threads);
        for (i, file) in settings.zones.iter().enumerate() {
            if let Some(Some((k, seen, includes))) = keep.by_file.get(i) {
                self.note_kept(keep.zones[*k].1, *seen, includes.clone());
            } else if masters.is_master(i) {
                let parsed = masters.parsed(i)?;
                if !self.add_master(i, file, parsed, warnings, keep)? {
                    return Ok(false);
                }
            } else {
                self.add_table(i, file, &table_origin, settings.ttl)?;
            }
        }
        Ok(true)
    }

    /// Notes a file unchanged whose zone (at `origin`) is kept: not read
    /// (the files it includes, unchanged too, noted again).
    fn note_kept(&mut self, origin: &[u8], seen: FileHash, includes: Includes) {
        self.file_origins.push(Some(origin.into()));
        self.contents
            .push(Some(FileRead::known(seen).including(includes)));
    }

    /// Adds the master file `file` (index `i`), `parsed`, to its zone's
    /// builder: the one made where it was parsed for a new zone, else its
    /// records added again to the zone another file began; with its
    /// warnings (a zone signed in its file's too). False when it joins a
    /// zone `keep` holds.
    fn add_master(
        &mut self,
        i: usize,
        file: &Path,
        parsed: Box<Parsed>,
        warnings: &mut Vec<String>,
        keep: &Keepable<'_>,
    ) -> Result<bool, ZoneError> {
        let Parsed {
            read,
            origin,
            key,
            records,
            built,
            signed,
            warnings: noted,
        } = *parsed;
        self.contents.push(Some(read));
        warnings.extend(noted);
        if key.as_ref().is_some_and(|k| keep.origins.contains(&k[..])) {
            return Ok(false);
        }
        let known = key
            .as_deref()
            .and_then(|k| self.by_origin.get(&self.builders, k));
        // A zone that is not signed in its file (most) has nothing to
        // warn of, nor any NSEC3 parameters.
        if !signed.is_empty() {
            warnings.extend(presigned::warnings(file, &signed, now_u32()));
            warnings.extend(presigned::nsec3_params(file, &origin, &signed)?);
        }
        let b = match (known, built, &key) {
            // A new zone: the builder made where the file was parsed.
            (None, Some(built), Some(_)) => self.push_builder(built?),
            _ => {
                let b = self.builder_for(
                    (&origin, key.as_deref()),
                    (records.len(), records.data_len()),
                );
                let builder = &mut self.builders[b];
                builder.reserve_rdata(records.rdata_len());
                for (n, rec) in records.iter().enumerate() {
                    builder.add_read(i, records.file_of(n).unwrap_or(file), &rec)?;
                }
                b
            }
        };
        self.sources[b].0.get_or_insert(i);
        self.file_origins.push(key);
        Ok(true)
    }

    /// Adds the PROJ table `file` (index `i`) to the builder of
    /// `table_origin`, the TS's, its records at `ttl`: read once, parsed,
    /// and fingerprinted from the same bytes.
    fn add_table(
        &mut self,
        i: usize,
        file: &Path,
        table_origin: &Name,
        ttl: u32,
    ) -> Result<(), ZoneError> {
        let mut bytes = Vec::new();
        let opened = read_bytes_into(file, &mut bytes)?;
        self.contents
            .push(Some(FileRead::read(content(&bytes), opened)));
        self.file_origins.push(None);
        let b = self.builder_for((table_origin, None), (0, 0));
        self.sources[b].1.get_or_insert(i);
        let builder = &mut self.builders[b];
        table::visit_table_bytes(&bytes, file, table_origin, ttl, |rec| {
            builder.add(i, file, &rec)
        })
    }

    /// The builder of the zone at `origin` (whose key is `key`, when made
    /// already), made with room for `records` records of `rdata` bytes
    /// when new.
    fn builder_for(
        &mut self,
        (origin, key): (&Name, Option<&[u8]>),
        (records, rdata): (usize, usize),
    ) -> usize {
        let key = match key {
            Some(k) => k.to_vec(),
            None => key_of(origin).unwrap_or_else(|_| vec![0]),
        };
        if let Some(b) = self.by_origin.get(&self.builders, &key) {
            return b;
        }
        self.push_builder(ZoneBuilder::with_room(origin.clone(), key, records, rdata))
    }

    /// Adds `builder`, a new zone's, and returns its index.
    fn push_builder(&mut self, builder: ZoneBuilder) -> usize {
        self.builders.push(builder);
        self.by_origin
            .insert(&self.builders, self.builders.len() - 1);
        self.sources.push((None, None));
        self.builders.len() - 1
    }
}

/// The master files of a load, read, parsed and each made into its zone's
/// builder on every core the process may use, a batch at a time (a batch
/// waits here as records and builders); taken in file order, so the error
/// returned is the first in file order, as when one thread reads them all.
struct MasterFiles<'s, 'k> {
    settings: &'s TsSettings,
    /// The zones a reload keeps: their files are not read.
    keep: &'s Keepable<'k>,
    /// By file: whether it is a master file.
    master: Vec<bool>,
    /// The threads a batch is read on.
    threads: usize,
    /// The files a batch holds at most.
    batch: usize,
    /// The files of the batch read and not taken yet, in file order.
    parsed: VecDeque<(usize, Result<Box<Parsed>, ZoneError>)>,
}

impl<'s, 'k> MasterFiles<'s, 'k> {
    /// The master files of `settings` but those of the zones in `keep`,
    /// read on `threads` threads.
    fn new(settings: &'s TsSettings, keep: &'s Keepable<'k>, threads: usize) -> Self {
        MasterFiles {
            settings,
            keep,
            master: (settings.zones.iter())
                .map(|f| zonefile::is_master_file(f))
                .collect(),
            threads,
            batch: 64 * threads,
            parsed: VecDeque::new(),
        }
    }

    /// Whether the file `i` is a master file.
    fn is_master(&self, i: usize) -> bool {
        self.master[i]
    }

    /// Whether the file `i` is read here: a master file whose zone is not kept.
    fn to_read(&self, i: usize) -> bool {
        self.master[i] && !matches!(self.keep.by_file.get(i), Some(Some(_)))
    }

    /// The master file `i` read and parsed: taken from the batch read,
    /// the batch from `i` on read first when it does not begin at `i`.
    fn parsed(&mut self, i: usize) -> Result<Box<Parsed>, ZoneError> {
        if self.parsed.front().is_none_or(|(at, _)| *at != i) {
            self.read_batch(i);
        }
        match self.parsed.pop_front() {
            Some((_, read)) => read,
            None => parse_file(i, &self.settings.zones[i], &self.settings.origin),
        }
    }

    /// Reads the next batch of the files to read from `i` on. A file the
    /// disk must read is asked for and read after the rest of its batch
    /// (the kernel reads it meanwhile).
    fn read_batch(&mut self, i: usize) {
        let settings = self.settings;
        let next: Vec<usize> = (i..settings.zones.len())
            .filter(|&j| self.to_read(j))
            .take(self.batch)
            .collect();
        self.parsed = spread::in_parallel_later(
            next,
            self.threads,
            |j| {
                parse_file_or_ask(j, &settings.zones[j], &settings.origin)
                    .map(|parsed| (j, parsed))
                    .map_err(|asked| (j, asked))
            },
            |(j, asked)| {
                (
                    j,
                    parse_asked(j, &settings.zones[j], asked, &settings.origin),
                )
            },
        )
        .into();
    }
}

//! Loading a TS's zone files: at start every file, at a reload only the
//! files of the zones it cannot keep as served, read while nobody rewrites
//! them, compiled into a [`Catalog`](crate::ts::zone::Catalog), and the
//! version of each zone a reload then serves.
//!
//! # Map
//! A reload walks these rooms in this order; none imports an item defined
//! here (this file holds only the map and what the folder exports).
//! - `read.rs`: [`read_files`], the one place the table server reads its
//!   files: the load below, tried until the files held still;
//! - `settle.rs`: files read only while nobody rewrites them ([`Look`]),
//!   and what a load saw of each for the next reload ([`FileMemo`]);
//! - `catalog.rs`: the zone files compiled into zones ([`load_catalog`]),
//!   in steps: the files read into builders, the service answers added,
//!   each zone finished, the kept zones and the catalog zone added, a zone
//!   below a signed one with no delegation to it refused (`cuts.rs`);
//!   `keep.rs`: the zones a reload keeps unread; `builders.rs`: the files
//!   read in order into one builder per zone origin, master files a batch
//!   at a time on every core; `parse.rs`: one master file read and parsed
//!   (on any thread); `moved.rs`: the last memo carried over to a list
//!   of files a reload changed;
//! - `origins.rs`: the load's zone builders by origin; `services.rs`: the
//!   `[[ts.service]]` names put into their zones;
//! - `bytes.rs`: a file's bytes as a load reads them (one buffer a thread;
//!   a file not in memory asked of the kernel and read later); `fds.rs`:
//!   the descriptors a load keeps open, within a share of the limit;
//!   `spread.rs`: the load's work spread over the cores;
//! - `versions.rs`: [`versions`], which version of each zone read a
//!   reload serves (kept, raised, or signed again).
//!
//! A reload leaves the folder only for what it must: `table/` and
//! `zonefile/` (the two formats), `zone/` (compiling a zone),
//! `dnssec/` (pre-signed checks, keys, signing), `source.rs` (a file's
//! bytes and records) and `error.rs` (the `file:line` errors).
mod builders;
mod bytes;
mod catalog;
mod cuts;
mod fds;
mod keep;
mod moved;
mod origins;
mod parse;
mod read;
mod services;
mod settle;
mod spread;
mod versions;

pub(crate) use catalog::LoadedCatalog;
pub use catalog::{load_catalog, load_catalog_noting};
pub(crate) use moved::remapped;
pub(crate) use read::{Served, read_files};
pub(crate) use settle::{FileMemo, Look};
pub(crate) use versions::{Versions, ZoneKeyMap, versions};

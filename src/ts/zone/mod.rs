//! Zones in memory, compiled to wire format, and authoritative lookup.
//!
//! A [`Zone`] keeps its records the way they leave the server: at load (and
//! reload) every RRset is encoded once into one byte arena per zone, each
//! record as its wire form minus the owner (type, class, TTL, RDLENGTH,
//! RDATA, names uncompressed). A name is stored once, as first written, next
//! to its RRsets; an open-addressing table of `u32` offsets into the arena
//! finds it by its lower-cased wire form. Nothing else is kept per name, so
//! a million-name table costs a few tens of bytes a name, and a lookup
//! neither allocates nor decodes.
//!
//! [`write::answer`] turns a question into the answer, authority and
//! additional sections by copying those bytes behind a compression pointer
//! to the owner (the question's name, a CNAME target or an NS target written
//! earlier in the same message), following RFC 1034 §4.3.2 (delegations,
//! CNAME chains, wildcards), RFC 2308 (SOA in negative answers), RFC 8020
//! (empty non-terminals answer NODATA) and RFC 8482 (a UDP question for ANY
//! gets one RRset). Each RRset carries a flags byte; [`SET_DO_ONLY`] is
//! reserved for the records a signed zone serves only to DO=1 queries
//! (RRSIGs beside an answer, NSEC/NSEC3 proofs beside a negative), so those
//! variants need no second layout.
//! A [`Catalog`] is the set of zones one TS serves.
//!
//! # Map
//! - this file: the folder's map, its rooms and what they export;
//! - `zone.rs`: the [`Zone`] type, its accessors (its [`Signature`], whether
//!   its files signed it, its data's digest), [`Written`], and what the
//!   writer and the prover both ask of a zone (where the origin ends a
//!   question's name, a missing name's closest encloser, the CNAME bound);
//!   `Zone`'s only inherent impl: each room below acts on a zone through
//!   free functions taking `&Zone` (`write::answer(zone, ..)`);
//! - `store.rs`: the arena and its index (the layout, read);
//! - `encode.rs`: names and RDATA as the arena keeps them; `owners.rs`: a
//!   zone's owner names while it is built;
//! - `build.rs`: [`ZoneBuilder`] and [`build::zone`], records to arena, typed
//!   [`BuildError`](crate::ts::error::BuildError)s at `file:line`;
//!   `by_owner.rs`: its records sorted by owner, checked and written owner
//!   by owner; `rrsets.rs`: an owner's RRsets while it is built, written as
//!   its entry;
//! - `write.rs`: the answer writer ([`write::answer`]): data, CNAME
//!   chains, referrals, wildcards, negative answers;
//! - `dname.rs`: DNAME redirection (RFC 6672) for the writer;
//! - `patch.rs`: a zone patched for a few changed owners
//!   ([`patch::patched`]: a secondary after an IXFR);
//! - `proof.rs`: DNSSEC for DO=1 queries: RRSIGs beside RRsets, NSEC
//!   proofs of negative and wildcard answers and of delegations;
//! - `soa.rs`: the SOA as answers write it, its names compressed;
//! - `canon.rs`: canonical name order and the NSEC owners sorted in it;
//!   `canonical_rdata.rs`: the canonical form of RDATA (RFC 4034 §6.2),
//!   which the builder's duplicate check and the signer both use;
//! - `sign/`: signing a compiled zone ([`sign::zone`]), an RRset signed
//!   after it as the zone signed its own there ([`sign::rrset_like`]: a
//!   service's answer sets), and `signature.rs`
//!   what a zone the TS signed remembers of it ([`Signature`]);
//! - `nsec3.rs`: the NSEC3 chain: hashing, owners sorted by hash;
//! - `transfer.rs`: the records as zone transfers read them
//!   ([`transfer::record_at`] behind a [`Cursor`]), and the difference
//!   between two versions ([`transfer::diff`]), made of [`rrlist`]'s
//!   record lists (which the IXFR journal keeps);
//! - `catalog.rs`: [`Catalog`].
pub mod build;
mod by_owner;
mod canon;
mod canonical_rdata;
mod catalog;
mod dname;
mod encode;
#[cfg(test)]
mod fixtures;
mod nsec3;
mod owners;
pub mod patch;
mod proof;
mod queries;
pub mod rrlist;
mod rrsets;
pub(crate) mod rtype;
pub mod sign;
mod signature;
mod soa;
mod store;
pub mod transfer;
pub mod write;
mod zone;

pub use build::ZoneBuilder;
pub use catalog::Catalog;
pub(crate) use encode::{in_zone, key_of};
pub(crate) use nsec3::{ITERATIONS_MAX as NSEC3_ITERATIONS_MAX, owner_hash};
pub use queries::{ZONE_RCODES, ZoneQueries};
pub use sign::{Keys, RrsetSigner, SignError, Stamp};
pub use signature::Signature;
pub use store::SET_DO_ONLY;
pub(crate) use store::hash as key_hash;
pub use transfer::{Cursor, TransferRecord, Unreadable};
pub use write::Question;
use zone::MAX_CNAME_CHAIN;
pub use zone::{Written, Zone};

//! DNSSEC at the TS, but the signing of a compiled zone itself (that is
//! `zone/sign/`, beside the arena it signs): which zones the TS signs and
//! how, the keys, what is said of a zone signed before it is loaded, and the
//! DS records for the parent.
//!
//! # Map
//! - [`policy`]: which zones a TS signs (`dnssec` in `[[ts]]`), with which
//!   keys, and the serial a signed zone takes;
//! - [`keys`]: keys in BIND's files (`K<zone>+<alg>+<tag>.key/.private`),
//!   their timing metadata (publish, activate, retire, delete), one folder
//!   lock, ring's ECDSA P-256 and Ed25519;
//! - [`ds`]: a zone's DS records as `dnssec-dsfromkey -2` prints them;
//! - `presigned.rs`: what loading and `dnslb check` say of a zone signed in
//!   its files (signatures expired or expiring, a broken NSEC/NSEC3 chain,
//!   the NSEC3 iteration rules).
pub mod ds;
pub mod keys;
pub mod policy;
pub(crate) mod presigned;

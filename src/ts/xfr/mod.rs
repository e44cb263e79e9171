//! Zone transfers and what goes with them, the TS's side (as Knot's
//! `nameserver/{axfr,ixfr,notify}`): what a secondary replicates and how it
//! hears of a change.
//!
//! # Map
//! - [`axfr`]: a transfer's messages (AXFR, RFC 5936; an IXFR's changes or
//!   the whole zone), built one at a time, and the bound on transfers at
//!   once;
//! - [`ixfr`]: the IXFR journal (RFC 1995): the differences between the
//!   last versions of each zone and the choice an IXFR request gets (the
//!   record lists a difference is made of are zone/'s: `zone/rrlist.rs`);
//! - [`tsig`]: the transfer key (`xfr_key`) and its policy: which requests
//!   must be signed, what a failed check is answered
//!   ([`tsig::TsigVerdict::of`]), a transfer's messages signed in turn;
//! - [`notify`]: NOTIFY to the secondaries: [`notify::policy`] its
//!   decisions (back-off, replies, one pending NOTIFY per zone and
//!   secondary), [`notify::task`] the one task that sends them.
pub mod axfr;
pub mod ixfr;
pub mod notify;
pub mod tsig;

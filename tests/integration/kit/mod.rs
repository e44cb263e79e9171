//! The test kit every integration module uses, so that no module carries
//! its own copy of a client, a server starter or a fake:
//!
//! * [`client`]: queries, UDP/TCP asks, reading answers.
//! * [`children`]: `dnslb` processes: readiness, the log of `up`, `/proc`.
//! * [`conf`]: the TOML tables of the configs process tests write.
//! * [`dnstap`]: `fstrm_capture` as a collector, `dnstap-read` and
//!   `dnstap-ldns` reading what it wrote.
//! * [`servers`]: a TS and an LS in the test process ([`TestTs`], [`TestLs`]).
//! * [`procs`]: child processes stopped by PID ([`Proc`]), `dnslb` as a
//!   process, free ports, polling with a deadline.
//! * [`fakes`]: fake backends answering, silent or stalled.
//! * [`http`]: GET over HTTP/1.1 and `/metrics` parsed.
//! * [`env`]: fixtures, installed programs, skipping what cannot run.
//! * [`signed`]: zones signed by the real DNSSEC tools as the test runs.
//! * [`rrsets`]: two answers compared RRset by RRset, printed like `dig`.
//! * [`nsd`]: NSD as a reference primary or a secondary ([`Nsd`]).
//! * [`load`]: the one load policy: [`heavy`] tests (floods, 400,000
//!   queries, 200,000-name zones) hold it exclusively, tests asserting a
//!   wall-clock upper bound hold it shared ([`timed`]), so no upper bound is
//!   ever measured beside a load test.
//!
//! Everything is re-exported here: `use crate::kit::{...}`.
pub mod children;
pub mod client;
pub mod conf;
pub mod dnstap;
pub mod env;
pub mod fakes;
pub mod http;
pub mod load;
pub mod nsd;
pub mod procs;
pub mod rrsets;
pub mod servers;
pub mod signed;

pub use children::*;
pub use client::*;
pub use conf::*;
pub use dnstap::*;
pub use env::*;
pub use fakes::*;
pub use http::*;
pub use load::*;
pub use nsd::Nsd;
pub use procs::*;
pub use rrsets::*;
pub use servers::*;
pub use signed::*;

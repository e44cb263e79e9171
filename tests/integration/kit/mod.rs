//! The test kit every integration module uses: every helper that more than
//! one test file needs lives here, and a test file imports helpers only from
//! here, never from another test file (held by `test_tree.rs`). A helper
//! one file alone needs stays in it: some files keep a local `ask` or
//! `start_ts` fitted to their case (a `dnslb ts` child with that file's
//! config, an answer with its timing), most of them thin over the kit's.
//!
//! * [`client`]: queries, UDP/TCP asks, reading answers.
//! * [`children`]: `dnslb` processes: readiness, the log of `up`, `/proc`.
//! * [`commands`]: `dnslb` children from a command line or a config, as the
//!   peer and transfer tests run them (through `ip netns exec`, `ts -c
//!   --name`, `ls -c`), the `backend down` log line, [`PeerView`].
//! * [`conf`]: the TOML tables of the configs process tests write.
//! * [`dnstap`]: `fstrm_capture` as a collector, `dnstap-read` and
//!   `dnstap-ldns` reading what it wrote.
//! * [`servers`]: a TS and an LS in the test process ([`TestTs`], [`TestLs`]).
//! * [`service_ts`]: a TS with `[[ts.service]]`s in the test process, its
//!   checker running ([`ServiceTs`]).
//! * [`procs`]: child processes stopped by PID ([`Proc`]), `dnslb` as a
//!   process, free ports, polling with a deadline, a peer program serving
//!   one zone ([`ZoneServer`]: gdnsd's and PowerDNS's).
//! * [`fakes`]: fake backends answering, silent or stalled.
//! * [`checker`]: the TS's endpoint checker in the test process over
//!   [`endpoints`]: targets, labels, its counters and live sets (not
//!   re-exported: `use crate::kit::checker::...`).
//! * [`hostile`]: a hostile primary for transfers (cut, unapplicable,
//!   TSIG failing mid-stream, a length that lies).
//! * [`endpoints`]: service endpoints for health checks (TCP, HTTP, DNS),
//!   killed and brought back.
//! * [`http`]: GET over HTTP/1.1 and `/metrics` parsed.
//! * [`env`]: fixtures, installed programs, skipping what cannot run
//!   (`or_skip!`: the skip in one line), the peer tests' probe questions.
//! * [`signed`]: zones signed by the real DNSSEC tools as the test runs,
//!   and `dig AXFR`'s output as a zone file for their verifiers.
//! * [`recipes`]: the docs' fenced blocks and the claims of a command's
//!   comment, DEPLOY.md's recipes walked as an operator would (not
//!   re-exported: `use crate::kit::recipes::...`).
//! * [`rrsets`]: two answers compared RRset by RRset, printed like `dig`.
//! * [`knot`]: Knot DNS as a primary or a secondary ([`Knot`]).
//! * [`nsd`]: NSD as a reference primary or a secondary ([`Nsd`]).
//! * [`unbound`]: Unbound as a stub-zone resolver or from any config
//!   ([`Unbound`]).
//! * [`gdnsd`], [`pdns`]: gdnsd (`multifo` over `tcp_connect`) and PowerDNS
//!   (an `ifportup` LUA record) answering by their endpoints' health
//!   ([`Gdnsd`], [`Pdns`]).
//! * [`quic`]: a raw DoQ client (quinn) reading an answer's every
//!   message, and dnspython with aioquic (not re-exported: `use
//!   crate::kit::quic::...`).
//! * [`zero_rtt`]: a QUIC client that resumes and sends 0-RTT, counting the
//!   certificates it was shown, and a relay holding back the client's half
//!   of a handshake (not re-exported: `use crate::kit::zero_rtt::...`).
//! * [`tls`]: DoT and DoH clients, a test PKI, `curl` (not re-exported:
//!   its names are DoT's `ask` and `connect`; use `kit::tls::...`).
//! * [`xfr`]: `dnslb ts` as a child process with a PROJ table, and its
//!   NOTIFY log read.
//! * [`dnssec`]: the differential DNSSEC cases, trust anchors and `delv`.
//! * [`netns`]: network namespaces a test makes, veth links, a thread's
//!   sockets inside one (a closure run there: [`in_netns`]), and BIRD 2
//!   run inside one ([`Bird`]).
//! * [`fleet`]: an anycast fleet in namespaces: the router and LS hosts
//!   running BIRD, a checker validating every answer, dnsperf inside a
//!   namespace (not re-exported: `use crate::kit::fleet::...`).
//! * [`load`]: the one load policy: [`heavy`] tests (floods, 400,000
//!   queries, 200,000-name zones) hold it exclusively, tests asserting a
//!   wall-clock upper bound hold it shared ([`timed`]), so no upper bound is
//!   ever measured beside a load test.
//!
//! Everything is re-exported here: `use crate::kit::{...}`.
pub mod checker;
pub mod children;
pub mod client;
pub mod commands;
pub mod conf;
pub mod dnsdist;
pub mod dnssec;
pub mod dnstap;
pub mod endpoints;
pub mod env;
pub mod fakes;
pub mod fleet;
pub mod gdnsd;
pub mod hostile;
pub mod http;
pub mod knot;
pub mod load;
pub mod netns;
pub mod nsd;
pub mod pdns;
pub mod procs;
pub mod quic;
pub mod recipes;
pub mod rrsets;
pub mod servers;
pub mod service_ts;
pub mod signed;
pub mod tls;
pub mod unbound;
pub mod xfr;
pub mod zero_rtt;

pub use children::*;
pub use client::*;
pub use commands::*;
pub use conf::*;
pub use dnsdist::Dnsdist;
pub use dnssec::*;
pub use dnstap::*;
pub use endpoints::*;
pub use env::*;
pub use fakes::*;
pub use gdnsd::{Gdnsd, GdnsdChecks};
pub use http::*;
pub use knot::Knot;
pub use load::*;
pub use netns::{Netns, RecipeNetns, enter_netns, in_netns, netns_or_skip};
pub use nsd::Nsd;
pub use pdns::Pdns;
pub use procs::*;
pub use rrsets::*;
pub use servers::*;
pub use service_ts::ServiceTs;
pub use signed::*;
pub use unbound::{Unbound, spawn_unbound};
pub use xfr::*;

//! The upstream core: what both LS drivers use to ask a backend and to judge
//! its answer. The drivers are [`super::udp_path`] (the UDP fast path: one
//! worker per client socket, sync, no allocation per query) and
//! [`shared`] (async: TCP clients' queries and health probes); they
//! own their waiting and timing, the rules live here, once:
//!
//! - [`accept`]: the RFC 5452 check of a response against the query it
//!   answers (ID, source, question), one [`DropReason`] per reason, counted in
//!   [`DropCounters`] the same on every path (UDP fast path, async pool,
//!   TCP connections).
//! - [`ids`]: which IDs are in use on an upstream socket ([`ids::Ids`]),
//!   and the late entry ([`ids::LateEntry`]) of a query whose asker stopped
//!   waiting: settled at its deadline, its answer counted `late` (not as a
//!   forgery) until [`LATE_GRACE`] past it.
//! - [`mailbox`]: the one-shot channel an async exchange waits on for its
//!   answer, its box reused per thread.
//! - [`sockets`]: opening an upstream UDP socket on a random port
//!   ([`sockets::open`]), the address [`Family`] (one socket index for v4
//!   and v6), and the rotation of worn sockets after about [`ROTATE_AFTER`]
//!   queries ([`sockets::Sockets`], [`wear_budget`]).
//! - [`tcp`]: TCP exchanges over reused connections ([`TcpConns`]): the
//!   pool and a query's tries in `tcp/mod.rs`, one connection in
//!   `tcp/conn.rs`, one backend's connections and their readers in
//!   `tcp/lane.rs`, the pure decisions in `tcp/policy.rs`.
//! - [`secure`]: a backend reached over TLS or QUIC ([`SecureLink`]).
//! - [`error`]: [`UpstreamError`], why an exchange gave no response.
//!
//! Each item is re-exported here; the files import one another, never this
//! module.
pub mod accept;
pub mod error;
pub mod ids;
pub mod mailbox;
pub mod secure;
pub mod shared;
pub mod sockets;
pub mod tcp;

pub use accept::{DropCounters, DropReason};
pub use error::UpstreamError;
pub use ids::LATE_GRACE;
pub use secure::SecureLink;
pub use sockets::{Family, ROTATE_AFTER, wear_budget};
pub use tcp::{
    Choice, TCP_CONNS, TCP_IDLE, TCP_PIPELINE, TCP_TRIES, TcpConns, choose, stall_after,
};

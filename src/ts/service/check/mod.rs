//! The endpoint checker of service answers: one task per TS
//! probing every distinct endpoint, rise/fall hysteresis, the live set
//! published on a `watch` only when it changes.
//!
//! # Map
//! - `spec.rs`: what the checker is given ([`Probe`], [`CheckSpec`],
//!   [`Target`], [`Label`]) and what it publishes ([`LiveSet`]);
//! - `schedule.rs`: when each target is probed, jitter and the in-flight
//!   bound (pure, the clock given);
//! - `probe.rs`: one probe (tcp, http, dns), bounded by its timeout, as a
//!   future;
//! - `connect.rs`: the `tcp` probes' batch driver (raw non-blocking sockets
//!   in one epoll set of its own, deadlines in a queue per timeout);
//! - `board.rs`: states and counts shown outside the task (metrics text,
//!   `dnslb status` rows);
//! - `checker.rs`: [`Checker`], the task that drives them, on a thread of
//!   its own.
mod board;
mod checker;
mod connect;
mod probe;
mod schedule;
mod spec;

pub use checker::Checker;
pub use schedule::in_flight_bound;
pub use spec::{CheckSpec, EndpointState, Label, LiveSet, Probe, Target};

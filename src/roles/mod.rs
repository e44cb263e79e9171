//! The roles as library runners: [`ls`] (`dnslb ls`), [`ts`] (`dnslb ts`) and [`up`]
//! (`dnslb up`), each taking its config or bound sockets and a stream of [`Control`]s;
//! and [`ds`], `dnslb ds`'s lines (the zones a TS signs, found by loading its files).
//!
//! The binary feeds the [`Controls`] from the process's signals
//! ([`Controls::from_signals`]: SIGHUP reloads, SIGINT/SIGTERM stop); a test feeds them
//! from a channel ([`Controls::channel`]), so reload, NOTIFY and drain run in-process.
//! Errors are [`RoleError`]s; the binary prints them as one line. [`process`] is a
//! role as the whole process (its runtime and worker threads, the signals, `up`'s check
//! before it starts): the binary calls it and prints what comes back.
//!
//! [`reload`] is a reload of a running deployment and each role's outcome
//! (SIGHUP, `dnslb reload`): all or nothing across the roles under `up`.
//!
//! Layering: `control` (controls, the stop grace) and `error` (errors, the metrics
//! listener bound) are the floor, re-exported here; `reload`, then `ls` and `ts`
//! build on it; `up` builds on `ls` (its LS) and on [`crate::supervise`] (its children);
//! `process` on all three.

mod control;
pub mod ds;
mod error;
pub mod ls;
pub mod process;
pub mod reload;
pub mod ts;
mod ts_doq;
mod ts_restart;
pub mod up;

pub use control::{Control, Controls, SHUTDOWN_GRACE};
pub use error::RoleError;
use error::bind_metrics;

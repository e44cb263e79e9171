//! Backends as the LS sees them: address, weight, health ([`health`]), the
//! state set by hand ([`admin`]), its
//! adaptive concurrency limit ([`limit`]) and live counters; one upstream
//! query in flight ([`InFlight`]).
//!
//! # Map
//! - `backend.rs`: [`Backend`], [`InFlight`], [`BackendView`], the clock
//!   ([`clock_ms`]) and [`any_room`];
//! - [`health`]: its one `Health`; [`limit`]: its concurrency limit.
//!
//! Counters are atomics (no lock on the query path). [`Backend::view`] takes a
//! plain snapshot for the pure ordering functions in [`super::order`].
pub mod admin;
mod backend;
pub mod health;
pub mod limit;

pub use backend::{
    Backend, BackendStats, BackendView, InFlight, WonBy, any_room, clock_ms, clock_us,
};

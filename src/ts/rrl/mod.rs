//! Response rate limiting (`rrl` in `[[ts]]`), as NSD's and Knot's RRL:
//! a TS on the open internet must not turn 60-byte spoofed queries into a
//! flood of large answers at their victim. Each UDP answer is counted
//! against a token bucket of its client's network (`ipv4_prefix`,
//! `ipv6_prefix`) and what it answers (its [`AnswerClass`] and name: the
//! query's name for data, the zone's for its NXDOMAINs, NODATAs, referrals
//! and errors, the wildcard's for the names it answers); over the rate,
//! every `slip`-th limited answer goes out truncated (TC=1, so a genuine
//! client asks again over TCP, which is never limited) and the rest are
//! dropped. `exempt` networks and clients with a valid server cookie are
//! never limited; `log_only` counts and logs, and limits nothing.
//!
//! # Map
//! - `class.rs`: what an answer is ([`AnswerClass`]) and the name it is
//!   counted under, read from the answer itself ([`classify`]);
//! - `buckets.rs`: the buckets, a fixed-size table of sets of ways
//!   ([`Buckets`]), each set a pure state machine over a clock it is given;
//! - `limiter.rs`: [`Rrl`], the settings compiled (the exempt networks, the
//!   prefixes), its decision for one answer ([`RrlDecision`]), its log lines within a
//!   budget, and [`limit`], the answer as the limit lets it go (sent,
//!   truncated, dropped), counted.
mod buckets;
mod class;
mod limiter;

pub use buckets::{
    BucketSet, BucketTaken, Buckets, QUIET, RrlKey, RrlLimits, RrlVerdict, SETS, WAYS,
};
pub use class::{AnswerClass, Classified, classify, slipped};
pub use limiter::{Ask, LOG_INTERVAL, LOG_LINES, Rrl, RrlDecision, limit};

//! Client protection shared by every side (the ground floor, with dns/): the
//! `allow` ACL ([`acl`]), a network list compiled for lookups that cost
//! the same whatever its length ([`netset`]), the per-client token-bucket rate limit ([`rate`]),
//! the fast keyed hash of the tables whose keys clients choose
//! ([`keyed_hash`]) and the budget that keeps a flood from turning a log into a line per
//! packet ([`log_budget`]). Imports nothing of the crate: the LS's door, the
//! server layer's encrypted listeners (new connections per client, the
//! client behind a trusted proxy) and the TS's TSIG refusals all use it.
pub mod acl;
pub mod fair;
pub mod keyed_hash;
pub mod log_budget;
pub mod netset;
pub mod rate;

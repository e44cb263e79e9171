//! dnslb among other DNS software, each a real program on real sockets:
//!
//! * [`replicated`]: a `dnslb ls` (`layout = "replicated"`) in front of NSD
//!   and Knot serving the same zone file, under race, hedge and sequential;
//!   then Knot SIGKILLed.
//! * [`dnsdist`]: dnsdist in front of two `dnslb ts`: its health checks and
//!   its forwarding.
//! * [`knot_secondary`]: Knot as a secondary of a `dnslb ts` (AXFR, then
//!   NOTIFY after a SIGHUP), for a master file and for a PROJ table; and
//!   Knot and NSD refusing the TS's NOTIFY (their ACL names another
//!   address), which the TS must not log as acknowledged.
//! * [`stub`]: glibc's stub resolver (`getent`) in a network namespace of
//!   the test's own, against an LS on the namespace's 127.0.0.1:53.
//! * [`unbound`]: Unbound (a recursive resolver) in front of a partitioned
//!   LS, one of whose two table servers is then stalled with SIGSTOP; and a
//!   CNAME in one partition whose target is in the other.
//! * [`signed`]: a validating Unbound, `delv`, and Knot and NSD secondaries
//!   in front of zones the TS signs, directly and through a replicated LS;
//!   Unbound's SERVFAIL for a record changed after signing.
//!
//! A test whose program is not installed prints `SKIPPED, not run: PROG
//! not installed` and passes under a plain `cargo test`; under
//! `scripts/test` (which installs them all and sets `DNSLB_REQUIRE_PEERS=1`)
//! it fails instead ([`kit::skip`](crate::kit::skip)). Every process
//! is stopped by PID from a guard, every file lives in a temporary folder;
//! readiness is polled with real DNS queries in bounded loops.
//!
//! What they share lives in the kit: `dnslb` children started from a
//! command line or a config ([`kit::commands`](crate::kit::commands)),
//! Unbound ([`kit::unbound`](crate::kit::unbound)), finding programs, the
//! fixtures, a small DNS client.
mod cache_cookies;
mod dnsdist;
mod knot_secondary;
mod replicated;
mod signed;
mod stub;
pub(crate) mod tsig;
mod unbound;

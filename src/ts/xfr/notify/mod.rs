//! NOTIFY (RFC 1996) from a TS to its secondaries: [`policy`] decides
//! (the back-off between tries, what a reply says, one pending NOTIFY per
//! zone and secondary), [`task`] sends (the one task that keeps them and
//! its UDP sockets).
pub mod policy;
pub mod task;

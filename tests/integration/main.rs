//! The integration tests: real servers on 127.0.0.1, real sockets.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

#[allow(dead_code)]
mod harness;

//! How to run a batch ([`ResolveOptions`]) and why one could not run
//! ([`ResolveError`]).
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinError;

use super::server::{ServerLookupError, ServerSpec};

/// Default number of lookups in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default wait for the answer to one query (one try).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of new tries after a timeout.
pub const DEFAULT_RETRIES: u32 = 1;

/// How to run a batch of lookups.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// The DNS server to ask (UDP, and TCP for truncated answers).
    pub server: ServerSpec,
    /// Lookups in flight at once (at least 1 is used).
    pub concurrency: usize,
    /// Wait for the answer to one query, per try and per transport.
    pub timeout: Duration,
    /// New tries of a name after a timeout.
    pub retries: u32,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
    /// The address records asked for: A (the default) or AAAA.
    pub qtype: AddressType,
}

/// The address records `dnslb resolve` asks for (`-t A`, `-t AAAA`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddressType {
    /// IPv4 addresses.
    #[default]
    A,
    /// IPv6 addresses.
    Aaaa,
}

impl AddressType {
    /// The record type asked.
    pub fn record_type(self) -> hickory_proto::rr::RecordType {
        match self {
            AddressType::A => hickory_proto::rr::RecordType::A,
            AddressType::Aaaa => hickory_proto::rr::RecordType::AAAA,
        }
    }
}

impl std::str::FromStr for AddressType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("A") {
            Ok(AddressType::A)
        } else if s.eq_ignore_ascii_case("AAAA") {
            Ok(AddressType::Aaaa)
        } else {
            Err(format!("expected A or AAAA, got '{s}'"))
        }
    }
}

impl ResolveOptions {
    /// Options for `server` with every other knob at its default and no progress bar.
    pub fn new(server: impl Into<ServerSpec>) -> Self {
        ResolveOptions {
            server: server.into(),
            concurrency: DEFAULT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            progress: false,
            qtype: AddressType::A,
        }
    }

    /// How many tries a name gets before it is [`Outcome::TimedOut`](super::Outcome::TimedOut).
    pub fn tries(&self) -> u32 {
        self.retries.saturating_add(1)
    }
}

/// Why a batch could not run, or ran without a single answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The input could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The input file, or `<stdin>`.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A name given to [`resolve_all`](super::resolve_all) is not a hostname.
    #[error("bad hostname '{name}': {msg}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The output could not be written.
    #[error("cannot write {file}: {source}")]
    Write {
        /// The output file, or `<stdout>`.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The server's host name could not be looked up.
    #[error(transparent)]
    Server(#[from] ServerLookupError),
    /// Every query was refused (ICMP port unreachable): nothing listens at the address.
    #[error("no DNS server at {0}: every query was refused (port unreachable)")]
    NoServer(SocketAddr),
    /// The server did not answer a single query.
    #[error(
        "no answer from {server}: {} asked, not one answered in {}",
        names_text(*.names),
        tries_text(*.tries, *.timeout_ms)
    )]
    NoAnswer {
        /// The server's address.
        server: SocketAddr,
        /// Distinct names asked.
        names: usize,
        /// Tries per name.
        tries: u32,
        /// Wait per try, in ms.
        timeout_ms: u128,
    },
    /// A lookup task ended without a result (a bug).
    #[error("a lookup task failed: {0}")]
    Task(#[from] JoinError),
}

/// `1 name`, `2 names`.
fn names_text(names: usize) -> String {
    if names == 1 {
        "1 name".into()
    } else {
        format!("{names} names")
    }
}

/// `1 try of 2000 ms`, `2 tries of 2000 ms each`.
fn tries_text(tries: u32, timeout_ms: u128) -> String {
    if tries == 1 {
        format!("1 try of {timeout_ms} ms")
    } else {
        format!("{tries} tries of {timeout_ms} ms each")
    }
}

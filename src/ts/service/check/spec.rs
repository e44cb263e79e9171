//! What the checker is given: each endpoint's probe and timing
//! ([`Target`]), the names it is known by ([`Label`]), and what it
//! publishes ([`LiveSet`]).
use std::net::IpAddr;

/// How an endpoint is probed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Never probed: always up.
    None,
    /// Up when a TCP connect to `port` succeeds within the timeout (a reset
    /// after the handshake still counts as connected).
    Tcp {
        /// The port connected to.
        port: u16,
    },
    /// Up when an HTTP/1.1 `GET path` on `port` answers with status `expect`
    /// within the timeout; only the status code is read (`HTTP/1.x NNN`). `host` is the
    /// `Host:` header (the endpoint's address when absent).
    Http {
        /// The port connected to.
        port: u16,
        /// The path asked for (`/` when it does not start with `/`).
        path: String,
        /// The status code that means up.
        expect: u16,
        /// The `Host:` header, when not the endpoint's address and port.
        host: Option<String>,
    },
    /// Up when a UDP DNS query (`qname`, `qtype`, class IN) to `port` is
    /// answered, with the query's ID, by a response whose RCODE is NOERROR
    /// or NXDOMAIN (the server answers for its data); any other RCODE
    /// (SERVFAIL, REFUSED, ...) or silence is down.
    Dns {
        /// The UDP port queried.
        port: u16,
        /// The name asked for.
        qname: String,
        /// The type asked for (1 for A).
        qtype: u16,
    },
}

impl Probe {
    /// The check's kind as the config spells it: `none`, `tcp`, `http`, `dns`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Tcp { .. } => "tcp",
            Self::Http { .. } => "http",
            Self::Dns { .. } => "dns",
        }
    }
}

/// A probe and its timing: every `interval_ms` (the first one jittered
/// within the interval), each given `timeout_ms`; `rise` successes in a row
/// bring a down endpoint up, `fall` failures in a row take an up one down
/// (0 counts as 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    /// How the endpoint is probed.
    pub probe: Probe,
    /// Time between probes' starts (ms).
    pub interval_ms: u64,
    /// The bound on one probe, connect to answer (ms).
    pub timeout_ms: u64,
    /// Successes in a row that bring a down endpoint up.
    pub rise: u32,
    /// Failures in a row that take an up endpoint down.
    pub fall: u32,
}

/// One endpoint as checked: equal targets (same address, same check) are
/// checked once, whichever services share them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The endpoint's address (probes go to it).
    pub addr: IpAddr,
    /// How and how often it is checked.
    pub check: CheckSpec,
}

/// Who uses a target, for metrics and logs: the service's name and the
/// endpoint (its address as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label {
    /// The service's name.
    pub service: String,
    /// The endpoint, its address as text.
    pub endpoint: String,
}

/// One endpoint of one service as `dnslb status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    /// The service and the endpoint.
    pub label: Label,
    /// The check's kind ([`Probe::kind`]).
    pub check: &'static str,
    /// Whether it is up (answered).
    pub up: bool,
    /// When it last went up or down (its start when it never changed), in
    /// unix seconds.
    pub since_unix: u64,
}

/// The live state of every target, in the order given to
/// `Checker::start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSet {
    /// Whether each target is up, by its index in the list given.
    pub up: Vec<bool>,
}

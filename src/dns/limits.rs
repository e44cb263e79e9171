//! The sizes every DNS message of this product is held to, and how a query
//! arrived ([`Transport`]), which decides the size of its answer.

/// Largest UDP payload this product sends, whatever a client advertises
/// (the DNS Flag Day 2020 value, also NSD's and Knot's default).
pub const UDP_PAYLOAD_MAX: u16 = 1232;
/// UDP payload for a client without EDNS (RFC 1035).
pub const UDP_PAYLOAD_PLAIN: u16 = 512;
/// Largest DNS message (TCP).
pub const TCP_PAYLOAD_MAX: u16 = u16::MAX;
/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// The longest name in wire form, root byte included (RFC 1035 §3.1).
pub const NAME_MAX: usize = 255;

/// How a query arrived; decides the size limit of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: answers are limited by EDNS and truncated with TC=1.
    Udp,
    /// Stream (RFC 7766): answers up to 64 KiB.
    Tcp,
}

/// The kind of listener a query came by: finer than its [`Transport`], for
/// policies that tell DNS over TLS or HTTPS from plain TCP (the LS's
/// `[[ls.rule]]` `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Plain DNS over UDP.
    Udp,
    /// Plain DNS over TCP.
    Tcp,
    /// DNS over TLS.
    Dot,
    /// DNS over HTTPS.
    Doh,
    /// DNS over QUIC.
    Doq,
}

impl Via {
    /// Plain DNS over `transport`.
    pub fn plain(transport: Transport) -> Via {
        match transport {
            Transport::Udp => Via::Udp,
            Transport::Tcp => Via::Tcp,
        }
    }
}

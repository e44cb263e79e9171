//! The dnstap protobuf messages: `dnstap.proto` (vendored beside this file,
//! from the dnstap project, CC0) as prost structs, field by field: the
//! schema (its field numbers, message and enum types). Encoding a frame's
//! payload is `encode`'s.
//!
//! The structs are written by hand with `#[derive(prost::Message)]` rather
//! than generated at build time, so building needs no `protoc`; a test reads
//! the vendored `.proto` and checks every field's number, wire type, width
//! and label and every enum value against these structs, so they cannot
//! drift apart.
//!
//! The Rust names are the schema's but for `Dnstap` ([`Payload`]: the
//! handle the servers hold is `dnstap::Dnstap`) and `Policy`
//! ([`MessagePolicy`]).

/// `Dnstap`: the top-level message, one per data frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// The DNS server's identity (`identity` in the config, else the host name).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// The DNS server's version (`dnslb <version>` unless configured).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// Free annotation; not written by dnslb.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    /// Which payload is filled in: always [`DnstapType::Message`].
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
    /// The payload.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
}

/// `Dnstap.Type`: which payload a [`Payload`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    /// A [`Message`].
    Message = 1,
}

/// `SocketFamily`: how to read the address fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    /// IPv4: addresses are 4 bytes.
    Inet = 1,
    /// IPv6: addresses are 16 bytes.
    Inet6 = 2,
}

/// `SocketProtocol`: the transport a DNS message came or went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    /// DNS over UDP.
    Udp = 1,
    /// DNS over TCP.
    Tcp = 2,
    /// DNS over TLS (RFC 7858).
    Dot = 3,
    /// DNS over HTTPS (RFC 8484).
    Doh = 4,
    /// DNSCrypt over UDP.
    DnsCryptUdp = 5,
    /// DNSCrypt over TCP.
    DnsCryptTcp = 6,
    /// DNS over QUIC (RFC 9250).
    Doq = 7,
}

/// `HttpProtocol`: the HTTP version of a DNS over HTTPS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum HttpProtocol {
    /// HTTP/1.
    Http1 = 1,
    /// HTTP/2.
    Http2 = 2,
    /// HTTP/3.
    Http3 = 3,
}

/// `Policy`: an operator policy applied to a message (a query rule's match).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessagePolicy {
    /// The kind of policy ("dnslb-rule" for a query rule).
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    /// The rule that matched (a query rule's name).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub rule: Option<Vec<u8>>,
    /// What was done.
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    /// What part of the exchange matched.
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    /// The value that matched.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
}

/// `Policy.Match`: what part of the exchange a policy matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    /// The question's name.
    Qname = 1,
    /// The client's address.
    ClientIp = 2,
    /// An address in an A/AAAA RRset of the response.
    ResponseIp = 3,
    /// An authoritative name server, by name.
    NsName = 4,
    /// An authoritative name server, by address.
    NsIp = 5,
}

/// `Policy.Action`: what a policy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    /// Answered NXDOMAIN.
    Nxdomain = 1,
    /// Answered with an empty answer section.
    Nodata = 2,
    /// Let the message through unchanged.
    Pass = 3,
    /// Did not answer.
    Drop = 4,
    /// Answered with TC=1.
    Truncate = 5,
    /// Answered with local data.
    LocalData = 6,
}

/// `Message`: one DNS message and where and when it went.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Which of the message kinds this is.
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// The family of the addresses.
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// The transport.
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The query's sender's address (4 or 16 bytes).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// The responder's address (4 or 16 bytes).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    /// The query's sender's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// The responder's port.
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    /// When the query was sent or received: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// ... and the nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query, verbatim.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    /// The zone the query concerns (wire-format name).
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    /// When the response was sent or received: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// ... and the nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response, verbatim.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
    /// The policy applied, if any.
    #[prost(message, optional, tag = "15")]
    pub policy: Option<MessagePolicy>,
    /// The HTTP version, for DNS over HTTPS only.
    #[prost(enumeration = "HttpProtocol", optional, tag = "16")]
    pub http_protocol: Option<i32>,
}

/// `Message.Type`: which end of which arrow a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// A query an authoritative server received.
    AuthQuery = 1,
    /// A response an authoritative server sent.
    AuthResponse = 2,
    /// A query a resolver sent.
    ResolverQuery = 3,
    /// A response a resolver received.
    ResolverResponse = 4,
    /// A query a server received from a client.
    ClientQuery = 5,
    /// A response a server sent to a client.
    ClientResponse = 6,
    /// A query a forwarder sent upstream.
    ForwarderQuery = 7,
    /// A response a forwarder received from upstream.
    ForwarderResponse = 8,
    /// A query a stub resolver sent.
    StubQuery = 9,
    /// A response a stub resolver received.
    StubResponse = 10,
    /// A query a tool sent.
    ToolQuery = 11,
    /// A response a tool received.
    ToolResponse = 12,
    /// A dynamic update received.
    UpdateQuery = 13,
    /// A dynamic update's response sent.
    UpdateResponse = 14,
}

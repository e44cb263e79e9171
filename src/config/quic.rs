//! `[ls.quic]` and `quic` in a `[[ts]]`: [`QuicConfig`], a DNS over QUIC
//! listener (RFC 9250; docs/CONFIG.md "Encrypted transports" (the LS) and
//! the TS's keys, §7). Its certificate and key are read as `[ls.tls]`'s
//! ([`super::load_certified_key`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[ls.quic]`, or `quic` in a `[[ts]]`: DNS over QUIC; omitted = no DoQ
/// listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP addresses to serve DNS over QUIC on: one (`"ADDR"`) or a list.
    /// \[`127.0.0.1:8853`\]
    #[serde(
        deserialize_with = "super::listen::de_listen",
        default = "default_doq_listen"
    )]
    pub listen: Vec<SocketAddr>,
    /// The certificate chain, PEM (leaf first); re-read on SIGHUP.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP.
    pub key: PathBuf,
}

/// The default `[ls.quic]` listen address: DoT's port, over UDP (RFC 9250 §4.1.1).
fn default_doq_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 8853))]
}

//! `[ls.quic]`: [`QuicConfig`], the LS's DNS over QUIC listener (RFC 9250;
//! docs/CONFIG.md (the LS) "Encrypted transports", §7). Its certificate and
//! key are read as `[ls.tls]`'s ([`super::load_certified_key`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::values::de_addrs;

/// `[ls.quic]`: DNS over QUIC; the table omitted = no DoQ listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP addresses to serve DNS over QUIC on. \[`127.0.0.1:8853`\]
    #[serde(deserialize_with = "de_addrs", default = "default_doq_listen")]
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

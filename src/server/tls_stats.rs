//! The counters of the encrypted listeners, DoT and DoH ([`TlsStats`]): queries,
//! handshakes and their failures by reason ([`HandshakeFailure`]), connections
//! and requests refused, certificate reloads. Shared by the TCP connection
//! (`tcp.rs`), the TLS handshake (`tls.rs`) and DoH, read by `/metrics`.
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use rustls::HandshakeKind;

/// Why a TLS handshake failed, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within [`HANDSHAKE_TIMEOUT`](super::tls::HANDSHAKE_TIMEOUT).
    Timeout,
    /// The client closed the connection during the handshake.
    Eof,
    /// What the client sent is not TLS (or not well-formed TLS).
    NotTls,
    /// The client offered ALPN protocols, none of them `dot`.
    Alpn,
    /// No TLS version, cipher suite or key exchange in common.
    Incompatible,
    /// The client ended the handshake with an alert (it rejected the certificate...).
    Alert,
    /// Anything else (a socket error, ...).
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Self; 7] = [
        Self::Timeout,
        Self::Eof,
        Self::NotTls,
        Self::Alpn,
        Self::Incompatible,
        Self::Alert,
        Self::Other,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Eof => "eof",
            Self::NotTls => "not_tls",
            Self::Alpn => "alpn",
            Self::Incompatible => "incompatible",
            Self::Alert => "alert",
            Self::Other => "other",
        }
    }

    /// The reason of a failed `accept`.
    pub fn of(err: &std::io::Error) -> Self {
        use rustls::Error as E;
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            return Self::Eof;
        }
        match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
            Some(E::InvalidMessage(_) | E::InappropriateMessage { .. }) => Self::NotTls,
            Some(E::InappropriateHandshakeMessage { .. }) => Self::NotTls,
            Some(E::NoApplicationProtocol) => Self::Alpn,
            Some(E::PeerIncompatible(_)) => Self::Incompatible,
            Some(E::AlertReceived(_)) => Self::Alert,
            Some(_) => Self::Other,
            None if err.kind() == std::io::ErrorKind::InvalidData => Self::NotTls,
            None => Self::Other,
        }
    }
}

/// Counters of the encrypted listeners (DoT and DoH).
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes completed, resumed ones included.
    pub handshakes: AtomicU64,
    /// Of those, resumed from an earlier session (ticket or session id).
    pub resumed: AtomicU64,
    /// Handshakes that failed, by [`HandshakeFailure::ALL`] index.
    pub failures: [AtomicU64; 7],
    /// DNS queries received over DNS over TLS.
    pub dot_queries: AtomicU64,
    /// DNS queries received over DNS over HTTPS.
    pub doh_queries: AtomicU64,
    /// HTTP requests to the DoH listeners refused with a 4xx status (no query in them).
    pub doh_refused: AtomicU64,
    /// New DoT connections closed before their handshake by `conn_rate_limit`.
    pub dot_rate_refused: AtomicU64,
    /// New DoH connections closed before their handshake by `conn_rate_limit`.
    pub doh_rate_refused: AtomicU64,
    /// New DoT connections closed before their handshake: the client is outside `allow`.
    pub dot_acl_refused: AtomicU64,
    /// New DoH connections closed before their handshake: the client is outside
    /// `allow` (and not a trusted proxy).
    pub doh_acl_refused: AtomicU64,
    /// New DoT connections closed at once: the connection cap was full.
    pub dot_cap_refused: AtomicU64,
    /// New DoH connections closed at once: the connection cap was full.
    pub doh_cap_refused: AtomicU64,
    /// DoH requests from a trusted proxy whose `X-Forwarded-For` could not be read
    /// (the proxy's own address was used).
    pub doh_xff_malformed: AtomicU64,
    /// Certificate reloads applied.
    pub cert_reloads: AtomicU64,
    /// Certificate reloads refused (the old certificate serves on).
    pub cert_reloads_refused: AtomicU64,
    /// The notAfter (Unix seconds) of the `[ls.tls]` certificate served; 0: none.
    pub dot_not_after: std::sync::atomic::AtomicI64,
    /// The notAfter (Unix seconds) of the `[ls.https]` certificate served; 0: none.
    pub doh_not_after: std::sync::atomic::AtomicI64,
}

impl TlsStats {
    /// Counts one failed handshake.
    pub fn failed(&self, why: HandshakeFailure) {
        let i = HandshakeFailure::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(HandshakeFailure::ALL.len() - 1);
        if let Some(c) = self.failures.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one completed handshake of `kind`.
    pub fn done(&self, kind: Option<HandshakeKind>) {
        self.handshakes.fetch_add(1, Relaxed);
        if kind == Some(HandshakeKind::Resumed) {
            self.resumed.fetch_add(1, Relaxed);
        }
    }
}

//! How the LS reaches one backend (`transport`, `tls_name`, `ca` in
//! `[[ls.backend]]`): [`BackendTransport`], the rules of the three keys
//! ([`link_problems`]), and the reading of `ca` into the roots a backend's
//! certificate is checked against ([`load_roots`]).
use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;

use std::net::SocketAddr;

/// `transport` in `[[ls.backend]]`. \[udp\]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendTransport {
    /// UDP (and TCP for a truncated answer or a TCP client's ANY).
    #[default]
    Udp,
    /// DNS over TLS (RFC 7858, ALPN `dot`): pooled, pipelined connections.
    Tls,
    /// DNS over QUIC (RFC 9250, ALPN `doq`): one connection, a stream a query.
    Quic,
}

impl BackendTransport {
    /// Whether the backend is reached encrypted (`tls` or `quic`).
    pub fn encrypted(self) -> bool {
        self != BackendTransport::Udp
    }

    /// The keyword, as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendTransport::Udp => "udp",
            BackendTransport::Tls => "tls",
            BackendTransport::Quic => "quic",
        }
    }
}

/// The name a backend's certificate must carry: `tls_name`, else the IP of
/// its `addr` (an IP SAN).
pub fn server_name(
    tls_name: Option<&str>,
    addr: SocketAddr,
) -> Result<ServerName<'static>, String> {
    match tls_name {
        Some(n) => ServerName::try_from(n.to_owned())
            .map_err(|_| format!("{n:?} is not a DNS name or an IP address")),
        None => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}

/// The PEM certificates of the file at `ca`, as roots.
///
/// # Errors
/// The file cannot be read, holds no certificate, or one rustls refuses.
pub fn load_roots(ca: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("{}: {e}", ca.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in the file", ca.display()));
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(roots)
}

/// The problems of a backend's link keys (`transport`, `tls_name`, `ca`,
/// at `addr`): `(key, message)`, the key relative to the backend's table.
pub fn link_problems(
    transport: BackendTransport,
    tls_name: Option<&str>,
    ca: Option<&Path>,
    addr: SocketAddr,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !transport.encrypted() {
        for (key, set) in [("tls_name", tls_name.is_some()), ("ca", ca.is_some())] {
            if set {
                out.push((
                    key,
                    format!("{key} is for transport = \"tls\" or \"quic\"; this backend is reached over udp"),
                ));
            }
        }
        return out;
    }
    if let Err(msg) = server_name(tls_name, addr) {
        out.push(("tls_name", msg));
    }
    match ca {
        // No system roots in the binary: the roots are always named.
        None => out.push((
            "ca",
            format!(
                "transport = \"{}\" needs ca, the PEM file of the roots the backend's certificate is checked against",
                transport.as_str()
            ),
        )),
        Some(ca) => {
            if let Err(msg) = load_roots(ca) {
                out.push(("ca", msg));
            }
        }
    }
    out
}

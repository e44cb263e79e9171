//! `[ls.tls]` and `[ls.https]`: [`TlsConfig`] and [`HttpsConfig`], the encrypted
//! listeners of the LS (docs/CONFIG.md (the LS) "Encrypted transports", §7), and [`load_certified_key`],
//! which reads the certificate chain and key they name (at validation, at start and on
//! each SIGHUP) into what rustls serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use ipnet::IpNet;

use super::values::{de_addrs, de_nets};

/// `[ls.tls]`: DNS over TLS (RFC 7858); the table omitted = no DoT listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses to serve DNS over TLS on. \[`127.0.0.1:8853`\]
    #[serde(deserialize_with = "de_addrs", default = "default_dot_listen")]
    pub listen: Vec<SocketAddr>,
    /// The certificate chain, PEM (leaf first); re-read on SIGHUP.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP.
    pub key: PathBuf,
    /// New connections per second accepted from one client IP (one
    /// `rate_limit_v6_prefix` for IPv6); past it a connection is closed before its
    /// TLS handshake. 0 = off; applied on SIGHUP. \[0\]
    #[serde(default)]
    pub conn_rate_limit: u32,
}

/// `[ls.https]`: DNS over HTTPS (RFC 8484); the table omitted = no DoH listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsConfig {
    /// Addresses to serve DNS over HTTPS on. \[`127.0.0.1:8443`\]
    #[serde(deserialize_with = "de_addrs", default = "default_doh_listen")]
    pub listen: Vec<SocketAddr>,
    /// The certificate chain, PEM; with `key`, or neither (plain HTTP/2 behind a
    /// TLS-terminating proxy). \[none\]
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key, PEM. \[none\]
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The URL path queries are asked on. \[`/dns-query`\]
    #[serde(default = "default_doh_path")]
    pub path: String,
    /// New connections per second from one client IP, as `[ls.tls]`'s. \[0\]
    #[serde(default)]
    pub conn_rate_limit: u32,
    /// Proxies whose `X-Forwarded-For` header names the client (networks, as
    /// `allow`); from any other peer the header is ignored. Applied on SIGHUP. \[none\]
    #[serde(default, deserialize_with = "de_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Also DNS over HTTP/3 (RFC 9114) on UDP at each `listen` address's port,
    /// advertised in `Alt-Svc`; needs `cert` and `key`. \[false\]
    #[serde(default)]
    pub http3: bool,
}

/// The default `[ls.tls]` listen address.
fn default_dot_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 8853))]
}

/// The default `[ls.https]` listen address.
fn default_doh_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 8443))]
}

/// The default `[ls.https]` path.
fn default_doh_path() -> String {
    "/dns-query".into()
}

/// Why a certificate chain and key cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {msg}", .file.display())]
pub struct CertError {
    /// The key naming the file at fault: `cert` or `key` (the key's when the pair
    /// does not match).
    pub key: &'static str,
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub msg: String,
}

/// Reads the PEM certificate chain at `cert` and the PEM private key at `key` and
/// checks that they belong together.
///
/// # Errors
///
/// A file that cannot be read, holds no certificate or no key, or a key that is
/// not the certificate's or of a kind rustls cannot sign with.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let fail = |part: &'static str, msg: String| CertError {
        key: part,
        file: if part == "cert" { cert } else { key }.to_path_buf(),
        msg,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail("cert", pem_msg(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail("cert", pem_msg(&e)))?;
    if certs.is_empty() {
        return Err(fail("cert", "no PEM certificate in the file".into()));
    }
    let (not_before, not_after) = leaf_validity(&certs[0]).map_err(|m| fail("cert", m))?;
    let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
    if now > not_after.0 {
        let msg = format!("the certificate expired on {} (notAfter)", not_after.1);
        return Err(fail("cert", msg));
    }
    if now < not_before.0 {
        let msg = format!(
            "the certificate is not valid before {} (notBefore)",
            not_before.1
        );
        return Err(fail("cert", msg));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            fail("key", "no PEM private key in the file".into())
        }
        e => fail("key", pem_msg(&e)),
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| fail("key", format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signer);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; the handshake will.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(fail(
            "key",
            format!(
                "the key does not belong to the certificate in {}",
                cert.display()
            ),
        )),
        Err(e) => Err(fail("key", format!("unusable with its certificate: {e}"))),
    }
}

/// A certificate expiring within this long is warned about at start and on reload.
pub const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 3600;

/// A moment of a certificate: Unix seconds, and as the certificate writes it.
pub(super) type CertTime = (i64, String);

/// The validity of the certificate `der` (notBefore, notAfter).
///
/// # Errors
/// The certificate cannot be parsed.
pub(super) fn leaf_validity(der: &CertificateDer<'_>) -> Result<(CertTime, CertTime), String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("the first certificate cannot be read: {e}"))?;
    let v = &cert.tbs_certificate.validity;
    Ok((cert_time(v.not_before), cert_time(v.not_after)))
}

/// A certificate's moment as Unix seconds, and written as `openssl x509
/// -enddate` writes it ("Dec  3 12:00:00 2026 GMT").
fn cert_time(t: x509_cert::time::Time) -> CertTime {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    let d = t.to_date_time();
    let month = MONTHS
        .get(usize::from(d.month()).saturating_sub(1))
        .copied()
        .unwrap_or("???");
    let text = format!(
        "{month} {:2} {:02}:{:02}:{:02} {} GMT",
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds(),
        d.year()
    );
    (secs, text)
}

/// The days left before `not_after` (Unix seconds) at `now`, when that is
/// less than [`EXPIRY_WARNING_SECS`] (the certificate is to be renewed);
/// `None` while more remains.
pub fn expiry_warning_days(not_after: i64, now: i64) -> Option<i64> {
    let left = not_after.saturating_sub(now);
    (left < EXPIRY_WARNING_SECS).then_some(left.div_euclid(86_400))
}

/// The notAfter of the first certificate (the leaf) in the PEM file `cert`:
/// Unix seconds, and as the certificate writes it; `None` when it cannot be
/// read (validation says why).
pub fn file_not_after(cert: &Path) -> Option<(i64, String)> {
    let leaf = CertificateDer::pem_file_iter(cert).ok()?.next()?.ok()?;
    leaf_validity(&leaf).ok().map(|(_, after)| after)
}

/// The notAfter of the leaf of `key` (Unix seconds), if it can be read.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    leaf_validity(leaf).ok().map(|(_, after)| after.0)
}

/// A PEM reading error as a message.
fn pem_msg(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        e => format!("not a PEM file: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::DateTime;
    use x509_cert::der::asn1::{GeneralizedTime, UtcTime};
    use x509_cert::time::Time;

    #[test]
    fn a_certificate_time_is_written_as_openssl_writes_it() {
        let at = DateTime::new(2026, 12, 3, 12, 4, 5).unwrap();
        let utc = Time::UtcTime(UtcTime::from_date_time(at).unwrap());
        assert_eq!(
            cert_time(utc),
            (1_796_299_445, "Dec  3 12:04:05 2026 GMT".to_owned())
        );
        let at = DateTime::new(2051, 1, 31, 0, 0, 0).unwrap();
        let generalized = Time::GeneralTime(GeneralizedTime::from_date_time(at));
        assert_eq!(cert_time(generalized).1, "Jan 31 00:00:00 2051 GMT");
    }
}

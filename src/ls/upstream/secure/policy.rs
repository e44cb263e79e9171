//! The pure decisions of an encrypted backend link: why a handshake failed
//! ([`FailReason`], from rustls's verdict: [`reason_of`]), and when the next
//! connection may be tried after failures in a row ([`Redial`]).
use std::time::Duration;

use rustls::{CertificateError, Error};
use tokio::time::Instant;

/// Why a connection to an encrypted backend could not be made, as counted
/// (`reason` of `dnslb_backend_link_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// Its certificate is not for the name checked (`tls_name`, or the IP).
    Name,
    /// Its certificate chains to no root of `ca`.
    UnknownCa,
    /// Its certificate expired, or is not valid yet.
    Expired,
    /// Its certificate was refused for another reason (revoked, bad
    /// signature, wrong usage...).
    Certificate,
    /// The TLS or QUIC handshake failed otherwise (no common ALPN or
    /// version, an alert, a timeout).
    Handshake,
    /// The TCP connection or the QUIC path could not be opened (refused,
    /// unreachable).
    Connect,
}

impl FailReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [FailReason; 6] = [
        FailReason::Name,
        FailReason::UnknownCa,
        FailReason::Expired,
        FailReason::Certificate,
        FailReason::Handshake,
        FailReason::Connect,
    ];

    /// Its label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Name => "name",
            FailReason::UnknownCa => "unknown_ca",
            FailReason::Expired => "expired",
            FailReason::Certificate => "certificate",
            FailReason::Handshake => "handshake",
            FailReason::Connect => "connect",
        }
    }

    /// Its index in [`FailReason::ALL`].
    pub fn index(self) -> usize {
        FailReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Whether it is the certificate's fault.
    pub fn certificate(self) -> bool {
        matches!(
            self,
            FailReason::Name
                | FailReason::UnknownCa
                | FailReason::Expired
                | FailReason::Certificate
        )
    }
}

/// The reason of a certificate rustls refused.
pub fn reason_of(e: &Error) -> FailReason {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                FailReason::Name
            }
            // A chain to no root of `ca`: no issuer by that name, or one by
            // that name whose key did not sign it (another CA of the same name).
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                FailReason::UnknownCa
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => FailReason::Expired,
            _ => FailReason::Certificate,
        },
        _ => FailReason::Handshake,
    }
}

/// When a backend's next connection may be tried: at once after one
/// failure (a restart, a connection the backend dropped), then after
/// pauses doubling from [`Redial::FIRST`] to [`Redial::MAX`] while the
/// failures go on; a success resets it. Between, a query finds no
/// connection and fails at once (its backend is down), rather than each
/// query waiting on a handshake bound to fail.
#[derive(Debug, Default, Clone)]
pub struct Redial {
    failures: u32,
    not_before: Option<Instant>,
}

impl Redial {
    /// The pause after the second failure in a row.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest pause.
    pub const MAX: Duration = Duration::from_secs(5);

    /// Whether a connection may be tried at `now`.
    pub fn may_try(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// A try failed at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.not_before = self.failures.checked_sub(2).map(|doublings| {
            let pause = Self::FIRST.saturating_mul(1 << doublings.min(16));
            now + pause.min(Self::MAX)
        });
    }

    /// A connection was made.
    pub fn succeeded(&mut self) {
        *self = Redial::default();
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redial_is_at_once_then_backs_off_doubling_to_the_cap_and_resets() {
        let t0 = Instant::now();
        let mut r = Redial::default();
        assert!(r.may_try(t0));
        r.failed(t0);
        assert!(r.may_try(t0), "one failure: tried again at once");
        r.failed(t0);
        assert!(!r.may_try(t0));
        assert!(r.may_try(t0 + Redial::FIRST));
        r.failed(t0);
        assert!(!r.may_try(t0 + Redial::FIRST));
        assert!(r.may_try(t0 + Redial::FIRST * 2));
        for _ in 0..40 {
            r.failed(t0);
        }
        assert!(!r.may_try(t0 + Redial::MAX - Duration::from_millis(1)));
        assert!(r.may_try(t0 + Redial::MAX));
        r.succeeded();
        assert!(r.may_try(t0));
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn certificate_errors_have_their_reason() {
        let cert = |c| Error::InvalidCertificate(c);
        assert_eq!(
            reason_of(&cert(CertificateError::NotValidForName)),
            FailReason::Name
        );
        assert_eq!(
            reason_of(&cert(CertificateError::UnknownIssuer)),
            FailReason::UnknownCa
        );
        assert_eq!(
            reason_of(&cert(CertificateError::Expired)),
            FailReason::Expired
        );
        assert_eq!(
            reason_of(&cert(CertificateError::Revoked)),
            FailReason::Certificate
        );
        assert_eq!(
            reason_of(&Error::HandshakeNotComplete),
            FailReason::Handshake
        );
        for r in FailReason::ALL {
            assert_eq!(FailReason::ALL[r.index()], r);
        }
        assert!(FailReason::Name.certificate() && !FailReason::Connect.certificate());
    }
}

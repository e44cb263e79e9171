//! What one encrypted backend link knows of its failures ([`Guard`]): the
//! counters by reason, the one log line per outage and reason (not per
//! query: [`logs_again`]), and the redial back-off; and the certificate
//! verifier that tells it why a certificate was refused ([`Recording`]).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::time::Instant;
use tracing::{info, warn};

use super::policy::{FailReason, Redial, reason_of};

/// The failures of one backend's link.
#[derive(Debug)]
pub struct Guard {
    /// The backend's name and address, for the log.
    pub(super) backend: String,
    pub(super) addr: std::net::SocketAddr,
    /// The transport, for the log.
    pub(super) transport: &'static str,
    counts: [AtomicU64; FailReason::ALL.len()],
    /// The reason last logged of the failure in progress: no more lines
    /// until a success or another reason ([`logs_again`]).
    logged: Mutex<Option<FailReason>>,
    /// The certificate reason of the handshake in progress, if its
    /// certificate was refused.
    refused: Mutex<Option<FailReason>>,
    redial: Mutex<Redial>,
}

impl Guard {
    pub(super) fn new(backend: &str, addr: std::net::SocketAddr, transport: &'static str) -> Self {
        Guard {
            backend: backend.to_owned(),
            addr,
            transport,
            counts: Default::default(),
            logged: Mutex::new(None),
            refused: Mutex::new(None),
            redial: Mutex::new(Redial::default()),
        }
    }

    /// Failures counted for `reason` so far.
    pub fn count(&self, reason: FailReason) -> u64 {
        self.counts
            .get(reason.index())
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Whether a connection may be tried now (the redial back-off).
    pub(super) fn may_try(&self) -> bool {
        self.redial().may_try(Instant::now())
    }

    fn redial(&self) -> std::sync::MutexGuard<'_, Redial> {
        self.redial.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection attempt failed with `err` (its certificate's reason
    /// taken from the verifier when it refused it): counted, logged once.
    pub(super) fn failed(&self, err: &dyn std::fmt::Display, fallback: FailReason) {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let reason = refused.unwrap_or(fallback);
        if let Some(c) = self.counts.get(reason.index()) {
            c.fetch_add(1, Relaxed);
        }
        self.redial().failed(Instant::now());
        let again = {
            let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
            let again = logs_again(*logged, reason);
            *logged = Some(reason);
            again
        };
        if again {
            warn!(
                backend = %self.backend,
                addr = %self.addr,
                transport = self.transport,
                reason = reason.as_str(),
                %err,
                "cannot connect to the backend: it stays down until a handshake succeeds (logged once per reason)"
            );
        }
    }

    /// A handshake succeeded.
    pub(super) fn succeeded(&self) {
        self.redial().succeeded();
        let was = self
            .logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if was.is_some() {
            info!(
                backend = %self.backend,
                addr = %self.addr,
                transport = self.transport,
                "connected to the backend again"
            );
        }
    }

    fn note_refused(&self, e: &rustls::Error) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason_of(e));
    }
}

/// Whether a failure for `reason` is logged (pure), the reason last
/// logged since the last success being `logged`: the first of an outage,
/// and again each time the reason changes (a backend first unreachable,
/// then up with the wrong certificate, says so), never twice in a row.
pub(super) fn logs_again(logged: Option<FailReason>, reason: FailReason) -> bool {
    logged != Some(reason)
}

/// The WebPKI verifier of the link's roots, noting on its [`Guard`] why a
/// certificate was refused (the error that reaches the dialer may be only
/// the alert that followed).
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) inner: Arc<WebPkiServerVerifier>,
    pub(super) guard: Arc<Guard>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let v = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(e) = &v {
            self.guard.note_refused(e);
        }
        v
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_once_per_outage_and_again_when_its_reason_changes() {
        assert!(logs_again(None, FailReason::Connect), "the first");
        assert!(!logs_again(Some(FailReason::Connect), FailReason::Connect));
        assert!(logs_again(Some(FailReason::Connect), FailReason::Name));
        assert!(!logs_again(Some(FailReason::Name), FailReason::Name));
        assert!(logs_again(Some(FailReason::Name), FailReason::Connect));
    }
}

//! DNS over QUIC on a TS (`quic` in its `[[ts]]`, RFC 9250, as Knot serves
//! it): its UDP sockets bound at start beside the TS's others, served by the
//! DNS server's DoQ endpoints ([`crate::server::doq`]) through the TS's own
//! request pipeline as a TCP query is (no truncation, no response rate
//! limiting, a zone transfer streamed on its stream where `axfr_allow` and
//! `xfr_key` allow it), its certificate and key files re-read on reload, its
//! counters in the TS's metrics (`dnslb_ts_doq_*`).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use super::RoleError;
use crate::config::QuicConfig;
use crate::server::Listeners;
use crate::server::doq::{DoqListeners, quic_server_config};
use crate::server::socket::BindError;
use crate::server::tls::CertSwap;
use crate::ts::TableServer;

/// The UDP sockets of `listen`, bound (port 0: a free one each).
///
/// # Errors
/// An address that cannot be bound (in use, not local, no permission).
pub(super) fn bind_sockets(listen: &[SocketAddr]) -> Result<Vec<UdpSocket>, BindError> {
    listen
        .iter()
        .map(|addr| {
            UdpSocket::bind(addr).map_err(|source| BindError {
                addr: *addr,
                proto: "quic",
                source,
            })
        })
        .collect()
}

/// A TS's DNS over QUIC: the certificate its endpoints serve (swapped by a
/// reload) and the files it is read from.
pub(super) struct TsDoq {
    certs: Arc<CertSwap>,
    cert: PathBuf,
    key: PathBuf,
    addrs: Vec<SocketAddr>,
}

impl TsDoq {
    /// [`TsDoq::start`] with the `quic` of the `[[ts]]` `ts` started from;
    /// `None` without one (a TS not started from a config file has none).
    ///
    /// # Errors
    /// As [`TsDoq::start`].
    pub(super) fn start_for(
        ts: &TableServer,
        listeners: &mut Listeners,
    ) -> Result<Option<TsDoq>, RoleError> {
        let started = ts.settings().started_from.as_ref();
        let quic = started.and_then(|(_, c)| c.quic.as_ref());
        quic.map(|q| TsDoq::start(q, ts, listeners)).transpose()
    }

    /// Binds `quic.listen`, reads its certificate and key, and hands the
    /// endpoints to `listeners` (served with the TS's DNS server, stopped
    /// with it); counted in `ts`'s metrics. Must run inside the runtime
    /// that serves them.
    ///
    /// # Errors
    /// An address that cannot be bound, a certificate or key that cannot be
    /// served, or QUIC refusing the socket.
    fn start(
        quic: &QuicConfig,
        ts: &TableServer,
        listeners: &mut Listeners,
    ) -> Result<TsDoq, RoleError> {
        let sockets = bind_sockets(&quic.listen)?;
        let certs = Arc::new(CertSwap::load(&quic.cert, &quic.key)?);
        let stats = ts.metrics().doq.get_or_init(Default::default).clone();
        let config = quic_server_config(certs.clone(), &stats)?;
        let doq = DoqListeners::new(sockets, config, stats)?;
        let addrs = doq.local_addrs();
        listeners.set_doq(doq);
        Ok(TsDoq {
            certs,
            cert: quic.cert.clone(),
            key: quic.key.clone(),
            addrs,
        })
    }

    /// Logs the addresses `doq` (if on) serves, bound (with the real port
    /// when 0 was asked), once the TS of that `name` serves.
    pub(super) fn log_ready(doq: Option<&TsDoq>, name: &str) {
        if let Some(doq) = doq {
            info!(ts = %name, addr = ?doq.addrs, "dns over quic ready");
        }
    }

    /// A reload's part for `doq` (if on), the TS named `ts`: the certificate
    /// and key files are read again and serve new connections; ones that
    /// cannot be served are refused (logged) and the old pair keeps serving.
    /// Connections open keep theirs.
    pub(super) fn reload(doq: Option<&TsDoq>, ts: &str) {
        let Some(doq) = doq else { return };
        match doq.certs.reload(&doq.cert, &doq.key) {
            Ok(()) => {
                info!(ts = %ts, "quic certificate reloaded");
                super::reload::warn_expiry("ts.quic", &doq.certs);
            }
            Err(err) => {
                warn!(ts = %ts, %err, "quic certificate reload refused; the old certificate keeps serving");
            }
        }
    }
}

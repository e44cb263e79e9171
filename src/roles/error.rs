//! Why a role could not start or stopped ([`RoleError`]), and the one
//! bind every role does the same way: its metrics listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::server::socket::BindError;
use crate::ts::error::ZoneError;

/// Binds the metrics HTTP listener of config key `key` at `addr`, when set.
pub(super) async fn bind_metrics(
    key: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, RoleError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) => Err(RoleError::Metrics { key, addr, source }),
    }
}

/// Why a role could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `dnslb ls` with a config that has no `[ls]`.
    #[error("{}: no [ls] section", .0.display())]
    NoLs(PathBuf),
    /// A DNS listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A metrics address (`ls.metrics`, `ts.metrics`) could not be bound.
    #[error("cannot listen on {key} {addr}")]
    Metrics {
        /// The config key.
        key: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `dnslb up`: a `[[ts]]` listen address cannot be bound now.
    #[error("{}: [[ts]] {name}", .path.display())]
    TsListen {
        /// The config file.
        path: PathBuf,
        /// The `[[ts]]`.
        name: String,
        /// Why.
        #[source]
        source: BindError,
    },
    /// `dnslb up`: a `[[ts]]` metrics address cannot be bound now.
    #[error("{}: [[ts]] {name}: cannot listen on metrics {addr}", .path.display())]
    TsMetrics {
        /// The config file.
        path: PathBuf,
        /// The `[[ts]]`.
        name: String,
        /// Its metrics address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `[ls.tls]` certificate or key cannot be served.
    #[error(transparent)]
    Cert(#[from] crate::config::CertError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsSetupError),
    /// DNS over QUIC could not be set up.
    #[error(transparent)]
    Doq(#[from] crate::server::doq::DoqSetupError),
    /// The zones of a table server could not be loaded.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// `dnslb up` cannot name its own executable for its children.
    #[error("cannot find the dnslb executable")]
    Exe(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// `dnslb up`: the config or a zone has problems (written before): nothing started.
    #[error("{}: nothing started; fix the problems above", .0.display())]
    Refused(PathBuf),
    /// The DNS server ended without being told to (a task died).
    #[error("the DNS server stopped on its own (see the log above)")]
    Died,
}

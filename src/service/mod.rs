//! The roles as library runners: [`ls`] (`dnslb ls`), [`ts`] (`dnslb ts`) and [`up`]
//! (`dnslb up`), each taking its config or bound sockets and a stream of [`Control`]s;
//! and [`ds`], `dnslb ds`'s lines (the zones a TS signs, found by loading its files).
//!
//! The binary feeds the [`Controls`] from the process's signals
//! ([`Controls::from_signals`]: SIGHUP reloads, SIGINT/SIGTERM stop); a test feeds them
//! from a channel ([`Controls::channel`]), so reload, NOTIFY and drain run in-process.
//! Errors are [`ServiceError`]s; the binary prints them as one line.
//!
//! Layering: this module is the floor (controls, errors, the stop grace); `ls` and `ts`
//! build on it; `up` builds on `ls` (its LS) and on [`crate::supervise`] (its children).

pub mod ds;
pub mod ls;
pub mod ts;
pub mod up;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::ConfigError;
use crate::server::socket::BindError;
use crate::shutdown::{Signal, Signals};
use crate::ts::source::ZoneError;

/// How long a stopping server may take to finish what it is doing.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a running role is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reread the config and zones (SIGHUP).
    Reload,
    /// Stop cleanly, answering what is in flight (SIGINT, SIGTERM).
    Shutdown,
}

/// Where a role's [`Control`]s come from: the process's signals, or a channel.
pub struct Controls(Source);

enum Source {
    Signals(Signals),
    Channel(mpsc::UnboundedReceiver<Control>),
}

impl Controls {
    /// The process's signals (install them with [`Signals::new`], inside the runtime).
    pub fn from_signals(signals: Signals) -> Controls {
        Controls(Source::Signals(signals))
    }

    /// A channel: what is sent on the sender comes out of the `Controls`; dropping
    /// every sender is a [`Control::Shutdown`].
    pub fn channel() -> (mpsc::UnboundedSender<Control>, Controls) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Controls(Source::Channel(rx)))
    }

    /// Waits for the next control (cancel-safe, for `select!`).
    pub async fn next(&mut self) -> Control {
        match &mut self.0 {
            Source::Signals(s) => match s.next().await {
                Signal::Stop => Control::Shutdown,
                Signal::Reload => Control::Reload,
            },
            Source::Channel(rx) => rx.recv().await.unwrap_or(Control::Shutdown),
        }
    }
}

/// Binds the metrics HTTP listener of config key `key` at `addr`, when set.
async fn bind_metrics(
    key: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, ServiceError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) => Err(ServiceError::Metrics { key, addr, source }),
    }
}

/// Why a role could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
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
    /// The zones of a table server could not be loaded.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// `dnslb up` cannot name its own executable for its children.
    #[error("cannot find the dnslb executable")]
    Exe(#[source] std::io::Error),
    /// The DNS server ended without being told to (a task died).
    #[error("the DNS server stopped on its own (see the log above)")]
    Died,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_channel_gives_what_is_sent_then_shutdown_once_closed() {
        let (tx, mut controls) = Controls::channel();
        tx.send(Control::Reload).unwrap();
        tx.send(Control::Shutdown).unwrap();
        assert_eq!(controls.next().await, Control::Reload);
        assert_eq!(controls.next().await, Control::Shutdown);
        drop(tx);
        assert_eq!(controls.next().await, Control::Shutdown);
        assert_eq!(controls.next().await, Control::Shutdown);
    }
}

//! Process signals: SIGINT/SIGTERM stop, SIGHUP reloads.
//!
//! The binary installs one [`Signals`] and hands it to the role it runs as its
//! [`Controls`](crate::roles::Controls) (a test hands a channel instead); the
//! role turns each into a reload or a drain.
use tokio::signal::unix::{Signal as UnixSignal, SignalKind, signal};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop cleanly.
    Stop,
    /// SIGHUP: reload configuration and zones.
    Reload,
}

/// The process's signal streams.
pub struct Signals {
    int: UnixSignal,
    term: UnixSignal,
    hup: UnixSignal,
}

impl Signals {
    /// Installs the handlers (call once, inside the runtime).
    ///
    /// # Errors
    /// The OS refused to install a handler.
    pub fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::Stop,
            _ = self.term.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

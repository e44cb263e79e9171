//! What a running role is told to do ([`Control`]), where that comes from
//! ([`Controls`]: the process's signals or a channel), and how long a
//! stopping server may take ([`SHUTDOWN_GRACE`]).

use std::time::Duration;

use tokio::sync::mpsc;

use crate::shutdown::{Signal, Signals};

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

//! A worker's doorbell ([`Doorbell`]): what others hand a worker (the
//! answers given later, the queries to send to backends) goes into a
//! bounded channel, and the worker's eventfd, which its `poll` watches, is
//! written only when the worker may be asleep (`armed`), not once per
//! item: a busy worker takes the items on its next pass without a system
//! call on either side.
//!
//! The handshake: a sender counts the item pending, puts it in the channel,
//! and writes the eventfd only when it finds the worker armed (and disarms
//! it); the worker, with nothing to do, arms itself and then waits only if
//! nothing is pending. All four steps are sequentially consistent, so either
//! the worker sees the count before it waits or the sender sees it armed.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{SyncSender, TrySendError};

/// The item a refused [`Doorbell::hand`] gives back, whatever the reason.
pub fn given_back<T>(err: TrySendError<T>) -> T {
    match err {
        TrySendError::Full(item) | TrySendError::Disconnected(item) => item,
    }
}

/// One worker's eventfd with its armed flag and pending count; see the
/// module's header.
pub struct Doorbell {
    fd: OwnedFd,
    /// Set by the worker before it may wait: the next item handed rings.
    armed: AtomicBool,
    /// Items handed and not taken yet.
    pending: AtomicUsize,
}

impl Doorbell {
    /// A new eventfd (non-blocking, close-on-exec), disarmed.
    ///
    /// # Errors
    /// The OS error of `eventfd(2)`.
    pub fn new() -> io::Result<Self> {
        let fd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
        )?;
        Ok(Doorbell {
            fd,
            armed: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
        })
    }

    /// Puts `item` in `tx` for the worker, ringing when it may be asleep;
    /// gives it back when the channel is full or the worker gone.
    ///
    /// # Errors
    /// The item, not handed, and why (full, or the worker gone).
    pub fn hand<T>(&self, tx: &SyncSender<T>, item: T) -> Result<(), TrySendError<T>> {
        // Counted before it is sent: the worker never counts below zero.
        self.pending.fetch_add(1, SeqCst);
        match tx.try_send(item) {
            Ok(()) => {
                if self.armed.swap(false, SeqCst) {
                    let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
                }
                Ok(())
            }
            Err(err) => {
                self.pending.fetch_sub(1, SeqCst);
                Err(err)
            }
        }
    }

    /// The worker took `n` items out of its channels.
    pub fn took(&self, n: usize) {
        if n > 0 {
            self.pending.fetch_sub(n, SeqCst);
        }
    }

    /// The worker has nothing to do: armed; true when it may wait (nothing
    /// is pending, so the next item handed rings).
    pub fn arm(&self) -> bool {
        self.armed.store(true, SeqCst);
        self.pending.load(SeqCst) == 0
    }

    /// The worker is awake again (its wait over, or not begun): disarmed,
    /// and the eventfd read empty when `rung` (its `poll` saw it readable).
    pub fn woke(&self, rung: bool) {
        self.armed.store(false, SeqCst);
        if rung {
            let mut drained = [0u8; 8];
            let _ = rustix::io::read(&self.fd, &mut drained);
        }
    }

    /// The eventfd, for the worker's `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether the eventfd is readable now.
    fn rung(bell: &Doorbell) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &bell.fd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    fn a_busy_worker_is_not_rung_an_armed_one_is_rung_once() {
        let bell = Doorbell::new().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        // Awake: handed without a ring.
        bell.hand(&tx, 1).unwrap();
        assert!(!rung(&bell));
        // Something pending: the worker may not wait.
        assert!(!bell.arm());
        bell.woke(false);
        assert_eq!(rx.try_recv(), Ok(1));
        bell.took(1);
        // Nothing pending: it may wait, and the next item rings, once.
        assert!(bell.arm());
        bell.hand(&tx, 2).unwrap();
        bell.hand(&tx, 3).unwrap();
        assert!(rung(&bell));
        bell.woke(true);
        assert!(!rung(&bell));
        assert_eq!((rx.try_recv(), rx.try_recv()), (Ok(2), Ok(3)));
        bell.took(2);
        assert!(bell.arm());
    }

    #[test]
    fn a_full_or_closed_channel_gives_the_item_back_and_counts_nothing() {
        let bell = Doorbell::new().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        bell.hand(&tx, 1).unwrap();
        assert_eq!(bell.hand(&tx, 2), Err(TrySendError::Full(2)));
        assert_eq!(rx.try_recv(), Ok(1));
        bell.took(1);
        drop(rx);
        assert_eq!(bell.hand(&tx, 3), Err(TrySendError::Disconnected(3)));
        assert!(bell.arm());
    }

    /// A sender on another thread never leaves the worker asleep with an
    /// item pending: every item is taken within the worker's bounded waits
    /// long before their sum.
    #[test]
    fn items_handed_from_another_thread_all_wake_the_worker() {
        const N: usize = 20_000;
        let bell = std::sync::Arc::new(Doorbell::new().unwrap());
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let sender = {
            let bell = bell.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let mut item = i;
                    while let Err(back) = bell.hand(&tx, item).map_err(given_back) {
                        item = back;
                        std::thread::yield_now();
                    }
                }
            })
        };
        let (mut got, mut waits) = (0, 0u32);
        let started = std::time::Instant::now();
        while got < N {
            let mut n = 0;
            while rx.try_recv().is_ok() {
                n += 1;
            }
            bell.took(n);
            got += n;
            if n == 0 && bell.arm() {
                let mut fds = [rustix::event::PollFd::new(
                    &bell.fd,
                    rustix::event::PollFlags::IN,
                )];
                let t = rustix::event::Timespec {
                    tv_sec: 5,
                    tv_nsec: 0,
                };
                let r = rustix::event::poll(&mut fds, Some(&t)).unwrap();
                waits += 1;
                bell.woke(r == 1);
            } else {
                bell.woke(false);
            }
        }
        sender.join().unwrap();
        // A lost ring would cost a wait of 5 s.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{waits} waits took {:?}",
            started.elapsed()
        );
    }
}

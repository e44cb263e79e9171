//! The one answer an async upstream exchange waits for: a one-shot channel
//! ([`channel`]) whose shared box is reused by the next exchange on the
//! same thread once both ends are gone, so a query's wait for its answer
//! allocates nothing in steady state.
//!
//! The [`Sender`] sits in the socket's ID table ([`super::ids::Waiter`]);
//! its reader sends the answer, or drops it unsent (the socket stopped):
//! the [`Receiver`] then ends with [`Closed`]. A box goes back to its
//! thread's free list only when the receiver is its last holder (no sender
//! can reach it any more).
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Boxes kept per thread for reuse.
const KEPT: usize = 256;

/// The sender was dropped before it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

#[derive(Debug, Default)]
enum State {
    #[default]
    Empty,
    Full(Vec<u8>),
    Closed,
}

/// What both ends share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    waker: AtomicWaker,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

thread_local! {
    static FREE: RefCell<Vec<Arc<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// The sending end: sends one answer, or closes the channel when dropped.
#[derive(Debug)]
pub struct Sender(Option<Arc<Shared>>);

/// The receiving end: a future of the answer.
#[derive(Debug)]
pub struct Receiver(Arc<Shared>);

/// A new channel, on a box of this thread's free list when there is one.
pub fn channel() -> (Sender, Receiver) {
    let shared = FREE
        .try_with(|f| f.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    (Sender(Some(shared.clone())), Receiver(shared))
}

impl Sender {
    /// Hands `answer` over; `Err` with it when the receiver is gone.
    ///
    /// # Errors
    /// The receiver was dropped: `answer` comes back.
    pub fn send(mut self, answer: Vec<u8>) -> Result<(), Vec<u8>> {
        let Some(shared) = self.0.take() else {
            return Err(answer);
        };
        if Arc::strong_count(&shared) == 1 {
            return Err(answer);
        }
        *shared.state() = State::Full(answer);
        shared.waker.wake();
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            *shared.state() = State::Closed;
            shared.waker.wake();
        }
    }
}

impl Future for Receiver {
    type Output = Result<Vec<u8>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = &self.0;
        let taken = |state: &mut State| match std::mem::take(state) {
            State::Empty => None,
            State::Full(answer) => Some(Ok(answer)),
            State::Closed => {
                *state = State::Closed;
                Some(Err(Closed))
            }
        };
        if let Some(r) = taken(&mut shared.state()) {
            return Poll::Ready(r);
        }
        shared.waker.register(cx.waker());
        // Sent between the first look and the registration?
        match taken(&mut shared.state()) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The last holder: no sender can reach the box, it can be reused.
        if Arc::strong_count(&self.0) != 1 {
            return;
        }
        // The sender's last touch of the box (its send or close, its wake)
        // came before it let go of it: seen before the box is reused.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        *self.0.state() = State::Empty;
        let _ = self.0.waker.take();
        let shared = self.0.clone();
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEPT {
                f.push(shared);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_sent_is_received_and_the_box_is_reused() {
        let (tx, rx) = channel();
        let at = Arc::as_ptr(&rx.0);
        assert_eq!(tx.send(vec![1, 2]), Ok(()));
        assert_eq!(rx.await, Ok(vec![1, 2]));
        let (tx, rx) = channel();
        assert_eq!(Arc::as_ptr(&rx.0), at, "the same box");
        let waiting = tokio::spawn(rx);
        tokio::task::yield_now().await;
        assert_eq!(tx.send(vec![3]), Ok(()));
        assert_eq!(waiting.await.unwrap(), Ok(vec![3]));
    }

    #[tokio::test]
    async fn a_sender_dropped_unsent_closes_and_a_receiver_gone_refuses() {
        let (tx, rx) = channel();
        drop(tx);
        assert_eq!(rx.await, Err(Closed));
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(vec![9]), Err(vec![9]));
        // A box still held by a sender is not reused.
        let (tx, rx) = channel();
        let held = Arc::as_ptr(&rx.0);
        drop(rx);
        let (_tx2, rx2) = channel();
        assert_ne!(Arc::as_ptr(&rx2.0), held);
        drop(tx);
    }
}

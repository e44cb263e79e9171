//! A connection's deferred answers in flight, polled by the connection's own
//! task in slots reused from one query to the next: no task spawned, no set
//! entry and no waker allocated per query once the connection has had as
//! many queries in flight as it will (a slot, and its waker, is allocated
//! the first time a connection needs it and kept to the connection's end).
//!
//! Each slot has its own waker, which queues the slot's index on the
//! set's ready list and wakes the connection's task; a poll of the set polls
//! only the slots queued, at most one round of them per poll (a future
//! that wakes itself at once waits for the next poll, so one busy answer
//! cannot hold the connection's task).
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// What the slots' wakers share with the set: the connection's task and
/// the slots to poll.
#[derive(Default)]
struct ReadyList {
    task: AtomicWaker,
    /// Indices of the slots woken since their last poll, each at most once,
    /// in the order they woke (its capacity is kept at the number of slots:
    /// no push allocates).
    ready: Mutex<VecDeque<usize>>,
}

impl ReadyList {
    fn ready(&self) -> std::sync::MutexGuard<'_, VecDeque<usize>> {
        // A push or a pop cannot leave the list inconsistent.
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One slot's waker.
struct SlotWaker {
    index: usize,
    /// Whether the slot is on the ready list now.
    queued: AtomicBool,
    list: Arc<ReadyList>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.list.ready().push_back(self.index);
        }
        self.list.task.wake();
    }
}

/// One slot: its answer in flight (with what comes out beside it), if any,
/// and its waker.
struct Slot<F, E> {
    busy: Option<(F, E)>,
    wake: Arc<SlotWaker>,
    waker: Waker,
}

/// Deferred answers in flight (futures `F`, each with its `E` handed back
/// beside its output), in reused slots.
pub(crate) struct AnswerSlots<F, E> {
    slots: Vec<Slot<F, E>>,
    /// The slots without an answer in flight.
    free: Vec<usize>,
    list: Arc<ReadyList>,
    len: usize,
}

impl<F, E> Default for AnswerSlots<F, E> {
    fn default() -> Self {
        AnswerSlots {
            slots: Vec::new(),
            free: Vec::new(),
            list: Arc::default(),
            len: 0,
        }
    }
}

impl<F: Future + Unpin, E> AnswerSlots<F, E> {
    /// Answers in flight.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes `fut` (and `extra`, handed back with its output) into a free
    /// slot, a new one when none is free; it is polled at the next poll.
    pub(crate) fn push(&mut self, fut: F, extra: E) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let index = self.slots.len();
                let wake = Arc::new(SlotWaker {
                    index,
                    queued: AtomicBool::new(false),
                    list: self.list.clone(),
                });
                let waker = Waker::from(wake.clone());
                self.slots.push(Slot {
                    busy: None,
                    wake,
                    waker,
                });
                // Room for every slot on the ready list, and on the free one.
                let n = self.slots.len();
                let mut ready = self.list.ready();
                let more = n.saturating_sub(ready.len());
                ready.reserve(more);
                drop(ready);
                let more = n.saturating_sub(self.free.len());
                self.free.reserve(more);
                index
            }
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.busy = Some((fut, extra));
        self.len += 1;
        slot.wake.wake_by_ref();
    }

    /// Drops every answer in flight (their slots are kept).
    pub(crate) fn clear(&mut self) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.busy.take().is_some() {
                self.free.push(i);
            }
        }
        self.len = 0;
    }

    /// The next answer to complete, with its `extra`; `None` when none is
    /// in flight.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(F::Output, E)>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        self.list.task.register(cx.waker());
        // One round: each slot polled at most once a call.
        for _ in 0..self.slots.len() {
            let Some(index) = self.list.ready().pop_front() else {
                return Poll::Pending;
            };
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            // A swap, not a store: it reads what a wake-up on another thread
            // wrote (`queued` already set: it pushed nothing), so what that
            // wake-up announced is seen by the poll below.
            slot.wake.queued.swap(false, Ordering::AcqRel);
            let Some((fut, _)) = slot.busy.as_mut() else {
                continue; // dropped by `clear` after its wake-up
            };
            let mut slot_cx = Context::from_waker(&slot.waker);
            if let Poll::Ready(out) = Pin::new(fut).poll(&mut slot_cx) {
                let Some((_, extra)) = slot.busy.take() else {
                    continue;
                };
                self.free.push(index);
                self.len -= 1;
                return Poll::Ready(Some((out, extra)));
            }
        }
        // Slots still queued: the next poll takes them.
        if !self.list.ready().is_empty() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// [`AnswerSlots::poll_next`] as a future.
    pub(crate) fn next(&mut self) -> impl Future<Output = Option<(F::Output, E)>> + '_ {
        std::future::poll_fn(move |cx| self.poll_next(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

    /// Answers complete in the order their futures do, not the order they
    /// came, each with its own extra; slots are reused afterwards.
    #[tokio::test(start_paused = true)]
    async fn answers_come_out_as_they_complete_and_slots_are_reused() {
        let mut set: AnswerSlots<Boxed, u32> = AnswerSlots::default();
        for (i, ms) in [(1u32, 30u64), (2, 10), (3, 20)] {
            let fut: Boxed = Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                i * 10
            });
            set.push(fut, i);
        }
        assert_eq!(set.len(), 3);
        let mut order = Vec::new();
        while let Some((out, extra)) = set.next().await {
            assert_eq!(out, extra * 10);
            order.push(extra);
        }
        assert_eq!(order, [2, 3, 1]);
        assert!(set.is_empty());
        for i in 0..3 {
            set.push(Box::pin(async move { i }), i);
        }
        assert_eq!(set.slots.len(), 3, "the slots were reused");
        let mut got = BTreeSet::new();
        while let Some((out, _)) = set.next().await {
            got.insert(out);
        }
        assert_eq!(got, BTreeSet::from([0, 1, 2]));
    }

    /// A future that wakes itself at once does not keep the poll going:
    /// the others woken after it are polled before it is again, and `clear`
    /// drops what is left.
    #[tokio::test]
    async fn a_future_that_always_wakes_itself_does_not_starve_the_others() {
        let mut set: AnswerSlots<Boxed, u32> = AnswerSlots::default();
        set.push(
            Box::pin(async {
                loop {
                    tokio::task::yield_now().await;
                }
            }),
            0,
        );
        set.push(Box::pin(std::future::pending()), 1);
        set.push(Box::pin(async { 7 }), 2);
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), set.next());
        let (out, extra) = next.await.expect("the ready answer came").unwrap();
        assert_eq!((out, extra), (7, 2));
        assert_eq!(set.len(), 2);
        set.clear();
        assert!(set.is_empty());
        assert!(set.next().await.is_none());
    }
}

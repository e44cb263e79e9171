//! Answers awaited on tasks of their own, outside the server layer's drain:
//! an XDP worker's answers given later (the LS's forwarded queries, the
//! TS's delayed ones), and a UDP worker's queries for encrypted backends.
//! Each holds a place in a count ([`Detached`]) from its query until its
//! answer is sent or dropped ([`Awaited`], given back however it ends), so
//! that a stop waits for them: the XDP path before it ends its workers, and
//! the LS before it closes the upstream pools those answers still come
//! through ([`Detached::settled`]).
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How often [`Detached::settled`] looks again.
const CHECK: Duration = Duration::from_millis(10);

/// The answers awaited outside the server layer, in flight.
#[derive(Debug, Clone, Default)]
pub struct Detached(Arc<AtomicUsize>);

impl Detached {
    /// A place, `None` (nothing taken) when `max` are taken.
    pub(crate) fn take(&self, max: usize) -> Option<Awaited> {
        if self.0.fetch_add(1, Relaxed) >= max {
            self.0.fetch_sub(1, Relaxed);
            return None;
        }
        Some(Awaited(self.0.clone()))
    }

    /// How many are in flight.
    pub fn running(&self) -> usize {
        self.0.load(Relaxed)
    }

    /// Waits until none is in flight or `grace` has gone by (on the
    /// runtime's clock); whether none is.
    pub async fn settled(&self, grace: Duration) -> bool {
        let end = tokio::time::Instant::now() + grace;
        while self.running() > 0 {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(CHECK).await;
        }
        true
    }
}

/// One place in a [`Detached`] count, given back when dropped.
#[derive(Debug)]
pub(crate) struct Awaited(Arc<AtomicUsize>);

impl Drop for Awaited {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_given_back_however_it_ends_and_none_past_the_bound() {
        let d = Detached::default();
        let a = d.take(2).unwrap();
        let b = d.take(2).unwrap();
        assert!(d.take(2).is_none(), "the bound holds");
        assert_eq!(d.running(), 2, "a refused take leaves nothing");
        drop(a);
        let moved = std::thread::spawn(move || drop(b));
        moved.join().unwrap();
        assert_eq!(d.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn settled_waits_for_the_last_place_or_the_grace() {
        let d = Detached::default();
        let held = d.take(usize::MAX).unwrap();
        let start = tokio::time::Instant::now();
        assert!(!d.settled(Duration::from_secs(2)).await);
        assert!(start.elapsed() >= Duration::from_secs(2));
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { d.settled(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(held);
        assert!(waiting.await.unwrap(), "settled once the place is back");
    }
}

//! The bounded queue between the servers and the writer task: frames
//! encoded straight into one byte buffer under a short lock, taken whole by
//! the writer.
//!
//! Not a channel of `Vec<u8>`: that cost an allocation and a free per frame
//! and, worse, woke the writer task per frame (a futex wake and a context
//! switch on a busy machine, four times per query with every LS message on).
//! Here a producer appends the frame (its 4-byte length and payload) to the
//! buffer in place, the length filled in once the payload is written (no
//! length computed first, no copy from a frame built aside). A fast-path
//! worker encodes a round's frames into its own buffer with no lock
//! ([`super::Staged`], [`push_frame`]) and appends them all under one lock
//! at the round's end ([`Queue::append`]: one copy of the round's bytes);
//! other producers lock for a frame, or a few ([`Queue::producer`]). The
//! writer is woken after the lock is let go, never under it. The writer
//! swaps the buffer with its own empty one and
//! writes the lot with one write. The writer is woken when the buffer goes
//! from empty to not empty ([`Queue::first_frame`]), then lets a batch
//! gather for a moment ([`super::writer`]) unless it fills first (
//! [`BATCH_FRAMES`], [`Queue::batch_full`]): as fstrm's I/O thread, which
//! dnsdist writes through, is woken only past a threshold of queued frames
//! or by its flush timer. So it wakes a few hundred times a second at most
//! whatever the rate, and at a low rate once per many queries rather than
//! once per query.
//!
//! The bound is in frames (`queue_size`) and in bytes (`queue_bytes`): a
//! frame that would take the queue past either, or any once closed, is
//! not queued, and the caller counts it dropped. Frames run from a hundred
//! bytes to 64 KiB (a large answer over TCP): a bound in frames alone let
//! a stalled collector hold a gigabyte. The writer's batch, swapped out
//! whole, is one more such buffer at most.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::frame;

/// Frames that make a batch worth writing at once.
pub(super) const BATCH_FRAMES: usize = 512;

/// The frames waiting for the writer.
#[derive(Debug)]
pub(super) struct Queue {
    /// The buffer and its count.
    state: Mutex<State>,
    /// Wakes the writer when the buffer goes from empty to not empty, or on
    /// close.
    first: Notify,
    /// Wakes the writer when the buffer holds [`BATCH_FRAMES`], or on close.
    full: Notify,
    /// Most frames waiting.
    limit: usize,
    /// Most bytes waiting (frames and their lengths).
    byte_limit: usize,
}

/// What the lock guards.
#[derive(Debug, Default)]
struct State {
    /// Data frames, each its length and payload, back to back.
    bytes: Vec<u8>,
    /// How many frames `bytes` holds.
    frames: usize,
    /// No more frames are taken (every producer gone, or shutdown).
    closed: bool,
}

impl Queue {
    /// An empty queue of at most `limit` frames (at least one) and
    /// `byte_limit` bytes.
    pub(super) fn new(limit: usize, byte_limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            first: Notify::new(),
            full: Notify::new(),
            limit: limit.max(1),
            byte_limit,
        }
    }

    /// The lock; a producer that panicked while holding it may have left
    /// half a frame: the buffer is emptied (its frames are lost, uncounted).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut s = poisoned.into_inner();
            s.bytes.clear();
            s.frames = 0;
            self.state.clear_poison();
            s
        })
    }

    /// The queue locked for appending frames ([`Producer::push`]), one
    /// frame or a round's: the lock taken once, the writer woken (if need
    /// be) once, when the [`Producer`] is dropped.
    pub(super) fn producer(&self) -> Producer<'_> {
        let state = self.lock();
        let before = state.frames;
        Producer {
            queue: self,
            state: Some(state),
            before,
        }
    }

    /// Appends `frames` whole data frames, back to back in `bytes` (as a
    /// [`Staged`] holds them), under one lock: as many as the bound leaves
    /// room for, in order; none once closed. Returns how many were taken
    /// (the caller counts the rest dropped); wakes the writer as
    /// [`Queue::producer`] does, after the lock is let go.
    pub(super) fn append(&self, bytes: &[u8], frames: usize) -> usize {
        if frames == 0 {
            return 0;
        }
        let (before, after) = {
            let mut s = self.lock();
            let room = if s.closed {
                0
            } else {
                self.limit.saturating_sub(s.frames)
            };
            let bytes_room = self.byte_limit.saturating_sub(s.bytes.len());
            let (taken, len) = if frames <= room && bytes.len() <= bytes_room {
                (frames, bytes.len())
            } else {
                frames_within(bytes, room, bytes_room)
            };
            s.bytes.extend_from_slice(&bytes[..len]);
            let before = s.frames;
            s.frames += taken;
            (before, s.frames)
        };
        self.woken(before, after);
        after - before
    }

    /// Wakes the writer for a change from `before` to `after` frames: the
    /// first frame in an empty queue, a batch reached. Called once the lock
    /// is let go: a writer woken at once (its thread run in place of the
    /// producer's, on a busy core) must not find the producer holding it.
    fn woken(&self, before: usize, after: usize) {
        if after == before {
            return;
        }
        if before == 0 {
            self.first.notify_one();
        }
        if before < BATCH_FRAMES && after >= BATCH_FRAMES {
            self.full.notify_one();
        }
    }

    /// Most frames waiting.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Moves every queued frame into `into` (emptied first; the queue keeps
    /// `into`'s old allocation for the next frames); returns how many.
    pub(super) fn take(&self, into: &mut Vec<u8>) -> u64 {
        into.clear();
        let mut s = self.lock();
        std::mem::swap(&mut s.bytes, into);
        std::mem::take(&mut s.frames) as u64
    }

    /// Waits until a frame came into the empty queue (since the last
    /// take), or it was closed. Spurious returns happen: take, and wait
    /// again when there is nothing.
    pub(super) async fn first_frame(&self) {
        self.first.notified().await;
    }

    /// Waits until the queue holds a batch of [`BATCH_FRAMES`], or was
    /// closed (spurious returns happen too).
    pub(super) async fn batch_full(&self) {
        self.full.notified().await;
    }

    /// Takes no more frames (those queued stay, for [`Queue::take`]).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.first.notify_one();
        self.full.notify_one();
    }

    /// Whether no frame waits.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.lock().frames == 0
    }

    /// Whether [`Queue::close`] was called and whether no frame waits,
    /// under one lock (the writer asks both before each batch).
    pub(super) fn closed_and_empty(&self) -> (bool, bool) {
        let s = self.lock();
        (s.closed, s.frames == 0)
    }

    /// Whether [`Queue::close`] was called.
    #[cfg(test)]
    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// The locked queue, taking frames; the writer is woken on drop when the
/// queue went from empty to not empty, or reached a batch.
pub(super) struct Producer<'a> {
    /// The queue, for its bound and its wake-ups.
    queue: &'a Queue,
    /// Its locked state (taken out on drop, to wake the writer once it is
    /// let go).
    state: Option<MutexGuard<'a, State>>,
    /// How many frames were queued when it was locked.
    before: usize,
}

impl Producer<'_> {
    /// Appends one data frame whose payload `encode` appends (its length
    /// written before it once known); `false` (nothing queued) when the
    /// queue is full or closed, or `encode` wrote nothing or more than a
    /// frame can hold.
    #[inline]
    pub(super) fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        let Some(s) = self.state.as_deref_mut() else {
            return false;
        };
        if s.closed || s.frames >= self.queue.limit {
            return false;
        }
        let start = s.bytes.len();
        if !push_frame(&mut s.bytes, encode) {
            return false;
        }
        // Over the byte bound: taken back (the allocation grown for it is
        // kept for the next frames, within the bound's size plus a frame).
        if s.bytes.len() > self.queue.byte_limit {
            s.bytes.truncate(start);
            return false;
        }
        s.frames += 1;
        true
    }
}

impl Drop for Producer<'_> {
    fn drop(&mut self) {
        let after = self.state.take().map_or(self.before, |s| s.frames);
        self.queue.woken(self.before, after);
    }
}

/// Appends to `bytes` one data frame whose payload `encode` appends, its
/// 4-byte length written before it once known; `false` (nothing appended)
/// when `encode` wrote nothing or more than a frame can hold.
#[inline]
pub(super) fn push_frame(bytes: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
    let start = bytes.len();
    bytes.extend_from_slice(&[0; 4]);
    encode(bytes);
    let header = frame::data_header(bytes.len() - start - 4);
    match (header, bytes.get_mut(start..start + 4)) {
        (Some(header), Some(room)) => {
            room.copy_from_slice(&header);
            true
        }
        _ => {
            bytes.truncate(start);
            false
        }
    }
}

/// The first data frames of `bytes` (whole frames, each its 4-byte length
/// and payload, as [`push_frame`] writes them) that fit in `n` frames and
/// `room` bytes: how many, and their length.
fn frames_within(bytes: &[u8], n: usize, room: usize) -> (usize, usize) {
    let (mut taken, mut at) = (0, 0);
    while taken < n {
        let Some(head) = bytes.get(at..at + 4) else {
            break;
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = (at + 4 + len).min(bytes.len());
        if end > room {
            break;
        }
        (taken, at) = (taken + 1, end);
    }
    (taken, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((head, tail)) = rest.split_first_chunk::<4>() {
            let n = u32::from_be_bytes(*head) as usize;
            out.push(&tail[..n]);
            rest = &tail[n..];
        }
        out
    }

    /// Queues one frame of `payload`.
    fn push(q: &Queue, payload: &[u8]) -> bool {
        q.producer().push(|b| b.extend_from_slice(payload))
    }

    #[test]
    fn frames_are_taken_whole_in_order_with_their_lengths() {
        let q = Queue::new(8, usize::MAX);
        assert!(push(&q, b"abc"));
        {
            let mut round = q.producer();
            assert!(round.push(|b| b.push(b'z')));
            assert!(round.push(|b| b.extend_from_slice(&[7; 300])));
        }
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), 3);
        assert_eq!(frames(&got), [&b"abc"[..], b"z", &[7; 300][..]]);
        assert_eq!(&got[12..16], &300u32.to_be_bytes(), "its length first");
        assert_eq!(q.take(&mut got), 0);
        assert!(got.is_empty());
    }

    #[test]
    fn the_bound_is_in_frames_and_a_take_frees_it() {
        let q = Queue::new(2, usize::MAX);
        assert!(push(&q, &[1]));
        {
            let mut round = q.producer();
            assert!(round.push(|b| b.push(2)));
            assert!(!round.push(|b| b.push(3)), "full");
        }
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), 2);
        assert_eq!(frames(&got), [&[1u8][..], &[2]]);
        assert!(push(&q, &[4]));
    }

    #[test]
    fn an_empty_frame_or_a_closed_queue_queue_nothing() {
        let q = Queue::new(8, usize::MAX);
        assert!(!q.producer().push(|_| {}), "0 is the escape");
        assert!(q.is_empty());
        q.close();
        assert!(q.is_closed());
        assert!(!push(&q, &[1]));
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), 0);
        assert!(got.is_empty());
    }

    /// `payloads` as a worker stages them: whole frames back to back.
    fn staged(payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for p in payloads {
            assert!(push_frame(&mut bytes, |b| b.extend_from_slice(p)));
        }
        bytes
    }

    #[test]
    fn an_appended_round_takes_what_the_bound_leaves_in_order() {
        let q = Queue::new(4, usize::MAX);
        assert!(push(&q, &[1]));
        let round = staged(&[&[2], &[3, 3], &[4, 4, 4], &[5]]);
        assert_eq!(q.append(&round, 4), 3, "room for three");
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), 4);
        assert_eq!(frames(&got), [&[1u8][..], &[2], &[3, 3], &[4, 4, 4]]);
        assert_eq!(q.append(&round, 4), 4);
        assert_eq!(q.take(&mut got), 4);
        assert_eq!(got, round);
        assert_eq!(q.append(&round, 0), 0);
        q.close();
        assert_eq!(q.append(&round, 4), 0, "closed");
        assert!(q.is_empty());
    }

    #[test]
    fn a_cut_is_made_at_a_frame_boundary() {
        let round = staged(&[&[1; 3], &[2; 300], &[3]]);
        let all = usize::MAX;
        assert_eq!(frames_within(&round, 0, all), (0, 0));
        assert_eq!(frames_within(&round, 1, all), (1, 7));
        assert_eq!(frames_within(&round, 2, all), (2, 311));
        assert_eq!(frames_within(&round, 3, all), (3, round.len()));
        assert_eq!(frames_within(&round, 9, all), (3, round.len()));
        assert_eq!(frames_within(&round, 9, 310), (1, 7), "bytes cut first");
        assert_eq!(frames_within(&round, 9, 6), (0, 0));
    }

    /// Large frames (answers over TCP) fill the byte bound long before the
    /// frame bound: what would pass it is dropped, whether pushed one by
    /// one or appended as a round, and smaller frames still fit in what is
    /// left; a take frees it.
    #[test]
    fn the_bound_is_in_bytes_too() {
        let big = [9u8; 60_000];
        let q = Queue::new(16_384, 200_000);
        for _ in 0..3 {
            assert!(push(&q, &big));
        }
        assert!(!push(&q, &big), "a fourth would pass 200,000 bytes");
        assert!(push(&q, &[1; 100]), "a small one fits in what is left");
        let round = staged(&[&[2; 10_000], &big, &[3; 10]]);
        assert_eq!(q.append(&round, 3), 1, "the first fits, the big one not");
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), 5);
        assert!(got.len() <= 200_000, "{}", got.len());
        assert_eq!(frames(&got).len(), 5);
        // 16,384 frames of 60 KB would have been a gigabyte.
        let mut queued = 0;
        for _ in 0..16_384 {
            queued += usize::from(push(&q, &big));
        }
        assert_eq!(queued, 3);
        assert_eq!(q.take(&mut got), 3);
        assert!(push(&q, &big), "a take frees the room");
    }

    #[tokio::test]
    async fn the_first_frame_and_a_full_batch_wake_the_writer_and_so_does_close() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        // Whether a wait is over at once (its wake-up was stored).
        fn at_once(f: impl Future<Output = ()>) -> bool {
            let mut f = std::pin::pin!(f);
            f.as_mut().poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
        }
        let q = Queue::new(BATCH_FRAMES * 4, usize::MAX);
        assert!(!at_once(q.first_frame()), "nothing queued yet");
        drop(q.producer());
        assert!(!at_once(q.first_frame()), "a round that queued nothing");
        assert!(push(&q, &[1]));
        assert!(at_once(q.first_frame()), "the first frame wakes");
        for _ in 1..BATCH_FRAMES - 1 {
            assert!(push(&q, &[1]));
        }
        assert!(!at_once(q.batch_full()), "one frame short of a batch");
        assert!(!at_once(q.first_frame()), "only the first frame wakes");
        assert!(push(&q, &[1]));
        assert!(at_once(q.batch_full()), "a full batch wakes");
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got), BATCH_FRAMES as u64);
        {
            // A round that fills a batch from empty wakes both, once.
            let mut round = q.producer();
            for _ in 0..BATCH_FRAMES + 1 {
                assert!(round.push(|b| b.push(1)));
            }
        }
        assert!(at_once(q.first_frame()) && at_once(q.batch_full()));
        assert_eq!(q.take(&mut got), BATCH_FRAMES as u64 + 1);
        // So does an appended round, whole.
        let one: &[u8] = &[1];
        let round = staged(&[one; BATCH_FRAMES]);
        assert_eq!(q.append(&round, BATCH_FRAMES), BATCH_FRAMES);
        assert!(at_once(q.first_frame()) && at_once(q.batch_full()));
        assert_eq!(q.append(&round[..5], 1), 1);
        assert!(!at_once(q.first_frame()) && !at_once(q.batch_full()));
        assert_eq!(q.take(&mut got), BATCH_FRAMES as u64 + 1);
        q.close();
        assert!(at_once(q.first_frame()) && at_once(q.batch_full()));
        assert!(q.is_closed());
    }
}

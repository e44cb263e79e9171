//! What a worker that calls a [`Handler`](super::Handler) itself, query
//! after query on one thread (an XDP worker), keeps for it from one query
//! to the next ([`WorkerLocal`]): the handler's own state for that worker
//! (the LS: its dynamic-block counts, no lock shared with other threads per
//! query), and a buffer an answer made at once is written into, given back
//! once the answer has been copied out (no allocation per answer).
use std::any::Any;

/// The largest buffer kept for the next answer (a larger one is dropped).
const SPARE_MAX: usize = 64 * 1024;

/// A worker's state for its handler; see the module's docs.
#[derive(Default)]
pub struct WorkerLocal {
    /// The handler's own, made by [`Handler::worker_local`](super::Handler::worker_local).
    pub state: Option<Box<dyn Any + Send>>,
    /// A buffer for the next answer (empty, its room kept).
    pub spare: Vec<u8>,
}

impl WorkerLocal {
    /// A worker's state holding the handler's `state`.
    pub fn with(state: impl Any + Send) -> Self {
        WorkerLocal {
            state: Some(Box::new(state)),
            spare: Vec::new(),
        }
    }

    /// The handler's state, when it is a `T`.
    pub fn state_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.state.as_mut()?.downcast_mut()
    }

    /// Keeps `buf` (an answer sent) for the next answer, emptied; unless
    /// it is larger than [`SPARE_MAX`] or smaller than the one kept.
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= SPARE_MAX && buf.capacity() >= self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_the_next_one_lent_and_a_huge_one_is_not_kept() {
        let mut l = WorkerLocal::with(7u32);
        assert_eq!(l.state_mut::<u32>().copied(), Some(7));
        assert!(l.state_mut::<u64>().is_none(), "another type is not it");
        let mut b = Vec::with_capacity(512);
        b.extend_from_slice(b"answer");
        let at = b.as_ptr();
        l.give_back(b);
        assert!(l.spare.is_empty() && l.spare.capacity() >= 512);
        let lent = std::mem::take(&mut l.spare);
        assert_eq!(lent.as_ptr(), at, "the same buffer");
        l.give_back(Vec::with_capacity(SPARE_MAX + 1));
        assert_eq!(l.spare.capacity(), 0, "too large: dropped");
    }
}

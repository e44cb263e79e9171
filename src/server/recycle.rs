//! A per-thread free list of message buffers, so a stream query's bytes do
//! not cost an allocation each time they are copied: the query's own copy,
//! the copy sent upstream and the upstream answer are taken from it
//! ([`copy_of`]), and given back ([`give`]) once done with (the query's
//! when it is resolved, the answer once a TCP or DoT connection has
//! written it). A buffer that is never given back (a DoH answer handed to
//! HTTP) costs what it did without the list.
//!
//! The list is bounded ([`KEPT`] buffers of at most [`KEEP_CAPACITY`]
//! bytes each per thread), and a thread's buffers never leave it except
//! through a value that moves.
use std::cell::RefCell;

/// Buffers kept per thread.
pub(crate) const KEPT: usize = 64;
/// A buffer of more capacity than this is dropped rather than kept.
pub(crate) const KEEP_CAPACITY: usize = 4096;
/// A new buffer has at least this capacity, so that once kept it holds a
/// usual answer without growing.
pub(crate) const MIN_CAPACITY: usize = 512;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// `bytes` in a buffer of this thread's list (a new one when it is empty,
/// or when its last buffer is too small: that one is kept).
#[must_use]
pub(crate) fn copy_of(bytes: &[u8]) -> Vec<u8> {
    let kept = FREE
        .try_with(|free| {
            let mut free = free.borrow_mut();
            match free.last() {
                Some(b) if b.capacity() >= bytes.len() => free.pop(),
                _ => None,
            }
        })
        .ok()
        .flatten();
    match kept {
        Some(mut b) => {
            b.extend_from_slice(bytes);
            b
        }
        None => {
            let mut b = Vec::with_capacity(bytes.len().max(MIN_CAPACITY));
            b.extend_from_slice(bytes);
            b
        }
    }
}

/// Gives `buf` back to this thread's list (emptied), unless the list is
/// full or `buf` too large or too small to be worth keeping.
pub(crate) fn give(mut buf: Vec<u8>) {
    if !(MIN_CAPACITY..=KEEP_CAPACITY).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    let _ = FREE.try_with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            if free.capacity() == 0 {
                free.reserve_exact(KEPT);
            }
            free.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_and_holds_only_its_new_bytes() {
        std::thread::spawn(|| {
            let a = copy_of(b"query");
            assert_eq!(a, b"query");
            assert!(a.capacity() >= MIN_CAPACITY);
            let at = a.as_ptr();
            give(a);
            let b = copy_of(b"an answer");
            assert_eq!(b, b"an answer");
            assert_eq!(b.as_ptr(), at, "the same buffer");
            // Too small to keep (not one of the list's), or too large.
            give(b"tiny".to_vec());
            give(Vec::with_capacity(KEEP_CAPACITY + 1));
            assert_eq!(FREE.with_borrow(Vec::len), 0);
            // A larger copy than the kept buffer holds takes a new one.
            give(b);
            let big = copy_of(&[7u8; MIN_CAPACITY * 2]);
            assert_ne!(big.as_ptr(), at);
            assert_eq!(FREE.with_borrow(Vec::len), 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_list_is_bounded() {
        std::thread::spawn(|| {
            for _ in 0..KEPT * 2 {
                give(Vec::with_capacity(MIN_CAPACITY));
            }
            assert_eq!(FREE.with_borrow(Vec::len), KEPT);
        })
        .join()
        .unwrap();
    }
}

//! The descriptors a load keeps open past one file's read, each kind
//! within its share of the process's open-file limit (`RLIMIT_NOFILE`):
//! the read files `settle.rs` holds for their second look, and the files
//! `bytes.rs` asked of the kernel and reads later. A [`KeptFd`] counts one
//! such descriptor while it is kept; past its kind's share a file is dealt
//! with at once instead (looked at by its path, read now).
use std::sync::atomic::{AtomicUsize, Ordering};

/// `1 / divisor` of this process's soft limit of open files, as it is at
/// the first call of each kind (the caller keeps it); unlimited: 2^20.
pub(super) fn share_of_limit(divisor: u64) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    limit.map_or(1 << 20, |n| {
        usize::try_from(n / divisor.max(1)).unwrap_or(1 << 20)
    })
}

/// One kept descriptor, counted in its kind's counter until dropped.
#[derive(Debug)]
pub(super) struct KeptFd(&'static AtomicUsize);

impl KeptFd {
    /// A place counted in `count`, if fewer than `max` are taken.
    pub(super) fn take(count: &'static AtomicUsize, max: usize) -> Option<KeptFd> {
        if count.fetch_add(1, Ordering::Relaxed) < max {
            Some(KeptFd(count))
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for KeptFd {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places are counted while kept and given back when dropped, and none
    /// is taken past the share.
    #[test]
    fn places_are_counted_bounded_and_given_back() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let mut taken: Vec<_> = (0..3).map(|_| KeptFd::take(&COUNT, 2)).collect();
        assert_eq!(
            taken.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(COUNT.load(Ordering::Relaxed), 2);
        taken.truncate(1);
        assert_eq!(COUNT.load(Ordering::Relaxed), 1);
        assert!(KeptFd::take(&COUNT, 2).is_some(), "room again");
        assert_eq!(COUNT.load(Ordering::Relaxed), 1, "given back when dropped");
    }

    #[test]
    fn a_share_is_a_part_of_the_limit() {
        let whole = share_of_limit(1);
        assert!(share_of_limit(8) <= whole / 8 + 1);
        assert_eq!(share_of_limit(0), whole, "no division by zero");
    }
}

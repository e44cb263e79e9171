//! A zone file's bytes as a load reads them: into a buffer each thread
//! keeps from one file to the next ([`with_kept_buffer`]), and, for a file
//! whose bytes are not in memory, asked of the kernel and read after the
//! files that are ([`with_file_bytes_or_ask`], [`NotInMemory`]), within a
//! share of the open-file limit (`fds.rs`).
use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;

use crate::ts::error::ZoneError;
use crate::ts::source::{
    ReadFile, SMALL_FILE, file_read, open_nonblocking, read_after_first, read_bytes_into,
    read_opened,
};

use super::fds::{KeptFd, share_of_limit};

/// The largest read buffer a thread keeps for its next file ([`with_file_bytes`]).
const KEPT_BUFFER: usize = 1 << 20;

/// `f` of a buffer this thread keeps from one file to the next (see
/// [`read_bytes_into`]), empty; one grown past [`KEPT_BUFFER`] by a big
/// file is let go after it.
pub(crate) fn with_kept_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BYTES.with(|kept| {
        // Taken out while in use: `f` may read another file on this thread.
        let mut bytes = kept.take();
        let result = f(&mut bytes);
        if bytes.capacity() <= KEPT_BUFFER {
            bytes.clear();
            kept.replace(bytes);
        }
        result
    })
}

/// `f` of the bytes of `file`, read into this thread's kept buffer
/// ([`with_kept_buffer`]), and the file they were read from, open.
pub(crate) fn with_file_bytes<R>(
    file: &Path,
    f: impl FnOnce(&[u8]) -> Result<R, ZoneError>,
) -> Result<(R, ReadFile), ZoneError> {
    with_kept_buffer(|bytes| {
        let opened = read_bytes_into(file, bytes)?;
        Ok((f(bytes)?, opened))
    })
}

/// A zone file opened whose first bytes were not in memory: the kernel
/// was asked to read it ahead (`POSIX_FADV_WILLNEED`), and its read is
/// left for later ([`with_asked_bytes`]), so a start reads on through the
/// files that are in memory while the disk fetches this one (a start after
/// a reboot, or of files the kernel let go of, waited for each file's read
/// in turn).
#[derive(Debug)]
pub(crate) struct NotInMemory {
    /// The file, open, nothing read of it yet.
    file: File,
    /// Its place among the files asked for ([`asked_max`]).
    _place: KeptFd,
}

/// Files asked for and not read yet ([`NotInMemory`]), of the [`asked_max`]
/// allowed.
static ASKED: AtomicUsize = AtomicUsize::new(0);

/// How many files may wait asked for at once, each open: a sixteenth of the
/// process's limit of open files (`RLIMIT_NOFILE`), beside the eighth
/// `settle.rs` holds. Past it a file not in memory is read at once, as
/// before: a start with a low limit and a cold page cache ran out of
/// descriptors (64 a thread could wait).
fn asked_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| share_of_limit(16))
}

/// [`with_file_bytes`] if `file`'s first bytes are in memory now (a read
/// that does not wait for the disk: `RWF_NOWAIT`), else the file open and
/// asked for ([`NotInMemory`]). Where such a read is not supported, the file is
/// read at once as [`with_file_bytes`] reads it.
pub(crate) fn with_file_bytes_or_ask<R>(
    file: &Path,
    f: impl FnOnce(&[u8]) -> Result<R, ZoneError>,
) -> Result<Result<(R, ReadFile), ZoneError>, NotInMemory> {
    let opened = match open_nonblocking(file) {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    with_kept_buffer(|bytes| {
        // The read into the zeroed buffer, its bytes copied out: `f` may
        // read another file on this thread.
        let first = FIRST_READ.with_borrow_mut(|scratch| {
            let scratch = scratch.get_or_insert_with(|| vec![0; SMALL_FILE].into_boxed_slice());
            loop {
                let mut bufs = [std::io::IoSliceMut::new(&mut scratch[..])];
                match rustix::io::preadv2(
                    &opened,
                    &mut bufs,
                    u64::MAX,
                    rustix::io::ReadWriteFlags::NOWAIT,
                ) {
                    Err(rustix::io::Errno::INTR) => {}
                    Ok(n) => {
                        bytes.extend_from_slice(&scratch[..n]);
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            }
        });
        let read = match first {
            Err(rustix::io::Errno::AGAIN) => match KeptFd::take(&ASKED, asked_max()) {
                Some(place) => {
                    // Advice only: a file that cannot take it is read later all the same.
                    let _ = rustix::fs::fadvise(&opened, 0, None, rustix::fs::Advice::WillNeed);
                    return Err(NotInMemory {
                        file: opened,
                        _place: place,
                    });
                }
                // As many wait as the limit allows: this one is read now.
                None => read_opened(file, opened, bytes),
            },
            Err(rustix::io::Errno::OPNOTSUPP) => read_opened(file, opened, bytes),
            first => {
                let meta = read_after_first(&opened, first.map_err(std::io::Error::from), bytes);
                file_read(file, opened, meta)
            }
        };
        Ok(read.and_then(|read| Ok((f(bytes)?, read))))
    })
}

/// [`with_file_bytes`] of a file [`with_file_bytes_or_ask`] asked for:
/// its read now waits for the disk if it has to.
pub(crate) fn with_asked_bytes<R>(
    file: &Path,
    asked: NotInMemory,
    f: impl FnOnce(&[u8]) -> Result<R, ZoneError>,
) -> Result<(R, ReadFile), ZoneError> {
    with_kept_buffer(|bytes| {
        let read = read_opened(file, asked.file, bytes)?;
        Ok((f(bytes)?, read))
    })
}

thread_local! {
    /// The buffer of a thread's reads that do not wait ([`with_file_bytes_or_ask`]):
    /// such a read takes initialized bytes, so they are zeroed once, not a file.
    static FIRST_READ: std::cell::RefCell<Option<Box<[u8]>>> = const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    /// A file's bytes read ahead and then read when the disk was needed
    /// are its bytes, as a read that found them in memory gives them.
    #[test]
    fn a_file_not_in_memory_is_asked_for_then_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("z.zone");
        // Past the first read's room: the rest is read after it either way.
        let text: String = (0..2000)
            .map(|i| format!("h{i} 300 A 192.0.2.{}\n", i % 250))
            .collect();
        std::fs::write(&file, &text).unwrap();
        let copy = |b: &[u8]| Ok(b.to_vec());
        let (bytes, read) = match super::with_file_bytes_or_ask(&file, copy) {
            Ok(read) => read.unwrap(),
            Err(_) => super::with_file_bytes(&file, copy).unwrap(),
        };
        assert_eq!(bytes, text.as_bytes());
        assert_eq!(read.meta.len(), text.len() as u64);
        if !crate::ts::source::evict_for_test(&file) {
            eprintln!("skipped: this filesystem keeps files in memory (tmpfs)");
            return;
        }
        let asked = match super::with_file_bytes_or_ask(&file, copy) {
            Ok(_) => panic!("a file evicted from memory was read as if it were in it"),
            Err(asked) => asked,
        };
        let (bytes, read) = super::with_asked_bytes(&file, asked, copy).unwrap();
        assert_eq!(bytes, text.as_bytes());
        assert_eq!(read.meta.len(), text.len() as u64);
    }
}

//! Zone sources: the records read from one file (decoded, or in wire form as a
//! master file's reader makes them), and the `file:line` error type
//! shared by both formats (PROJ tables and RFC 1035 master files) and by the
//! zone compiler ([`BuildError`]); a source file's bytes, read whole, and
//! where they stop being UTF-8.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;

use hickory_proto::rr::{Name, RData, RecordType};

use super::fd_share::{KeptFd, share_of_limit};

/// One record as read from a zone source, with the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Owner name, fully qualified, case as written in the file.
    pub name: Name,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record data (its type is `data.record_type()`).
    pub data: RData,
    /// 1-based line number in the source file.
    pub line: usize,
}

/// One record in wire form, as a master file's reader makes it
/// (`zonefile::WireRecords`) and the zone builder takes it.
#[derive(Debug, Clone, Copy)]
pub struct WireRecord<'a> {
    /// The owner, uncompressed, as spelled.
    pub owner: &'a [u8],
    /// Its type.
    pub rtype: u16,
    /// Its class (the reader refuses any but IN, 1).
    pub class: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// Its RDATA, names uncompressed and as spelled.
    pub rdata: &'a [u8],
    /// 1-based line number in the file.
    pub line: usize,
}

/// A problem in a zone source, always naming the file and (where there is one) the line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    /// A bad line: `file:line: what is wrong`.
    #[error("{}:{line}: {msg}", file.display())]
    Line {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in a few words.
        msg: String,
    },
    /// A record the zone cannot hold, or a zone that cannot be compiled
    /// (`ts::zone::ZoneBuilder`): `file:line: what is wrong`.
    #[error("{}:{line}: {reason}", file.display())]
    Build {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: BuildError,
    },
    /// The files changed every time they were read (each read of them was
    /// compared with their bytes before and after): a writer was rewriting
    /// them in place.
    #[error(
        "{}: changed while being read, {tries} times in a row: replace a zone file by writing a new file and renaming it over the old",
        file.display()
    )]
    Unsettled {
        /// The zone file found changed by the last read (the first of
        /// them, when several were).
        file: PathBuf,
        /// Reads tried.
        tries: u32,
    },
    /// Files that cannot make one zone together: the file and why.
    #[error("{}: {msg}", file.display())]
    Shared {
        /// The file that joins the zone.
        file: PathBuf,
        /// Why, naming the other file.
        msg: String,
    },
    /// The file could not be read at all.
    #[error("{}: cannot read: {msg}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The OS error text.
        msg: String,
    },
    /// A zone the TS signs could not be signed: the zone and why (its
    /// keys' files, or the signer).
    #[error("{0}")]
    Signing(String),
    /// The transfer key (`xfr_key`) could not be read or used.
    #[error("{0}")]
    Key(String),
}

impl ZoneError {
    /// A zone the TS signs could not be signed (its keys, or the signer).
    pub fn signing(err: impl std::error::Error) -> Self {
        ZoneError::Signing(err.to_string())
    }

    /// A `file:line` error.
    pub fn line(file: &Path, line: usize, msg: impl Into<String>) -> Self {
        ZoneError::Line {
            file: file.to_path_buf(),
            line,
            msg: cut(msg.into()),
        }
    }

    /// A `file:line` error found while compiling a zone.
    pub fn build(file: &Path, line: usize, reason: BuildError) -> Self {
        ZoneError::Build {
            file: file.to_path_buf(),
            line,
            reason,
        }
    }
}

/// What is wrong with one record, or with the zone at a record; shown after
/// its `file:line` (see [`ZoneError::Build`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A label over 63 bytes (RFC 1035 §2.3.4).
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    /// A name over 255 bytes in wire form (RFC 1035 §2.3.4).
    #[error("name longer than 255 bytes")]
    NameOver255,
    /// A name too long to store.
    #[error("name too long")]
    NameTooLong,
    /// More names than the index can number.
    #[error("too many names")]
    TooManyNames,
    /// RDATA that hickory cannot encode.
    #[error("cannot encode the {rtype} record: {reason}")]
    Encode {
        /// The record's type.
        rtype: RecordType,
        /// The encoder's error.
        reason: String,
    },
    /// RDATA over 65,535 bytes.
    #[error("record data over 65,535 bytes")]
    RdataOver64K,
    /// A record owned by a name outside the zone.
    #[error("{name} is outside the zone {origin}")]
    OutsideZone {
        /// The record's owner.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// An SOA away from the zone's apex.
    #[error("SOA at {name} is not at the zone apex {origin}")]
    SoaOffApex {
        /// The SOA's owner.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// A second SOA.
    #[error("a second SOA")]
    SecondSoa,
    /// A CNAME beside other data, or a second CNAME.
    #[error("{name} has a CNAME and other data (RFC 1034 §3.6.2)")]
    CnameAndOther {
        /// The owner, as written (`?` if unreadable).
        name: String,
    },
    /// A second CNAME or DNAME at a name (RFC 1034 §3.6.2, RFC 6672 §2.4).
    #[error("{name} has more than one {rtype} (a name holds at most one)")]
    SecondSingleton {
        /// The owner, as written (`?` if unreadable).
        name: String,
        /// CNAME or DNAME.
        rtype: RecordType,
    },
    /// Data below a DNAME (RFC 6672 §2.3).
    #[error("data below the DNAME at {name} (RFC 6672 §2.3: a DNAME owner has no names below it)")]
    BelowDname {
        /// The DNAME's owner.
        name: String,
    },
    /// A record no DNS message can carry.
    #[error(
        "a record of {size} bytes with a message's header, over 65,535: no answer or \
         transfer could carry it"
    )]
    RecordOverMessage {
        /// The record's size with a message's 12-byte header.
        size: usize,
    },
    /// More than 4 GiB of RDATA read.
    #[error("zone over 4 GiB")]
    RdataOver4G,
    /// More than 4 GiB of compiled records.
    #[error("zone over 4 GiB of records")]
    RecordsOver4G,
    /// More RRsets at one name than an entry can count.
    #[error("too many types")]
    TooManyTypes,
    /// More records in one RRset than it can count, or over 4 GiB.
    #[error("RRset too large")]
    RrsetTooLarge,
    /// A name's RRsets over 4 GiB.
    #[error("zone too large")]
    ZoneTooLarge,
}

/// The longest message a [`ZoneError::Line`] keeps whole.
const MSG_MAX: usize = 600;

/// `msg`, or its start and end with the middle cut out when it is over
/// [`MSG_MAX`] bytes: a message quotes the token at fault, which may be a
/// 100 MB word of a broken file (BIND cuts its lines too).
fn cut(msg: String) -> String {
    if msg.len() <= MSG_MAX {
        return msg;
    }
    let floor = |mut i: usize| {
        while !msg.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head = floor(MSG_MAX / 2);
    let tail = floor(msg.len() - MSG_MAX / 4);
    format!(
        "{}…[{} bytes cut]…{}",
        &msg[..head],
        tail - head,
        &msg[tail..]
    )
}

/// Reads a whole file as bytes, mapping failure to [`ZoneError::Io`].
pub(crate) fn read_bytes(file: &Path) -> Result<Vec<u8>, ZoneError> {
    let mut bytes = Vec::new();
    read_bytes_into(file, &mut bytes)?;
    Ok(bytes)
}

/// A zone file just read: its descriptor, held open, and what `fstat` said
/// of it right after the read (`settle.rs` looks at the file the bytes came
/// from, whatever is renamed over its path meanwhile).
#[derive(Debug)]
pub(crate) struct ReadFile {
    /// The file read.
    pub(crate) file: File,
    /// Its `fstat` just after the read.
    pub(crate) meta: std::fs::Metadata,
    /// When that `fstat` was taken (the monotonic clock: a wall clock
    /// stepped forward would shorten the settle pause): `settle.rs` looks
    /// at the file again once this is old enough, whatever the load did
    /// with the bytes meanwhile.
    pub(crate) at: std::time::Instant,
}

/// [`read_bytes`] into `bytes` (cleared first): a caller that reads many
/// files keeps one buffer for them all (a TS of 100,000 zone files asked
/// the allocator for 16 KiB a file, which made it sort its free lists
/// each time). Only a regular file is a zone file: a FIFO, a device or a
/// directory is refused (`not a regular file`) by the `fstat` after the
/// read, which `settle.rs` needs anyway.
pub(crate) fn read_bytes_into(file: &Path, bytes: &mut Vec<u8>) -> Result<ReadFile, ZoneError> {
    read_opened(file, open_nonblocking(file)?, bytes)
}

/// The zone file `file` opened for reading. Not blocking: a FIFO listed as
/// a zone file (or swapped in for one) would hold the open until a writer
/// came, and the load with it. (A socket cannot be opened: `No such device
/// or address`.)
fn open_nonblocking(file: &Path) -> Result<File, ZoneError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(file)
        .map_err(|e| io_error(file, e))
}

/// [`ZoneError::Io`] of `file`.
fn io_error(file: &Path, e: std::io::Error) -> ZoneError {
    ZoneError::Io {
        file: file.to_path_buf(),
        msg: e.to_string(),
    }
}

/// The [`ReadFile`] of `f`, opened from `file`, its bytes read into `bytes`.
fn read_opened(file: &Path, f: File, bytes: &mut Vec<u8>) -> Result<ReadFile, ZoneError> {
    let meta = read_open_into(&f, bytes);
    file_read(file, f, meta)
}

/// The [`ReadFile`] of `f`, opened from `file`, whose read ended with the
/// `fstat` `meta`.
fn file_read(
    file: &Path,
    f: File,
    meta: std::io::Result<std::fs::Metadata>,
) -> Result<ReadFile, ZoneError> {
    Ok(ReadFile {
        file: f,
        meta: meta.map_err(|e| io_error(file, e))?,
        at: std::time::Instant::now(),
    })
}

/// The error of a zone file that is not a regular file.
fn not_regular() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")
}

/// The bytes of the open file `f`, its offset at its start, into `bytes`
/// (cleared first), and its `fstat` after the last read. A small file (a
/// TS of 100,000 zones reads 100,000 of them) takes one read and one
/// `fstat`: the read stopped at its end when the length `fstat` gives is
/// what was read. A larger one is read on, sized by that `fstat`, and
/// looked at again after. Only a regular file is read on: a FIFO, a
/// device that never ends (`/dev/zero`) or a directory is refused (`not a
/// regular file`) after its first read.
pub(crate) fn read_open_into(f: &File, bytes: &mut Vec<u8>) -> std::io::Result<std::fs::Metadata> {
    bytes.clear();
    bytes.reserve(SMALL_FILE);
    let first = loop {
        match rustix::io::read(f, rustix::buffer::spare_capacity(bytes)) {
            Err(rustix::io::Errno::INTR) => {}
            done => break done,
        }
    };
    read_after_first(f, first.map(drop).map_err(std::io::Error::from), bytes)
}

/// [`read_open_into`] after its first read into `bytes`, which gave `first`.
fn read_after_first(
    mut f: &File,
    first: std::io::Result<()>,
    bytes: &mut Vec<u8>,
) -> std::io::Result<std::fs::Metadata> {
    use std::io::Read;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    first?;
    if meta.len() == bytes.len() as u64 {
        return Ok(meta);
    }
    let rest = usize::try_from(meta.len())
        .unwrap_or(0)
        .saturating_sub(bytes.len());
    bytes.reserve(rest);
    f.read_to_end(bytes)?;
    f.metadata()
}

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

/// Room for a zone file's first read, before its size is known.
const SMALL_FILE: usize = 16 * 1024;

/// Where a file stops being valid UTF-8.
#[derive(Debug, PartialEq)]
pub(crate) struct BadUtf8<'a> {
    /// 1-based number of the first line that is not valid UTF-8.
    pub(crate) line: usize,
    /// The complete lines before it.
    pub(crate) valid_prefix: &'a str,
}

/// Decodes a file's bytes as UTF-8, or says which line is not.
pub(crate) fn decode(bytes: &[u8]) -> Result<&str, BadUtf8<'_>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line_start = valid
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            // `valid` is valid UTF-8 and a '\n' byte is always a char boundary.
            let valid_prefix = std::str::from_utf8(&valid[..line_start]).unwrap_or_default();
            Err(BadUtf8 { line, valid_prefix })
        }
    }
}

#[allow(clippy::unwrap_used)]
/// Drops `file`'s pages from memory (written back first); whether a
/// read of it now needs the disk (not so on tmpfs, which has no disk).
#[cfg(test)]
pub(crate) fn evict_for_test(file: &Path) -> bool {
    let f = File::open(file).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let mut byte = [0u8; 1];
    let mut bufs = [std::io::IoSliceMut::new(&mut byte)];
    rustix::io::preadv2(&f, &mut bufs, 0, rustix::io::ReadWriteFlags::NOWAIT)
        == Err(rustix::io::Errno::AGAIN)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        if !super::evict_for_test(&file) {
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

    /// A FIFO given as a zone file (or swapped in for one) is refused at
    /// once, not waited on: the load would wait with it.
    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() {
        use rustix::fs::{CWD, FileType, Mode, mknodat};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("z.zone");
        mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(super::read_bytes(&fifo).map(|b| b.len()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the read of a FIFO waited for a writer");
        assert_not_regular(got);
    }

    /// A FIFO whose writer left a zone in it and went is refused too: its
    /// read gives bytes, not nothing.
    #[test]
    fn a_fifo_holding_data_is_refused() {
        use rustix::fs::{CWD, FileType, Mode, mknodat};
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("z.zone");
        mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        // A reader keeps the written bytes in the FIFO after the writer goes.
        let _keeper = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&fifo)
            .unwrap();
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        writer.write_all(b"www 192.0.2.1 A\n").unwrap();
        drop(writer);
        assert_not_regular(super::read_bytes(&fifo).map(|b| b.len()));
    }

    /// A device that never ends (`/dev/zero`, through a symlink named as a
    /// zone file) is refused, not read until memory runs out.
    #[test]
    fn a_device_is_refused_not_read_without_end() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("z.zone");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_not_regular(super::read_bytes(&link).map(|b| b.len()));
    }

    /// An empty regular file and one past the first read's buffer are read.
    #[test]
    fn regular_files_of_every_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            super::SMALL_FILE - 1,
            super::SMALL_FILE,
            3 * super::SMALL_FILE + 7,
        ] {
            let f = dir.path().join(format!("z{len}"));
            std::fs::write(&f, vec![b'x'; len]).unwrap();
            assert_eq!(super::read_bytes(&f).unwrap().len(), len);
        }
    }

    fn assert_not_regular(got: Result<usize, super::ZoneError>) {
        match got {
            Err(super::ZoneError::Io { msg, .. }) => {
                assert!(msg.contains("not a regular file"), "{msg}")
            }
            other => panic!("not refused: {other:?}"),
        }
    }
}

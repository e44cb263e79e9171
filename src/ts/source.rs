//! A zone source file: its bytes read whole (a regular file only, its open
//! never waiting on a FIFO), where they stop being UTF-8, and the records
//! read from it (decoded, or in wire form as a master file's reader makes
//! them).
use std::fs::File;
use std::path::Path;

use hickory_proto::rr::{Name, RData};

use super::error::ZoneError;

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
pub(crate) fn open_nonblocking(file: &Path) -> Result<File, ZoneError> {
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
pub(crate) fn read_opened(
    file: &Path,
    f: File,
    bytes: &mut Vec<u8>,
) -> Result<ReadFile, ZoneError> {
    let meta = read_open_into(&f, bytes);
    file_read(file, f, meta)
}

/// The [`ReadFile`] of `f`, opened from `file`, whose read ended with the
/// `fstat` `meta`.
pub(crate) fn file_read(
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
pub(crate) fn read_after_first(
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

/// Room for a zone file's first read, before its size is known.
pub(crate) const SMALL_FILE: usize = 16 * 1024;

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

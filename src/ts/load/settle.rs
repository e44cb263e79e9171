//! Zone files read only while nobody rewrites them, and what a load knew of
//! each file for the next reload ([`Seen`]). A file's [`FileStamp`] (one `stat`:
//! device, inode, length, modified and changed times) is taken before a
//! read and again a moment after it ([`SETTLE`]: a writer may sit between
//! truncating a file and writing the rest), each file looked at as soon as
//! its own read is that old (the files of a start read first are looked at
//! first: a look over 100,000 of them outlasts the pause, which is then not
//! waited out); the bytes are read once, for
//! parsing, and their hash ([`content`]) taken from that same read. A read
//! during which a file changed in place is never served. The file a read
//! came from is looked at through the descriptor it was read with
//! ([`Opened`]), so a version renamed over its path during the pause does
//! not hide a writer still at work on the one read.
//!
//! A file that had not changed for [`RACY`] before the look that precedes
//! its read, nor since (the `fstat` after the read finds the look's stamp),
//! is looked at again without the pause ([`FileRead::needs_settle`]): no
//! writer was at work in it (a reload that adds a zone whose file was
//! written long ago waits for nothing).
//!
//! A reload takes a file whose stamp is the one it was read at as unchanged,
//! without reading it (NSD and Knot compare the modified time alone). Time
//! stamps are coarse (a kernel tick; a second or two on some file systems),
//! so a write in the same tick as the read may leave the stamp as it was:
//! a file changed within [`RACY`] of its read is "racy" (as git calls its
//! index entries) and its bytes are hashed again to be sure, until a later
//! look finds it older than that.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::ts::error::ZoneError;
use crate::ts::source::{ReadFile, read_open_into};
use crate::ts::zonefile::IncludedFile;

use super::bytes::{with_file_bytes, with_kept_buffer};
use super::fds::{KeptFd, share_of_limit};

/// Reads of the zone files before a reload (or the start) gives up on files
/// that change every time they are read.
const READ_TRIES: u32 = 5;
/// Pause before the second read; doubled before each further one (50, 100,
/// 200, 400 ms: 750 ms in all).
const READ_BACKOFF: Duration = Duration::from_millis(50);

/// How long after a read the zone files are looked at again: a writer
/// rewriting a file in place may sit between truncating it and writing the
/// rest, where a quick read sees a short file that does not change while read.
pub(super) const SETTLE: Duration = Duration::from_millis(100);

/// A file changed (its `ctime`) this close to a look at it may change again
/// with the same stamp: coarser than any local file system's time stamps
/// (FAT's 2 s; ext4 and tmpfs count nanoseconds on a clock of kernel ticks).
const RACY: Duration = Duration::from_secs(2);

/// A file as `stat` sees it: which file (device, inode), its length, and
/// when it was last modified and changed (nanoseconds since the epoch). A
/// write changes both times, a rename over it the inode, and the changed
/// time (`ctime`) cannot be set back by `touch` or `cp -p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i128,
    ctime: i128,
}

impl FileStamp {
    /// `file`'s stamp, `None` if it cannot be looked at.
    fn of(file: &Path) -> Option<FileStamp> {
        std::fs::metadata(file).ok().map(|m| FileStamp::from(&m))
    }

    /// The stamp of the open file `file` (`fstat`), `None` if it cannot be
    /// looked at.
    fn of_open(file: &File) -> Option<FileStamp> {
        file.metadata().ok().map(|m| FileStamp::from(&m))
    }

    /// The stamp of what `m` says of a file.
    fn from(m: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    /// The same file (device and inode), whatever its bytes.
    fn same_file(&self, other: &FileStamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// Changed within [`RACY`] of `looked` (nanoseconds since the epoch):
    /// its stamp alone does not stand for its bytes.
    fn racy(&self, looked: i128) -> bool {
        self.ctime >= looked - RACY.as_nanos() as i128
    }
}

/// Each file's [`FileStamp`], one `stat` a file.
fn stamps(files: &[PathBuf]) -> Vec<Option<FileStamp>> {
    per_file(files.len(), |i| FileStamp::of(&files[i]))
}

/// Files past which their looks are spread over the cores ([`per_file`]).
const MANY_FILES: usize = 4096;

/// `f` of each file's index, in order: on every core the process may use
/// (`spread.rs`) when there are [`MANY_FILES`] or more (a TS of 100,000
/// zone files looks at each twice a load: a tenth of its start, one
/// thread's), else on this thread.
fn per_file<R: Send>(files: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = if files >= MANY_FILES {
        super::spread::threads()
    } else {
        1
    };
    super::spread::in_parallel((0..files).collect(), threads, f)
}

/// The files' stamps, and when they were taken (a stamp changed within
/// [`RACY`] of that is racy).
pub(crate) struct Look {
    at: i128,
    stamps: Vec<Option<FileStamp>>,
    /// No file looked at ([`Look::blind`]).
    blind: bool,
}

impl Look {
    /// `files` looked at now: one `stat` a file.
    pub(crate) fn now(files: &[PathBuf]) -> Look {
        let at = now_ns();
        Look {
            at,
            stamps: stamps(files),
            blind: false,
        }
    }

    /// No look at `files` (`n` of them), taken now: a start's, which reads
    /// every file and takes each one's stamp from the descriptor read
    /// ([`Opened`]), so a `stat` of each before would be spent for nothing.
    pub(crate) fn blind(n: usize) -> Look {
        Look {
            at: now_ns(),
            stamps: vec![None; n],
            blind: true,
        }
    }
}

/// What a load read of the zone files, for the next reload to keep the
/// zones whose files did not change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileMemo {
    /// Each file as it was read; `None` for one renamed over while it was
    /// read (the next reload reads it again).
    pub(crate) seen: Vec<Option<Seen>>,
    /// Each master file's origin (lower-cased wire form); `None` for a PROJ table.
    pub(crate) origins: Vec<Option<Box<[u8]>>>,
}

impl FileMemo {
    /// Each file's content, when every one is known (the serials' state
    /// file records them: a restart on the same bytes keeps the serials).
    pub(crate) fn contents(&self) -> Option<Vec<FileHash>> {
        self.seen
            .iter()
            .map(|s| s.as_ref().map(|s| s.content))
            .collect()
    }

    /// Whether every one of `files`, as `look` found them, holds the bytes
    /// the memo saw (see [`Seen::unchanged`]).
    pub(crate) fn unchanged(&self, files: &[PathBuf], look: &Look) -> bool {
        self.seen.len() == files.len()
            && look.stamps.len() == files.len()
            && (self.seen.iter().zip(&look.stamps).zip(files))
                .all(|((seen, now), f)| seen.as_ref().is_some_and(|s| s.unchanged(f, now.as_ref())))
    }
}

/// The wall clock in nanoseconds since the epoch, as file times count.
fn now_ns() -> i128 {
    epoch_ns(SystemTime::now())
}

/// `t` in nanoseconds since the epoch (0 before it).
fn epoch_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A file's bytes as a fingerprint: their length and hash.
pub(crate) type FileHash = (u64, u64);

/// The [`FileHash`] of `bytes`.
pub(crate) fn content(bytes: &[u8]) -> FileHash {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    (bytes.len() as u64, h.finish())
}

/// The [`FileHash`] of the file at `file` now, `None` if it cannot be read
/// (read into this thread's kept buffer, as a load reads).
fn content_of(file: &Path) -> Option<FileHash> {
    with_file_bytes(file, |b| Ok(content(b)))
        .ok()
        .map(|(c, _)| c)
}

/// The [`FileHash`] of the open file `file`'s bytes, read again from its
/// start (into this thread's kept buffer); `None` if it cannot be read.
fn content_of_open(file: &File) -> Option<FileHash> {
    use std::io::{Seek, SeekFrom};
    with_kept_buffer(|bytes| {
        let mut f = file;
        f.seek(SeekFrom::Start(0)).ok()?;
        read_open_into(f, bytes).ok()?;
        Some(content(bytes))
    })
}

/// A file a master file included (`$INCLUDE`), as a load saw it: its
/// path, its stamp just after it was read, and whether that stamp was racy
/// (changed within [`RACY`] of the look before the read: the next reload
/// reads the zone again rather than trust it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncludeSeen {
    path: PathBuf,
    stamp: FileStamp,
    racy: bool,
}

/// The files a master file included, `None` for one that includes none.
pub(crate) type Includes = Option<Arc<[IncludeSeen]>>;

/// The [`Includes`] of the files a master file's read included.
pub(crate) fn includes_of(files: &[IncludedFile]) -> Includes {
    (!files.is_empty()).then(|| {
        files
            .iter()
            .map(|f| IncludeSeen {
                path: f.path.clone(),
                stamp: FileStamp::from(&f.meta),
                racy: false,
            })
            .collect()
    })
}

/// Whether every one of `includes` is still the file, with the stamp, it
/// was read with (not racy): else its zone is read again.
fn includes_unchanged(includes: &Includes) -> bool {
    includes
        .iter()
        .flat_map(|i| i.iter())
        .all(|i| !i.racy && FileStamp::of(&i.path) == Some(i.stamp))
}

/// `includes`, each marked racy if its stamp is as of a look at `looked`.
fn includes_looked(includes: &Includes, looked: i128) -> Includes {
    includes.as_ref().map(|all| {
        all.iter()
            .map(|i| IncludeSeen {
                racy: i.racy || i.stamp.racy(looked),
                ..i.clone()
            })
            .collect()
    })
}

/// A file as a load has it: the [`FileHash`] of its bytes, the file
/// they were read from (`None` for a file not read this time, its zone
/// kept, or a test's), and the files it included.
#[derive(Debug)]
pub(crate) struct FileRead {
    /// The bytes' hash.
    pub(crate) content: FileHash,
    /// The file read.
    pub(crate) opened: Option<Opened>,
    /// The files it included (`$INCLUDE`).
    pub(crate) includes: Includes,
}

impl FileRead {
    /// A file read into `content`, from `read` (open).
    pub(crate) fn read(content: FileHash, read: ReadFile) -> FileRead {
        FileRead {
            content,
            opened: Some(Opened::of(read)),
            includes: None,
        }
    }

    /// A file known by `content` without a read.
    pub(crate) fn known(content: FileHash) -> FileRead {
        FileRead {
            content,
            opened: None,
            includes: None,
        }
    }

    /// This read, with the files it included.
    pub(crate) fn including(self, includes: Includes) -> FileRead {
        FileRead { includes, ..self }
    }

    /// Whether the look after this read waits out the settle pause. It
    /// does not when the file read is the one the look before the read
    /// found (`before`), with the same stamp, not empty, and changed more
    /// than [`RACY`] before that look (`looked`): no writer was at work in
    /// it. A writer between truncating a file and writing the rest changes
    /// it again within the pause, which such a file outlasted already; and
    /// `open(O_TRUNC)` empties a file a moment before it moves its times, a
    /// moment that a look and a read with the same non-empty stamp cannot
    /// both fall in. A file that included others waits: they had no look.
    fn needs_settle(&self, before: Option<&FileStamp>, looked: i128) -> bool {
        let Some(opened) = &self.opened else {
            return false;
        };
        let still = before == Some(&opened.stamp) && opened.stamp.len > 0;
        !still || opened.stamp.racy(looked) || self.includes.is_some()
    }
}

/// The file a read came from, as it was just after the read: its stamp
/// (an `fstat` of the descriptor read) and, while fewer than
/// [`held_max`] are held, the descriptor itself. The look after the settle
/// pause is then at the file read, not at its path: a writer at work in
/// place on it, and a new version renamed over its path before the look,
/// would otherwise pass for a rename over a file read whole.
#[derive(Debug)]
pub(crate) struct Opened {
    stamp: FileStamp,
    held: Option<Held>,
    /// When the `fstat` after the read was taken.
    read_at: Instant,
}

impl Opened {
    /// `read`, just read: its stamp (the `fstat` after the read), and the
    /// descriptor kept while the budget lasts.
    fn of(read: ReadFile) -> Opened {
        Opened::holding(read, Held::new)
    }

    /// [`Opened::of`], its descriptor held by `hold` (or not: `None`).
    fn holding(read: ReadFile, hold: impl FnOnce(File) -> Option<Held>) -> Opened {
        Opened {
            stamp: FileStamp::from(&read.meta),
            read_at: read.at,
            held: hold(read.file),
        }
    }

    /// Whether the file read is as it was read, after the pause (`None`:
    /// changed, what was read may be half-written; `Some(true)`: not).
    /// Without its descriptor only `path` can be looked at ([`by_path`]):
    /// a file renamed over it is then taken as read whole
    /// (`Some(false)`).
    fn still(&self, path: &Path, content: FileHash, looked: i128) -> Option<bool> {
        let Some(held) = &self.held else {
            return by_path(path, Some(self.stamp), Some(content), looked);
        };
        let read = self.stamp;
        let now = FileStamp::of_open(&held.file)?;
        if (now.len, now.mtime) != (read.len, read.mtime) {
            return None;
        }
        // A changed time alone is a rename over it (its link count went
        // down) or a write whose modified time was set back (`cp -p`), and
        // a racy stamp may hide a write in the same tick: the bytes decide.
        if (now.ctime != read.ctime || read.racy(looked))
            && content_of_open(&held.file) != Some(content)
        {
            return None;
        }
        // Renamed over since or not, what was read is whole; a reload finds
        // a file renamed over by its stamp (another inode), not `stat`ed here.
        Some(true)
    }
}

/// Descriptors held open now by [`Opened`]s, of the [`held_max`] allowed.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many read files may be held open at once: an eighth of the
/// process's limit of open files (`RLIMIT_NOFILE`: half of it is the TCP
/// connections' cap, a quarter the health checks', the rest the sockets'),
/// so that a reload's few files are always held and a start of 100,000
/// holds what the limit allows (`LimitNOFILE` in the units; past it, a
/// file's path is looked at, as [`Opened::still`] says).
fn held_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| share_of_limit(8))
}

/// A read file's descriptor, counted (in [`HELD`]) while open.
#[derive(Debug)]
struct Held {
    file: File,
    /// Its place in [`HELD`].
    _place: KeptFd,
}

impl Held {
    /// `file` held, if fewer than [`held_max`] are; else closed.
    fn new(file: File) -> Option<Held> {
        Held::within(file, &HELD, held_max())
    }

    /// `file` held and counted in `count`, if fewer than `max` are; else
    /// closed.
    fn within(file: File, count: &'static AtomicUsize, max: usize) -> Option<Held> {
        KeptFd::take(count, max).map(|_place| Held { file, _place })
    }
}

/// What a load knew of one file: its stamp after the read, the content
/// read, whether the stamp was racy (see the module's text), and the files
/// it included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    stamp: FileStamp,
    /// The bytes the zones were made from.
    pub(crate) content: FileHash,
    racy: bool,
    /// The files it included, each as read.
    pub(crate) includes: Includes,
}

impl Seen {
    /// Whether `file`, whose stamp is `now`, still holds the bytes it held
    /// when seen: a stamp that is the one seen says so, unless it was
    /// racy; else the bytes are read and their hash compared.
    pub(crate) fn unchanged(&self, file: &Path, now: Option<&FileStamp>) -> bool {
        // An included file changed, or racy: the zone is read again.
        if !includes_unchanged(&self.includes) {
            return false;
        }
        if now == Some(&self.stamp) && !self.racy {
            return true;
        }
        // A racy stamp, or another one: the bytes decide (a file renamed
        // over with the same bytes keeps its zone, compiled once).
        now.is_some() && content_of(file) == Some(self.content)
    }
}

/// The result of `read` over `files` that were not rewritten in place while
/// it ran (the first try's stamps those of `first`, when given: a look
/// just taken), with what is now known of each file ([`Seen`]; `None` for one
/// renamed over or gone while read: the next reload reads it again).
/// `read` is given each file's stamp taken just before it (a file whose
/// stamp a reload finds unchanged need not be read again: any change during
/// the read makes the try void) and returns, beside its result, each file
/// it read or knows ([`FileRead`]: its content, and the file read, open).
/// Each try takes the stamps before `read` and `settle` after it looks at
/// each file read through its descriptor ([`Opened::still`]); a racy file
/// (see the module's text) is hashed again then. A file read whose stamp
/// or bytes changed since the read is being rewritten in place: what was
/// read may be half-written and is never served, whatever was renamed
/// over its path meanwhile; the try is logged and, after `pause(backoff)`,
/// made again, up to [`READ_TRIES`]. A file read that did not change, with
/// another file renamed over its path since, was read whole: the result is
/// kept (and the file read again at the next reload).
///
/// # Errors
/// `read`'s error from files that did not change while read (a real
/// mistake in them); [`ZoneError::Unsettled`] when they changed every time.
pub(super) fn read_settled<T>(
    ts: &str,
    files: &[PathBuf],
    settle: Duration,
    mut first: Option<Look>,
    mut read: impl FnMut(&[Option<FileStamp>]) -> Result<(T, Vec<Option<FileRead>>), ZoneError>,
    mut pause: impl FnMut(Duration),
) -> Result<(T, Vec<Option<Seen>>), ZoneError> {
    let mut backoff = READ_BACKOFF;
    let mut last_changed = None;
    for attempt in 1..=READ_TRIES {
        let Look {
            at: looked,
            stamps: before,
            blind,
        } = first
            .take()
            .filter(|l| l.stamps.len() == files.len())
            .unwrap_or_else(|| Look::now(files));
        let result = read(&before);
        if blind && result.is_err() {
            // Without stamps from before the read, a mistake in a file
            // cannot be told from a half-written read: read again with them.
            continue;
        }
        // A writer between truncating a file and writing the rest leaves
        // a short file that a quick read sees unchanged: look a moment
        // later. One look then sees every change a look right after the
        // read would (a stamp never goes back), at one `stat` a file.
        // The file's times do not say whether a writer is at work:
        // `open(O_TRUNC)` empties a file before it moves them, so a look
        // in between sees an empty file with its old times.
        let same = match &result {
            Ok((_, reads)) => still_after(files, &before, reads, looked, settle, &mut pause),
            Err(_) => {
                if !settle.is_zero() {
                    pause(settle);
                }
                unmoved(files, &before)
            }
        };
        if let Ok(same) = same {
            return result.map(|(v, reads)| {
                let seen = (0..files.len())
                    .map(|i| {
                        let read = reads.get(i)?.as_ref().filter(|_| same[i])?;
                        // The stamp of the file read, else (its zone kept:
                        // not read) the look's.
                        let stamp = read.opened.as_ref().map_or(before[i], |o| Some(o.stamp))?;
                        Some(Seen {
                            stamp,
                            content: read.content,
                            racy: stamp.racy(looked),
                            includes: includes_looked(&read.includes, looked),
                        })
                    })
                    .collect();
                (v, seen)
            });
        }
        let changed = same.err().and_then(|i| files.get(i));
        warn!(
            ts,
            attempt,
            tries = READ_TRIES,
            file = %changed.map_or_else(String::new, |f| f.display().to_string()),
            "zone files changed while being read: what was read is not used, reading again"
        );
        last_changed = changed;
        if attempt < READ_TRIES {
            pause(backoff);
            backoff *= 2;
        }
    }
    Err(ZoneError::Unsettled {
        file: last_changed.or(files.first()).cloned().unwrap_or_default(),
        tries: READ_TRIES,
    })
}

/// Whether `files` are still as they were read (`reads`, each looked at
/// through the descriptor read: [`Opened::still`]), or, for those not
/// read, as they were `before` the read (taken at `looked`): `Err` with
/// the index of the first one that changed in place; else, by file,
/// whether it is the file read (`false`: renamed over, or gone).
fn still(
    files: &[PathBuf],
    before: &[Option<FileStamp>],
    reads: Option<&[Option<FileRead>]>,
    looked: i128,
) -> Result<Vec<bool>, usize> {
    let same = per_file(files.len(), |i| {
        let read = reads.and_then(|r| r.get(i)).and_then(Option::as_ref);
        // An included file rewritten since it was read: what was read of
        // it may be half-written.
        if read.is_some_and(|r| {
            r.includes
                .iter()
                .flat_map(|i| i.iter())
                .any(|i| FileStamp::of(&i.path) != Some(i.stamp))
        }) {
            return None;
        }
        match read {
            Some(FileRead {
                content,
                opened: Some(opened),
                ..
            }) => opened.still(&files[i], *content, looked),
            _ => by_path(
                &files[i],
                before.get(i).copied().flatten(),
                read.map(|r| r.content),
                looked,
            ),
        }
    });
    first_changed(same)
}

/// Files looked at together by [`still_after`]: the ones read within a
/// moment of each other (a load reads them in order).
const LOOK_RUN: usize = 4096;

/// [`still`] of each file read, looked at `settle` after its own read
/// (the `fstat` after it), in runs of [`LOOK_RUN`] files in their order:
/// before each run, `pause` for what is left of `settle` since the last
/// read of the run that needs it ([`FileRead::needs_settle`]: nothing when
/// its files were still long before their reads, or read long enough ago:
/// the looks at the runs before took that long). A file not read (its zone
/// kept) is looked at with its run. `Err` with the index of the first file
/// that changed; the runs after it are not looked at.
fn still_after(
    files: &[PathBuf],
    before: &[Option<FileStamp>],
    reads: &[Option<FileRead>],
    looked: i128,
    settle: Duration,
    pause: &mut impl FnMut(Duration),
) -> Result<Vec<bool>, usize> {
    let mut same = Vec::with_capacity(files.len());
    let mut from = 0;
    loop {
        let to = (from + LOOK_RUN).min(files.len());
        let run_reads = reads.get(from..to.min(reads.len())).unwrap_or_default();
        let run_before = before.get(from..to).unwrap_or_default();
        let last_read = run_reads
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
            .filter(|(i, r)| r.needs_settle(run_before.get(*i).copied().flatten().as_ref(), looked))
            .filter_map(|(_, r)| r.opened.as_ref().map(|o| o.read_at))
            .max();
        if let Some(wait) = last_read.and_then(|at| left_of(settle, at, Instant::now())) {
            pause(wait);
        }
        let run =
            still(&files[from..to], run_before, Some(run_reads), looked).map_err(|i| from + i)?;
        same.extend(run);
        if to == files.len() {
            return Ok(same);
        }
        from = to;
    }
}

/// What is left of `settle` at `now` since a read at `read_at`: `None` when
/// nothing is; the whole of it for a read not yet passed. Both are read
/// from the monotonic clock: a wall clock stepped forward during a load
/// would otherwise shorten the pause.
fn left_of(settle: Duration, read_at: Instant, now: Instant) -> Option<Duration> {
    let left = settle.saturating_sub(now.saturating_duration_since(read_at));
    (!left.is_zero()).then_some(left)
}

/// After a read that failed: `Err` with the index of the first of `files`
/// whose stamp is not the one it had `before` the read (rewritten in place,
/// renamed over, or gone), else `Ok` (the failure is the files'). The
/// bytes that failed are not at hand to say whether a file renamed over
/// was read whole, so any change makes the read void.
fn unmoved(files: &[PathBuf], before: &[Option<FileStamp>]) -> Result<Vec<bool>, usize> {
    first_changed(per_file(files.len(), |i| {
        let b = before.get(i).copied().flatten();
        (b.is_none() || FileStamp::of(&files[i]) == b).then_some(true)
    }))
}

/// Each file's look (`None`: changed in place) as [`still`] returns them:
/// `Err` with the index of the first that changed, else each one's `bool`.
fn first_changed(same: Vec<Option<bool>>) -> Result<Vec<bool>, usize> {
    same.into_iter()
        .enumerate()
        .map(|(i, same)| same.ok_or(i))
        .collect()
}

/// Whether the file at `path`, whose stamp was `before` (taken at
/// `looked`) and bytes `content`, is still that file with those bytes
/// (`None`: changed in place, same inode, another stamp, or a racy one
/// whose bytes are not `content`); `Some(false)` for another file there
/// (renamed over) or none.
fn by_path(
    path: &Path,
    before: Option<FileStamp>,
    content: Option<FileHash>,
    looked: i128,
) -> Option<bool> {
    match (before, FileStamp::of(path)) {
        (Some(b), Some(n)) if b == n => match content {
            // Its stamp may hide a write in the same tick.
            Some(read) if b.racy(looked) => match content_of(path) {
                Some(c) if c == read => Some(true),
                Some(_) => None,
                None => Some(false),
            },
            _ => Some(true),
        },
        (Some(b), Some(n)) if b.same_file(&n) => None,
        _ => Some(false),
    }
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod settle_tests {
    use super::*;

    /// A file `t.txt` holding `text` in a new folder (removed when the
    /// first is dropped).
    fn one_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, text).unwrap();
        (dir, f)
    }

    /// The one file `f` read as text, as a load reads it: through the
    /// descriptor it opened, held when `hold` (as within the budget,
    /// [`held_max`]) or looked at by its path (past the budget).
    /// Held on a count of the tests' own: the process's budget is shared
    /// with the tests that load thousands of files beside these, which
    /// would leave a file here unheld now and then.
    /// Its read counts as made now whatever the machine's speed (its time
    /// set ahead: the whole settle is left of it), so the pauses asked for
    /// are the whole settle, as these tests expect.
    fn read_one(f: &Path, hold: bool) -> (String, Vec<Option<FileRead>>) {
        let ahead = Instant::now() + Duration::from_secs(3600);
        read_one_at(f, hold, ahead)
    }

    /// [`read_one`], its `fstat` taken at `at`.
    fn read_one_at(f: &Path, hold: bool, at: Instant) -> (String, Vec<Option<FileRead>>) {
        static TESTS_HELD: AtomicUsize = AtomicUsize::new(0);
        let mut bytes = Vec::new();
        let mut read = crate::ts::source::read_bytes_into(f, &mut bytes).unwrap();
        read.at = at;
        let opened = Opened::holding(read, |file| {
            hold.then(|| Held::within(file, &TESTS_HELD, usize::MAX))
                .flatten()
        });
        let read = FileRead {
            content: content(&bytes),
            opened: Some(opened),
            includes: None,
        };
        (String::from_utf8(bytes).unwrap(), vec![Some(read)])
    }

    /// No file read, for `n` files.
    fn none_read(n: usize) -> Vec<Option<FileRead>> {
        (0..n).map(|_| None).collect()
    }

    /// A writer at work in place on `f` (`bytes` appended, or written over
    /// its start), then a new version `new` renamed over it.
    fn in_place_then_renamed_over(f: &Path, bytes: &[u8], append: bool, new: &str) {
        let mut w = std::fs::OpenOptions::new();
        if append {
            w.append(true);
        } else {
            w.write(true);
        }
        w.open(f)
            .and_then(|mut w| std::io::Write::write_all(&mut w, bytes))
            .unwrap();
        let tmp = f.with_extension("new");
        std::fs::write(&tmp, new).unwrap();
        std::fs::rename(&tmp, f).unwrap();
    }

    /// [`read_settled`] of the one file `f` (no first look), read as text
    /// (held: see [`read_one`]), with `meanwhile(n)` run after the `n`th
    /// read (a writer at work) and `pause` for its pauses: the text kept,
    /// what was seen, and the reads.
    fn read_text(
        f: &Path,
        settle: Duration,
        meanwhile: impl FnMut(usize),
        pause: impl FnMut(Duration),
    ) -> (String, Vec<Option<Seen>>, usize) {
        read_text_holding(f, true, settle, meanwhile, pause)
    }

    /// [`read_text`], the file's descriptor held or not (`hold`).
    fn read_text_holding(
        f: &Path,
        hold: bool,
        settle: Duration,
        mut meanwhile: impl FnMut(usize),
        pause: impl FnMut(Duration),
    ) -> (String, Vec<Option<Seen>>, usize) {
        let mut reads = 0;
        let (text, seen) = read_settled(
            "t",
            &[f.to_path_buf()],
            settle,
            None,
            |_| {
                reads += 1;
                let read = read_one(f, hold);
                meanwhile(reads);
                Ok(read)
            },
            pause,
        )
        .unwrap();
        (text, seen, reads)
    }

    /// What is left of the settle pause since a read: all of it for a read
    /// now or not yet passed, the rest of it for one a moment ago, nothing
    /// for one read longer ago than that.
    #[test]
    fn the_pause_left_is_the_settle_less_the_reads_age() {
        let ms = Duration::from_millis;
        let now = Instant::now() + ms(10_000);
        assert_eq!(left_of(SETTLE, now, now), Some(SETTLE));
        assert_eq!(left_of(SETTLE, now + ms(5), now), Some(SETTLE));
        assert_eq!(left_of(SETTLE, now - ms(30), now), Some(ms(70)));
        assert_eq!(left_of(SETTLE, now - ms(100), now), None);
        assert_eq!(left_of(SETTLE, now - ms(5_000), now), None);
        assert_eq!(left_of(Duration::ZERO, now, now), None);
    }

    /// Each file is looked at once its own read is [`SETTLE`] old: a file
    /// read long enough ago is looked at with no pause, one read a moment
    /// ago after what is left of the settle, and a writer at work during
    /// that pause is still found (the try made again).
    #[test]
    fn a_file_read_long_enough_ago_is_looked_at_without_a_pause() {
        let (_dir, f) = one_file("whole\n");
        let long_ago = Instant::now().checked_sub(2 * SETTLE).unwrap();
        let mut pauses = Vec::new();
        let (text, seen) = read_settled(
            "t",
            std::slice::from_ref(&f),
            SETTLE,
            Some(Look::blind(1)),
            |_| Ok(read_one_at(&f, true, long_ago)),
            |d| pauses.push(d),
        )
        .unwrap();
        assert_eq!((text.as_str(), pauses.len()), ("whole\n", 0));
        assert_eq!(seen[0].as_ref().map(|s| s.stamp), FileStamp::of(&f));

        let moment_ago = Instant::now().checked_sub(SETTLE / 2).unwrap();
        let mut reads = 0;
        let mut pauses = Vec::new();
        let (text, _) = read_settled(
            "t",
            std::slice::from_ref(&f),
            SETTLE,
            Some(Look::blind(1)),
            |_| {
                reads += 1;
                Ok(read_one_at(&f, true, moment_ago))
            },
            |d| {
                if pauses.is_empty() {
                    // The writer goes on during the pause.
                    std::fs::write(&f, "whole\nand more\n").unwrap();
                }
                pauses.push(d);
            },
        )
        .unwrap();
        assert_eq!((text.as_str(), reads), ("whole\nand more\n", 2));
        assert!(
            pauses[0] > Duration::ZERO && pauses[0] <= SETTLE / 2,
            "{pauses:?}"
        );
    }

    /// A file that had not changed for [`RACY`] before the look preceding
    /// its read is looked at again with no pause (the look's clock set
    /// ahead: the file as if written long before); one changed within that
    /// while waits out the whole settle, as does one whose included file
    /// changed then.
    #[test]
    fn a_file_still_long_before_its_read_is_looked_at_without_a_pause() {
        let (_dir, f) = one_file("whole\n");
        let files = std::slice::from_ref(&f);
        let later = now_ns() + 3 * RACY.as_nanos() as i128;
        for (looked, want) in [(later, vec![]), (now_ns(), vec![SETTLE])] {
            let look = Look {
                at: looked,
                stamps: stamps(files),
                blind: false,
            };
            let mut pauses = Vec::new();
            let (text, seen) = read_settled(
                "t",
                files,
                SETTLE,
                Some(look),
                |_| Ok(read_one(&f, true)),
                |d| pauses.push(d),
            )
            .unwrap();
            assert_eq!((text.as_str(), &pauses), ("whole\n", &want));
            assert_eq!(seen[0].as_ref().map(|s| s.stamp), FileStamp::of(&f));
        }
        let (_, mut reads) = read_one(&f, true);
        let read = reads.pop().flatten().unwrap();
        let stamp = FileStamp::of(&f).unwrap();
        assert!(!read.needs_settle(Some(&stamp), later));
        // No look before the read, or another stamp then (emptied by
        // `open(O_TRUNC)`, its times not yet moved): the pause.
        assert!(read.needs_settle(None, later));
        let emptied = FileStamp { len: 0, ..stamp };
        assert!(read.needs_settle(Some(&emptied), later));
        let included = IncludeSeen {
            path: f.clone(),
            stamp,
            racy: false,
        };
        let read = read.including(Some(Arc::from(vec![included])));
        assert!(read.needs_settle(Some(&stamp), later), "it included a file");
        let (_dir, empty) = one_file("");
        let (_, mut reads) = read_one(&empty, true);
        let read = reads.pop().flatten().unwrap();
        let stamp = FileStamp::of(&empty).unwrap();
        assert!(read.needs_settle(Some(&stamp), later), "an empty file");
    }

    #[test]
    fn a_content_changes_with_any_byte_and_not_otherwise() {
        let first = content(b"www.example.com 192.0.2.1 A\n");
        assert_eq!(content(b"www.example.com 192.0.2.1 A\n"), first);
        assert_ne!(content(b"www.example.com 192.0.2.2 A\n"), first);
    }

    /// A file whose stamp is the one seen is unchanged without a read,
    /// unless the stamp was racy: then its bytes decide. Any write that
    /// moves the stamp is a change.
    #[test]
    fn a_stamp_stands_for_the_bytes_unless_it_was_racy() {
        let (_dir, f) = one_file("aaaa");
        let stamp = FileStamp::of(&f).unwrap();
        let seen = |racy: bool, text: &str| Seen {
            stamp,
            content: content(text.as_bytes()),
            racy,
            includes: None,
        };
        // Not racy: the stamp alone, the bytes never read.
        assert!(seen(false, "what the file held when seen").unchanged(&f, Some(&stamp)));
        // Racy (just written): the bytes are compared.
        assert!(stamp.racy(now_ns()));
        assert!(seen(true, "aaaa").unchanged(&f, Some(&stamp)));
        assert!(!seen(true, "bbbb").unchanged(&f, Some(&stamp)));
        assert!(!stamp.racy(stamp.ctime + RACY.as_nanos() as i128 + 1));
        std::fs::write(&f, "aaaaa").unwrap();
        assert!(!seen(false, "aaaa").unchanged(&f, FileStamp::of(&f).as_ref()));
        assert!(!seen(false, "aaaa").unchanged(&f, None));
        // Another stamp, the same bytes (renamed over, or written back).
        std::fs::write(&f, "aaaa").unwrap();
        assert!(seen(false, "aaaa").unchanged(&f, FileStamp::of(&f).as_ref()));
    }

    /// The pause before the second look is paid whatever the files' times
    /// say: a file emptied by `open(O_TRUNC)` keeps its old times until
    /// the writer's first write, so a look then finds a file changed long
    /// ago, and a read of it finds nothing. The writer's rest, written
    /// during the pause, is found by the look after it and read again.
    #[test]
    fn an_emptied_file_with_old_times_is_looked_at_again_after_the_pause() {
        let (_dir, f) = one_file("");
        let stamp = FileStamp::of(&f).unwrap();
        let old = Look {
            at: stamp.ctime + RACY.as_nanos() as i128 + 1,
            stamps: vec![Some(stamp)],
            blind: false,
        };
        let mut reads = 0;
        let mut pauses = Vec::new();
        let (text, _) = read_settled(
            "t",
            std::slice::from_ref(&f),
            SETTLE,
            Some(old),
            |_| {
                reads += 1;
                Ok(read_one(&f, true))
            },
            |d| {
                if pauses.is_empty() {
                    std::fs::write(&f, "whole\n").unwrap();
                }
                pauses.push(d);
            },
        )
        .unwrap();
        assert_eq!(
            (text.as_str(), reads),
            ("whole\n", 2),
            "the empty read is not kept"
        );
        assert_eq!(pauses, vec![SETTLE, READ_BACKOFF, SETTLE]);
    }

    /// A read during which the file is rewritten (as a writer rewriting it
    /// in place would) is never kept; a read of settled files is.
    #[test]
    fn a_file_rewritten_while_read_is_read_again_and_never_kept_half_written() {
        let (_dir, f) = one_file("whole version 1\n");
        let mut pauses = Vec::new();
        let (got, seen, reads) = read_text(
            &f,
            Duration::ZERO,
            |n| {
                if n <= 2 {
                    // The writer is at work during the first two reads.
                    std::fs::write(&f, format!("half {n}")).unwrap();
                }
            },
            |d| pauses.push(d),
        );
        assert_eq!(reads, 3);
        assert_eq!(got, "half 2", "the read of settled bytes is kept");
        assert_eq!(
            seen[0].as_ref().map(|s| s.content),
            Some(content(b"half 2"))
        );
        assert_eq!(seen[0].as_ref().map(|s| s.stamp), FileStamp::of(&f));
        assert_eq!(
            pauses,
            [Duration::from_millis(50), Duration::from_millis(100)]
        );
    }

    /// A rewrite of the same length in place during the read, maybe within
    /// the tick of the last write (its stamp then unchanged), is still
    /// found: the racy file's bytes are hashed again.
    #[test]
    fn a_same_length_rewrite_in_the_same_tick_is_found_by_the_bytes() {
        let (_dir, f) = one_file("");
        for round in 0..20 {
            std::fs::write(&f, "version a").unwrap();
            let (got, _, reads) = read_text(
                &f,
                Duration::ZERO,
                |n| {
                    if n == 1 {
                        std::fs::write(&f, "version b").unwrap();
                    }
                },
                |_| {},
            );
            assert_eq!((round, reads, got.as_str()), (round, 2, "version b"));
        }
    }

    #[test]
    fn files_that_never_settle_are_refused_and_a_bad_settled_file_is_an_error() {
        let (_dir, f) = one_file("x");
        let (_dir2, g) = one_file("y");
        let files = vec![f.clone()];
        // `files` read while `f` is rewritten at every read: the error, and
        // the reads made.
        let never_settled = |files: &[PathBuf]| {
            let mut n = 0;
            let err = read_settled(
                "t",
                files,
                Duration::ZERO,
                None,
                |_| {
                    n += 1;
                    std::fs::write(&f, n.to_string()).unwrap();
                    Ok(((), none_read(files.len())))
                },
                |_| {},
            )
            .unwrap_err();
            (err, n)
        };
        let (err, n) = never_settled(&files);
        assert_eq!(n, READ_TRIES);
        assert!(
            matches!(
                err,
                ZoneError::Unsettled {
                    tries: READ_TRIES,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("renaming it over the old"),
            "{err}"
        );
        // Among many files, the error names the one that changed.
        let (err, _) = never_settled(&[g, f.clone()]);
        assert!(
            matches!(&err, ZoneError::Unsettled { file, .. } if *file == f),
            "{err}"
        );
        let bad = read_settled::<()>(
            "t",
            &files,
            Duration::ZERO,
            None,
            |_| Err(ZoneError::line(&f, 1, "bad")),
            |_| panic!("no retry"),
        )
        .unwrap_err();
        assert_eq!(bad, ZoneError::line(&f, 1, "bad"));
    }

    /// A file renamed over the one being read (the safe way to replace
    /// it) was read whole: kept, and read again at the next reload; a short file that
    /// grows just after the read (a writer between truncating and writing)
    /// is read again.
    #[test]
    fn a_file_renamed_over_is_kept_and_one_growing_after_the_read_is_read_again() {
        let (dir, f) = one_file("old");
        let (got, seen, _) = read_text(
            &f,
            Duration::ZERO,
            |_| {
                let tmp = dir.path().join("t.new");
                std::fs::write(&tmp, "new").unwrap();
                std::fs::rename(&tmp, &f).unwrap();
            },
            |_| panic!("no retry"),
        );
        assert_eq!(got, "old");
        // Seen as read; the next reload finds the new file by its stamp.
        let seen = seen[0].clone().unwrap();
        assert_eq!(seen.content, content(b"old"));
        assert!(!seen.unchanged(&f, FileStamp::of(&f).as_ref()));

        std::fs::write(&f, "").unwrap();
        let mut pauses = Vec::new();
        let settle = Duration::from_millis(10);
        let (_, _, reads) = read_text(
            &f,
            settle,
            |_| {},
            |d| {
                pauses.push(d);
                if pauses.len() == 1 {
                    // The writer goes on while the TS looks away.
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&f)
                        .and_then(|mut w| std::io::Write::write_all(&mut w, b"rest"))
                        .unwrap();
                }
            },
        );
        assert_eq!(reads, 2, "read again");
        assert_eq!(pauses, [settle, READ_BACKOFF, settle]);
    }

    /// A file read while a writer rewrites it in place (it had written
    /// "wh" of "whole\nfile\n"), then, during the pause, the writer writes
    /// the rest and another writer renames a new version over it: the look
    /// after the pause is at the file read (its descriptor), so the write
    /// is seen and the half read is not kept, rename or not.
    #[test]
    fn a_half_read_is_not_kept_when_the_file_is_renamed_over_after_it() {
        let (_dir, f) = one_file("wh");
        let path = f.clone();
        let mut pauses = 0;
        let (got, seen, reads) = read_text(
            &f,
            SETTLE,
            |_| {},
            move |_| {
                pauses += 1;
                if pauses == 1 {
                    in_place_then_renamed_over(&path, b"ole\nfile\n", true, "whole\nfile\n");
                }
            },
        );
        assert_eq!(got, "whole\nfile\n", "the half read was kept");
        assert_eq!(reads, 2);
        assert_eq!(
            seen[0].as_ref().map(|s| s.content),
            Some(content(b"whole\nfile\n"))
        );
    }

    /// The same with a rewrite of the same length in place, in the tick of
    /// the read (its length and modified time then as read), and a new
    /// version renamed over it: the file read changed (its changed time, or
    /// its bytes), so it is read again.
    #[test]
    fn a_same_length_rewrite_then_a_rename_over_it_is_read_again() {
        let (_dir, f) = one_file("version a");
        for round in 0..20 {
            std::fs::write(&f, "version a").unwrap();
            let (got, _, reads) = read_text(
                &f,
                Duration::ZERO,
                |n| {
                    if n == 1 {
                        in_place_then_renamed_over(&f, b"version b", false, "version c");
                    }
                },
                |_| {},
            );
            assert_eq!((round, reads, got.as_str()), (round, 2, "version c"));
        }
    }

    /// Past the budget of descriptors held ([`held_max`]), a file read is
    /// looked at by its path: still found rewritten in place, and taken as
    /// read whole when renamed over.
    #[test]
    fn a_file_not_held_is_looked_at_by_its_path() {
        let (dir, f) = one_file("old");
        let (got, seen, reads) = read_text_holding(
            &f,
            false,
            Duration::ZERO,
            |n| {
                if n == 1 {
                    std::fs::write(&f, "rewritten").unwrap();
                }
            },
            |_| {},
        );
        assert_eq!((got.as_str(), reads), ("rewritten", 2));
        assert_eq!(seen[0].as_ref().map(|s| s.stamp), FileStamp::of(&f));
        let (got, seen, _) = read_text_holding(
            &f,
            false,
            Duration::ZERO,
            |_| {
                let tmp = dir.path().join("t.new");
                std::fs::write(&tmp, "new").unwrap();
                std::fs::rename(&tmp, &f).unwrap();
            },
            |_| panic!("no retry"),
        );
        assert_eq!((got.as_str(), seen), ("rewritten", vec![None]));
    }

    /// A file past the budget is not held (its count is `fds.rs`'s, tested
    /// there); a held one keeps its place until dropped.
    #[test]
    fn held_descriptors_stay_within_the_budget() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let (_dir, f) = one_file("x");
        let hold = || Held::within(std::fs::File::open(&f).unwrap(), &COUNT, 1);
        let first = hold();
        assert!(first.is_some() && hold().is_none(), "one place");
        drop(first);
        assert!(hold().is_some(), "its place given back");
    }

    /// A read that fails (a half-written file does not parse) while the
    /// file is renamed over is not taken as the file's mistake: the bytes
    /// that failed may be half a version, so the file is read again.
    #[test]
    fn a_half_read_that_fails_to_parse_is_read_again_when_renamed_over() {
        let (dir, f) = one_file("whole\n");
        let tmp = dir.path().join("t.new");
        let mut reads = 0;
        let got = read_settled(
            "t",
            std::slice::from_ref(&f),
            Duration::ZERO,
            None,
            |_| {
                reads += 1;
                if reads == 1 {
                    std::fs::write(&tmp, "whole\n").unwrap();
                    std::fs::rename(&tmp, &f).unwrap();
                    return Err(ZoneError::line(&f, 1, "half a line"));
                }
                Ok(read_one(&f, true))
            },
            |_| {},
        );
        assert_eq!(got.map(|(t, _)| t).ok().as_deref(), Some("whole\n"));
        assert_eq!(reads, 2);
    }

    /// A start looks at no file before its first read ([`Look::blind`]):
    /// a failure then is read again with the stamps, so that a file
    /// rewritten meanwhile is read whole, and a real mistake is still an
    /// error.
    #[test]
    fn a_start_that_fails_without_stamps_reads_again_with_them() {
        let (_dir, f) = one_file("whole\n");
        let mut reads = 0;
        let got = read_settled(
            "t",
            std::slice::from_ref(&f),
            Duration::ZERO,
            Some(Look::blind(1)),
            |before| {
                reads += 1;
                if reads == 1 {
                    assert_eq!(before, [None]);
                    return Err(ZoneError::line(&f, 1, "half a line"));
                }
                assert_eq!(before, [FileStamp::of(&f)]);
                Ok(read_one(&f, true))
            },
            |_| panic!("no pause"),
        );
        assert_eq!(got.map(|(t, _)| t).ok().as_deref(), Some("whole\n"));
        assert_eq!(reads, 2);
        let mut reads = 0;
        let err = read_settled::<()>(
            "t",
            std::slice::from_ref(&f),
            Duration::ZERO,
            Some(Look::blind(1)),
            |_| {
                reads += 1;
                Err(ZoneError::line(&f, 1, "bad"))
            },
            |_| panic!("no pause"),
        )
        .unwrap_err();
        assert_eq!((err, reads), (ZoneError::line(&f, 1, "bad"), 2));
    }
}

//! Zone files read only while nobody rewrites them: [`fingerprint`] (each
//! file's length and hash) before, after and a moment after a read; a read
//! during which a file changed in place is never served.
use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;

use super::source::ZoneError;

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

/// Each file's device and inode (`None` for one that cannot be read): a
/// file renamed over another is another inode, a file rewritten in place
/// the same.
fn identities(files: &[PathBuf]) -> Vec<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| std::fs::metadata(f).ok().map(|m| (m.dev(), m.ino())))
        .collect()
}

/// The result of `read` over `files` that were not rewritten in place while
/// it ran (`read` is given the fingerprint taken just before it: a file
/// whose fingerprint is the one a zone was compiled from need not be read
/// again, since any change during the read makes the try void), with their fingerprint when it is known to stand for what was
/// read. Each try takes the fingerprint (and each file's inode) before and
/// after `read`, and again `settle` later. A file whose bytes changed while
/// its inode stayed is being rewritten in place: what was read may be
/// half-written and is never served; the try is logged and, after
/// `pause(backoff)`, made again, up to [`READ_TRIES`]. A file renamed over
/// (another inode) was read whole, from one version or the other: the
/// result is kept, without a fingerprint (the next reload reads again).
///
/// # Errors
/// `read`'s error from files that did not change while read (a real
/// mistake in them); [`ZoneError::Unsettled`] when they changed every time.
pub(super) fn read_settled<T>(
    ts: &str,
    files: &[PathBuf],
    settle: Duration,
    mut read: impl FnMut(Option<&Fingerprint>) -> Result<T, ZoneError>,
    mut pause: impl FnMut(Duration),
) -> Result<(T, Option<Fingerprint>), ZoneError> {
    let mut backoff = READ_BACKOFF;
    for attempt in 1..=READ_TRIES {
        let ids = identities(files);
        let before = fingerprint(files);
        let result = read(before.as_ref());
        let after = fingerprint(files);
        let renamed = identities(files) != ids;
        let mut settled = before == after || renamed;
        if settled && !settle.is_zero() {
            // A writer between truncating a file and writing the rest leaves
            // a short file that a quick read sees unchanged (and the file's
            // time is no sure sign of it): look again a moment later.
            pause(settle);
            settled = fingerprint(files) == after || identities(files) != ids;
        }
        if settled {
            let known = (before == after && !renamed).then_some(after).flatten();
            return result.map(|v| (v, known));
        }
        warn!(
            ts,
            attempt,
            tries = READ_TRIES,
            "zone files changed while being read: what was read is not used, reading again"
        );
        if attempt < READ_TRIES {
            pause(backoff);
            backoff *= 2;
        }
    }
    Err(ZoneError::Unsettled {
        file: files.first().cloned().unwrap_or_default(),
        tries: READ_TRIES,
    })
}

/// Each zone file's length and a hash of its bytes.
pub type Fingerprint = Vec<(u64, u64)>;

/// Each file's length and a hash of its bytes (`None` if one cannot be
/// read), streamed in 64 KiB pieces so a big table costs no memory.
pub fn fingerprint(files: &[PathBuf]) -> Option<Vec<(u64, u64)>> {
    use std::hash::Hasher;
    use std::io::Read;
    files
        .iter()
        .map(|f| {
            let mut file = std::fs::File::open(f).ok()?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut len = 0u64;
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                h.write(&buf[..n]);
                len += n as u64;
            }
            Some((len, h.finish()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A folder holding one file, `t.txt`, of `text`: the folder (kept
    /// alive), the file, and the file as the list a read is given.
    fn one_file(text: &str) -> (tempfile::TempDir, PathBuf, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.txt");
        std::fs::write(&f, text).unwrap();
        let files = vec![f.clone()];
        (dir, f, files)
    }

    #[test]
    fn a_fingerprint_changes_with_any_byte_and_not_otherwise() {
        let (dir, f, files) = one_file("www.example.com 192.0.2.1 A\n");
        let first = fingerprint(&files).unwrap();
        assert_eq!(fingerprint(&files).unwrap(), first, "same bytes");
        std::fs::write(&f, "www.example.com 192.0.2.2 A\n").unwrap();
        assert_ne!(fingerprint(&files).unwrap(), first, "one byte changed");
        assert!(fingerprint(&[dir.path().join("missing")]).is_none());
    }

    /// A read during which the file is rewritten (as a writer rewriting it
    /// in place would) is never kept; a read of settled files is.
    #[test]
    fn a_file_rewritten_while_read_is_read_again_and_never_kept_half_written() {
        let (_dir, f, files) = one_file("whole version 1\n");
        let mut reads = 0;
        let mut pauses = Vec::new();
        let (got, fp) = read_settled(
            "t",
            &files,
            Duration::ZERO,
            |_| {
                reads += 1;
                let text = std::fs::read_to_string(&f).unwrap();
                if reads <= 2 {
                    // The writer is at work during the first two reads.
                    std::fs::write(&f, format!("half {reads}")).unwrap();
                }
                Ok(text)
            },
            |d| pauses.push(d),
        )
        .unwrap();
        assert_eq!(reads, 3);
        assert_eq!(got, "half 2", "the read of settled bytes is kept");
        assert_eq!(fp, fingerprint(&files));
        assert_eq!(
            pauses,
            [Duration::from_millis(50), Duration::from_millis(100)]
        );
    }

    #[test]
    fn files_that_never_settle_are_refused_and_a_bad_settled_file_is_an_error() {
        let (_dir, f, files) = one_file("x");
        let mut n = 0;
        let err = read_settled(
            "t",
            &files,
            Duration::ZERO,
            |_| {
                n += 1;
                std::fs::write(&f, n.to_string()).unwrap();
                Ok(())
            },
            |_| {},
        )
        .unwrap_err();
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
        let bad = read_settled::<()>(
            "t",
            &files,
            Duration::ZERO,
            |_| Err(ZoneError::line(&f, 1, "bad")),
            |_| panic!("no retry"),
        )
        .unwrap_err();
        assert_eq!(bad, ZoneError::line(&f, 1, "bad"));
    }

    /// A file renamed over the one being read (the safe way to replace
    /// it) was read whole: kept, without a fingerprint; a short file that
    /// grows just after the read (a writer between truncating and writing)
    /// is read again.
    #[test]
    fn a_file_renamed_over_is_kept_and_one_growing_after_the_read_is_read_again() {
        let (dir, f, files) = one_file("old");
        let (got, fp) = read_settled(
            "t",
            &files,
            Duration::ZERO,
            |_| {
                let text = std::fs::read_to_string(&f).unwrap();
                let tmp = dir.path().join("t.new");
                std::fs::write(&tmp, "new").unwrap();
                std::fs::rename(&tmp, &f).unwrap();
                Ok(text)
            },
            |_| panic!("no retry"),
        )
        .unwrap();
        assert_eq!((got.as_str(), fp), ("old", None));

        std::fs::write(&f, "").unwrap();
        let mut reads = 0;
        let mut pauses = Vec::new();
        let settle = Duration::from_millis(10);
        read_settled(
            "t",
            &files,
            settle,
            |_| {
                reads += 1;
                Ok(())
            },
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
        )
        .unwrap();
        assert_eq!(reads, 2, "read again");
        assert_eq!(pauses, [settle, READ_BACKOFF, settle]);
    }
}

//! `$INCLUDE` followed (RFC 1035 §5.1, as NSD and BIND read it): the walk
//! over a master file's entries ([`Walk`]) that, at a `$INCLUDE`, reads the
//! file named (a relative name is found in the including file's folder),
//! from the origin given or the one in force, into the same records, then
//! goes on in the including file with its own origin. Every problem names
//! the `file:line` of the file it is in. A file that includes itself, by
//! any path, or includes nested deeper than [`MAX_DEPTH`] is one error at
//! the `$INCLUDE` that would close the loop or go too deep.
use std::path::{Path, PathBuf};

use crate::ts::error::ZoneError;
use crate::ts::source::read_bytes_into;

use super::lexer::{self, LexError};
use super::reader::{Include, Reader};
use super::records::{IncludedFile, WireRecords};

/// The most files open in one another: the zone file and nine it includes
/// nested inside it (NSD allows 10 as well).
pub(super) const MAX_DEPTH: usize = 10;

/// The most files a zone's `$INCLUDE`s may read in all (a file included
/// again and again, not nested, would otherwise be read without end).
pub(super) const MAX_INCLUDED: usize = 10_000;

/// A master file's walk: the reader and records it fills, the problems
/// found (up to `max`), and the files being read, outermost first (their
/// real paths: a loop is found whatever the spelling).
pub(super) struct Walk<'w> {
    pub(super) reader: &'w mut Reader,
    pub(super) records: &'w mut WireRecords,
    pub(super) problems: &'w mut Vec<ZoneError>,
    pub(super) max: usize,
    pub(super) open: Vec<PathBuf>,
}

impl Walk<'_> {
    /// Reads `text`, the bytes of `file` (number `n`: 0 the zone file,
    /// else its `n`th include), entry by entry, following its
    /// `$INCLUDE`s. Returns `false` when the walk is over: `max` problems
    /// found, or a lexical error (what follows it cannot be read).
    pub(super) fn text(&mut self, text: &[u8], file: &Path, n: usize) -> bool {
        let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        let mut go_on = true;
        let lexed = lexer::each_entry(text, |entry| {
            let stop = || LexError {
                line: 0,
                msg: String::new(),
            };
            match self.reader.entry(entry, self.records) {
                Ok(None) => {}
                Ok(Some(include)) => {
                    let read = self.include(&include, file);
                    self.records.back_to(n);
                    if !read {
                        go_on = false;
                        return Err(stop());
                    }
                }
                Err((line, msg)) => {
                    self.problems.push(ZoneError::line(file, line, msg));
                    if self.problems.len() >= self.max {
                        // Not a lexical error: ends the walk, reported already.
                        go_on = false;
                        return Err(stop());
                    }
                }
            }
            Ok(())
        });
        match lexed {
            Err(e) if e.line > 0 => {
                if self.problems.len() < self.max {
                    self.problems.push(ZoneError::line(file, e.line, e.msg));
                }
                false
            }
            _ => go_on,
        }
    }

    /// Reads the file `include` names (from `file`'s folder when relative)
    /// and comes back to `file`'s origin. `false` when the walk is over.
    fn include(&mut self, include: &Include, file: &Path) -> bool {
        let at = |msg: String| ZoneError::line(file, include.line, msg);
        let named = bytes_path(&include.file);
        let path = match (named.is_relative(), file.parent()) {
            (true, Some(folder)) => folder.join(&named),
            _ => named,
        };
        let problem = if self.open.len() >= MAX_DEPTH {
            Some(format!(
                "$INCLUDE {} goes deeper than {MAX_DEPTH} files one in another",
                path.display()
            ))
        } else if self.records.included().len() >= MAX_INCLUDED {
            Some(format!(
                "more than {MAX_INCLUDED} files included: {} is one too many",
                path.display()
            ))
        } else {
            None
        };
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let problem = problem.or_else(|| {
            self.open.contains(&real).then(|| {
                format!(
                    "$INCLUDE {} is a loop: that file is being read already",
                    path.display()
                )
            })
        });
        if let Some(msg) = problem {
            self.problems.push(at(msg));
            return self.problems.len() < self.max;
        }
        let mut bytes = Vec::new();
        let read = match read_bytes_into(&path, &mut bytes) {
            Ok(read) => read,
            Err(e) => {
                self.problems.push(at(format!("$INCLUDE: {e}")));
                return self.problems.len() < self.max;
            }
        };
        let n = self.records.include(IncludedFile {
            path: path.clone(),
            meta: read.meta,
        });
        drop(read.file);
        self.open.push(real);
        let saved = self.reader.enter(include.origin.clone());
        let go_on = self.text(&bytes, &path, n);
        self.reader.leave(saved);
        self.open.pop();
        go_on
    }
}

/// A file name as written in a zone file: its bytes, as Unix paths are.
fn bytes_path(name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(name))
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::{Name, RecordType};

    use super::super::{check_file_all, load_zone_file};

    const APEX: &str =
        "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 host 1 7200 3600 1209600 300\n  NS ns1\n";

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn owners_of(file: &Path, kind: RecordType) -> Vec<String> {
        let (_, records) = load_zone_file(file, None).unwrap();
        records
            .iter()
            .filter(|r| r.data.record_type() == kind)
            .map(|r| r.name.to_string())
            .collect()
    }

    /// The file is found beside the including file (not in the working
    /// folder), read from the origin given or the one in force, and the
    /// including file goes on from its own origin after it, whatever the
    /// included file's `$ORIGIN`.
    #[test]
    fn an_included_file_is_read_from_its_origin_and_the_origin_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "parts/hosts.inc",
            "www A 192.0.2.1\n$ORIGIN deep.example.test.\nin-deep A 192.0.2.2\n",
        );
        write(
            dir.path(),
            "parts/mail.inc",
            "mx1 A 192.0.2.3\n@ A 192.0.2.4\n",
        );
        let zone = write(
            dir.path(),
            "z.zone",
            &format!(
                "{APEX}$INCLUDE parts/hosts.inc\nafter A 192.0.2.5\n\
                 $INCLUDE \"parts/mail.inc\" mail ; the mail hosts\n@ A 192.0.2.6\n"
            ),
        );
        let mut got = owners_of(&zone, RecordType::A);
        got.sort();
        assert_eq!(
            got,
            [
                "after.example.test.",
                "example.test.",
                "in-deep.deep.example.test.",
                "mail.example.test.",
                "mx1.mail.example.test.",
                "www.example.test.",
            ]
            .map(String::from)
        );
        // The including file's `@` after the includes is its own origin.
        let (origin, _) = load_zone_file(&zone, None).unwrap();
        assert_eq!(origin, Name::from_ascii("example.test.").unwrap());
    }

    /// A problem in an included file names that file and its line, for a
    /// load and for `dnslb check` (every one), a record outside the zone
    /// included, too; a file that cannot be read is a problem at the
    /// `$INCLUDE`.
    #[test]
    fn problems_in_an_included_file_name_it_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let inc = write(dir.path(), "bad.inc", "ok A 192.0.2.1\nbad A 300.0.0.1\n");
        let zone = write(dir.path(), "z.zone", &format!("{APEX}$INCLUDE bad.inc\n"));
        let err = load_zone_file(&zone, None).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2: ", inc.display())), "{err}");

        let outside = write(
            dir.path(),
            "out.inc",
            "ok A 192.0.2.1\nx.other.test. A 192.0.2.1\n",
        );
        let zone2 = write(dir.path(), "z2.zone", &format!("{APEX}$INCLUDE out.inc\n"));
        let err = load_zone_file(&zone2, None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:2: x.other.test. is outside the zone example.test.",
                outside.display()
            )
        );

        let zone3 = write(
            dir.path(),
            "z3.zone",
            &format!("{APEX}$INCLUDE bad.inc\n$INCLUDE none.inc\nbad2 A 1.2.3\n"),
        );
        let all: Vec<String> = check_file_all(&zone3, &Name::root())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            all[0].starts_with(&format!("{}:2: ", inc.display())),
            "{all:?}"
        );
        let z3 = zone3.display();
        assert!(
            all[1].starts_with(&format!("{z3}:6: $INCLUDE: ")),
            "{all:?}"
        );
        assert!(all[1].contains("none.inc"), "{all:?}");
        assert!(all[2].starts_with(&format!("{z3}:7: ")), "{all:?}");
    }

    /// A file that includes itself, directly or through another, by any
    /// spelling of its path, is one error at the `$INCLUDE` that closes the
    /// loop; so is nesting deeper than ten files.
    #[test]
    fn a_loop_or_nesting_too_deep_is_one_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = write(
            dir.path(),
            "b.inc",
            "b A 192.0.2.2\n$INCLUDE ./sub/../a.inc\n",
        );
        write(dir.path(), "a.inc", "a A 192.0.2.1\n$INCLUDE b.inc\n");
        write(dir.path(), "sub/.keep", "");
        let zone = write(dir.path(), "z.zone", &format!("{APEX}$INCLUDE a.inc\n"));
        let all = check_file_all(&zone, &Name::root());
        assert_eq!(all.len(), 1, "{all:?}");
        let err = all[0].to_string();
        assert!(err.starts_with(&format!("{}:2: ", b.display())), "{err}");
        assert!(err.contains("is a loop"), "{err}");
        // The zone file itself, included from within.
        let again = write(
            dir.path(),
            "self.zone",
            &format!("{APEX}$INCLUDE self.zone\n"),
        );
        let err = load_zone_file(&again, None).unwrap_err().to_string();
        assert!(
            err.contains(":5: $INCLUDE") && err.contains("is a loop"),
            "{err}"
        );

        // d1 includes d2 ... : the zone file and nine nested are allowed.
        for depth in [9, 10] {
            let sub = dir.path().join(format!("deep{depth}"));
            for i in 1..=depth {
                let next = if i < depth {
                    format!("$INCLUDE d{}.inc\n", i + 1)
                } else {
                    String::new()
                };
                write(
                    &sub,
                    &format!("d{i}.inc"),
                    &format!("d{i} A 192.0.2.{i}\n{next}"),
                );
            }
            let zone = write(&sub, "z.zone", &format!("{APEX}$INCLUDE d1.inc\n"));
            let got = load_zone_file(&zone, None);
            if depth == 9 {
                assert_eq!(owners_of(&zone, RecordType::A).len(), 9);
            } else {
                let err = got.unwrap_err().to_string();
                assert!(err.contains("goes deeper than 10 files"), "{err}");
                assert!(
                    err.starts_with(&format!("{}:2: ", sub.join("d9.inc").display())),
                    "{err}"
                );
            }
        }
    }

    /// `$INCLUDE` wants a file; more than a file and an origin, or one after
    /// another directive's argument, is refused and nothing is opened.
    #[test]
    fn a_bad_include_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.inc", "x A 192.0.2.1\n");
        for (line, want) in [
            ("$INCLUDE", "$INCLUDE needs a file name"),
            ("$INCLUDE \"\"", "$INCLUDE needs a file name"),
            ("$INCLUDE x.inc example.test. extra", "unexpected 'extra'"),
            (
                "$TTL 300 $INCLUDE x.inc",
                "$INCLUDE must begin its own line",
            ),
        ] {
            let zone = write(dir.path(), "z.zone", &format!("{APEX}{line}\n"));
            let err = load_zone_file(&zone, None).unwrap_err().to_string();
            assert!(err.contains(":5: ") && err.contains(want), "{line}: {err}");
        }
    }
}

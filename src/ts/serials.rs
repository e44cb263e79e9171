//! The serials of the SOAs a TS makes up (zones from PROJ tables), kept
//! across restarts so that a secondary never sees one go backwards.
//!
//! A synthesized serial starts at the clock (seconds since 1970) and goes
//! up by at least one at each reload that changes the data, so several
//! changing reloads within a second put it ahead of the clock; without a
//! record of it, a restart would go back to the clock, below what the
//! secondaries hold, and they would ignore every NOTIFY (RFC 1982: a serial
//! not newer than theirs). So the TS keeps, in a small state file, the
//! serial of each zone and a hash of the zone files' bytes (and of `ttl`,
//! which shapes a table's records) it was given for. At start: the same
//! bytes and `ttl` keep the recorded serial; others get one newer than it
//! ([`next_serial`]). A master file's serial is recorded too: a zone turned
//! from a master file (a date serial, 2026112501) into a PROJ table carries
//! on from it rather than start at the clock (~1.8e9), which RFC 1982 would
//! count older than what the secondaries hold.
//!
//! Where: `$STATE_DIRECTORY/dnslb-ts-NAME.serials` when that variable is
//! set (systemd sets it for `StateDirectory=`: the deploy units run with
//! `ProtectSystem=strict`, which makes `/etc/dnslb`, the zone files' usual
//! home, read-only), else `dnslb-ts-NAME.serials` beside the first zone file
//! (whoever rewrites the zone files can write there) for a TS of a config
//! file; a TS started by hand with `--listen` only in `$STATE_DIRECTORY`. It is written to a
//! temporary file in the same folder and renamed over the old one, so a
//! crash leaves either the old state or the new. When it cannot be written
//! the TS says so and serves on; serials then start from the clock, as
//! before.
//!
//! The hash is the standard library's SipHash with fixed keys: stable for
//! one build of dnslb. After an upgrade it may differ, which only makes the
//! next start count the data as changed (a serial one higher: safe).
use std::ffi::OsString;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

/// RFC 1982: `a` is newer than `b` in serial-number arithmetic.
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The serial after `prev` for data that changed at `clock`: the clock when
/// it is newer than `prev`, else `prev + 1` (RFC 1982 arithmetic, so it
/// wraps past 2^32 - 1 and is always newer than `prev`).
pub fn next_serial(prev: u32, clock: u32) -> u32 {
    if serial_newer(clock, prev) {
        clock
    } else {
        prev.wrapping_add(1)
    }
}

/// The serial a zone starts with: the one recorded when the files are the
/// same bytes, one newer than it when they are not, the clock when none was
/// recorded.
pub fn start_serial(recorded: Option<u32>, same_files: bool, clock: u32) -> u32 {
    match recorded {
        Some(s) if same_files => s,
        Some(s) => next_serial(s, clock),
        None => clock,
    }
}

/// What the state file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// [`files_hash`] of the zone files the serials were given for.
    pub files: u64,
    /// Each zone's origin (lower case, as text) and serial: a made-up one,
    /// or a master file's (so that a zone turned from a master file into a
    /// PROJ table carries on from the file's serial, never below it).
    pub serials: Vec<(String, u32)>,
}

impl Saved {
    /// The serials recorded, by origin (lower case, as text): a TS of
    /// 100,000 zones looks each one up once, not by a scan of the list.
    pub fn by_origin(&self) -> std::collections::HashMap<String, u32> {
        self.serials.iter().cloned().collect()
    }

    /// The serial recorded for `origin`.
    pub fn serial_of(&self, origin: &str) -> Option<u32> {
        let origin = origin.to_ascii_lowercase();
        self.serials
            .iter()
            .find(|(o, _)| *o == origin)
            .map(|(_, s)| *s)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = head(self.files);
        for (origin, serial) in &self.serials {
            // Into the one String (no String a zone: 100,000 of them).
            push_zone(&mut out, |o| o.push_str(origin), *serial);
        }
        out
    }

    /// Reads [`Saved::render`]'s text; `None` if any line is not as written.
    pub fn parse(text: &str) -> Option<Saved> {
        let mut saved = Saved::default();
        let mut files = None;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                None => {}
                Some(w) if w.starts_with('#') => {}
                Some("files") => files = Some(u64::from_str_radix(words.next()?, 16).ok()?),
                Some("zone") => {
                    let origin = words.next()?.to_owned();
                    let serial = words.next()?.parse().ok()?;
                    saved.serials.push((origin, serial));
                }
                Some(_) => return None,
            }
        }
        saved.files = files?;
        Some(saved)
    }
}

/// The state file's first lines: what it is, and [`files_hash`] `files`;
/// [`push_zone`] appends each zone's line.
pub fn head(files: u64) -> String {
    format!("# dnslb ts: serials of the SOAs it makes up; do not edit\nfiles {files:016x}\n")
}

/// Appends a zone's line to a state file's text: its origin as `origin`
/// writes it (lower case, as text: see [`push_origin`]) and its serial.
pub fn push_zone(out: &mut String, origin: impl FnOnce(&mut String), serial: u32) {
    out.push_str("zone ");
    origin(out);
    // The number by `itoa`, not the formatting machinery: 100,000 lines.
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(serial));
    out.push('\n');
}

/// Appends the text of the lower-cased wire name `key` (a zone's origin as
/// its index keys it) as hickory's `Name::to_ascii` writes it, lower-cased
/// (the state file's spelling), when each of its bytes writes as itself
/// there: letters, digits, `_`, and `-` or `*` where hickory keeps them
/// (`-` past a label's first byte, `*` as its first). `false`, and `out`
/// as it was, for any other name (the caller writes hickory's text): a
/// state file of 100,000 zones spells each origin with no `String` of its
/// own.
pub fn push_origin(out: &mut String, key: &[u8]) -> bool {
    let start = out.len();
    if key == [0] {
        out.push('.');
        return true;
    }
    let mut at = 0;
    while let Some(&len) = key.get(at) {
        if len == 0 {
            return at + 1 == key.len();
        }
        let Some(label) = key.get(at + 1..at + 1 + usize::from(len)) else {
            out.truncate(start);
            return false;
        };
        for (i, &c) in label.iter().enumerate() {
            let plain = c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == b'_'
                || (c == b'-' && i > 0)
                || (c == b'*' && i == 0);
            if !plain {
                out.truncate(start);
                return false;
            }
            out.push(char::from(c));
        }
        out.push('.');
        at += 1 + usize::from(len);
    }
    // No root byte at the end: not a name.
    out.truncate(start);
    false
}

/// One hash of the zone files' contents (each one's length and hash, as read) and of
/// `ttl`, the setting that shapes what the TS serves from the same bytes (a
/// PROJ table's records and made-up SOA): a restart with another `ttl`
/// serves other data, so it must not keep the serial.
pub fn files_hash(fingerprint: &[(u64, u64)], ttl: u32) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (len, hash) in fingerprint {
        h.write_u64(*len);
        h.write_u64(*hash);
    }
    h.write_u32(ttl);
    h.finish()
}

/// Where TS `name` keeps its serials (see the module's text): `state_dir`
/// is `$STATE_DIRECTORY` (a `:`-separated list, the first taken). A TS
/// started by hand without a config (`dnslb ts --listen ADDR --zone ...`,
/// named by its address) keeps them only in `$STATE_DIRECTORY`: beside its
/// zone files, every new port would leave a file of its own.
pub fn state_path(name: &str, zones: &[PathBuf], state_dir: Option<OsString>) -> Option<PathBuf> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let file = format!("dnslb-ts-{safe}.serials");
    let from_env = state_dir
        .and_then(|d| {
            d.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .filter(|d| !d.as_os_str().is_empty());
    let dir = match from_env {
        Some(d) => d,
        None if name.parse::<std::net::SocketAddr>().is_ok() => return None,
        None => {
            let first = zones.first()?;
            match first.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        }
    };
    Some(dir.join(file))
}

/// The state in `path`, if there is one that reads, with the file's text
/// (a state rendered the same is not written again).
pub fn read_text(path: &Path) -> Option<(Saved, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    Some((Saved::parse(&text)?, text))
}

/// Writes the state file text `text` (as [`Saved::render`] makes it) to
/// `path` atomically: a temporary file in the same folder, synced, then
/// renamed over `path`.
///
/// # Errors
/// The OS error of any step (the temporary file is then removed).
pub fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    replace_file(path, text.as_bytes())
}

/// Puts `bytes` in `path` atomically: a temporary file in the same folder,
/// synced, then renamed over `path` (a reader sees the old file or the new
/// one, never half of one). The TS's state files (these serials, a
/// secondary zone's last good copy) are written this way.
///
/// # Errors
/// The OS error of any step (the temporary file is then removed).
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The origins written from their keys read as hickory's text of them
    /// does, lower-cased; any other name is left to hickory's text.
    #[test]
    fn an_origin_is_spelled_from_its_key_as_hickory_spells_it() {
        use hickory_proto::rr::Name;
        // By their labels (hickory's text parser refuses some of these).
        let names: [&[&[u8]]; 13] = [
            &[],
            &[&b"z0"[..], &b"test"[..]],
            &[&b"Example"[..], &b"COM"[..]],
            &[&b"_sip"[..], &b"_tcp"[..], &b"example"[..]],
            &[&b"*"[..], &b"wild"[..], &b"example"[..]],
            &[&b"a-b"[..], &b"c-d"[..], &b"example"[..]],
            &[&b"xn--bcher-kva"[..], &b"example"[..]],
            &[&b"-lead"[..], &b"example"[..]],
            &[&b"a*b"[..], &b"example"[..]],
            &[&b"sp ace"[..], &b"example"[..]],
            &[&b"dot.ted"[..], &b"example"[..]],
            &[&b"caf\xe9"[..], &b"example"[..]],
            &[&b"semi;colon"[..], &b"example"[..]],
        ];
        // Names of letters, digits, `_`, inner `-` and a leading `*`: spelled
        // from the key; the others left to hickory.
        let plain = 7;
        for (n, labels) in names.iter().enumerate() {
            let mut name = if labels.is_empty() {
                Name::root()
            } else {
                Name::from_labels(labels.iter().copied()).unwrap()
            };
            name.set_fqdn(true);
            let key = crate::ts::zone::key_of(&name).unwrap();
            let mut want = name.to_ascii();
            want.make_ascii_lowercase();
            let mut out = String::from("before ");
            let spelled = push_origin(&mut out, &key);
            assert_eq!(spelled, n < plain, "{want}");
            if spelled {
                assert_eq!(out, format!("before {want}"), "{want}");
            } else {
                assert_eq!(out, "before ", "{want}: left as it was");
            }
        }
        for key in [&b"\x03abc"[..], b"\x05ab\x00", b""] {
            let mut out = String::new();
            assert!(!push_origin(&mut out, key) && out.is_empty(), "{key:?}");
        }
    }

    #[test]
    fn the_next_serial_is_always_newer_and_follows_the_clock_when_it_can() {
        assert_eq!(next_serial(100, 200), 200, "clock ahead: the clock");
        assert_eq!(next_serial(200, 200), 201, "same second: one up");
        assert_eq!(next_serial(205, 200), 206, "ahead of the clock: one up");
        assert_eq!(
            next_serial(u32::MAX, 5),
            5,
            "the clock past the wrap is newer"
        );
        assert_eq!(next_serial(u32::MAX, u32::MAX - 3), 0, "wraps to 0");
        for (prev, clock) in [
            (0, 0),
            (7, 3),
            (u32::MAX, 0),
            (1 << 31, 1),
            (9, 9 + (1 << 31)),
        ] {
            assert!(
                serial_newer(next_serial(prev, clock), prev),
                "{prev} {clock}"
            );
        }
    }

    #[test]
    fn a_restart_keeps_the_serial_for_the_same_files_and_raises_it_for_others() {
        assert_eq!(start_serial(Some(1_000_005), true, 1_000_000), 1_000_005);
        assert_eq!(start_serial(Some(1_000_005), false, 1_000_000), 1_000_006);
        assert_eq!(start_serial(Some(5), false, 1_000_000), 1_000_000);
        assert_eq!(start_serial(None, false, 1_000_000), 1_000_000);
    }

    /// A TS serving `zones` (in `dir`, where its state file goes)
    /// with PROJ tables under `origin` at `ttl`.
    fn settings(dir: &Path, zones: &[&str], origin: &str, ttl: u32) -> crate::ts::TsSettings {
        // A name of its own (the state file may be in a shared
        // $STATE_DIRECTORY), the same for every start in one folder.
        crate::ts::TsSettings::serving(
            format!("serials-test-{}", dir.display()),
            zones.iter().map(|z| dir.join(z)).collect(),
            origin.parse().unwrap(),
            ttl,
        )
    }

    /// The serial a TS of `settings` starts `origin` at.
    fn started(settings: crate::ts::TsSettings, origin: &str) -> u32 {
        let ts = crate::ts::TableServer::load(settings).unwrap();
        let catalog = ts.catalog();
        let zone = catalog
            .zones()
            .iter()
            .find(|z| z.origin().to_ascii() == origin)
            .unwrap();
        zone.serial()
    }

    /// `ttl` shapes every record and the SOA of a
    /// PROJ table; a restart with another `ttl` and the same files serves
    /// other data, so its serial goes up (the same `ttl` keeps it).
    #[test]
    fn a_restart_with_another_ttl_raises_the_serial() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.txt"), "www.p.test 192.0.2.1 A\n").unwrap();
        let at = |ttl| settings(dir.path(), &["p.txt"], "p.test.", ttl);
        let first = started(at(300), "p.test.");
        assert_eq!(started(at(300), "p.test."), first, "same files, same ttl");
        let second = started(at(60), "p.test.");
        assert!(serial_newer(second, first), "{first} -> {second}");
        assert_eq!(started(at(60), "p.test."), second);
    }

    /// A zone served from a master file with a
    /// date serial, then (a restart) from a PROJ table, carries on from the
    /// file's serial; starting at the clock would be older in RFC 1982
    /// terms than what the secondaries hold.
    #[test]
    fn a_master_file_turned_into_a_table_carries_on_from_its_serial() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.zone"),
            "$ORIGIN c.test.\n$TTL 300\n@ SOA ns1 hostmaster 2026112501 3600 600 604800 60\n\
             @ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.10\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.txt"), "www.c.test 192.0.2.99 A\n").unwrap();
        let file = started(settings(dir.path(), &["c.zone"], ".", 300), "c.test.");
        assert_eq!(file, 2_026_112_501);
        let table = started(settings(dir.path(), &["c.txt"], "c.test.", 300), "c.test.");
        assert!(
            serial_newer(table, file),
            "the table's serial {table} must be newer than the file's {file}"
        );
    }

    #[test]
    fn the_state_file_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.serials");
        let saved = Saved {
            files: 0xdead_beef_0000_0001,
            serials: vec![("example.".into(), 7), (".".into(), u32::MAX)],
        };
        write_text(&path, &saved.render()).unwrap();
        assert_eq!(read_text(&path).map(|(s, _)| s), Some(saved.clone()));
        assert_eq!(saved.serial_of("EXAMPLE."), Some(7));
        assert_eq!(saved.serial_of("other."), None);
        assert_eq!(Saved::parse("files zz\n"), None);
        assert_eq!(Saved::parse("zone a. 1\n"), None, "no files line");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    #[test]
    fn the_state_goes_to_the_state_directory_or_beside_the_first_zone_file() {
        let zones = vec![PathBuf::from("/etc/dnslb/a.txt"), PathBuf::from("/x/b.txt")];
        assert_eq!(
            state_path("ts 1", &zones, Some("/var/lib/dnslb:/other".into())),
            Some(PathBuf::from("/var/lib/dnslb/dnslb-ts-ts_1.serials"))
        );
        assert_eq!(
            state_path("ts1", &zones, None),
            Some(PathBuf::from("/etc/dnslb/dnslb-ts-ts1.serials"))
        );
        assert_eq!(
            state_path("ts1", &[PathBuf::from("a.txt")], Some("".into())),
            Some(PathBuf::from("./dnslb-ts-ts1.serials"))
        );
        assert_eq!(state_path("ts1", &[], None), None);
        assert_eq!(state_path("127.0.0.1:5300", &zones, None), None, "by hand");
        assert_eq!(
            state_path("127.0.0.1:5300", &zones, Some("/s".into())),
            Some(PathBuf::from("/s/dnslb-ts-127.0.0.1_5300.serials"))
        );
    }
}

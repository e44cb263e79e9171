//! A secondary zone's last good copy on disk (`state_dir`): written after
//! every transfer applied (a temporary file in the same folder, synced,
//! renamed over the old one: a crash leaves the old copy or the new), read
//! at start so the zone is served before the primary answers; beside it
//! the time of the last contact with the primary (`.contact`, written at
//! each refresh that reached it), from which its SOA EXPIRE counts at
//! start, as Knot's timer database and NSD's `xfrd.state` do. The format is
//! ours: a header line, then each record (the SOA first) in wire form,
//! names uncompressed, after its 16-bit length.
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

use super::records::{Rec, ZoneCopy, soa_serial};

const MAGIC: &[u8] = b"dnslb secondary zone 1\n";

/// The longest file name [`path_of`] spells out whole (before `.xfr`):
/// a file system's names stop at 255 bytes, and the contact time's file
/// (`.contact`, 8 bytes) is written under a temporary name 11 bytes longer
/// (`.tmp` and a process ID of up to 7 digits). Every name spelled whole
/// before the digest came is spelled the same.
const NAME_MAX: usize = 236;

/// Of a name longer than [`NAME_MAX`], the part kept before its digest.
const NAME_KEPT: usize = 150;

/// The file of `zone`'s copy in `dir`: its name in lower case, `.xfr`
/// (`root.xfr` for the root); characters other than letters, digits, `-`,
/// `_` and `.` written as `%XX`. A name spelled longer than [`NAME_MAX`]
/// bytes (a zone of up to 255 bytes, `%XX` three bytes each) is cut to
/// its first [`NAME_KEPT`], then `~` and the first 16 bytes of the whole
/// spelling's SHA-256 in hex: the same file at every start, and another
/// for every other zone.
pub fn path_of(dir: &Path, zone: &Name) -> PathBuf {
    let text = zone.to_ascii().to_ascii_lowercase();
    let text = text.trim_end_matches('.');
    let mut file = String::with_capacity(text.len() + 4);
    if text.is_empty() {
        file.push_str("root");
    }
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            file.push(c);
        } else {
            let mut b = [0; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                file.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    if file.len() > NAME_MAX {
        let digest = ring::digest::digest(&ring::digest::SHA256, file.as_bytes());
        // Only ASCII was pushed: any byte is a character's boundary.
        file.truncate(NAME_KEPT);
        file.push('~');
        for byte in &digest.as_ref()[..16] {
            file.push_str(&format!("{byte:02x}"));
        }
    }
    file.push_str(".xfr");
    dir.join(file)
}

/// The bytes of `copy` on disk.
pub fn render(copy: &ZoneCopy) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut rec = Vec::with_capacity(256);
    for r in std::iter::once(&copy.soa).chain(copy.records()) {
        rec.clear();
        let mut enc = BinEncoder::new(&mut rec);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        if r.emit(&mut enc).is_err() {
            continue;
        }
        let Ok(len) = u16::try_from(rec.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&rec);
    }
    out
}

/// The copy in `bytes`, `None` unless it reads whole (the SOA first).
pub fn parse(bytes: &[u8]) -> Option<ZoneCopy> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let body = rest.get(2..2 + len)?;
        let mut dec = BinDecoder::new(body);
        let rec: Rec = Record::read(&mut dec).ok()?;
        if !dec.is_empty() {
            return None;
        }
        records.push(rec);
        rest = &rest[2 + len..];
    }
    let mut records = records.into_iter();
    let soa = records.next().filter(|r| soa_serial(r).is_some())?;
    Some(ZoneCopy::new(soa, records))
}

/// Why a copy in `state_dir` is not used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Io(std::io::Error),
    /// The file cannot be opened now: the process (or the system) is out
    /// of file descriptors. Nothing is wrong with the copy.
    #[error("cannot open it now: out of file descriptors ({0})")]
    OutOfFds(std::io::Error),
    /// The file does not read whole (cut short, damaged, not ours).
    #[error("it is cut short or damaged (not a whole copy of the zone)")]
    Damaged,
    /// The file holds another zone.
    #[error("it holds the zone {0}")]
    OtherZone(Name),
}

impl From<std::io::Error> for StateError {
    fn from(e: std::io::Error) -> Self {
        if is_out_of_fds(&e) {
            StateError::OutOfFds(e)
        } else {
            StateError::Io(e)
        }
    }
}

/// True for EMFILE and ENFILE: the process or the system has no file
/// descriptor left.
pub fn is_out_of_fds(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error()
        .is_some_and(|n| n == Errno::EMFILE as i32 || n == Errno::ENFILE as i32)
}

/// The file of the last contact with `zone`'s primary, beside its copy.
pub fn contact_path_of(dir: &Path, zone: &Name) -> PathBuf {
    path_of(dir, zone).with_extension("contact")
}

/// Reads `zone`'s copy from `dir` (`None`: there is none), with its age
/// in seconds: since the last contact with the primary written beside it
/// ([`write_contact`]), else since the file's time. `now` is the clock,
/// seconds since the epoch.
///
/// # Errors
/// A file that cannot be read or does not hold a whole copy of `zone`.
pub fn read(dir: &Path, zone: &Name, now: u64) -> Result<Option<(ZoneCopy, u64)>, StateError> {
    let path = path_of(dir, zone);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let copy = parse(&bytes).ok_or(StateError::Damaged)?;
    if !copy.origin().eq_ignore_root(zone) {
        return Err(StateError::OtherZone(copy.origin().clone()));
    }
    let contact = std::fs::read_to_string(contact_path_of(dir, zone))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let age = match contact {
        Some(at) => now.saturating_sub(at),
        None => std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs()),
    };
    Ok(Some((copy, age)))
}

/// Writes the time of the last contact with `zone`'s primary (`at`,
/// seconds since the epoch) beside its copy in `dir`, atomically.
///
/// # Errors
/// The OS error of any step.
pub fn write_contact(dir: &Path, zone: &Name, at: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::ts::serials::replace_file(&contact_path_of(dir, zone), format!("{at}\n").as_bytes())
}

/// Deletes `zone`'s copy and its contact file from `dir` (none there: fine).
///
/// # Errors
/// The OS error of a file that is there and cannot be deleted.
pub fn delete(dir: &Path, zone: &Name) -> std::io::Result<()> {
    for path in [path_of(dir, zone), contact_path_of(dir, zone)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `copy` to its file in `dir` (made if missing), atomically.
///
/// # Errors
/// The OS error of any step (the temporary file is then removed).
pub fn write(dir: &Path, copy: &ZoneCopy) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::ts::serials::replace_file(&path_of(dir, copy.origin()), &render(copy))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    use crate::dns::fixtures::{name, soa};

    fn copy(serial: u32) -> ZoneCopy {
        let soa = soa("z.test.", serial);
        let a = Record::from_rdata(name("www.z.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        ZoneCopy::new(soa, [a])
    }

    /// A zone whose name is spelled longer than a file name may be (here
    /// 254 bytes on the wire) is kept under a name cut short and a digest
    /// of the whole: written, read back, its contact noted; another such
    /// zone that differs only past the cut gets a file of its own; a short
    /// name is spelled whole as before.
    #[test]
    fn a_zone_named_longer_than_a_file_name_is_kept_under_a_digest() {
        use hickory_proto::rr::rdata::SOA;
        let dir = tempfile::tempdir().unwrap();
        let long = |last: &str| format!("{}{last}.", "a.".repeat(124));
        let copy_of = |zone: &str| {
            let data = SOA::new(name("ns.test."), name("h.test."), 3, 60, 10, 600, 30);
            let soa = Record::from_rdata(name(zone), 300, RData::SOA(data));
            ZoneCopy::new(soa, [])
        };
        let now = crate::clock::unix_now();
        let (one, two) = (long("test"), long("tesx"));
        for zone in [&one, &two] {
            let c = copy_of(zone);
            write(dir.path(), &c).unwrap();
            write_contact(dir.path(), &name(zone), now - 5).unwrap();
            let (back, age) = read(dir.path(), &name(zone), now).unwrap().unwrap();
            assert_eq!((back, age), (c, 5));
        }
        let file = |zone: &str| path_of(dir.path(), &name(zone));
        assert_ne!(file(&one), file(&two));
        let spelled = file(&one).file_name().unwrap().len();
        assert!(spelled <= NAME_KEPT + 1 + 32 + 4, "{spelled} bytes");
        assert_eq!(
            file(&one),
            file(&one.to_uppercase()),
            "the same at every start"
        );
        assert_eq!(file("z.test."), dir.path().join("z.test.xfr"));
    }

    #[test]
    fn a_copy_survives_the_disk_and_a_damaged_one_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let c = copy(7);
        write(dir.path(), &c).unwrap();
        let now = crate::clock::unix_now();
        let (back, age) = read(dir.path(), &name("Z.test."), now).unwrap().unwrap();
        assert_eq!((back, age < 60), (c.clone(), true));
        write(dir.path(), &copy(8)).unwrap();
        let z = name("z.test.");
        assert_eq!(read(dir.path(), &z, now).unwrap().unwrap().0.serial(), 8);
        // The last contact, not the file's time, says how old the copy is.
        write_contact(dir.path(), &z, now - 500).unwrap();
        assert_eq!(read(dir.path(), &z, now).unwrap().unwrap().1, 500);
        let bytes = render(&c);
        assert!(parse(&bytes[..bytes.len() - 1]).is_none(), "cut short");
        assert!(parse(&bytes[1..]).is_none(), "no header");
        assert!(matches!(
            read(dir.path(), &name("other.test."), now),
            Ok(None)
        ));
        std::fs::write(path_of(dir.path(), &z), &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            read(dir.path(), &z, now),
            Err(StateError::Damaged)
        ));
        delete(dir.path(), &z).unwrap();
        assert!(matches!(read(dir.path(), &z, now), Ok(None)));
        assert!(!contact_path_of(dir.path(), &z).exists());
        assert_eq!(
            path_of(dir.path(), &Name::root()),
            dir.path().join("root.xfr")
        );
    }

    /// EMFILE and ENFILE are no fault of the copy: told apart from an I/O
    /// error that is (a copy is never declared unusable for want of file
    /// descriptors).
    #[test]
    fn an_fd_shortage_is_not_a_damaged_copy() {
        use nix::errno::Errno;
        for errno in [Errno::EMFILE, Errno::ENFILE] {
            let e = std::io::Error::from_raw_os_error(errno as i32);
            assert!(matches!(StateError::from(e), StateError::OutOfFds(_)));
        }
        let e = std::io::Error::from_raw_os_error(Errno::EIO as i32);
        assert!(matches!(StateError::from(e), StateError::Io(_)));
    }
}

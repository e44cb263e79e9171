//! A secondary zone's last good copy on disk (`state_dir`): written after
//! every transfer applied (a temporary file in the same folder, synced,
//! renamed over the old one: a crash leaves the old copy or the new), read
//! at start so the zone is served before the primary answers. The format is
//! ours: a header line, then each record (the SOA first) in wire form,
//! names uncompressed, after its 16-bit length.
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

use super::records::{Rec, ZoneCopy, soa_serial};

const MAGIC: &[u8] = b"dnslb secondary zone 1\n";

/// The file of `zone`'s copy in `dir`: its name in lower case, `.xfr`
/// (`root.xfr` for the root); characters other than letters, digits, `-`,
/// `_` and `.` written as `%XX`.
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

/// Reads `zone`'s copy from `dir`, with its age in seconds (from the
/// file's time).
pub fn read(dir: &Path, zone: &Name) -> Option<(ZoneCopy, u64)> {
    let path = path_of(dir, zone);
    let bytes = std::fs::read(&path).ok()?;
    let copy = parse(&bytes).filter(|c| c.origin().eq_ignore_root(zone))?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(0, |d| d.as_secs());
    Some((copy, age))
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
    use hickory_proto::rr::rdata::{A, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn copy(serial: u32) -> ZoneCopy {
        let soa = SOA::new(
            name("ns.z.test."),
            name("h.z.test."),
            serial,
            60,
            10,
            600,
            30,
        );
        let soa = Record::from_rdata(name("z.test."), 300, RData::SOA(soa));
        let a = Record::from_rdata(name("www.z.test."), 60, RData::A(A::new(192, 0, 2, 1)));
        ZoneCopy::new(soa, [a])
    }

    #[test]
    fn a_copy_survives_the_disk_and_a_damaged_one_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let c = copy(7);
        write(dir.path(), &c).unwrap();
        let (back, age) = read(dir.path(), &name("Z.test.")).unwrap();
        assert_eq!((back, age < 60), (c.clone(), true));
        write(dir.path(), &copy(8)).unwrap();
        assert_eq!(read(dir.path(), &name("z.test.")).unwrap().0.serial(), 8);
        let bytes = render(&c);
        assert!(parse(&bytes[..bytes.len() - 1]).is_none(), "cut short");
        assert!(parse(&bytes[1..]).is_none(), "no header");
        assert!(read(dir.path(), &name("other.test.")).is_none());
        assert_eq!(
            path_of(dir.path(), &Name::root()),
            dir.path().join("root.xfr")
        );
    }
}

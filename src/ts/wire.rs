//! Domain names in wire format, as the TS's answer path reads them: a
//! lower-cased copy of an uncompressed name with its label offsets, kept on
//! the stack, so a lookup allocates nothing; and their canonical order
//! (RFC 4034 §6.1).
use std::cmp::Ordering;

use crate::dns::HEADER_LEN;

/// Longest name in wire format (RFC 1035 §2.3.4).
pub const NAME_MAX: usize = 255;

/// A lower-cased wire name and where each of its labels starts.
#[derive(Clone)]
pub struct NameKey {
    buf: [u8; NAME_MAX],
    len: usize,
    /// Offset of each label (the root's zero byte excluded).
    starts: [u8; NAME_MAX / 2 + 1],
    labels: usize,
}

impl NameKey {
    /// Reads the uncompressed name at the start of `wire` (up to and
    /// including its root label), lower-cased. `None` for a pointer, a
    /// reserved label type, a name over 255 bytes or a runt.
    pub fn read(wire: &[u8]) -> Option<NameKey> {
        let mut k = NameKey {
            buf: [0; NAME_MAX],
            len: 0,
            starts: [0; NAME_MAX / 2 + 1],
            labels: 0,
        };
        let mut pos = 0;
        loop {
            let len = usize::from(*wire.get(pos)?);
            if len == 0 {
                break;
            }
            if len > 63 || pos + 1 + len + 1 > NAME_MAX {
                return None;
            }
            let label = wire.get(pos..pos + 1 + len)?;
            *k.starts.get_mut(k.labels)? = u8::try_from(pos).ok()?;
            k.labels += 1;
            for (d, s) in k.buf.get_mut(pos..pos + 1 + len)?.iter_mut().zip(label) {
                *d = s.to_ascii_lowercase();
            }
            pos += 1 + len;
        }
        // The root label: buf is zeroed already.
        k.len = pos + 1;
        Some(k)
    }

    /// The name, lower-cased, root label included.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Its length in wire format.
    pub fn wire_len(&self) -> usize {
        self.len
    }

    /// Number of labels, the root not counted.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// The name without its first `skip` labels (the root when `skip` is
    /// the label count), and its offset in the name.
    pub fn suffix(&self, skip: usize) -> (usize, &[u8]) {
        let at = self
            .starts
            .get(skip)
            .filter(|_| skip < self.labels)
            .map_or(self.len - 1, |s| usize::from(*s));
        (at, &self.buf[at..self.len])
    }

    /// True when this name is `origin` or below it (both lower-cased).
    pub fn is_under(&self, origin: &[u8]) -> bool {
        self.offset_of(origin).is_some()
    }

    /// Where `origin` starts in this name, when this name is `origin` or
    /// below it.
    pub fn offset_of(&self, origin: &[u8]) -> Option<usize> {
        let at = self.len.checked_sub(origin.len())?;
        let boundary = at + 1 == self.len
            || self.starts[..self.labels]
                .iter()
                .any(|s| usize::from(*s) == at);
        (boundary && &self.buf[at..self.len] == origin).then_some(at)
    }

    /// The wildcard at `name` (a lower-cased wire name): `*.name`.
    pub fn wildcard_of(name: &[u8]) -> Option<NameKey> {
        let mut wire = [0u8; NAME_MAX];
        wire[0] = 1;
        wire[1] = b'*';
        wire.get_mut(2..2 + name.len())?.copy_from_slice(name);
        NameKey::read(&wire)
    }
}

/// The offsets of each label of the uncompressed wire name `name` (the root
/// label not counted), and how many there are. A malformed name ends early.
fn label_starts(name: &[u8], starts: &mut [u8; NAME_MAX / 2 + 1]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 || len > 63 || n == starts.len() {
            break;
        }
        starts[n] = u8::try_from(pos).unwrap_or(u8::MAX);
        n += 1;
        pos += 1 + usize::from(len);
    }
    n
}

/// The label at `start` in `name`, without its length byte.
fn label(name: &[u8], start: u8) -> &[u8] {
    let at = usize::from(start);
    let len = usize::from(name.get(at).copied().unwrap_or(0));
    name.get(at + 1..at + 1 + len).unwrap_or_default()
}

/// Compares two uncompressed wire names in canonical order (RFC 4034 §6.1):
/// label by label from the root, each label as lower-cased octets, a name
/// sorting before the names below it.
pub fn cmp_names(a: &[u8], b: &[u8]) -> Ordering {
    let (mut sa, mut sb) = ([0u8; NAME_MAX / 2 + 1], [0u8; NAME_MAX / 2 + 1]);
    let (na, nb) = (label_starts(a, &mut sa), label_starts(b, &mut sb));
    for i in 1..=na.min(nb) {
        let (la, lb) = (label(a, sa[na - i]), label(b, sb[nb - i]));
        let ord = la
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(lb.iter().map(u8::to_ascii_lowercase));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// The uncompressed name starting at `at` in `msg` (as this crate writes
/// names: never compressed), root label included; empty when unreadable.
pub fn name_at(msg: &[u8], at: usize) -> &[u8] {
    let mut pos = at;
    loop {
        match msg.get(pos) {
            Some(0) => return msg.get(at..=pos).unwrap_or_default(),
            Some(&len) if len <= 63 && pos + 1 + usize::from(len) - at < NAME_MAX => {
                pos += 1 + usize::from(len);
            }
            _ => return &[],
        }
    }
}

/// Appends a reference to the name written at `at` in `msg`: a compression
/// pointer (RFC 1035 §4.1.4) when the offset fits one, else the name itself.
pub fn push_name_ref(msg: &mut Vec<u8>, at: usize) {
    match u16::try_from(at) {
        Ok(off) if off < 0x4000 && at >= HEADER_LEN => {
            msg.extend_from_slice(&(0xC000 | off).to_be_bytes());
        }
        _ => {
            let mut name = [0u8; NAME_MAX];
            let src = name_at(msg, at);
            let n = src.len().max(1);
            name[..src.len()].copy_from_slice(src);
            msg.extend_from_slice(&name[..n]);
        }
    }
}

/// The length of the uncompressed wire name at the start of `wire`
/// (labels of at most 63 bytes, ending in the root's zero byte).
pub(crate) fn uncompressed_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::wire_name as wire;

    #[test]
    fn reads_lowercases_and_splits() {
        let k = NameKey::read(&wire("WWW.Example.COM.")).unwrap();
        assert_eq!(k.bytes(), wire("www.example.com.").as_slice());
        assert_eq!(k.labels(), 3);
        assert_eq!(k.suffix(1).1, wire("example.com.").as_slice());
        assert_eq!(k.suffix(1).0, 4);
        assert_eq!(k.suffix(3).1, [0]);
        assert!(k.is_under(&wire("example.com.")));
        assert!(k.is_under(&[0]));
        assert!(!k.is_under(&wire("ample.com.")));
        assert_eq!(k.offset_of(&wire("com.")), Some(12));
        let root = NameKey::read(&[0]).unwrap();
        assert_eq!(root.labels(), 0);
        assert_eq!(root.bytes(), [0]);
    }

    #[test]
    fn refuses_pointers_and_long_names() {
        assert!(NameKey::read(&[0xC0, 12]).is_none());
        assert!(NameKey::read(&[3, b'a', b'b']).is_none());
        let long = wire(&vec!["abcdefghi"; 26].join("."));
        assert!(long.len() > NAME_MAX && NameKey::read(&long).is_none());
        let max = wire(
            &[vec!["a".repeat(63); 3], vec!["a".repeat(61)]]
                .concat()
                .join("."),
        );
        assert_eq!(max.len(), NAME_MAX);
        assert!(NameKey::read(&max).is_some());
    }

    #[test]
    fn wildcards_and_name_refs() {
        let k = NameKey::read(&wire("w.test.")).unwrap();
        let w = NameKey::wildcard_of(k.bytes()).unwrap();
        assert_eq!(w.bytes(), wire("*.w.test.").as_slice());
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(&wire("a.b."));
        push_name_ref(&mut msg, HEADER_LEN + 2);
        assert_eq!(&msg[msg.len() - 2..], [0xC0, 14]);
        assert_eq!(name_at(&msg, HEADER_LEN), wire("a.b.").as_slice());
    }

    #[test]
    fn names_sort_as_rfc_4034_lists_them() {
        // RFC 4034 §6.1's example, in its order; \001 and \200 as bytes.
        let mut names: Vec<Vec<u8>> = ["example", "a.example", "yljkjljk.a.example"]
            .iter()
            .map(|s| wire(s))
            .collect();
        names.push(vec![
            1, b'Z', 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            4, b'z', b'A', b'B', b'C', 1, b'a', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(wire("z.example"));
        names.push(vec![
            1, 1, 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            1, b'*', 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        names.push(vec![
            1, 0x80, 1, b'z', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0,
        ]);
        for pair in names.windows(2) {
            assert_eq!(cmp_names(&pair[0], &pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(cmp_names(&pair[1], &pair[0]), Ordering::Greater, "{pair:?}");
        }
        assert_eq!(
            cmp_names(&wire("A.Example"), &wire("a.example")),
            Ordering::Equal
        );
    }
}

//! The last load's [`FileMemo`] carried over to another list of zone files
//! (a reload whose config added, removed or reordered `zones`): each file
//! still listed keeps what was seen of it, a file new to the list has
//! nothing seen (it is read), so a reload that adds one zone to 100,000
//! compiles one.
use std::collections::HashMap;
use std::path::PathBuf;

use super::settle::FileMemo;

/// `memo`, of the files `before`, for the files `after`: by path (a file
/// listed twice takes its first entry); nothing seen of a file `before` did
/// not list.
pub(crate) fn remapped(memo: &FileMemo, before: &[PathBuf], after: &[PathBuf]) -> FileMemo {
    let mut at: HashMap<&PathBuf, usize> = HashMap::with_capacity(before.len());
    for (i, f) in before.iter().enumerate() {
        at.entry(f).or_insert(i);
    }
    let mut seen = Vec::with_capacity(after.len());
    let mut origins = Vec::with_capacity(after.len());
    for f in after {
        let i = at.get(f).copied();
        seen.push(i.and_then(|i| memo.seen.get(i).cloned().flatten()));
        origins.push(i.and_then(|i| memo.origins.get(i).cloned().flatten()));
    }
    FileMemo { seen, origins }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_kept_keeps_its_memo_and_a_new_file_has_none() {
        let memo = FileMemo {
            seen: vec![None, None, None],
            origins: vec![Some(b"a".to_vec().into()), None, Some(b"c".to_vec().into())],
        };
        let before: Vec<PathBuf> = ["a", "t", "c"].iter().map(PathBuf::from).collect();
        let after: Vec<PathBuf> = ["c", "n", "a"].iter().map(PathBuf::from).collect();
        let m = remapped(&memo, &before, &after);
        let origins: Vec<Option<&[u8]>> = m.origins.iter().map(|o| o.as_deref()).collect();
        assert_eq!(origins, [Some(&b"c"[..]), None, Some(&b"a"[..])]);
        assert_eq!(m.seen.len(), 3);
    }
}

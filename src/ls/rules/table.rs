//! The one suffix table of a rule set: every `match.suffix` of every
//! `[[ls.rule]]`, each kept once with the rules that name it (in file
//! order), found from the query's wire name in place: the name's suffixes
//! are hashed root first as the pools' table does (`ls::suffix`, whose walk
//! it shares), each looked up by hash and confirmed byte for byte, case
//! aside. A lookup allocates nothing: it hands each hit's rule list to the
//! caller.
use hickory_proto::rr::Name;

use crate::ls::suffix::{lower_wire, suffixes};

/// The rules' suffixes, by hash of their labels.
#[derive(Debug, Default, Clone)]
pub(super) struct RuleSuffixes {
    /// (hash of the suffix's labels, index into `entries`), sorted by hash.
    index: Vec<(u64, usize)>,
    /// Each suffix's lower-cased wire form (root byte included), and the
    /// rules (indexes, ascending) that name it.
    entries: Vec<(Box<[u8]>, Vec<u32>)>,
}

impl RuleSuffixes {
    /// The table of `(suffix, rule)` pairs, the rules given in ascending order.
    pub(super) fn new<'a>(pairs: impl IntoIterator<Item = (&'a Name, u32)>) -> Self {
        let mut t = RuleSuffixes::default();
        for (name, rule) in pairs {
            let wire = lower_wire(name);
            if let Some((_, rules)) = t.entries.iter_mut().find(|(w, _)| **w == *wire) {
                if rules.last() != Some(&rule) {
                    rules.push(rule);
                }
                continue;
            }
            let mut whole = None;
            suffixes(&wire, |start, hash| {
                if start == 0 {
                    whole = Some(hash);
                }
            });
            if let Some(hash) = whole {
                t.index.push((hash, t.entries.len()));
                t.entries.push((wire.into_boxed_slice(), vec![rule]));
            }
        }
        t.index.sort_unstable();
        t
    }

    /// Calls `hit` with the rules of each suffix of the wire name `name`
    /// that is in the table (the root's first, the whole name's last); not
    /// at all when `name` is not a plain wire name.
    pub(super) fn each_hit<'t>(&'t self, name: &[u8], mut hit: impl FnMut(&'t [u32])) {
        if self.entries.is_empty() {
            return;
        }
        suffixes(name, |start, hash| {
            let suffix = name.get(start..).unwrap_or_default();
            let from = self.index.partition_point(|&(h, _)| h < hash);
            let same = self.index.get(from..).unwrap_or_default();
            for &(_, e) in same.iter().take_while(|&&(h, _)| h == hash) {
                if let Some((wire, rules)) = self.entries.get(e)
                    && suffix
                        .get(..wire.len())
                        .is_some_and(|s| s.eq_ignore_ascii_case(wire))
                {
                    hit(rules);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_name;

    fn wire(text: &str) -> Vec<u8> {
        lower_wire(&parse_name(text).unwrap())
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if i % 2 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect()
    }

    fn hits(t: &RuleSuffixes, name: &str) -> Vec<u32> {
        let mut out = Vec::new();
        t.each_hit(&wire(name), |rules| out.extend_from_slice(rules));
        out
    }

    #[test]
    fn every_suffix_of_the_name_is_found_with_its_rules() {
        let names: Vec<(Name, u32)> = [("example.org", 0), ("org", 1), ("example.org", 2)]
            .iter()
            .map(|&(n, r)| (parse_name(n).unwrap(), r))
            .chain([(Name::root(), 3)])
            .collect();
        let t = RuleSuffixes::new(names.iter().map(|(n, r)| (n, *r)));
        // The root's rules first, then org's, then example.org's.
        assert_eq!(hits(&t, "www.Example.ORG"), [3, 1, 0, 2]);
        assert_eq!(hits(&t, "example.org"), [3, 1, 0, 2]);
        assert_eq!(hits(&t, "badexample.org"), [3, 1]);
        assert_eq!(hits(&t, "example.com"), [3]);
        assert!(hits(&RuleSuffixes::default(), "example.org").is_empty());
        // Not a plain name: nothing.
        let mut called = false;
        t.each_hit(&[3, b'w', b'w', b'w', 0xc0, 12], |_| called = true);
        assert!(!called);
    }
}

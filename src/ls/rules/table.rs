//! The one suffix table of a rule set: every `match.suffix` of every
//! `[[ls.rule]]`, each kept once with the rules that name it (in file
//! order), found from the query's wire name in place by the pools' own
//! suffix table (`ls::suffix::SuffixTable`, each suffix an entry of it). A
//! lookup allocates nothing: it hands each hit's rule list to the caller.
use hickory_proto::rr::Name;

use crate::ls::suffix::{SuffixTable, lower_wire};

/// The rules' suffixes.
#[derive(Debug, Default, Clone)]
pub(super) struct RuleSuffixes {
    /// Each suffix as an entry (its index in `rules`).
    table: SuffixTable,
    /// The rules (indexes, ascending) that name each suffix.
    rules: Vec<Vec<u32>>,
}

impl RuleSuffixes {
    /// The table of `(suffix, rule)` pairs, the rules given in ascending order.
    pub(super) fn new<'a>(pairs: impl IntoIterator<Item = (&'a Name, u32)>) -> Self {
        let mut names: Vec<(&Name, Vec<u32>)> = Vec::new();
        // Each suffix's place in `names`, by its lower-cased wire form: one
        // hash lookup per pair, not a scan (a block list may hold hundreds
        // of thousands of names).
        let mut place: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
        for (name, rule) in pairs {
            match place.entry(lower_wire(name)) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    if let Some((_, rules)) = names.get_mut(*at.get())
                        && rules.last() != Some(&rule)
                    {
                        rules.push(rule);
                    }
                }
                std::collections::hash_map::Entry::Vacant(at) => {
                    at.insert(names.len());
                    names.push((name, vec![rule]));
                }
            }
        }
        let table = SuffixTable::new(names.iter().enumerate().map(|(i, (n, _))| (*n, i)));
        RuleSuffixes {
            table,
            rules: names.into_iter().map(|(_, rules)| rules).collect(),
        }
    }

    /// Calls `hit` with the rules of each suffix of the wire name `name`
    /// that is in the table (the root's first, the whole name's last); not
    /// at all when `name` is not a plain wire name.
    pub(super) fn each_hit<'t>(&'t self, name: &[u8], mut hit: impl FnMut(&'t [u32])) {
        self.table.each_zone(name, |i| {
            if let Some(rules) = self.rules.get(i) {
                hit(rules);
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

    /// A block list of 200,000 names (two rules naming each, in any case)
    /// is kept once per name and found whole; built without a scan per
    /// name (a quadratic build kept an LS from answering for minutes).
    #[test]
    fn a_block_list_of_200000_names_is_kept_once_each() {
        let names: Vec<Name> = (0..200_000)
            .map(|i| parse_name(&format!("h{i}.Block.test")).unwrap())
            .collect();
        let pairs = names
            .iter()
            .map(|n| (n, 0))
            .chain(names.iter().map(|n| (n, 1)));
        let t = RuleSuffixes::new(pairs);
        assert_eq!(t.rules.len(), 200_000);
        assert_eq!(hits(&t, "www.h199999.block.TEST"), [0, 1]);
        assert_eq!(hits(&t, "h0.block.test"), [0, 1]);
        assert!(hits(&t, "h200000.block.test").is_empty());
    }
}

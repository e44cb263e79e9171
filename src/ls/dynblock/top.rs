//! `dnslb top`'s data: one summary per second of what the workers counted
//! (the busiest client groups, query names and types, and the answers'
//! rcodes), each list cut to [`TOP_KEEP`], in a ring of [`TOP_SECS`]
//! seconds; [`TopRing::report`] adds up the last N of them. Bounded: at
//! most `TOP_SECS` × 3 × `TOP_KEEP` entries and 16 rcodes a second.
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Seconds of summaries kept.
pub const TOP_SECS: usize = 60;
/// Entries of each list kept per second.
pub const TOP_KEEP: usize = 100;

/// One second's summary.
#[derive(Debug, Default, Clone)]
pub(super) struct Second {
    /// Queries by client group.
    pub clients: Vec<(String, u64)>,
    /// Queries by name.
    pub names: Vec<(String, u64)>,
    /// Queries by type.
    pub qtypes: Vec<(String, u64)>,
    /// Answers by rcode.
    pub rcodes: [u64; 16],
}

/// The `TOP_KEEP` largest of `counts`, largest first (ties by key).
pub(super) fn heaviest<K: Ord + Clone + Hash>(
    counts: HashMap<K, u64>,
    keep: usize,
) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(keep);
    v
}

/// One list of a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopEntry {
    /// The client group, name, type or rcode.
    pub key: String,
    /// How many, over the report's seconds.
    pub count: u64,
}

/// `GET /top`'s body.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopReport {
    /// The seconds it adds up (at most those kept).
    pub seconds: u64,
    /// Busiest client groups.
    pub clients: Vec<TopEntry>,
    /// Busiest query names.
    pub names: Vec<TopEntry>,
    /// Busiest query types.
    pub qtypes: Vec<TopEntry>,
    /// Answers by rcode.
    pub rcodes: Vec<TopEntry>,
}

/// The ring of summaries.
#[derive(Debug, Default)]
pub(super) struct TopRing {
    secs: VecDeque<Second>,
}

impl TopRing {
    /// Adds a second, forgetting the oldest past [`TOP_SECS`].
    pub(super) fn push(&mut self, s: Second) {
        if self.secs.len() >= TOP_SECS {
            self.secs.pop_front();
        }
        self.secs.push_back(s);
    }

    /// The last `seconds` (at most [`TOP_SECS`]) added up, `n` of each list.
    pub(super) fn report(&self, seconds: usize, n: usize) -> TopReport {
        let last: Vec<&Second> = self.secs.iter().rev().take(seconds).collect();
        let sum = |pick: fn(&Second) -> &Vec<(String, u64)>| {
            let mut m: HashMap<String, u64> = HashMap::new();
            for s in &last {
                for (k, c) in pick(s) {
                    *m.entry(k.clone()).or_default() += c;
                }
            }
            entries(heaviest(m, n))
        };
        let mut rcodes: HashMap<String, u64> = HashMap::new();
        for s in &last {
            for (code, &c) in s.rcodes.iter().enumerate() {
                if c > 0 {
                    *rcodes.entry(rcode_name(code)).or_default() += c;
                }
            }
        }
        TopReport {
            seconds: u64::try_from(last.len()).unwrap_or(u64::MAX),
            clients: sum(|s| &s.clients),
            names: sum(|s| &s.names),
            qtypes: sum(|s| &s.qtypes),
            rcodes: entries(heaviest(rcodes, 16)),
        }
    }
}

fn entries(v: Vec<(String, u64)>) -> Vec<TopEntry> {
    v.into_iter()
        .map(|(key, count)| TopEntry { key, count })
        .collect()
}

/// An rcode's name (`NXDOMAIN`), or its number.
pub(super) fn rcode_name(code: usize) -> String {
    let names = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ];
    names
        .get(code)
        .map_or_else(|| code.to_string(), |n| (*n).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_adds_up_the_last_seconds_heaviest_first() {
        let mut ring = TopRing::default();
        for i in 0..(TOP_SECS as u64 + 5) {
            let mut rcodes = [0; 16];
            rcodes[3] = 2;
            ring.push(Second {
                clients: vec![("192.0.2.1".into(), 10), (format!("10.0.0.{i}"), 1)],
                names: vec![("a.example.".into(), 3)],
                qtypes: vec![("A".into(), 4)],
                rcodes,
            });
        }
        let r = ring.report(5, 2);
        assert_eq!(r.seconds, 5);
        assert_eq!(
            r.clients[0],
            TopEntry {
                key: "192.0.2.1".into(),
                count: 50
            }
        );
        assert_eq!(r.clients.len(), 2);
        assert_eq!(r.names[0].count, 15);
        assert_eq!(
            r.rcodes,
            [TopEntry {
                key: "NXDOMAIN".into(),
                count: 10
            }]
        );
        assert_eq!(ring.report(1000, 1).seconds, TOP_SECS as u64, "bounded");
    }
}

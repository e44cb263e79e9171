//! `dnslb top`'s data: one summary per second of what the workers counted
//! (the busiest client groups, query names and types, and the answers'
//! rcodes), each list cut to [`TOP_KEEP`], in a ring of [`TOP_SECS`]
//! seconds allocated whole at start ([`TopRing::new`]); the tick fills the
//! oldest slot in place, so it allocates nothing once warm.
//! [`TopRing::report`] adds up the last N seconds (and makes the text).
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use super::table::{DynName, wire_text};

/// Seconds of summaries kept.
pub const TOP_SECS: usize = 60;
/// Entries of each list kept per second.
pub const TOP_KEEP: usize = 100;

/// One second's summary.
#[derive(Debug, Clone)]
pub(super) struct Second {
    /// Queries by client group.
    pub(super) clients: Vec<(IpAddr, u64)>,
    /// Queries by name.
    pub(super) names: Vec<(DynName, u64)>,
    /// Queries by type.
    pub(super) qtypes: Vec<(u16, u64)>,
    /// Answers by rcode.
    pub(super) rcodes: [u64; 16],
}

impl Second {
    fn new() -> Self {
        Second {
            clients: Vec::with_capacity(TOP_KEEP),
            names: Vec::with_capacity(TOP_KEEP),
            qtypes: Vec::with_capacity(TOP_KEEP),
            rcodes: [0; 16],
        }
    }

    fn clear(&mut self) {
        self.clients.clear();
        self.names.clear();
        self.qtypes.clear();
        self.rcodes = [0; 16];
    }
}

/// Puts the [`TOP_KEEP`] largest of `counts` into `out` (cleared first),
/// largest first, through `scratch` (both keep their capacity).
pub(super) fn heaviest_into<K: Copy + Ord>(
    counts: &HashMap<K, u64>,
    scratch: &mut Vec<(K, u64)>,
    out: &mut Vec<(K, u64)>,
) {
    scratch.clear();
    scratch.extend(counts.iter().map(|(k, c)| (*k, *c)));
    let order = |a: &(K, u64), b: &(K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if scratch.len() > TOP_KEEP {
        scratch.select_nth_unstable_by(TOP_KEEP - 1, order);
        scratch.truncate(TOP_KEEP);
    }
    scratch.sort_unstable_by(order);
    out.clear();
    out.extend(scratch.iter().copied());
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
#[derive(Debug)]
pub(super) struct TopRing {
    secs: Vec<Second>,
    /// The slot the next second goes to.
    next: usize,
    /// Seconds filled so far (at most [`TOP_SECS`]).
    filled: usize,
}

impl TopRing {
    /// A ring of [`TOP_SECS`] empty seconds, every list's room allocated.
    pub(super) fn new() -> Self {
        TopRing {
            secs: (0..TOP_SECS).map(|_| Second::new()).collect(),
            next: 0,
            filled: 0,
        }
    }

    /// The slot of the next second, cleared, for the tick to fill in place.
    pub(super) fn next_slot(&mut self) -> &mut Second {
        let i = self.next;
        self.next = (self.next + 1) % TOP_SECS;
        self.filled = (self.filled + 1).min(TOP_SECS);
        let s = &mut self.secs[i];
        s.clear();
        s
    }

    /// The last `seconds` (at most [`TOP_SECS`]) added up, `n` of each list.
    pub(super) fn report(&self, seconds: usize, n: usize) -> TopReport {
        let k = seconds.min(self.filled);
        let last: Vec<&Second> = (1..=k)
            .filter_map(|back| self.secs.get((self.next + TOP_SECS - back) % TOP_SECS))
            .collect();
        fn sum<K: Hash + Eq + Copy>(
            last: &[&Second],
            pick: fn(&Second) -> &Vec<(K, u64)>,
            text: fn(K) -> String,
            n: usize,
        ) -> Vec<TopEntry> {
            let mut m: HashMap<K, u64> = HashMap::new();
            for s in last {
                for (key, c) in pick(s) {
                    *m.entry(*key).or_default() += c;
                }
            }
            let mut v: Vec<TopEntry> = m
                .into_iter()
                .map(|(key, count)| TopEntry {
                    key: text(key),
                    count,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            v.truncate(n);
            v
        }
        let mut rcodes = [0u64; 16];
        for s in &last {
            for (a, b) in rcodes.iter_mut().zip(s.rcodes) {
                *a += b;
            }
        }
        let mut rc: Vec<TopEntry> = rcodes
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(code, &count)| TopEntry {
                key: rcode_name(code),
                count,
            })
            .collect();
        rc.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        TopReport {
            seconds: u64::try_from(k).unwrap_or(u64::MAX),
            clients: sum(&last, |s| &s.clients, |ip| ip.to_string(), n),
            names: sum(&last, |s| &s.names, |k| wire_text(k.wire()), n),
            qtypes: sum(
                &last,
                |s| &s.qtypes,
                |t| hickory_proto::rr::RecordType::from(t).to_string(),
                n,
            ),
            rcodes: rc,
        }
    }
}

/// An rcode's name (`NXDOMAIN`), or its number.
fn rcode_name(code: usize) -> String {
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
        let mut ring = TopRing::new();
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        let name = DynName::new(0, b"\x01a\x07example\x00").unwrap();
        for i in 0..(TOP_SECS as u32 + 5) {
            let s = ring.next_slot();
            s.clients.push((heavy, 10));
            s.clients
                .push((IpAddr::from([10, 0, 0, (i % 200) as u8]), 1));
            s.names.push((name, 3));
            s.qtypes.push((28, 4));
            s.rcodes[3] = 2;
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
        assert_eq!(
            r.names[0],
            TopEntry {
                key: "a.example.".into(),
                count: 15
            }
        );
        assert_eq!(r.qtypes[0].key, "AAAA");
        assert_eq!(
            r.rcodes,
            [TopEntry {
                key: "NXDOMAIN".into(),
                count: 10
            }]
        );
        assert_eq!(ring.report(1000, 1).seconds, TOP_SECS as u64, "bounded");
    }

    #[test]
    fn the_heaviest_are_kept_largest_first() {
        let counts: HashMap<u16, u64> = (0..500u16).map(|k| (k, u64::from(k % 250))).collect();
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        heaviest_into(&counts, &mut scratch, &mut out);
        assert_eq!(out.len(), TOP_KEEP);
        assert_eq!(out[0], (249, 249));
        assert_eq!(out[1], (499, 249));
        assert!(out.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

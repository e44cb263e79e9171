//! `dnslb top`'s report ([`TopReport`]): the busiest client groups, query
//! names and types, and the answers' rcodes of the last N seconds, added up
//! ([`report`]) from the workers' rings of recent queries
//! ([`super::recent`]) when asked, and only then.
use std::collections::HashMap;
use std::net::IpAddr;

use super::recent::{RECENT, Recent};
use super::table::{DynName, label_starts, wire_text};

/// Entries of each list kept per second.
pub const TOP_KEEP: usize = 100;

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
    /// Answers by rcode: every answer sent, the backends' and those the LS
    /// made up (blocks, rules, its own at the deadline, shed) alike.
    pub rcodes: Vec<TopEntry>,
    /// Set when the names are cut to their last this many labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<u64>,
    /// Set when the clients, names and types are of fewer queries than the
    /// seconds asked saw (each worker keeps its last [`RECENT`]): what they
    /// are of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Adds up what `rings` kept from second `since` on (`seconds` of them):
/// `n` of each list, heaviest first, the names cut to their last `labels`
/// labels when given (as dnsdist's `topQueries(n, labels)`: the names of a
/// random-subdomain flood add up under their zone). `now` is the current
/// second (the tick's call count).
pub(super) fn report<'a>(
    rings: impl IntoIterator<Item = &'a Recent>,
    (now, seconds): (u64, usize),
    (n, labels): (usize, Option<usize>),
) -> TopReport {
    let back = u64::try_from(seconds.max(1)).unwrap_or(u64::MAX);
    let since = (now + 1).saturating_sub(back);
    let mut clients: HashMap<IpAddr, u64> = HashMap::new();
    let mut names: HashMap<DynName, u64> = HashMap::new();
    let mut qtypes: HashMap<u16, u64> = HashMap::new();
    let mut rcodes = [0u64; 16];
    let (mut seen, mut wrapped) = (0u64, false);
    for ring in rings {
        wrapped |= ring.scan(since, &mut rcodes, |s| {
            seen += 1;
            *clients.entry(s.client).or_default() += 1;
            if let Some(k) = DynName::new(0, last_labels(s.name(), labels)) {
                *names.entry(k).or_default() += 1;
            }
            *qtypes.entry(s.qtype).or_default() += 1;
        });
    }
    fn list<K>(m: HashMap<K, u64>, text: impl Fn(K) -> String, n: usize) -> Vec<TopEntry> {
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
    let rc = rcodes
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(code, &count)| (code, count))
        .collect();
    TopReport {
        seconds: now + 1 - since,
        clients: list(clients, |ip| ip.to_string(), n),
        names: list(names, |k| wire_text(k.wire()), n),
        qtypes: list(
            qtypes,
            |t| hickory_proto::rr::RecordType::from(t).to_string(),
            n,
        ),
        rcodes: list(rc, rcode_name, usize::MAX),
        labels: labels.and_then(|l| u64::try_from(l).ok()),
        note: wrapped.then(|| {
            format!(
                "clients, names and types: the last {seen} queries kept ({RECENT} per worker), \
                 less than the {} s asked; rcodes: every answer",
                now + 1 - since
            )
        }),
    }
}

/// The last `labels` labels of the wire name `wire` (the root's
/// included): the whole name when it has no more, or `labels` is `None`.
fn last_labels(wire: &[u8], labels: Option<usize>) -> &[u8] {
    let Some(keep) = labels else { return wire };
    let starts = label_starts(wire);
    // The root label's start is the last.
    let count = starts.len().saturating_sub(1);
    match count.checked_sub(keep).and_then(|i| starts.get(i)) {
        Some(&at) => wire.get(usize::from(at)..).unwrap_or(wire),
        None => wire,
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
    use crate::ls::dynblock::TOP_SECS;

    /// Two workers' rings added up over the seconds asked: heaviest first,
    /// names lower-cased, types and rcodes by name; the older seconds and
    /// `n` left out; no note while the rings hold every query.
    #[test]
    fn a_report_adds_up_the_workers_rings_over_the_seconds_asked() {
        let (mut one, mut two) = (Recent::new(), Recent::new());
        let heavy: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            one.on_query(7, heavy, b"\x01A\x07example\x00", 28);
            two.on_query(8, heavy, b"\x01a\x07example\x00", 28);
        }
        two.on_query(8, "192.0.2.2".parse().unwrap(), b"\x01b\x00", 1);
        one.on_query(2, "192.0.2.3".parse().unwrap(), b"\x01c\x00", 1);
        two.on_answer(8, 3);
        one.on_answer(2, 0);
        let r = report([&one, &two], (8, 5), (1, None));
        assert_eq!(r.seconds, 5);
        assert_eq!(
            r.clients,
            [TopEntry {
                key: "192.0.2.1".into(),
                count: 20
            }]
        );
        assert_eq!(r.names[0].key, "a.example.");
        assert_eq!(r.names[0].count, 20);
        assert_eq!(r.qtypes[0].key, "AAAA");
        assert_eq!(
            r.rcodes,
            [TopEntry {
                key: "NXDOMAIN".into(),
                count: 1
            }]
        );
        assert_eq!(r.note, None);
        let all = report([&one, &two], (8, TOP_SECS), (TOP_KEEP, None));
        assert_eq!(all.clients.len(), 3);
        assert_eq!(all.rcodes.len(), 2);
    }

    /// Names cut to their last labels add up under their zone (a
    /// random-subdomain flood is one entry); shorter names stay whole.
    #[test]
    fn names_cut_to_their_last_labels_add_up_by_zone() {
        let mut one = Recent::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..30u8 {
            let name = [&[2, b'r', b'0' + i % 10][..], b"\x07Example\x03com\x00"].concat();
            one.on_query(3, ip, &name, 1);
        }
        one.on_query(3, ip, b"\x03com\x00", 1);
        one.on_query(3, ip, b"\x00", 1);
        let r = report([&one], (3, 1), (10, Some(2)));
        assert_eq!(r.labels, Some(2));
        assert_eq!(
            r.names[0],
            TopEntry {
                key: "example.com.".into(),
                count: 30
            }
        );
        let rest: Vec<&str> = r.names[1..].iter().map(|e| e.key.as_str()).collect();
        assert_eq!(rest, [".", "com."]);
        let whole = report([&one], (3, 1), (20, None));
        assert_eq!(whole.names.len(), 12, "{:?}", whole.names);
        assert_eq!(whole.labels, None);
        assert_eq!(last_labels(b"\x01a\x01b\x00", Some(1)), b"\x01b\x00");
        assert_eq!(last_labels(b"\x01a\x01b\x00", Some(5)), b"\x01a\x01b\x00");
    }

    /// A ring that wrapped within the seconds asked: the report says the
    /// lists are of the queries kept.
    #[test]
    fn a_report_of_a_wrapped_ring_says_what_it_is_of() {
        let mut one = Recent::new();
        for _ in 0..RECENT + 1 {
            one.on_query(4, "192.0.2.1".parse().unwrap(), b"\x00", 1);
        }
        let r = report([&one], (4, 10), (5, None));
        assert_eq!(r.clients[0].count, RECENT as u64);
        let note = r.note.expect("a note");
        assert!(
            note.contains(&format!("the last {RECENT} queries kept")),
            "{note}"
        );
    }
}

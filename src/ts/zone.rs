//! Zones in memory and authoritative lookup.
//!
//! A [`Zone`] holds RRsets by lower-cased owner name, its SOA, and the empty
//! non-terminals implied by its names. [`Zone::lookup`] is pure: it turns a
//! question into an [`Answer`] (rcode, AA and the three sections) following
//! RFC 1034 §4.3.2 (delegations, CNAME chains, wildcards), RFC 2308 (SOA in
//! negative answers) and RFC 8020 (empty non-terminals answer NODATA).
//! A [`Catalog`] is the set of zones one TS serves.
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::source::{SourceRecord, ZoneError};
use crate::dns::Rr;

/// Longest CNAME chain followed inside one zone.
const MAX_CNAME_CHAIN: usize = 8;

/// Records of one owner and type.
#[derive(Debug, Clone, PartialEq)]
pub struct RrSet {
    /// The type.
    pub rtype: RecordType,
    /// TTL shared by the set (the lowest one given).
    pub ttl: u32,
    /// The records, in file order, without duplicates.
    pub data: Vec<RData>,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// Owner name as first written.
    owner: Name,
    rrsets: Vec<RrSet>,
}

impl Node {
    fn get(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }
}

/// One authoritative zone.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    soa_ttl: u32,
    soa: RData,
    /// True when no file gave an SOA (PROJ tables): the serial is ours to manage.
    soa_synthesized: bool,
    /// Which file (index into the TS's zone list) and line gave the SOA.
    soa_source: Option<(usize, usize)>,
    nodes: HashMap<LowerName, Node>,
    /// Names that exist only as ancestors of other names.
    empty_non_terminals: HashSet<LowerName>,
    /// Whether any NS set sits below the apex (enables the delegation walk).
    has_delegations: bool,
    has_wildcards: bool,
}

/// What a name is in a zone.
enum Found<'z> {
    Node(&'z Node),
    /// Exists only as the parent of other names (or the apex with no records of its own).
    Empty,
    Missing,
}

/// The outcome of a lookup: what an authoritative server sends.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// AA: false only for referrals.
    pub authoritative: bool,
    /// Answer section.
    pub answer: Vec<Rr<'a>>,
    /// Authority section.
    pub authority: Vec<Rr<'a>>,
    /// Additional section.
    pub additional: Vec<Rr<'a>>,
}

impl<'a> Answer<'a> {
    fn new() -> Self {
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// True when the answer holds no data for the question (NXDOMAIN or NODATA).
    pub fn is_negative(&self) -> bool {
        self.rcode == ResponseCode::NXDomain || (self.answer.is_empty() && self.authoritative)
    }
}

fn push_set<'a>(out: &mut Vec<Rr<'a>>, owner: &'a Name, set: &'a RrSet) {
    out.extend(set.data.iter().map(|data| Rr {
        name: owner,
        ttl: set.ttl,
        data,
    }));
}

impl Zone {
    /// Builds a zone from records. Without an SOA among them, one is
    /// synthesized from `default_soa` (the PROJ-table case).
    ///
    /// # Errors
    /// A record outside the origin, a CNAME beside other data or a second
    /// CNAME, an SOA away from the apex: `file:line: what is wrong`.
    pub fn build(
        origin: Name,
        records: Vec<(usize, SourceRecord)>,
        files: &[PathBuf],
        default_soa: impl FnOnce(&Name, &[(usize, SourceRecord)]) -> (u32, SOA),
    ) -> Result<Zone, ZoneError> {
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        let mut soa: Option<(u32, RData)> = None;
        let mut soa_source = None;
        let unnamed = PathBuf::new();
        for (idx, rec) in &records {
            let file = files.get(*idx).unwrap_or(&unnamed);
            if !origin.zone_of(&rec.name) {
                return Err(ZoneError::line(
                    file,
                    rec.line,
                    format!("{} is outside the zone {}", rec.name, origin),
                ));
            }
            let rtype = rec.data.record_type();
            if rtype == RecordType::SOA {
                if !rec.name.eq_ignore_root(&origin) {
                    return Err(ZoneError::line(
                        file,
                        rec.line,
                        format!("SOA at {} is not at the zone apex {}", rec.name, origin),
                    ));
                }
                if soa.is_some() {
                    return Err(ZoneError::line(file, rec.line, "a second SOA"));
                }
                soa = Some((rec.ttl, rec.data.clone()));
                soa_source = Some((*idx, rec.line));
                continue;
            }
            let node = nodes
                .entry(LowerName::new(&rec.name))
                .or_insert_with(|| Node {
                    owner: rec.name.clone(),
                    rrsets: Vec::new(),
                });
            let has_cname = node.get(RecordType::CNAME).is_some();
            let has_other = node.rrsets.iter().any(|s| s.rtype != RecordType::CNAME);
            let conflict = if rtype == RecordType::CNAME {
                has_other || has_cname
            } else {
                has_cname
            };
            if conflict {
                return Err(ZoneError::line(
                    file,
                    rec.line,
                    format!("{} has a CNAME and other data (RFC 1034 §3.6.2)", rec.name),
                ));
            }
            match node.rrsets.iter_mut().find(|s| s.rtype == rtype) {
                Some(set) => {
                    set.ttl = set.ttl.min(rec.ttl);
                    if !set.data.contains(&rec.data) {
                        set.data.push(rec.data.clone());
                    }
                }
                None => node.rrsets.push(RrSet {
                    rtype,
                    ttl: rec.ttl,
                    data: vec![rec.data.clone()],
                }),
            }
        }
        let soa_synthesized = soa.is_none();
        let (soa_ttl, soa) = match soa {
            Some(s) => s,
            None => {
                let (ttl, soa) = default_soa(&origin, &records);
                (ttl, RData::SOA(soa))
            }
        };
        let apex = LowerName::new(&origin);
        let mut empty_non_terminals = HashSet::new();
        let mut has_delegations = false;
        let mut has_wildcards = false;
        if !nodes.contains_key(&apex) {
            empty_non_terminals.insert(apex.clone());
        }
        for (key, node) in &nodes {
            has_wildcards |= key.is_wildcard();
            has_delegations |= *key != apex && node.get(RecordType::NS).is_some();
            let mut up = key.base_name();
            while up.num_labels() > apex.num_labels() {
                if !nodes.contains_key(&up) {
                    empty_non_terminals.insert(up.clone());
                }
                up = up.base_name();
            }
        }
        Ok(Zone {
            origin,
            soa_ttl,
            soa,
            soa_synthesized,
            soa_source,
            nodes,
            empty_non_terminals,
            has_delegations,
            has_wildcards,
        })
    }

    /// The zone's apex name.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// True when the SOA was synthesized rather than read from a file.
    pub fn soa_synthesized(&self) -> bool {
        self.soa_synthesized
    }

    /// The file (index into the zone list) and line of the SOA, when read from a file.
    pub fn soa_source(&self) -> Option<(usize, usize)> {
        self.soa_source
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        match &self.soa {
            RData::SOA(s) => s.serial,
            _ => 0,
        }
    }

    /// The same zone with another SOA serial.
    pub fn with_serial(mut self, serial: u32) -> Self {
        if let RData::SOA(s) = &mut self.soa {
            s.serial = serial;
        }
        self
    }

    /// True when both zones hold the same records (the serial aside).
    pub fn same_data(&self, other: &Zone) -> bool {
        let strip = |z: &Zone| match &z.soa {
            RData::SOA(s) => {
                let mut s = s.clone();
                s.serial = 0;
                Some(s)
            }
            _ => None,
        };
        self.origin == other.origin
            && self.nodes == other.nodes
            && self.soa_ttl == other.soa_ttl
            && strip(self) == strip(other)
    }

    /// Number of RRsets, the SOA included.
    pub fn rrset_count(&self) -> usize {
        1 + self.nodes.values().map(|n| n.rrsets.len()).sum::<usize>()
    }

    /// The SOA for the authority section of a negative answer: TTL is
    /// min(SOA TTL, SOA MINIMUM) per RFC 2308 §3.
    fn negative_soa(&self) -> Rr<'_> {
        let minimum = match &self.soa {
            RData::SOA(s) => s.minimum,
            _ => self.soa_ttl,
        };
        Rr {
            name: &self.origin,
            ttl: self.soa_ttl.min(minimum),
            data: &self.soa,
        }
    }

    /// The SOA record as stored (for answers to SOA queries and transfers).
    pub fn soa_rr(&self) -> Rr<'_> {
        Rr {
            name: &self.origin,
            ttl: self.soa_ttl,
            data: &self.soa,
        }
    }

    /// Every record of the zone except the SOA, for a zone transfer.
    pub fn all_records(&self) -> impl Iterator<Item = Rr<'_>> {
        self.nodes.values().flat_map(|n| {
            n.rrsets.iter().flat_map(move |s| {
                s.data.iter().map(move |d| Rr {
                    name: &n.owner,
                    ttl: s.ttl,
                    data: d,
                })
            })
        })
    }

    /// Answers `qname`/`qtype`, which must be at or below the origin.
    /// Records owned by the question's name are written with `qname` as owner,
    /// so the client's spelling (and 0x20 case) is kept.
    pub fn lookup<'a>(&'a self, qname: &'a Name, qtype: RecordType) -> Answer<'a> {
        let mut ans = Answer::new();
        let key = LowerName::new(qname);
        if self.has_delegations
            && let Some(referral) = self.referral(&key, qtype)
        {
            return referral;
        }
        let mut owner = qname;
        let mut found = self.find_node(&key);
        for _ in 0..MAX_CNAME_CHAIN {
            if qtype == RecordType::SOA && owner.eq_ignore_root(&self.origin) {
                ans.answer.push(self.soa_rr_named(owner));
                return ans;
            }
            let n = match found {
                Found::Node(n) => n,
                Found::Empty => {
                    ans.authority.push(self.negative_soa());
                    return ans;
                }
                Found::Missing => {
                    ans.rcode = ResponseCode::NXDomain;
                    ans.authority.push(self.negative_soa());
                    return ans;
                }
            };
            let cname = match n.get(RecordType::CNAME) {
                Some(c) if qtype != RecordType::CNAME => c,
                _ => {
                    let before = ans.answer.len();
                    if qtype == RecordType::ANY {
                        if owner.eq_ignore_root(&self.origin) {
                            ans.answer.push(self.soa_rr_named(owner));
                        }
                        for set in &n.rrsets {
                            push_set(&mut ans.answer, owner, set);
                        }
                    } else if let Some(set) = n.get(qtype) {
                        push_set(&mut ans.answer, owner, set);
                    }
                    if ans.answer.len() == before {
                        ans.authority.push(self.negative_soa());
                    }
                    return ans;
                }
            };
            push_set(&mut ans.answer, owner, cname);
            let Some(RData::CNAME(target)) = cname.data.first() else {
                return ans;
            };
            if !self.origin.zone_of(&target.0) {
                return ans; // out of zone: the client's resolver follows it
            }
            owner = &target.0;
            found = self.find_node(&LowerName::new(owner));
        }
        ans
    }

    /// The node of `key`: its own, a wildcard's, or none (empty non-terminal or missing).
    fn find_node(&self, key: &LowerName) -> Found<'_> {
        if let Some(n) = self.nodes.get(key) {
            return Found::Node(n);
        }
        if self.empty_non_terminals.contains(key) {
            return Found::Empty;
        }
        if self.has_wildcards
            && let Some(n) = self.wildcard_for(key)
        {
            return Found::Node(n);
        }
        Found::Missing
    }

    fn soa_rr_named<'a>(&'a self, owner: &'a Name) -> Rr<'a> {
        Rr {
            name: owner,
            ttl: self.soa_ttl,
            data: &self.soa,
        }
    }

    /// The node of the wildcard at the closest encloser of `key` (RFC 4592).
    fn wildcard_for(&self, key: &LowerName) -> Option<&Node> {
        let mut up = key.base_name();
        loop {
            if self.nodes.contains_key(&up)
                || self.empty_non_terminals.contains(&up)
                || up.num_labels() <= self.origin.num_labels()
            {
                let wild = LowerName::new(&Name::from(up).prepend_label("*").ok()?);
                return self.nodes.get(&wild);
            }
            up = up.base_name();
        }
    }

    /// A referral when `key` is at or below a delegation point (not for DS at the cut).
    fn referral(&self, key: &LowerName, qtype: RecordType) -> Option<Answer<'_>> {
        let apex_labels = self.origin.num_labels();
        // Walk from just below the apex down to the name itself.
        let labels = key.num_labels();
        for n in (apex_labels + 1)..=labels {
            let mut cut = key.clone();
            for _ in n..labels {
                cut = cut.base_name();
            }
            let Some(node) = self.nodes.get(&cut) else {
                continue;
            };
            let Some(ns) = node.get(RecordType::NS) else {
                continue;
            };
            if n == labels && qtype == RecordType::DS {
                return None;
            }
            let mut ans = Answer::new();
            ans.authoritative = false;
            push_set(&mut ans.authority, &node.owner, ns);
            for d in &ns.data {
                if let RData::NS(NS(target)) = d
                    && let Some(glue) = self.nodes.get(&LowerName::new(target))
                {
                    for t in [RecordType::A, RecordType::AAAA] {
                        if let Some(set) = glue.get(t) {
                            push_set(&mut ans.additional, &glue.owner, set);
                        }
                    }
                }
            }
            return Some(ans);
        }
        None
    }
}

/// The zones one TS serves, most specific origin first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
}

impl Catalog {
    /// A catalog of `zones`.
    pub fn new(mut zones: Vec<Zone>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        Catalog { zones }
    }

    /// The zone authoritative for `name`, if any.
    pub fn find(&self, name: &Name) -> Option<&Zone> {
        self.zones.iter().find(|z| z.origin.zone_of(name))
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(n: &str, data: RData) -> SourceRecord {
        SourceRecord {
            name: name(n),
            ttl: 300,
            data,
            line: 1,
        }
    }

    fn a(ip: &str) -> RData {
        RData::A(A(ip.parse().unwrap()))
    }

    fn soa() -> (u32, SOA) {
        (
            300,
            SOA::new(name("ns."), name("hostmaster."), 1, 3600, 600, 86400, 60),
        )
    }

    fn zone(records: Vec<SourceRecord>) -> Zone {
        let records = records.into_iter().map(|r| (0, r)).collect();
        Zone::build(Name::root(), records, &[PathBuf::from("t")], |_, _| soa()).unwrap()
    }

    #[test]
    fn hit_nodata_nxdomain_and_ent() {
        let z = zone(vec![
            rec("www.google.com.", a("8.6.4.2")),
            rec("www.google.com.", a("8.6.4.3")),
        ]);
        let q = name("WWW.Google.com.");
        let ans = z.lookup(&q, RecordType::A);
        assert_eq!(ans.rcode, ResponseCode::NoError);
        assert_eq!(ans.answer.len(), 2);
        assert_eq!(ans.answer[0].name.to_ascii(), "WWW.Google.com.");
        let nodata = z.lookup(&q, RecordType::AAAA);
        assert!(nodata.answer.is_empty() && nodata.rcode == ResponseCode::NoError);
        assert_eq!(nodata.authority[0].data.record_type(), RecordType::SOA);
        assert_eq!(nodata.authority[0].ttl, 60);
        let ent = name("google.com.");
        assert_eq!(z.lookup(&ent, RecordType::A).rcode, ResponseCode::NoError);
        let miss = name("mail.google.com.");
        assert_eq!(z.lookup(&miss, RecordType::A).rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn cname_is_followed_inside_the_zone() {
        let z = zone(vec![
            rec("alias.test.", RData::CNAME(CNAME(name("www.test.")))),
            rec("www.test.", a("1.2.3.4")),
            rec("dangling.test.", RData::CNAME(CNAME(name("nowhere.test.")))),
        ]);
        let q = name("alias.test.");
        let ans = z.lookup(&q, RecordType::A);
        assert_eq!(ans.answer.len(), 2);
        assert_eq!(z.lookup(&q, RecordType::CNAME).answer.len(), 1);
        let d = name("dangling.test.");
        let ans = z.lookup(&d, RecordType::A);
        assert_eq!(ans.rcode, ResponseCode::NXDomain);
        assert_eq!(ans.answer.len(), 1);
    }

    #[test]
    fn cname_loop_terminates() {
        let z = zone(vec![
            rec("a.test.", RData::CNAME(CNAME(name("b.test.")))),
            rec("b.test.", RData::CNAME(CNAME(name("a.test.")))),
        ]);
        let q = name("a.test.");
        assert_eq!(z.lookup(&q, RecordType::A).answer.len(), MAX_CNAME_CHAIN);
    }

    #[test]
    fn cname_beside_data_is_refused() {
        let err = Zone::build(
            Name::root(),
            vec![
                (0, rec("a.test.", a("1.1.1.1"))),
                (0, rec("a.test.", RData::CNAME(CNAME(name("b.test."))))),
            ],
            &[PathBuf::from("t.txt")],
            |_, _| soa(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("t.txt:1: a.test. has a CNAME"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_and_delegation() {
        let z = zone(vec![
            rec("*.w.test.", a("5.5.5.5")),
            rec("sub.test.", RData::NS(NS(name("ns.sub.test.")))),
            rec("ns.sub.test.", a("6.6.6.6")),
        ]);
        let q = name("x.w.test.");
        let ans = z.lookup(&q, RecordType::A);
        assert_eq!(ans.answer.len(), 1);
        assert_eq!(ans.answer[0].name.to_ascii(), "x.w.test.");
        let q = name("deep.sub.test.");
        let ans = z.lookup(&q, RecordType::A);
        assert!(!ans.authoritative);
        assert_eq!(ans.authority.len(), 1);
        assert_eq!(ans.additional.len(), 1);
    }

    #[test]
    fn same_data_ignores_serial() {
        let z1 = zone(vec![rec("a.test.", a("1.1.1.1"))]);
        let z2 = z1.clone().with_serial(99);
        assert!(z1.same_data(&z2));
        let z3 = zone(vec![rec("a.test.", a("1.1.1.2"))]);
        assert!(!z1.same_data(&z3));
    }
}

//! Property test of the TS's own signing (`dnssec` in `[[ts]]`, docs/CONFIG.md (the TS)):
//! random PROJ tables (names at depths 1-4 under the origin, so empty
//! non-terminals arise; wildcards; A, AAAA and TXT records; CNAMEs into
//! the table, to names not in it and out of the zone; the apex NS or not;
//! at most one delegation with its glue; names in mixed case, asked in
//! mixed case) are signed by an in-process TS, under each
//! algorithm and each denial, and asked with DO=1 (UDP offering 4096, 1232
//! or 512 bytes; TCP again if truncated) for every name of the table, other types at those
//! names (NODATA), and names not in it (NXDOMAIN, or a wildcard's answer).
//!
//! Each answer is checked as a validator would, against what the table
//! says (a model of the zone written here, not the TS's; a CNAME's target
//! is checked as if it had been asked): the rcode, AA, DO echoed, AD and
//! CD clear; the zone's DNSKEY set is fetched and its self-signature
//! verified; every RRset of the answer and authority sections (the NS of a
//! referral aside) carries an RRSIG that hickory's verifier
//! (`Verifier::verify_rrsig`, RFC 4034 §3.1.8.1, wildcard labels included)
//! accepts, valid now, signed by the zone, and every RRSIG there verifies;
//! an answer from a wildcard has the wildcard's labels. The denial proofs
//! are checked here (hickory-proto 0.26 has no NSEC/NSEC3 proof helpers):
//! for NSEC, coverage in canonical order (hickory's `Name` ordering, RFC
//! 4034 §6.1) and type bitmaps; for NSEC3, hashes computed with hickory's
//! `Nsec3HashAlgorithm::hash`, coverage on the hash ring, the
//! closest-encloser proof of RFC 5155 §7.2, and RFC 9276's parameters.
//!
//! Cases are fixed in number (six tables per algorithm and denial) and the
//! runner's seed is printed on failure; `SIGNED_PROP_SEED=N` replays one,
//! `PROPTEST_CASES=N` runs N tables per combination.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC, NSEC3, RRSIG};
use hickory_proto::dnssec::{Nsec3HashAlgorithm, Verifier};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use dnslb::config::{Denial, Dnssec, DnssecAlgorithm};

use crate::kit::case_mix;
use crate::kit::{self, TestTs, ZoneDir};

/// The zone every table is under.
const ORIGIN: &str = "sgn.test.";
/// Labels drawn often, so that names share parents and wildcards match.
const POOL: [&str; 5] = ["a", "b", "www", "mail", "n1"];
/// The delegated child's label (never drawn otherwise).
const CUT: &str = "dlg";
/// Tables per algorithm and denial.
const CASES: u32 = 6;
/// Types asked at names that lack them (NODATA).
const OTHER_TYPES: [RecordType; 4] = [
    RecordType::MX,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::HINFO,
];
const WAIT: Duration = Duration::from_secs(6);
/// The kinds of answer, as [`Checked`] counts them.
const KINDS: [&str; 7] = [
    "positive",
    "from a wildcard",
    "NODATA",
    "wildcard NODATA",
    "NXDOMAIN",
    "referral",
    "CNAME",
];

/// Answers checked by one run, by kind (printed at its end, to show every
/// kind was asked).
type Checked = [AtomicU64; KINDS.len()];

// ---------------------------------------------------------------------------
// Tables and the model of their zone
// ---------------------------------------------------------------------------

/// One table line: owner labels below the origin (the first may be `*`),
/// its value and type.
#[derive(Debug, Clone)]
struct Line {
    labels: Vec<String>,
    value: String,
    rtype: &'static str,
}

/// A generated table and the names asked that may not be in it.
#[derive(Debug, Clone)]
struct Table {
    lines: Vec<Line>,
    /// Whether the table names its own name server (`HOST - NS`, the
    /// apex's NS); without, the zone has none.
    apex_ns: bool,
    delegation: bool,
    absent: Vec<Vec<String>>,
    /// Which of [`OTHER_TYPES`] each name is asked for.
    other_type: usize,
    /// CNAMEs at `c0`, `c1`, ... (names of their own, so no chains), each
    /// to a name of the table, a name not in it, or a name outside the zone.
    cnames: Vec<Target>,
    /// The letters upper-cased in the table's names and in the questions
    /// (names match case-insensitively; the signatures and proofs are over
    /// lower case).
    case: u64,
}

/// Where a CNAME points.
#[derive(Debug, Clone)]
enum Target {
    /// The owner of a table line (an index into the lines).
    Line(prop::sample::Index),
    /// `nx1.LABELS` below the origin (in the table or not).
    Absent(Vec<String>),
    /// A name outside the zone.
    Outside,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => any::<prop::sample::Index>().prop_map(Target::Line),
        2 => labels().prop_map(Target::Absent),
        1 => Just(Target::Outside),
    ]
}

/// The owner of the `k`th CNAME.
fn cname_owner(k: usize) -> Vec<String> {
    vec![format!("c{k}")]
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(POOL.to_vec()).prop_map(str::to_owned),
        1 => "[a-z0-9]{1,8}",
    ]
}

fn labels() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(label(), 1..=4)
}

fn line() -> impl Strategy<Value = Line> {
    let value = prop_oneof![
        4 => any::<[u8; 4]>().prop_map(|b| (std::net::Ipv4Addr::from(b).to_string(), "A")),
        2 => any::<[u16; 8]>().prop_map(|b| (std::net::Ipv6Addr::from(b).to_string(), "AAAA")),
        1 => "[a-z][a-z ]{0,19}".prop_map(|t| (format!("\"{t}\""), "TXT")),
    ];
    (labels(), prop::bool::weighted(0.06), value).prop_map(|(mut labels, wild, (value, rtype))| {
        if wild {
            labels[0] = "*".into();
        }
        Line {
            labels,
            value,
            rtype,
        }
    })
}

fn table() -> impl Strategy<Value = Table> {
    (
        prop::collection::vec(line(), 1..=200),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(labels(), 1..=24),
        any::<usize>(),
        prop::collection::vec(target(), 0..=4),
        any::<u64>(),
    )
        .prop_map(
            |(lines, apex_ns, delegation, absent, other_type, cnames, case)| Table {
                lines,
                apex_ns,
                delegation,
                absent,
                other_type,
                cnames,
                case,
            },
        )
}

/// A name from labels below the origin.
fn name_of(labels: &[String]) -> Name {
    Name::from_ascii(format!("{}.{ORIGIN}", labels.join("."))).unwrap()
}

/// The zone as the table says it is: each owner's types and record count
/// (lower case), the delegation point if any, the apex.
struct Model {
    apex: Name,
    names: BTreeMap<Name, BTreeMap<RecordType, usize>>,
    cut: Option<Name>,
    apex_ns: bool,
    /// Each CNAME's target.
    cnames: BTreeMap<Name, Name>,
}

impl Model {
    /// The table file and the model of `t`.
    fn new(t: &Table) -> (String, Self) {
        let apex = Name::from_ascii(ORIGIN).unwrap();
        let mut text = String::new();
        let mut sets: BTreeMap<(Name, RecordType), BTreeSet<String>> = BTreeMap::new();
        let cut = t.delegation.then(|| name_of(&[CUT.to_owned()]));
        // Nothing below the delegation point but its glue.
        let mut mask = t.case;
        // Nothing beside a CNAME.
        let owners: Vec<Vec<String>> = (0..t.cnames.len()).map(cname_owner).collect();
        let kept =
            |l: &&Line| l.labels.last().is_some_and(|c| c != CUT) && !owners.contains(&l.labels);
        for l in t.lines.iter().filter(kept) {
            let name = name_of(&l.labels);
            let rtype: RecordType = l.rtype.parse().unwrap();
            mask = mask.rotate_left(7);
            let spelled = case_mix(&name.to_string(), mask);
            text.push_str(&format!("{spelled} {} {}\n", l.value, l.rtype));
            sets.entry((name.to_lowercase(), rtype))
                .or_default()
                .insert(l.value.clone());
        }
        if t.apex_ns {
            let ns = name_of(&["ns0".into()]);
            text.push_str(&format!("{ns} - NS\n{ns} 192.0.2.2 A\n"));
            sets.entry((ns, RecordType::A))
                .or_default()
                .insert("192.0.2.2".into());
        }
        if let Some(cut) = &cut {
            let ns = name_of(&["ns".into(), CUT.into()]);
            text.push_str(&format!("{cut} {ns} NS\n{ns} 192.0.2.53 A\n"));
            sets.entry((cut.clone(), RecordType::NS))
                .or_default()
                .insert(ns.to_string());
        }
        let mut cnames = BTreeMap::new();
        for (k, target) in t.cnames.iter().enumerate() {
            let to = match target {
                Target::Line(i) => name_of(&t.lines[i.index(t.lines.len())].labels),
                Target::Absent(labels) => name_of(labels).prepend_label("nx1").unwrap(),
                Target::Outside => Name::from_ascii("www.example.net.").unwrap(),
            };
            // A target below the cut, or another CNAME, goes outside.
            let inside = apex.zone_of(&to)
                && !cut.as_ref().is_some_and(|c| c.zone_of(&to))
                && !owners.iter().any(|o| name_of(o) == to);
            let to = if inside {
                to.to_lowercase()
            } else {
                Name::from_ascii("www.example.net.").unwrap()
            };
            let owner = name_of(&owners[k]);
            text.push_str(&format!("{owner} {to} CNAME\n"));
            sets.entry((owner.clone(), RecordType::CNAME))
                .or_default()
                .insert(to.to_string());
            cnames.insert(owner, to);
        }
        let mut names: BTreeMap<Name, BTreeMap<RecordType, usize>> = BTreeMap::new();
        for ((n, rtype), values) in sets {
            names.entry(n).or_default().insert(rtype, values.len());
        }
        (
            text,
            Model {
                apex,
                names,
                cut,
                apex_ns: t.apex_ns,
                cnames,
            },
        )
    }

    /// Whether `n` exists: an owner or an empty non-terminal.
    fn exists(&self, n: &Name) -> bool {
        n == &self.apex
            || self
                .names
                .range(n.clone()..)
                .next()
                .is_some_and(|(k, _)| n.zone_of(k))
    }

    /// The delegation point at or above `n`, if any.
    fn cut_above(&self, n: &Name) -> Option<&Name> {
        self.cut.as_ref().filter(|c| c.zone_of(n))
    }

    /// What the answer to `q`/`t` must be.
    fn expect(&self, q: &Name, t: RecordType) -> Expect {
        if let Some(cut) = self.cut_above(q) {
            if q == cut && t == RecordType::DS {
                return Expect::NoData { wild: None };
            }
            return Expect::Referral { cut: cut.clone() };
        }
        if let Some(to) = self.cnames.get(q).filter(|_| t != RecordType::CNAME) {
            let then = self.apex.zone_of(to).then(|| Box::new(self.expect(to, t)));
            return Expect::Cname {
                target: to.clone(),
                then,
            };
        }
        if self.exists(q) {
            return if self.has(q, t) {
                Expect::Answer { wild: None }
            } else {
                Expect::NoData { wild: None }
            };
        }
        let mut ce = q.base_name();
        while !self.exists(&ce) {
            ce = ce.base_name();
        }
        let w = ce.prepend_label("*").unwrap();
        if !self.names.contains_key(&w) {
            Expect::NxDomain { ce }
        } else if self.has(&w, t) {
            Expect::Answer { wild: Some(w) }
        } else {
            Expect::NoData { wild: Some(w) }
        }
    }

    fn has(&self, n: &Name, t: RecordType) -> bool {
        if n == &self.apex {
            return matches!(t, RecordType::SOA | RecordType::DNSKEY)
                || (t == RecordType::NS && self.apex_ns);
        }
        self.names.get(n).is_some_and(|ts| ts.contains_key(&t))
    }
}

/// What an answer must prove.
#[derive(Debug, Clone)]
enum Expect {
    /// The RRset asked, from the name or expanded from wildcard `wild`.
    Answer { wild: Option<Name> },
    /// No such type at the name, or at the wildcard `wild` it matched.
    NoData { wild: Option<Name> },
    /// No such name: `ce` is its closest encloser (no wildcard there).
    NxDomain { ce: Name },
    /// Below the delegation point `cut` (unsigned: no DS).
    Referral { cut: Name },
    /// A CNAME to `target`, and what `target` answers if it is in the zone.
    Cname {
        target: Name,
        then: Option<Box<Expect>>,
    },
}

// ---------------------------------------------------------------------------
// Checking one answer
// ---------------------------------------------------------------------------

/// The zone's keys, their own signature verified.
struct Keys(Vec<DNSKEY>);

fn rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// `records` (an RRset of `owner`) verified by one of `keys` through
/// `sig`; why not, if not.
fn verify(keys: &[DNSKEY], owner: &Name, sig: &RRSIG, records: &[&Record]) -> Result<(), String> {
    let input = sig.input();
    let t = now();
    if input.sig_inception.get() > t || input.sig_expiration.get() < t {
        return Err(format!(
            "{owner} RRSIG({}) not valid now",
            input.type_covered
        ));
    }
    if input.signer_name != Name::from_ascii(ORIGIN).unwrap() {
        return Err(format!("{owner}: signer {}", input.signer_name));
    }
    let key = keys
        .iter()
        .find(|k| {
            k.calculate_key_tag().ok() == Some(input.key_tag) && k.algorithm() == input.algorithm
        })
        .ok_or_else(|| {
            format!(
                "{owner} RRSIG({}): no key {}",
                input.type_covered, input.key_tag
            )
        })?;
    key.verify_rrsig(owner, DNSClass::IN, sig, records.iter().copied())
        .map_err(|e| format!("{owner} RRSIG({}) does not verify: {e}", input.type_covered))
}

/// Every RRset of `section` has a verifying RRSIG (`unsigned` aside), and
/// every RRSIG there verifies; the labels field of each RRSIG per owner.
fn check_signatures(
    keys: &[DNSKEY],
    section: &[Record],
    unsigned: Option<(&Name, RecordType)>,
) -> Result<BTreeMap<(Name, RecordType), u8>, String> {
    let mut sets: BTreeMap<(Name, RecordType), Vec<&Record>> = BTreeMap::new();
    let mut sigs: Vec<&Record> = Vec::new();
    for r in section {
        match r.record_type() {
            RecordType::RRSIG => sigs.push(r),
            t => sets.entry((r.name.to_lowercase(), t)).or_default().push(r),
        }
    }
    let mut labels = BTreeMap::new();
    for s in &sigs {
        let sig = rrsig(s).ok_or("an RRSIG hickory cannot read")?;
        let key = (s.name.to_lowercase(), sig.input().type_covered);
        let set = sets
            .get(&key)
            .ok_or_else(|| format!("{} RRSIG({}) without its RRset", key.0, key.1))?;
        if s.ttl > set[0].ttl || sig.input().original_ttl < set[0].ttl {
            return Err(format!("{} RRSIG({}) TTL {}", key.0, key.1, s.ttl));
        }
        verify(keys, &key.0, sig, set)?;
        labels.insert(key, sig.input().num_labels);
    }
    for (n, t) in sets.keys() {
        let exempt = unsigned.is_some_and(|(un, ut)| un == n && ut == *t);
        if !exempt && !labels.contains_key(&(n.clone(), *t)) {
            return Err(format!("{n} {t} has no RRSIG"));
        }
    }
    Ok(labels)
}

/// The NSEC records of a section.
fn nsecs(section: &[Record]) -> Vec<(Name, &NSEC)> {
    section
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((r.name.to_lowercase(), n)),
            _ => None,
        })
        .collect()
}

/// Whether the NSEC at `owner` covers `q` (RFC 4034 §6.1 order; the last
/// NSEC points back to the apex).
fn nsec_covers(owner: &Name, nsec: &NSEC, q: &Name) -> bool {
    let next = nsec.next_domain_name().to_lowercase();
    owner < q && (q < &next || next <= *owner)
}

/// The NSEC3 records of a section: owner hash, record.
fn nsec3s(section: &[Record]) -> Result<Vec<(Vec<u8>, &NSEC3)>, String> {
    let mut out = Vec::new();
    for r in section {
        if let RData::DNSSEC(DNSSECRData::NSEC3(n)) = &r.data {
            let label = r.name.iter().next().ok_or("NSEC3 at the root")?;
            let hash = data_encoding::BASE32HEX_NOPAD
                .decode(&label.to_ascii_uppercase())
                .map_err(|e| format!("NSEC3 owner {}: {e}", r.name))?;
            if n.iterations() != 0 || !n.salt().is_empty() || n.opt_out() {
                return Err(format!("NSEC3 {} not per RFC 9276: {n}", r.name));
            }
            out.push((hash, n));
        }
    }
    Ok(out)
}

fn hash(n: &Name) -> Vec<u8> {
    Nsec3HashAlgorithm::SHA1
        .hash(&[], n, 0)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The NSEC3 matching `n`.
fn nsec3_match<'a>(set: &[(Vec<u8>, &'a NSEC3)], n: &Name) -> Option<&'a NSEC3> {
    let h = hash(n);
    set.iter().find(|(o, _)| *o == h).map(|(_, r)| *r)
}

/// Whether some NSEC3 covers `n` (strictly, on the ring).
fn nsec3_covers(set: &[(Vec<u8>, &NSEC3)], n: &Name) -> bool {
    let h = hash(n);
    set.iter().any(|(o, r)| {
        let next = r.next_hashed_owner_name();
        if o.as_slice() < next {
            o < &h && h.as_slice() < next
        } else {
            o < &h || h.as_slice() < next
        }
    })
}

/// A delegation without DS: the bitmap of its NSEC or NSEC3 (`what`) has
/// NS, and neither DS nor SOA.
fn unsigned_cut(types: impl Iterator<Item = RecordType>, what: &str) -> Result<(), String> {
    let types: BTreeSet<_> = types.collect();
    (types.contains(&RecordType::NS)
        && !types.contains(&RecordType::DS)
        && !types.contains(&RecordType::SOA))
    .then_some(())
    .ok_or(format!("{what} lists {types:?}"))
}

/// The denial proofs of `expect` in `auth` (NSEC or NSEC3).
fn check_proofs(
    auth: &[Record],
    q: &Name,
    t: RecordType,
    expect: &Expect,
    nsec3: bool,
) -> Result<(), String> {
    let lacks = |types: &mut dyn Iterator<Item = RecordType>, ts: &[RecordType]| {
        let have: BTreeSet<_> = types.collect();
        ts.iter().all(|t| !have.contains(t))
    };
    if nsec3 {
        let set = nsec3s(auth)?;
        // The closest-encloser proof for `q` with encloser `ce`.
        let ce_proof = |ce: &Name| -> Result<(), String> {
            let next_closer = q.trim_to(usize::from(ce.num_labels()) + 1);
            if nsec3_match(&set, ce).is_none() {
                return Err(format!("no NSEC3 matches the closest encloser {ce}"));
            }
            if !nsec3_covers(&set, &next_closer) {
                return Err(format!(
                    "no NSEC3 covers the next closer name {next_closer}"
                ));
            }
            Ok(())
        };
        match expect {
            // A CNAME's target is checked on its own.
            Expect::Answer { wild: None } | Expect::Cname { .. } => Ok(()),
            Expect::Answer { wild: Some(w) } => {
                let next_closer = q.trim_to(usize::from(w.num_labels()) + 1);
                nsec3_covers(&set, &next_closer)
                    .then_some(())
                    .ok_or(format!(
                        "no NSEC3 covers the next closer name {next_closer}"
                    ))
            }
            Expect::NoData { wild } => {
                let at = wild.as_ref().unwrap_or(q);
                if let Some(w) = wild {
                    ce_proof(&w.base_name())?;
                }
                let m = nsec3_match(&set, at).ok_or(format!("no NSEC3 matches {at}"))?;
                lacks(&mut m.type_bit_maps(), &[t, RecordType::CNAME])
                    .then_some(())
                    .ok_or(format!("the NSEC3 of {at} lists {t} or CNAME"))
            }
            Expect::NxDomain { ce } => {
                ce_proof(ce)?;
                let w = ce.prepend_label("*").unwrap();
                nsec3_covers(&set, &w)
                    .then_some(())
                    .ok_or(format!("no NSEC3 covers the wildcard {w}"))
            }
            Expect::Referral { cut } => {
                let m = nsec3_match(&set, cut).ok_or(format!("no NSEC3 matches the cut {cut}"))?;
                unsigned_cut(m.type_bit_maps(), &format!("the NSEC3 of the cut {cut}"))
            }
        }
    } else {
        let set = nsecs(auth);
        let covered = |n: &Name| set.iter().any(|(o, r)| nsec_covers(o, r, n));
        let need_cover = |n: &Name| {
            covered(n)
                .then_some(())
                .ok_or(format!("no NSEC covers {n}"))
        };
        match expect {
            // A CNAME's target is checked on its own.
            Expect::Answer { wild: None } | Expect::Cname { .. } => Ok(()),
            Expect::Answer { wild: Some(_) } => need_cover(q),
            Expect::NoData { wild: Some(w) } => {
                need_cover(q)?;
                let (_, m) = set
                    .iter()
                    .find(|(o, _)| o == w)
                    .ok_or(format!("no NSEC at the wildcard {w}"))?;
                lacks(&mut m.type_bit_maps(), &[t, RecordType::CNAME])
                    .then_some(())
                    .ok_or(format!("the NSEC of {w} lists {t} or CNAME"))
            }
            Expect::NoData { wild: None } => match set.iter().find(|(o, _)| o == q) {
                Some((_, m)) => lacks(&mut m.type_bit_maps(), &[t, RecordType::CNAME])
                    .then_some(())
                    .ok_or(format!("the NSEC of {q} lists {t} or CNAME")),
                // An empty non-terminal: the NSEC before it points below it.
                None => set
                    .iter()
                    .any(|(o, r)| {
                        nsec_covers(o, r, q) && q.zone_of(&r.next_domain_name().to_lowercase())
                    })
                    .then_some(())
                    .ok_or(format!("no NSEC at {q} nor one proving it empty")),
            },
            Expect::NxDomain { ce } => {
                need_cover(q)?;
                need_cover(&ce.prepend_label("*").unwrap())
            }
            Expect::Referral { cut } => {
                let (_, m) = set
                    .iter()
                    .find(|(o, _)| o == cut)
                    .ok_or(format!("no NSEC at the cut {cut}"))?;
                unsigned_cut(m.type_bit_maps(), &format!("the NSEC of the cut {cut}"))
            }
        }
    }
}

/// Checks the answer `m` to `q`/`t` against the model and the keys; the
/// kind of answer it was ([`KINDS`]).
fn check_answer(
    keys: &Keys,
    model: &Model,
    m: &Message,
    q: &Name,
    t: RecordType,
    nsec3: bool,
) -> Result<usize, String> {
    let expect = model.expect(q, t);
    // A CNAME's RRset first, then what its target answers (`None` outside).
    let (cname, q, expect) = match &expect {
        Expect::Cname { target, then } => (Some(q), target, then.as_deref()),
        e => (None, q, Some(e)),
    };
    let kind = match expect {
        _ if cname.is_some() => 6,
        Some(Expect::Answer { wild: None }) => 0,
        Some(Expect::Answer { wild: Some(_) }) => 1,
        Some(Expect::NoData { wild: None }) => 2,
        Some(Expect::NoData { wild: Some(_) }) => 3,
        Some(Expect::NxDomain { .. }) => 4,
        Some(Expect::Referral { .. }) => 5,
        None | Some(Expect::Cname { .. }) => unreachable!("only a CNAME points outside; no chains"),
    };
    let md = &m.metadata;
    let dnssec_ok = m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    if !dnssec_ok || md.authentic_data || md.checking_disabled {
        return Err("DO not echoed, or AD/CD set".into());
    }
    let (rcode, aa) = match expect {
        Some(Expect::NxDomain { .. }) => (ResponseCode::NXDomain, true),
        Some(Expect::Referral { .. }) => (ResponseCode::NoError, false),
        _ => (ResponseCode::NoError, true),
    };
    if md.response_code != rcode || md.authoritative != aa {
        return Err(format!(
            "expected {expect:?}: rcode {} AA {}",
            md.response_code, md.authoritative
        ));
    }
    let answer_labels = check_signatures(&keys.0, &m.answers, None)?;
    let referral_ns = match expect {
        Some(Expect::Referral { cut }) => Some((cut, RecordType::NS)),
        _ => None,
    };
    check_signatures(&keys.0, &m.authorities, referral_ns)?;
    if let Some(owner) = cname {
        let labels = answer_labels.get(&(owner.clone(), RecordType::CNAME));
        let to = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name == *owner => Some(c.0.clone()),
            _ => None,
        });
        if labels != Some(&owner.num_labels()) || to.as_ref() != Some(q) {
            return Err(format!("the CNAME to {q}: {to:?}, RRSIG labels {labels:?}"));
        }
    }
    let beside_cname = |r: &Record| {
        cname.is_some_and(|o| r.name == *o)
            && matches!(r.record_type(), RecordType::CNAME | RecordType::RRSIG)
    };
    match expect {
        Some(Expect::Answer { wild }) => {
            let want = if q == &model.apex {
                None
            } else {
                model
                    .names
                    .get(wild.as_ref().unwrap_or(q))
                    .and_then(|ts| ts.get(&t))
                    .copied()
            };
            let got = m.answers.iter().filter(|r| r.record_type() == t).count();
            if want.is_some_and(|w| w != got) || got == 0 {
                return Err(format!("{got} {t} records, the table has {want:?}"));
            }
            let want_labels = wild.as_ref().unwrap_or(q).num_labels();
            let labels = answer_labels.get(&(q.clone(), t));
            if labels != Some(&want_labels) {
                return Err(format!("RRSIG labels {labels:?}, not {want_labels}"));
            }
        }
        _ => {
            if !m.answers.iter().all(beside_cname) {
                return Err(format!("expected {expect:?}, got answers"));
            }
        }
    }
    let Some(expect) = expect else {
        return Ok(kind);
    };
    if matches!(expect, Expect::NoData { .. } | Expect::NxDomain { .. })
        && !m
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    {
        return Err("a negative answer without the SOA".into());
    }
    check_proofs(&m.authorities, q, t, expect, nsec3)
        .map_err(|e| format!("expected {expect:?}: {e}"))?;
    Ok(kind)
}

// ---------------------------------------------------------------------------
// Asking
// ---------------------------------------------------------------------------

/// The UDP payload sizes the questions offer, in turn by ID.
const PAYLOADS: [u16; 3] = [4096, 1232, 512];
/// Answers that came truncated over UDP and were asked again over TCP
/// (an answer without TC=1 must hold every RRSIG and proof).
static TRUNCATED: AtomicU64 = AtomicU64::new(0);

/// `q`/`t` with DO=1 over UDP (the payload [`PAYLOADS`] picks by `id`),
/// over TCP if truncated.
async fn ask(addr: SocketAddr, q: &Name, t: RecordType, id: u16) -> Result<Message, String> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(q.clone(), t));
    let mut e = Edns::new();
    e.set_max_payload(PAYLOADS[usize::from(id) % PAYLOADS.len()]);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    let a = kit::udp_exchange(addr, &m, WAIT)
        .await
        .ok_or(format!("{q} {t}: no answer over UDP"))?;
    if !a.metadata.truncation {
        return Ok(a);
    }
    TRUNCATED.fetch_add(1, Relaxed);
    let a = kit::tcp(addr, &m).await;
    Ok(a)
}

/// The zone's DNSKEY set, its RRSIG verified by one of its keys.
async fn fetch_keys(addr: SocketAddr) -> Result<Keys, String> {
    let apex = Name::from_ascii(ORIGIN).unwrap();
    let m = ask(addr, &apex, RecordType::DNSKEY, 1).await?;
    let keys: Vec<DNSKEY> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(format!("no DNSKEY: {}", kit::show(&m)));
    }
    check_signatures(&keys, &m.answers, None).map_err(|e| format!("the DNSKEY set: {e}"))?;
    Ok(Keys(keys))
}

/// Every question of table `t`: each owner with its types and one other,
/// each empty non-terminal, names not in the table, the apex's sets.
fn questions(t: &Table, model: &Model) -> Vec<(Name, RecordType)> {
    let other = OTHER_TYPES[t.other_type % OTHER_TYPES.len()];
    let mut out: Vec<(Name, RecordType)> = [RecordType::SOA, RecordType::NS, other]
        .into_iter()
        .map(|ty| (model.apex.clone(), ty))
        .collect();
    let mut ents = BTreeSet::new();
    for (n, types) in &model.names {
        for ty in types.keys() {
            out.push((n.clone(), *ty));
        }
        out.push((n.clone(), other));
        if n.is_wildcard() {
            // An expansion, a name below it, and a label beside the wildcard.
            let base = n.base_name();
            out.push((base.prepend_label("wx").unwrap(), RecordType::A));
            out.push((base.prepend_label("wx").unwrap(), other));
            out.push((
                base.prepend_label("deep")
                    .unwrap()
                    .prepend_label("wy")
                    .unwrap(),
                RecordType::TXT,
            ));
        }
        let mut p = n.base_name();
        while p.num_labels() > model.apex.num_labels() {
            if !model.names.contains_key(&p) {
                ents.insert(p.clone());
            }
            p = p.base_name();
        }
    }
    for owner in model.cnames.keys() {
        for ty in [RecordType::A, RecordType::AAAA, RecordType::TXT, other] {
            out.push((owner.clone(), ty));
        }
    }
    if let Some(cut) = &model.cut {
        out.push((cut.clone(), RecordType::DS));
        out.push((cut.prepend_label("deeper").unwrap(), RecordType::A));
    }
    for e in ents {
        out.push((e, RecordType::A));
    }
    for a in &t.absent {
        let n = name_of(a).to_lowercase();
        out.push((n.prepend_label("nx0").unwrap(), RecordType::A));
        out.push((n, RecordType::AAAA));
    }
    out
}

/// A TS serving table `t` signed with `algorithm`/`denial` (its keys made
/// in the folder returned with it), and the model of the zone.
async fn serve(t: &Table, algorithm: DnssecAlgorithm, denial: Denial) -> (TestTs, ZoneDir, Model) {
    let (text, model) = Model::new(t);
    let dir = ZoneDir::new();
    let file = dir.write("t.txt", &text);
    let mut s = kit::ts_settings(vec![file]);
    s.origin = model.apex.clone();
    s.dnssec = Some(Dnssec {
        keys: dir.path().join("keys"),
        algorithm,
        denial,
    });
    (kit::start_ts(s).await, dir, model)
}

/// Serves table `t` signed with `algorithm`/`denial` and checks the
/// answer to every question.
async fn check_table(
    t: Table,
    algorithm: DnssecAlgorithm,
    denial: Denial,
    checked: &Checked,
) -> Result<(), TestCaseError> {
    let (ts, _dir, model) = serve(&t, algorithm, denial).await;
    let result = async {
        let keys = fetch_keys(ts.addr).await?;
        let qs = questions(&t, &model);
        // A few at a time: a burst of hundreds would overflow the socket.
        let spelled: Vec<Name> = qs
            .iter()
            .enumerate()
            .map(|(i, (q, _))| {
                let mask = t.case.rotate_left(i as u32 % 64);
                Name::from_ascii(case_mix(&q.to_string(), mask)).unwrap()
            })
            .collect();
        let answers: Vec<_> = futures_util::stream::iter(
            qs.iter()
                .zip(&spelled)
                .enumerate()
                .map(|(i, ((_, ty), q))| ask(ts.addr, q, *ty, 2 + i as u16)),
        )
        .buffered(16)
        .collect()
        .await;
        for ((q, ty), a) in qs.iter().zip(answers) {
            let a = a?;
            let kind = check_answer(&keys, &model, &a, q, *ty, denial == Denial::Nsec3)
                .map_err(|e| format!("{q} {ty}: {e}\n{}", kit::show(&a)))?;
            checked[kind].fetch_add(1, Relaxed);
        }
        Ok::<_, String>(())
    }
    .await;
    ts.stop().await;
    result.map_err(TestCaseError::fail)
}

/// Runs [`CASES`] tables (or `PROPTEST_CASES`) through [`check_table`]
/// under `algorithm`/`denial`, from the seed `SIGNED_PROP_SEED` or a fresh
/// one, which a failure names (with the algorithm and denial).
fn run(algorithm: DnssecAlgorithm, denial: Denial) {
    let seed: u64 = std::env::var("SIGNED_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let checked: Checked = Default::default();
    let result = runner.run(&table(), |t| {
        rt.block_on(check_table(t, algorithm, denial, &checked))
    });
    let counts: Vec<String> = KINDS
        .iter()
        .zip(&checked)
        .map(|(k, n)| format!("{} {k}", n.load(Relaxed)))
        .collect();
    eprintln!(
        "{algorithm:?} {denial:?}: answers checked: {} (truncated over UDP so far: {})",
        counts.join(", "),
        TRUNCATED.load(Relaxed)
    );
    if let Err(e) = result {
        panic!("{algorithm:?} {denial:?}, seed {seed} (SIGNED_PROP_SEED={seed} replays it): {e}");
    }
}

/// Every algorithm with every denial, one after the other (each run's
/// seed of its own).
#[test]
fn random_tables_signed_by_the_ts_verify_under_each_algorithm_and_denial() {
    for algorithm in [DnssecAlgorithm::EcdsaP256Sha256, DnssecAlgorithm::Ed25519] {
        for denial in [Denial::Nsec, Denial::Nsec3] {
            run(algorithm, denial);
        }
    }
}

/// `m` with the first byte of its first RRSIG's signature flipped.
fn flip_a_signature(m: &Message) -> Message {
    let mut m = m.clone();
    let r = m
        .answers
        .iter_mut()
        .chain(m.authorities.iter_mut())
        .find(|r| rrsig(r).is_some())
        .expect("an RRSIG");
    let sig = rrsig(r).unwrap();
    let mut bytes = sig.sig().to_vec();
    bytes[0] ^= 0x01;
    r.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
        sig.input().clone(),
        bytes,
    )));
    m
}

/// `m` without its NSEC and NSEC3 records (and their RRSIGs).
fn drop_proofs(m: &Message) -> Message {
    let mut m = m.clone();
    let denial = |t: RecordType| matches!(t, RecordType::NSEC | RecordType::NSEC3);
    m.authorities.retain(|r| {
        !denial(r.record_type()) && !rrsig(r).is_some_and(|s| denial(s.input().type_covered))
    });
    m
}

/// The checks above can fail: answers that pass as served fail once one
/// RRSIG has a byte flipped, once their NSEC/NSEC3 proofs are taken out,
/// and when checked against another zone's keys (same algorithm, same
/// table, keys made anew), for each denial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_reject_a_flipped_signature_a_missing_proof_and_other_keys() {
    let line = |labels: &[&str], value: &str, rtype| Line {
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        value: value.into(),
        rtype,
    };
    let t = Table {
        lines: vec![
            line(&["www"], "192.0.2.1", "A"),
            line(&["*", "w"], "\"hi\"", "TXT"),
            line(&["a", "b", "c"], "2001:db8::1", "AAAA"),
        ],
        apex_ns: true,
        delegation: true,
        absent: Vec::new(),
        other_type: 0,
        // c0.sgn.test CNAME nx1.zz.sgn.test (no such name).
        cnames: vec![Target::Absent(vec!["zz".into()])],
        case: 0,
    };
    let n = |s: &str| Name::from_ascii(s).unwrap();
    let asks = [
        (n("www.sgn.test."), RecordType::A),
        (n("x.w.sgn.test."), RecordType::TXT),
        (n("x.w.sgn.test."), RecordType::A),
        (n("b.c.sgn.test."), RecordType::A),
        (n("www.sgn.test."), RecordType::MX),
        (n("nx.sgn.test."), RecordType::A),
        (n("host.dlg.sgn.test."), RecordType::A),
        (n("c0.sgn.test."), RecordType::A),
    ];
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let alg = DnssecAlgorithm::EcdsaP256Sha256;
        let (ts, _dir, model) = serve(&t, alg, denial).await;
        let (other, _other_dir, _) = serve(&t, alg, denial).await;
        let keys = fetch_keys(ts.addr).await.unwrap();
        let other_keys = fetch_keys(other.addr).await.unwrap();
        let nsec3 = denial == Denial::Nsec3;
        for (i, (q, ty)) in asks.iter().enumerate() {
            let a = ask(ts.addr, q, *ty, 100 + i as u16).await.unwrap();
            let what = format!("{denial:?} {q} {ty}: {}", kit::show(&a));
            let kind = check_answer(&keys, &model, &a, q, *ty, nsec3)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let flipped = check_answer(&keys, &model, &flip_a_signature(&a), q, *ty, nsec3);
            assert!(
                flipped
                    .as_ref()
                    .is_err_and(|e| e.contains("does not verify")),
                "{what}: a flipped signature passed: {flipped:?}"
            );
            let foreign = check_answer(&other_keys, &model, &a, q, *ty, nsec3);
            assert!(foreign.is_err(), "{what}: other keys passed");
            if KINDS[kind] != "positive" {
                let bare = check_answer(&keys, &model, &drop_proofs(&a), q, *ty, nsec3);
                assert!(bare.is_err(), "{what}: no proof passed");
            }
        }
        other.stop().await;
        ts.stop().await;
    }
}

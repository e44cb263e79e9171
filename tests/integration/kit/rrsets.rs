//! Two DNS answers compared as a resolver sees them, for differential tests:
//! the rcode, the flags AA/TC/AD/CD, the OPT (payload size, version, DO,
//! options) and each section as a set of RRsets (owner in lower case, class,
//! type, TTL, the set of rdata; order within a section aside; an RRSIG is
//! grouped with the type it covers). A difference is named field by field,
//! and [`dig`] prints an answer section by section, DNSSEC records in
//! presentation format, so a failure says exactly what differs. DNSSEC rdata
//! is read from its wire bytes whether hickory decoded it (its `dnssec`
//! features, on for the tests) or kept it opaque.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use data_encoding::{BASE32HEX_NOPAD, BASE64, HEXUPPER};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable as _;

/// An RRset's key: owner (lower case), class, type (`RRSIG(A)` for the
/// signatures of the A RRset).
pub type RrsetKey = (String, String, String);

/// An RRset's TTLs (one, unless its records disagree) and rdata.
pub type RrsetData = (BTreeSet<u32>, BTreeSet<String>);

/// One section as a set of RRsets.
pub type Section = BTreeMap<RrsetKey, RrsetData>;

/// The OPT record of an answer, apart from the sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptView {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Options as `code=hex`.
    pub options: BTreeSet<String>,
}

/// What two answers to the same query must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerView {
    pub rcode: String,
    pub aa: bool,
    pub tc: bool,
    pub ad: bool,
    pub cd: bool,
    pub opt: Option<OptView>,
    pub answer: Section,
    pub authority: Section,
    pub additional: Section,
}

/// A reader of rdata bytes; every read is `None` past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
    /// An uncompressed name (DNSSEC rdata names are never compressed).
    fn name(&mut self) -> Option<String> {
        let mut s = String::new();
        loop {
            let len = usize::from(self.u8()?);
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            for &c in self.take(len)? {
                match c {
                    b'.' | b'\\' => write!(s, "\\{}", char::from(c)).unwrap(),
                    0x21..=0x7e => s.push(char::from(c)),
                    _ => write!(s, "\\{c:03}").unwrap(),
                }
            }
            s.push('.');
        }
        if s.is_empty() {
            s.push('.');
        }
        Some(s)
    }
    /// A type bitmap (RFC 4034 §4.1.2): the type names, space separated.
    fn types(&mut self) -> Option<String> {
        let mut names = Vec::new();
        while !self.0.is_empty() {
            let window = u16::from(self.u8()?);
            let len = usize::from(self.u8()?);
            for (i, &byte) in self.take(len)?.iter().enumerate() {
                for bit in 0..8u16 {
                    if byte & (0x80 >> bit) != 0 {
                        let code = window * 256 + u16::try_from(i).ok()? * 8 + bit;
                        names.push(RecordType::from(code).to_string());
                    }
                }
            }
        }
        Some(names.join(" "))
    }
}

/// A salt as presentation text: hex, or `-` when empty.
fn salt(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        HEXUPPER.encode(b)
    }
}

/// Presentation text of the rdata of DNSSEC type `code`, `None` if it is
/// not one or does not parse.
fn dnssec_rdata(code: RecordType, data: &[u8]) -> Option<String> {
    let mut b = Bytes(data);
    let text = match code {
        RecordType::DS | RecordType::CDS | RecordType::DNSKEY | RecordType::CDNSKEY => {
            // DS: tag, algorithm, digest type, digest in hex; DNSKEY: flags,
            // protocol, algorithm, key in base64.
            let (first, second, third) = (b.u16()?, b.u8()?, b.u8()?);
            let rest = match code {
                RecordType::DS | RecordType::CDS => HEXUPPER.encode(b.rest()),
                _ => BASE64.encode(b.rest()),
            };
            format!("{first} {second} {third} {rest}")
        }
        RecordType::RRSIG => {
            let covered = RecordType::from(b.u16()?);
            let (alg, labels, ttl) = (b.u8()?, b.u8()?, b.u32()?);
            let (expires, incepted) = (b.u32()?, b.u32()?);
            let (tag, signer) = (b.u16()?, b.name()?);
            // Times as seconds since the epoch (RFC 4034 §3.2 allows it).
            format!(
                "{covered} {alg} {labels} {ttl} {expires} {incepted} {tag} {signer} {}",
                BASE64.encode(b.rest())
            )
        }
        RecordType::NSEC => format!("{} {}", b.name()?, b.types()?),
        RecordType::NSEC3 => {
            let (alg, flags, iterations) = (b.u8()?, b.u8()?, b.u16()?);
            let salt_len = usize::from(b.u8()?);
            let salt = salt(b.take(salt_len)?);
            let hash_len = usize::from(b.u8()?);
            let next = BASE32HEX_NOPAD
                .encode(b.take(hash_len)?)
                .to_ascii_lowercase();
            format!("{alg} {flags} {iterations} {salt} {next} {}", b.types()?)
        }
        RecordType::NSEC3PARAM => {
            let (alg, flags, iterations) = (b.u8()?, b.u8()?, b.u16()?);
            let salt_len = usize::from(b.u8()?);
            format!("{alg} {flags} {iterations} {}", salt(b.take(salt_len)?))
        }
        _ => return None,
    };
    Some(text)
}

/// The presentation text of a record's rdata. Names in the rdata of the
/// types a server may compress (NS, CNAME, MX, SOA, PTR, SRV) are in lower
/// case: a server compresses them against the question, so they come back
/// in the client's spelling; DNSSEC rdata names are never compressed and
/// keep their case.
pub fn rdata_text(r: &Record) -> String {
    let text = match opaque_rdata(r) {
        Some(bytes) => dnssec_rdata(r.record_type(), &bytes)
            .unwrap_or_else(|| format!("\\# {} {}", bytes.len(), HEXUPPER.encode(&bytes))),
        None => r.data.to_string(),
    };
    match r.record_type() {
        RecordType::NS
        | RecordType::CNAME
        | RecordType::MX
        | RecordType::SOA
        | RecordType::PTR
        | RecordType::SRV => text.to_ascii_lowercase(),
        _ => text,
    }
}

/// The type an RRSIG covers, from its rdata.
fn covered(r: &Record) -> Option<RecordType> {
    if r.record_type() != RecordType::RRSIG {
        return None;
    }
    Bytes(&opaque_rdata(r)?).u16().map(RecordType::from)
}

/// The wire rdata of a record hickory kept opaque (a type it does not
/// decode) or of a DNSSEC type (which it decodes with its `dnssec`
/// features); `None` for the other types, shown as hickory writes them.
pub fn opaque_rdata(r: &Record) -> Option<Vec<u8>> {
    let dnssec = matches!(
        r.record_type(),
        RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::NSEC3
            | RecordType::NSEC3PARAM
            | RecordType::DNSKEY
            | RecordType::CDNSKEY
            | RecordType::DS
            | RecordType::CDS
    );
    match &r.data {
        RData::Unknown { rdata, .. } => Some(rdata.anything.clone()),
        data if dnssec => data.to_bytes().ok(),
        _ => None,
    }
}

/// The type column of an RRset key: `RRSIG(A)` for the signatures of A.
fn type_column(r: &Record) -> String {
    match covered(r) {
        Some(t) => format!("RRSIG({t})"),
        None => r.record_type().to_string(),
    }
}

/// `records` as a set of RRsets.
pub fn section(records: &[Record]) -> Section {
    let mut s = Section::new();
    for r in records {
        let key = (
            r.name.to_ascii().to_ascii_lowercase(),
            r.dns_class.to_string(),
            type_column(r),
        );
        let entry = s.entry(key).or_default();
        entry.0.insert(r.ttl);
        entry.1.insert(rdata_text(r));
    }
    s
}

/// The comparable parts of `m`.
pub fn answer_view(m: &Message) -> AnswerView {
    let md = &m.metadata;
    let opt = m.edns.as_ref().map(|e| OptView {
        payload: e.max_payload(),
        version: e.version(),
        dnssec_ok: e.flags().dnssec_ok,
        options: e
            .options()
            .as_ref()
            .iter()
            .map(|(code, opt)| format!("{}={opt:?}", u16::from(*code)))
            .collect(),
    });
    AnswerView {
        rcode: md.response_code.to_string(),
        aa: md.authoritative,
        tc: md.truncation,
        ad: md.authentic_data,
        cd: md.checking_disabled,
        opt,
        answer: section(&m.answers),
        authority: section(&m.authorities),
        additional: section(&m.additionals),
    }
}

/// The RRsets of one section that differ: each as `-` (only in `a`) or `+`
/// (only in `b`) lines.
fn section_diff(a: &Section, b: &Section) -> String {
    let mut s = String::new();
    let keys: BTreeSet<&RrsetKey> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        for (sign, side) in [('-', x), ('+', y)] {
            match side {
                None => writeln!(s, "      {sign} {} {} {}: absent", k.0, k.1, k.2).unwrap(),
                Some((ttls, rdata)) => {
                    for d in rdata {
                        writeln!(s, "      {sign} {} {ttls:?} {} {} {d}", k.0, k.1, k.2).unwrap();
                    }
                }
            }
        }
    }
    s
}

/// What differs between `a` and `b`, one line (or block) per field; empty
/// when they agree. When both are truncated (TC=1) their sections are not
/// compared: servers may keep different parts of a message that does not
/// fit, and the client asks again over TCP.
pub fn differences(a: &AnswerView, b: &AnswerView) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            d.push(format!("{name}: {x} vs {y}"));
        }
    };
    field("rcode", a.rcode.clone(), b.rcode.clone());
    field("aa", a.aa.to_string(), b.aa.to_string());
    field("tc", a.tc.to_string(), b.tc.to_string());
    field("ad", a.ad.to_string(), b.ad.to_string());
    field("cd", a.cd.to_string(), b.cd.to_string());
    field("opt", format!("{:?}", a.opt), format!("{:?}", b.opt));
    if a.tc && b.tc {
        return d;
    }
    for (name, x, y) in [
        ("answer", &a.answer, &b.answer),
        ("authority", &a.authority, &b.authority),
        ("additional", &a.additional, &b.additional),
    ] {
        if x != y {
            d.push(format!("{name} section:\n{}", section_diff(x, y)));
        }
    }
    d
}

/// One record, `dig`-like: `owner TTL CLASS TYPE RDATA`.
pub fn dig_record(r: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        rdata_text(r)
    )
}

/// `m` printed like `dig`: header, flags, OPT, then each section.
pub fn dig(m: &Message) -> String {
    let md = &m.metadata;
    let mut flags = Vec::new();
    for (on, name) in [
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
        (md.authentic_data, "ad"),
        (md.checking_disabled, "cd"),
    ] {
        if on {
            flags.push(name);
        }
    }
    let mut s = format!(
        "    ;; status: {}, id: {}, flags: {}\n",
        md.response_code,
        md.id,
        flags.join(" ")
    );
    if let Some(e) = &m.edns {
        writeln!(
            s,
            "    ;; OPT: version {}, udp {}, flags:{}",
            e.version(),
            e.max_payload(),
            if e.flags().dnssec_ok { " do" } else { "" }
        )
        .unwrap();
    }
    for q in &m.queries {
        writeln!(s, "    ;; QUESTION: {} {}", q.name(), q.query_type()).unwrap();
    }
    for (tag, rs) in [
        ("ANSWER", &m.answers),
        ("AUTHORITY", &m.authorities),
        ("ADDITIONAL", &m.additionals),
    ] {
        if !rs.is_empty() {
            writeln!(s, "    ;; {tag}").unwrap();
            for r in rs {
                writeln!(s, "    {}", dig_record(r)).unwrap();
            }
        }
    }
    s
}

/// One record as `owner TTL TYPE DATA`, names (and the data of the types
/// a server may compress) lower-cased, for comparing two servers' answers.
pub fn record_text(r: &Record) -> String {
    // Names are compared without case: DNS names are case-insensitive
    // (RFC 4343), and NSD compresses owner and RDATA names against the
    // question, so they come back in the client's spelling (`ns1.DIFF.TEST.`)
    // while the TS writes them as stored. The echo of the question's case is
    // checked separately. TXT (and other non-name) data keeps its case.
    let data = r.data.to_string();
    let data = match r.record_type() {
        RecordType::NS
        | RecordType::CNAME
        | RecordType::MX
        | RecordType::SOA
        | RecordType::PTR
        | RecordType::SRV => data.to_ascii_lowercase(),
        _ => data,
    };
    format!(
        "{} {} {} {data}",
        r.name.to_ascii().to_ascii_lowercase(),
        r.ttl,
        r.record_type(),
    )
}

/// An answer, header and sections, one record a line, for a failure message.
pub fn show_sections(m: &Message) -> String {
    let md = &m.metadata;
    let mut s = format!(
        "    id={} rcode={} aa={} tc={} qr={:?} edns={:?}\n",
        md.id,
        md.response_code,
        md.authoritative,
        md.truncation,
        md.message_type,
        m.edns.as_ref().map(|e| e.max_payload())
    );
    for q in &m.queries {
        writeln!(s, "    Q  {} {}", q.name().to_ascii(), q.query_type()).unwrap();
    }
    for (tag, rs) in [
        ("AN", &m.answers),
        ("NS", &m.authorities),
        ("AR", &m.additionals),
    ] {
        for r in rs {
            writeln!(
                s,
                "    {tag} {} {} {} {}",
                r.name,
                r.ttl,
                r.record_type(),
                r.data
            )
            .unwrap();
        }
    }
    s
}

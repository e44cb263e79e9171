//! DNS messages on the wire for qload: the queries of a dnsperf-format file
//! ("name TYPE" a line) built once, with the DNS ID 0, and an answer sorted
//! into what the load counts (answered, another rcode, not an answer: an
//! answer must carry its query's ID and question, the name in any case).
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hyper::body::Bytes;

/// The queries of `path`, each a whole message with ID 0 and RD set, in
/// the file's order. Blank lines and `;`/`#` comments are passed over.
pub(crate) fn load_queries(path: &Path) -> anyhow::Result<Vec<Bytes>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), ty) = (words.next(), words.next().unwrap_or("A")) else {
            continue;
        };
        let q = query(name, ty).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.push(q);
    }
    if out.is_empty() {
        bail!("{}: no queries", path.display());
    }
    Ok(out)
}

/// One query for `name` `ty` (a mnemonic such as `AAAA`, or `TYPE65`).
pub(crate) fn query(name: &str, ty: &str) -> anyhow::Result<Bytes> {
    let name = Name::from_ascii(name).with_context(|| format!("name {name:?}"))?;
    let ty = RecordType::from_str(&ty.to_ascii_uppercase())
        .ok()
        .or_else(|| {
            ty.to_ascii_uppercase()
                .strip_prefix("TYPE")
                .and_then(|n| n.parse::<u16>().ok())
                .map(RecordType::from)
        })
        .with_context(|| format!("type {ty:?}"))?;
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, ty));
    Ok(Bytes::from(m.to_vec().context("encoding a query")?))
}

/// What an answer counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// NOERROR or NXDOMAIN.
    Answered,
    /// Any other rcode (SERVFAIL, REFUSED, FORMERR, ...).
    OtherRcode,
    /// Not an answer to the query: too short, QR clear, another ID, not
    /// one question, or another question than the query's.
    Bad,
}

/// The one question of `msg` (its name, uncompressed, then type and class),
/// as it lies on the wire; `None` when the message has not exactly one or it
/// does not parse.
fn question(msg: &[u8]) -> Option<&[u8]> {
    let head = msg.first_chunk::<12>()?;
    if u16::from_be_bytes([head[4], head[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*msg.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    msg.get(12..at + 4)
}

/// Whether `a` and `b` are the same question: the name in any ASCII case
/// (label lengths are below 64, so folding leaves them be), type and class
/// exactly.
fn same_question(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && {
        let (name_a, tail_a) = a.split_at(a.len() - 4);
        let (name_b, tail_b) = b.split_at(b.len() - 4);
        name_a.eq_ignore_ascii_case(name_b) && tail_a == tail_b
    }
}

/// `answer` judged against its `query` and the ID `id` the query carried.
pub(crate) fn verdict(answer: &[u8], query: &[u8], id: u16) -> Verdict {
    let Some(head) = answer.first_chunk::<12>() else {
        return Verdict::Bad;
    };
    if u16::from_be_bytes([head[0], head[1]]) != id || head[2] & 0x80 == 0 {
        return Verdict::Bad;
    }
    match (question(answer), question(query)) {
        (Some(a), Some(q)) if same_question(a, q) => {}
        _ => return Verdict::Bad,
    }
    match head[3] & 0x0f {
        0 | 3 => Verdict::Answered,
        _ => Verdict::OtherRcode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_has_id_zero_rd_and_its_question() {
        let q = query("host1.bench.test", "aaaa").expect("query");
        assert_eq!(&q[..4], &[0, 0, 0x01, 0x00]);
        assert_eq!(&q[4..6], &[0, 1]);
        assert_eq!(&q[q.len() - 4..], &[0, 28, 0, 1]);
        assert!(query("x.test", "TYPE65").is_ok());
        assert!(query("x.test", "NOPE").is_err());
    }

    /// The answer to `q`: its bytes with QR set and `rcode`.
    fn answer_to(q: &[u8], rcode: u8) -> Vec<u8> {
        let mut a = q.to_vec();
        a[2] |= 0x80;
        a[3] = (a[3] & 0xf0) | rcode;
        a
    }

    #[test]
    fn answers_are_sorted_by_rcode_and_id() {
        let q = query("www.example.com", "A").expect("query");
        let mut a = answer_to(&q, 0);
        assert_eq!(verdict(&a, &q, 0), Verdict::Answered);
        a[3] = 3;
        assert_eq!(verdict(&a, &q, 0), Verdict::Answered);
        a[3] = 2;
        assert_eq!(verdict(&a, &q, 0), Verdict::OtherRcode);
        assert_eq!(verdict(&a, &q, 7), Verdict::Bad);
        a[2] = 0x01;
        assert_eq!(verdict(&a, &q, 0), Verdict::Bad);
        assert_eq!(verdict(&a[..5], &q, 0), Verdict::Bad);
    }

    /// An answer with the right ID to another question is no answer; the
    /// name's case does not matter, its type and class do.
    #[test]
    fn an_answer_to_another_question_is_not_an_answer() {
        let q = query("www.example.com", "A").expect("query");
        let upper = answer_to(&query("WWW.Example.COM", "A").expect("query"), 0);
        assert_eq!(verdict(&upper, &q, 0), Verdict::Answered);
        for other in [
            query("wrong.invalid", "A"),
            query("www.example.org", "A"),
            query("www.example.com", "AAAA"),
        ] {
            let a = answer_to(&other.expect("query"), 0);
            assert_eq!(verdict(&a, &q, 0), Verdict::Bad);
        }
        let mut chaos = answer_to(&q, 0);
        let n = chaos.len();
        chaos[n - 1] = 3;
        assert_eq!(verdict(&chaos, &q, 0), Verdict::Bad, "another class");
        let mut none = answer_to(&q, 0);
        none[5] = 0;
        assert_eq!(verdict(&none[..12], &q, 0), Verdict::Bad, "no question");
        assert_eq!(verdict(&none, &q, 0), Verdict::Bad, "qdcount 0");
        let mut cut = answer_to(&q, 0);
        cut.truncate(cut.len() - 2);
        assert_eq!(verdict(&cut, &q, 0), Verdict::Bad, "a question cut short");
    }
}

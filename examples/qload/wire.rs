//! DNS messages on the wire for qload: the queries of a dnsperf-format file
//! ("name TYPE" a line) built once, with the DNS ID 0, and an answer sorted
//! into what the load counts (answered, another rcode, not an answer).
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
    /// Not an answer to the query: too short, QR clear, another ID.
    Bad,
}

/// `answer` judged against the ID `id` its query carried.
pub(crate) fn verdict(answer: &[u8], id: u16) -> Verdict {
    let Some(head) = answer.first_chunk::<12>() else {
        return Verdict::Bad;
    };
    if u16::from_be_bytes([head[0], head[1]]) != id || head[2] & 0x80 == 0 {
        return Verdict::Bad;
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

    #[test]
    fn answers_are_sorted_by_rcode_and_id() {
        let mut a = vec![0u8; 12];
        a[2] = 0x81;
        assert_eq!(verdict(&a, 0), Verdict::Answered);
        a[3] = 3;
        assert_eq!(verdict(&a, 0), Verdict::Answered);
        a[3] = 2;
        assert_eq!(verdict(&a, 0), Verdict::OtherRcode);
        assert_eq!(verdict(&a, 7), Verdict::Bad);
        a[2] = 0x01;
        assert_eq!(verdict(&a, 0), Verdict::Bad);
        assert_eq!(verdict(&a[..5], 0), Verdict::Bad);
    }
}

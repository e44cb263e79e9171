//! The server identity questions (RFC 4892): `id.server.` and
//! `hostname.bind.`, class CHAOS, type TXT, answered by the server itself
//! with its host name, as NSD and Knot do. The LS answers them without a
//! backend, so `dnslb anycast`'s probe asks one: an answer proves the LS's
//! own query path works, whatever its backends do.
use super::limits::HEADER_LEN;

/// The CHAOS class.
pub const CLASS_CH: u16 = 3;

/// The TXT type.
const TYPE_TXT: u16 = 16;

/// The identity names, wire form, lower case.
const NAMES: [&[u8]; 2] = [b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"];

/// Whether `name` (text, any case, with or without the final dot) is an
/// identity name.
pub fn is_identity_name(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "id.server" || n == "hostname.bind"
}

/// Whether the one plain question of `raw` (ending at `question_end`)
/// asks an identity question: `id.server.` or `hostname.bind.`, CH TXT.
pub fn is_identity_question(raw: &[u8], question_end: usize) -> bool {
    let Some(question) = raw.get(HEADER_LEN..question_end) else {
        return false;
    };
    let Some((name, tail)) = question
        .len()
        .checked_sub(4)
        .and_then(|at| question.split_at_checked(at))
    else {
        return false;
    };
    tail == [0, TYPE_TXT as u8, 0, CLASS_CH as u8]
        && NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The host name this server answers with: the kernel's, else `dnslb`.
pub fn host_identity() -> &'static [u8] {
    static ID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read("/proc/sys/kernel/hostname")
            .ok()
            .map(|b| b.trim_ascii().to_vec())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| b"dnslb".to_vec())
    })
}

/// The answer to `raw` when it asks an identity question (the question
/// ending at `question_end`, one question, read by
/// [`peek_plain_query`](super::peek_plain_query)): `identity` as one TXT
/// string (at most 255 bytes of it), TTL 0, no EDNS. `None` for any
/// other query.
pub fn identity_answer(raw: &[u8], question_end: usize, identity: &[u8]) -> Option<Vec<u8>> {
    if !is_identity_question(raw, question_end) {
        return None;
    }
    let text = identity.get(..identity.len().min(255))?;
    let mut out = Vec::with_capacity(question_end + 16 + text.len());
    out.extend_from_slice(raw.get(..question_end)?);
    // QR, the opcode and RD kept; AA, TC, RA, Z, RCODE clear.
    out[2] = 0x80 | (raw[2] & 0x79);
    out[3] = 0;
    out[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&[0, TYPE_TXT as u8, 0, CLASS_CH as u8, 0, 0, 0, 0]);
    let rdlen = u16::try_from(text.len() + 1).ok()?;
    out.extend_from_slice(&rdlen.to_be_bytes());
    out.push(u8::try_from(text.len()).ok()?);
    out.extend_from_slice(text);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

    fn query(name: &str, class: DNSClass, rtype: RecordType) -> Vec<u8> {
        let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
        q.set_query_class(class);
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(q);
        m.to_vec().unwrap()
    }

    #[test]
    fn id_server_and_hostname_bind_in_chaos_are_answered_with_the_identity() {
        for name in ["id.server.", "HOSTNAME.bind."] {
            let raw = query(name, DNSClass::CH, RecordType::TXT);
            let (_, end) = crate::dns::peek_plain_query(&raw).unwrap();
            let ans = identity_answer(&raw, end, b"ls1.example").unwrap();
            let m = Message::from_vec(&ans).unwrap();
            assert_eq!(m.metadata.id, 4242);
            assert!(m.metadata.recursion_desired && !m.metadata.authoritative);
            assert_eq!(m.queries[0].query_class(), DNSClass::CH);
            match &m.answers[0].data {
                RData::TXT(t) => assert_eq!(t.to_string(), "ls1.example"),
                other => panic!("{other:?}"),
            }
            assert!(is_identity_name(name));
        }
        // In class IN, another type, another name: not ours.
        for raw in [
            query("id.server.", DNSClass::IN, RecordType::TXT),
            query("id.server.", DNSClass::CH, RecordType::A),
            query("version.bind.", DNSClass::CH, RecordType::TXT),
        ] {
            let (_, end) = crate::dns::peek_plain_query(&raw).unwrap();
            assert_eq!(identity_answer(&raw, end, b"x"), None);
        }
        assert!(!is_identity_name("."));
        assert!(!host_identity().is_empty());
    }
}

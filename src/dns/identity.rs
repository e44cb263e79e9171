//! The server identity questions (RFC 4892): `id.server.` and
//! `hostname.bind.`, class CHAOS, type TXT, answered by the server itself
//! with its host name, as NSD and Knot do. The LS answers them without a
//! backend, so `dnslb anycast`'s probe asks one: an answer proves the LS's
//! own query path works, whatever its backends do. The probe proves itself
//! with a token in an EDNS option of its own ([`PROBE_OPTION`]): read here
//! ([`probe_option`]) and acknowledged in the answer ([`with_probe_ack`]);
//! what the token must be is the LS's (`ls::identity`).
use super::limits::HEADER_LEN;
use super::nsid::query_option;
use super::walk::TYPE_OPT;

/// The CHAOS class.
pub const CLASS_CH: u16 = 3;

/// The TXT type.
const TYPE_TXT: u16 = 16;

/// The EDNS option in which `dnslb anycast`'s probe sends the LS's probe
/// token: a code of the range RFC 6891 §9 leaves for local and experimental
/// use (65001-65534). The LS acknowledges a token it took with the same
/// option, empty, in its answer.
pub const PROBE_OPTION: u16 = 65_053;

/// The UDP payload size the acknowledging OPT advertises.
const ACK_PAYLOAD: u16 = 1232;

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

/// The payload of the [`PROBE_OPTION`] the query `raw` carries in its OPT,
/// if any (the first, when there are more).
pub fn probe_option(raw: &[u8]) -> Option<&[u8]> {
    query_option(raw, PROBE_OPTION)
}

/// `answer` (an [`identity_answer`]: no additional record) with an OPT
/// holding an empty [`PROBE_OPTION`]: the probe's token was taken.
pub fn with_probe_ack(mut answer: Vec<u8>) -> Vec<u8> {
    if answer.len() < HEADER_LEN {
        return answer;
    }
    answer[10..12].copy_from_slice(&1u16.to_be_bytes());
    answer.push(0);
    answer.extend_from_slice(&TYPE_OPT.to_be_bytes());
    answer.extend_from_slice(&ACK_PAYLOAD.to_be_bytes());
    answer.extend_from_slice(&[0, 0, 0, 0]);
    answer.extend_from_slice(&4u16.to_be_bytes());
    answer.extend_from_slice(&PROBE_OPTION.to_be_bytes());
    answer.extend_from_slice(&[0, 0]);
    answer
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

    #[test]
    fn the_probe_option_is_read_from_the_opt_and_acknowledged_empty() {
        use hickory_proto::op::Edns;
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let mut q = Query::query(Name::from_ascii("id.server.").unwrap(), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        let mut m = Message::query();
        m.add_query(q);
        let plain = m.to_vec().unwrap();
        assert_eq!(probe_option(&plain), None, "no OPT");
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(PROBE_OPTION, b"secret".to_vec()));
        m.set_edns(edns);
        let raw = m.to_vec().unwrap();
        assert_eq!(probe_option(&raw), Some(&b"secret"[..]));
        let (_, end) = crate::dns::peek_plain_query(&raw).unwrap();
        let ans = with_probe_ack(identity_answer(&raw, end, b"ls1").unwrap());
        let read = Message::from_vec(&ans).unwrap();
        let opt = read.edns.expect("an OPT");
        let ack = opt
            .option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(
                PROBE_OPTION,
            ))
            .expect("the option acknowledged");
        assert_eq!(ack, &EdnsOption::Unknown(PROBE_OPTION, Vec::new()));
        assert_eq!(probe_option(&ans), Some(&[][..]));
        match &read.answers[0].data {
            RData::TXT(t) => assert_eq!(t.to_string(), "ls1"),
            other => panic!("{other:?}"),
        }
    }
}

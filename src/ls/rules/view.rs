//! [`QueryView`]: what the rules read of a client query, filled by the door
//! from the bytes it has already checked (header, question, the OPT found by
//! one walk of the sections), borrowed in place: building one allocates
//! nothing.
use std::net::IpAddr;

use crate::config::RuleTransport;
use crate::dns::{self, HEADER_LEN};

/// One client query as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct QueryView<'a> {
    /// The question's name in wire form, root byte included, uncompressed
    /// (empty when the question's name is not a plain wire name).
    pub name: &'a [u8],
    /// The question's type.
    pub qtype: u16,
    /// The header's opcode.
    pub opcode: u8,
    /// The header's RD flag.
    pub rd: bool,
    /// The RDATA of the query's OPT (its options), when it has one.
    pub opt: Option<&'a [u8]>,
    /// The OPT's DO bit (false without an OPT).
    pub dnssec_ok: bool,
    /// The client's address.
    pub client: IpAddr,
    /// How the query came.
    pub transport: RuleTransport,
    /// It carries a valid server cookie of the LS (DNS Cookies): its
    /// address is proven, and a `truncate` rule lets it through as over TCP.
    pub cookie_ok: bool,
}

impl<'a> QueryView<'a> {
    /// The view of the query `raw` whose one question ends at
    /// `question_end`, from `client` by `transport`; `None` when the header
    /// or the question cannot be read there. A name that is not a plain wire
    /// name is given as empty (see [`QueryView::with_name`]).
    pub fn read(
        raw: &'a [u8],
        question_end: usize,
        client: IpAddr,
        transport: RuleTransport,
    ) -> Option<Self> {
        let h = dns::WireHeader::read(raw)?;
        let type_at = question_end.checked_sub(4)?;
        let qtype = dns::u16_at(raw, type_at)?;
        let name = raw.get(HEADER_LEN..type_at).unwrap_or_default();
        let plain = dns::skip_name(name, 0) == Some(name.len()) && !name.contains_pointer();
        let count = |i: usize| dns::u16_at(raw, 4 + 2 * i).map_or(0, usize::from);
        let before = count(1) + count(2);
        let mut opt = None;
        for (i, r) in dns::records(raw, question_end, before + count(3)).enumerate() {
            let Some(r) = r else { break };
            if i >= before && r.rtype == dns::TYPE_OPT {
                opt = Some(r);
                break;
            }
        }
        let dnssec_ok = opt
            .and_then(|r| raw.get(r.fixed + 6))
            .is_some_and(|b| b & 0x80 != 0);
        Some(QueryView {
            name: if plain { name } else { &[] },
            qtype,
            opcode: ((h.flags >> 11) & 0xf) as u8,
            rd: h.flags & 0x0100 != 0,
            opt: opt.and_then(|r| raw.get(r.rdata_start..r.rdata_end)),
            dnssec_ok,
            client,
            transport,
            cookie_ok: false,
        })
    }

    /// The view with `name` (a plain wire name) as the question's name: for
    /// a question the door could only read by decoding it.
    pub fn with_name(self, name: &'a [u8]) -> Self {
        QueryView { name, ..self }
    }

    /// How many labels the name has (the root has none).
    pub fn labels(&self) -> usize {
        let mut n = 0;
        let mut pos = 0;
        while let Some(&len) = self.name.get(pos) {
            if len == 0 {
                break;
            }
            n += 1;
            pos += 1 + usize::from(len);
        }
        n
    }

    /// Whether the OPT holds an option with `code`.
    pub fn has_option(&self, code: u16) -> bool {
        let Some(opts) = self.opt else {
            return false;
        };
        let mut pos = 0;
        while let (Some(c), Some(len)) = (dns::u16_at(opts, pos), dns::u16_at(opts, pos + 2)) {
            if c == code {
                return true;
            }
            pos += 4 + usize::from(len);
        }
        false
    }
}

/// A name's wire bytes: whether any length byte is a compression pointer.
trait ContainsPointer {
    fn contains_pointer(&self) -> bool;
}

impl ContainsPointer for [u8] {
    fn contains_pointer(&self) -> bool {
        let mut pos = 0;
        while let Some(&len) = self.get(pos) {
            if len == 0 {
                return false;
            }
            if len & 0xc0 != 0 {
                return true;
            }
            pos += 1 + usize::from(len);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::fixtures::query_bytes;
    use hickory_proto::rr::RecordType;

    fn client() -> IpAddr {
        IpAddr::from([192, 0, 2, 7])
    }

    #[test]
    fn a_plain_query_is_read_in_place() {
        let raw = query_bytes("www.Example.org.", RecordType::AAAA, None);
        let v = QueryView::read(&raw, raw.len(), client(), RuleTransport::Tcp).unwrap();
        assert_eq!(v.name, &raw[12..raw.len() - 4]);
        assert_eq!((v.qtype, v.opcode, v.rd), (28, 0, true));
        assert_eq!((v.opt, v.dnssec_ok), (None, false));
        assert_eq!(v.labels(), 3);
        assert_eq!(v.client, client());
        assert_eq!(v.transport, RuleTransport::Tcp);
        assert!(!v.has_option(10));
    }

    #[test]
    fn the_opt_its_do_bit_and_options_are_found() {
        let mut raw = query_bytes("a.example.", RecordType::A, Some(1232));
        let end = crate::dns::peek_plain_query(&raw).unwrap().1;
        let v = QueryView::read(&raw, end, client(), RuleTransport::Udp).unwrap();
        assert!(v.opt.is_some());
        assert!(!v.dnssec_ok);
        // Set DO and add a COOKIE option (10) and a padding (12).
        let opt_fixed = end + 1;
        raw[opt_fixed + 6] |= 0x80;
        let opts = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 12, 0, 0];
        let rdlen = opt_fixed + 8;
        raw[rdlen..rdlen + 2].copy_from_slice(&(opts.len() as u16).to_be_bytes());
        raw.truncate(rdlen + 2);
        raw.extend_from_slice(&opts);
        let v = QueryView::read(&raw, end, client(), RuleTransport::Udp).unwrap();
        assert!(v.dnssec_ok);
        assert!(v.has_option(10) && v.has_option(12));
        assert!(!v.has_option(3));
    }

    #[test]
    fn a_compressed_name_is_empty_until_given() {
        // Header, then a name pointing back into the header.
        let mut raw = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        raw.extend_from_slice(&[1, b'a', 0xc0, 0, 0, 1, 0, 1]);
        let v = QueryView::read(&raw, raw.len(), client(), RuleTransport::Udp).unwrap();
        assert!(v.name.is_empty());
        let name = [1, b'a', 0];
        assert_eq!(v.with_name(&name).labels(), 1);
        assert!(QueryView::read(&raw[..5], 9, client(), RuleTransport::Udp).is_none());
    }
}

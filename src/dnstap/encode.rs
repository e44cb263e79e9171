//! The encoding of one frame's payload (the schema: `message`).
//!
//! [`PayloadParts`] writes a `Dnstap` whose `Message` carries a DNS message
//! and addresses borrowed from the caller: the message's other fields are
//! encoded by prost and the borrowed ones appended after them, its length
//! known before it is written, without copying them into an owned struct
//! first (protobuf readers take fields in any order). The servers encode
//! into the queue's buffer in place ([`PayloadParts::encode_into`]; the
//! servers' own frames: [`TapMessage::encode_into`]); [`encode_payload`]
//! gives one payload its own `Vec`. Tests hold both to prost's encoding.

use std::net::{IpAddr, SocketAddr};

use prost::Message as _;

use super::message::{DnstapType, Message, MessageType, Payload, SocketFamily, SocketProtocol};

/// `Dnstap.message`'s field number.
const DNSTAP_MESSAGE_TAG: u8 = 14;

/// The key of a length-delimited field (wire type 2) with a tag below 16:
/// one byte.
const fn len_key(tag: u8) -> u8 {
    (tag << 3) | 2
}

/// A `bytes` field of [`Message`] that [`encode_payload`] writes from a
/// borrowed slice (the struct's own field left unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesField {
    /// `query_address` (4).
    QueryAddress = 4,
    /// `response_address` (5).
    ResponseAddress = 5,
    /// `query_message` (10).
    QueryMessage = 10,
    /// `response_message` (14).
    ResponseMessage = 14,
}

impl BytesField {
    /// The field and its value's encoded length.
    fn encoded_len(value: &[u8]) -> usize {
        1 + prost::length_delimiter_len(value.len()) + value.len()
    }
}

/// The fields every frame of one server shares (identity, version, type),
/// encoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preamble {
    /// `Dnstap` fields 1, 2 and 15, encoded.
    bytes: Vec<u8>,
}

impl Preamble {
    /// The encoded `identity`, `version` and `type = MESSAGE`.
    pub fn new(identity: Option<&[u8]>, version: Option<&[u8]>) -> Self {
        let head = Payload {
            identity: identity.map(<[u8]>::to_vec),
            version: version.map(<[u8]>::to_vec),
            extra: None,
            r#type: DnstapType::Message.into(),
            message: None,
        };
        Self {
            bytes: head.encode_to_vec(),
        }
    }

    /// The same with `extra` (`Dnstap` field 3) as well.
    pub fn with_extra(&self, extra: &[u8]) -> Self {
        let mut bytes = self.bytes.clone();
        prost::encoding::bytes::encode(3, &extra.to_vec(), &mut bytes);
        Self { bytes }
    }
}

/// One frame's payload, to be encoded: the `Dnstap` of a [`Preamble`] with
/// a [`Message`] as its message, and borrowed values as the message's fields
/// they name (which the `Message` leaves unset).
///
/// The message's fields are written here rather than by prost's generated
/// encoder: that one pushes each varint byte by byte through `BufMut` and
/// walks the struct twice (length, then bytes), which was a third of
/// dnstap's cost per message; a test holds the two to the same result.
#[derive(Debug, Clone, Copy)]
pub struct PayloadParts<'a> {
    /// Identity, version and type.
    preamble: &'a Preamble,
    /// The message's owned `bytes` fields and policy, if any.
    meta: &'a Message,
    /// The message's number fields, encoded.
    scalars: Scalars,
    /// The borrowed `bytes` fields.
    borrowed: &'a [(BytesField, &'a [u8])],
    /// The encoded message's length (without its key and length).
    message_len: usize,
}

impl<'a> PayloadParts<'a> {
    /// The payload of `preamble` and `meta` with `borrowed`'s fields.
    pub fn new(
        preamble: &'a Preamble,
        meta: &'a Message,
        borrowed: &'a [(BytesField, &'a [u8])],
    ) -> Self {
        let scalars = Scalars::of(meta);
        let owned: usize = owned_bytes(meta)
            .map(|(_, v)| BytesField::encoded_len(v))
            .sum();
        let policy = meta.policy.as_ref().map_or(0, |p| {
            let n = p.encoded_len();
            1 + prost::length_delimiter_len(n) + n
        });
        let extra: usize = borrowed
            .iter()
            .map(|(_, v)| BytesField::encoded_len(v))
            .sum();
        Self {
            preamble,
            meta,
            scalars,
            borrowed,
            message_len: scalars.len + owned + policy + extra,
        }
    }

    /// The encoded payload's length.
    pub fn len(&self) -> usize {
        self.preamble.bytes.len()
            + 1
            + prost::length_delimiter_len(self.message_len)
            + self.message_len
    }

    /// Whether it encodes to nothing (never: the type is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the encoded payload, [`PayloadParts::len`] bytes, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend_from_slice(&self.preamble.bytes);
        out.push(len_key(DNSTAP_MESSAGE_TAG));
        put_varint(out, self.message_len as u64);
        out.extend_from_slice(self.scalars.as_slice());
        for (tag, value) in owned_bytes(self.meta) {
            put_bytes(out, tag, value);
        }
        if let Some(policy) = &self.meta.policy {
            out.push(len_key(POLICY_TAG));
            // Cannot fail: a Vec grows as needed.
            let _ = policy.encode_length_delimited(out);
        }
        for (field, value) in self.borrowed {
            put_bytes(out, *field as u8, value);
        }
    }
}

/// `Message.policy`'s field number.
const POLICY_TAG: u8 = 15;
/// The most bytes [`Scalars`] takes: every number field at its longest.
const SCALARS_MAX: usize = 89;

/// A [`Message`]'s number and enum fields, encoded in field order as prost
/// would, on the stack (from `bytes[start]`; a [`TapMessage`] puts more
/// there).
#[derive(Debug, Clone, Copy)]
struct Scalars<const N: usize = SCALARS_MAX> {
    /// The encoded fields.
    bytes: [u8; N],
    /// Where they start.
    start: usize,
    /// Where they end.
    len: usize,
}

impl Scalars {
    /// The number fields of `m` (the required `type` always).
    fn of(m: &Message) -> Self {
        let mut s = Self::at(0);
        s.varint(1, int(m.r#type));
        for (tag, v) in [(2, m.socket_family), (3, m.socket_protocol)] {
            if let Some(v) = v {
                s.varint(tag, int(v));
            }
        }
        for (tag, v) in [(6, m.query_port), (7, m.response_port)] {
            if let Some(v) = v {
                s.varint(tag, v.into());
            }
        }
        for (sec_tag, sec, nsec) in [
            (8, m.query_time_sec, m.query_time_nsec),
            (12, m.response_time_sec, m.response_time_nsec),
        ] {
            if let Some(v) = sec {
                s.varint(sec_tag, v);
            }
            if let Some(v) = nsec {
                s.fixed32(sec_tag + 1, v);
            }
        }
        if let Some(v) = m.http_protocol {
            s.varint(16, int(v));
        }
        s
    }
}

/// The varint byte of `v`'s 7 bits from `shift`, marked when `more`
/// follow (cannot truncate: each byte takes the low 7 bits it is meant
/// to).
#[inline]
fn group(v: u64, shift: u32, more: bool) -> u8 {
    ((v >> shift) as u8 & 0x7f) | if more { 0x80 } else { 0 }
}

/// An enum or int32 field's varint: its sign-extended value.
fn int(v: i32) -> u64 {
    i64::from(v) as u64
}

impl<const N: usize> Scalars<N> {
    /// Empty, writing from `start`.
    fn at(start: usize) -> Self {
        Self {
            bytes: [0; N],
            start,
            len: start,
        }
    }

    /// The used bytes.
    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.len]
    }

    /// Appends `bytes`.
    #[inline]
    fn put<const K: usize>(&mut self, bytes: [u8; K]) {
        self.bytes[self.len..self.len + K].copy_from_slice(&bytes);
        self.len += K;
    }

    /// Appends `v` as a varint (10 bytes at most): the lengths the
    /// servers' fields take (ports and DNS message lengths up to 3 bytes,
    /// this era's seconds 5) as fixed stores, others byte by byte.
    #[inline]
    fn raw_varint(&mut self, v: u64) {
        let b = |shift, more| group(v, shift, more);
        if v < 1 << 7 {
            self.put([v as u8]);
        } else if v < 1 << 14 {
            self.put([b(0, true), b(7, false)]);
        } else if v < 1 << 21 {
            self.put([b(0, true), b(7, true), b(14, false)]);
        } else if (1 << 28..1 << 35).contains(&v) {
            self.put([
                b(0, true),
                b(7, true),
                b(14, true),
                b(21, true),
                b(28, false),
            ]);
        } else {
            self.slow_varint(v);
        }
    }

    /// [`Scalars::raw_varint`] byte by byte.
    #[cold]
    fn slow_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes[self.len] = (v as u8) | 0x80;
            self.len += 1;
            v >>= 7;
        }
        self.bytes[self.len] = v as u8;
        self.len += 1;
    }

    /// Puts the key `key` and the varint `len` right before the bytes
    /// written so far, `start` moved back to them: a length-delimited
    /// field's head, once its length is known. Up to three bytes of
    /// varint (every DNS message's frame) as one fixed store.
    #[inline]
    fn lead(&mut self, key: u8, len: u64) {
        let b = |shift, more| group(len, shift, more);
        let (bytes, used) = if len < 1 << 7 {
            ([0, 0, key, len as u8], 2)
        } else if len < 1 << 14 {
            ([0, key, b(0, true), b(7, false)], 3)
        } else if len < 1 << 21 {
            ([key, b(0, true), b(7, true), b(14, false)], 4)
        } else {
            return self.slow_lead(key, len);
        };
        self.bytes[self.start - 4..self.start].copy_from_slice(&bytes);
        self.start -= used;
    }

    /// [`Scalars::lead`] of any length.
    #[cold]
    fn slow_lead(&mut self, key: u8, len: u64) {
        let mut lead = Scalars::<LEAD>::at(0);
        lead.put([key]);
        lead.raw_varint(len);
        let start = self.start - lead.len;
        self.bytes[start..self.start].copy_from_slice(lead.as_slice());
        self.start = start;
    }

    /// Field `tag` of wire type 0 (varint).
    #[inline]
    fn varint(&mut self, tag: u32, v: u64) {
        self.raw_varint(u64::from(tag << 3));
        self.raw_varint(v);
    }

    /// Field `tag` of wire type 5 (fixed32, little-endian).
    #[inline]
    fn fixed32(&mut self, tag: u32, v: u32) {
        self.raw_varint(u64::from((tag << 3) | 5));
        self.bytes[self.len..self.len + 4].copy_from_slice(&v.to_le_bytes());
        self.len += 4;
    }

    /// Field `field` holding the address `ip` (4 or 16 bytes).
    #[inline]
    fn address(&mut self, field: BytesField, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                self.put([len_key(field as u8), 4, a, b, c, d]);
            }
            IpAddr::V6(v6) => {
                self.put([len_key(field as u8), 16]);
                self.put(v6.octets());
            }
        }
    }
}

/// What a server's frame says: a `Message` of number fields, addresses
/// and one DNS message, with no policy (the servers' every frame but a
/// rule's note), borrowed.
#[derive(Debug, Clone, Copy)]
pub struct TapMessage<'a> {
    /// Which message it is.
    pub r#type: MessageType,
    /// The transport.
    pub protocol: SocketProtocol,
    /// The query's sender (an IPv4-mapped address is written as IPv4, and
    /// sets the family).
    pub query: SocketAddr,
    /// The responder, written when of the query's family.
    pub response: Option<SocketAddr>,
    /// When the query was sent or received (seconds, nanoseconds).
    pub query_time: Option<(u64, u32)>,
    /// When the response was sent or received (seconds, nanoseconds).
    pub response_time: Option<(u64, u32)>,
    /// The DNS message and the field that holds it.
    pub wire: (BytesField, &'a [u8]),
}

/// The family of `ip`, and `ip` as it is written: an IPv4-mapped IPv6
/// address as IPv4.
pub fn family(ip: IpAddr) -> (SocketFamily, IpAddr) {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => (SocketFamily::Inet, v4),
        v6 @ IpAddr::V6(_) => (SocketFamily::Inet6, v6),
    }
}

/// Room before a [`TapMessage`]'s fields for `Dnstap.message`'s key and
/// length, written once their length is known.
const LEAD: usize = 11;
/// A [`TapMessage`]'s head: the lead, type, family and protocol (6 bytes),
/// two ports (4 each), two times (16 each), two IPv6 addresses (18 each),
/// the DNS message's key and length (11).
const HEAD_MAX: usize = LEAD + 6 + 2 * 4 + 2 * 16 + 2 * 18 + 11;

// Type, family and protocol are written as one byte each: every value of
// theirs is below 128.
const _: () = assert!(
    (MessageType::UpdateResponse as i32) < 128
        && (SocketFamily::Inet6 as i32) < 128
        && (SocketProtocol::Doq as i32) < 128
);

impl TapMessage<'_> {
    /// Appends the `Dnstap` payload of `preamble` and this message to
    /// `out`, encoded in one pass: its number and address fields on the
    /// stack (no `Message` built, no field walked twice; a test holds it to
    /// prost), then the preamble, them and the DNS message copied once
    /// each, the room reserved once.
    #[inline]
    pub fn encode_into(&self, preamble: &Preamble, out: &mut Vec<u8>) {
        let (family, query_ip) = family(self.query.ip());
        let response = self.response.and_then(|r| {
            let (f, ip) = self::family(r.ip());
            (f == family).then_some((ip, r.port()))
        });
        // Field order as prost's, but the addresses after the numbers.
        let mut head = Scalars::<HEAD_MAX>::at(LEAD);
        head.put([
            1 << 3,
            self.r#type as u8,
            2 << 3,
            family as u8,
            3 << 3,
            self.protocol as u8,
        ]);
        head.put([6 << 3]);
        head.raw_varint(self.query.port().into());
        if let Some((_, port)) = response {
            head.put([7 << 3]);
            head.raw_varint(port.into());
        }
        for (sec_tag, time) in [(8u8, self.query_time), (12, self.response_time)] {
            if let Some((sec, nsec)) = time {
                head.put([sec_tag << 3]);
                head.raw_varint(sec);
                let [a, b, c, d] = nsec.to_le_bytes();
                head.put([((sec_tag + 1) << 3) | 5, a, b, c, d]);
            }
        }
        head.address(BytesField::QueryAddress, query_ip);
        if let Some((ip, _)) = response {
            head.address(BytesField::ResponseAddress, ip);
        }
        let (field, wire) = self.wire;
        head.put([len_key(field as u8)]);
        head.raw_varint(wire.len() as u64);
        // The lead: key and length of the whole message, right before it.
        let message_len = (head.len - LEAD + wire.len()) as u64;
        head.lead(len_key(DNSTAP_MESSAGE_TAG), message_len);
        let head = head.as_slice();
        out.reserve(preamble.bytes.len() + head.len() + wire.len());
        out.extend_from_slice(&preamble.bytes);
        out.extend_from_slice(head);
        out.extend_from_slice(wire);
    }
}

/// The `bytes` fields `m` owns (set), with their numbers, in field order.
fn owned_bytes(m: &Message) -> impl Iterator<Item = (u8, &[u8])> {
    [
        (4, &m.query_address),
        (5, &m.response_address),
        (10, &m.query_message),
        (11, &m.query_zone),
        (14, &m.response_message),
    ]
    .into_iter()
    .filter_map(|(tag, v)| Some((tag, v.as_deref()?)))
}

/// Appends `v` as a varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends field `tag` (below 16) of wire type 2 holding `value`.
fn put_bytes(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(len_key(tag));
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// One frame's payload ([`PayloadParts`]) in a `Vec` of its own, of the
/// exact size.
pub fn encode_payload(
    preamble: &Preamble,
    meta: &Message,
    borrowed: &[(BytesField, &[u8])],
) -> Vec<u8> {
    let parts = PayloadParts::new(preamble, meta, borrowed);
    let mut out = Vec::with_capacity(parts.len());
    parts.encode_into(&mut out);
    debug_assert_eq!(out.len(), parts.len());
    out
}

#[cfg(test)]
mod tests {
    use super::super::message::{HttpProtocol, MessagePolicy, PolicyAction, PolicyMatch};
    use super::*;

    fn meta() -> Message {
        Message {
            r#type: MessageType::ClientResponse.into(),
            socket_family: Some(SocketFamily::Inet6.into()),
            socket_protocol: Some(SocketProtocol::Doh.into()),
            query_port: Some(53000),
            query_time_sec: Some(1_764_000_000),
            query_time_nsec: Some(999_999_999),
            response_time_sec: Some(1_764_000_001),
            response_time_nsec: Some(1),
            http_protocol: Some(HttpProtocol::Http2.into()),
            ..Message::default()
        }
    }

    #[test]
    fn a_payload_decodes_as_the_dnstap_prost_would_have_written_whole() {
        // A wire message long enough for a two-byte length.
        let wire: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let client = [7u8; 16];
        let preamble = Preamble::new(Some(b"ls1.example"), Some(b"dnslb 0.1.0"));
        for (field, with) in [
            (BytesField::QueryMessage, (Some(wire.clone()), None)),
            (BytesField::ResponseMessage, (None, Some(wire.clone()))),
        ] {
            let borrowed = [(BytesField::QueryAddress, &client[..]), (field, &wire[..])];
            let payload = encode_payload(&preamble, &meta(), &borrowed);
            let whole = Payload {
                identity: Some(b"ls1.example".to_vec()),
                version: Some(b"dnslb 0.1.0".to_vec()),
                extra: None,
                r#type: DnstapType::Message.into(),
                message: Some(Message {
                    query_address: Some(client.to_vec()),
                    query_message: with.0,
                    response_message: with.1,
                    ..meta()
                }),
            };
            let read = Payload::decode(payload.as_slice()).unwrap();
            assert_eq!(read, whole);
            assert_eq!(payload.len(), whole.encoded_len());
            assert_eq!(payload.capacity(), payload.len(), "one exact allocation");
        }
    }

    #[test]
    fn the_hand_encoder_matches_prost_for_every_field() {
        let full = Message {
            r#type: MessageType::ForwarderResponse.into(),
            socket_family: Some(SocketFamily::Inet.into()),
            socket_protocol: Some(SocketProtocol::Doq.into()),
            query_address: Some(vec![127, 0, 0, 1]),
            response_address: Some(vec![10, 0, 0, 2]),
            query_port: Some(u32::MAX),
            response_port: Some(0),
            query_time_sec: Some(u64::MAX),
            query_time_nsec: Some(u32::MAX),
            query_message: Some(vec![1; 200]),
            query_zone: Some(b"\x07example\0".to_vec()),
            response_time_sec: Some(0),
            response_time_nsec: Some(0),
            response_message: Some(vec![2; 3]),
            policy: Some(MessagePolicy {
                r#type: Some("dnslb-rule".into()),
                rule: Some(b"r".to_vec()),
                action: Some(PolicyAction::Drop.into()),
                r#match: Some(PolicyMatch::Qname.into()),
                value: Some(vec![0]),
            }),
            http_protocol: Some(HttpProtocol::Http3.into()),
        };
        // A negative enum value (an unknown one read back) takes ten bytes.
        let odd = Message {
            r#type: -1,
            ..Message::default()
        };
        let preamble = Preamble::new(Some(b"id"), None);
        for (m, same_order) in [
            (full, false),
            (odd, true),
            (meta(), true),
            (Message::default(), true),
        ] {
            let payload = encode_payload(&preamble, &m, &[]);
            let whole = Payload {
                identity: Some(b"id".to_vec()),
                version: None,
                extra: None,
                r#type: DnstapType::Message.into(),
                message: Some(m.clone()),
            };
            assert_eq!(Payload::decode(payload.as_slice()).unwrap(), whole);
            assert_eq!(payload.len(), whole.encoded_len());
            // Without bytes fields or a policy (which go after the numbers
            // here), byte for byte what prost writes.
            if same_order {
                let mut message = vec![len_key(DNSTAP_MESSAGE_TAG)];
                message.extend(m.encode_length_delimited_to_vec());
                assert_eq!(payload[preamble.bytes.len()..], message, "{m:?}");
            }
        }
    }

    #[test]
    fn no_identity_or_version_leaves_the_fields_out() {
        let borrowed = [(BytesField::QueryMessage, &b"q"[..])];
        let payload = encode_payload(&Preamble::new(None, None), &meta(), &borrowed);
        let read = Payload::decode(payload.as_slice()).unwrap();
        assert_eq!((read.identity, read.version), (None, None));
        assert_eq!(
            read.message.unwrap().query_message.as_deref(),
            Some(&b"q"[..])
        );
    }

    #[test]
    fn borrowed_fields_carry_their_schema_numbers() {
        let m = Message {
            query_address: Some(vec![4]),
            response_address: Some(vec![5]),
            query_message: Some(vec![10]),
            response_message: Some(vec![14]),
            ..Message::default()
        };
        let borrowed = [
            (BytesField::QueryAddress, &[4u8][..]),
            (BytesField::ResponseAddress, &[5u8][..]),
            (BytesField::QueryMessage, &[10u8][..]),
            (BytesField::ResponseMessage, &[14u8][..]),
        ];
        let payload = encode_payload(&Preamble::new(None, None), &Message::default(), &borrowed);
        let read = Payload::decode(payload.as_slice()).unwrap();
        assert_eq!(read.message, Some(m));
    }

    #[test]
    fn varints_are_written_as_prost_writes_them() {
        let mut values = vec![0, 1, 127, 128, 300, 16383, 16384, u64::MAX];
        for bit in 0..64 {
            values.extend([(1u64 << bit) - 1, 1 << bit, (1 << bit) + 1]);
        }
        for v in values {
            let mut s = Scalars::<10>::at(0);
            s.raw_varint(v);
            let mut want = Vec::new();
            prost::encoding::encode_varint(v, &mut want);
            assert_eq!(s.as_slice(), want, "{v:#x}");
        }
    }

    #[test]
    fn a_lead_is_put_right_before_the_fields_as_prost_writes_it() {
        for len in [
            0,
            1,
            127,
            128,
            16383,
            16384,
            (1 << 21) - 1,
            1 << 21,
            u64::MAX,
        ] {
            let mut s = Scalars::<{ LEAD + 1 }>::at(LEAD);
            s.put([0xee]);
            s.lead(len_key(DNSTAP_MESSAGE_TAG), len);
            let mut want = vec![len_key(DNSTAP_MESSAGE_TAG)];
            prost::encoding::encode_varint(len, &mut want);
            want.push(0xee);
            assert_eq!(s.as_slice(), want, "{len:#x}");
        }
    }

    #[test]
    fn a_tap_message_decodes_as_prost_reads_the_whole_message() {
        let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
        let preamble = Preamble::new(Some(b"ls1.example"), Some(b"dnslb 0.1.0"));
        let wire = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        let wires = [
            wire(300),
            wire(1),
            wire(0),
            wire(127),
            wire(128),
            wire(16384),
        ];
        let full = TapMessage {
            r#type: MessageType::ForwarderResponse,
            protocol: SocketProtocol::Udp,
            query: sock("[2001:db8::7]:53000"),
            response: Some(sock("[2001:db8::9]:53")),
            query_time: Some((1_764_000_000, 999_999_999)),
            response_time: Some((1_764_000_001, 0)),
            wire: (BytesField::ResponseMessage, &wires[0]),
        };
        let bare = TapMessage {
            r#type: MessageType::ClientQuery,
            protocol: SocketProtocol::Dot,
            query: sock("127.0.0.1:0"),
            response: None,
            query_time: None,
            response_time: None,
            wire: (BytesField::QueryMessage, &wires[1]),
        };
        // (message, its addresses as written, its family)
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
        let mut cases = vec![
            (
                full,
                v6("2001:db8::7"),
                Some(v6("2001:db8::9")),
                SocketFamily::Inet6,
            ),
            (bare, vec![127, 0, 0, 1], None, SocketFamily::Inet),
            // A mapped client is IPv4; a responder of the other family is
            // left out.
            (
                TapMessage {
                    query: sock("[::ffff:192.0.2.1]:128"),
                    response: Some(sock("[::1]:53")),
                    ..bare
                },
                vec![192, 0, 2, 1],
                None,
                SocketFamily::Inet,
            ),
            (
                TapMessage {
                    query: sock("192.0.2.1:16384"),
                    response: Some(sock("[::ffff:127.0.0.2]:65535")),
                    ..bare
                },
                vec![192, 0, 2, 1],
                Some(vec![127, 0, 0, 2]),
                SocketFamily::Inet,
            ),
        ];
        // Every length of varint: times, ports and the DNS message's length.
        for (i, (sec, w)) in [0, 127, 128, (1 << 56) - 1, 1 << 56, u64::MAX]
            .into_iter()
            .zip(&wires)
            .enumerate()
        {
            let m = TapMessage {
                query: sock(&format!("[::1]:{}", [0, 127, 128, 16383, 16384, 65535][i])),
                response: None,
                query_time: Some((sec, u32::MAX)),
                response_time: Some((u64::MAX - sec, 1)),
                wire: (BytesField::ResponseMessage, w),
                ..full
            };
            cases.push((m, v6("::1"), None, SocketFamily::Inet6));
        }
        for (m, query_address, response_address, family) in cases {
            let mut out = vec![0xee];
            m.encode_into(&preamble, &mut out);
            let want = Message {
                r#type: m.r#type.into(),
                socket_family: Some(family.into()),
                socket_protocol: Some(m.protocol.into()),
                query_address: Some(query_address),
                response_port: response_address
                    .as_ref()
                    .and(m.response)
                    .map(|r| r.port().into()),
                response_address,
                query_port: Some(m.query.port().into()),
                query_time_sec: m.query_time.map(|t| t.0),
                query_time_nsec: m.query_time.map(|t| t.1),
                query_message: (m.wire.0 == BytesField::QueryMessage).then(|| m.wire.1.to_vec()),
                response_time_sec: m.response_time.map(|t| t.0),
                response_time_nsec: m.response_time.map(|t| t.1),
                response_message: (m.wire.0 == BytesField::ResponseMessage)
                    .then(|| m.wire.1.to_vec()),
                ..Message::default()
            };
            let whole = Payload {
                identity: Some(b"ls1.example".to_vec()),
                version: Some(b"dnslb 0.1.0".to_vec()),
                extra: None,
                r#type: DnstapType::Message.into(),
                message: Some(want),
            };
            assert_eq!(Payload::decode(&out[1..]).unwrap(), whole, "{m:?}");
            assert_eq!(out.len() - 1, whole.encoded_len(), "{m:?}");
        }
    }
}

//! What a packet-cache entry is found by: [`CacheKey`], read from a client
//! query's wire bytes in place (the name lower-cased into a fixed buffer, no
//! allocation), with what a hit needs to know of that client ([`CacheClient`]:
//! its ID, RD bit, question bytes and OPT).
//!
//! A query is cacheable only when it is a plain one: QR=0, opcode QUERY, one
//! question whose name is uncompressed and well formed and whose type is
//! not a meta type or a zone transfer, no answer or authority records, at
//! most one OPT (EDNS version 0, root-owned) and no TSIG or SIG(0).
//! Anything else is `None`: it is forwarded as if there were no cache.
//!
//! The key also holds the query's RD and AD bits (a recursive backend
//! answers an RD=0 query otherwise, or refuses it: a cache must not undo
//! its no-snooping policy; RFC 6840 §5.8 gives an AD=1 answer to an AD=1 or
//! DO=1 query only) and its EDNS Client Subnet option (RFC 7871: family,
//! source prefix and address, [`Ecs`]): an answer tailored to one subnet is
//! found only by queries from that subnet, and never by a query without
//! ECS. A malformed ECS option (RFC 7871 §6: an unknown family, a prefix
//! too long, too many address bytes or bits set past the prefix) makes the
//! query uncacheable: the backend answers it FORMERR.
use std::hash::{BuildHasher, Hash, Hasher};

use smallvec::SmallVec;

use crate::dns::{
    HEADER_LEN, MessageWalk, NAME_MAX, TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX,
    UDP_PAYLOAD_PLAIN, WireHeader, u16_at, walk_message,
};

/// Question types never answered from the cache: OPT, TKEY, TSIG, IXFR,
/// AXFR (meta types, and transfers that are not one message).
const NOT_CACHED: [u16; 5] = [41, 249, 250, 251, 252];

/// Key flag: the query's DO bit (RFC 3225).
pub(super) const FLAG_DO: u8 = 1;
/// Key flag: the query's CD bit (RFC 4035).
pub(super) const FLAG_CD: u8 = 2;
/// Key flag: the query had an OPT.
pub(super) const FLAG_EDNS: u8 = 4;
/// Key flag: the query came over TCP.
pub(super) const FLAG_TCP: u8 = 8;
/// Key flag: the query's RD bit.
pub(super) const FLAG_RD: u8 = 16;
/// Key flag: the query's AD bit (RFC 6840 §5.7).
pub(super) const FLAG_AD: u8 = 32;

/// EDNS option code of Client Subnet (RFC 7871).
pub(super) const ECS_OPTION: u16 = 8;
/// EDNS option code of COOKIE (RFC 7873).
pub(super) const COOKIE_OPTION: u16 = 10;

/// Whether `len` is a COOKIE option's length: a client cookie of 8 bytes
/// alone, or with a server cookie of 8 to 32 (RFC 7873 §4).
pub(super) fn cookie_len(len: usize) -> bool {
    len == 8 || (16..=40).contains(&len)
}

/// A query's EDNS Client Subnet option, as the key holds it: family,
/// source prefix length, and the address's first `ceil(source / 8)` bytes
/// (the rest zero), which are all an option of that prefix may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Ecs {
    /// 1 for IPv4, 2 for IPv6.
    pub(super) family: u16,
    /// SOURCE PREFIX-LENGTH.
    pub(super) source: u8,
    /// The address bytes, zero past the prefix.
    pub(super) addr: [u8; 16],
}

impl Ecs {
    /// The option's ADDRESS field as sent: the prefix's bytes.
    pub(super) fn addr_bytes(&self) -> &[u8] {
        self.addr
            .get(..usize::from(self.source).div_ceil(8))
            .unwrap_or_default()
    }

    /// Reads an ECS option's payload: the option and its SCOPE
    /// PREFIX-LENGTH, or `None` when it is malformed (RFC 7871 §6).
    pub(super) fn read(data: &[u8]) -> Option<(Ecs, u8)> {
        let family = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
        let (source, scope) = (*data.get(2)?, *data.get(3)?);
        let max = match family {
            1 => 32,
            2 => 128,
            _ => return None,
        };
        if source > max || scope > max {
            return None;
        }
        let addr_bytes = data.get(4..)?;
        let n = usize::from(source).div_ceil(8);
        if addr_bytes.len() != n {
            return None;
        }
        let mut addr = [0u8; 16];
        addr.get_mut(..n)?.copy_from_slice(addr_bytes);
        // No bit set past the prefix.
        let spare = n * 8 - usize::from(source);
        if n > 0 && spare > 0 && addr[n - 1] & ((1u8 << spare) - 1) != 0 {
            return None;
        }
        Some((
            Ecs {
                family,
                source,
                addr,
            },
            scope,
        ))
    }
}

/// The payload of the first option `code` in an OPT's RDATA, and its
/// offset in the RDATA: `Ok(None)` when there is none, `Err` when the
/// options overrun the RDATA.
pub(super) fn find_option(rdata: &[u8], code: u16) -> Result<Option<(usize, &[u8])>, ()> {
    let mut pos = 0;
    while pos < rdata.len() {
        let c = u16_at(rdata, pos).ok_or(())?;
        let len = usize::from(u16_at(rdata, pos + 2).ok_or(())?);
        let data = rdata.get(pos + 4..pos + 4 + len).ok_or(())?;
        if c == code {
            return Ok(Some((pos + 4, data)));
        }
        pos += 4 + len;
    }
    Ok(None)
}

/// The question of a query as the cache knows it: the name lower-cased in
/// wire form, type, class, and the DO, CD, EDNS and transport flags; with
/// its hash under the cache's key.
#[derive(Clone)]
pub struct CacheKey {
    /// The name in wire form, lower-cased; `name[..name_len]` is used.
    name: [u8; NAME_MAX],
    /// Length of the name in wire form, root byte included.
    name_len: u8,
    /// QTYPE.
    pub(super) qtype: u16,
    /// QCLASS.
    pub(super) qclass: u16,
    /// `FLAG_*` bits.
    pub(super) flags: u8,
    /// Its ECS option, if it had one.
    pub(super) ecs: Option<Ecs>,
    /// Hash of all of the above under the cache's hasher.
    pub(super) hash: u64,
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("name", &self.name())
            .field("qtype", &self.qtype)
            .field("qclass", &self.qclass)
            .field("flags", &self.flags)
            .field("ecs", &self.ecs)
            .finish()
    }
}

impl CacheKey {
    /// A key of no query (the root, type 0), for [`read_into`] to write.
    pub(super) fn empty() -> Self {
        CacheKey {
            name: [0; NAME_MAX],
            name_len: 0,
            qtype: 0,
            qclass: 0,
            flags: 0,
            ecs: None,
            hash: 0,
        }
    }

    /// The lower-cased name in wire form.
    pub(super) fn name(&self) -> &[u8] {
        self.name
            .get(..usize::from(self.name_len))
            .unwrap_or_default()
    }

    /// Whether `stored` (an entry's key) is this one, field by field.
    pub(super) fn same(&self, stored: &StoredKey) -> bool {
        self.qtype == stored.qtype
            && self.qclass == stored.qclass
            && self.flags == stored.flags
            && self.ecs == stored.ecs
            && self.name() == &*stored.name
    }

    /// This TCP query's key as if it had come over UDP (`None` when it
    /// came over UDP): a complete answer kept for a UDP client serves a TCP
    /// one as well.
    pub(super) fn as_udp(&self, hasher: &impl BuildHasher) -> Option<CacheKey> {
        if self.flags & FLAG_TCP == 0 {
            return None;
        }
        let mut udp = self.clone();
        udp.flags &= !FLAG_TCP;
        udp.hash = hash_of(&udp, hasher);
        Some(udp)
    }

    /// This key over the other transport (UDP for TCP, TCP for UDP).
    pub(super) fn other_transport(&self, hasher: &impl BuildHasher) -> CacheKey {
        let mut other = self.clone();
        other.flags ^= FLAG_TCP;
        other.hash = hash_of(&other, hasher);
        other
    }

    /// The key kept in an entry (its name copied out).
    pub(super) fn to_stored(&self) -> StoredKey {
        StoredKey {
            name: SmallVec::from_slice(self.name()),
            qtype: self.qtype,
            qclass: self.qclass,
            flags: self.flags,
            ecs: self.ecs,
        }
    }
}

/// Name bytes a [`StoredKey`] holds in place (longer names go to the heap).
pub(super) const NAME_INLINE: usize = 40;

/// An entry's own copy of its [`CacheKey`], compared on every hit (no false hits
/// from a hash collision) and read by the flushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredKey {
    /// The lower-cased name in wire form, held in the entry itself up to
    /// [`NAME_INLINE`] bytes: a hit compares it without a pointer to follow
    /// (one cache miss fewer a hit).
    pub(super) name: SmallVec<[u8; NAME_INLINE]>,
    /// QTYPE.
    pub(super) qtype: u16,
    /// QCLASS.
    pub(super) qclass: u16,
    /// `FLAG_*` bits.
    pub(super) flags: u8,
    /// The ECS option of the queries it answers.
    pub(super) ecs: Option<Ecs>,
}

/// What a hit needs of the client's query besides its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheClient {
    /// Its message ID.
    pub(super) id: u16,
    /// Its RD bit (copied into the answer).
    pub(super) rd: bool,
    /// Offset just past its question: `query[12..question_end]` is copied
    /// into the answer as sent (0x20 case kept).
    pub(super) question_end: usize,
    /// Its OPT, if it had one: `Some(dnssec_ok)`.
    pub(super) edns_do: Option<bool>,
    /// The largest answer it can take over its transport.
    pub(super) max_size: usize,
    /// Where its COOKIE option's payload lies in the query (offset,
    /// length), if it sent a well-formed one: a hit answers with a cookie.
    pub(super) cookie: Option<(usize, usize)>,
}

/// Reads the key and the client's view of a query; `None` when it is not a
/// plain query the cache answers (see the module header). `hasher` is the
/// cache's (random keys, so names cannot be chosen to collide).
pub(super) fn read(
    query: &[u8],
    transport: Transport,
    hasher: &impl BuildHasher,
) -> Option<(CacheKey, CacheClient)> {
    let mut key = CacheKey::empty();
    let client = read_into(query, transport, hasher, &mut key)?;
    Some((key, client))
}

/// [`read`], the key written into `key` where it is (a hit's key is read
/// into its caller's, not made here and copied out: its name is most of
/// its bytes); `key` is left part-written when the query is not one the
/// cache answers.
pub(super) fn read_into(
    query: &[u8],
    transport: Transport,
    hasher: &impl BuildHasher,
    key: &mut CacheKey,
) -> Option<CacheClient> {
    let h = WireHeader::read(query)?;
    // QR=0, opcode QUERY, one question, no answer or authority records.
    if h.flags & 0xf800 != 0 || h.qdcount != 1 || h.ancount != 0 || h.nscount != 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    let mut len = 0usize;
    loop {
        let label = usize::from(*query.get(pos)?);
        if label > 63 {
            return None; // a pointer or a reserved label type
        }
        let end = pos.checked_add(1 + label)?;
        let bytes = query.get(pos..end)?;
        let to = key.name.get_mut(len..len + bytes.len())?;
        to.copy_from_slice(bytes);
        to.make_ascii_lowercase();
        len += bytes.len();
        pos = end;
        if label == 0 {
            break;
        }
    }
    let qtype = u16_at(query, pos)?;
    let qclass = u16_at(query, pos + 2)?;
    if NOT_CACHED.contains(&qtype) {
        return None;
    }
    let question_end = pos + 4;
    // No additional record (ARCOUNT 0; the answer and authority sections
    // are empty, checked above): no OPT and no signature, nothing to walk.
    let walk = if u16_at(query, 10)? == 0 {
        MessageWalk {
            opt: None,
            signed: false,
            end: question_end,
        }
    } else {
        walk_message(query)?
    };
    if walk.signed {
        return None;
    }
    let mut flags = 0;
    if h.flags & 0x0010 != 0 {
        flags |= FLAG_CD;
    }
    if h.flags & 0x0100 != 0 {
        flags |= FLAG_RD;
    }
    if h.flags & 0x0020 != 0 {
        flags |= FLAG_AD;
    }
    let mut ecs = None;
    let mut cookie = None;
    if transport == Transport::Tcp {
        flags |= FLAG_TCP;
    }
    let mut edns_do = None;
    // What it can take: over UDP its advertised size clamped to [512,
    // 1232], 512 without an OPT (as `dns::client_max_size` says, without
    // walking the query again); over TCP 65 535.
    let mut max_size = UDP_PAYLOAD_PLAIN;
    if let Some(opt) = walk.opt {
        // Only version 0 is answered from the cache (another gets BADVERS
        // from the usual path); a root owner as RFC 6891 §6.1.1 wants.
        let version = query.get(opt.fixed + 5).copied()?;
        if version != 0 || !opt.root_owned() {
            return None;
        }
        let dnssec_ok = query.get(opt.fixed + 6).copied()? & 0x80 != 0;
        flags |= FLAG_EDNS;
        if dnssec_ok {
            flags |= FLAG_DO;
        }
        edns_do = Some(dnssec_ok);
        let rdata = query.get(opt.rdata_start..opt.rdata_end)?;
        if let Some((_, data)) = find_option(rdata, ECS_OPTION).ok()? {
            // A query's SCOPE PREFIX-LENGTH must be 0 (RFC 7871 §6).
            let (option, scope) = Ecs::read(data)?;
            if scope != 0 {
                return None;
            }
            ecs = Some(option);
        }
        if let Some((at, data)) = find_option(rdata, COOKIE_OPTION).ok()?
            && cookie_len(data.len())
        {
            cookie = Some((opt.rdata_start + at, data.len()));
        }
        max_size = opt
            .class(query)
            .unwrap_or(UDP_PAYLOAD_PLAIN)
            .clamp(UDP_PAYLOAD_PLAIN, UDP_PAYLOAD_MAX);
    }
    if transport == Transport::Tcp {
        max_size = TCP_PAYLOAD_MAX;
    }
    key.name_len = u8::try_from(len).ok()?;
    key.qtype = qtype;
    key.qclass = qclass;
    key.flags = flags;
    key.ecs = ecs;
    key.hash = hash_of(key, hasher);
    Some(CacheClient {
        id: h.id,
        rd: h.flags & 0x0100 != 0,
        question_end,
        edns_do,
        max_size: usize::from(max_size),
        cookie,
    })
}

/// The key's hash under `hasher`.
fn hash_of(key: &CacheKey, hasher: &impl BuildHasher) -> u64 {
    let mut h = hasher.build_hasher();
    key.name().hash(&mut h);
    key.qtype.hash(&mut h);
    key.qclass.hash(&mut h);
    key.flags.hash(&mut h);
    key.ecs.hash(&mut h);
    h.finish()
}

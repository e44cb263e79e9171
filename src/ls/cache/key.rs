//! What a packet-cache entry is found by: [`Key`], read from a client
//! query's wire bytes in place (the name lower-cased into a fixed buffer, no
//! allocation), with what a hit needs to know of that client ([`Client`]:
//! its ID, RD bit, question bytes and OPT).
//!
//! A query is cacheable only when it is a plain one: QR=0, opcode QUERY, one
//! question whose name is uncompressed and well formed and whose type is
//! not a meta type or a zone transfer, no answer or authority records, at
//! most one OPT (EDNS version 0, root-owned) and no TSIG or SIG(0).
//! Anything else is `None`: it is forwarded as if there were no cache.
use std::hash::{BuildHasher, Hash, Hasher};

use crate::dns::{
    HEADER_LEN, NAME_MAX, TCP_PAYLOAD_MAX, Transport, UDP_PAYLOAD_MAX, UDP_PAYLOAD_PLAIN,
    WireHeader, u16_at, walk_message,
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

/// The question of a query as the cache knows it: the name lower-cased in
/// wire form, type, class, and the DO, CD, EDNS and transport flags; with
/// its hash under the cache's key.
#[derive(Clone)]
pub struct Key {
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
    /// Hash of all of the above under the cache's hasher.
    pub(super) hash: u64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name())
            .field("qtype", &self.qtype)
            .field("qclass", &self.qclass)
            .field("flags", &self.flags)
            .finish()
    }
}

impl Key {
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
            && self.name() == &*stored.name
    }

    /// This TCP query's key as if it had come over UDP (`None` when it
    /// came over UDP): a complete answer kept for a UDP client serves a TCP
    /// one as well.
    pub(super) fn as_udp(&self, hasher: &impl BuildHasher) -> Option<Key> {
        if self.flags & FLAG_TCP == 0 {
            return None;
        }
        let mut udp = self.clone();
        udp.flags &= !FLAG_TCP;
        udp.hash = hash_of(&udp, hasher);
        Some(udp)
    }

    /// The key kept in an entry (its name copied out).
    pub(super) fn to_stored(&self) -> StoredKey {
        StoredKey {
            name: self.name().into(),
            qtype: self.qtype,
            qclass: self.qclass,
            flags: self.flags,
        }
    }
}

/// An entry's own copy of its [`Key`], compared on every hit (no false hits
/// from a hash collision) and read by the flushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredKey {
    /// The lower-cased name in wire form.
    pub(super) name: Box<[u8]>,
    /// QTYPE.
    pub(super) qtype: u16,
    /// QCLASS.
    pub(super) qclass: u16,
    /// `FLAG_*` bits.
    pub(super) flags: u8,
}

/// What a hit needs of the client's query besides its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
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
}

/// Reads the key and the client's view of a query; `None` when it is not a
/// plain query the cache answers (see the module header). `hasher` is the
/// cache's (random keys, so names cannot be chosen to collide).
pub(super) fn read(
    query: &[u8],
    transport: Transport,
    hasher: &impl BuildHasher,
) -> Option<(Key, Client)> {
    let h = WireHeader::read(query)?;
    // QR=0, opcode QUERY, one question, no answer or authority records.
    if h.flags & 0xf800 != 0 || h.qdcount != 1 || h.ancount != 0 || h.nscount != 0 {
        return None;
    }
    let mut name = [0u8; NAME_MAX];
    let mut pos = HEADER_LEN;
    let mut len = 0usize;
    loop {
        let label = usize::from(*query.get(pos)?);
        if label > 63 {
            return None; // a pointer or a reserved label type
        }
        let end = pos.checked_add(1 + label)?;
        let bytes = query.get(pos..end)?;
        let to = name.get_mut(len..len + bytes.len())?;
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
    let walk = walk_message(query)?;
    if walk.signed {
        return None;
    }
    let mut flags = 0;
    if h.flags & 0x0010 != 0 {
        flags |= FLAG_CD;
    }
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
        max_size = opt
            .class(query)
            .unwrap_or(UDP_PAYLOAD_PLAIN)
            .clamp(UDP_PAYLOAD_PLAIN, UDP_PAYLOAD_MAX);
    }
    if transport == Transport::Tcp {
        max_size = TCP_PAYLOAD_MAX;
    }
    let mut key = Key {
        name,
        name_len: u8::try_from(len).ok()?,
        qtype,
        qclass,
        flags,
        hash: 0,
    };
    key.hash = hash_of(&key, hasher);
    let client = Client {
        id: h.id,
        rd: h.flags & 0x0100 != 0,
        question_end,
        edns_do,
        max_size: usize::from(max_size),
    };
    Some((key, client))
}

/// The key's hash under `hasher`.
fn hash_of(key: &Key, hasher: &impl BuildHasher) -> u64 {
    let mut h = hasher.build_hasher();
    key.name().hash(&mut h);
    key.qtype.hash(&mut h);
    key.qclass.hash(&mut h);
    key.flags.hash(&mut h);
    h.finish()
}

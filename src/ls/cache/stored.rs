//! What the cache keeps of a backend's answer ([`Entry`]), and the rules
//! that decide whether it keeps one at all ([`analyse`], [`Refused`]).
//!
//! Kept: a response (QR=1, opcode QUERY) to the entry's question, NOERROR
//! or NXDOMAIN, TC=0, not signed (TSIG, SIG(0): the signature covers the
//! bytes and the ID), its OPT (if any) the last record and carrying no
//! extended rcode, no name of it pointing into the header (`names`). Its lifetime:
//! - positive (records in the answer section): the smallest TTL of every
//!   record (answer, authority and additional: a changed glue or
//!   additional address is not served past its own TTL), capped by
//!   `max_ttl`;
//! - negative (NXDOMAIN, or NOERROR with no answer records: NODATA, RFC
//!   2308): the smaller of the TTL and the MINIMUM of the authority
//!   section's SOA and of every record's TTL (an NXDOMAIN carrying a CNAME,
//!   RFC 6604, lives no longer than the CNAME), capped by `neg_ttl`; with
//!   no SOA it is not kept (a referral is not kept either);
//! - zero: not kept. A TTL with its top bit set counts as 0 (RFC 2181 §8).
//!
//! EDNS Client Subnet (RFC 7871): an answer to a query with ECS is kept
//! under that query's subnet (the key holds it) with the scope its own ECS
//! option returned, which every hit echoes; an answer whose ECS option is
//! not the query's (another family, prefix or address) is not kept, nor
//! one with a non-zero scope to a query without ECS (it names no subnet to
//! keep it under).
//!
//! An answer longer than [`MAX_ENTRY`] bytes is not kept (dnsdist's
//! `maximumEntrySize` default): `max_entries` then bounds the cache's memory
//! (100,000 entries: at most about 400 MB of answers, in practice a few
//! hundred bytes each), where a TCP answer of up to 64 KiB per entry would
//! let a zone of large answers take 6.5 GB.
//!
//! The answer is kept without its OPT (ARCOUNT one less), so nothing a
//! backend said to one client (NSID, cookies, padding, its UDP size) is
//! replayed to another; the OPT being last, no byte before it moves. Bytes
//! past the last record are not kept either. The
//! offsets of every other record's TTL field are kept beside it, so a hit
//! ages them without walking the message again.
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::key::{CacheKey, ECS_OPTION, Ecs, StoredKey, find_option};
use super::names::names_stay_put;
use crate::dns::{HEADER_LEN, TYPE_OPT, TYPE_SIG, TYPE_TSIG, WireHeader, records, u16_at};

/// RR type SOA.
const TYPE_SOA: u16 = 6;
/// The largest TTL a record may carry; past it a TTL counts as 0 (RFC
/// 2181 §8).
pub(super) const TTL_MAX: u32 = i32::MAX as u32;

/// Positive, or which kind of negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Records in the answer section.
    Positive,
    /// NOERROR, no answer records: the name exists, the type does not.
    NoData,
    /// The name does not exist.
    NxDomain,
}

impl Kind {
    /// NODATA or NXDOMAIN.
    pub fn negative(self) -> bool {
        self != Kind::Positive
    }
}

/// The longest answer kept, in bytes.
pub(super) const MAX_ENTRY: usize = 4096;

/// Why an answer is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Cut short, a record outside the message, two OPTs, no question.
    Unreadable,
    /// Not a response to a standard query.
    NotAnAnswer,
    /// An rcode other than NOERROR and NXDOMAIN.
    Rcode,
    /// TC=1.
    Truncated,
    /// Carries a TSIG or SIG(0).
    Signed,
    /// Its question is not the entry's.
    OtherQuestion,
    /// An OPT with an extended rcode, or not the last record.
    OddOpt,
    /// A name pointing into the header (see `names`).
    HeaderPointer,
    /// Negative with no SOA in the authority section (or a referral).
    NoSoa,
    /// Its lifetime is zero (a zero TTL, or `neg_ttl = 0` for a negative).
    NoTtl,
    /// Longer than [`MAX_ENTRY`].
    TooLarge,
    /// An ECS option not the query's, or a non-zero scope to a query
    /// without one.
    Ecs,
    /// A flush ran since its query was sent: it may predate the change the
    /// flush was for.
    Flushed,
}

impl Refused {
    /// Whether the answer refused is new data all the same, so the entry
    /// it would have replaced must go (an older answer is neither served
    /// fresh nor stale once a newer one has been seen): yes for an answer
    /// kept from the cache only by its form or lifetime; no for a failure
    /// (an rcode, TC=1, unreadable, another question), which says nothing
    /// of the name's data, and for an answer from before a flush.
    pub fn supersedes(self) -> bool {
        match self {
            Refused::NoSoa
            | Refused::NoTtl
            | Refused::TooLarge
            | Refused::Signed
            | Refused::OddOpt
            | Refused::HeaderPointer
            | Refused::Ecs => true,
            Refused::Unreadable
            | Refused::NotAnAnswer
            | Refused::Rcode
            | Refused::Truncated
            | Refused::OtherQuestion
            | Refused::Flushed => false,
        }
    }
}

/// The caps on an entry's lifetime, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caps {
    /// Any entry.
    pub(super) max_ttl: u32,
    /// A negative one.
    pub(super) neg_ttl: u32,
}

/// Records whose TTL offsets an [`Entry`] holds in place (an answer with
/// more has them on the heap).
pub(super) const TTLS_INLINE: usize = 8;

/// One cached answer.
#[derive(Debug)]
pub(super) struct Entry {
    /// The question it answers (compared on every hit, read by flushes).
    pub(super) key: StoredKey,
    /// The backend's answer without its OPT.
    pub(super) msg: Box<[u8]>,
    /// Offsets in `msg` of every record's TTL field, in the entry itself
    /// up to [`TTLS_INLINE`] records (no pointer to follow on a hit).
    pub(super) ttls: SmallVec<[u16; TTLS_INLINE]>,
    /// Offset just past the question in `msg`.
    pub(super) question_end: usize,
    /// Positive, NODATA or NXDOMAIN.
    pub(super) kind: Kind,
    /// The SCOPE PREFIX-LENGTH of the answer's ECS option, echoed on every
    /// hit (the key holds the rest of the option); `None`: no ECS option.
    pub(super) ecs_scope: Option<u8>,
    /// When it was stored: TTLs are aged by the whole seconds since.
    pub(super) stored_at: Instant,
    /// When it stops being fresh.
    pub(super) expires: Instant,
}

/// The entry for `answer`, a backend's answer to the question `key`,
/// received at `now`; or why it is not kept.
pub(super) fn analyse(
    answer: &[u8],
    key: &CacheKey,
    caps: Caps,
    now: Instant,
) -> Result<Entry, Refused> {
    if answer.len() > MAX_ENTRY {
        return Err(Refused::TooLarge);
    }
    let h = WireHeader::read(answer).ok_or(Refused::Unreadable)?;
    if !h.is_response() || h.flags & 0x7800 != 0 {
        return Err(Refused::NotAnAnswer);
    }
    if h.truncated() {
        return Err(Refused::Truncated);
    }
    let kind = match (h.rcode(), h.ancount) {
        (0, 0) => Kind::NoData,
        (0, _) => Kind::Positive,
        (3, _) => Kind::NxDomain,
        _ => return Err(Refused::Rcode),
    };
    if h.qdcount != 1 {
        return Err(Refused::Unreadable);
    }
    let question_end = same_question(answer, key)?;
    let (an, ns) = (usize::from(h.ancount), usize::from(h.nscount));
    let ar = usize::from(u16_at(answer, 10).ok_or(Refused::Unreadable)?);
    let total = an + ns + ar;
    // A record takes at least 11 bytes: counts a hostile answer inflates
    // do not size the list.
    let mut ttls = SmallVec::<[u16; TTLS_INLINE]>::new();
    let mut min_ttl = u32::MAX;
    let mut soa_ttl = None;
    let mut opt_start = None;
    let mut ecs_scope = None;
    // Where the records end: bytes past them (junk a backend appended) are
    // not kept, or the OPT a hit appends would follow them.
    let mut end = question_end;
    for (i, r) in records(answer, question_end, total).enumerate() {
        let r = r.ok_or(Refused::Unreadable)?;
        if !names_stay_put(answer, &r, &ttls) {
            return Err(Refused::HeaderPointer);
        }
        let ttl_at = r.fixed + 4;
        let ttl = ttl_of(answer, ttl_at)?;
        if i >= an + ns {
            match r.rtype {
                TYPE_OPT if opt_start.is_some() => return Err(Refused::Unreadable),
                TYPE_OPT => {
                    // The extended rcode's upper bits (RFC 6891 §6.1.3)
                    // would make it another rcode; not last would move the
                    // records after it.
                    if r.ttl_high_byte(answer) != Some(0) || i + 1 != total {
                        return Err(Refused::OddOpt);
                    }
                    opt_start = Some(r.start);
                    let rdata = answer
                        .get(r.rdata_start..r.rdata_end)
                        .ok_or(Refused::Unreadable)?;
                    ecs_scope = ecs_scope_of(rdata, key.ecs.as_ref())?;
                    continue;
                }
                TYPE_TSIG | TYPE_SIG => return Err(Refused::Signed),
                _ => {}
            }
        }
        min_ttl = min_ttl.min(ttl);
        if (an..an + ns).contains(&i) && r.rtype == TYPE_SOA && soa_ttl.is_none() {
            // MINIMUM is the last field of the SOA's RDATA.
            let minimum = r
                .rdata_end
                .checked_sub(4)
                .filter(|&at| at >= r.rdata_start)
                .ok_or(Refused::Unreadable)?;
            soa_ttl = Some(ttl.min(ttl_of(answer, minimum)?));
        }
        ttls.push(u16::try_from(ttl_at).map_err(|_| Refused::Unreadable)?);
        end = r.rdata_end;
    }
    let lifetime = if kind.negative() {
        soa_ttl
            .ok_or(Refused::NoSoa)?
            .min(min_ttl)
            .min(caps.neg_ttl)
    } else {
        min_ttl.min(caps.max_ttl)
    };
    if lifetime == 0 {
        return Err(Refused::NoTtl);
    }
    let mut msg: Box<[u8]> = answer.get(..end).ok_or(Refused::Unreadable)?.into();
    if opt_start.is_some()
        && let Some(count) = msg.get_mut(10..12)
    {
        // Cannot underflow: the OPT was counted in ARCOUNT.
        let less = u16::try_from(ar - 1).unwrap_or_default();
        count.copy_from_slice(&less.to_be_bytes());
    }
    Ok(Entry {
        key: key.to_stored(),
        msg,
        ttls,
        question_end,
        kind,
        ecs_scope,
        stored_at: now,
        expires: now + Duration::from_secs(u64::from(lifetime)),
    })
}

/// The scope to keep of an answer whose OPT's RDATA is `rdata`, to a
/// query whose ECS option was `asked`: its ECS option's scope, `None`
/// without one.
///
/// # Errors
///
/// [`Refused::Ecs`]: an ECS option that is malformed or not the query's,
/// or a non-zero scope to a query without ECS.
fn ecs_scope_of(rdata: &[u8], asked: Option<&Ecs>) -> Result<Option<u8>, Refused> {
    let found = find_option(rdata, ECS_OPTION).map_err(|()| Refused::Unreadable)?;
    let Some((_, data)) = found else {
        return Ok(None);
    };
    let (theirs, scope) = Ecs::read(data).ok_or(Refused::Ecs)?;
    match asked {
        Some(ours) if *ours == theirs => Ok(Some(scope)),
        None if scope == 0 => Ok(None),
        _ => Err(Refused::Ecs),
    }
}

/// The TTL field at `at`, a value past [`TTL_MAX`] read as 0.
fn ttl_of(msg: &[u8], at: usize) -> Result<u32, Refused> {
    let b = msg.get(at..at + 4).ok_or(Refused::Unreadable)?;
    let ttl = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok(if ttl > TTL_MAX { 0 } else { ttl })
}

/// Where the question of `answer` ends, when it is `key`'s question (the
/// name compared case-insensitively, type and class exactly).
fn same_question(answer: &[u8], key: &CacheKey) -> Result<usize, Refused> {
    let name = key.name();
    let end = HEADER_LEN + name.len();
    let theirs = answer.get(HEADER_LEN..end).ok_or(Refused::Unreadable)?;
    // Same bytes up to case is the same label lengths too: a length byte is
    // below 64, where ASCII case folding changes nothing.
    if !theirs.eq_ignore_ascii_case(name)
        || u16_at(answer, end) != Some(key.qtype)
        || u16_at(answer, end + 2) != Some(key.qclass)
    {
        return Err(Refused::OtherQuestion);
    }
    Ok(end + 4)
}

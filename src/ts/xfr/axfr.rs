//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995) so standard
//! secondaries can replicate a TS's zones (the NOTIFY that tells them of a
//! change is [`super::notify`]'s).
//!
//! A transfer is a [`Transfer`]: a [`MessageStream`] that builds each
//! message only when the writer asks for the next one, from the compiled
//! zone behind a [`Cursor`] (a full transfer) or from the differences kept
//! for IXFR, so a transfer holds one message at a time whatever the zone's
//! size. Owners are compressed against the zone's origin and the first
//! occurrence of the owner before (never more than two pointers deep, as NSD
//! and Knot write them: Unbound, PowerDNS and Go cap the pointers of a name).
//! A record the compiled zone cannot give back whole stops the
//! transfer (logged, counted): the connection is closed rather than a zone
//! sent with a record missing. At most [`MAX_TRANSFERS`] run at once per TS
//! ([`TransferSlot`]).
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::ixfr::Delta;
use crate::dns::{self, HEADER_LEN};
use crate::server::{MessageStream, StreamAborted};
use crate::ts::metrics::XfrCounters;
use crate::ts::zone::rrlist::{RrList, split_rr};
use crate::ts::zone::{Cursor, TransferRecord, Zone, transfer};

/// Target size of one transfer message over TCP (well under the 64 KiB
/// limit, and under the 16 KiB reach of a compression pointer).
pub const XFR_MESSAGE_BUDGET: usize = 16_000;

/// Transfers over TCP a TS runs at once; past it a request gets SERVFAIL
/// (a passing condition: the secondary retries), counted.
pub const MAX_TRANSFERS: usize = 8;

/// One of the [`MAX_TRANSFERS`] places, held while a transfer runs.
#[derive(Debug)]
pub struct TransferSlot(Arc<XfrCounters>);

impl TransferSlot {
    /// A place for one more transfer, if fewer than `max` run.
    pub fn take(counters: &Arc<XfrCounters>, max: usize) -> Option<TransferSlot> {
        let before = counters.active.fetch_add(1, Relaxed);
        if before >= max {
            counters.active.fetch_sub(1, Relaxed);
            return None;
        }
        Some(TransferSlot(Arc::clone(counters)))
    }
}

impl Drop for TransferSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// The SOA record of `zone`, whole, its names uncompressed.
pub fn soa_wire(zone: &Zone) -> Vec<u8> {
    let soa = zone.soa_rr();
    let rec = Record::from_rdata(soa.name.clone(), soa.ttl, soa.data.clone());
    let mut out = Vec::with_capacity(96);
    let mut enc = BinEncoder::new(&mut out);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    // An SOA the zone was built with encodes; an empty record otherwise
    // makes the transfer fail loudly (see `Transfer`).
    if rec.emit(&mut enc).is_err() {
        out.clear();
    }
    out
}

/// One piece of a transfer's answer section.
#[derive(Debug)]
enum Part {
    /// A whole record (an SOA).
    Rr(Arc<[u8]>),
    /// The records of a list, from a byte position.
    List(Arc<RrList>, usize),
    /// The zone's records (the SOA aside), from a cursor.
    Zone(Cursor),
}

/// The messages of one zone transfer, built one at a time (see the module
/// header).
pub struct Transfer {
    zone: Zone,
    /// The request's ID and the response's flags word.
    id: u16,
    flags: u16,
    /// The question, sent in the first message only (RFC 5936 §2.2).
    question: Vec<u8>,
    parts: VecDeque<Part>,
    budget: usize,
    /// The longest a message may be: TCP's 65,535 bytes less the room kept
    /// for a TSIG ([`Transfer::leaving`]).
    limit: usize,
    first: bool,
    /// The OPT record every message ends with (the request had one: RFC
    /// 6891 §6.1.1), in wire form.
    opt: Option<[u8; 11]>,
    counters: Arc<XfrCounters>,
    _slot: Option<TransferSlot>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("zone", self.zone.origin())
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

/// What a transfer answers.
#[derive(Debug, Clone)]
pub enum Content {
    /// The whole zone: SOA, every record, SOA (AXFR; an IXFR falling back).
    Full,
    /// The current SOA alone (an IXFR from the current serial).
    Soa,
    /// The condensed difference (an IXFR): new SOA, old SOA, deletions,
    /// new SOA, additions, new SOA (RFC 1995 §4).
    Changes(Arc<Delta>),
}

/// The ID and flags of a response to the request `raw`: QR and AA set,
/// opcode, RD and CD copied, rcode NOERROR.
fn response_flags(raw: &[u8]) -> (u16, u16) {
    let h = dns::WireHeader::read(raw);
    let (id, flags) = h.map_or((0, 0), |h| (h.id, h.flags));
    (id, 0x8000 | 0x0400 | (flags & (0x7800 | 0x0100 | 0x0010)))
}

impl Transfer {
    /// The transfer of `content` of `zone` answering the request `raw`
    /// (whose question ends at `question_end`), in messages of about
    /// `budget` bytes, counted in `counters`, holding `slot` until done.
    pub fn new(
        zone: &Zone,
        content: Content,
        (raw, question_end): (&[u8], usize),
        budget: usize,
        counters: Arc<XfrCounters>,
        slot: Option<TransferSlot>,
    ) -> Self {
        let (id, flags) = response_flags(raw);
        let soa: Arc<[u8]> = soa_wire(zone).into();
        let parts = match content {
            Content::Full => VecDeque::from([
                Part::Rr(Arc::clone(&soa)),
                Part::Zone(Cursor::default()),
                Part::Rr(soa),
            ]),
            Content::Soa => VecDeque::from([Part::Rr(soa)]),
            Content::Changes(d) => {
                let new: Arc<[u8]> = d.new_soa.as_slice().into();
                VecDeque::from([
                    Part::Rr(Arc::clone(&new)),
                    Part::Rr(d.old_soa.as_slice().into()),
                    Part::List(Arc::clone(&d.deleted), 0),
                    Part::Rr(Arc::clone(&new)),
                    Part::List(Arc::clone(&d.added), 0),
                    Part::Rr(new),
                ])
            }
        };
        Transfer {
            zone: zone.clone(),
            id,
            flags,
            question: raw
                .get(HEADER_LEN..question_end)
                .unwrap_or_default()
                .to_vec(),
            parts,
            budget,
            limit: usize::from(dns::TCP_PAYLOAD_MAX),
            first: true,
            opt: None,
            counters,
            _slot: slot,
        }
    }

    /// The transfer with `room` bytes kept free in every message (for the
    /// TSIG each is signed with, RFC 8945 §5.3.1): a record that cannot fit
    /// in a message with that room stops the transfer.
    #[must_use]
    pub fn leaving(mut self, room: usize) -> Self {
        self.limit = usize::from(dns::TCP_PAYLOAD_MAX).saturating_sub(room);
        self
    }

    /// The transfer with `opt` (an OPT record in wire form) at the end of
    /// every message: the request had an OPT, and "compliant responders MUST
    /// include an OPT record in their respective responses" (RFC 6891
    /// §6.1.1; RFC 5936 §2.2.5 for the first AXFR message), as NSD and Knot
    /// send. It goes before the TSIG a signed transfer adds.
    #[must_use]
    pub fn with_opt(mut self, opt: Option<[u8; 11]>) -> Self {
        self.opt = opt;
        self
    }

    /// The next record to send, as owner and rest, or `None` at the end.
    fn peek(&mut self) -> Result<Option<TransferRecord<'_>>, String> {
        loop {
            let Some(part) = self.parts.front_mut() else {
                return Ok(None);
            };
            let done = match part {
                Part::Rr(rr) => {
                    if split_rr(rr).is_none() {
                        return Err("an SOA that cannot be encoded".to_owned());
                    }
                    false
                }
                Part::List(list, pos) => list.rr_at(*pos).is_none(),
                Part::Zone(cursor) => transfer::record_at(&self.zone, cursor)
                    .map_err(|e| e.to_string())?
                    .is_none(),
            };
            if !done {
                break;
            }
            self.parts.pop_front();
        }
        Ok(match self.parts.front_mut() {
            Some(Part::Rr(rr)) => split_rr(rr),
            Some(Part::List(list, pos)) => list.rr_at(*pos).and_then(|(rr, _)| split_rr(rr)),
            Some(Part::Zone(cursor)) => transfer::record_at(&self.zone, cursor).ok().flatten(),
            None => None,
        })
    }

    /// Moves past the record [`Transfer::peek`] returned.
    fn advance(&mut self) {
        match self.parts.front_mut() {
            Some(Part::Rr(_)) => {
                self.parts.pop_front();
            }
            Some(Part::List(list, pos)) => {
                if let Some((_, next)) = list.rr_at(*pos) {
                    *pos = next;
                }
            }
            Some(Part::Zone(cursor)) => cursor.take(),
            None => {}
        }
    }

    /// The next message, or `Err` with why the transfer cannot go on.
    fn build(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut msg = Vec::with_capacity(self.budget.min(dns::TCP_PAYLOAD_MAX.into()) + 512);
        msg.extend_from_slice(&self.id.to_be_bytes());
        msg.extend_from_slice(&self.flags.to_be_bytes());
        msg.extend_from_slice(&[0; 8]);
        let origin = self.zone.origin_wire().to_vec();
        let mut packer = Packer::new(&origin);
        if self.first {
            msg[5] = 1;
            msg.extend_from_slice(&self.question);
            // The question names the zone: its name is the origin.
            packer.origin_at = Some(HEADER_LEN);
        }
        // The OPT goes after the records: room kept for it.
        let opt_len = self.opt.map_or(0, |o| o.len());
        let (budget, limit) = (
            self.budget.saturating_sub(opt_len),
            self.limit.saturating_sub(opt_len),
        );
        let mut count: u16 = 0;
        while let Some((owner, rest)) = self.peek()? {
            let start = msg.len();
            packer.owner(&mut msg, owner);
            msg.extend_from_slice(rest);
            let over = msg.len() > budget;
            if over && count > 0 {
                msg.truncate(start);
                break;
            }
            if msg.len() > limit || count == u16::MAX {
                let room = usize::from(dns::TCP_PAYLOAD_MAX) - self.limit;
                return Err(format!(
                    "a record too large for a message: {} bytes with {room} kept for the TSIG, over 65535",
                    msg.len() + room
                ));
            }
            packer.wrote(start, owner);
            count += 1;
            self.advance();
            if over {
                break;
            }
        }
        if count == 0 && !self.first {
            return Ok(None);
        }
        self.first = false;
        msg[6..8].copy_from_slice(&count.to_be_bytes());
        if let Some(opt) = &self.opt {
            msg.extend_from_slice(opt);
            msg[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
        Ok(Some(msg))
    }

    /// True when every record was put in a message.
    fn is_done(&mut self) -> bool {
        matches!(self.peek(), Ok(None))
    }
}

/// `content` of `zone` answering the request `raw` (its question ending at
/// `question_end`) as one message of at most `max` bytes, `opt` at its end
/// ([`Transfer::with_opt`]), counted in `counters`; `None` when it takes
/// more (over UDP an IXFR then gets the SOA alone, RFC 1995 §2).
pub fn single(
    zone: &Zone,
    content: Content,
    (raw, opt): ((&[u8], usize), Option<[u8; 11]>),
    max: usize,
    counters: &Arc<XfrCounters>,
) -> Option<Vec<u8>> {
    let mut t = Transfer::new(zone, content, raw, max, Arc::clone(counters), None).with_opt(opt);
    let m = t.build().ok().flatten()?;
    if m.len() > max || !t.is_done() {
        return None;
    }
    counters.bytes.fetch_add(m.len() as u64, Relaxed);
    Some(m)
}

impl MessageStream for Transfer {
    fn next_message(&mut self) -> Option<Result<Vec<u8>, StreamAborted>> {
        match self.build() {
            Ok(Some(m)) => {
                self.counters.bytes.fetch_add(m.len() as u64, Relaxed);
                Some(Ok(m))
            }
            Ok(None) => None,
            Err(why) => {
                self.counters.failed.fetch_add(1, Relaxed);
                tracing::error!(zone = %self.zone.origin(), %why, "zone transfer stopped, connection closed");
                // Nothing more: not even an empty first message.
                self.parts.clear();
                self.first = false;
                Some(Err(StreamAborted))
            }
        }
    }
}

/// Owner compression in one message: a name equal to the one before
/// points at its first occurrence in the run (never at a pointer); a name
/// under the origin is written down to the origin, then points at the
/// origin's first occurrence. No owner is more than two pointers deep.
struct Packer<'o> {
    origin: &'o [u8],
    /// Where the origin's labels sit in the message.
    origin_at: Option<usize>,
    /// The last owner written and where its first occurrence (of the run
    /// of records it owns) starts.
    last: Option<(usize, [u8; 255], usize)>,
}

/// The longest offset a compression pointer reaches.
const POINTER_MAX: usize = 0x3fff;

impl<'o> Packer<'o> {
    fn new(origin: &'o [u8]) -> Self {
        Packer {
            origin,
            origin_at: None,
            last: None,
        }
    }

    /// The offset in `owner` where the origin's labels start, if under it.
    fn origin_in(&self, owner: &[u8]) -> Option<usize> {
        let mut at = 0;
        loop {
            let rest = owner.get(at..)?;
            if rest.eq_ignore_ascii_case(self.origin) {
                return Some(at);
            }
            let len = usize::from(*rest.first()?);
            if len == 0 {
                return None;
            }
            at += 1 + len;
        }
    }

    /// Whether `owner` is the last owner noted (case aside).
    fn is_last(&self, owner: &[u8]) -> bool {
        self.last.as_ref().is_some_and(|(_, name, len)| {
            name.get(..*len)
                .is_some_and(|n| n.eq_ignore_ascii_case(owner))
        })
    }

    /// Writes `owner` into `msg`, compressed when it can be.
    fn owner(&self, msg: &mut Vec<u8>, owner: &[u8]) {
        if let (true, Some((at, _, _))) = (self.is_last(owner), &self.last) {
            crate::ts::wire::push_name_ref(msg, *at);
            return;
        }
        match (self.origin_at, self.origin_in(owner)) {
            (Some(to), Some(cut)) if self.origin.len() > 2 => {
                msg.extend_from_slice(owner.get(..cut).unwrap_or_default());
                crate::ts::wire::push_name_ref(msg, to);
            }
            _ => msg.extend_from_slice(owner),
        }
    }

    /// Notes that `owner` was written at `start`. A name equal to the last
    /// one keeps pointing at that one's first occurrence: each later record
    /// of an owner is one pointer from it, two at most from the origin's
    /// labels, as NSD and Knot write it. (Moving the mark to the pointer just
    /// written made the k-th record of an owner a chain of k-1 pointers,
    /// which Unbound refuses past 256, PowerDNS past 100, Go past 10.)
    fn wrote(&mut self, start: usize, owner: &[u8]) {
        if start > POINTER_MAX || self.is_last(owner) {
            return;
        }
        let mut name = [0u8; 255];
        let n = owner.len().min(255);
        name[..n].copy_from_slice(owner.get(..n).unwrap_or_default());
        self.last = Some((start, name, n));
        if self.origin_at.is_none()
            && let Some(cut) = self.origin_in(owner)
            && start + cut <= POINTER_MAX
        {
            self.origin_at = Some(start + cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::source::SourceRecord;
    use crate::ts::zone::build;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, RecordType};

    /// The default SOA of a test zone at `serial`.
    fn soa_at(serial: u32) -> impl FnOnce(&Name, Option<&Name>) -> (u32, SOA) {
        move |o, _| {
            let ns = Name::from_ascii("ns.").unwrap();
            (300, SOA::new(ns, o.clone(), serial, 3600, 600, 86400, 60))
        }
    }

    fn table(names: u32, last: u8) -> Zone {
        let origin = Name::from_ascii("example.test.").unwrap();
        let records = (0..names)
            .map(|i| SourceRecord {
                name: Name::from_ascii(format!("host{i}.example.test.")).unwrap(),
                ttl: 300,
                data: RData::A(A::new(
                    10,
                    (i >> 8) as u8,
                    i as u8,
                    if i == 7 { last } else { 1 },
                )),
                line: 1,
            })
            .collect();
        build::zone(
            origin,
            vec![(0, records)],
            &[std::path::PathBuf::from("t")],
            soa_at(1),
        )
        .unwrap()
    }

    fn request(qtype: RecordType) -> (Vec<u8>, usize) {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.add_query(Query::query(
            Name::from_ascii("example.test.").unwrap(),
            qtype,
        ));
        let raw = m.to_vec().unwrap();
        let end = raw.len();
        (raw, end)
    }

    /// Every message of `t`, parsed back.
    fn drain(t: &mut dyn MessageStream) -> Vec<Message> {
        std::iter::from_fn(|| t.next_message())
            .map(|m| Message::from_vec(&m.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_full_transfer_is_every_record_between_two_soas_in_bounded_messages() {
        let z = table(5000, 1);
        let (raw, end) = request(RecordType::AXFR);
        let counters = Arc::new(XfrCounters::default());
        let slot = TransferSlot::take(&counters, 1).unwrap();
        assert!(TransferSlot::take(&counters, 1).is_none(), "the cap");
        let mut t = Transfer::new(
            &z,
            Content::Full,
            (&raw, end),
            XFR_MESSAGE_BUDGET,
            counters.clone(),
            Some(slot),
        );
        let msgs = drain(&mut t);
        assert!(msgs.len() > 3, "several messages: {}", msgs.len());
        assert_eq!(msgs[0].queries.len(), 1);
        assert!(
            msgs[1..].iter().all(|m| m.queries.is_empty()),
            "question in the first only"
        );
        assert!(
            msgs.iter()
                .all(|m| m.metadata.id == 4242 && m.metadata.authoritative)
        );
        let rrs: Vec<_> = msgs
            .iter()
            .flat_map(|m| m.answers.iter().cloned())
            .collect();
        assert_eq!(rrs.len(), 5002);
        assert_eq!(rrs[0].record_type(), RecordType::SOA);
        assert_eq!(rrs[5001].record_type(), RecordType::SOA);
        let got: std::collections::BTreeSet<_> = rrs[1..5001]
            .iter()
            .map(|r| (r.name.to_ascii(), r.data.clone()))
            .collect();
        let want: std::collections::BTreeSet<_> = z
            .records()
            .into_iter()
            .map(|(n, _, d)| (n.to_ascii(), d))
            .collect();
        assert_eq!(got, want);
        let total: u64 = msgs.iter().map(|m| m.to_vec().unwrap().len() as u64).sum();
        // Owners compressed against the origin: about 25 bytes a record here
        // (37 uncompressed).
        assert!(counters.bytes.load(Relaxed) <= total + 4 * msgs.len() as u64);
        assert!(
            counters.bytes.load(Relaxed) < 5000 * 30,
            "{}",
            counters.bytes.load(Relaxed)
        );
        drop(t);
        assert_eq!(counters.active.load(Relaxed), 0, "slot given back");
    }

    fn changes(old: &Zone, new: &Zone) -> Arc<Delta> {
        let (deleted, added) = transfer::diff(old, new, usize::MAX).unwrap();
        Arc::new(Delta {
            from: old.serial(),
            to: new.serial(),
            old_soa: soa_wire(old),
            new_soa: soa_wire(new),
            deleted: Arc::new(deleted),
            added: Arc::new(added),
        })
    }

    /// A table, the same with host7's address changed at serial 2, and an
    /// IXFR request.
    fn one_change() -> (Zone, Zone, (Vec<u8>, usize)) {
        let old = table(300, 1);
        let new = table(300, 2).with_serial(2);
        (old, new, request(RecordType::IXFR))
    }

    /// The compression pointers followed to read the name at `at` in
    /// `msg`, and where the name ends in place; `None` past 255 hops or the
    /// end (a loop).
    fn name_hops(msg: &[u8], mut at: usize) -> Option<(usize, usize)> {
        let (mut hops, mut end) = (0, None);
        loop {
            let len = *msg.get(at)?;
            match len {
                0 => return Some((hops, end.unwrap_or(at + 1))),
                l if l & 0xc0 == 0xc0 => {
                    end.get_or_insert(at + 2);
                    hops += 1;
                    if hops > 255 {
                        return None;
                    }
                    at = usize::from(u16::from_be_bytes([l & 0x3f, *msg.get(at + 1)?]));
                }
                l => at += 1 + usize::from(l),
            }
        }
    }

    /// The most pointers any owner name of `msg` (question and answer
    /// section) takes to read, as a resolver with a hop limit counts them.
    fn deepest_owner(msg: &[u8]) -> usize {
        let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
        let (qd, an) = (count(4), count(6));
        let (mut at, mut deepest) = (HEADER_LEN, 0);
        for i in 0..qd + an {
            let (hops, end) = name_hops(msg, at).expect("a name that reads");
            deepest = deepest.max(hops);
            at = if i < qd {
                end + 4
            } else {
                end + 10 + count(end + 8)
            };
        }
        assert_eq!(at, msg.len(), "every record walked");
        deepest
    }

    /// `many.example.test.` with `n` addresses (and `host0`).
    fn one_big_rrset(n: u32, serial: u32) -> Zone {
        let at = |name: &str, i: u32| SourceRecord {
            name: Name::from_ascii(name).unwrap(),
            ttl: 300,
            data: RData::A(A::new(10, 9, (i >> 8) as u8, i as u8)),
            line: 1,
        };
        let mut records: Vec<_> = (0..n).map(|i| at("many.example.test.", i)).collect();
        records.push(at("host0.example.test.", 0));
        build::zone(
            Name::from_ascii("example.test.").unwrap(),
            vec![(0, records)],
            &[std::path::PathBuf::from("t")],
            soa_at(serial),
        )
        .unwrap()
    }

    /// Unbound refuses a name behind more than 256 pointers, PowerDNS 100,
    /// BIND up to 9.16 16, Go 10: every record of a 300-record RRset must
    /// be at most two pointers deep (NSD and Knot write it so), in AXFR and
    /// in IXFR, over TCP and in one UDP message.
    #[test]
    fn no_owner_of_a_transfer_is_more_than_two_pointers_deep() {
        let (old, new) = (one_big_rrset(1, 1), one_big_rrset(300, 2));
        let axfr = request(RecordType::AXFR);
        let c = Arc::new(XfrCounters::default());
        let mut t = Transfer::new(
            &new,
            Content::Full,
            (&axfr.0, axfr.1),
            16_000,
            c.clone(),
            None,
        );
        let msgs: Vec<Vec<u8>> = std::iter::from_fn(|| t.next_message())
            .map(Result::unwrap)
            .collect();
        let parsed: usize = msgs
            .iter()
            .map(|m| Message::from_vec(m).unwrap().answers.len())
            .sum();
        assert_eq!(parsed, 303, "SOA, 301 records, SOA");
        let deepest = msgs.iter().map(|m| deepest_owner(m)).max();
        assert_eq!(deepest, Some(2), "AXFR");
        let ixfr = request(RecordType::IXFR);
        let content = Content::Changes(changes(&old, &new));
        let mut t = Transfer::new(&new, content, (&ixfr.0, ixfr.1), 16_000, c.clone(), None);
        let msgs: Vec<Vec<u8>> = std::iter::from_fn(|| t.next_message())
            .map(Result::unwrap)
            .collect();
        assert!(msgs.iter().all(|m| deepest_owner(m) <= 2), "IXFR");
        let content = Content::Changes(changes(&old, &new));
        let udp = single(&new, content, ((&ixfr.0, ixfr.1), None), 65_535, &c).unwrap();
        assert!(deepest_owner(&udp) <= 2, "IXFR in one message");
    }

    #[test]
    fn an_incremental_answer_has_the_rfc_1995_layout() {
        let (old, new, (raw, end)) = one_change();
        let counters = Arc::new(XfrCounters::default());
        let content = Content::Changes(changes(&old, &new));
        let budget = XFR_MESSAGE_BUDGET;
        let mut t = Transfer::new(&new, content, (&raw, end), budget, counters, None);
        let msgs = drain(&mut t);
        assert_eq!(msgs.len(), 1);
        let got: Vec<String> = msgs[0]
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::SOA(s) => format!("SOA {}", s.serial),
                d => format!("{} {d}", r.name),
            })
            .collect();
        assert_eq!(
            got,
            [
                "SOA 2",
                "SOA 1",
                "host7.example.test. 10.0.7.1",
                "SOA 2",
                "host7.example.test. 10.0.7.2",
                "SOA 2"
            ]
        );
    }

    #[test]
    fn over_udp_the_changes_go_in_one_message_or_not_at_all() {
        let (old, small, (raw, end)) = one_change();
        let c = Arc::new(XfrCounters::default());
        let fits = single(
            &small,
            Content::Changes(changes(&old, &small)),
            ((&raw, end), None),
            512,
            &c,
        )
        .unwrap();
        assert!(fits.len() <= 512);
        assert_eq!(Message::from_vec(&fits).unwrap().answers.len(), 6);
        // Every address changed: far over 512 bytes.
        let big = build::zone(
            Name::from_ascii("example.test.").unwrap(),
            vec![],
            &[],
            soa_at(3),
        )
        .unwrap();
        let big_changes = |size| {
            let content = Content::Changes(changes(&old, &big));
            single(&big, content, ((&raw, end), None), size, &c)
        };
        assert_eq!(big_changes(512), None);
        assert_eq!(big_changes(65_535).map(|_| ()), Some(()));
        let soa = single(&big, Content::Soa, ((&raw, end), None), 512, &c).unwrap();
        assert_eq!(Message::from_vec(&soa).unwrap().answers.len(), 1);
    }

    #[test]
    fn a_record_that_cannot_fit_with_the_tsig_room_stops_the_transfer() {
        use hickory_proto::rr::rdata::TXT;
        // One TXT of 65,471 bytes of RDATA: its message is 65,506 bytes,
        // under 65,535 alone, over it with a 76-byte TSIG.
        let mut strings = vec!["x".repeat(255); 255];
        strings.push("y".repeat(190));
        let origin = Name::from_ascii("example.test.").unwrap();
        let huge = SourceRecord {
            name: Name::from_ascii("huge.example.test.").unwrap(),
            ttl: 300,
            data: RData::TXT(TXT::new(strings)),
            line: 1,
        };
        let z = build::zone(
            origin,
            vec![(0, vec![huge])],
            &[std::path::PathBuf::from("t")],
            soa_at(1),
        )
        .unwrap();
        let (raw, end) = request(RecordType::AXFR);
        let run = |room: usize| {
            let counters = Arc::new(XfrCounters::default());
            let t = Transfer::new(
                &z,
                Content::Full,
                (&raw, end),
                16_000,
                counters.clone(),
                None,
            );
            let mut t = t.leaving(room);
            let sizes: Vec<_> = std::iter::from_fn(|| t.next_message())
                .map(|m| m.map(|m| m.len()))
                .collect();
            (sizes, counters.failed.load(Relaxed))
        };
        let (whole, failed) = run(0);
        assert_eq!(failed, 0);
        assert!(whole.iter().all(Result::is_ok), "{whole:?}");
        assert!(
            whole.iter().any(|m| m.as_ref().is_ok_and(|&l| l > 65_459)),
            "{whole:?}"
        );
        let (signed, failed) = run(76);
        assert_eq!(failed, 1, "counted failed");
        assert_eq!(signed.last(), Some(&Err(StreamAborted)), "{signed:?}");
        assert!(
            signed
                .iter()
                .all(|m| m.as_ref().map_or(true, |&l| l <= 65_459))
        );
    }
}

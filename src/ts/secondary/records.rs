//! A secondary zone's records as transfers bring them: [`ZoneCopy`] (the
//! SOA and the other records, keyed for lookup), the reading of a transfer's
//! answer record by record ([`TransferReader`]: AXFR, RFC 5936; IXFR's changes or
//! the whole zone, RFC 1995 §4), and an IXFR's changes applied to a copy
//! ([`ZoneCopy::apply`]): every deletion must find its record, every
//! addition must be new and each change must start at the serial it
//! follows, or the whole transfer is refused (the copy served is left as
//! it was and the secondary falls back to AXFR). Pure.
use std::collections::BTreeMap;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::ts::serials::serial_newer;

/// A record as a secondary keeps it.
pub type Rec = Record<RData>;

/// What identifies a record in an RRset: its owner, type, class and data,
/// names lower-cased (RFC 4343), the TTL aside (RFC 1995 deletes by data).
fn key_of(r: &Rec) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut out);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    let mut r = r.clone();
    r.ttl = 0;
    if r.emit(&mut enc).is_err() {
        // Not encodable: keyed by its text, which is never a wire form.
        out = format!("{r}").into_bytes();
    }
    out
}

/// The serial of an SOA record (`None` for any other).
pub fn soa_serial(r: &Rec) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// One version of a secondary zone: its SOA and its other records.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneCopy {
    /// The SOA.
    pub soa: Rec,
    records: BTreeMap<Vec<u8>, Rec>,
}

/// Why a transfer's answer cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferRefused {
    /// The records do not make a transfer (no SOA first, records after the
    /// last SOA, a change out of order...).
    #[error("malformed transfer: {0}")]
    Malformed(&'static str),
    /// An IXFR whose changes do not apply to the copy served.
    #[error("the IXFR does not apply: {0}")]
    Mismatch(String),
}

impl ZoneCopy {
    /// A copy of `soa` and `records` (SOAs among them left out). Records
    /// given twice count once.
    pub fn new(soa: Rec, records: impl IntoIterator<Item = Rec>) -> Self {
        let records = records
            .into_iter()
            .filter(|r| r.record_type() != RecordType::SOA)
            .map(|r| (key_of(&r), r))
            .collect();
        ZoneCopy { soa, records }
    }

    /// Its serial.
    pub fn serial(&self) -> u32 {
        soa_serial(&self.soa).unwrap_or(0)
    }

    /// The zone's origin (the SOA's owner).
    pub fn origin(&self) -> &Name {
        &self.soa.name
    }

    /// The records other than the SOA, in key order.
    pub fn records(&self) -> impl Iterator<Item = &Rec> + '_ {
        self.records.values()
    }

    /// How many records, the SOA included.
    pub fn len(&self) -> usize {
        1 + self.records.len()
    }

    /// Never: a copy holds its SOA.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The records at `owner` (its name case aside), in key order.
    pub fn records_at(&self, owner: &Name) -> impl Iterator<Item = &Rec> + '_ {
        let mut prefix = Vec::with_capacity(64);
        let mut enc = BinEncoder::new(&mut prefix);
        enc.set_name_encoding(NameEncoding::UncompressedLowercase);
        if owner.emit(&mut enc).is_err() {
            prefix.clear();
        }
        // A wire name ends with its root label: no other name's key
        // starts with it.
        let ok = !prefix.is_empty();
        self.records
            .range(prefix.clone()..)
            .take_while(move |(k, _)| ok && k.starts_with(&prefix))
            .map(|(_, r)| r)
    }

    /// `changes` applied one after another to this copy, in place; what
    /// undoes them is handed back ([`ZoneCopy::undo`]: the new version
    /// can still be refused after it is made).
    ///
    /// # Errors
    /// [`TransferRefused::Mismatch`] when a change does not start at the serial
    /// reached, deletes a record absent, or adds one present: the copy is
    /// then left as it was.
    pub fn apply(&mut self, changes: &[IxfrChange]) -> Result<Undo, TransferRefused> {
        let mut undo = Undo {
            soa: self.soa.clone(),
            log: Vec::new(),
        };
        match self.apply_logged(changes, &mut undo) {
            Ok(()) => Ok(undo),
            Err(e) => {
                self.undo(undo);
                Err(e)
            }
        }
    }

    fn apply_logged(
        &mut self,
        changes: &[IxfrChange],
        undo: &mut Undo,
    ) -> Result<(), TransferRefused> {
        for c in changes {
            let (from, to) = (soa_serial(&c.from), soa_serial(&c.to));
            if from != Some(self.serial()) {
                return Err(TransferRefused::Mismatch(format!(
                    "a change from serial {} while serial {} is served",
                    from.unwrap_or(0),
                    self.serial()
                )));
            }
            for d in &c.deleted {
                let key = key_of(d);
                let Some(was) = self.records.remove(&key) else {
                    return Err(TransferRefused::Mismatch(format!(
                        "{d} is deleted but absent"
                    )));
                };
                undo.log.push((key, Some(was)));
            }
            for a in &c.added {
                let key = key_of(a);
                if self.records.contains_key(&key) {
                    return Err(TransferRefused::Mismatch(format!(
                        "{a} is added but present"
                    )));
                }
                self.records.insert(key.clone(), a.clone());
                undo.log.push((key, None));
            }
            if to.is_none() {
                return Err(TransferRefused::Malformed("a change ends without an SOA"));
            }
            self.soa = c.to.clone();
        }
        Ok(())
    }

    /// Puts back what [`ZoneCopy::apply`] changed.
    pub fn undo(&mut self, undo: Undo) {
        for (key, was) in undo.log.into_iter().rev() {
            match was {
                Some(rec) => self.records.insert(key, rec),
                None => self.records.remove(&key),
            };
        }
        self.soa = undo.soa;
    }
}

/// What undoes one [`ZoneCopy::apply`]: the SOA before it, and each
/// record it removed (`Some`) or added (`None`), in order.
#[derive(Debug)]
pub struct Undo {
    soa: Rec,
    log: Vec<(Vec<u8>, Option<Rec>)>,
}

/// One change of an IXFR: from the zone at `from`'s serial to `to`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct IxfrChange {
    /// The SOA of the version changed from.
    pub from: Rec,
    /// Records deleted.
    pub deleted: Vec<Rec>,
    /// The SOA of the version changed to.
    pub to: Rec,
    /// Records added.
    pub added: Vec<Rec>,
}

/// What a transfer's answer held.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One SOA, not newer than the client's: nothing to do.
    UpToDate(Rec),
    /// The whole zone (an AXFR, or an IXFR answered in full).
    Full(ZoneCopy),
    /// Changes, to be applied to the client's copy; the last ends at `1`.
    Incremental(Vec<IxfrChange>, Rec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One record (the first SOA) read.
    Start,
    /// The whole zone's records.
    Full,
    /// Within a change's deletions, or its additions.
    Deleting,
    Adding,
    /// The last SOA read.
    Done,
}

/// Reads a transfer's answer record by record (see the module's text).
#[derive(Debug)]
pub struct TransferReader {
    /// The serial the client holds (asked by IXFR), `None` for AXFR.
    ours: Option<u32>,
    first: Option<Rec>,
    mode: Mode,
    records: Vec<Rec>,
    changes: Vec<IxfrChange>,
    pending: Option<IxfrChange>,
}

impl TransferReader {
    /// A reader of the answer to an IXFR from serial `ours`, or an AXFR
    /// (`None`).
    pub fn new(ours: Option<u32>) -> Self {
        TransferReader {
            ours,
            first: None,
            mode: Mode::Start,
            records: Vec::new(),
            changes: Vec::new(),
            pending: None,
        }
    }

    /// Whether the last record was read.
    pub fn done(&self) -> bool {
        self.mode == Mode::Done
    }

    /// Takes the next record of the answer section.
    ///
    /// # Errors
    /// [`TransferRefused::Malformed`]: not an SOA first, a record after the end, a
    /// class other than IN, a change that does not follow the last.
    pub fn push(&mut self, rec: Rec) -> Result<(), TransferRefused> {
        if rec.dns_class != DNSClass::IN {
            return Err(TransferRefused::Malformed(
                "a record of another class than IN",
            ));
        }
        let serial = soa_serial(&rec);
        let Some(first) = &self.first else {
            if serial.is_none() {
                return Err(TransferRefused::Malformed("the first record is no SOA"));
            }
            self.first = Some(rec);
            return Ok(());
        };
        let target = soa_serial(first).unwrap_or(0);
        match (self.mode, serial) {
            (Mode::Done, _) => {
                return Err(TransferRefused::Malformed("records after the last SOA"));
            }
            (Mode::Start, Some(s)) if self.ours == Some(s) && s != target => {
                self.start_change(rec);
            }
            (Mode::Start | Mode::Full, Some(s)) => {
                if s != target {
                    return Err(TransferRefused::Malformed("the last SOA is not the first"));
                }
                self.mode = Mode::Done;
            }
            (Mode::Start | Mode::Full, None) => {
                self.mode = Mode::Full;
                self.records.push(rec);
            }
            (Mode::Deleting, Some(_)) => {
                if let Some(c) = &mut self.pending {
                    c.to = rec;
                }
                self.mode = Mode::Adding;
            }
            (Mode::Deleting, None) => {
                if let Some(c) = &mut self.pending {
                    c.deleted.push(rec);
                }
            }
            (Mode::Adding, None) => {
                if let Some(c) = &mut self.pending {
                    c.added.push(rec);
                }
            }
            (Mode::Adding, Some(s)) => {
                let reached = self.pending.as_ref().and_then(|c| soa_serial(&c.to));
                if reached != Some(s) {
                    return Err(TransferRefused::Malformed(
                        "a change does not start where the last ended",
                    ));
                }
                if let Some(c) = self.pending.take() {
                    self.changes.push(c);
                }
                if s == target {
                    self.mode = Mode::Done;
                } else {
                    self.start_change(rec);
                }
            }
        }
        Ok(())
    }

    fn start_change(&mut self, from: Rec) {
        self.pending = Some(IxfrChange {
            to: from.clone(),
            from,
            deleted: Vec::new(),
            added: Vec::new(),
        });
        self.mode = Mode::Deleting;
    }

    /// A message of the answer ended: an IXFR answered with its first
    /// message holding one SOA not newer than the client's is up to date
    /// (RFC 1995 §2).
    pub fn message_ended(&mut self) {
        if self.mode == Mode::Start
            && let (Some(first), Some(ours)) = (&self.first, self.ours)
            && soa_serial(first).is_some_and(|s| !serial_newer(s, ours))
        {
            self.mode = Mode::Done;
        }
    }

    /// The answer read.
    ///
    /// # Errors
    /// [`TransferRefused::Malformed`] when it did not end.
    pub fn finish(self) -> Result<Answer, TransferRefused> {
        let (Mode::Done, Some(first)) = (self.mode, self.first) else {
            return Err(TransferRefused::Malformed(
                "the transfer ended before its last SOA",
            ));
        };
        if self.changes.is_empty()
            && self.records.is_empty()
            && let Some(ours) = self.ours
            && soa_serial(&first).is_some_and(|s| !serial_newer(s, ours))
        {
            return Ok(Answer::UpToDate(first));
        }
        if !self.changes.is_empty() {
            return Ok(Answer::Incremental(self.changes, first));
        }
        Ok(Answer::Full(ZoneCopy::new(first, self.records)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    use crate::dns::fixtures::name;

    fn soa(serial: u32) -> Rec {
        crate::dns::fixtures::soa("z.test.", serial)
    }

    fn a(owner: &str, last: u8) -> Rec {
        Record::from_rdata(name(owner), 300, RData::A(A::new(192, 0, 2, last)))
    }

    fn read(ours: Option<u32>, recs: Vec<Rec>) -> Result<Answer, TransferRefused> {
        let mut r = TransferReader::new(ours);
        for rec in recs {
            r.push(rec)?;
        }
        r.message_ended();
        r.finish()
    }

    fn copy(serial: u32, recs: &[(&str, u8)]) -> ZoneCopy {
        ZoneCopy::new(soa(serial), recs.iter().map(|(o, l)| a(o, *l)))
    }

    #[test]
    fn an_axfr_is_read_whole_and_only_whole() {
        let recs = vec![soa(5), a("a.z.test.", 1), a("b.z.test.", 2), soa(5)];
        let Answer::Full(c) = read(None, recs.clone()).unwrap() else {
            panic!("not full");
        };
        assert_eq!(c, copy(5, &[("a.z.test.", 1), ("b.z.test.", 2)]));
        // Cut before the last SOA: refused.
        assert!(read(None, recs[..3].to_vec()).is_err());
        // A record after the end, no SOA first, another last SOA.
        let mut after = recs.clone();
        after.push(a("c.z.test.", 3));
        assert!(read(None, after).is_err());
        assert!(read(None, vec![a("a.z.test.", 1), soa(5)]).is_err());
        assert!(read(None, vec![soa(5), a("a.z.test.", 1), soa(6)]).is_err());
        // An IXFR answered with the whole zone.
        assert!(matches!(read(Some(3), recs).unwrap(), Answer::Full(_)));
    }

    #[test]
    fn an_ixfr_is_read_as_its_changes_and_applied() {
        let served = copy(3, &[("a.z.test.", 1), ("b.z.test.", 2)]);
        let recs = vec![
            soa(5),
            soa(3),
            a("a.z.test.", 1),
            soa(4),
            a("a.z.test.", 9),
            soa(4),
            a("b.z.test.", 2),
            soa(5),
            a("c.z.test.", 3),
            soa(5),
        ];
        let Answer::Incremental(changes, last) = read(Some(3), recs).unwrap() else {
            panic!("not incremental");
        };
        assert_eq!((changes.len(), soa_serial(&last)), (2, Some(5)));
        let mut next = served.clone();
        let undo = next.apply(&changes).unwrap();
        assert_eq!(next, copy(5, &[("a.z.test.", 9), ("c.z.test.", 3)]));
        let at: Vec<_> = next.records_at(&name("C.z.TEST.")).cloned().collect();
        assert_eq!(at, vec![a("c.z.test.", 3)]);
        assert_eq!(next.records_at(&name("b.z.test.")).count(), 0);
        next.undo(undo);
        assert_eq!(next, served, "undone, the copy is as it was");
    }

    #[test]
    fn an_ixfr_that_does_not_apply_is_refused_whole() {
        let served = copy(3, &[("a.z.test.", 1)]);
        // Applied to a copy of `served`, which must be left as it was
        // whenever it is refused.
        let apply = |changes: &[IxfrChange]| {
            let mut c = served.clone();
            let got = c.apply(changes).map(|_| c.clone());
            if got.is_err() {
                assert_eq!(c, served, "a refused IXFR left the copy changed");
            }
            got
        };
        let change = |from, del: Vec<Rec>, to, add: Vec<Rec>| IxfrChange {
            from: soa(from),
            deleted: del,
            to: soa(to),
            added: add,
        };
        // A deletion of a record we do not hold.
        let c = change(3, vec![a("x.z.test.", 1)], 4, vec![]);
        assert!(matches!(apply(&[c]), Err(TransferRefused::Mismatch(_))));
        // An addition of one we hold.
        let c = change(3, vec![], 4, vec![a("a.z.test.", 1)]);
        assert!(apply(&[c]).is_err());
        // From another serial; a good change then a bad one.
        assert!(apply(&[change(2, vec![], 4, vec![])]).is_err());
        let good = change(3, vec![], 4, vec![a("b.z.test.", 1)]);
        let bad = change(4, vec![a("q.z.test.", 1)], 5, vec![]);
        assert!(apply(&[good.clone(), bad]).is_err());
        assert_eq!(apply(&[good]).unwrap().serial(), 4);
        // Deletions match whatever the case of names and the TTL.
        let mut upper = a("A.Z.TEST.", 1);
        upper.ttl = 7;
        assert!(apply(&[change(3, vec![upper], 4, vec![])]).is_ok());
        // Changes out of order in the stream.
        assert!(read(Some(3), vec![soa(5), soa(3), soa(4), soa(6), soa(5)]).is_err());
    }

    #[test]
    fn one_soa_not_newer_is_up_to_date() {
        assert!(matches!(
            read(Some(5), vec![soa(5)]).unwrap(),
            Answer::UpToDate(_)
        ));
        assert!(matches!(
            read(Some(6), vec![soa(5)]).unwrap(),
            Answer::UpToDate(_)
        ));
        // Newer, alone in its message: the transfer goes on (TCP).
        assert!(read(Some(4), vec![soa(5)]).is_err());
        assert!(read(None, vec![soa(5)]).is_err());
    }
}

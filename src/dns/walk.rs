//! One walk over the sections of a raw message, without decoding it: read a
//! 16-bit field ([`u16_at`]), skip a name ([`skip_name`]) or the questions
//! ([`skip_questions`]), read one record's place ([`RecordAt`]), go through
//! the records of the sections ([`records`]), and find a message's OPT and
//! its signature records ([`walk_message`]; [`walk_answer`] for a response
//! whose question was already checked). The NSID edit (`nsid.rs`) and
//! the LS's loop mark (`ls::loopmark`) both stand on it.
//!
//! Every function takes hostile bytes: an offset or a count beyond the
//! message, a name cut short or made of labels it cannot be, gives `None`,
//! never a panic; a compression pointer is not followed, so no name loops.
use super::limits::HEADER_LEN;

/// RR type OPT (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// RR type SIG, as SIG(0) (RFC 2931).
pub const TYPE_SIG: u16 = 24;
/// RR type TSIG (RFC 8945).
pub const TYPE_TSIG: u16 = 250;

/// The big-endian 16-bit field at `at`, or `None` past the end.
pub fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    // One bounds check: the two bytes as an array.
    msg.get(at..)?
        .first_chunk()
        .copied()
        .map(u16::from_be_bytes)
}

/// The offset just past the name at `pos`. A compression pointer ends the
/// name where it stands; it is not followed (its target does not matter for
/// finding where the record ends), so a pointer loop cannot loop here.
/// `None` when the name runs past the message or uses a label type not in
/// use (0x40, extended labels, RFC 6891 §5; 0x80).
pub fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return pos.checked_add(1),
            0x00 => pos = pos.checked_add(1 + usize::from(len))?,
            0xc0 => {
                msg.get(pos.checked_add(1)?)?;
                return pos.checked_add(2);
            }
            _ => return None,
        }
    }
}

/// The offset just past `count` questions starting at `pos`, each within
/// the message.
pub fn skip_questions(msg: &[u8], mut pos: usize, count: usize) -> Option<usize> {
    for _ in 0..count {
        pos = skip_name(msg, pos)?.checked_add(4)?;
        if pos > msg.len() {
            return None;
        }
    }
    Some(pos)
}

/// Where one resource record lies in a message; every offset is within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    /// Offset of its owner name.
    pub start: usize,
    /// Offset of its TYPE field (just past the owner name).
    pub fixed: usize,
    /// Its TYPE.
    pub rtype: u16,
    /// Offset of its RDLENGTH field.
    pub rdlen_at: usize,
    /// Offset of its RDATA.
    pub rdata_start: usize,
    /// Offset just past its RDATA (where the next record starts).
    pub rdata_end: usize,
}

impl RecordAt {
    /// The record starting at `pos`, or `None` when it does not lie wholly
    /// within `msg`.
    pub fn read(msg: &[u8], pos: usize) -> Option<Self> {
        let fixed = skip_name(msg, pos)?;
        let rtype = u16_at(msg, fixed)?;
        let rdlen_at = fixed.checked_add(8)?;
        let rdata_start = rdlen_at.checked_add(2)?;
        let rdata_end = rdata_start.checked_add(usize::from(u16_at(msg, rdlen_at)?))?;
        (rdata_end <= msg.len()).then_some(RecordAt {
            start: pos,
            fixed,
            rtype,
            rdlen_at,
            rdata_start,
            rdata_end,
        })
    }

    /// Whether its owner is the root (a one-byte name), as an OPT's must be
    /// (RFC 6891 §6.1.1).
    pub fn root_owned(&self) -> bool {
        self.fixed == self.start + 1
    }

    /// Its CLASS field (an OPT's: the sender's UDP payload size).
    pub fn class(&self, msg: &[u8]) -> Option<u16> {
        u16_at(msg, self.fixed.checked_add(2)?)
    }

    /// The first byte of its TTL field (an OPT's: the upper 8 bits of the
    /// extended rcode, RFC 6891 §6.1.3).
    pub fn ttl_high_byte(&self, msg: &[u8]) -> Option<u8> {
        msg.get(self.fixed.checked_add(4)?).copied()
    }
}

/// The records of a run of sections: `count` records from `pos`. Yields
/// `Some(record)` for each, or one `None` (and then nothing) when a record
/// does not lie within the message.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    msg: &'a [u8],
    pos: usize,
    left: usize,
}

/// The `count` records from `pos` of `msg`, one after another.
pub fn records(msg: &[u8], pos: usize, count: usize) -> Records<'_> {
    Records {
        msg,
        pos,
        left: count,
    }
}

impl Records<'_> {
    /// Where the next record starts (just past the last one yielded).
    pub fn pos(&self) -> usize {
        self.pos
    }
}

impl Iterator for Records<'_> {
    type Item = Option<RecordAt>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = RecordAt::read(self.msg, self.pos);
        match r {
            Some(r) => {
                self.left -= 1;
                self.pos = r.rdata_end;
            }
            None => self.left = 0,
        }
        Some(r)
    }
}

/// What a walk over a whole message found in its additional section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageWalk {
    /// Its OPT record, if it has one.
    pub opt: Option<RecordAt>,
    /// Whether it carries a TSIG or a SIG(0) record.
    pub signed: bool,
    /// Where its last record ends: any bytes after it are trailing junk
    /// (the ECS edit of a query leaves them out, `ls::ecs`).
    pub end: usize,
}

/// Walks the whole message: header counts, questions, then every record,
/// each checked to lie within `msg`. `None` when one does not, or when the
/// additional section has more than one OPT.
pub fn walk_message(msg: &[u8]) -> Option<MessageWalk> {
    let counts = Counts::read(msg)?;
    walk_records(msg, counts, skip_questions(msg, HEADER_LEN, counts.qd)?)
}

/// [`walk_message`] of a response already checked against its query's
/// question section, `question_len` bytes long (the upstream check, RFC
/// 5452: one question equal to the query's, or none): the question is not
/// walked again. Any other message is walked whole.
pub fn walk_answer(msg: &[u8], question_len: usize) -> Option<MessageWalk> {
    let counts = Counts::read(msg)?;
    let pos = match counts.qd {
        0 => HEADER_LEN,
        1 => HEADER_LEN.checked_add(question_len)?,
        _ => skip_questions(msg, HEADER_LEN, counts.qd)?,
    };
    walk_records(msg, counts, pos)
}

/// A message's four section counts.
#[derive(Debug, Clone, Copy)]
struct Counts {
    qd: usize,
    an: usize,
    ns: usize,
    ar: usize,
}

impl Counts {
    /// The counts of `msg`'s header, or `None` for a runt.
    fn read(msg: &[u8]) -> Option<Self> {
        let head: &[u8; HEADER_LEN] = msg.first_chunk()?;
        let count = |i: usize| usize::from(u16::from_be_bytes([head[4 + 2 * i], head[5 + 2 * i]]));
        Some(Counts {
            qd: count(0),
            an: count(1),
            ns: count(2),
            ar: count(3),
        })
    }
}

/// The records of a message whose questions end at `pos`, walked for
/// [`walk_message`].
fn walk_records(msg: &[u8], counts: Counts, pos: usize) -> Option<MessageWalk> {
    // Answer and authority records are only passed over: the additional
    // section is walked on its own, with no test of the section per record.
    let mut passed = records(msg, pos, counts.an + counts.ns);
    for r in &mut passed {
        r?;
    }
    let mut found = MessageWalk {
        opt: None,
        signed: false,
        end: 0,
    };
    let mut additional = records(msg, passed.pos(), counts.ar);
    for r in &mut additional {
        let r = r?;
        match r.rtype {
            TYPE_OPT if found.opt.is_some() => return None,
            TYPE_OPT => found.opt = Some(r),
            TYPE_TSIG | TYPE_SIG => found.signed = true,
            _ => {}
        }
    }
    found.end = additional.pos();
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with these counts (QD, AN, NS, AR).
    fn header(counts: [u16; 4]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80];
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m
    }

    /// `www.example. IN A`.
    const QUESTION: &[u8] = b"\x03www\x07example\x00\x00\x01\x00\x01";
    /// An A record owned by a pointer to the question's name.
    const ANSWER: &[u8] = &[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 1];
    /// An OPT (payload 1232, extended rcode `ext`), no options.
    fn opt(ext: u8) -> [u8; 11] {
        [0, 0, 41, 0x04, 0xd0, ext, 0, 0, 0, 0, 0]
    }

    /// A response: the question, one answer, an OPT (extended rcode 0).
    fn answered() -> Vec<u8> {
        let mut m = header([1, 1, 0, 1]);
        m.extend_from_slice(QUESTION);
        m.extend_from_slice(ANSWER);
        m.extend_from_slice(&opt(0));
        m
    }

    #[test]
    fn fields_and_names_past_the_end_are_none() {
        assert_eq!(u16_at(&[1, 2, 3], 1), Some(0x0203));
        assert_eq!(u16_at(&[1, 2, 3], 2), None);
        assert_eq!(u16_at(&[1, 2, 3], usize::MAX), None);
        assert_eq!(skip_name(b"\x03www\x00", 0), Some(5));
        assert_eq!(skip_name(b"\x03www", 0), None, "no terminating label");
        assert_eq!(skip_name(b"\x03ww", 0), None, "label cut short");
        assert_eq!(skip_name(&[0xc0], 0), None, "pointer cut short");
        assert_eq!(skip_name(&[0xc0, 0], 0), Some(2));
        assert_eq!(skip_name(&[0x40, 0], 0), None, "extended label");
        assert_eq!(skip_name(&[0x80, 0], 0), None);
        assert_eq!(skip_name(&[0], usize::MAX), None);
    }

    #[test]
    fn a_pointer_to_itself_ends_the_name_and_does_not_loop() {
        // Offset 12 points at 12: a walk that followed pointers would spin.
        let mut m = header([1, 0, 0, 0]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(skip_name(&m, 12), Some(14));
        assert_eq!(skip_questions(&m, HEADER_LEN, 1), Some(m.len()));
        assert_eq!(walk_message(&m).map(|w| w.opt), Some(None));
    }

    #[test]
    fn counts_beyond_the_message_are_none() {
        let m = answered();
        assert!(walk_message(&m).is_some());
        for counts in [[2, 1, 0, 1], [1, 2, 0, 1], [1, 1, 1, 1], [1, 1, 0, 2]] {
            let mut more = m.clone();
            more[4..12].copy_from_slice(&header(counts)[4..12]);
            assert_eq!(walk_message(&more), None, "{counts:?}");
        }
        // 65 535 questions in a short message: stops at once.
        let mut many = m.clone();
        many[4..6].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(walk_message(&many), None);
        assert_eq!(walk_message(&m[..HEADER_LEN - 1]), None, "runt");
        // A record's RDLENGTH reaching past the end.
        let mut long = m.clone();
        let last = long.len() - 1;
        long[last] = 1;
        assert_eq!(walk_message(&long), None);
        // Cut anywhere: never a panic, never a record outside.
        for n in 0..m.len() {
            assert_eq!(walk_message(&m[..n]), None, "cut at {n}");
        }
    }

    #[test]
    fn the_opt_and_signatures_are_found_in_the_additional_section() {
        let mut m = header([1, 1, 0, 1]);
        m.extend_from_slice(QUESTION);
        m.extend_from_slice(ANSWER);
        let opt_at = m.len();
        m.extend_from_slice(&opt(1));
        let w = walk_message(&m).expect("walks");
        let o = w.opt.expect("an OPT");
        assert!(!w.signed);
        assert_eq!(
            (o.start, o.rdata_start, o.rdata_end),
            (opt_at, m.len(), m.len())
        );
        assert_eq!(o.rdlen_at, m.len() - 2);
        assert!(o.root_owned());
        assert_eq!(o.class(&m), Some(1232));
        assert_eq!(o.ttl_high_byte(&m), Some(1));
        // A TSIG after it: signed.
        let mut signed = m.clone();
        signed[11] = 2;
        signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        assert!(walk_message(&signed).expect("walks").signed);
        // A second OPT: unreadable.
        let mut two = m.clone();
        two[11] = 2;
        two.extend_from_slice(&opt(0));
        assert_eq!(walk_message(&two), None);
        // An OPT type in the answer section is not the message's OPT.
        let mut in_answer = header([1, 1, 0, 0]);
        in_answer.extend_from_slice(QUESTION);
        in_answer.extend_from_slice(&opt(0));
        assert_eq!(walk_message(&in_answer).map(|w| w.opt), Some(None));
        // In the authority section neither an OPT nor a TSIG counts; the
        // additional section's OPT after them is found.
        let mut in_authority = header([1, 0, 2, 1]);
        in_authority.extend_from_slice(QUESTION);
        in_authority.extend_from_slice(&opt(0));
        in_authority.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        let opt_at = in_authority.len();
        in_authority.extend_from_slice(&opt(0));
        let w = walk_message(&in_authority).expect("walks");
        assert_eq!(w.opt.map(|o| o.start), Some(opt_at));
        assert!(!w.signed);
    }

    #[test]
    fn the_walk_ends_where_the_last_record_does() {
        let m = answered();
        assert_eq!(walk_message(&m).map(|w| w.end), Some(m.len()));
        let mut junk = m.clone();
        junk.extend_from_slice(&[0xff; 7]);
        assert_eq!(walk_message(&junk).map(|w| w.end), Some(m.len()));
        assert_eq!(
            walk_answer(&junk, QUESTION.len()).map(|w| w.end),
            Some(m.len())
        );
    }

    #[test]
    fn a_checked_answer_is_walked_from_past_its_question() {
        let m = answered();
        assert_eq!(walk_answer(&m, QUESTION.len()), walk_message(&m));
        assert!(
            walk_answer(&m, QUESTION.len())
                .and_then(|w| w.opt)
                .is_some()
        );
        // The question is not read: a length it does not have puts the
        // walk elsewhere (here inside the answer: it overruns).
        assert_eq!(walk_answer(&m, QUESTION.len() + 2), None);
        // No question (an error answer): the records start at once.
        let mut bare = header([0, 0, 0, 1]);
        bare.extend_from_slice(&opt(0));
        assert_eq!(walk_answer(&bare, QUESTION.len()), walk_message(&bare));
        assert!(walk_answer(&bare, 99).and_then(|w| w.opt).is_some());
        // Two questions (never checked as an answer): walked whole.
        let mut two = header([2, 0, 0, 1]);
        two.extend_from_slice(QUESTION);
        two.extend_from_slice(QUESTION);
        two.extend_from_slice(&opt(0));
        assert_eq!(walk_answer(&two, 1), walk_message(&two));
        assert!(walk_message(&two).is_some());
        assert_eq!(walk_answer(&m[..HEADER_LEN - 1], 0), None, "runt");
    }

    #[test]
    fn records_stop_at_the_first_that_overruns() {
        let mut m = header([1, 1, 0, 0]);
        m.extend_from_slice(QUESTION);
        let at = m.len();
        m.extend_from_slice(ANSWER);
        let mut rs = records(&m, at, 2);
        let first = rs.next().flatten().expect("the answer");
        assert_eq!((first.rtype, first.rdata_end), (1, m.len()));
        assert!(!first.root_owned());
        assert_eq!(rs.pos(), m.len());
        assert_eq!(rs.next(), Some(None), "a second record is not there");
        assert_eq!(rs.next(), None);
        assert_eq!(records(&m, at, 0).next(), None);
    }
}

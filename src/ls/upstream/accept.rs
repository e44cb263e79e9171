//! The RFC 5452 check of an upstream response against the query it answers:
//! one verdict ([`DropReason`]) per reason, the same on every path (the UDP fast
//! path, the async pool, TCP connections), each counted by
//! [`super::DropCounters::count`]. Pure: the drivers look the query up (by
//! socket and ID, or by connection and ID) and pass what they found.
//!
//! The checks, in this order everywhere:
//! - a datagram too short for a header: [`DropReason::WrongQuestion`];
//! - an ID no query on that socket (or connection) waits for:
//!   [`DropReason::WrongId`];
//! - the ID of a query that has ended (a late entry): [`DropReason::Late`] from
//!   the address it went to (not suspect: its backend was slow), else
//!   [`DropReason::WrongSource`];
//! - the ID of a waiting query: [`DropReason::WrongSource`] from another
//!   address, [`DropReason::WrongQuestion`] unless it is a response carrying the
//!   query's question, compared byte for byte (the name without regard to
//!   ASCII case), or no question at all in an error answer (see
//!   [`dns::answers_question`]).
//!
//! TCP has no source to check: the connection is the backend's.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::dns::{self, WireHeader};

/// Responses dropped because they did not match what was sent.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// From an address other than the backend's.
    pub wrong_source: AtomicU64,
    /// With an ID other than the query's.
    pub wrong_id: AtomicU64,
    /// With another question, not a response, or too short to tell.
    pub wrong_question: AtomicU64,
    /// Not dropped as suspect: answers that came after their query was
    /// settled (a hedge's loser) or past its deadline.
    pub late: AtomicU64,
    /// Not dropped either: answers to the async driver's queries read on
    /// another thread than the one that asked (a wake-up that crossed
    /// threads; 0 once every connection lives on one worker thread).
    pub off_thread: AtomicU64,
    /// TCP, DoT and DoH clients' queries sent to the backends from a thread
    /// that has no upstream sockets of its own (off the worker threads: the
    /// LS's shared pool).
    pub off_worker: AtomicU64,
}

impl DropCounters {
    /// All dropped responses.
    pub fn total(&self) -> u64 {
        self.wrong_source.load(Relaxed)
            + self.wrong_id.load(Relaxed)
            + self.wrong_question.load(Relaxed)
    }

    /// Counts one response not taken, by its reason.
    pub fn count(&self, why: DropReason) {
        let counter = match why {
            DropReason::WrongSource => &self.wrong_source,
            DropReason::WrongId => &self.wrong_id,
            DropReason::WrongQuestion => &self.wrong_question,
            DropReason::Late => &self.late,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// Why a response was not taken as the answer to a waiting query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// From an address other than the one its query went to.
    WrongSource,
    /// With an ID no query waits for.
    WrongId,
    /// With another question, not a response, or too short to tell.
    WrongQuestion,
    /// The answer to a query that has ended (a hedge's loser, a query past
    /// its deadline), from its backend: not suspect.
    Late,
}

/// The header of a response ([`DropReason::WrongQuestion`] when too short).
///
/// # Errors
/// [`DropReason::WrongQuestion`].
pub fn header(resp: &[u8]) -> Result<WireHeader, DropReason> {
    WireHeader::read(resp).ok_or(DropReason::WrongQuestion)
}

/// Checks a response `resp` (header `h`) with the ID of a waiting query,
/// which went to `sent_to` with the question section `question`, and came
/// from `from`.
///
/// # Errors
/// [`DropReason::WrongSource`] or [`DropReason::WrongQuestion`].
pub fn check(
    h: &WireHeader,
    resp: &[u8],
    from: SocketAddr,
    sent_to: SocketAddr,
    question: &[u8],
) -> Result<(), DropReason> {
    if from != sent_to {
        return Err(DropReason::WrongSource);
    }
    answers(h, resp, question)
}

/// Whether `resp` (header `h`) answers the question section `question`:
/// the check of a response on a connection, where the source is known.
///
/// # Errors
/// [`DropReason::WrongQuestion`].
pub fn answers(h: &WireHeader, resp: &[u8], question: &[u8]) -> Result<(), DropReason> {
    if dns::answers_question(h, resp, question) {
        Ok(())
    } else {
        Err(DropReason::WrongQuestion)
    }
}

/// The verdict on a response with the ID of a late entry whose query went
/// to `sent_to`, that came from `from`: [`DropReason::Late`] (its entry is
/// settled) or [`DropReason::WrongSource`] (a forgery; the entry stays).
pub fn late(from: SocketAddr, sent_to: SocketAddr) -> DropReason {
    if from == sent_to {
        DropReason::Late
    } else {
        DropReason::WrongSource
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `question` with ID 7, `qdcount` questions and `rcode`.
    fn response(question: &[u8], qdcount: u8, rcode: u8) -> Vec<u8> {
        let mut r = vec![0, 7, 0x80, rcode, 0, qdcount, 0, 0, 0, 0, 0, 0];
        if qdcount > 0 {
            r.extend_from_slice(question);
        }
        r
    }

    #[test]
    fn a_question_matches_without_regard_to_name_case_only() {
        let a = b"\x03WwW\x07example\x03com\x00\x00\x01\x00\x01";
        let b = b"\x03www\x07EXAMPLE\x03com\x00\x00\x01\x00\x01";
        let c = b"\x03www\x07example\x03com\x00\x00\x1c\x00\x01";
        let r = response(a, 1, 0);
        let h = header(&r).unwrap();
        assert_eq!(answers(&h, &r, b), Ok(()));
        assert_eq!(answers(&h, &r, c), Err(DropReason::WrongQuestion));
    }

    #[test]
    fn one_verdict_per_reason() {
        let q = b"\x03www\x04test\x00\x00\x01\x00\x01";
        let backend: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(header(&[0; 11]).err(), Some(DropReason::WrongQuestion));
        let ok = response(q, 1, 0);
        let h = header(&ok).unwrap();
        assert_eq!(check(&h, &ok, backend, backend, q), Ok(()));
        assert_eq!(
            check(&h, &ok, other, backend, q),
            Err(DropReason::WrongSource),
            "the source first"
        );
        let other_q = b"\x03www\x04test\x00\x00\x1c\x00\x01";
        assert_eq!(
            check(&h, &ok, backend, backend, other_q),
            Err(DropReason::WrongQuestion)
        );
        // No question: only in an error answer (a server that could not read it).
        let formerr = response(q, 0, 1);
        let h = header(&formerr).unwrap();
        assert_eq!(check(&h, &formerr, backend, backend, q), Ok(()));
        let empty = response(q, 0, 0);
        let h = header(&empty).unwrap();
        assert_eq!(
            check(&h, &empty, backend, backend, q),
            Err(DropReason::WrongQuestion)
        );
        assert_eq!(late(backend, backend), DropReason::Late);
        assert_eq!(late(other, backend), DropReason::WrongSource);
    }
}

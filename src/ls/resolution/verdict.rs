//! What one backend's response means for a query, by its header alone
//! ([`Verdict`], [`classify`], per layout), and what the answers add up to
//! when none of them is final ([`Tally`], [`settle`]): pure.

use hickory_proto::op::ResponseCode;

use crate::config::Layout;
use crate::dns::WireHeader;

/// What one backend's response means for the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ends the query: the client gets this response.
    Final,
    /// Partitioned: "no such name" from this backend; ask the others.
    NxDomain,
    /// Partitioned: the name exists here but has no records of this type
    /// (or is only the parent of other names); ask the others.
    NoData,
    /// An error rcode, or no usable response: as if this backend had not answered.
    Failed,
    /// SERVFAIL with AA=1: the authority's own verdict that it has no
    /// answer now (a TS service with no live endpoint it can see). Not
    /// final: another replica may see the endpoints up, so the others are
    /// asked as after any SERVFAIL; but when the query ends with no useful
    /// answer, this SERVFAIL is passed on, never a stale cached answer.
    AuthFailed,
    /// FORMERR or NOTIMP: the backend could not read the query, or does not
    /// implement it. Not final (another backend may answer it) and no fault
    /// of the backend's own; passed on when every backend asked said so (the
    /// client's query is at fault, e.g. two OPT records).
    Rejected,
    /// REFUSED: "not my zone" (or "not for you"). Not final and no fault of
    /// the backend's; under `partitioned`, it holds no name of the query's
    /// zone, so the others' negative answers are conclusive without it; the
    /// REFUSED is passed on when every backend refused.
    Refused,
}

/// Classifies a response by its header (pure): rcode, AA and the counts of
/// answer and authority records. A SERVFAIL with AA=1 is the authority's
/// own ([`Verdict::AuthFailed`]). Any answer with records is positive (also
/// an NXDOMAIN holding a CNAME into another backend's names). A NOERROR
/// answer with no records is a referral (positive) when it is not
/// authoritative and carries authority records, else NODATA.
pub fn classify(h: &WireHeader, layout: Layout) -> Verdict {
    let negative = match ResponseCode::from_low(h.rcode()) {
        ResponseCode::Refused => return Verdict::Refused,
        // An authoritative SERVFAIL is the authority's own answer (a TS
        // service with no live endpoint, `when_all_down = "servfail"`):
        // another replica may still answer; if none does, it is passed on.
        ResponseCode::ServFail if h.authoritative() => return Verdict::AuthFailed,
        ResponseCode::ServFail | ResponseCode::FormErr | ResponseCode::NotImp => {
            return Verdict::Failed;
        }
        // An NXDOMAIN that carries records is a CNAME whose target this
        // backend does not hold (RFC 6604): the CNAME is a positive answer.
        ResponseCode::NXDomain if h.ancount > 0 => return Verdict::Final,
        ResponseCode::NXDomain => Verdict::NxDomain,
        ResponseCode::NoError
            if h.ancount == 0 && (h.authoritative() || h.nscount == 0) && !h.truncated() =>
        {
            Verdict::NoData
        }
        _ => return Verdict::Final,
    };
    match layout {
        Layout::Partitioned => negative,
        Layout::Replicated => Verdict::Final,
    }
}

/// How a query with no final answer ends, once every candidate asked has
/// answered or the deadline has passed (pure; see [`settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every backend gave a negative answer: pass this backend's on (a
    /// NODATA when any backend said NODATA, as the name exists somewhere).
    PassOn(usize),
    /// Every backend asked failed (error rcodes) before the deadline: SERVFAIL.
    AllFailed,
    /// Every backend asked rejected the query (FORMERR, NOTIMP), or refused
    /// it with every backend refusing or rejecting: pass this backend's
    /// rejection (else its refusal) on.
    Rejected(usize),
    /// Some backend was not heard from (down, silent, failed): the negatives
    /// prove nothing, so the `on_timeout` answer.
    Unproven,
}

/// What the answers so far add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Backends in the snapshot.
    pub backends: usize,
    /// Backends asked.
    pub asked: usize,
    /// NXDOMAIN answers.
    pub nxdomain: usize,
    /// NODATA answers.
    pub nodata: usize,
    /// Error answers and errors (rejections included).
    pub failed: usize,
    /// Rejections (FORMERR, NOTIMP) among `failed`.
    pub rejected: usize,
    /// The backend whose rejection would be passed on (the first).
    pub rejection: Option<usize>,
    /// Refusals (REFUSED) among `failed`.
    pub refused: usize,
    /// The backend whose refusal would be passed on (the first).
    pub refusal: Option<usize>,
    /// The backend whose negative answer would be passed on.
    pub negative: Option<usize>,
    /// Whether `negative` is a NODATA.
    pub negative_is_nodata: bool,
    /// The first backend that gave an authoritative SERVFAIL (counted among
    /// `failed`): its answer is passed on when no useful one comes.
    pub servfail: Option<usize>,
}

impl Tally {
    /// Counts one negative answer of backend `at`; true when it becomes the
    /// one to pass on (the first NODATA, else the latest NXDOMAIN), so the
    /// driver keeps its bytes.
    pub fn negative(&mut self, at: usize, verdict: Verdict) -> bool {
        if verdict == Verdict::NoData {
            self.nodata += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
                self.negative_is_nodata = true;
                return true;
            }
            false
        } else {
            self.nxdomain += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
                return true;
            }
            false
        }
    }
}

/// The end of a query that got no final answer (pure). `timed_out`: the
/// deadline passed with some backend still silent.
pub fn settle(t: &Tally, timed_out: bool) -> Settled {
    let negatives = t.nxdomain + t.nodata;
    // A backend that refused holds no name of the query's zone: it is as
    // good as a negative answer for the partitioned rule.
    let heard = negatives + t.refused;
    match t.negative {
        Some(at) if !timed_out && heard == t.backends && t.asked == t.backends => {
            Settled::PassOn(at)
        }
        _ if !timed_out && negatives == 0 && t.failed > 0 && t.failed == t.asked => {
            let every_refused = t.refused == t.backends && t.asked == t.backends;
            match (t.rejection, t.refusal) {
                (Some(at), _) if t.rejected + t.refused == t.failed => Settled::Rejected(at),
                (None, Some(at)) if every_refused => Settled::Rejected(at),
                _ => Settled::AllFailed,
            }
        }
        _ => Settled::Unproven,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response header: rcode, AA, answer and authority counts.
    fn hdr(rcode: u8, aa: bool, an: u16, ns: u16) -> WireHeader {
        WireHeader {
            id: 1,
            flags: 0x8000 | if aa { 0x0400 } else { 0 } | u16::from(rcode),
            qdcount: 1,
            ancount: an,
            nscount: ns,
        }
    }

    #[test]
    fn verdicts() {
        use Layout::*;
        assert_eq!(classify(&hdr(0, true, 1, 0), Partitioned), Verdict::Final);
        assert_eq!(
            classify(&hdr(3, true, 0, 1), Partitioned),
            Verdict::NxDomain
        );
        assert_eq!(classify(&hdr(3, true, 0, 1), Replicated), Verdict::Final);
        // A CNAME whose target another partition holds: NXDOMAIN with the CNAME.
        assert_eq!(classify(&hdr(3, true, 1, 1), Partitioned), Verdict::Final);
        // NODATA (AA, SOA in authority) is as inconclusive as NXDOMAIN.
        assert_eq!(classify(&hdr(0, true, 0, 1), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, false, 0, 0), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, true, 0, 1), Replicated), Verdict::Final);
        // A referral (no AA, NS in authority) is a positive answer.
        assert_eq!(classify(&hdr(0, false, 0, 2), Partitioned), Verdict::Final);
        for rc in [1, 2, 4] {
            assert_eq!(
                classify(&hdr(rc, false, 0, 0), Partitioned),
                Verdict::Failed
            );
            assert_eq!(classify(&hdr(rc, false, 0, 0), Replicated), Verdict::Failed);
        }
        for layout in [Partitioned, Replicated] {
            assert_eq!(classify(&hdr(5, false, 0, 0), layout), Verdict::Refused);
            // The authority's own SERVFAIL (AA=1: no live endpoint) is
            // not final: another replica may see the endpoints up.
            assert_eq!(classify(&hdr(2, true, 0, 0), layout), Verdict::AuthFailed);
        }
    }

    fn tally(backends: usize, answers: &[Verdict]) -> Tally {
        let mut t = Tally {
            backends,
            asked: answers.len(),
            ..Tally::default()
        };
        for (i, v) in answers.iter().enumerate() {
            match v {
                Verdict::Failed | Verdict::AuthFailed => t.failed += 1,
                Verdict::Final => unreachable!("a final answer ends the query"),
                v => {
                    t.negative(i, *v);
                }
            }
        }
        t
    }

    #[test]
    fn every_backend_negative_passes_nodata_before_nxdomain() {
        use Verdict::*;
        assert_eq!(
            settle(&tally(3, &[NxDomain, NoData, NxDomain]), false),
            Settled::PassOn(1)
        );
        assert_eq!(
            settle(&tally(2, &[NxDomain, NxDomain]), false),
            Settled::PassOn(1)
        );
        assert_eq!(
            settle(&tally(2, &[NoData, NoData]), false),
            Settled::PassOn(0)
        );
    }

    #[test]
    fn a_backend_not_heard_from_makes_negatives_unproven() {
        use Verdict::*;
        // One of two backends skipped as down.
        assert_eq!(settle(&tally(2, &[NxDomain]), false), Settled::Unproven);
        // One failed, one negative.
        assert_eq!(
            settle(&tally(2, &[NxDomain, Failed]), false),
            Settled::Unproven
        );
        // One silent until the deadline.
        let mut t = tally(2, &[NxDomain]);
        t.asked = 2;
        assert_eq!(settle(&t, true), Settled::Unproven);
    }

    #[test]
    fn all_failed_is_servfail_before_the_deadline_only() {
        use Verdict::*;
        assert_eq!(
            settle(&tally(2, &[Failed, Failed]), false),
            Settled::AllFailed
        );
        assert_eq!(
            settle(&tally(2, &[Failed, Failed]), true),
            Settled::Unproven
        );
    }
}

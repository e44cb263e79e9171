//! The TS's counters: every request ends as one [`RequestOutcome`] (an answer with
//! its rcode, or no answer and why), and every reload as applied or refused.
//! Plain atomics, counted on the query path without a lock; the metrics
//! server (`crate::metrics::serve_ts`) renders them with the zones' serials.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use hickory_proto::op::ResponseCode;

/// Rcodes counted one by one: the header's 4 bits (0 to 15) and BADVERS (16). Any
/// other (the TS makes none) is counted in the slot after them, [`OTHER_RCODE`].
pub const RCODES: usize = 17;

/// The slot of [`TsMetrics::answers`] that counts every rcode above [`RCODES`].
pub const OTHER_RCODE: usize = RCODES;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Not a query to answer: an unreadable header, or a response (QR=1).
    Malformed,
    /// A name the TS does not hold, with `on_miss = "silent"`.
    SilentMiss,
    /// Dropped by the `fault.drop_ratio` knob.
    Fault,
    /// Dropped by response rate limiting (`rrl`).
    RateLimited,
}

impl Unanswered {
    /// Every reason, in the order of [`TsMetrics::unanswered`].
    pub const ALL: [Unanswered; 4] = [
        Unanswered::Malformed,
        Unanswered::SilentMiss,
        Unanswered::Fault,
        Unanswered::RateLimited,
    ];

    /// Its `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Unanswered::Malformed => "malformed",
            Unanswered::SilentMiss => "silent_miss",
            Unanswered::Fault => "fault",
            Unanswered::RateLimited => "rrl",
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Answered with this rcode (a zone transfer counts once, NOERROR).
    Answered(ResponseCode),
    /// Not answered.
    Unanswered(Unanswered),
}

impl RequestOutcome {
    /// What the decoder's rejection of a request makes of it: its error
    /// answer's rcode, or unanswered (malformed) when it is dropped.
    pub fn of_reject(reject: &crate::dns::Reject) -> Self {
        match reject {
            crate::dns::Reject::Drop => RequestOutcome::Unanswered(Unanswered::Malformed),
            crate::dns::Reject::Rcode(e) => RequestOutcome::Answered(e.rcode),
        }
    }
}

/// The TS's counters since start.
#[derive(Debug, Default)]
pub struct TsMetrics {
    /// Requests handled: the sum of `answers` and `unanswered`.
    pub queries: AtomicU64,
    /// Answers by rcode (index = the rcode's value), any other in [`OTHER_RCODE`].
    pub answers: [AtomicU64; RCODES + 1],
    /// Requests not answered, by [`Unanswered::ALL`] order.
    pub unanswered: [AtomicU64; Unanswered::ALL.len()],
    /// Requests refused as no zone's (another class, a name in no zone, a
    /// transfer not allowed): `dnslb_ts_zone_queries_total{zone="-"}`.
    pub no_zone: crate::ts::zone::ZoneQueries,
    /// Reloads that swapped new zones in.
    pub reloads_applied: AtomicU64,
    /// Reloads refused (a bad file): the old zones kept serving.
    pub reloads_refused: AtomicU64,
    /// Zone transfers: shared with the transfers under way.
    pub xfr: Arc<XfrCounters>,
    /// TCP connections closed right after `accept`: the connection cap was full.
    pub tcp_cap_refused: AtomicU64,
    /// TCP connections closed right after `accept`: the cap was contended
    /// and their source held its share of it.
    pub tcp_share_refused: AtomicU64,
    /// Its secondary zones' transfers and NOTIFYs.
    pub secondary: SecondaryCounters,
    /// The AF_XDP path (`xdp` in its `[[ts]]`), when on.
    pub xdp: Arc<crate::xdp::XdpCounters>,
    /// Response rate limiting (`rrl` in its `[[ts]]`), when on.
    pub rrl: RrlCounters,
    /// DNS over QUIC (`quic` in its `[[ts]]`), set when on.
    pub doq: std::sync::OnceLock<Arc<crate::server::doq::DoqStats>>,
}

/// What response rate limiting did to UDP answers (`dnslb_ts_rrl_total`).
#[derive(Debug, Default)]
pub struct RrlCounters {
    /// Limited answers sent truncated (TC=1, no records): the client may
    /// ask again over TCP.
    pub slipped: AtomicU64,
    /// Limited answers dropped (also counted unanswered, reason `rrl`).
    pub dropped: AtomicU64,
    /// Answers `log_only` sent that it would have limited.
    pub would_limit: AtomicU64,
    /// Answers to exempt clients (its `exempt` networks, a valid server
    /// cookie), never limited.
    pub exempt: AtomicU64,
}

/// What the secondary zones did (`dnslb_ts_secondary_*`), all zones told.
#[derive(Debug, Default)]
pub struct SecondaryCounters {
    /// Whole zones transferred and applied (AXFR, or an IXFR answered in full).
    pub axfr: AtomicU64,
    /// IXFRs applied.
    pub ixfr: AtomicU64,
    /// Checks that found the zone up to date.
    pub up_to_date: AtomicU64,
    /// Attempts that failed (no answer, cut, refused, TSIG, limits).
    pub failed: AtomicU64,
    /// IXFR answers cut, malformed or not applying (then fallen back to
    /// AXFR).
    pub ixfr_refused: AtomicU64,
    /// Zones that expired (SOA EXPIRE without contact).
    pub expired: AtomicU64,
    /// NOTIFYs accepted.
    pub notify_accepted: AtomicU64,
    /// NOTIFYs refused (not from the primary, TSIG, no such zone).
    pub notify_refused: AtomicU64,
}

/// The zone transfers' counters (`dnslb_ts_xfr_*`).
#[derive(Debug, Default)]
pub struct XfrCounters {
    /// AXFR requests answered with the whole zone.
    pub axfr: AtomicU64,
    /// IXFR requests answered with the differences.
    pub ixfr_incremental: AtomicU64,
    /// IXFR requests answered with the whole zone (differences gone).
    pub ixfr_full: AtomicU64,
    /// IXFR requests answered with the SOA alone (up to date, or over UDP
    /// when the differences do not fit).
    pub ixfr_soa: AtomicU64,
    /// Bytes of transfer messages built (AXFR and IXFR).
    pub bytes: AtomicU64,
    /// Transfers refused: [`MAX_TRANSFERS`](super::xfr::axfr::MAX_TRANSFERS) ran.
    pub refused_busy: AtomicU64,
    /// Transfers stopped midway: a record could not be encoded.
    pub failed: AtomicU64,
    /// Transfers running now.
    pub active: AtomicUsize,
}

impl TsMetrics {
    /// Counts one request and what became of it.
    pub fn record(&self, outcome: RequestOutcome) {
        self.queries.fetch_add(1, Relaxed);
        let counter = match outcome {
            RequestOutcome::Answered(rcode) => {
                let i = usize::from(u16::from(rcode)).min(OTHER_RCODE);
                self.answers.get(i)
            }
            RequestOutcome::Unanswered(why) => self.unanswered.get(why as usize),
        };
        if let Some(c) = counter {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one reload: applied when `ok`, else refused.
    pub fn record_reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_applied
        } else {
            &self.reloads_refused
        };
        c.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_is_counted_once() {
        let m = TsMetrics::default();
        m.record(RequestOutcome::Answered(ResponseCode::NoError));
        m.record(RequestOutcome::Answered(ResponseCode::NXDomain));
        m.record(RequestOutcome::Answered(ResponseCode::NXDomain));
        m.record(RequestOutcome::Answered(ResponseCode::BADVERS));
        m.record(RequestOutcome::Answered(ResponseCode::Unknown(4000)));
        m.record(RequestOutcome::Unanswered(Unanswered::Fault));
        m.record(RequestOutcome::Unanswered(Unanswered::Malformed));
        let n = |c: &AtomicU64| c.load(Relaxed);
        assert_eq!(n(&m.queries), 7);
        assert_eq!((n(&m.answers[0]), n(&m.answers[3])), (1, 2));
        assert_eq!(n(&m.answers[16]), 1, "BADVERS");
        assert_eq!(n(&m.answers[OTHER_RCODE]), 1, "beyond the table: other");
        assert_eq!(n(&m.unanswered[Unanswered::Fault as usize]), 1);
        assert_eq!(n(&m.unanswered[Unanswered::Malformed as usize]), 1);
        assert_eq!(n(&m.unanswered[Unanswered::SilentMiss as usize]), 0);
        let summed: u64 = m.answers.iter().chain(&m.unanswered).map(n).sum();
        assert_eq!(summed, n(&m.queries));
        m.record_reload(true);
        m.record_reload(false);
        m.record_reload(false);
        assert_eq!((n(&m.reloads_applied), n(&m.reloads_refused)), (1, 2));
    }

    #[test]
    fn reasons_are_in_their_slots() {
        for (i, why) in Unanswered::ALL.iter().enumerate() {
            assert_eq!(*why as usize, i);
        }
        assert_eq!(Unanswered::SilentMiss.label(), "silent_miss");
    }
}

//! A zone's query counters (`dnslb_ts_zone_queries_total`, as NSD's
//! `zonestats` and Knot's `mod-stats`): the requests the zone answered, by
//! rcode ([`ZoneQueries`]). Kept with the zone, behind one pointer: a
//! query that found its zone adds one to an atomic there, with no look-up
//! by name. A new version of a zone (a reload, a transfer, a signing) takes
//! the counters of the version it replaces
//! (`Catalog::carry_queries`), so they
//! only go up while the zone is served.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hickory_proto::op::ResponseCode;

use crate::ts::metrics::RequestOutcome;

/// The `rcode` labels of [`ZoneQueries`]' slots, in order: the answers a
/// zone gives, any other rcode (`OTHER`), and no answer at all (`NONE`: a
/// miss with `on_miss = "silent"`).
pub const ZONE_RCODES: [&str; 6] = [
    "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "OTHER", "NONE",
];

/// The slot of `outcome` in [`ZONE_RCODES`].
fn slot(outcome: RequestOutcome) -> usize {
    match outcome {
        RequestOutcome::Answered(ResponseCode::NoError) => 0,
        RequestOutcome::Answered(ResponseCode::NXDomain) => 1,
        RequestOutcome::Answered(ResponseCode::ServFail) => 2,
        RequestOutcome::Answered(ResponseCode::Refused) => 3,
        RequestOutcome::Answered(_) => 4,
        RequestOutcome::Unanswered(_) => 5,
    }
}

/// The requests one zone answered, by [`ZONE_RCODES`] slot; or, as the
/// TS's own, those no zone answered (refused, not ours: `zone="-"`).
#[derive(Debug, Default)]
pub struct ZoneQueries {
    by_rcode: [AtomicU64; ZONE_RCODES.len()],
}

impl ZoneQueries {
    /// Counts one request that ended as `outcome`.
    pub fn count(&self, outcome: RequestOutcome) {
        self.by_rcode[slot(outcome)].fetch_add(1, Relaxed);
    }

    /// Each slot's label and count, in [`ZONE_RCODES`] order.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ZONE_RCODES
            .iter()
            .zip(&self.by_rcode)
            .map(|(label, n)| (*label, n.load(Relaxed)))
    }
}

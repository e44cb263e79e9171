//! The LS as a handler called by an XDP worker ([`WorkerLocal`]): each
//! worker counts its queries for the dynamic blocks and `dnslb top` into
//! counts of its own ([`WorkerCounts`], handed in at the tick as the UDP
//! workers' are), not into the shards the async path's threads share
//! (a lock and a snapshot load per query, twice); and a cache hit is
//! written into the worker's spare buffer, not a new one. Everything else
//! is the async path's [`Handler::handle`]: the same door, cache, dnstap
//! frames and forwarding.
use crate::dnstap::TapTransport;
use crate::ls::async_path::forward_admitted_by;
use crate::ls::balancer::Balancer;
use crate::ls::door::Admission;
use crate::ls::dynblock::WorkerCounts;
use crate::ls::tap;
use crate::server::local::WorkerLocal;
use crate::server::{Action, Handler, Reply, Request};

/// What a worker lends the async path for one query: its counts, and
/// the buffer a cache hit is written into.
pub(crate) struct Mine<'a> {
    counts: &'a mut WorkerCounts,
    spare: &'a mut Vec<u8>,
}

impl<'a> Mine<'a> {
    /// Its two parts, or none.
    pub(crate) fn split(
        mine: Option<Mine<'a>>,
    ) -> (Option<&'a mut WorkerCounts>, Option<&'a mut Vec<u8>>) {
        match mine {
            Some(Mine { counts, spare }) => (Some(counts), Some(spare)),
            None => (None, None),
        }
    }
}

/// A worker's own counts, registered for `dnslb top` as a UDP worker's.
pub(super) fn worker_local(b: &Balancer) -> WorkerLocal {
    WorkerLocal::with(b.dynblocks().worker_counts())
}

/// [`Handler::handle`] with the worker's counts and spare buffer.
pub(super) fn handle_local(b: &Balancer, req: Request<'_>, local: &mut WorkerLocal) -> Action {
    let WorkerLocal { state, spare } = local;
    let Some(counts) = state
        .as_mut()
        .and_then(|s| s.downcast_mut::<WorkerCounts>())
    else {
        return b.handle(req);
    };
    let (client, via, to) = (req.src, TapTransport::of(req.via), req.local);
    let d = b.dnstap();
    tap::client_query(d, via, client, || to, req.raw);
    match b.admit_by(req, Some(counts)) {
        Admission::Reply(reply) => {
            if let Reply::One(answer) = &reply {
                tap::client_response(d, via, client, to, None, answer);
            }
            Action::Now(reply)
        }
        Admission::Forward(state, admitted) => {
            let mine = Mine { counts, spare };
            forward_admitted_by(b, req, (state, admitted), Some(mine))
        }
    }
}

/// The worker's counts handed in when the tick called for them.
pub(super) fn idle(b: &Balancer, local: &mut WorkerLocal) {
    if let Some(counts) = local.state_mut::<WorkerCounts>() {
        b.dynblocks().hand_in(counts);
    }
}

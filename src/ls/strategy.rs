//! The strategies: how one client query is driven across its candidates.
//!
//! - `race`: every candidate at once;
//! - `hedge`: one, then the next each time the hedge delay passes;
//! - `sequential`: one, then the next after `try_timeout_ms`.
//!
//! In all three, an error rcode (SERVFAIL, REFUSED, FORMERR, NOTIMP) is never
//! final and moves on at once; so does an NXDOMAIN in the partitioned layout,
//! where the query ends NXDOMAIN only once every candidate has said so. At the
//! deadline, [`super::Balancer`]'s `on_timeout` answer is made up.
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::ResponseCode;
use tokio::time::{Instant, sleep_until};

use super::backend::Backend;
use super::upstream::{self, UpstreamError};
use super::{Job, LsState};
use crate::config::{Layout, Strategy};
use crate::dns::{Transport, WireHeader};
use crate::server::Reply;

/// What one backend's response means for the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ends the query: the client gets this response.
    Final,
    /// "No such name" from one partition: ask the others.
    NxDomain,
    /// An error rcode: as if this backend had not answered.
    Failed,
}

/// Classifies a response by its rcode (pure).
pub fn classify(rcode: u8, layout: Layout) -> Verdict {
    match ResponseCode::from_low(rcode) {
        ResponseCode::NXDomain if layout == Layout::Partitioned => Verdict::NxDomain,
        ResponseCode::ServFail
        | ResponseCode::Refused
        | ResponseCode::FormErr
        | ResponseCode::NotImp => Verdict::Failed,
        _ => Verdict::Final,
    }
}

/// The end of one upstream attempt.
struct Attempt {
    backend: usize,
    result: Result<Vec<u8>, UpstreamError>,
    rtt: Duration,
}

/// Asks `backend` (index `i`), retrying over TCP when a TCP client's answer
/// came back truncated.
async fn attempt(state: Arc<LsState>, i: usize, job: Arc<Job>, deadline: Instant) -> Attempt {
    let started = Instant::now();
    let Some(b) = state.backends.get(i).cloned() else {
        return Attempt {
            backend: i,
            result: Err(UpstreamError::Unusable),
            rtt: Duration::ZERO,
        };
    };
    let _inflight = b.begin();
    let result = exchange(&state, &b, &job, deadline).await;
    Attempt {
        backend: i,
        result,
        rtt: started.elapsed(),
    }
}

async fn exchange(
    state: &LsState,
    b: &Backend,
    job: &Job,
    deadline: Instant,
) -> Result<Vec<u8>, UpstreamError> {
    let id: u16 = rand::random();
    let mut query = job.raw.clone();
    WireHeader::set_id(&mut query, id);
    let question = job.question();
    let drops = &state.metrics.drops;
    let resp = upstream::udp_exchange(b.addr, &query, id, question, deadline, drops).await?;
    let truncated = WireHeader::read(&resp).is_some_and(|h| h.truncated());
    if truncated && job.transport == Transport::Tcp {
        let id: u16 = rand::random();
        WireHeader::set_id(&mut query, id);
        return upstream::tcp_exchange(b.addr, &query, id, question, deadline, drops).await;
    }
    Ok(resp)
}

/// Drives one client query to its reply.
pub(crate) async fn resolve(state: Arc<LsState>, job: Job) -> Reply {
    let p = &state.policy;
    let started = Instant::now();
    let deadline = started + p.timeout;
    let job = Arc::new(job);
    let candidates = state.candidates(&job);
    let n = candidates.len();
    let mut pending = FuturesUnordered::new();
    let mut next = 0usize;
    let (mut nx, mut failed) = (0usize, 0usize);
    let mut next_at: Option<Instant> = None;

    let launch = |next: &mut usize, pending: &mut FuturesUnordered<_>| -> Option<usize> {
        let i = *candidates.get(*next)?;
        *next += 1;
        pending.push(attempt(state.clone(), i, job.clone(), deadline));
        Some(i)
    };
    let spacing = |i: usize| match p.strategy {
        Strategy::Hedge => Some(state.hedge_delay(i)),
        Strategy::Sequential => Some(p.try_timeout),
        Strategy::Race => None,
    };

    match p.strategy {
        Strategy::Race => while launch(&mut next, &mut pending).is_some() {},
        _ => {
            if let Some(i) = launch(&mut next, &mut pending) {
                next_at = spacing(i).map(|d| Instant::now() + d);
            }
        }
    }

    loop {
        if pending.is_empty() && next >= n {
            break; // everyone answered, nobody finally
        }
        tokio::select! {
            biased;
            Some(a) = pending.next(), if !pending.is_empty() => {
                let Some(b) = state.backends.get(a.backend) else { continue };
                let verdict = match &a.result {
                    Ok(resp) => {
                        b.stats.answered.fetch_add(1, Relaxed);
                        b.observe_latency(a.rtt);
                        state.observe_hedge_sample(a.backend, a.rtt);
                        let rcode = WireHeader::read(resp).map_or(2, |h| h.rcode());
                        classify(rcode, p.layout)
                    }
                    Err(_) => Verdict::Failed,
                };
                match verdict {
                    Verdict::Final => {
                        b.stats.wins.fetch_add(1, Relaxed);
                        let mut resp = a.result.unwrap_or_default();
                        state.remember(&job, a.backend, &resp);
                        WireHeader::set_id(&mut resp, job.client_id);
                        return Reply::One(resp);
                    }
                    Verdict::NxDomain => {
                        nx += 1;
                        if nx == n {
                            // Every partition said NXDOMAIN: the last one's answer is final.
                            b.stats.wins.fetch_add(1, Relaxed);
                            let mut resp = a.result.unwrap_or_default();
                            WireHeader::set_id(&mut resp, job.client_id);
                            return Reply::One(resp);
                        }
                    }
                    Verdict::Failed => {
                        if a.result.is_ok() {
                            b.stats.errors.fetch_add(1, Relaxed);
                        }
                        failed += 1;
                    }
                }
                // Not final: move on to the next candidate at once (never
                // held back by the hedge budget).
                if let Some(i) = launch(&mut next, &mut pending) {
                    next_at = spacing(i).map(|d| Instant::now() + d);
                }
            }
            _ = sleep_until(next_at.unwrap_or(deadline)), if next_at.is_some() && next < n => {
                next_at = None;
                if (p.strategy != Strategy::Hedge || state.hedge_allowed())
                    && let Some(i) = launch(&mut next, &mut pending)
                {
                    if p.strategy == Strategy::Hedge {
                        state.metrics.hedges.fetch_add(1, Relaxed);
                    }
                    next_at = spacing(i).map(|d| Instant::now() + d);
                }
            }
            _ = sleep_until(deadline) => break,
        }
    }

    // No final answer. Count the backends still silent as timeouts.
    let timed_out = Instant::now() >= deadline;
    if timed_out {
        for i in candidates.iter().take(next) {
            if let Some(b) = state.backends.get(*i) {
                b.stats.timeouts.fetch_add(1, Relaxed);
                state.on_client_timeout(*i);
            }
        }
    }
    let tried: Vec<&str> = candidates
        .iter()
        .take(next)
        .filter_map(|i| state.backends.get(*i).map(|b| b.name.as_str()))
        .collect();
    if !timed_out && failed == next && failed > 0 {
        let text = format!("every backend failed: {}", tried.join(", "));
        return state.synthesize(&job, ResponseCode::ServFail, &text);
    }
    let text = format!(
        "no answer from {} within {} ms",
        if tried.is_empty() {
            "any backend".to_owned()
        } else {
            tried.join(", ")
        },
        p.timeout.as_millis()
    );
    state.on_timeout(&job, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        use Layout::*;
        assert_eq!(classify(0, Partitioned), Verdict::Final);
        assert_eq!(classify(3, Partitioned), Verdict::NxDomain);
        assert_eq!(classify(3, Replicated), Verdict::Final);
        for rc in [1, 2, 4, 5] {
            assert_eq!(classify(rc, Partitioned), Verdict::Failed);
            assert_eq!(classify(rc, Replicated), Verdict::Failed);
        }
    }
}

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
    /// Sent by the hedge timer (not first, not after a failure).
    hedge: bool,
    result: Result<Vec<u8>, UpstreamError>,
    rtt: Duration,
}

/// Asks `backend` (index `i`), retrying over TCP when a TCP client's answer
/// came back truncated.
async fn attempt(
    state: Arc<LsState>,
    i: usize,
    job: Arc<Job>,
    deadline: Instant,
    hedge: bool,
) -> Attempt {
    let started = Instant::now();
    let Some(b) = state.backends.get(i).cloned() else {
        return Attempt {
            backend: i,
            hedge,
            result: Err(UpstreamError::Unusable),
            rtt: Duration::ZERO,
        };
    };
    let result = exchange(&state, &b, &job, deadline).await;
    Attempt {
        backend: i,
        hedge,
        result,
        rtt: started.elapsed(),
    }
}

async fn exchange(
    state: &LsState,
    b: &Arc<Backend>,
    job: &Job,
    deadline: Instant,
) -> Result<Vec<u8>, UpstreamError> {
    let mut query = job.raw.clone();
    let resp = state
        .pool
        .exchange(
            b.addr,
            &mut query,
            job.question_end,
            deadline,
            Some(b.begin()),
            state.adaptive_hedge_pct(),
        )
        .await?;
    let question = job.question();
    let drops = &state.metrics.drops;
    let truncated = WireHeader::read(&resp).is_some_and(|h| h.truncated());
    if truncated && job.transport == Transport::Tcp {
        let id: u16 = rand::random();
        WireHeader::set_id(&mut query, id);
        return upstream::tcp_exchange(b.addr, &query, id, question, deadline, drops).await;
    }
    Ok(resp)
}

/// The attempts of one query: who was asked, when, and who has answered.
struct Attempts<F> {
    candidates: Vec<usize>,
    /// Whether each launched candidate has finished, by position (its
    /// length is the number launched).
    finished: Vec<bool>,
    pending: FuturesUnordered<F>,
}

impl<F: std::future::Future<Output = Attempt>> Attempts<F> {
    fn launched_all(&self) -> bool {
        self.finished.len() >= self.candidates.len()
    }

    /// Launches the next candidate with `make`; its backend index, if any was left.
    fn launch(&mut self, make: impl FnOnce(usize) -> F) -> Option<usize> {
        let i = *self.candidates.get(self.finished.len())?;
        self.finished.push(false);
        self.pending.push(make(i));
        Some(i)
    }

    fn finish(&mut self, backend: usize) {
        if let Some(pos) = self.candidates.iter().position(|&c| c == backend)
            && let Some(f) = self.finished.get_mut(pos)
        {
            *f = true;
        }
    }

    /// Launched candidates still waiting.
    fn unfinished(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates
            .iter()
            .zip(&self.finished)
            .filter(|(_, done)| !**done)
            .map(|(&i, _)| i)
    }
}

/// Drives one client query to its reply.
pub(crate) async fn resolve(state: Arc<LsState>, job: Job) -> Reply {
    let p = &state.policy;
    let deadline = Instant::now() + p.timeout;
    let job = Arc::new(job);
    let candidates = state.candidates(&job);
    let n = candidates.len();
    let mut att = Attempts {
        candidates,
        finished: Vec::with_capacity(n),
        pending: FuturesUnordered::new(),
    };
    let make = |hedge: bool| {
        let (state, job) = (state.clone(), job.clone());
        move |i: usize| attempt(state, i, job, deadline, hedge)
    };
    let spacing = |i: usize| match p.strategy {
        Strategy::Hedge => Some(Instant::now() + state.hedge_delay(i)),
        Strategy::Sequential => Some(Instant::now() + p.try_timeout),
        Strategy::Race => None,
    };
    let (mut nx, mut failed) = (0usize, 0usize);
    let mut next_at: Option<Instant> = None;

    match p.strategy {
        Strategy::Race => while att.launch(make(false)).is_some() {},
        _ => next_at = att.launch(make(false)).and_then(spacing),
    }

    loop {
        if att.pending.is_empty() && att.launched_all() {
            break; // everyone answered, nobody finally
        }
        tokio::select! {
            biased;
            Some(a) = att.pending.next(), if !att.pending.is_empty() => {
                att.finish(a.backend);
                let Some(b) = state.backends.get(a.backend) else { continue };
                let verdict = match &a.result {
                    Ok(resp) => {
                        b.stats.answered.fetch_add(1, Relaxed);
                        b.observe_latency(a.rtt);
                        state.observe_hedge_sample(a.backend, a.rtt);
                        let rcode = WireHeader::read(resp).map_or(2, |h| h.rcode());
                        classify(rcode, p.layout)
                    }
                    Err(UpstreamError::Timeout) => {
                        // Silent until the query's deadline.
                        b.stats.timeouts.fetch_add(1, Relaxed);
                        state.on_client_timeout(a.backend);
                        Verdict::Failed
                    }
                    Err(_) => Verdict::Failed,
                };
                // Final, or the last partition to say NXDOMAIN (its answer stands).
                let ends = verdict == Verdict::Final || (verdict == Verdict::NxDomain && nx + 1 == n);
                if ends {
                    b.stats.wins.fetch_add(1, Relaxed);
                    if a.hedge {
                        state.metrics.hedge_wins.fetch_add(1, Relaxed);
                    }
                    // The losers' answers, when they come, still feed their
                    // backends' latency (see `pool::Late`).
                    let mut resp = a.result.unwrap_or_default();
                    state.remember(&job, a.backend, &resp);
                    WireHeader::set_id(&mut resp, job.client_id);
                    return Reply::One(resp);
                }
                if verdict == Verdict::NxDomain {
                    nx += 1;
                } else {
                    if a.result.is_ok() {
                        b.stats.errors.fetch_add(1, Relaxed);
                    }
                    failed += 1;
                }
                // Not final: move on to the next candidate at once (never
                // held back by the hedge budget).
                if let Some(i) = att.launch(make(false)) {
                    next_at = spacing(i);
                }
            }
            _ = sleep_until(next_at.unwrap_or(deadline)), if next_at.is_some() && !att.launched_all() => {
                next_at = None;
                let hedge = p.strategy == Strategy::Hedge;
                if !hedge || state.hedge_allowed() {
                    next_at = att.launch(make(hedge)).and_then(spacing);
                    if hedge {
                        state.metrics.hedges.fetch_add(1, Relaxed);
                    }
                }
            }
            _ = sleep_until(deadline) => break,
        }
    }

    // No final answer. The backends still silent at the deadline timed out.
    let timed_out = Instant::now() >= deadline;
    if timed_out {
        let silent: Vec<usize> = att.unfinished().collect();
        for i in silent {
            if let Some(b) = state.backends.get(i) {
                b.stats.timeouts.fetch_add(1, Relaxed);
                state.on_client_timeout(i);
            }
        }
    }
    let tried: Vec<&str> = att
        .candidates
        .iter()
        .take(att.finished.len())
        .filter_map(|i| state.backends.get(*i).map(|b| b.name.as_str()))
        .collect();
    if !timed_out && failed == att.finished.len() && failed > 0 {
        let text = format!("every backend failed: {}", tried.join(", "));
        return state.synthesize(&job, ResponseCode::ServFail, &text);
    }
    let who = if tried.is_empty() {
        "any backend".to_owned()
    } else {
        tried.join(", ")
    };
    let text = if timed_out {
        format!("no answer from {who} within {} ms", p.timeout.as_millis())
    } else {
        format!("no usable answer from {who}")
    };
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

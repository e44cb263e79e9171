//! The strategies, driven: how one client query is sent across its
//! candidates and turned into a reply.
//!
//! - `race`: every candidate at once;
//! - `hedge`: one, then the next each time the hedge delay passes (when the
//!   hedge budget refuses, the next one is still asked once `try_timeout_ms`
//!   has passed: that is failover, not a hedge);
//! - `sequential`: one, then the next after `try_timeout_ms`.
//!
//! Under `hedge` and `sequential`, once every candidate has been asked, a
//! backend still silent one more delay (hedge delay or `try_timeout_ms`)
//! after the last launch is asked again, once per query, with a fresh
//! upstream ID; both copies stay open and either answer wins.
//!
//! The decisions (who next, when, and what the answers add up to) are the
//! pure state machine of [`super::resolution`]; this module runs it over
//! the upstream pool's exchanges and makes the reply: the winner's response
//! with the client's ID, a negative answer every backend agreed on, or the
//! made-up SERVFAIL / `on_timeout` answer.
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::ResponseCode;
use tokio::time::{Instant, sleep_until};

use super::backend::{Backend, WonBy};
use super::resolution::{End, Resolution, Step, Verdict};
use super::upstream::UpstreamError;
use super::{Job, LsState};
use crate::dns::{Transport, WireHeader};
use crate::logging::QueryLine;
use crate::server::Reply;

/// The end of one upstream attempt.
struct Attempt {
    backend: usize,
    result: Result<Vec<u8>, UpstreamError>,
    rtt: Duration,
}

/// Asks `backend` (index `i`), retrying over TCP when a TCP client's answer
/// came back truncated. A TCP client's ANY goes to the backend over TCP at
/// once: over UDP an authoritative server answers ANY with one RRset (RFC
/// 8482), over TCP with all of them, which is what a client that chose TCP
/// gets from the server itself.
async fn attempt(
    state: Arc<LsState>,
    i: usize,
    job: Arc<Job>,
    deadline: Instant,
    won_by: Arc<WonBy>,
) -> Attempt {
    let started = Instant::now();
    let Some(b) = state.backends.get(i).cloned() else {
        return Attempt {
            backend: i,
            result: Err(UpstreamError::Unusable),
            rtt: Duration::ZERO,
        };
    };
    let result = exchange(&state, &b, &job, deadline, won_by).await;
    Attempt {
        backend: i,
        result,
        rtt: started.elapsed(),
    }
}

async fn exchange(
    state: &LsState,
    b: &Arc<Backend>,
    job: &Job,
    deadline: Instant,
    won_by: Arc<WonBy>,
) -> Result<Vec<u8>, UpstreamError> {
    let mut query = job.raw.clone();
    // Marked, so that a loop back to this LS is refused (loopmark).
    state
        .mark
        .stamp(&mut query, job.question_end, b.speaks_edns());
    let question = job.question();
    let tcp = &state.pool.tcp;
    let any = question.len() >= 4 && question[question.len() - 4..question.len() - 2] == [0, 255];
    if any && job.transport == Transport::Tcp {
        let _busy = b.begin();
        return tcp.exchange(b.addr, &query, question, deadline).await;
    }
    let resp = state
        .pool
        .exchange(
            b.addr,
            &mut query,
            job.question_end,
            deadline,
            Some(b.begin().for_query(won_by)),
            state.adaptive_hedge_pct(),
        )
        .await?;
    let truncated = WireHeader::read(&resp).is_some_and(|h| h.truncated());
    if truncated && job.transport == Transport::Tcp {
        return tcp.exchange(b.addr, &query, question, deadline).await;
    }
    Ok(resp)
}

/// Who answered a query, for the query log.
pub(crate) struct Answered {
    /// The backend whose response the client got (none for a made-up one).
    pub(crate) backend: Option<usize>,
    /// The query's log line, when the query log is on.
    pub(crate) log: Option<QueryLine>,
}

impl Answered {
    /// Writes the query's log line, if the query log is on.
    pub(crate) fn log(self, state: &LsState, reply: &Reply, took: Duration) {
        if let Some(line) = self.log {
            let backend = self.backend.and_then(|i| state.backends.get(i));
            line.log(reply, backend.map(|b| b.name.as_str()), took);
        }
    }
}

/// Drives one client query to its reply.
pub(crate) async fn resolve(state: Arc<LsState>, mut job: Job) -> (Reply, Answered) {
    let log = job.log.take();
    let mut res = state.resolution(&job, Instant::now());
    let deadline = res.deadline();
    let job = Arc::new(job);
    let won_by = Arc::new(WonBy::default());
    let mut pending = FuturesUnordered::new();
    // The winning response, and the negative one that may be passed on.
    let mut kept: Option<Vec<u8>> = None;
    let end = loop {
        match res.poll(Instant::now(), state.as_ref()) {
            Step::Launch { backend, hedge } => {
                if hedge {
                    state.metrics.hedges.fetch_add(1, Relaxed);
                }
                let won = won_by.clone();
                pending.push(attempt(state.clone(), backend, job.clone(), deadline, won));
            }
            Step::Done(end) => {
                // Before the other attempts are dropped (abandoned).
                if let Some(b) = end.backend().and_then(|i| state.backends.get(i)) {
                    won_by.set(b);
                }
                break end;
            }
            Step::Wait => {
                tokio::select! {
                    biased;
                    Some(a) = pending.next(), if !pending.is_empty() => {
                        let verdict = judge(&state, &a);
                        let Attempt { backend, result, .. } = a;
                        let keep = res.on_outcome(backend, verdict);
                        if keep || verdict == Verdict::Final {
                            kept = result.ok();
                        }
                    }
                    _ = sleep_until(res.next_wakeup()) => {}
                }
            }
        }
    };
    let reply = finish(&state, &job, &res, end, kept);
    let answered = Answered {
        backend: end.backend(),
        log,
    };
    (reply, answered)
}

/// Counts one attempt's outcome on its backend and judges it.
fn judge(state: &LsState, a: &Attempt) -> Verdict {
    let Some(b) = state.backends.get(a.backend) else {
        return Verdict::Failed;
    };
    match &a.result {
        Ok(resp) => state.judge_response(a.backend, Instant::now(), a.rtt, WireHeader::read(resp)),
        Err(UpstreamError::Timeout) => {
            // Silent until the query's deadline.
            b.lost(Instant::now());
            Verdict::Failed
        }
        Err(_) => Verdict::Failed,
    }
}

/// The reply for how the query ended. `kept`: the winner's response, or
/// the negative one to pass on.
pub(crate) fn finish(
    state: &LsState,
    job: &Job,
    res: &Resolution,
    end: End,
    kept: Option<Vec<u8>>,
) -> Reply {
    let p = &state.policy;
    if let End::OnTimeout { timed_out: true } = end {
        // The backends still silent at the deadline timed out.
        for i in res.unfinished() {
            if let Some(b) = state.backends.get(i) {
                b.lost(res.deadline());
            }
        }
    }
    let names = |pick: &dyn Fn(usize) -> bool| -> Vec<&str> {
        state
            .backends
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .map(|(_, b)| b.name.as_str())
            .collect()
    };
    match (end, kept) {
        (End::Win { backend, hedge }, Some(resp)) => win(state, job, backend, hedge, resp),
        (End::PassOn(backend), Some(resp)) => win(state, job, backend, false, resp),
        (End::AllFailed, _) => {
            let tried: Vec<usize> = res.asked().collect();
            let text = format!(
                "every backend failed: {}",
                names(&|i| tried.contains(&i)).join(", ")
            );
            state.synthesize(job, ResponseCode::ServFail, &text)
        }
        (end, _) => {
            let unheard = names(&|i| !res.said_negative(i));
            let who = if unheard.is_empty() {
                "any backend".to_owned()
            } else {
                unheard.join(", ")
            };
            let t = res.tally();
            let text = if matches!(end, End::OnTimeout { timed_out: true }) {
                format!("no answer from {who} within {} ms", p.timeout.as_millis())
            } else if t.nxdomain + t.nodata > 0 {
                format!("negative answers not conclusive; not heard from {who}")
            } else {
                format!("no usable answer from {who}")
            };
            state.on_timeout(job, &text)
        }
    }
}

/// The client's answer from backend `i`: counted, remembered for `sticky`,
/// labelled with the backend's name when the client asked for an NSID and
/// the backend sent none, with the client's ID restored; TC=1 instead when
/// it is larger than the client can take over its transport.
fn win(state: &LsState, job: &Job, i: usize, hedge: bool, mut resp: Vec<u8>) -> Reply {
    if job.raw.len() == job.question_end {
        // The client sent no OPT; one the LS added for its mark goes again.
        // An extended rcode cannot go with it to this client: SERVFAIL, as
        // for any answer the LS cannot pass on, never the header's low bits.
        if super::loopmark::strip_opt(&mut resp) == super::loopmark::Stripped::LostRcode {
            return crate::dns::servfail_for(&job.raw).map_or(Reply::Drop, Reply::One);
        }
    }
    if let Some(b) = state.backends.get(i) {
        b.stats.wins.fetch_add(1, Relaxed);
        crate::dns::nsid_for_client(&job.raw, &mut resp, &b.name, job.transport);
    }
    if hedge {
        state.metrics.hedge_wins.fetch_add(1, Relaxed);
    }
    state.remember(job, i, &resp);
    WireHeader::set_id(&mut resp, job.client_id);
    if resp.len() > crate::dns::client_max_size(&job.raw, job.transport) {
        // A backend that ignores the client's size limit must not make the
        // LS an amplifier: the client gets TC=1 and asks again over TCP.
        return crate::dns::decode_query(&job.raw).map_or_else(
            |_| crate::dns::servfail_for(&job.raw).map_or(Reply::Drop, Reply::One),
            |q| Reply::One(crate::dns::truncated_for(&q)),
        );
    }
    Reply::One(resp)
}

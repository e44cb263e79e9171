//! The strategies: how one client query is driven across its candidates.
//!
//! - `race`: every candidate at once;
//! - `hedge`: one, then the next each time the hedge delay passes (when the
//!   hedge budget refuses, the next one is still asked once `try_timeout_ms`
//!   has passed: that is failover, not a hedge);
//! - `sequential`: one, then the next after `try_timeout_ms`.
//!
//! In all three, an error rcode (SERVFAIL, REFUSED, FORMERR, NOTIMP) is never
//! final and moves on at once. In the partitioned layout so does a negative
//! answer (NXDOMAIN or NODATA: a name can be an empty non-terminal on one
//! backend and hold records on another): the first positive answer wins, and
//! negatives decide only once every backend has given one ([`settle`]). At
//! the deadline, [`super::Balancer`]'s `on_timeout` answer is made up.
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
    /// Partitioned: "no such name" from this backend; ask the others.
    NxDomain,
    /// Partitioned: the name exists here but has no records of this type
    /// (or is only the parent of other names); ask the others.
    NoData,
    /// An error rcode: as if this backend had not answered.
    Failed,
}

/// Classifies a response by its header (pure): rcode, AA and the counts of
/// answer and authority records. A NOERROR answer with no records is a
/// referral (positive) when it is not authoritative and carries authority
/// records, else NODATA.
pub fn classify(h: &WireHeader, layout: Layout) -> Verdict {
    let negative = match ResponseCode::from_low(h.rcode()) {
        ResponseCode::ServFail
        | ResponseCode::Refused
        | ResponseCode::FormErr
        | ResponseCode::NotImp => return Verdict::Failed,
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
    /// Every backend gave a negative answer: pass this one on (a NODATA when
    /// any backend said NODATA, as the name exists somewhere).
    PassOn(usize),
    /// Every backend asked failed (error rcodes) before the deadline: SERVFAIL.
    AllFailed,
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
    /// NXDOMAIN answers, and the attempt of the last one.
    pub nxdomain: usize,
    /// NODATA answers.
    pub nodata: usize,
    /// Error answers and errors.
    pub failed: usize,
    /// The attempt whose negative answer would be passed on.
    pub negative: Option<usize>,
    /// Whether `negative` is a NODATA.
    pub negative_is_nodata: bool,
}

impl Tally {
    /// Counts one negative answer of attempt `at`.
    fn negative(&mut self, at: usize, verdict: Verdict) {
        if verdict == Verdict::NoData {
            self.nodata += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
                self.negative_is_nodata = true;
            }
        } else {
            self.nxdomain += 1;
            if !self.negative_is_nodata {
                self.negative = Some(at);
            }
        }
    }
}

/// The end of a query that got no final answer (pure). `timed_out`: the
/// deadline passed with some backend still silent.
pub fn settle(t: &Tally, timed_out: bool) -> Settled {
    let negatives = t.nxdomain + t.nodata;
    match t.negative {
        Some(at) if !timed_out && negatives == t.backends && t.asked == t.backends => {
            Settled::PassOn(at)
        }
        _ if !timed_out && negatives == 0 && t.failed > 0 && t.failed == t.asked => {
            Settled::AllFailed
        }
        _ => Settled::Unproven,
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
    let mut tally = Tally {
        backends: state.backends.len(),
        ..Tally::default()
    };
    // Negative answers, kept until every backend has given one.
    let mut negatives: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut next_at: Option<Instant> = None;
    let mut last_launch = Instant::now();
    // The hedge budget refused: the timer now waits for the failover time.
    let mut failover = false;

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
                        WireHeader::read(resp).map_or(Verdict::Failed, |h| classify(&h, p.layout))
                    }
                    Err(UpstreamError::Timeout) => {
                        // Silent until the query's deadline.
                        b.stats.timeouts.fetch_add(1, Relaxed);
                        state.on_client_timeout(a.backend);
                        Verdict::Failed
                    }
                    Err(_) => Verdict::Failed,
                };
                match verdict {
                    Verdict::Final => {
                        let resp = a.result.unwrap_or_default();
                        // The losers' answers, when they come, still feed
                        // their backends' latency (see `pool::Late`).
                        return win(&state, &job, a.backend, a.hedge, resp);
                    }
                    Verdict::NxDomain | Verdict::NoData => {
                        tally.negative(a.backend, verdict);
                        negatives.push((a.backend, a.result.unwrap_or_default()));
                    }
                    Verdict::Failed => {
                        if a.result.is_ok() {
                            b.stats.errors.fetch_add(1, Relaxed);
                        }
                        tally.failed += 1;
                    }
                }
                // Not final: move on to the next candidate at once (never
                // held back by the hedge budget).
                if let Some(i) = att.launch(make(false)) {
                    last_launch = Instant::now();
                    failover = false;
                    next_at = spacing(i);
                }
            }
            _ = sleep_until(next_at.unwrap_or(deadline)), if next_at.is_some() && !att.launched_all() => {
                let hedge = p.strategy == Strategy::Hedge && !failover;
                if hedge && !state.hedge_allowed() {
                    // No budget for a hedge: stay with the backends asked
                    // until the per-try timeout, then fail over regardless.
                    failover = true;
                    next_at = Some(last_launch + p.try_timeout);
                    continue;
                }
                if hedge {
                    state.metrics.hedges.fetch_add(1, Relaxed);
                }
                failover = false;
                last_launch = Instant::now();
                next_at = att.launch(make(hedge)).and_then(spacing);
            }
            _ = sleep_until(deadline) => break,
        }
    }
    tally.asked = att.finished.len();

    // No final answer. The backends still silent at the deadline timed out.
    let timed_out = Instant::now() >= deadline;
    let silent: Vec<usize> = att.unfinished().collect();
    if timed_out {
        for &i in &silent {
            if let Some(b) = state.backends.get(i) {
                b.stats.timeouts.fetch_add(1, Relaxed);
                state.on_client_timeout(i);
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
    match settle(&tally, timed_out) {
        Settled::PassOn(at) => {
            if let Some(pos) = negatives.iter().position(|(i, _)| *i == at) {
                let (_, resp) = negatives.swap_remove(pos);
                return win(&state, &job, at, false, resp);
            }
            state.on_timeout(&job, "no usable answer")
        }
        Settled::AllFailed => {
            let tried = names(&|i| att.candidates.iter().take(tally.asked).any(|&c| c == i));
            let text = format!("every backend failed: {}", tried.join(", "));
            state.synthesize(&job, ResponseCode::ServFail, &text)
        }
        Settled::Unproven => {
            let negative = |i: usize| negatives.iter().any(|(n, _)| *n == i);
            let unheard = names(&|i| !negative(i));
            let who = if unheard.is_empty() {
                "any backend".to_owned()
            } else {
                unheard.join(", ")
            };
            let text = if timed_out {
                format!("no answer from {who} within {} ms", p.timeout.as_millis())
            } else if tally.nxdomain + tally.nodata > 0 {
                format!("negative answers not conclusive; not heard from {who}")
            } else {
                format!("no usable answer from {who}")
            };
            state.on_timeout(&job, &text)
        }
    }
}

/// The client's answer from backend `i`: counted, remembered for `sticky`,
/// with the client's ID restored.
fn win(state: &LsState, job: &Job, i: usize, hedge: bool, mut resp: Vec<u8>) -> Reply {
    if let Some(b) = state.backends.get(i) {
        b.stats.wins.fetch_add(1, Relaxed);
    }
    if hedge {
        state.metrics.hedge_wins.fetch_add(1, Relaxed);
    }
    state.remember(job, i, &resp);
    WireHeader::set_id(&mut resp, job.client_id);
    Reply::One(resp)
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
        // NODATA (AA, SOA in authority) is as inconclusive as NXDOMAIN.
        assert_eq!(classify(&hdr(0, true, 0, 1), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, false, 0, 0), Partitioned), Verdict::NoData);
        assert_eq!(classify(&hdr(0, true, 0, 1), Replicated), Verdict::Final);
        // A referral (no AA, NS in authority) is a positive answer.
        assert_eq!(classify(&hdr(0, false, 0, 2), Partitioned), Verdict::Final);
        for rc in [1, 2, 4, 5] {
            assert_eq!(
                classify(&hdr(rc, false, 0, 0), Partitioned),
                Verdict::Failed
            );
            assert_eq!(classify(&hdr(rc, false, 0, 0), Replicated), Verdict::Failed);
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
                Verdict::Failed => t.failed += 1,
                Verdict::Final => unreachable!("a final answer ends the query"),
                v => t.negative(i, *v),
            }
        }
        t
    }

    #[test]
    fn every_backend_negative_passes_nodata_before_nxdomain() {
        use Verdict::*;
        let t = tally(3, &[NxDomain, NoData, NxDomain]);
        assert_eq!(settle(&t, false), Settled::PassOn(1));
        let t = tally(2, &[NxDomain, NxDomain]);
        assert_eq!(settle(&t, false), Settled::PassOn(1));
        let t = tally(2, &[NoData, NoData]);
        assert_eq!(settle(&t, false), Settled::PassOn(0));
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

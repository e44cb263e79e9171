//! The load on one connection: up to `inflight` queries outstanding, a new
//! one as each answer comes (closed loop, for a peak), or sent on a schedule
//! evenly spaced (open loop, for a fixed rate), until the deadline; then
//! the queries still out get their time to answer. A connection that has
//! ended is used no more: its queries out fail (each an error, once) and it
//! sends nothing new. What came back is counted in [`Stats`].
use std::cell::RefCell;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use tokio::time::Instant;

use crate::conns::Conn;
use crate::wire::{Verdict, verdict};

/// What a run counted.
pub(crate) struct Stats {
    pub(crate) sent: u64,
    pub(crate) answered: u64,
    pub(crate) other_rcode: u64,
    pub(crate) errors: u64,
    pub(crate) timeouts: u64,
    /// Latency of answered queries and other rcodes, µs.
    pub(crate) latency: Histogram<u64>,
    /// When the last answer came.
    pub(crate) last: Option<Instant>,
    /// The first few errors' words, for stderr.
    pub(crate) first_errors: Vec<String>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            sent: 0,
            answered: 0,
            other_rcode: 0,
            errors: 0,
            timeouts: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            last: None,
            first_errors: Vec::new(),
        }
    }

    pub(crate) fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.other_rcode += o.other_rcode;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        let _ = self.latency.add(&o.latency);
        self.last = self.last.max(o.last);
        for e in o.first_errors {
            self.note(e);
        }
    }

    fn note(&mut self, e: String) {
        if self.first_errors.len() < 5 && !self.first_errors.contains(&e) {
            self.first_errors.push(e);
        }
    }
}

/// When and how fast a connection sends.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
    /// The gap between two of this connection's queries (open loop), and
    /// the offset of its first from `start`; `None`: closed loop.
    pub(crate) pace: Option<(Duration, Duration)>,
    pub(crate) inflight: usize,
    pub(crate) timeout: Duration,
}

/// How one query ended.
enum Outcome {
    Done(Verdict, Instant),
    Failed(String),
    TimedOut,
}

/// Drives `conn` by `plan`, asking `queries` in turn from `first`.
pub(crate) async fn drive(
    conn: &Conn,
    queries: &[Bytes],
    first: usize,
    plan: Plan,
    stats: &RefCell<Stats>,
) {
    let mut out = FuturesUnordered::new();
    let mut next = first;
    let mut due = plan.start + plan.pace.map_or(Duration::ZERO, |(_, o)| o);
    tokio::time::sleep_until(due).await;
    loop {
        let now = Instant::now();
        let dead = conn.dead();
        while !dead
            && out.len() < plan.inflight
            && now < plan.deadline
            && (plan.pace.is_none() || due <= now)
        {
            let q = &queries[next % queries.len()];
            next += 1;
            out.push(one(conn, q.clone(), plan.timeout));
            stats.borrow_mut().sent += 1;
            if let Some((gap, _)) = plan.pace {
                due += gap;
            }
        }
        if out.is_empty() && (dead || now >= plan.deadline) {
            if dead && now < plan.deadline {
                stats
                    .borrow_mut()
                    .note("a connection ended before the run: no more queries on it".into());
            }
            break;
        }
        // Open loop: wake for the next query due (if a place is free);
        // either loop: wake at the deadline to stop sending.
        let wake = match plan.pace {
            _ if dead => None,
            Some(_) if out.len() < plan.inflight && due < plan.deadline => Some(due),
            _ if now < plan.deadline => Some(plan.deadline),
            _ => None,
        };
        tokio::select! {
            biased;
            Some((sent, outcome)) = out.next(), if !out.is_empty() => {
                let mut s = stats.borrow_mut();
                match outcome {
                    Outcome::Done(v, at) => {
                        match v {
                            Verdict::Answered => s.answered += 1,
                            Verdict::OtherRcode => s.other_rcode += 1,
                            Verdict::Bad => {
                                s.errors += 1;
                                s.note("an answer not to its query".into());
                                continue;
                            }
                        }
                        let us = u64::try_from(at.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                        let _ = s.latency.record(us.max(1));
                        s.last = s.last.max(Some(at));
                    }
                    Outcome::Failed(e) => {
                        s.errors += 1;
                        s.note(e);
                    }
                    Outcome::TimedOut => s.timeouts += 1,
                }
            }
            () = sleep_until_opt(wake), if wake.is_some() => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Asks `q` over `conn`: when it was sent, and how it ended.
async fn one(conn: &Conn, q: Bytes, timeout: Duration) -> (Instant, Outcome) {
    let sent = Instant::now();
    let outcome = match tokio::time::timeout(timeout, conn.ask(&q)).await {
        Ok(Ok((answer, id))) => Outcome::Done(verdict(&answer, &q, id), Instant::now()),
        Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
        Err(_) => Outcome::TimedOut,
    };
    (sent, outcome)
}

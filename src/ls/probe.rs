//! Backend health checks: the probe loop. Every `interval_ms` (and after
//! every `every_queries` client queries, when that is set) each backend of
//! the current snapshot is sent the configured question; its result goes to
//! the backend's [`Health`](super::backend::health::Health) (the rise/fall
//! hysteresis, the hold after lost client queries: pure, in
//! [`super::backend::health`]), and each flip is logged once. Probes run on
//! their own task, never in a client's path. [`first_round`] is the start-up
//! round the LS waits for before it serves.
//!
//! Probes carry the LS's loop mark ([`super::loopmark`]).
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::balancer::Balancer;
use super::loopmark;
use super::state::LsState;
use crate::dns::WireHeader;

pub use super::backend::health::HealthPolicy;

/// One probe of `b`, waiting at most `wait`: true when it answered with
/// anything but SERVFAIL.
async fn probe(state: &LsState, b: &Backend, p: &HealthPolicy, wait: Duration) -> bool {
    let mut m = Message::query();
    m.add_query(Query::query(p.name.clone(), p.rtype));
    let Ok(question_end) = m.to_vec().map(|b| b.len()) else {
        return false;
    };
    // With EDNS, to carry the LS's mark: another LS that forwards it back
    // here gets REFUSED (a forwarding loop), not a fresh query each round.
    m.set_edns(hickory_proto::op::Edns::new());
    let Ok(mut bytes) = m.to_vec() else {
        return false;
    };
    state.mark.stamp(&mut bytes, question_end, false);
    let deadline = Instant::now() + wait;
    let answer = match &b.link {
        // Over the backend's own transport, as its client queries go, on
        // the link's connection for probes (never behind a full link's
        // client queries).
        Some(link) => {
            let question = bytes.get(12..question_end).unwrap_or_default().to_vec();
            link.probe(b.addr, &bytes, &question, deadline).await
        }
        // A backend with `proxy` is told the probe is the LS's own.
        None if b.proxy => {
            let local = crate::dns::proxy_v2::Built::local();
            let to = (b.addr, &mut None, Some(local.as_bytes()));
            let pool = &state.pool;
            pool.exchange_from(to, &mut bytes, question_end, deadline, None, None)
                .await
        }
        None => {
            state
                .pool
                .exchange(b.addr, &mut bytes, question_end, (deadline, None))
                .await
        }
    };
    match answer {
        Ok(resp) => {
            // A backend that speaks EDNS may get an OPT the client did not send.
            b.set_speaks_edns(loopmark::has_opt(&resp));
            WireHeader::read(&resp)
                .is_some_and(|h| ResponseCode::from_low(h.rcode()) != ResponseCode::ServFail)
        }
        Err(_) => false,
    }
}

/// Probes every backend of the current snapshot once, concurrently.
async fn sweep(balancer: &Balancer) {
    let state = balancer.state();
    let p = &state.health;
    let probes = state.backends.iter().map(|b| {
        let state = state.clone();
        async move {
            let ok = probe(&state, b, p, p.timeout).await;
            b.probed(ok);
        }
    });
    futures_util::future::join_all(probes).await;
}

/// How often the start-up round sends another probe to a backend that has
/// not answered yet (each probe still waits the configured timeout).
const FIRST_ROUND_EVERY: Duration = Duration::from_millis(100);

/// The start-up round: probes every backend not yet up, every
/// [`FIRST_ROUND_EVERY`], until each has answered a probe or `limit` has
/// passed. Returns the names of the backends still not up.
///
/// Serving only after this keeps a backend that is still starting from being
/// taken for one that is down (or, worse, from being skipped while the
/// others' negative answers are passed on).
pub async fn first_round(balancer: &Balancer, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut probes = futures_util::stream::FuturesUnordered::new();
    loop {
        let state = balancer.state();
        let p = state.health.clone();
        let late: Vec<Arc<Backend>> = state
            .backends
            .iter()
            .filter(|b| !b.is_up())
            .cloned()
            .collect();
        let now = Instant::now();
        if late.is_empty() || now >= deadline {
            return late.iter().map(|b| b.name.clone()).collect();
        }
        let wait = p.timeout.min(deadline - now);
        for b in late {
            let (state, p) = (state.clone(), p.clone());
            probes.push(async move {
                let ok = probe(&state, &b, &p, wait).await;
                // Failures are not held against a backend still starting.
                if ok {
                    b.probed(ok);
                }
            });
        }
        let next = Instant::now() + FIRST_ROUND_EVERY;
        while Instant::now() < next {
            tokio::select! {
                Some(()) = futures_util::StreamExt::next(&mut probes), if !probes.is_empty() => {
                    if state.backends.iter().all(|b| b.is_up()) {
                        break;
                    }
                }
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// Sweeps allowed in flight at once (probes slower than the interval overlap).
const MAX_SWEEPS: usize = 8;

/// The probe loop: a sweep every interval (and per query trigger) until
/// `token` is cancelled. Sweeps run on their own, so a probe that waits its
/// whole timeout never pushes the next round back.
pub async fn run(balancer: Arc<Balancer>, token: CancellationToken) {
    let interval_of = |b: &Balancer| b.state().health.interval;
    let mut period = interval_of(&balancer);
    // The first round comes one interval after start, like every other.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeps = tokio::task::JoinSet::new();
    loop {
        let start = tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => true,
            _ = balancer.trigger.notify.notified() => true,
            Some(_) = sweeps.join_next(), if !sweeps.is_empty() => {
                // Count rounds for observability (and tests waiting on a round).
                balancer.metrics().health_rounds.fetch_add(1, Relaxed);
                false
            }
        };
        if start && sweeps.len() < MAX_SWEEPS {
            let b = balancer.clone();
            sweeps.spawn(async move { sweep(&b).await });
        }
        // A reload may have changed the interval.
        let now = interval_of(&balancer);
        if now != period {
            period = now;
            ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
    }
    sweeps.shutdown().await;
}

//! Running an LS: [`serve`] starts its UDP fast-path workers (one thread
//! each, a blocking loop of its own) and as many connection threads (a
//! current-thread runtime each, with its own async upstream pool; the
//! server layer hands each TCP, DoT and DoH connection to one of them), the
//! server layer for TCP, the health probe loop, the
//! rate-limit sweeper and the dynamic blocks' tick, and stops them all when told; [`server_options`] are
//! the server-layer limits of an `[ls]` section.
use std::sync::Arc;
use std::time::Duration;

use super::balancer::Balancer;
use super::invalidate::{FlushBy, WALK_GAP};
use super::state::{DRAIN_MARGIN, LsState};
use super::udp_path::UPSTREAM_SOCKETS;
use super::upstream::accept::DropCounters;
use super::upstream::shared::{self, SHARED_SOCKETS, SharedSockets};
use super::{probe, udp_path};
use crate::config::LsConfig;
use crate::guard::rate::RATE_SWEEP;
use crate::server::event_loop::{LoopStop, stop_on};
use tokio_util::sync::CancellationToken;

/// The server-layer limits of an `[ls]` section.
pub fn server_options(c: &LsConfig) -> crate::server::ServerOptions {
    crate::server::ServerOptions {
        workers: c.workers,
        max_inflight: c.max_inflight,
        // A query in flight ends by its deadline (its pool's) at the latest;
        // the handler's own figure is read again at the stop (a reload may
        // have lengthened it: `LsState::drain_grace`).
        drain_grace: Duration::from_millis(c.longest_timeout_ms()) + DRAIN_MARGIN,
        ..crate::server::ServerOptions::default()
    }
}

/// Serves `listeners` with `balancer` and runs its health checks, until
/// `token` is cancelled; returns when both have stopped.
pub async fn serve(
    balancer: Arc<Balancer>,
    listeners: crate::server::Listeners,
    opts: crate::server::ServerOptions,
    token: tokio_util::sync::CancellationToken,
) {
    let mut listeners = listeners;
    // What everything started here watches: `token`'s child, cancelled
    // (with `conns_done`) when this future is dropped before its end (a task
    // aborted), so the worker threads, which outlive the caller's runtime,
    // stop and close their sockets then too. Nothing is joined on drop:
    // each thread ends on its own at its next wake-up.
    let child = token.child_token();
    // Cancelled once the server layer is done: every connection handed to a
    // connection thread has ended (or was abandoned), and the thread may stop.
    let conns_done = CancellationToken::new();
    let _on_drop = (child.clone().drop_guard(), conns_done.clone().drop_guard());
    let health = tokio::spawn(probe::run(balancer.clone(), child.clone()));
    let sweeper = tokio::spawn(sweep_rate_limits(balancer.clone(), child.clone()));
    let flusher = tokio::spawn(run_flusher(balancer.clone(), child.clone()));
    let blocks = tokio::spawn(run_dynblocks(balancer.clone(), child.clone()));
    // UDP clients take the fast path, one worker per socket; TCP the server layer.
    let udp = listeners.take_udp();
    let per_worker = opts.max_inflight / udp.len().max(1);
    // Each worker's own upstream pool: a share of the shared pool's sockets,
    // no fewer than a fast-path worker has.
    let sockets = (SHARED_SOCKETS / udp.len().max(1)).max(UPSTREAM_SOCKETS);
    let workers = tokio_util::task::TaskTracker::new();
    // A fast-path worker that dies stops the whole server (and the process
    // with it): never UDP half served.
    let died = CancellationToken::new();
    // On a current-thread runtime (a test's paused clock) the connections
    // stay on it: that one thread already owns them, and its clock is the
    // one the caller controls.
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    let conn_threads = flavor != tokio::runtime::RuntimeFlavor::CurrentThread;
    let mut threads = Vec::new();
    for (i, sock) in udp.into_iter().enumerate() {
        if conn_threads {
            let done = conns_done.clone();
            let (drops, shared) = (balancer.metrics().drops.clone(), balancer.pool.clone());
            let body = move || conn_thread((drops, shared), sockets, done);
            let name = format!("ls-conn-{i}");
            threads.extend(crate::server::thread::start_runtime(
                &workers, &name, &died, body,
            ));
        }
        let name = format!("ls-udp-{i}");
        let (client, stop) = match sock.into_std().and_then(|s| Ok((s, LoopStop::new()?))) {
            Ok(started) => started,
            Err(err) => {
                tracing::error!(worker = %name, ?err, "cannot start a udp worker");
                died.cancel();
                continue;
            }
        };
        // Stops the worker's loop when the server stops, a worker dies, or
        // this future is dropped.
        workers.spawn(stop_on(child.clone(), stop.clone()));
        let b = balancer.clone();
        let rt = tokio::runtime::Handle::current();
        let body = move || udp_path::run(b, client, per_worker, stop, rt);
        crate::server::thread::start_blocking(&workers, &name, &died, body);
    }
    workers.close();
    let watch = {
        let (died, child, token) = (died.clone(), child.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = child.cancelled() => {}
                () = died.cancelled() => {
                    tracing::error!("a udp worker died: stopping the server rather than serve half of it");
                    token.cancel();
                }
            }
        })
    };
    let threads = crate::server::thread::ConnThreads::new(threads);
    crate::server::serve_on(listeners, balancer.clone(), opts, token, threads).await;
    conns_done.cancel();
    let _ = watch.await;
    workers.wait().await;
    let _ = health.await;
    let _ = sweeper.await;
    let _ = flusher.await;
    let _ = blocks.await;
    // The answers awaited outside the server layer (an XDP worker's
    // forwarded queries, a UDP worker's for encrypted backends) still come
    // back through the pool: it closes once they are in, or past the grace.
    let grace = balancer.drain_grace();
    if !balancer.detached().settled(grace).await {
        tracing::warn!(
            left = balancer.detached().running(),
            "answers still awaited after the drain grace; the upstream sockets close"
        );
    }
    balancer.pool.shutdown().await;
}

/// One connection thread's body: its own upstream pool (`sockets` per
/// family) made the thread's (before any task runs there: the TCP, DoT,
/// DoH, DoQ and DoH/3 connections handed to it ask their backends from it,
/// through the sockets, counted so beside the `shared` pool's queries);
/// then it waits for `conns_done` (the connections it serves have drained)
/// and closes its pool.
fn conn_thread(
    (drops, shared): (Arc<DropCounters>, Arc<SharedSockets>),
    sockets: usize,
    conns_done: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    let pool = Arc::new(SharedSockets::for_thread(drops, sockets).counted_by(&shared));
    shared::install(pool.clone());
    async move {
        conns_done.cancelled().await;
        pool.shutdown().await;
    }
}

/// How long the dynamic blocks' tick waits for the busy fast-path workers'
/// counts after calling for them.
const HAND_IN: Duration = Duration::from_millis(150);

/// Every second until `token` is cancelled: the dynamic blocks' tick
/// (counts added up, blocks made and lifted, the set in force published:
/// [`super::dynblock::DynBlocks::tick`]).
async fn run_dynblocks(balancer: Arc<Balancer>, token: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The fast-path workers hand their counts in at their next event:
        // a busy one at once, an idle one within 100 ms (its longest sleep).
        balancer.dynblocks().call_in();
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(HAND_IN) => {}
        }
        // Well under a millisecond: every shard's tables walked once.
        let events = balancer.dynblocks().tick(std::time::Instant::now());
        for e in &events {
            super::tap::dynblock_event(balancer.dnstap(), e);
        }
    }
}

/// Every [`RATE_SWEEP`] until `token` is cancelled: ends (and logs)
/// the rate-limit episodes that have gone quiet. A reload replaces the
/// limiter: the old one's episodes end then.
async fn sweep_rate_limits(balancer: Arc<Balancer>, token: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(RATE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Arc<LsState>> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = balancer.state();
        let now = std::time::Instant::now();
        if let Some(old) = last.take()
            && !Arc::ptr_eq(&old, &state)
            && let Some(rate) = &old.rate
        {
            rate.end_all(now);
        }
        if let Some(rate) = &state.rate {
            rate.sweep(now);
        }
        last = Some(state);
    }
}

/// Removes the entries of the zones `queue` gathers, from the caches of the
/// balancer's snapshot at the time, one walk for all of them, counted as
/// NOTIFY flushes (one per zone); rests [`WALK_GAP`] after each walk; until
/// `token` is cancelled.
pub async fn run_flusher(balancer: Arc<Balancer>, token: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = balancer.flush_queue().wait() => {}
        }
        let zones = balancer.flush_queue().take();
        if zones.is_empty() {
            continue;
        }
        let state = balancer.state();
        let walk = tokio::task::spawn_blocking(move || {
            let removed = state.flush_zones(&zones);
            (zones, removed)
        });
        let Ok((zones, removed)) = walk.await else {
            continue; // the walk panicked: its zones were taken, not lost twice
        };
        let counters = balancer.flushes();
        for _ in &zones {
            counters.count(FlushBy::Notify, 0);
        }
        counters.count_entries(FlushBy::Notify, removed);
        tracing::debug!(?zones, removed, "NOTIFY: zones flushed from the cache");
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(WALK_GAP) => {}
        }
    }
}

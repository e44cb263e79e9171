//! A fast-path worker's loop, as free functions over the [`Worker`] (the
//! top of the fast path: they call into `admitted` and the worker, neither
//! calls back): its waits and its rounds. [`wait`]
//! blocks in its epoll set ([`crate::server::event_loop::Poller`]) until a
//! socket is ready, the stop is set, or its next live timer is due (at most
//! [`HAND_IN_WAKE`]), and notes what is ready; [`round`] reads it
//! (upstream answers first, then a batch of client queries), reads what is
//! readable, then expires (before a timer due fires, every upstream socket
//! with an ID in use is read, reported ready or not), fires the
//! timers due and flushes the round's datagrams ([`flush`]: what a
//! full socket does not take stays queued, the socket watched for writing
//! until it has gone). When the client socket is watched is decided here
//! (an upstream socket's watch is the worker's own:
//! [`Worker::watch_upstream`]); what a client query does is `admitted`'s,
//! what an answer or a flight's timer does the worker's.
//!
//! With nothing in flight (no flight, late entry or held query, no live
//! timer, nothing pending to send, client reads open) nothing but the
//! client socket can need the worker before its hand-in wake: it then
//! sleeps in the client socket's receive itself ([`may_block`],
//! [`RecvBatch::recv_waiting`]), as dnsdist's listeners do, not in
//! `epoll_wait` followed by `recvmmsg`: one system call a wake-up fewer.
//! The receive is bounded by the socket's `SO_RCVTIMEO` ([`HAND_IN_WAKE`],
//! the hand-in) and woken by the stop (the socket shut for reading:
//! [`crate::server::event_loop::LoopStop::wake_reader`]); the round that
//! follows is the same round, its client batch already read. As soon as
//! a query is in flight (or a timer armed) the next wait is `epoll_wait`
//! again, over the upstream sockets too. What the blocking receive leaves
//! unread meanwhile is a stray datagram on an idle upstream socket (no ID
//! in use there), read and dropped by the next `epoll_wait`.
use std::cmp::Reverse;

use tokio::time::Instant;
use tracing::debug;

use super::flight::TimerFor;
use super::timers::timer_live;
use super::worker::{CLIENT, HAND_IN_WAKE, HANDOFF, RoundClock, UP, UPSTREAM_SLOTS, Watch, Worker};
use super::{admitted, tap};
use crate::ls::handoff::HandedQuery;
use crate::ls::upstream::ids::IdUse;
use crate::server::batch::{self, RecvBatch};
use crate::server::shed::{arrival, queue_bound, waited};

/// Batches one round reads of one upstream socket at most: a
/// sender faster than the worker (a misbehaving backend, anything that
/// learnt the port) cannot hold it there, away from its clients and
/// timers; what is left the next wait reports at once (level-triggered).
/// Far above what a round's own queries bring back (a client batch is
/// [`batch::BATCH`] queries, spread over the sockets): 256 datagrams a
/// socket.
pub(super) const UPSTREAM_BATCHES: usize = 32;

/// The receive slots of a worker's loop: apart from the worker, whose
/// methods each datagram read into them is handed to.
pub(super) struct Slots {
    client: RecvBatch,
    /// One per address family.
    up: [RecvBatch; 2],
}

impl Slots {
    pub(super) fn new() -> Self {
        Slots {
            client: RecvBatch::with_timestamps(batch::BATCH),
            up: [
                RecvBatch::with_timestamps(UPSTREAM_SLOTS),
                RecvBatch::with_timestamps(UPSTREAM_SLOTS),
            ],
        }
    }
}

/// Serves until stopped, then answers the queries still in flight (each
/// ends by its deadline), sends what is pending, and returns.
///
/// # Errors
/// The OS error of its epoll set (the worker cannot go on).
pub(super) fn run(w: &mut Worker) -> std::io::Result<()> {
    let mut slots = Slots::new();
    let ended = loop {
        if w.stopping && w.flights.len == 0 && !sending(w) {
            break Ok(());
        }
        if may_block(w) {
            let got = block(w, &mut slots.client);
            // Both clocks when it read datagrams (timed by them).
            let clock = if matches!(got, Ok(n) if n > 0) {
                RoundClock::read()
            } else {
                RoundClock::at(Instant::now())
            };
            round_with(w, &mut slots, clock, Some(got));
            continue;
        }
        if let Err(err) = wait(w) {
            break Err(err);
        }
        // One clock read per round: both clocks when a socket is to be
        // read (its datagrams are timed by them), else the monotonic one.
        let clock = if w.client_ready || !w.ups_ready.is_empty() {
            RoundClock::read()
        } else {
            RoundClock::at(Instant::now())
        };
        round_with(w, &mut slots, clock, None);
    };
    // The stop has no receive of this worker's to wake any more.
    let _ = w.poller.stop().wake_reader(None);
    ended
}

/// Whether the next wait may be the client socket's blocking receive
/// ([`block`]): nothing but a client query can need the worker
/// before its hand-in wake. No flight, late entry or held query (so no
/// upstream ID in use: no answer to wait for on an upstream socket), no
/// live timer, nothing pending to send, and client reads open (not
/// stopping, not paused, not held back by pending answers); and the
/// client socket set up for it (`Worker::new`).
pub(super) fn may_block(w: &mut Worker) -> bool {
    w.block_ok
        && taking(w)
        && w.flights.len == 0
        && w.late.len == 0
        && w.delayed.len == 0
        && !sending(w)
        && w.next_timer().is_none()
}

/// Sleeps in the client socket's receive until a query comes (then
/// reads a batch, as [`round`] would), the hand-in wake
/// passes (the socket's `SO_RCVTIMEO`: `WouldBlock`) or the stop
/// shuts the socket for reading; reads the stop's flag after it.
#[inline(never)] // its own entry in a profile: the wake-up's cost
fn block(w: &mut Worker, slots: &mut RecvBatch) -> std::io::Result<usize> {
    w.client_ready = false;
    w.ups_ready.clear();
    #[cfg(test)]
    w.blocks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let got = slots.recv_waiting(&w.client);
    w.stopping |= w.poller.stop().is_set();
    got
}

/// Whether client queries are taken: not stopping, client reads
/// watched (not held back by pending answers), not paused after a
/// receive error.
fn taking(w: &Worker) -> bool {
    !w.stopping && w.client_watch.read && w.paused_until.is_none()
}

/// Whether a send is pending: a full socket left messages queued.
fn sending(w: &Worker) -> bool {
    w.to_clients.len() > 0 || w.to_upstream.iter().any(|q| q.len() > 0)
}

/// Waits for anything: a client query, an upstream answer, a socket
/// writable again while a send is pending, the stop, or the next live
/// timer (at most [`HAND_IN_WAKE`]: an idle worker still hands its
/// counts in ten times a second; no timer is armed for it, the wait's
/// timeout is computed anew each time). Notes what is ready for the
/// next [`round`], and reads the stop's flag, once.
///
/// # Errors
/// The OS error of `epoll_wait(2)`.
#[inline(never)] // its own entry in a profile: the wake-up's cost
pub(super) fn wait(w: &mut Worker) -> std::io::Result<()> {
    let next = w.next_timer();
    let next = match (next, w.paused_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let timeout = next.map_or(HAND_IN_WAKE, |at| {
        at.saturating_duration_since(Instant::now())
            .min(HAND_IN_WAKE)
    });
    // A query handed over since the round took them: no sleep.
    let timeout = match &w.inbox {
        Some(inbox) if !inbox.arm() => std::time::Duration::ZERO,
        _ => timeout,
    };
    w.client_ready = false;
    w.ups_ready.clear();
    w.inbox_woken = false;
    let (client, ups, handed) = (&mut w.client_ready, &mut w.ups_ready, &mut w.inbox_woken);
    w.poller.wait(Some(timeout), |r| {
        // Writable: the round's flush sends what is pending anyway.
        if r.token == CLIENT {
            *client |= r.read;
        } else if r.token == HANDOFF {
            *handed = true;
        } else if r.read
            && let Some(slot) = r.token.checked_sub(UP)
        {
            ups.push(usize::try_from(slot).unwrap_or(usize::MAX));
        }
    })?;
    w.stopping |= w.poller.stop().is_set();
    Ok(())
}

/// One round at `clock` (the time the wait returned: every part of the
/// round takes its time from it, no other clock read in it but the
/// datagrams' moment, once): whatever the last
/// wait found ready is read, upstream answers first, then a batch of
/// client queries; then, when a timer is due, every other upstream
/// socket with an ID in use is read ([`read_in_flight`]: the
/// answers arrived by then are all read before the timers due fire,
/// whether or not the wait reported them); then the timers due fire, the
/// round's datagrams leave, and the counts are handed in when called
/// for. A full client batch leaves the rest in the socket, which the
/// next wait reports at once, together with whatever else is ready (no
/// yield needed to hear of the upstream sockets' new answers, as on a
/// runtime whose driver polled epoll only when the worker yielded).
///
/// `read`: the client batch the blocking receive read already
/// ([`block`]), handled in place of the wait's readiness; not
/// looked at once the worker is stopping (the stop woke the receive,
/// or UDP reads were closed meanwhile: not a query is taken then).
fn round_with(
    w: &mut Worker,
    slots: &mut Slots,
    clock: RoundClock,
    read: Option<std::io::Result<usize>>,
) {
    w.clock = clock;
    let now = clock.now;
    // The round's upstream queries of a family leave from one socket,
    // drawn at random for the round (`Sockets::new_round`).
    w.ups.new_round();
    // A reload since the last round: its snapshot from now on.
    w.balancer.refresh(&mut w.kept);
    read_upstream(w, &mut slots.up);
    if w.paused_until.is_some_and(|at| now >= at) {
        w.paused_until = None;
    }
    // Told to read no more (the LS is stopping, `/ready` may say so
    // already): checked here, right before the read, each round.
    w.stopping |= w.balancer.udp_reads_closed();
    let taking = taking(w);
    match read {
        Some(got) if taking => on_clients(w, &mut slots.client, got),
        Some(_) => {}
        None if w.client_ready && taking => {
            let got = slots.client.recv(&w.client);
            on_clients(w, &mut slots.client, got);
        }
        None => {}
    }
    take_handed(w);
    if w.stopping && w.delayed.len > 0 {
        admitted::release_delayed(w);
    }
    // Read what is readable, then expire: an answer the wait did not
    // report (it came after the wait returned, or after `now` was read
    // on a loaded machine) is in its socket before its deadline, hedge
    // or late entry is judged. Only when a timer is due: a round with
    // none reads nothing more.
    if w.next_timer().is_some_and(|at| at <= now) {
        read_in_flight(w, &mut slots.up);
    }
    fire_timers(w, now);
    flush(w);
    watch_client(w);
    w.balancer.dynblocks().hand_in(&mut w.counts);
}

/// A batch of client queries read into `slots` (`got`: the receive's
/// result, at most [`batch::BATCH`]): each one
/// admitted, or shed when it waited too long (see [`QueueGate`]) and the
/// door does not spare it ([`admitted::on_client_late`]). A
/// receive error pauses client reads ([`RecvBackoff`]); an interrupted
/// blocking receive read nothing and is no error.
fn on_clients(w: &mut Worker, slots: &mut RecvBatch, got: std::io::Result<usize>) {
    match got {
        Ok(n) => {
            w.backoff.success();
            let bound = queue_bound(w.kept.state().policy.timeout);
            // A datagram that arrived after the round's clocks were read
            // (while the round read its upstream answers first, on a
            // busy worker) would be timed before its arrival, even
            // before its client sent it (its arrival, its CLIENT_QUERY
            // frame): the clocks are read again then, after the batch
            // (once a round at most; not when every datagram waited).
            let (_, read_at) = w.clock.stamps();
            let late = (0..n)
                .filter_map(|i| slots.get(i).and_then(|(_, meta)| meta.stamp))
                .any(|stamp| stamp > read_at);
            if late {
                w.clock.restamp();
            }
            let (now, read_at) = w.clock.stamps();
            for i in 0..n {
                if let Some((raw, meta)) = slots.get(i)
                    && let Some(src) = meta.peer()
                    && !meta.truncated
                    && src.addr.port() != 0
                {
                    let wait = waited(meta.stamp, read_at);
                    // Late: the door says whether it goes.
                    let late = wait
                        .filter(|&wait| w.gate.shed(Some(wait), now, bound))
                        .map(|wait| (wait, bound));
                    // When it arrived: the batch's time less its wait
                    // in the kernel, no clock read.
                    let at = wait.map_or(now, |d| now.checked_sub(d).unwrap_or(now));
                    // Past a `proxy_from` sender's PROXY header, its
                    // client asks; the answer still goes to the sender.
                    let (raw, who) = match &w.balancer.proxy_gate {
                        None => (raw, src.addr),
                        Some(gate) => match gate.datagram(raw, src.addr) {
                            Some(taken) => taken,
                            None => continue,
                        },
                    };
                    admitted::on_client_late(w, raw, (src, who), at, late);
                }
            }
            if n < batch::BATCH {
                w.gate.drained();
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => w.gate.drained(),
        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
        Err(err) => {
            debug!(?err, "udp recv error");
            if let Some(pause) = w.backoff.failure() {
                w.paused_until = Some(w.clock.now + pause);
            }
        }
    }
}

/// The queries the XDP workers handed over (at most [`batch::BATCH`] a
/// round, as a client batch), each forwarded as one the client socket
/// read: already admitted by the door and missed in the cache (looked up
/// again: it may have been filled since). Not once stopping: the client
/// asks again.
fn take_handed(w: &mut Worker) {
    let Some(inbox) = w.inbox.take() else {
        return;
    };
    if std::mem::take(&mut w.inbox_woken) {
        inbox.woken();
    }
    if taking(w) {
        for _ in 0..batch::BATCH {
            let Some(q) = inbox.take() else {
                break;
            };
            let HandedQuery {
                raw,
                client,
                received,
                state,
                admitted,
            } = q;
            let at = (client, Instant::from_std(received));
            match admitted.delay() {
                Some(delay) => admitted::hold(w, &raw, at, state, admitted, delay),
                None => admitted::forward(w, &raw, at, state, admitted),
            }
            w.recycle(raw);
        }
    }
    w.inbox = Some(inbox);
}

/// Sets what the client socket is watched for, when it changed: read
/// while the worker takes queries (not once stopping, nor during a
/// receive error's pause, nor while answers are pending: a full socket
/// holds the next queries back, as the wait for it did on a runtime);
/// written while answers are pending.
fn watch_client(w: &mut Worker) {
    let pending = w.to_clients.len() > 0;
    let want = Watch {
        read: !w.stopping && w.paused_until.is_none() && !pending,
        write: pending,
    };
    if want != w.client_watch {
        match w.poller.set(&w.client, CLIENT, want.read, want.write) {
            Ok(()) => w.client_watch = want,
            Err(err) => debug!(?err, "cannot change the client socket's watch"),
        }
    }
}

/// Reads every upstream socket the last wait found ready, retired ones
/// included (`slots`: one batch per family, v4 then v6), until it is
/// empty.
pub(super) fn read_upstream(w: &mut Worker, slots: &mut [RecvBatch; 2]) {
    let ready = std::mem::take(&mut w.ups_ready);
    for &s in &ready {
        read_socket(w, s, slots);
    }
    w.ups_ready = ready;
}

/// Reads every upstream socket with an ID in use (a query in flight or
/// a late entry) that the last wait did not find ready (those were
/// read already, after it returned): one non-blocking `recvmmsg` each
/// when nothing waits there. Called before timers due fire, so that an
/// answer already in a socket wins over its query's deadline, hedge or
/// per-try timeout, and a late answer settles its entry before the
/// entry is charged as a loss.
pub(super) fn read_in_flight(w: &mut Worker, slots: &mut [RecvBatch; 2]) {
    // Sockets a read opens (a worn one replaced) have sent nothing yet.
    for s in 0..w.ups.len() {
        let live = w.ups.get(s).is_some_and(|u| u.ids.live() > 0);
        if live && !w.ups_ready.contains(&s) {
            read_socket(w, s, slots);
        }
    }
}

/// Reads upstream slot `s`'s socket until it is empty (or errs), at
/// most [`UPSTREAM_BATCHES`] batches, each datagram timed by its arrival
/// and handed to [`Worker::on_upstream`].
fn read_socket(w: &mut Worker, s: usize, slots: &mut [RecvBatch; 2]) {
    for _ in 0..UPSTREAM_BATCHES {
        let Some(u) = w.ups.get(s) else {
            break;
        };
        let Some(batch) = slots.get_mut(u.family.index()) else {
            break;
        };
        let n = match batch.recv(&u.sock) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (now, now_sys) = w.clock.stamps();
        for i in 0..n {
            if let Some((resp, meta)) = batch.get(i)
                && let Some(from) = meta.src
            {
                let at = arrival(meta.stamp, now, now_sys);
                if let Err(why) = w.on_upstream(s, resp, from, meta.truncated, at) {
                    w.balancer.metrics.drops.count(why);
                }
            }
        }
        if n < UPSTREAM_SLOTS {
            break;
        }
    }
}

/// A round on `clock` as read when the wait returned (a test's).
#[cfg(test)]
pub(super) fn round_read_at(w: &mut Worker, slots: &mut Slots, clock: RoundClock) {
    round_with(w, slots, clock, None);
}

/// A round at `now` (a test's time), the datagrams timed by the clocks.
#[cfg(test)]
pub(super) fn round(w: &mut Worker, slots: &mut Slots, now: Instant) {
    round_with(w, slots, RoundClock::at(now), None);
}

/// Sends this round's upstream queries and client answers, in batches,
/// and what a full socket left pending before, and hands the round's
/// dnstap frames to its queue; what a socket does not
/// take now stays queued, the socket watched for writing until it has
/// gone. An upstream query the kernel refuses (any error but `EAGAIN`)
/// ends its try at once ([`Worker::on_refused`]); what its flight does
/// next (the next backend asked, or its client answered) is sent in the
/// same flush. Retired upstream sockets no ID is in use on any more are
/// closed (out of the epoll set first).
pub(super) fn flush(w: &mut Worker) {
    // A send left pending by a full socket (its slot then watched for
    // writing).
    let mut left = false;
    loop {
        tap::forwarder_queued(
            (w.balancer.dnstap(), &mut w.tap_staged),
            &w.ups,
            &w.to_upstream,
            || w.clock.stamps(),
        );
        for (i, out) in w.to_upstream.iter_mut().enumerate() {
            if out.len() == 0 {
                continue;
            }
            match w.ups.get(i) {
                Some(u) => {
                    let refused = &mut w.refused;
                    left |= !out.send_now(&u.sock, |query| {
                        if let Some(id) = query.first_chunk::<2>() {
                            refused.push((i, u16::from_be_bytes(*id)));
                        }
                    });
                }
                None => out.clear(),
            }
        }
        if w.refused.is_empty() {
            break;
        }
        // Each refusal ends a try; a flight has finitely many, so this ends.
        let now = w.clock.now;
        let mut refused = std::mem::take(&mut w.refused);
        for (sock, id) in refused.drain(..) {
            w.on_refused(sock, id, now);
        }
        w.refused = refused;
    }
    tap::answers_queued(
        (w.balancer.dnstap(), &mut w.tap_staged),
        w.client_local,
        &w.to_clients,
        || w.clock.stamps(),
    );
    w.to_clients.send_now(&w.client, |_| {});
    // The round's dnstap frames, all of them, under one lock of its queue.
    w.balancer.dnstap().commit(&mut w.tap_staged);
    // Whose watch changes: a slot whose send is left pending, or one
    // watched for writing whose send has gone. Neither: no slot to look at.
    if left || w.up_writes > 0 {
        for slot in 0..w.to_upstream.len().min(w.up_watch.len()) {
            let pending = w.to_upstream.get(slot).is_some_and(|q| q.len() > 0);
            if w.up_watch.get(slot).copied().flatten().map(|sw| sw.write) == Some(!pending) {
                w.watch_upstream(slot);
            }
        }
    }
    let (poller, watch, writes) = (&w.poller, &mut w.up_watch, &mut w.up_writes);
    w.ups.reap(|slot, sock| {
        if let Err(err) = poller.remove(&sock) {
            debug!(?err, slot, "cannot unwatch a retired upstream socket");
        }
        if let Some(sw) = watch.get_mut(slot) {
            if sw.is_some_and(|sw| sw.write) {
                *writes = writes.saturating_sub(1);
            }
            *sw = None;
        }
        drop(sock);
    });
}

/// Runs every timer due at `now`.
pub(super) fn fire_timers(w: &mut Worker, now: Instant) {
    while let Some(Reverse((at, what))) = w.timers.peek().copied() {
        if at > now {
            break;
        }
        w.timers.pop();
        if !timer_live((&w.flights, &w.late, &w.delayed), at, what) {
            continue;
        }
        match what {
            TimerFor::Flight(idx) => {
                if let Some(f) = w.flights.get_mut(idx) {
                    f.timer_at = None;
                }
                w.drive(idx, now);
            }
            TimerFor::Delayed(di) => {
                if let Some(d) = w.delayed.remove(di) {
                    admitted::go_on(w, d);
                }
            }
            TimerFor::Late(li) => {
                let Some(l) = w.late.get_mut(li) else {
                    continue;
                };
                if l.entry.expire(now) {
                    // At its deadline: no longer in flight; forgotten after the grace.
                    let again = l.entry.forget_at();
                    l.timer_at = again;
                    w.arm(again, TimerFor::Late(li));
                    continue;
                }
                if let Some(mut l) = w.late.remove(li) {
                    l.entry.settle(now);
                    if let Some(u) = w.ups.get_mut(l.sock) {
                        u.ids.set(l.id, IdUse::Free);
                    }
                }
            }
        }
    }
}

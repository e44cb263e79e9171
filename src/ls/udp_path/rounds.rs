//! A fast-path worker's loop: its waits and its rounds. [`Worker::wait`]
//! blocks in its epoll set ([`crate::server::event_loop::Poller`]) until a
//! socket is ready, the stop is set, or its next live timer is due (at most
//! [`HAND_IN_WAKE`]), and notes what is ready; [`Worker::round`] reads it
//! (upstream answers first, then a batch of client queries), reads what is
//! readable, then expires (before a timer due fires, every upstream socket
//! with an ID in use is read, reported ready or not), fires the
//! timers due and flushes the round's datagrams ([`Worker::flush`]: what a
//! full socket does not take stays queued, the socket watched for writing
//! until it has gone). Which sockets are in the set and for what
//! ([`Worker::watch_upstream`], the client socket's watch) is decided here;
//! what a query, an answer or a timer does is `worker`'s.
//!
//! With nothing in flight (no flight, late entry or held query, no live
//! timer, nothing pending to send, client reads open) nothing but the
//! client socket can need the worker before its hand-in wake: it then
//! sleeps in the client socket's receive itself ([`Worker::may_block`],
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
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::tap;
use super::worker::{CLIENT, RoundClock, UPSTREAM_SLOTS, Watch, Worker};
use crate::server::batch::{self, RecvBatch};
use crate::server::shed::{arrival, queue_bound, waited};

/// Upstream socket slot `s`'s token in the worker's epoll set is `UP + s`.
const UP: u64 = 1;

/// Batches one round reads of one upstream socket at most (ls-core S2): a
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

/// The longest a worker sleeps: an idle one hands its dynamic-block counts
/// in within this long of the tick calling for them (the wait's timeout,
/// and the client socket's receive timeout for the blocking receive).
pub(super) const HAND_IN_WAKE: Duration = Duration::from_millis(100);

impl Worker {
    /// Serves until stopped, then answers the queries still in flight (each
    /// ends by its deadline), sends what is pending, and returns.
    ///
    /// # Errors
    /// The OS error of its epoll set (the worker cannot go on).
    pub(super) fn run(&mut self) -> std::io::Result<()> {
        let mut slots = Slots::new();
        let ended = loop {
            if self.stopping && self.flights.len == 0 && !self.sending() {
                break Ok(());
            }
            if self.may_block() {
                let got = self.block(&mut slots.client);
                // Both clocks when it read datagrams (timed by them).
                let clock = if matches!(got, Ok(n) if n > 0) {
                    RoundClock::read()
                } else {
                    RoundClock::at(Instant::now())
                };
                self.round_with(&mut slots, clock, Some(got));
                continue;
            }
            if let Err(err) = self.wait() {
                break Err(err);
            }
            // One clock read per round: both clocks when a socket is to be
            // read (its datagrams are timed by them), else the monotonic one.
            let clock = if self.client_ready || !self.ups_ready.is_empty() {
                RoundClock::read()
            } else {
                RoundClock::at(Instant::now())
            };
            self.round_with(&mut slots, clock, None);
        };
        // The stop has no receive of this worker's to wake any more.
        let _ = self.poller.stop().wake_reader(None);
        ended
    }

    /// Sets the client socket up for the blocking receive: blocking mode,
    /// its wait bounded by the hand-in wake, named to the stop (which wakes
    /// it); every other call on it waits for nothing (`MSG_DONTWAIT`).
    /// Failing that, the worker waits in `epoll_wait` only.
    pub(super) fn set_up_blocking(&mut self) {
        let done = self
            .client
            .set_read_timeout(Some(HAND_IN_WAKE))
            .and_then(|()| self.poller.stop().wake_reader(Some(&self.client)))
            .and_then(|()| self.client.set_nonblocking(false));
        match done {
            Ok(()) => self.block_ok = true,
            Err(err) => debug!(?err, "the worker waits in epoll_wait only"),
        }
    }

    /// Whether the next wait may be the client socket's blocking receive
    /// ([`Worker::block`]): nothing but a client query can need the worker
    /// before its hand-in wake. No flight, late entry or held query (so no
    /// upstream ID in use: no answer to wait for on an upstream socket), no
    /// live timer, nothing pending to send, and client reads open (not
    /// stopping, not paused, not held back by pending answers); and the
    /// client socket set up for it (`Worker::new`).
    pub(super) fn may_block(&mut self) -> bool {
        self.block_ok
            && self.taking()
            && self.flights.len == 0
            && self.late.len == 0
            && self.delayed.len == 0
            && !self.sending()
            && self.next_timer().is_none()
    }

    /// Sleeps in the client socket's receive until a query comes (then
    /// reads a batch, as [`Worker::round`] would), the hand-in wake
    /// passes (the socket's `SO_RCVTIMEO`: `WouldBlock`) or the stop
    /// shuts the socket for reading; reads the stop's flag after it.
    #[inline(never)] // its own entry in a profile: the wake-up's cost
    fn block(&mut self, slots: &mut RecvBatch) -> std::io::Result<usize> {
        self.client_ready = false;
        self.ups_ready.clear();
        #[cfg(test)]
        self.blocks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let got = slots.recv_waiting(&self.client);
        self.stopping |= self.poller.stop().is_set();
        got
    }

    /// Whether client queries are taken: not stopping, client reads
    /// watched (not held back by pending answers), not paused after a
    /// receive error.
    fn taking(&self) -> bool {
        !self.stopping && self.client_watch.read && self.paused_until.is_none()
    }

    /// Whether a send is pending: a full socket left messages queued.
    fn sending(&self) -> bool {
        self.to_clients.len() > 0 || self.to_upstream.iter().any(|q| q.len() > 0)
    }

    /// Waits for anything: a client query, an upstream answer, a socket
    /// writable again while a send is pending, the stop, or the next live
    /// timer (at most [`HAND_IN_WAKE`]: an idle worker still hands its
    /// counts in ten times a second; no timer is armed for it, the wait's
    /// timeout is computed anew each time). Notes what is ready for the
    /// next [`Worker::round`], and reads the stop's flag, once.
    ///
    /// # Errors
    /// The OS error of `epoll_wait(2)`.
    #[inline(never)] // its own entry in a profile: the wake-up's cost
    pub(super) fn wait(&mut self) -> std::io::Result<()> {
        let next = self.next_timer();
        let next = match (next, self.paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = next.map_or(HAND_IN_WAKE, |at| {
            at.saturating_duration_since(Instant::now())
                .min(HAND_IN_WAKE)
        });
        self.client_ready = false;
        self.ups_ready.clear();
        let (client, ups) = (&mut self.client_ready, &mut self.ups_ready);
        self.poller.wait(Some(timeout), |r| {
            // Writable: the round's flush sends what is pending anyway.
            if r.token == CLIENT {
                *client |= r.read;
            } else if r.read
                && let Some(slot) = r.token.checked_sub(UP)
            {
                ups.push(usize::try_from(slot).unwrap_or(usize::MAX));
            }
        })?;
        self.stopping |= self.poller.stop().is_set();
        Ok(())
    }

    /// One round at `clock` (the time the wait returned: every part of the
    /// round takes its time from it, no other clock read in it but the
    /// datagrams' moment, once): whatever the last
    /// wait found ready is read, upstream answers first, then a batch of
    /// client queries; then, when a timer is due, every other upstream
    /// socket with an ID in use is read ([`Worker::read_in_flight`]: the
    /// answers arrived by then are all read before the timers due fire,
    /// whether or not the wait reported them); then the timers due fire, the
    /// round's datagrams leave, and the counts are handed in when called
    /// for. A full client batch leaves the rest in the socket, which the
    /// next wait reports at once, together with whatever else is ready (no
    /// yield needed to hear of the upstream sockets' new answers, as on a
    /// runtime whose driver polled epoll only when the worker yielded).
    ///
    /// `read`: the client batch the blocking receive read already
    /// ([`Worker::block`]), handled in place of the wait's readiness; not
    /// looked at once the worker is stopping (the stop woke the receive,
    /// or UDP reads were closed meanwhile: not a query is taken then).
    fn round_with(
        &mut self,
        slots: &mut Slots,
        clock: RoundClock,
        read: Option<std::io::Result<usize>>,
    ) {
        self.clock = clock;
        let now = clock.now;
        // The round's upstream queries of a family leave from one socket,
        // drawn at random for the round (`Sockets::new_round`).
        self.ups.new_round();
        // A reload since the last round: its snapshot from now on.
        self.balancer.refresh(&mut self.kept);
        self.read_upstream(&mut slots.up);
        if self.paused_until.is_some_and(|at| now >= at) {
            self.paused_until = None;
        }
        // Told to read no more (the LS is stopping, `/ready` may say so
        // already): checked here, right before the read, each round.
        self.stopping |= self.balancer.udp_reads_closed();
        let taking = self.taking();
        match read {
            Some(got) if taking => self.on_clients(&mut slots.client, got),
            Some(_) => {}
            None if self.client_ready && taking => {
                let got = slots.client.recv(&self.client);
                self.on_clients(&mut slots.client, got);
            }
            None => {}
        }
        if self.stopping && self.delayed.len > 0 {
            self.release_delayed();
        }
        // Read what is readable, then expire: an answer the wait did not
        // report (it came after the wait returned, or after `now` was read
        // on a loaded machine) is in its socket before its deadline, hedge
        // or late entry is judged. Only when a timer is due: a round with
        // none reads nothing more.
        if self.next_timer().is_some_and(|at| at <= now) {
            self.read_in_flight(&mut slots.up);
        }
        self.fire_timers(now);
        self.flush();
        self.watch_client();
        self.balancer.dynblocks().hand_in(&mut self.counts);
    }

    /// A batch of client queries read into `slots` (`got`: the receive's
    /// result, at most [`batch::BATCH`]): each one
    /// admitted, or shed when it waited too long (see [`QueueGate`]) and the
    /// door does not spare it ([`Worker::on_client_late`]). A
    /// receive error pauses client reads ([`RecvBackoff`]); an interrupted
    /// blocking receive read nothing and is no error.
    fn on_clients(&mut self, slots: &mut RecvBatch, got: std::io::Result<usize>) {
        match got {
            Ok(n) => {
                self.backoff.success();
                let bound = queue_bound(self.kept.state().policy.timeout);
                // A datagram that arrived after the round's clocks were read
                // (while the round read its upstream answers first, on a
                // busy worker) would be timed before its arrival, even
                // before its client sent it (its arrival, its CLIENT_QUERY
                // frame): the clocks are read again then, after the batch
                // (once a round at most; not when every datagram waited).
                let (_, read_at) = self.clock.stamps();
                let late = (0..n)
                    .filter_map(|i| slots.get(i).and_then(|(_, meta)| meta.stamp))
                    .any(|stamp| stamp > read_at);
                if late {
                    self.clock.restamp();
                }
                let (now, read_at) = self.clock.stamps();
                for i in 0..n {
                    if let Some((raw, meta)) = slots.get(i)
                        && let Some(src) = meta.peer()
                        && !meta.truncated
                        && src.addr.port() != 0
                    {
                        let wait = waited(meta.stamp, read_at);
                        // Late: the door says whether it goes.
                        let late = wait
                            .filter(|&w| self.gate.shed(Some(w), now, bound))
                            .map(|w| (w, bound));
                        // When it arrived: the batch's time less its wait
                        // in the kernel, no clock read.
                        let at = wait.map_or(now, |w| now.checked_sub(w).unwrap_or(now));
                        self.on_client_late(raw, src, at, late);
                    }
                }
                if n < batch::BATCH {
                    self.gate.drained();
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => self.gate.drained(),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                debug!(?err, "udp recv error");
                if let Some(pause) = self.backoff.failure() {
                    self.paused_until = Some(self.clock.now + pause);
                }
            }
        }
    }

    /// Sets what the client socket is watched for, when it changed: read
    /// while the worker takes queries (not once stopping, nor during a
    /// receive error's pause, nor while answers are pending: a full socket
    /// holds the next queries back, as the wait for it did on a runtime);
    /// written while answers are pending.
    fn watch_client(&mut self) {
        let pending = self.to_clients.len() > 0;
        let want = Watch {
            read: !self.stopping && self.paused_until.is_none() && !pending,
            write: pending,
        };
        if want != self.client_watch {
            match self.poller.set(&self.client, CLIENT, want.read, want.write) {
                Ok(()) => self.client_watch = want,
                Err(err) => debug!(?err, "cannot change the client socket's watch"),
            }
        }
    }

    /// Puts upstream slot `slot`'s socket in the epoll set when it is not
    /// there yet (a socket just opened), or sets whether it is watched for
    /// writing (a send pending on it). Every open upstream socket is in the
    /// set, used or idle: epoll reports only the ready ones, so an idle one
    /// costs a wake-up nothing, where adding a socket at its first ID in use
    /// and taking it out at its last would cost two `epoll_ctl` calls per
    /// query at low load. A datagram on an idle socket is read at once and
    /// refused as stray.
    pub(super) fn watch_upstream(&mut self, slot: usize) {
        let Some(u) = self.ups.get(slot) else {
            return;
        };
        if self.up_watch.len() <= slot {
            self.up_watch.resize(slot + 1, None);
        }
        let write = self.to_upstream.get(slot).is_some_and(|q| q.len() > 0);
        let token = UP + slot as u64;
        let (now, done) = match self.up_watch.get(slot).copied().flatten() {
            None => (
                Watch {
                    read: true,
                    write: false,
                },
                self.poller.add(&u.sock, token),
            ),
            Some(w) if w.write != write => (
                Watch { read: true, write },
                self.poller.set(&u.sock, token, true, write),
            ),
            Some(_) => return,
        };
        match done {
            Ok(()) => {
                if let Some(w) = self.up_watch.get_mut(slot) {
                    let was = w.is_some_and(|w| w.write);
                    if was != now.write {
                        self.up_writes = if now.write {
                            self.up_writes + 1
                        } else {
                            self.up_writes.saturating_sub(1)
                        };
                    }
                    *w = Some(now);
                }
            }
            Err(err) => debug!(?err, slot, "cannot watch an upstream socket"),
        }
    }

    /// Reads every upstream socket the last wait found ready, retired ones
    /// included (`slots`: one batch per family, v4 then v6), until it is
    /// empty.
    pub(super) fn read_upstream(&mut self, slots: &mut [RecvBatch; 2]) {
        let ready = std::mem::take(&mut self.ups_ready);
        for &s in &ready {
            self.read_socket(s, slots);
        }
        self.ups_ready = ready;
    }

    /// Reads every upstream socket with an ID in use (a query in flight or
    /// a late entry) that the last wait did not find ready (those were
    /// read already, after it returned): one non-blocking `recvmmsg` each
    /// when nothing waits there. Called before timers due fire, so that an
    /// answer already in a socket wins over its query's deadline, hedge or
    /// per-try timeout, and a late answer settles its entry before the
    /// entry is charged as a loss.
    pub(super) fn read_in_flight(&mut self, slots: &mut [RecvBatch; 2]) {
        // Sockets a read opens (a worn one replaced) have sent nothing yet.
        for s in 0..self.ups.len() {
            let live = self.ups.get(s).is_some_and(|u| u.ids.live() > 0);
            if live && !self.ups_ready.contains(&s) {
                self.read_socket(s, slots);
            }
        }
    }

    /// Reads upstream slot `s`'s socket until it is empty (or errs), at
    /// most [`UPSTREAM_BATCHES`] batches, each datagram timed by its arrival
    /// and handed to [`Worker::on_upstream`].
    fn read_socket(&mut self, s: usize, slots: &mut [RecvBatch; 2]) {
        for _ in 0..UPSTREAM_BATCHES {
            let Some(u) = self.ups.get(s) else {
                break;
            };
            let Some(batch) = slots.get_mut(u.family.index()) else {
                break;
            };
            let n = match batch.recv(&u.sock) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (now, now_sys) = self.clock.stamps();
            for i in 0..n {
                if let Some((resp, meta)) = batch.get(i)
                    && let Some(from) = meta.src
                {
                    let at = arrival(meta.stamp, now, now_sys);
                    if let Err(why) = self.on_upstream(s, resp, from, meta.truncated, at) {
                        self.balancer.metrics.drops.count(why);
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
    pub(super) fn round_read_at(&mut self, slots: &mut Slots, clock: RoundClock) {
        self.round_with(slots, clock, None);
    }

    /// A round at `now` (a test's time), the datagrams timed by the clocks.
    #[cfg(test)]
    pub(super) fn round(&mut self, slots: &mut Slots, now: Instant) {
        self.round_with(slots, RoundClock::at(now), None);
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
    pub(super) fn flush(&mut self) {
        // A send left pending by a full socket (its slot then watched for
        // writing).
        let mut left = false;
        loop {
            tap::forwarder_queued(
                (self.balancer.dnstap(), &mut self.tap_staged),
                &self.ups,
                &self.to_upstream,
                || self.clock.stamps(),
            );
            for (i, out) in self.to_upstream.iter_mut().enumerate() {
                if out.len() == 0 {
                    continue;
                }
                match self.ups.get(i) {
                    Some(u) => {
                        let refused = &mut self.refused;
                        left |= !out.send_now(&u.sock, |query| {
                            if let Some(id) = query.first_chunk::<2>() {
                                refused.push((i, u16::from_be_bytes(*id)));
                            }
                        });
                    }
                    None => out.clear(),
                }
            }
            if self.refused.is_empty() {
                break;
            }
            // Each refusal ends a try; a flight has finitely many, so this ends.
            let now = self.clock.now;
            let mut refused = std::mem::take(&mut self.refused);
            for (sock, id) in refused.drain(..) {
                self.on_refused(sock, id, now);
            }
            self.refused = refused;
        }
        tap::answers_queued(
            (self.balancer.dnstap(), &mut self.tap_staged),
            self.client_local,
            &self.to_clients,
            || self.clock.stamps(),
        );
        self.to_clients.send_now(&self.client, |_| {});
        // The round's dnstap frames, all of them, under one lock of its queue.
        self.balancer.dnstap().commit(&mut self.tap_staged);
        // Whose watch changes: a slot whose send is left pending, or one
        // watched for writing whose send has gone. Neither: no slot to look at.
        if left || self.up_writes > 0 {
            for slot in 0..self.to_upstream.len().min(self.up_watch.len()) {
                let pending = self.to_upstream.get(slot).is_some_and(|q| q.len() > 0);
                if self.up_watch.get(slot).copied().flatten().map(|w| w.write) == Some(!pending) {
                    self.watch_upstream(slot);
                }
            }
        }
        let (poller, watch, writes) = (&self.poller, &mut self.up_watch, &mut self.up_writes);
        self.ups.reap(|slot, sock| {
            if let Err(err) = poller.remove(&sock) {
                debug!(?err, slot, "cannot unwatch a retired upstream socket");
            }
            if let Some(w) = watch.get_mut(slot) {
                if w.is_some_and(|w| w.write) {
                    *writes = writes.saturating_sub(1);
                }
                *w = None;
            }
            drop(sock);
        });
    }
}

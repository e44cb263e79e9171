//! The fast path's dnstap messages (`[ls.dnstap]`, by `ls::tap`): a UDP
//! client query as the worker reads it, the upstream queries and client
//! answers of a round as its flush sends them (each send pass of it), an upstream answer once
//! accepted. Free functions over the worker's sockets and queues; each asks
//! a socket's address only when its kind is on. The frames are encoded
//! into the worker's [`Staged`] frames, no lock taken, and handed to
//! dnstap's queue once at the round's end (`rounds`: one lock a round,
//! where each client query, each upstream answer and each send pass took
//! it before).
//!
//! No frame reads a clock: each is timed by its round's one moment on both
//! clocks ([`RoundClock::stamps`](super::worker::RoundClock::stamps), the
//! `stamps` argument, asked only when a frame is written), the wall clock's
//! reading turned into dnstap's time once per round and worker
//! ([`round_time`]).
use std::cell::Cell;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::dnstap::{Dnstap, Staged, TapKind, TapTime, TapTransport};
use crate::ls::tap;
use crate::ls::upstream::sockets::Sockets;
use crate::server::batch::SendQueue;

/// CLIENT_QUERY of a datagram from `src`, read on the client socket at
/// `local` (read once per socket) in the round of `stamps`.
pub(super) fn client_query(
    (d, staged): (&Dnstap, &mut Staged),
    local: Option<SocketAddr>,
    raw: &[u8],
    src: SocketAddr,
    stamps: impl FnOnce() -> (Instant, SystemTime),
) {
    let at = || round_time(stamps().1);
    if let Some(e) = tap::client_query_at(d, TapTransport::Udp, src, || local, raw, at) {
        d.stage(staged, &e);
    }
}

/// FORWARDER_QUERY of every upstream query queued in `to_upstream` since
/// its queue's last send (queue `i` goes out on upstream socket `i` of
/// `ups`), sent in the round of `stamps`: called before each send pass of
/// a round's flush, so that the next try a refused send queues is written
/// too. Queues with nothing queued are passed over at the cost of a length
/// test (a flush looks at every one); the others' frames go out under one
/// lock, each socket's address asked once.
pub(super) fn forwarder_queued(
    (d, staged): (&Dnstap, &mut Staged),
    ups: &Sockets<UdpSocket>,
    to_upstream: &[SendQueue],
    stamps: impl FnOnce() -> (Instant, SystemTime),
) {
    if !d.enabled(TapKind::ForwarderQuery) {
        return;
    }
    let mut busy = to_upstream
        .iter()
        .enumerate()
        .filter(|(_, out)| out.len() > 0)
        .filter_map(|(i, out)| Some((ups.get(i)?, out)))
        .peekable();
    if busy.peek().is_none() {
        return;
    }
    let now = round_time(stamps().1);
    d.stage_each(
        staged,
        busy.flat_map(|(u, out)| {
            let local = u.local_addr(|s| s.local_addr().ok());
            out.queued()
                .map(move |(query, to)| tap::forwarder_query_at(local, to.addr, query, now))
        }),
    );
}

/// CLIENT_RESPONSE of every client answer queued in `to_clients` since its
/// last send (sent on the client socket at `client` in the round of
/// `stamps`): called just before it is sent, after the upstream sends
/// (whose refusals may answer clients).
pub(super) fn answers_queued(
    (d, staged): (&Dnstap, &mut Staged),
    client: Option<SocketAddr>,
    to_clients: &SendQueue,
    stamps: impl FnOnce() -> (Instant, SystemTime),
) {
    let clock = || {
        let (mono, sys) = stamps();
        (round_time(sys), mono.into_std())
    };
    tap::client_responses(d, staged, to_clients.queued_stamped(), client, clock);
}

/// FORWARDER_RESPONSE of `resp`, accepted from `from` on upstream socket
/// `sock` of `ups` in the round of `stamps`, `rtt` after its query left.
pub(super) fn accepted(
    (d, staged): (&Dnstap, &mut Staged),
    ups: &Sockets<UdpSocket>,
    sock: usize,
    from: SocketAddr,
    rtt: Duration,
    resp: &[u8],
    stamps: impl FnOnce() -> (Instant, SystemTime),
) {
    let local = || {
        ups.get(sock)
            .and_then(|u| u.local_addr(|s| s.local_addr().ok()))
    };
    let now = || round_time(stamps().1);
    if let Some(e) = tap::forwarder_response_at(d, TapTransport::Udp, local, from, rtt, resp, now) {
        d.stage(staged, &e);
    }
}

/// `sys`, a round's wall-clock reading, as dnstap's time: converted once
/// per round and worker (a worker is a thread; its frames of one round
/// share the reading), however many frames the round writes.
fn round_time(sys: SystemTime) -> Option<TapTime> {
    thread_local! {
        /// The last reading converted on this thread, and its time.
        static LAST: Cell<(SystemTime, Option<TapTime>)> =
            const { Cell::new((UNIX_EPOCH, Some(TapTime::EPOCH))) };
    }
    LAST.with(|last| {
        let (seen, time) = last.get();
        if seen == sys {
            return time;
        }
        let time = TapTime::of(sys);
        last.set((sys, time));
        time
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnstap::message::{MessageType, Payload};
    use crate::dnstap::{RECONNECT, Settings, TapTarget};
    use crate::ls::upstream::ROTATE_AFTER;
    use crate::ls::upstream::sockets::Family;

    /// A handle writing the LS's four kinds, its writer never run: the
    /// frames stay queued, for [`Dnstap::take_queued`].
    fn handle() -> Dnstap {
        let settings = Settings {
            target: TapTarget::Unix(Default::default()),
            kinds: vec![
                TapKind::ClientQuery,
                TapKind::ClientResponse,
                TapKind::ForwarderQuery,
                TapKind::ForwarderResponse,
            ],
            identity: None,
            version: None,
            queue_size: 64,
            queue_bytes: crate::config::DNSTAP_QUEUE_BYTES,
            backoff: RECONNECT,
        };
        Dnstap::new(settings).0
    }

    /// A frame's type and its (query, response) times.
    type Timed = (i32, Option<(u64, u32)>, Option<(u64, u32)>);

    fn timed(p: &Payload) -> Timed {
        let m = p.message.as_ref().unwrap();
        (
            m.r#type,
            m.query_time_sec.zip(m.query_time_nsec),
            m.response_time_sec.zip(m.response_time_nsec),
        )
    }

    #[test]
    fn every_frame_is_timed_by_its_rounds_clock_reading() {
        let d = handle();
        // The round's moment, on both clocks: the wall clock's far from now.
        let mono = Instant::now();
        let sys = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let stamps = || (mono, sys);
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let backend: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let mut ups = Sockets::new(ROTATE_AFTER);
        ups.add(Family::V4, UdpSocket::bind("127.0.0.1:0").unwrap());
        let mut to_upstream = SendQueue::default();
        to_upstream.push_copy(b"fq", backend);
        let mut to_clients = SendQueue::default();
        to_clients.push_copy(b"cr", client);
        to_clients.stamp(mono.into_std() - Duration::from_millis(7));

        let mut staged = Staged::default();
        client_query((&d, &mut staged), None, b"cq", client, stamps);
        forwarder_queued((&d, &mut staged), &ups, &[to_upstream], stamps);
        let rtt = Duration::from_millis(3);
        accepted((&d, &mut staged), &ups, 0, backend, rtt, b"fr", stamps);
        answers_queued((&d, &mut staged), None, &to_clients, stamps);
        assert!(
            d.take_queued().is_empty(),
            "staged, not queued, until the commit"
        );
        assert_eq!(staged.len(), 4);
        d.commit(&mut staged);
        assert!(staged.is_empty());

        let at = Some((1_700_000_000, 5));
        let got: Vec<Timed> = d.take_queued().iter().map(timed).collect();
        let want = [
            (MessageType::ClientQuery, at, None),
            (MessageType::ForwarderQuery, at, None),
            (
                MessageType::ForwarderResponse,
                Some((1_699_999_999, 997_000_005)),
                at,
            ),
            (
                MessageType::ClientResponse,
                Some((1_699_999_999, 993_000_005)),
                at,
            ),
        ]
        .map(|(kind, query, response)| (kind as i32, query, response));
        assert_eq!(got, want);
    }

    #[test]
    fn a_round_time_is_its_reading_converted() {
        let t = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        for sys in [t(1_700_000_000, 5), t(1_700_000_000, 5), t(0, 0), t(1, 0)] {
            assert_eq!(round_time(sys), TapTime::of(sys), "{sys:?}");
        }
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(round_time(before), None);
    }
}

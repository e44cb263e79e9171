//! dnstap: the DNS messages the LS and the TS receive and send, written as
//! Frame Streams of protobuf `Dnstap` messages to a collector (docs/CONFIG.md (the LS)
//! "dnstap"; `fstrm_capture`, `dnstap-read` and `dnstap-ldns` read them).
//!
//! A ground-floor room: it imports nothing of `ls/` or `ts/` (only the
//! config it is started from and `supervise`'s back-off rule); the servers
//! hold a [`Dnstap`] and call it.
//!
//! # Layout
//! - `message`: `dnstap.proto` (vendored here) as prost structs (the
//!   schema); `proto_tests` holds them to the `.proto`.
//! - `encode`: the encoding of one frame's payload, held to prost's.
//! - `frame`: Frame Streams' framing and control frames, pure.
//! - `queue`: the bounded queue of encoded frames between the servers and
//!   the writer (one buffer, encoded into in place; the writer woken when
//!   it goes from empty to not empty and when a batch is full, not per
//!   frame).
//! - `writer`: the one task that connects to the collector, does the
//!   handshake, writes the queued frames a batch per write (a batch gathers
//!   for a few milliseconds after its first frame), reconnects with
//!   back-off and stops with STOP/FINISH.
//! - here: [`Dnstap`], the handle the servers hold: [`Dnstap::enabled`]
//!   (one bit test, before any encoding work), [`Dnstap::log`] (encode the
//!   [`TapEvent`] and push it to the bounded queue with a try that never
//!   waits: a full queue or absent collector costs a dropped frame,
//!   counted in [`DnstapStats`], never a query) and [`Dnstap::log_rule`]
//!   for the query rules' `log = true`; [`Dnstap::stage`] and
//!   [`Dnstap::commit`] for the UDP fast path's workers, which encode a
//!   round's frames into a [`Staged`] buffer of their own and queue them
//!   under one lock at the round's end.

pub mod encode;
pub mod frame;
pub mod message;
#[cfg(test)]
mod proto_tests;
mod queue;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DnstapConfig, DnstapMessage, DnstapSide};
use crate::supervise::Backoff;
use encode::{BytesField, PayloadParts, Preamble, TapMessage};
use message::{Message, MessagePolicy, MessageType, PolicyAction, PolicyMatch, SocketProtocol};
use queue::Queue;
pub use writer::{DnstapStats, RECONNECT, TapTarget};

/// The `MessagePolicy.type` of a query rule's dnstap message.
pub const RULE_POLICY_TYPE: &str = "dnslb-rule";

/// The kinds of message a server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapKind {
    /// A query the LS received from a client.
    ClientQuery,
    /// An answer the LS sent to a client.
    ClientResponse,
    /// A query the LS sent to a backend.
    ForwarderQuery,
    /// An answer the LS accepted from a backend.
    ForwarderResponse,
    /// A query a TS received.
    AuthQuery,
    /// An answer a TS sent.
    AuthResponse,
}

impl TapKind {
    /// The kind `messages` names.
    pub fn from_config(m: DnstapMessage) -> Self {
        match m {
            DnstapMessage::ClientQuery => Self::ClientQuery,
            DnstapMessage::ClientResponse => Self::ClientResponse,
            DnstapMessage::ForwarderQuery => Self::ForwarderQuery,
            DnstapMessage::ForwarderResponse => Self::ForwarderResponse,
            DnstapMessage::AuthQuery => Self::AuthQuery,
            DnstapMessage::AuthResponse => Self::AuthResponse,
        }
    }

    /// Its bit in [`Dnstap`]'s selection.
    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The dnstap `Message.Type`.
    fn message_type(self) -> MessageType {
        match self {
            Self::ClientQuery => MessageType::ClientQuery,
            Self::ClientResponse => MessageType::ClientResponse,
            Self::ForwarderQuery => MessageType::ForwarderQuery,
            Self::ForwarderResponse => MessageType::ForwarderResponse,
            Self::AuthQuery => MessageType::AuthQuery,
            Self::AuthResponse => MessageType::AuthResponse,
        }
    }

    /// Whether the message is a query (else a response).
    fn is_query(self) -> bool {
        matches!(
            self,
            Self::ClientQuery | Self::ForwarderQuery | Self::AuthQuery
        )
    }
}

/// The transport a message came or went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapTransport {
    /// Plain UDP.
    Udp,
    /// Plain TCP.
    Tcp,
    /// DNS over TLS.
    Dot,
    /// DNS over HTTPS.
    Doh,
    /// DNS over QUIC.
    Doq,
}

impl TapTransport {
    /// The dnstap `SocketProtocol`.
    fn protocol(self) -> SocketProtocol {
        match self {
            Self::Udp => SocketProtocol::Udp,
            Self::Tcp => SocketProtocol::Tcp,
            Self::Dot => SocketProtocol::Dot,
            Self::Doh => SocketProtocol::Doh,
            Self::Doq => SocketProtocol::Doq,
        }
    }

    /// The transport a request came by (its listener).
    pub fn of(via: crate::dns::Via) -> TapTransport {
        use crate::dns::Via;
        match via {
            Via::Udp => Self::Udp,
            Via::Tcp => Self::Tcp,
            Via::Dot => Self::Dot,
            Via::Doh => Self::Doh,
            Via::Doq => Self::Doq,
        }
    }
}

/// One message to write, as the server saw it.
#[derive(Debug, Clone, Copy)]
pub struct TapEvent<'a> {
    /// Which message it is.
    pub kind: TapKind,
    /// Its transport.
    pub transport: TapTransport,
    /// The query's sender: the client (CLIENT_*, AUTH_*), or the LS's
    /// upstream socket (FORWARDER_*).
    pub query_addr: SocketAddr,
    /// The responder: the LS's or the TS's listening address, or the
    /// backend (FORWARDER_*), when known.
    pub response_addr: Option<SocketAddr>,
    /// When the query was received or sent; `None` on a query: now.
    pub query_time: Option<TapTime>,
    /// When the response was sent or received; `None` on a response: now.
    pub response_time: Option<TapTime>,
    /// The DNS message, verbatim: the query for a query kind, the
    /// response for a response kind.
    pub message: &'a [u8],
}

impl<'a> TapEvent<'a> {
    /// An event of `kind` over `transport` from `query_addr`, carrying
    /// `message`; no responder address, times taken when it is logged.
    pub fn new(
        kind: TapKind,
        transport: TapTransport,
        query_addr: SocketAddr,
        message: &'a [u8],
    ) -> Self {
        Self {
            kind,
            transport,
            query_addr,
            response_addr: None,
            query_time: None,
            response_time: None,
            message,
        }
    }
}

/// A wall-clock time as dnstap writes it: nanoseconds since the Unix epoch
/// (until the year 2554). Read once for a round of the fast path and
/// shared by its frames; [`TapTime::checked_sub`] (a query's time from its
/// response's and the wait) is integer arithmetic, and so is the split into
/// dnstap's seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TapTime(u64);

/// Nanoseconds in a second.
const NANOS: u64 = 1_000_000_000;

impl TapTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// Now, if the clock is past the epoch.
    pub fn now() -> Option<Self> {
        Self::of(SystemTime::now())
    }

    /// `t`, if past the epoch (and before 2554).
    pub fn of(t: SystemTime) -> Option<Self> {
        nanos(t.duration_since(UNIX_EPOCH).ok()?).map(Self)
    }

    /// `d` earlier, if still past the epoch.
    pub fn checked_sub(self, d: Duration) -> Option<Self> {
        self.0.checked_sub(nanos(d)?).map(Self)
    }

    /// Seconds and nanoseconds, as dnstap's fields.
    fn parts(self) -> (u64, u32) {
        // Cannot truncate: the remainder is below 10^9.
        (self.0 / NANOS, (self.0 % NANOS) as u32)
    }
}

/// `d` in nanoseconds, if it fits 64 bits.
fn nanos(d: Duration) -> Option<u64> {
    d.as_secs()
        .checked_mul(NANOS)?
        .checked_add(d.subsec_nanos().into())
}

/// What a query rule with `log = true` says about its match (a dnstap
/// `MessagePolicy`).
#[derive(Debug, Clone, Copy)]
pub struct RuleNote<'a> {
    /// The rule's `name`.
    pub rule: &'a str,
    /// What it did, in dnstap's terms, when one fits (REFUSED, SERVFAIL, a
    /// pool or a delay have none).
    pub action: Option<PolicyAction>,
    /// What matched, when one fits (the name, the client).
    pub matched: Option<PolicyMatch>,
    /// The value that matched (a suffix in wire form, an address).
    pub value: Option<&'a [u8]>,
}

/// How a [`Dnstap`] writes: what `[ls.dnstap]` or a `[[ts]]`'s `dnstap`
/// says, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the collector is.
    pub target: TapTarget,
    /// The messages written.
    pub kinds: Vec<TapKind>,
    /// The `identity` of every message.
    pub identity: Option<Vec<u8>>,
    /// The `version` of every message.
    pub version: Option<Vec<u8>>,
    /// The queue's bound, in frames.
    pub queue_size: usize,
    /// The queue's bound, in bytes.
    pub queue_bytes: usize,
    /// Reconnection delays.
    pub backoff: Backoff,
}

impl Settings {
    /// The settings of `config` on `side`: the identity defaults to the
    /// host name, the version to `dnslb <version>`, `""` leaves either out.
    pub fn from_config(config: &DnstapConfig, side: DnstapSide) -> Self {
        let target = match (&config.socket, config.tcp) {
            (Some(path), _) => TapTarget::Unix(path.clone()),
            (None, Some(addr)) => TapTarget::Tcp(addr),
            // Validation requires one; an empty path fails to connect, logged.
            (None, None) => TapTarget::Unix(Default::default()),
        };
        let label = |given: &Option<String>, default: Option<String>| {
            given
                .clone()
                .or(default)
                .filter(|s| !s.is_empty())
                .map(String::into_bytes)
        };
        Self {
            target,
            kinds: config
                .messages_for(side)
                .into_iter()
                .map(TapKind::from_config)
                .collect(),
            identity: label(&config.identity, host_name()),
            version: label(
                &config.version,
                Some(format!("dnslb {}", env!("CARGO_PKG_VERSION"))),
            ),
            queue_size: config.queue_size.max(1),
            queue_bytes: config.queue_bytes,
            backoff: RECONNECT,
        }
    }
}

/// This machine's host name, if it can be read.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Frames a fast-path worker encoded during one round ([`Dnstap::stage`]),
/// not queued yet: no lock per frame, and one per round
/// ([`Dnstap::commit`]), whatever the round logged (its client queries,
/// upstream answers, upstream queries and client answers), where each
/// frame or each send pass took the queue's lock before. The worker owns
/// it; its buffer is kept from round to round.
#[derive(Debug, Default)]
pub struct Staged {
    /// Data frames, each its length and payload, back to back.
    bytes: Vec<u8>,
    /// How many `bytes` holds.
    frames: usize,
}

impl Staged {
    /// How many frames wait for [`Dnstap::commit`].
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }
}

/// The handle the servers hold: cheap to clone, off unless started.
#[derive(Clone, Default)]
pub struct Dnstap {
    /// The selected kinds' bits.
    kinds: u8,
    /// The queue and what every frame shares; `None` when off.
    shared: Option<Arc<Shared>>,
}

/// What every clone of one started [`Dnstap`] shares.
struct Shared {
    /// Identity, version and type, encoded once.
    preamble: Preamble,
    /// The writer's bounded queue.
    queue: Arc<Queue>,
    /// Sent and dropped frames.
    stats: Arc<DnstapStats>,
}

impl Drop for Shared {
    /// The last handle gone: the writer writes what is queued and stops.
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl fmt::Debug for Dnstap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dnstap")
            .field("kinds", &self.kinds)
            .field("on", &self.shared.is_some())
            .finish()
    }
}

/// The writer of a [`Dnstap`] made by [`Dnstap::new`], not running yet:
/// its owner runs it ([`DnstapWriter::run`]); until then frames wait in the
/// queue, or are dropped when it is full.
pub struct DnstapWriter {
    /// The writer, without its token.
    writer: writer::Writer,
}

impl fmt::Debug for DnstapWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnstapWriter")
            .field("target", &self.writer.target)
            .finish()
    }
}

impl DnstapWriter {
    /// Runs the writer until `token` is cancelled: connects, writes,
    /// reconnects; at the end writes what is queued, STOP, and waits a
    /// moment for FINISH.
    pub async fn run(self, token: CancellationToken) {
        self.writer.run(token).await;
    }

    /// [`DnstapWriter::run`] on a thread of its own (`dnstap-writer`, with
    /// a single-threaded runtime): a producer's wake-up reaches that one
    /// thread, where on a multi-threaded runtime it woke one of its
    /// workers, which woke another to look for work (counted at full speed:
    /// ~5 context switches per batch written, the writer's thread the LS's
    /// busiest after its UDP workers).
    ///
    /// # Errors
    /// The runtime or the thread could not be made.
    pub fn spawn_thread(self, token: CancellationToken) -> std::io::Result<DnstapTask> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("dnstap-writer".to_owned())
            .spawn(move || {
                runtime.block_on(self.run(token));
                let _ = tx.send(());
            })?;
        Ok(DnstapTask {
            end: End::Thread(done),
        })
    }
}

/// The writer task of a [`Dnstap::start`]ed handle, or the writer's own
/// thread ([`DnstapWriter::spawn_thread`]), owned by its starter.
#[derive(Debug)]
pub struct DnstapTask {
    /// What ends when the writer does.
    end: End,
}

/// How a [`DnstapTask`] hears of the writer's end.
#[derive(Debug)]
enum End {
    /// A task on the starter's runtime.
    Task(JoinHandle<()>),
    /// A thread of its own: told when done (dropped if it panicked).
    Thread(tokio::sync::oneshot::Receiver<()>),
}

impl DnstapTask {
    /// Waits for the writer to end (after its token was cancelled).
    pub async fn stopped(self) {
        match self.end {
            End::Task(task) => {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "dnstap: the writer task failed");
                }
            }
            End::Thread(done) => {
                if done.await.is_err() {
                    tracing::error!("dnstap: the writer thread failed");
                }
            }
        }
    }
}

impl Dnstap {
    /// A handle that writes nothing.
    pub const fn off() -> Self {
        Self {
            kinds: 0,
            shared: None,
        }
    }

    /// The handle to log with and its writer, which its owner runs
    /// ([`DnstapWriter::run`]); no runtime needed yet.
    pub fn new(settings: Settings) -> (Self, DnstapWriter) {
        let queue = Arc::new(Queue::new(settings.queue_size, settings.queue_bytes));
        let stats = Arc::new(DnstapStats::default());
        let writer = writer::Writer {
            target: settings.target,
            queue: Arc::clone(&queue),
            stats: Arc::clone(&stats),
            backoff: settings.backoff,
        };
        let kinds = settings.kinds.iter().fold(0, |bits, k| bits | k.bit());
        let shared = Shared {
            preamble: Preamble::new(settings.identity.as_deref(), settings.version.as_deref()),
            queue,
            stats,
        };
        let handle = Self {
            kinds,
            shared: Some(Arc::new(shared)),
        };
        (handle, DnstapWriter { writer })
    }

    /// [`Dnstap::new`], its writer spawned on the current tokio runtime
    /// until `token` is cancelled.
    pub fn start(settings: Settings, token: CancellationToken) -> (Self, DnstapTask) {
        let (handle, writer) = Self::new(settings);
        let task = tokio::spawn(writer.run(token));
        let end = End::Task(task);
        (handle, DnstapTask { end })
    }

    /// Whether messages of `kind` are written: check it before building an
    /// [`TapEvent`].
    #[inline]
    pub fn enabled(&self, kind: TapKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// Whether dnstap is on at all (a rule's `log = true` writes whatever
    /// `messages` selects).
    #[inline]
    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// The counters, when on.
    pub fn stats(&self) -> Option<Arc<DnstapStats>> {
        self.shared.as_ref().map(|s| Arc::clone(&s.stats))
    }

    /// Writes `event` when its kind is selected: encodes it and queues it
    /// without waiting (a full queue drops it, counted).
    pub fn log(&self, event: &TapEvent<'_>) {
        let Some(shared) = self.shared.as_ref().filter(|_| self.enabled(event.kind)) else {
            return;
        };
        // The clock read before the lock.
        let message = tap_message(&stamped(*event));
        if !shared
            .queue
            .producer()
            .push(|out| message.encode_into(&shared.preamble, out))
        {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes each of `events` whose kind is selected, as [`Dnstap::log`],
    /// under one lock of the queue (a round of the fast path: give each
    /// its times, read once for the round, as reading the clock waits on
    /// nothing but is best not done under the lock).
    pub fn log_each<'a>(&self, events: impl IntoIterator<Item = TapEvent<'a>>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut dropped = 0;
        {
            let mut queue = shared.queue.producer();
            for event in events {
                if self.enabled(event.kind) {
                    let message = tap_message(&stamped(event));
                    if !queue.push(|out| message.encode_into(&shared.preamble, out)) {
                        dropped += 1;
                    }
                }
            }
        }
        if dropped > 0 {
            shared.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Encodes `event` into `staged` when its kind is selected: no lock
    /// taken, nothing queued yet (a fast-path worker's round, handed to the
    /// queue at its end by [`Dnstap::commit`]). A round that staged as
    /// many frames as the queue holds drops the next ones, counted.
    #[inline]
    pub fn stage(&self, staged: &mut Staged, event: &TapEvent<'_>) {
        let Some(shared) = self.shared.as_ref().filter(|_| self.enabled(event.kind)) else {
            return;
        };
        if staged.frames >= shared.queue.limit() {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let message = tap_message(&stamped(*event));
        if queue::push_frame(&mut staged.bytes, |out| {
            message.encode_into(&shared.preamble, out);
        }) {
            staged.frames += 1;
        } else {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Dnstap::stage`] of each of `events`.
    pub fn stage_each<'a>(
        &self,
        staged: &mut Staged,
        events: impl IntoIterator<Item = TapEvent<'a>>,
    ) {
        if self.shared.is_some() {
            for event in events {
                self.stage(staged, &event);
            }
        }
    }

    /// Hands the frames of `staged` to the queue under one lock (the
    /// writer woken, if need be, once), in order; what the queue has no
    /// room for is dropped, counted. `staged` is emptied, its room kept.
    pub fn commit(&self, staged: &mut Staged) {
        if staged.frames == 0 {
            return;
        }
        if let Some(shared) = &self.shared {
            let taken = shared.queue.append(&staged.bytes, staged.frames);
            let dropped = staged.frames - taken;
            if dropped > 0 {
                shared
                    .stats
                    .dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        staged.bytes.clear();
        staged.frames = 0;
    }

    /// Writes `event` with `extra` as the frame's `extra` field (an event
    /// of the server's own, such as a dynamic block made), whatever kinds
    /// `messages` selects; nothing when dnstap is off.
    pub fn log_extra(&self, event: &TapEvent<'_>, extra: &[u8]) {
        if self.is_on() {
            self.push_noted(&stamped(*event), None, Some(extra), None);
        }
    }

    /// Writes `event` for a query rule with `log = true` that matched, with
    /// the rule as its `MessagePolicy` (type [`RULE_POLICY_TYPE`]), whatever kinds
    /// `messages` selects; nothing when dnstap is off.
    pub fn log_rule(&self, event: &TapEvent<'_>, note: &RuleNote<'_>) {
        self.log_rule_to(event, note, None);
    }

    /// [`Dnstap::log_rule`], into a fast-path worker's `staged` round when
    /// given (queued after the round's frames staged before it: its query's
    /// CLIENT_QUERY), else queued at once.
    pub fn log_rule_to(
        &self,
        event: &TapEvent<'_>,
        note: &RuleNote<'_>,
        staged: Option<&mut Staged>,
    ) {
        if !self.is_on() {
            return;
        }
        let policy = MessagePolicy {
            r#type: Some(RULE_POLICY_TYPE.to_owned()),
            rule: Some(note.rule.as_bytes().to_vec()),
            action: note.action.map(Into::into),
            r#match: note.matched.map(Into::into),
            value: note.value.map(<[u8]>::to_vec),
        };
        self.push_noted(&stamped(*event), Some(policy), None, staged);
    }

    /// Encodes `event` (its times given) with a policy or an `extra` and
    /// queues it (stages it, into `staged` when given): the rarer frames,
    /// encoded through a [`Message`].
    fn push_noted(
        &self,
        event: &TapEvent<'_>,
        policy: Option<MessagePolicy>,
        extra: Option<&[u8]>,
        staged: Option<&mut Staged>,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        let with_extra;
        let preamble = match extra {
            Some(x) => {
                with_extra = shared.preamble.with_extra(x);
                &with_extra
            }
            None => &shared.preamble,
        };
        let m = tap_message(event);
        let (family, query_ip) = encode::family(m.query.ip());
        let response = m
            .response
            .map(|r| (encode::family(r.ip()), r.port()))
            .filter(|((f, _), _)| *f == family)
            .map(|((_, ip), port)| (octets(ip), port));
        let meta = Message {
            r#type: m.r#type.into(),
            socket_family: Some(family.into()),
            socket_protocol: Some(m.protocol.into()),
            query_port: Some(m.query.port().into()),
            response_port: response.as_ref().map(|(_, port)| (*port).into()),
            query_time_sec: m.query_time.map(|t| t.0),
            query_time_nsec: m.query_time.map(|t| t.1),
            response_time_sec: m.response_time.map(|t| t.0),
            response_time_nsec: m.response_time.map(|t| t.1),
            policy,
            ..Message::default()
        };
        let query_octets = octets(query_ip);
        let mut borrowed = [
            (BytesField::QueryAddress, query_octets.as_slice()),
            m.wire,
            m.wire,
        ];
        let used = match &response {
            Some((r, _)) => {
                borrowed[2] = (BytesField::ResponseAddress, r.as_slice());
                3
            }
            None => 2,
        };
        let parts = PayloadParts::new(preamble, &meta, &borrowed[..used]);
        let pushed = match staged {
            Some(staged) => {
                staged.frames < shared.queue.limit()
                    && queue::push_frame(&mut staged.bytes, |out| parts.encode_into(out))
                    && {
                        staged.frames += 1;
                        true
                    }
            }
            None => shared.queue.producer().push(|out| parts.encode_into(out)),
        };
        if !pushed {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
impl Dnstap {
    /// The frames queued, taken and decoded: what the writer would write,
    /// for a test of a server's frames that runs no writer.
    pub(crate) fn take_queued(&self) -> Vec<message::Payload> {
        use prost::Message as _;
        let mut bytes = Vec::new();
        if let Some(shared) = &self.shared {
            shared.queue.take(&mut bytes);
        }
        let mut frames = Vec::new();
        let mut rest = bytes.as_slice();
        while let Some((frame, used)) = frame::decode(rest).unwrap() {
            let frame::Frame::Data(payload) = frame else {
                panic!("a control frame in the queue: {frame:?}");
            };
            frames.push(message::Payload::decode(payload).unwrap());
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "half a frame in the queue");
        frames
    }
}

/// `event` with its default time (a query's `query_time`, a response's
/// `response_time`) read now when not given.
fn stamped(mut event: TapEvent<'_>) -> TapEvent<'_> {
    let default = if event.kind.is_query() {
        &mut event.query_time
    } else {
        &mut event.response_time
    };
    if default.is_none() {
        *default = TapTime::now();
    }
    event
}

/// What `event` says, as the fields of a frame.
#[inline]
fn tap_message<'a>(event: &TapEvent<'a>) -> TapMessage<'a> {
    TapMessage {
        r#type: event.kind.message_type(),
        protocol: event.transport.protocol(),
        query: event.query_addr,
        response: event.response_addr,
        query_time: event.query_time.map(TapTime::parts),
        response_time: event.response_time.map(TapTime::parts),
        wire: (
            if event.kind.is_query() {
                BytesField::QueryMessage
            } else {
                BytesField::ResponseMessage
            },
            event.message,
        ),
    }
}

/// An address's bytes, 4 or 16, without allocating.
struct Octets {
    /// Room for an IPv6 address.
    bytes: [u8; 16],
    /// How many are used.
    len: usize,
}

impl Octets {
    /// The used bytes.
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The bytes of `ip`.
fn octets(ip: IpAddr) -> Octets {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            Octets { bytes, len: 4 }
        }
        IpAddr::V6(v6) => Octets {
            bytes: v6.octets(),
            len: 16,
        },
    }
}

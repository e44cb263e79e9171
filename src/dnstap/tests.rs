//! The handle and the writer against an in-process collector on a Unix
//! socket: the handshake, frames as sent, STOP/FINISH, drops counted when
//! the queue is full or nobody listens, and reconnection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::frame::{self, CONTENT_TYPE, ControlFrame, ControlKind, Frame};
use super::message::{MessageType, Payload as DnstapMsg, SocketFamily, SocketProtocol};
use super::*;

/// Settings writing every LS kind to `path`, reconnecting fast.
fn settings(path: &Path, queue_size: usize) -> Settings {
    Settings {
        target: TapTarget::Unix(path.to_path_buf()),
        kinds: vec![
            TapKind::ClientQuery,
            TapKind::ClientResponse,
            TapKind::ForwarderQuery,
        ],
        identity: Some(b"ls-test".to_vec()),
        version: Some(b"dnslb test".to_vec()),
        queue_size,
        queue_bytes: crate::config::DNSTAP_QUEUE_BYTES,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            stable_after: Duration::from_secs(10),
        },
    }
}

/// What one collector connection saw.
#[derive(Debug, Default)]
struct Seen {
    /// The READY's content types.
    ready: Vec<Vec<u8>>,
    /// START's content type.
    start: Vec<Vec<u8>>,
    /// The data frames, decoded.
    frames: Vec<DnstapMsg>,
    /// Whether STOP came (then FINISH was sent).
    stopped: bool,
}

impl Seen {
    /// The data frames' messages, in order.
    fn messages(&self) -> impl Iterator<Item = &super::message::Message> {
        self.frames.iter().map(|f| f.message.as_ref().unwrap())
    }
}

/// Reads one control frame.
async fn control(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<ControlFrame> {
    match next(s, buf).await? {
        Owned::ControlFrame(c) => Some(c),
        Owned::Data(_) => panic!("data frame where a control frame was due"),
    }
}

/// A frame, owned.
enum Owned {
    Data(Vec<u8>),
    ControlFrame(ControlFrame),
}

/// Reads the next frame, `None` at the end of the stream.
async fn next(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<Owned> {
    loop {
        if let Some((f, used)) = frame::decode(buf).unwrap() {
            let owned = match f {
                Frame::Data(d) => Owned::Data(d.to_vec()),
                Frame::ControlFrame(c) => Owned::ControlFrame(c),
            };
            buf.drain(..used);
            return Some(owned);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The collector's side of one connection: READY, ACCEPT (of `accept`),
/// START, data until STOP (then FINISH) or the end, or until `take` frames
/// came (then it hangs up).
async fn collect(mut s: UnixStream, accept: &[u8], take: usize) -> Seen {
    let mut buf = Vec::new();
    let mut seen = Seen::default();
    let ready = control(&mut s, &mut buf).await.unwrap();
    assert_eq!(ready.kind, ControlKind::Ready);
    seen.ready = ready.content_types;
    s.write_all(&frame::encode_control(ControlKind::Accept, Some(accept)))
        .await
        .unwrap();
    let Some(start) = control(&mut s, &mut buf).await else {
        return seen;
    };
    assert_eq!(start.kind, ControlKind::Start);
    seen.start = start.content_types;
    while seen.frames.len() < take {
        match next(&mut s, &mut buf).await {
            Some(Owned::Data(d)) => seen.frames.push(DnstapMsg::decode(d.as_slice()).unwrap()),
            Some(Owned::ControlFrame(c)) => {
                assert_eq!(c.kind, ControlKind::Stop);
                seen.stopped = true;
                s.write_all(&frame::encode_control(ControlKind::Finish, None))
                    .await
                    .unwrap();
                break;
            }
            None => break,
        }
    }
    seen
}

fn client() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

/// Polls `f` every 5 ms for up to 5 s.
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not met in 5 s");
}

/// A writer started on [`settings`] (`queue_size`, then `edit`) toward
/// `tap.sock` in a folder of its own, and the collector's listener there
/// when `listen`.
struct Rig {
    tap: Dnstap,
    writer: DnstapTask,
    token: CancellationToken,
    listener: Option<UnixListener>,
    _dir: tempfile::TempDir,
}

fn rig(listen: bool, queue_size: usize, edit: impl FnOnce(&mut Settings)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.sock");
    let listener = listen.then(|| UnixListener::bind(&path).unwrap());
    let token = CancellationToken::new();
    let mut s = settings(&path, queue_size);
    edit(&mut s);
    let (tap, writer) = Dnstap::start(s, token.clone());
    Rig {
        tap,
        writer,
        token,
        listener,
        _dir: dir,
    }
}

impl Rig {
    /// The collector's next connection.
    async fn accept(&self) -> UnixStream {
        let listener = self.listener.as_ref().unwrap();
        listener.accept().await.unwrap().0
    }

    /// A collector in the background, on the listener (taken): every frame
    /// of its next connection, until STOP.
    fn collect_all(&mut self) -> tokio::task::JoinHandle<Seen> {
        let listener = self.listener.take().unwrap();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            collect(s, CONTENT_TYPE, usize::MAX).await
        })
    }

    /// Shuts the writer down and waits for it.
    async fn stop(self) {
        self.token.cancel();
        self.writer.stopped().await;
    }

    /// Waits until the writer has sent `n` frames in all, shuts it down and
    /// gives what `collector` (of [`Rig::collect_all`]) saw, STOP included.
    async fn finish(self, n: u64, collector: tokio::task::JoinHandle<Seen>) -> Seen {
        let stats = self.tap.stats().unwrap();
        until(|| stats.sent.load(Ordering::Relaxed) == n).await;
        self.stop().await;
        collector.await.unwrap()
    }
}

/// A client query of `wire` over UDP, from [`client`].
fn query(wire: &[u8]) -> TapEvent<'_> {
    TapEvent::new(TapKind::ClientQuery, TapTransport::Udp, client(), wire)
}

/// A FORWARDER_RESPONSE, a kind the rigs here do not select.
fn unselected() -> TapEvent<'static> {
    TapEvent::new(
        TapKind::ForwarderResponse,
        TapTransport::Udp,
        client(),
        b"x",
    )
}

#[tokio::test]
async fn frames_reach_the_collector_after_the_handshake_and_stop_cleanly() {
    let mut rig = rig(true, 64, |_| {});
    let collector = rig.collect_all();
    let tap = &rig.tap;

    assert!(tap.enabled(TapKind::ClientQuery));
    assert!(!tap.enabled(TapKind::ForwarderResponse), "not selected");
    let ls: SocketAddr = "[::ffff:127.0.0.1]:5300".parse().unwrap();
    let mut q = TapEvent::new(TapKind::ClientQuery, TapTransport::Udp, client(), b"query");
    q.response_addr = Some(ls);
    tap.log(&q);
    let mut r = TapEvent::new(
        TapKind::ClientResponse,
        TapTransport::Tcp,
        client(),
        b"answer",
    );
    r.query_time = TapTime::of(UNIX_EPOCH + Duration::new(1_700_000_000, 5));
    tap.log(&r);
    tap.log(&unselected());
    let stats = tap.stats().unwrap();
    let seen = rig.finish(2, collector).await;

    assert_eq!(seen.ready, [CONTENT_TYPE]);
    assert_eq!(seen.start, [CONTENT_TYPE]);
    assert!(seen.stopped, "STOP at shutdown");
    assert_eq!(seen.frames.len(), 2);
    let f = &seen.frames[0];
    assert_eq!(f.identity.as_deref(), Some(&b"ls-test"[..]));
    assert_eq!(f.version.as_deref(), Some(&b"dnslb test"[..]));
    let m = f.message.as_ref().unwrap();
    assert_eq!(m.r#type, MessageType::ClientQuery as i32);
    assert_eq!(m.socket_family, Some(SocketFamily::Inet as i32));
    assert_eq!(m.socket_protocol, Some(SocketProtocol::Udp as i32));
    assert_eq!(m.query_address.as_deref(), Some(&[192, 0, 2, 7][..]));
    assert_eq!(m.query_port, Some(40000));
    // The v4-mapped listener reads as IPv4, like the client.
    assert_eq!(m.response_address.as_deref(), Some(&[127, 0, 0, 1][..]));
    assert_eq!(m.response_port, Some(5300));
    assert_eq!(m.query_message.as_deref(), Some(&b"query"[..]));
    assert!(m.query_time_sec.is_some() && m.response_time_sec.is_none());
    let m = seen.frames[1].message.as_ref().unwrap();
    assert_eq!(m.r#type, MessageType::ClientResponse as i32);
    assert_eq!(m.socket_protocol, Some(SocketProtocol::Tcp as i32));
    assert_eq!(
        (m.query_time_sec, m.query_time_nsec),
        (Some(1_700_000_000), Some(5))
    );
    assert!(m.response_time_sec.is_some());
    assert_eq!(m.response_message.as_deref(), Some(&b"answer"[..]));
    assert_eq!(m.response_address, None);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn with_no_collector_a_full_queue_drops_and_counts_and_never_waits() {
    let rig = rig(false, 4, |_| {});
    for _ in 0..10 {
        rig.tap.log(&query(b"q"));
    }
    let stats = rig.tap.stats().unwrap();
    assert_eq!(
        stats.dropped.load(Ordering::Relaxed),
        6,
        "4 queued, 6 dropped at once"
    );
    rig.stop().await;
    assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
    assert_eq!(
        stats.dropped.load(Ordering::Relaxed),
        10,
        "the queued ones too, at shutdown"
    );
}

#[tokio::test]
async fn a_collector_that_does_not_take_dnstap_is_refused_and_retried() {
    let rig = rig(true, 64, |_| {});
    rig.tap.log(&query(b"q"));
    // The first collector takes another content type: the writer hangs up
    // before START and tries again; the second takes dnstap.
    let refused = collect(rig.accept().await, b"protobuf:other", usize::MAX).await;
    assert!(refused.start.is_empty() && refused.frames.is_empty());
    let seen = collect(rig.accept().await, CONTENT_TYPE, 1).await;
    assert_eq!(
        seen.frames.len(),
        1,
        "the frame queued meanwhile is written"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_lost_collector_is_reconnected_and_frames_flow_again() {
    let mut rig = rig(true, 64, |_| {});
    let stats = rig.tap.stats().unwrap();

    rig.tap.log(&query(b"one"));
    // This collector takes one frame and hangs up.
    let first = collect(rig.accept().await, CONTENT_TYPE, 1).await;
    assert_eq!(first.frames.len(), 1);
    until(|| !stats.connected.load(Ordering::Relaxed)).await;

    let second = rig.collect_all();
    until(|| stats.connected.load(Ordering::Relaxed)).await;
    rig.tap.log(&query(b"two"));
    let second = rig.finish(2, second).await;
    let wire = second.messages().next().unwrap().query_message.clone();
    assert_eq!(wire.as_deref(), Some(&b"two"[..]));
    assert!(second.stopped);
}

#[test]
fn off_writes_nothing_and_selects_nothing() {
    let tap = Dnstap::off();
    assert!(!tap.is_on() && !tap.enabled(TapKind::ClientQuery) && tap.stats().is_none());
    tap.log(&query(b"q"));
}

#[test]
fn settings_default_identity_to_the_host_and_version_to_dnslb() {
    let cfg = crate::config::DnstapConfig::unix("/run/t.sock");
    let s = Settings::from_config(&cfg, DnstapSide::Ts);
    assert_eq!(s.kinds, [TapKind::AuthQuery, TapKind::AuthResponse]);
    assert_eq!(
        s.version,
        Some(format!("dnslb {}", env!("CARGO_PKG_VERSION")).into_bytes())
    );
    assert_eq!(s.identity, host_name().map(String::into_bytes));
    let cfg = DnstapConfig {
        identity: Some("edge-1".into()),
        version: Some(String::new()),
        ..cfg
    };
    let s = Settings::from_config(&cfg, DnstapSide::Ls);
    assert_eq!(s.identity.as_deref(), Some(&b"edge-1"[..]));
    assert_eq!(s.version, None, "\"\" leaves it out");
    assert_eq!(s.kinds.len(), 4);
}

#[tokio::test]
async fn a_rule_note_goes_out_as_the_policy_whatever_the_selection() {
    let rig = rig(true, 8, |s| s.kinds = vec![TapKind::ForwarderQuery]);
    let note = RuleNote {
        rule: "block-ads",
        action: Some(PolicyAction::Nxdomain),
        matched: Some(PolicyMatch::Qname),
        value: Some(b"\x03ads\0"),
    };
    rig.tap.log_rule(
        &TapEvent::new(TapKind::ClientQuery, TapTransport::Doh, client(), b"q"),
        &note,
    );
    let seen = collect(rig.accept().await, CONTENT_TYPE, 1).await;
    let policy = seen.messages().next().unwrap().policy.clone().unwrap();
    assert_eq!(policy.r#type.as_deref(), Some(RULE_POLICY_TYPE));
    assert_eq!(policy.rule.as_deref(), Some(&b"block-ads"[..]));
    assert_eq!(policy.action, Some(PolicyAction::Nxdomain as i32));
    assert_eq!(policy.r#match, Some(PolicyMatch::Qname as i32));
    rig.stop().await;
}

#[tokio::test]
async fn a_round_goes_out_in_order_with_the_times_it_was_given() {
    let mut rig = rig(true, 64, |_| {});
    let collector = rig.collect_all();
    let now = TapTime::of(UNIX_EPOCH + Duration::new(1_764_000_000, 999_999_999));
    let wires: [&[u8]; 3] = [b"a", b"b", b"c"];
    let round = wires.iter().map(|w| {
        let mut e = TapEvent::new(TapKind::ClientResponse, TapTransport::Udp, client(), w);
        e.response_time = now;
        e.query_time = now.and_then(|t| t.checked_sub(Duration::from_nanos(1_000_000_001)));
        e
    });
    // A kind not selected, amid the round: left out, not counted.
    let skipped = unselected();
    rig.tap.log_each(round.chain(std::iter::once(skipped)));
    let stats = rig.tap.stats().unwrap();
    let seen = rig.finish(3, collector).await;
    let got: Vec<_> = seen
        .messages()
        .map(|m| {
            (
                m.response_message.clone().unwrap(),
                (m.response_time_sec, m.response_time_nsec),
                (m.query_time_sec, m.query_time_nsec),
            )
        })
        .collect();
    let times = (
        (Some(1_764_000_000), Some(999_999_999)),
        (Some(1_763_999_999), Some(999_999_998)),
    );
    let want: Vec<_> = wires
        .iter()
        .map(|w| (w.to_vec(), times.0, times.1))
        .collect();
    assert_eq!(got, want);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_round_that_does_not_fit_drops_and_counts_the_rest() {
    let rig = rig(false, 4, |_| {});
    rig.tap.log(&query(b"q"));
    rig.tap.log_each((0..6).map(|_| query(b"q")));
    let stats = rig.tap.stats().unwrap();
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 3, "4 of 7 queued");
    rig.stop().await;
}

#[tokio::test]
async fn a_staged_round_goes_out_at_its_commit_in_order() {
    let mut rig = rig(true, 64, |_| {});
    let collector = rig.collect_all();
    let mut staged = Staged::default();
    let wires: [&[u8]; 3] = [b"a", b"b", b"c"];
    rig.tap.stage(&mut staged, &query(wires[0]));
    // A kind not selected: left out, not counted.
    let skipped = unselected();
    rig.tap
        .stage_each(&mut staged, [query(wires[1]), skipped, query(wires[2])]);
    assert_eq!(staged.len(), 3);
    let stats = rig.tap.stats().unwrap();
    assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
    rig.tap.commit(&mut staged);
    assert!(staged.is_empty());
    let seen = rig.finish(3, collector).await;
    let got: Vec<_> = seen
        .messages()
        .map(|m| m.query_message.clone().unwrap())
        .collect();
    assert_eq!(got, wires.map(<[u8]>::to_vec));
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_staged_round_that_does_not_fit_drops_and_counts_the_rest() {
    let rig = rig(false, 4, |_| {});
    rig.tap.log(&query(b"q"));
    let mut staged = Staged::default();
    // More than the queue holds, staged: the ones past its bound dropped
    // at once; at the commit, the queue takes what it has room for.
    rig.tap.stage_each(&mut staged, (0..6).map(|_| query(b"q")));
    assert_eq!(staged.len(), 4);
    let stats = rig.tap.stats().unwrap();
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
    rig.tap.commit(&mut staged);
    assert!(staged.is_empty());
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 3, "4 of 7 queued");
    assert_eq!(rig.tap.take_queued().len(), 4);
    rig.stop().await;
}

/// Whether a thread of this process is named `name`.
fn a_thread_named(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        let comm = t.unwrap().path().join("comm");
        std::fs::read_to_string(comm).is_ok_and(|c| c.trim_end() == name)
    })
}

#[tokio::test]
async fn a_writer_on_its_own_thread_writes_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tap.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let token = CancellationToken::new();
    let (tap, writer) = Dnstap::new(settings(&path, 64));
    let task = writer.spawn_thread(token.clone()).unwrap();
    let collector = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        collect(s, CONTENT_TYPE, usize::MAX).await
    });
    tap.log(&query(b"q"));
    let stats = tap.stats().unwrap();
    until(|| stats.sent.load(Ordering::Relaxed) == 1).await;
    assert!(a_thread_named("dnstap-writer"));
    token.cancel();
    task.stopped().await;
    let seen = collector.await.unwrap();
    assert!(seen.stopped, "STOP sent, FINISH awaited");
    assert_eq!(seen.frames.len(), 1);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn tap_times_split_into_dnstap_seconds_and_nanoseconds() {
    let t = TapTime::of(UNIX_EPOCH + Duration::new(1_700_000_000, 5)).unwrap();
    assert_eq!(t.parts(), (1_700_000_000, 5));
    let earlier = t.checked_sub(Duration::new(1, 6)).unwrap();
    assert_eq!(earlier.parts(), (1_699_999_998, 999_999_999));
    assert_eq!(t.checked_sub(Duration::new(1_700_000_001, 0)), None);
    assert_eq!(t.checked_sub(Duration::MAX), None);
    assert_eq!(TapTime::of(UNIX_EPOCH - Duration::from_secs(1)), None);
    assert!(TapTime::now().is_some());
}

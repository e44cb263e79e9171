//! The LS's UDP fast path allocates nothing per forwarded query once warm,
//! nor per answer from its packet cache.
//!
//! A counting global allocator (`dhat` in testing mode) counts every heap
//! allocation in the process while 10,000 client queries are forwarded by
//! an in-process LS and answered by its backends. So that the count means
//! what it says, everything else in the process allocates nothing while it
//! runs: the client is a plain std socket sending precomputed queries from
//! the test's thread, and each backend is a plain std socket on its own
//! thread that answers every query in place (one A record) from a fixed
//! buffer. Health probes are spaced far apart so none runs meanwhile. The
//! query's name is under a pool's zone (`[[ls.pool]]`), so the suffix table's
//! lookup at the door and the pool's route are on the counted path.
//!
//! The client sends in windows (a window's answers are all read before
//! the next window goes), so nothing is lost to a full socket buffer. On a
//! busy machine the LS may be paused long enough that a few queries wait
//! past its queue bound and are shed (unanswered, counted): every query is
//! either answered or counted as shed, and nearly all are answered.
//! Before counting, 2,000 queries warm the LS up (its buffers, tables and
//! timer heap reach their working size). With `[ls.cache]`, the first query
//! is forwarded and its answer kept: every later one is a cache hit.
//!
//! With `[ls.dnstap]` on (all four messages, to a collector on a plain std
//! thread reading into a fixed buffer), the frames are encoded into each
//! worker's reused round buffer, copied into the queue's reused buffer at
//! the round's end and written in batches: nothing per query either.
//!
//! With `proxy = true` on the backends, the PROXY v2 header goes into the
//! same reused datagram buffer: nothing per query
//! ([`forwarding_to_proxy_backends_allocates_nothing_per_query`]).
//!
//! A query a block stops with `refuse` allocates its answer and nothing
//! else ([`a_blocked_query_allocates_only_its_answer`]).
//!
//! Its own test binary: the allocator is the whole process's (its tests
//! take turns).
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dnslb::config::{
    BackendConfig, CacheConfig, DynAction, DynBlockConfig, DynKind, EDE_BLOCKED, EcsMode,
    HealthConfig, LsConfig, PoolConfig, QType, RuleAction, RuleConfig, RuleMatch, Strategy,
    parse_name,
};
use dnslb::dnstap::frame::{CONTENT_TYPE, ControlKind, decode_control, encode_control};
use dnslb::dnstap::{Dnstap, RECONNECT, Settings, TapKind, TapTarget};
use dnslb::ls::dynblock::ManualTarget;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The tests of this binary run one at a time: the allocator's count, and
/// dhat's one profiler, are the whole process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether [`ls_config`]'s backends are sent PROXY v2 headers (`proxy`).
static PROXY_BACKENDS: AtomicBool = AtomicBool::new(false);

/// Queries before counting.
const WARM_UP: usize = 2_000;
/// Queries counted.
const COUNTED: usize = 10_000;
/// Queries in flight at once (one window).
const WINDOW: usize = 16;
/// Allocations allowed over the counted queries, in total (see the test).
const MAX_ALLOCATIONS: u64 = 100;
/// How long one window's answers may take before the window ends.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// The whole test's bound (the load loops stop there whatever happens).
const TEST_BOUND: Duration = Duration::from_secs(120);

/// `www.example. A` with ID 0, RD set.
fn query() -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["www", "example"] {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A backend: answers each query on its own thread, in place, with one A
/// record after the question (or, for the LS's health probe of the root,
/// an empty NOERROR).
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Echo {
    fn start() -> Echo {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // The answer record: a pointer to the question's name, A IN,
            // TTL 300, 192.0.2.1.
            const RECORD: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1];
            let mut buf = [0u8; 1024];
            let mut answered = 0u64;
            while !flag.load(Relaxed) {
                let Ok((mut n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // A PROXY v2 header (a backend with `proxy`) is taken off.
                if buf[..n].starts_with(&dnslb::dns::proxy_v2::SIGNATURE) && n >= 16 {
                    let head = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
                    if head > n {
                        continue;
                    }
                    buf.copy_within(head..n, 0);
                    n -= head;
                }
                if n < 12 || n + RECORD.len() > buf.len() {
                    continue;
                }
                let probe = buf[12] == 0;
                // QR, AA, RD kept; NOERROR.
                buf[2] = 0x84 | (buf[2] & 0x01);
                buf[3] = 0;
                let mut len = n;
                if !probe {
                    // The record goes right after the question, before the
                    // OPT the LS added (its loop mark), as a server writes
                    // its sections.
                    let mut qend = 12;
                    while qend < n && buf[qend] != 0 {
                        qend += 1 + usize::from(buf[qend]);
                    }
                    qend += 5;
                    if qend > n {
                        continue;
                    }
                    buf[7] = 1; // ANCOUNT
                    buf.copy_within(qend..n, qend + RECORD.len());
                    buf[qend..qend + RECORD.len()].copy_from_slice(&RECORD);
                    len += RECORD.len();
                }
                if sock.send_to(&buf[..len], from).is_ok() {
                    answered += 1;
                }
            }
            answered
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A dnstap collector (`fstrm_capture`'s part) on its own thread: the
/// handshake, then every byte read into a fixed buffer and counted, until
/// the end of the stream (the writer's STOP is not answered: it closes after
/// its wait for FINISH).
struct Collector {
    path: std::path::PathBuf,
    thread: Option<JoinHandle<u64>>,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(TEST_BOUND)).unwrap();
            let control = |s: &mut UnixStream| {
                let mut head = [0u8; 8];
                s.read_exact(&mut head).unwrap();
                assert_eq!(head[..4], [0, 0, 0, 0], "a control frame");
                let len = u32::from_be_bytes(head[4..].try_into().unwrap()) as usize;
                let mut payload = vec![0u8; len];
                s.read_exact(&mut payload).unwrap();
                decode_control(&payload).unwrap().kind
            };
            assert_eq!(control(&mut s), ControlKind::Ready);
            s.write_all(&encode_control(ControlKind::Accept, Some(CONTENT_TYPE)))
                .unwrap();
            assert_eq!(control(&mut s), ControlKind::Start);
            let mut buf = vec![0u8; 1 << 16];
            let mut bytes = 0u64;
            // Until the writer, given no FINISH, closes its end.
            while let Ok(n @ 1..) = s.read(&mut buf) {
                bytes += n as u64;
            }
            bytes
        });
        Collector {
            path,
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn stop(mut self) -> u64 {
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Sends `count` queries to `ls` in windows of [`WINDOW`], each window's
/// answers read before the next goes; the number answered. Allocates
/// nothing: the query and the answer live in fixed buffers.
/// A forwarded answer: NOERROR with the backend's record.
fn forwarded(answer: &[u8]) -> bool {
    answer[3] & 0x0f == 0 && answer[7] == 1
}

/// A blocked query's answer: REFUSED, no record.
fn refused(answer: &[u8]) -> bool {
    answer[3] & 0x0f == 5 && answer[7] == 0
}

/// Sends `count` queries in windows; how many were answered as `expect` says.
fn load(
    client: &UdpSocket,
    ls: SocketAddr,
    query: &mut [u8],
    (count, expect): (usize, fn(&[u8]) -> bool),
    until: Instant,
) -> usize {
    let mut answered = 0;
    let mut buf = [0u8; 1024];
    let mut id: u16 = 0;
    let mut sent = 0;
    while sent < count && Instant::now() < until {
        let window = WINDOW.min(count - sent);
        let first = id;
        for _ in 0..window {
            query[..2].copy_from_slice(&id.to_be_bytes());
            id = id.wrapping_add(1);
            client.send_to(query, ls).unwrap();
        }
        sent += window;
        let mut got = 0;
        while got < window {
            let Ok((n, _)) = client.recv_from(&mut buf) else {
                break; // a lost answer: the window ends here
            };
            let rid = u16::from_be_bytes([buf[0], buf[1]]);
            // An answer of this window, as expected.
            if n > 12 && rid.wrapping_sub(first) < window as u16 && expect(&buf[..n]) {
                got += 1;
            }
        }
        answered += got;
    }
    answered
}

/// Binds `cfg`'s listeners and serves `balancer` on them (its first health
/// round done): the address and the server's task.
fn serve(
    rt: &tokio::runtime::Runtime,
    balancer: &Arc<dnslb::ls::Balancer>,
    cfg: &LsConfig,
    token: &CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    rt.block_on(async {
        let listeners = dnslb::server::Listeners::bind(&cfg.listen, cfg.workers).unwrap();
        let ls = listeners.local_addrs()[0];
        dnslb::ls::probe::first_round(balancer, Duration::from_millis(500)).await;
        let server = tokio::spawn(dnslb::ls::serve(
            balancer.clone(),
            listeners,
            dnslb::ls::server_options(cfg),
            token.clone(),
        ));
        (ls, server)
    })
}

/// A client of the LS at `ls` once it has answered one query as `expect`
/// says (queries sent before its worker runs may have waited past its queue
/// bound, and be shed), and the query it sends.
fn client_of(ls: SocketAddr, expect: fn(&[u8]) -> bool, until: Instant) -> (UdpSocket, Vec<u8>) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut q = query();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while load(&client, ls, &mut q, (1, expect), until) == 0 {
        assert!(Instant::now() < until, "the LS never answered");
    }
    client.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    (client, q)
}

/// An `[ls]` of one worker on a free port before `echoes` (backends `b0`,
/// `b1`...), with no probe round while counting (the first one runs at start).
fn ls_config(echoes: &[Echo]) -> LsConfig {
    LsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers: 1,
        health: HealthConfig {
            interval_ms: 3_600_000,
            ..HealthConfig::default()
        },
        backend: echoes
            .iter()
            .enumerate()
            .map(|(i, e)| BackendConfig {
                name: format!("b{i}"),
                addr: e.addr,
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: PROXY_BACKENDS.load(Relaxed),
            })
            .collect(),
        ..LsConfig::default()
    }
}

/// The runtime the LS runs on: two threads.
fn runtime() -> tokio::runtime::Runtime {
    let mut two = tokio::runtime::Builder::new_multi_thread();
    two.worker_threads(2).enable_all().build().unwrap()
}

/// Forwards [`WARM_UP`] then [`COUNTED`] queries through an LS with
/// `strategy` and two backends, and a packet cache when `cache`, `ecs` in
/// `[ls]` as given; the allocations over the counted ones.
fn allocations_per_run(
    strategy: Strategy,
    cache: bool,
    rules: Vec<RuleConfig>,
    (dnstap, ecs, dynblock): (bool, EcsMode, bool),
) -> (u64, u64) {
    let until = Instant::now() + TEST_BOUND;
    let collector = dnstap.then(Collector::start);
    let echoes = [Echo::start(), Echo::start()];
    let cfg = LsConfig {
        strategy,
        timeout_ms: 1_000,
        cache: cache.then(CacheConfig::default),
        // The query's pool, and another one: the lookup walks every suffix.
        pool: vec![
            PoolConfig::new("p", &["b0", "b1"], vec![parse_name("example").unwrap()]),
            PoolConfig::new("q", &["b1"], vec![parse_name("www.other").unwrap()]),
        ],
        rule: rules,
        ecs,
        // A query-rate rule far over the load: every query counted for it.
        dynamic_block: if dynblock {
            vec![DynBlockConfig::new("floods", DynKind::QueryRate, 1e6)]
        } else {
            Vec::new()
        },
        ..ls_config(&echoes)
    };
    let rt = runtime();
    let token = CancellationToken::new();
    let tap_token = CancellationToken::new();
    let (tap, tap_task) = match &collector {
        Some(c) => {
            let settings = Settings {
                target: TapTarget::Unix(c.path.clone()),
                kinds: vec![
                    TapKind::ClientQuery,
                    TapKind::ClientResponse,
                    TapKind::ForwarderQuery,
                    TapKind::ForwarderResponse,
                ],
                identity: Some(b"alloc".to_vec()),
                version: Some(b"dnslb test".to_vec()),
                queue_size: 16384,
                queue_bytes: dnslb::config::DNSTAP_QUEUE_BYTES,
                backoff: RECONNECT,
            };
            let _guard = rt.enter();
            let (tap, task) = Dnstap::start(settings, tap_token.clone());
            (tap, Some(task))
        }
        None => (Dnstap::off(), None),
    };
    let tap_stats = tap.stats();
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg).with_dnstap(tap));
    let (ls, server) = serve(&rt, &balancer, &cfg, &token);
    let (client, mut q) = client_of(ls, forwarded, until);
    let warm = load(&client, ls, &mut q, (WARM_UP, forwarded), until);
    assert!(
        warm >= WARM_UP * 9 / 10,
        "{strategy:?}: {warm} warm-up queries answered"
    );
    let shed_before = balancer.metrics().shed_queue.load(Relaxed);

    // `DNSLB_ALLOC_PROFILE=1`: also write where the allocations came from
    // (dhat-<strategy>.json, for dhat's viewer).
    let profiler = if std::env::var_os("DNSLB_ALLOC_PROFILE").is_some() {
        dhat::Profiler::builder()
            .file_name(format!("dhat-{strategy:?}.json"))
            .build()
    } else {
        dhat::Profiler::builder().testing().build()
    };
    let before = dhat::HeapStats::get();
    let answered = load(&client, ls, &mut q, (COUNTED, forwarded), until);
    let after = dhat::HeapStats::get();
    drop(profiler);
    let shed = balancer.metrics().shed_queue.load(Relaxed) - shed_before;
    assert_eq!(
        answered as u64 + shed,
        COUNTED as u64,
        "{strategy:?}: every counted query answered or shed"
    );
    assert!(
        answered >= COUNTED * 9 / 10,
        "{strategy:?}: {answered} of {COUNTED} counted queries answered"
    );

    let hits = balancer.state().cache.as_ref().map(|c| c.stats().hits);
    token.cancel();
    rt.block_on(server).unwrap();
    if let Some(task) = tap_task {
        tap_token.cancel();
        rt.block_on(task.stopped());
    }
    drop(rt);
    if let (Some(c), Some(stats)) = (collector, tap_stats) {
        let bytes = c.stop();
        let sent = stats.sent.load(Relaxed);
        let dropped = stats.dropped.load(Relaxed);
        // Four messages a query (a busy machine may drop some, counted).
        assert!(
            sent + dropped >= 4 * (warm + answered) as u64 && sent > 0 && bytes > 0,
            "dnstap: {sent} frames sent, {dropped} dropped, {bytes} bytes read"
        );
    }
    let sent: u64 = echoes.into_iter().map(Echo::stop).sum();
    match hits {
        None => assert!(sent >= (WARM_UP + COUNTED) as u64, "the backends answered"),
        // Every query but the first answered from the cache.
        Some(hits) => assert!(
            hits >= (warm + answered - 1) as u64 && sent < 100,
            "{hits} hits, {sent} answered by the backends"
        ),
    }
    if let Some((_, _, allowed)) = balancer
        .state()
        .rules
        .counts()
        .find(|(n, _, _)| *n == "ours")
    {
        assert!(
            allowed >= (WARM_UP + COUNTED) as u64,
            "the rules were checked"
        );
    }
    let routed = balancer.state().pools[0].counters.clone().unwrap();
    assert!(
        routed.queries.load(Relaxed) >= (WARM_UP + COUNTED) as u64,
        "the queries went through their pool"
    );
    let bytes = after.total_bytes - before.total_bytes;
    (after.total_blocks - before.total_blocks, bytes)
}

/// 1,000 query rules on names other than the query's (`z0.example` ...
/// `z999.example`, under the query's own zone `example`, so the rules'
/// suffix table is walked over every suffix of the name), one naming no
/// suffix and not holding (TXT), and one that holds and `allow`s (its
/// conditions checked, its counter counted): the door's rule check.
fn thousand_rules() -> Vec<RuleConfig> {
    let rule = |name: String, matches: RuleMatch, action: RuleAction| RuleConfig {
        name,
        matches,
        action,
        log: false,
        aa: false,
        ede: EDE_BLOCKED,
    };
    let mut rules: Vec<RuleConfig> = (0..1000)
        .map(|i| {
            let m = RuleMatch {
                suffix: vec![parse_name(&format!("z{i}.example")).unwrap()],
                ..RuleMatch::default()
            };
            rule(format!("r{i}"), m, RuleAction::Refuse)
        })
        .collect();
    let txt = RuleMatch {
        qtype: vec![QType(16)],
        ..RuleMatch::default()
    };
    rules.push(rule("txt".into(), txt, RuleAction::Drop));
    let ours = RuleMatch {
        suffix: vec![parse_name("www.example").unwrap()],
        qtype: vec![QType(1)],
        ..RuleMatch::default()
    };
    rules.push(rule("ours".into(), ours, RuleAction::Allow));
    rules
}

/// Race (every query to both backends: the loser's answer comes late and
/// is counted as such), hedge (the first backend answers at once), hedge
/// with a packet cache (every counted query a hit), hedge with 1,000
/// query rules checked at the door ([`thousand_rules`]), and hedge with
/// dnstap writing all four messages of each query ([`Collector`]), and
/// hedge with `ecs = "add"` (each query edited into the worker's scratch
/// buffer, each answer mended), without and with a packet cache. One after
/// the other: the allocator's count is the whole process's.
///
/// What may remain: the timer heap's and the tables' amortised growth
/// (each doubling once their working size is passed), which is why the
/// bound is a small total rather than zero.
#[test]
fn forwarding_allocates_nothing_per_query() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pass = EcsMode::Pass;
    for (strategy, cache, rules, dnstap, ecs, dynblock) in [
        (Strategy::Race, false, Vec::new(), false, pass, false),
        (Strategy::Hedge, false, Vec::new(), false, pass, false),
        (Strategy::Hedge, true, Vec::new(), false, pass, false),
        (Strategy::Hedge, false, thousand_rules(), false, pass, false),
        (Strategy::Hedge, false, Vec::new(), true, pass, false),
        (
            Strategy::Hedge,
            false,
            Vec::new(),
            false,
            EcsMode::Add,
            false,
        ),
        (
            Strategy::Hedge,
            true,
            Vec::new(),
            false,
            EcsMode::Add,
            false,
        ),
        (Strategy::Hedge, true, Vec::new(), false, pass, true),
        (Strategy::Hedge, false, Vec::new(), false, pass, true),
    ] {
        let with_rules = !rules.is_empty();
        let (blocks, bytes) = allocations_per_run(strategy, cache, rules, (dnstap, ecs, dynblock));
        let what = match (cache, with_rules, dnstap) {
            _ if dynblock && cache => "cache hits, one dynamic-block rule",
            _ if dynblock => "queries, one dynamic-block rule",
            (true, _, _) if ecs == EcsMode::Add => "cache hits, ecs = add",
            (false, false, false) if ecs == EcsMode::Add => "queries, ecs = add",
            (true, _, _) => "cache hits",
            (false, true, _) => "queries, 1,002 rules checked",
            (false, false, true) => "queries, dnstap on (four messages each)",
            (false, false, false) => "queries",
        };
        eprintln!("{strategy:?}: {blocks} allocations ({bytes} bytes) over {COUNTED} {what}");
        assert!(
            blocks < MAX_ALLOCATIONS,
            "{strategy:?}: {blocks} allocations over {COUNTED} queries (at most {MAX_ALLOCATIONS})"
        );
    }
}

/// With `proxy = true` on both backends, each forwarded query carries a
/// PROXY v2 header written in its datagram's buffer: nothing per query
/// either.
#[test]
fn forwarding_to_proxy_backends_allocates_nothing_per_query() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    PROXY_BACKENDS.store(true, Relaxed);
    let run = (false, EcsMode::Pass, false);
    let (blocks, bytes) = allocations_per_run(Strategy::Hedge, false, Vec::new(), run);
    PROXY_BACKENDS.store(false, Relaxed);
    eprintln!("Hedge: {blocks} allocations ({bytes} bytes) over {COUNTED} queries, proxy = true");
    assert!(
        blocks < MAX_ALLOCATIONS,
        "{blocks} allocations over {COUNTED} queries to proxy backends (at most {MAX_ALLOCATIONS})"
    );
}

/// A query a block stops with `refuse` (here a block by hand on the query's
/// name; a dynamic block's name-rate or client block answers the same way,
/// through the same door) costs one allocation, its answer's, and nothing
/// else: the REFUSED with its EDE is written from the query's bytes, not
/// decoded and re-encoded (seven allocations each before). What a flood
/// against one zone costs once its block is in force.
#[test]
fn a_blocked_query_allocates_only_its_answer() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let until = Instant::now() + TEST_BOUND;
    let echo = Echo::start();
    let cfg = ls_config(std::slice::from_ref(&echo));
    let rt = runtime();
    let token = CancellationToken::new();
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg));
    let target = ManualTarget::Name(parse_name("www.example").unwrap());
    balancer
        .dynblocks()
        .add_manual(&target, 600, DynAction::Refuse, Instant::now())
        .unwrap();
    let (ls, server) = serve(&rt, &balancer, &cfg, &token);
    let (client, mut q) = client_of(ls, refused, until);
    let warm = load(&client, ls, &mut q, (WARM_UP, refused), until);
    assert!(warm >= WARM_UP * 9 / 10, "{warm} warm-up queries refused");

    let profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let answered = load(&client, ls, &mut q, (COUNTED, refused), until);
    let after = dhat::HeapStats::get();
    drop(profiler);
    token.cancel();
    rt.block_on(server).unwrap();
    drop(rt);
    // (What the backend answered is the first health round's probe.)
    let sent = echo.stop();
    assert!(
        sent < 10,
        "{sent} answered by the backend: blocked queries reached it"
    );
    assert!(
        answered >= COUNTED * 9 / 10,
        "{answered} of {COUNTED} counted queries refused"
    );
    let blocks = after.total_blocks - before.total_blocks;
    eprintln!("blocked (refuse): {blocks} allocations over {answered} queries refused");
    assert!(
        blocks < answered as u64 + MAX_ALLOCATIONS,
        "{blocks} allocations over {answered} refused queries (one each at most, and {MAX_ALLOCATIONS} more)"
    );
}

/// Stream queries before counting.
const STREAM_WARM_UP: usize = 500;
/// Stream queries counted per transport.
const STREAM_COUNTED: usize = 2_000;
/// Allocations a TCP query may cost in steady state (see
/// [`stream_queries_in_steady_state`]): what it costs now (1.01: the boxed
/// deferred answer), so that none is added unseen.
const STREAM_PER_QUERY: u64 = 1;
/// The same over DoT (5.08 now: rustls's own for the records, a query's in
/// and its answer's out, on top of TCP's).
const DOT_PER_QUERY: u64 = 5;
/// Allocations allowed over the counted stream queries beside those (a
/// timer wheel's level, a table growing once...).
const STREAM_SLACK: u64 = 100;
/// Allocations a hedge (or re-ask) adds to its query: the query's second
/// attempt goes into a set made then (its queue, its stub and the attempt's
/// node). Hedges fire when the echo backends answer later than the hedge
/// delay, which a loaded machine makes happen now and then.
const PER_HEDGE: u64 = 8;

/// One TCP client on a plain std socket: `count` framed queries, one at a
/// time, each answer read before the next goes; how many were forwarded.
/// Allocates nothing: the query and the answer live in fixed buffers.
fn tcp_load(conn: &mut std::net::TcpStream, query: &mut [u8], count: usize) -> usize {
    let mut buf = [0u8; 1024];
    let mut answered = 0;
    for i in 0..count {
        query[..2].copy_from_slice(&u16::try_from(i % 65_536).unwrap().to_be_bytes());
        let len = u16::try_from(query.len()).unwrap().to_be_bytes();
        if conn.write_all(&len).is_err() || conn.write_all(query).is_err() {
            break;
        }
        let mut head = [0u8; 2];
        if conn.read_exact(&mut head).is_err() {
            break;
        }
        let n = usize::from(u16::from_be_bytes(head));
        if n > buf.len() || conn.read_exact(&mut buf[..n]).is_err() {
            break;
        }
        answered += usize::from(n > 12 && forwarded(&buf[..n]));
    }
    answered
}

/// `kdig` asking `count` names over DoT on one connection to `port`, in
/// its own process (its allocations are not this one's); how many it was
/// answered NOERROR.
fn kdig_dot(port: u16, count: usize) -> usize {
    let names: Vec<String> = (0..count).map(|_| "www.example.".to_string()).collect();
    let out = std::process::Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tls", "+keepopen"])
        .args(["+retry=0", "+timeout=5", "+noall", "+header"])
        .args(&names)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .matches("status: NOERROR")
        .count()
}

/// A TCP client's and a DoT client's queries, forwarded by an LS with one
/// worker (hedge, two backends) once warm: what one query allocates on the
/// stream path (its connection on the worker thread, its upstream query
/// from that thread's own sockets). One: the boxed future of the deferred
/// answer (the handler's `Action::Later`). The query is read from the
/// connection's buffer in place, its bytes, the copy sent upstream and the
/// upstream answer are buffers reused per thread (`server::recycle`), its
/// question waits in the ID table in place, the channel that hands the
/// answer over and the winner cell are reused per thread, its attempts
/// are polled in the query's own future and the deferred answer in the
/// connection's reused slots (no task), and the answer is framed in the
/// connection's write buffer. Over DoT rustls adds its own per record
/// (the query's plaintext, the answer's record). The DoT client
/// is `kdig` in its own process (skipped when it is not installed); its one
/// connection's handshake is counted too (a few hundred allocations over
/// the run, under 0.1 a query).
#[test]
fn stream_queries_in_steady_state() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let echoes = [Echo::start(), Echo::start()];
    let cfg = LsConfig {
        strategy: Strategy::Hedge,
        timeout_ms: 1_000,
        ..ls_config(&echoes)
    };
    let rt = runtime();
    let token = CancellationToken::new();
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg));
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls");
    let (ls, dot, server) = rt.block_on(async {
        let mut listeners = dnslb::server::Listeners::bind(&cfg.listen, cfg.workers).unwrap();
        let (l, dot) =
            dnslb::server::socket::bind_stream("127.0.0.1:0".parse().unwrap(), "tls").unwrap();
        let certs = dnslb::server::tls::CertSwap::load(&data.join("ls.pem"), &data.join("ls.key"));
        let config =
            dnslb::server::tls::server_config(Arc::new(certs.unwrap()), &[b"dot"]).unwrap();
        let stats = balancer.metrics().tls.get_or_init(Default::default).clone();
        listeners.set_dot(dnslb::server::tls::DotListeners::new(
            vec![l],
            config,
            stats,
        ));
        let ls = listeners.local_addrs()[0];
        dnslb::ls::probe::first_round(&balancer, Duration::from_millis(500)).await;
        let server = tokio::spawn(dnslb::ls::serve(
            balancer.clone(),
            listeners,
            dnslb::ls::server_options(&cfg),
            token.clone(),
        ));
        (ls, dot, server)
    });
    let mut q = query();
    let mut conn = std::net::TcpStream::connect(ls).unwrap();
    conn.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    let warm = tcp_load(&mut conn, &mut q, STREAM_WARM_UP);
    assert_eq!(warm, STREAM_WARM_UP, "tcp warm-up");
    let hedges = || balancer.metrics().hedges.load(Relaxed);
    let profiler = dhat::Profiler::builder().testing().build();
    let (start, hedged) = (dhat::HeapStats::get(), hedges());
    let answered = tcp_load(&mut conn, &mut q, STREAM_COUNTED);
    let tcp = dhat::HeapStats::get().total_blocks - start.total_blocks;
    let tcp_hedges = hedges() - hedged;
    assert_eq!(
        answered, STREAM_COUNTED,
        "tcp: every counted query forwarded"
    );
    let kdig = std::process::Command::new("kdig")
        .arg("-V")
        .output()
        .is_ok();
    let dot_blocks = kdig.then(|| {
        assert!(kdig_dot(dot.port(), STREAM_WARM_UP) >= STREAM_WARM_UP * 9 / 10);
        let (start, hedged) = (dhat::HeapStats::get(), hedges());
        let answered = kdig_dot(dot.port(), STREAM_COUNTED);
        let blocks = dhat::HeapStats::get().total_blocks - start.total_blocks;
        let dot_hedges = hedges() - hedged;
        assert_eq!(
            answered, STREAM_COUNTED,
            "dot: every counted query answered"
        );
        (blocks, dot_hedges)
    });
    drop(profiler);
    drop(conn);
    token.cancel();
    rt.block_on(server).unwrap();
    drop(rt);
    let sent: u64 = echoes.into_iter().map(Echo::stop).sum();
    assert!(
        sent >= (WARM_UP + STREAM_COUNTED) as u64,
        "the backends answered"
    );
    let per = |blocks: u64| blocks as f64 / STREAM_COUNTED as f64;
    eprintln!(
        "tcp: {tcp} allocations over {STREAM_COUNTED} queries ({:.2} each), {tcp_hedges} hedges",
        per(tcp)
    );
    let bound = |per_query: u64, hedges: u64| {
        per_query * STREAM_COUNTED as u64 + STREAM_SLACK + PER_HEDGE * hedges
    };
    assert!(
        tcp <= bound(STREAM_PER_QUERY, tcp_hedges),
        "tcp: {tcp} allocations over {STREAM_COUNTED} queries ({tcp_hedges} hedges)"
    );
    match dot_blocks {
        Some((dot, dot_hedges)) => {
            eprintln!(
                "dot: {dot} allocations over {STREAM_COUNTED} queries ({:.2} each), {dot_hedges} hedges",
                per(dot)
            );
            assert!(
                dot <= bound(DOT_PER_QUERY, dot_hedges) + 1_000,
                "dot: {dot} allocations over {STREAM_COUNTED} queries ({dot_hedges} hedges, and one handshake)"
            );
        }
        None => eprintln!("SKIP dot: kdig is not installed"),
    }
}

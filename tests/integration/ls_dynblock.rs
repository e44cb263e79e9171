//! Dynamic blocks end to end (docs/CONFIG.md (the LS) "Rules and dynamic
//! blocks"), over real sockets from chosen 127.0.0.0/8 source addresses:
//!
//! * a client over a query-rate threshold is blocked (REFUSED with EDE 15,
//!   over UDP and TCP) within 2 s, listed in `/blocks` and counted in
//!   `/metrics`, and released after `block_s`; a client at a normal rate and
//!   an excluded one flooding are never blocked;
//! * a `name-rate` block stops a random-subdomain flood under one zone while
//!   another zone's names are answered;
//! * 200,000 forged sources (one query each, each from its own 127.x
//!   address) block nobody, leave no block in force, grow the process by a
//!   bounded amount, and the real client is answered throughout.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::kit::*;
use dnslb::config::{DynAction, DynBlockConfig, DynKind};

/// Upper bound of every wait for a block to be in force (one tick, 1 s,
/// plus a window's end).
const BLOCKED_WITHIN: Duration = Duration::from_millis(2500);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One A query for `name` from `src`, answered within a second or `None`.
async fn ask_from(ls: SocketAddr, src: &str, name: &str) -> Option<Message> {
    let q = wire_query(name, RecordType::A, rand_id(), true, true);
    let raw = udp_raw_from(ip(src), ls, &q, Duration::from_secs(1)).await?;
    Message::from_vec(&raw).ok()
}

/// [`ask_from`], answered (else the test fails, naming the question).
async fn answer_from(ls: SocketAddr, src: &str, name: &str) -> Message {
    let m = ask_from(ls, src, name).await;
    m.unwrap_or_else(|| panic!("{name} A from {src}: no answer within a second"))
}

fn rand_id() -> u16 {
    rand::random()
}

/// Sends `n` queries (names from `name_of`) from `src` without waiting for answers.
async fn flood(ls: SocketAddr, src: &str, n: usize, name_of: impl Fn(usize) -> String) {
    flood_typed(ls, src, n, |i| (name_of(i), RecordType::A)).await;
}

/// Whether `m` is a block's REFUSED (EDE 15).
fn refused_by_block(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::Refused && ede(m).is_some_and(|(code, _)| code == 15)
}

/// Polls a query from `src` for `name` until `done` says so, within `limit`.
async fn until(
    ls: SocketAddr,
    src: &str,
    name: &str,
    limit: Duration,
    done: impl Fn(&Message) -> bool,
) -> Option<Message> {
    poll_until_async(limit, Duration::from_millis(50), async || {
        ask_from(ls, src, name).await.filter(|m| done(m))
    })
    .await
}

/// Whether `name` asked from `src` is refused by a block within
/// [`BLOCKED_WITHIN`].
async fn blocked(ls: SocketAddr, src: &str, name: &str) -> bool {
    until(ls, src, name, BLOCKED_WITHIN, refused_by_block)
        .await
        .is_some()
}

fn rule(name: &str, kind: DynKind, threshold: f64, block_s: u64) -> DynBlockConfig {
    DynBlockConfig {
        window_s: 1,
        block_s,
        action: DynAction::Refuse,
        ..DynBlockConfig::new(name, kind, threshold)
    }
}

/// A TCP query for `name` from `src`: its rcode.
async fn tcp_rcode_from(ls: SocketAddr, src: &str, name: &str) -> Option<ResponseCode> {
    tcp_rcode_of(ls, src, &wire_query(name, RecordType::A, 9, true, false)).await
}

/// A TCP exchange of `q` from `src`: the answer's rcode.
async fn tcp_rcode_of(ls: SocketAddr, src: &str, q: &[u8]) -> Option<ResponseCode> {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(ip(src), 0)).unwrap();
    let mut conn = s.connect(ls).await.ok()?;
    write_frame(&mut conn, q).await;
    let raw = tokio::time::timeout(Duration::from_secs(2), read_frame(&mut conn))
        .await
        .ok()??;
    Message::from_vec(&raw)
        .ok()
        .map(|m| m.metadata.response_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_blocked_within_two_seconds_and_released_after_block_s() {
    // Asserts wall-clock upper bounds (blocked within 2 s, released by 10 s): never beside a load test.
    let _load = crate::kit::timed().await;
    let (_dir, ts) = table_ts("www.dyn.example 10.9.0.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    let mut r = rule("floods", DynKind::QueryRate, 50.0, 3);
    r.exclude = vec!["127.0.0.12/32".parse().unwrap()];
    cfg.dynamic_block = vec![r];
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let name = "www.dyn.example";
    assert!(
        ask_from(ls.addr, "127.0.0.10", name)
            .await
            .is_some_and(|m| m.metadata.response_code == ResponseCode::NoError)
    );

    flood(ls.addr, "127.0.0.10", 300, |_| name.to_owned()).await;
    flood(ls.addr, "127.0.0.12", 300, |_| name.to_owned()).await;
    let start = Instant::now();
    assert!(
        blocked(ls.addr, "127.0.0.10", name).await,
        "not blocked within {BLOCKED_WITHIN:?}"
    );
    let blocked_at = Instant::now();
    // Over TCP too (a refuse block is not only for UDP).
    assert_eq!(
        tcp_rcode_from(ls.addr, "127.0.0.10", name).await,
        Some(ResponseCode::Refused)
    );
    // The normal client and the excluded one are answered.
    for src in ["127.0.0.11", "127.0.0.12"] {
        let m = ask_from(ls.addr, src, name).await.expect("answered");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{src}");
        assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 9, 0, 1)], "{src}");
    }
    // Listed and counted.
    let list = http_get(metrics.addr, "/blocks").await;
    assert_eq!(list.status, 200);
    let list: Vec<serde_json::Value> = serde_json::from_str(&list.body).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["target"], "127.0.0.10");
    assert_eq!(list[0]["rule"], "floods");
    assert_eq!(list[0]["action"], "refuse");
    assert!(list[0]["queries_blocked"].as_u64().unwrap() >= 1);
    let e = parse_exposition(&http_get(metrics.addr, "/metrics").await.body);
    let labels = [("rule", "floods"), ("action", "refuse")];
    assert!(value(&e, "dnslb_dynblock_queries_blocked_total", &labels) >= 2.0);
    assert_eq!(value(&e, "dnslb_dynblock_blocks_total", &labels), 1.0);
    let page = http_get(metrics.addr, "/").await.body;
    assert!(
        page.contains("data-block=\"127.0.0.10\""),
        "status page lists it"
    );
    // Released after block_s (3 s; the probes every 50 ms stay far under 50/s).
    let released = until(ls.addr, "127.0.0.10", name, Duration::from_secs(8), |m| {
        m.metadata.response_code == ResponseCode::NoError
    })
    .await;
    assert!(released.is_some(), "never released");
    let held = blocked_at.elapsed();
    assert!(
        held >= Duration::from_millis(1500),
        "released after {held:?}, before block_s"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rate_block_stops_a_random_subdomain_flood_under_one_zone_only() {
    let table = "www.victim.example 10.9.1.1 A\nwww.other.example 10.9.1.2 A\n";
    let (_dir, ts) = table_ts(table).await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    let mut r = rule("subdomains", DynKind::NameRate, 50.0, 5);
    r.suffix = Some(Name::from_ascii("example.").unwrap());
    cfg.dynamic_block = vec![r];
    let ls = start_ls(cfg).await;
    // 400 random names under victim.example from 4 sources (an open
    // resolver's clients, say): none of them over any client threshold.
    for s in 0..4 {
        let src = format!("127.0.0.{}", 20 + s);
        flood(ls.addr, &src, 100, |i| format!("r{s}x{i}.victim.example")).await;
    }
    assert!(
        blocked(ls.addr, "127.0.0.29", "fresh.victim.example").await,
        "the zone not blocked within {BLOCKED_WITHIN:?}"
    );
    let m = answer_from(ls.addr, "127.0.0.29", "www.victim.example").await;
    assert!(
        refused_by_block(&m),
        "its existing names too: the zone is blocked"
    );
    let m = answer_from(ls.addr, "127.0.0.29", "www.other.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 9, 1, 2)]);
    let list = ls.balancer.dynblocks().list(std::time::Instant::now());
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].target.as_str(), list[0].kind.as_str()),
        ("victim.example.", "name")
    );
    ls.stop().await;
    ts.stop().await;
}

/// Source address `i` of the forged flood: 127.1.0.1 and up, never a
/// real client's (127.0.0.x).
fn forged(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7f01_0001 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sources_keep_memory_bounded_and_the_real_client_answered() {
    const SOURCES: u32 = 200_000;
    let _load = heavy().await;
    let (_dir, ts) = table_ts("www.forged.example 10.9.2.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.cache = Some(Default::default());
    cfg.dynamic_block = vec![rule("floods", DynKind::QueryRate, 20.0, 5)];
    let ls = start_ls(cfg).await;
    let name = "www.forged.example";
    assert!(ask_from(ls.addr, "127.0.0.30", name).await.is_some());
    let (bound_before, _) = ls.balancer.dynblocks().footprint();
    let to = ls.addr;
    let flood = tokio::task::spawn_blocking(move || {
        let q = wire_query(name, RecordType::A, 1, true, false);
        let mut sent = 0u32;
        for i in 0..SOURCES {
            // Paced (bursts of 50, then 1 ms: at most 50,000 a second): a
            // spray, not a test of the machine's capacity.
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let Ok(s) = std::net::UdpSocket::bind(SocketAddr::from((forged(i), 0))) else {
                continue;
            };
            if s.send_to(&q, to).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    // The real client, about 10 queries a second, all through the flood. A
    // datagram lost to the machine's overload (two cores, the spray and the
    // LS on them) is not a block: the client retries, as a stub resolver
    // does (3 tries of 1 s); none of its answers may be a refusal.
    let (mut asked, mut answered) = (0u32, 0u32);
    while !flood.is_finished() && asked < 600 {
        asked += 1;
        for _ in 0..3 {
            if let Some(m) = ask_from(ls.addr, "127.0.0.30", name).await {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "blocked");
                answered += 1;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = flood.await.unwrap();
    assert!(sent > SOURCES / 2, "only {sent} forged queries sent");
    assert!(
        answered * 10 >= asked * 9,
        "the real client: {answered} of {asked} answered"
    );
    // Two ticks later, still nobody blocked: no forged source crossed 20/s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ls.balancer.dynblocks().in_force(), 0);
    let m = answer_from(ls.addr, "127.0.0.30", name).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // The counting tables hold at most their fixed number of keys (8 shards
    // of 8,192 client groups, and the window's 8 × 8,192), and have taken
    // no more room than that; 200,000 sources changed nothing. (`dnslb
    // top`'s rings of recent queries are of a fixed size, allocated whole.)
    let (bound, taken) = ls.balancer.dynblocks().footprint();
    assert_eq!(bound, bound_before);
    assert_eq!(bound, 8 * 8192 + 8 * 8192);
    assert!(taken <= bound, "{taken} > {bound}");
    ls.stop().await;
    ts.stop().await;
}

/// The `[[ls.rule]]`s of `text` (a config's rule tables).
fn query_rules(text: &str) -> Vec<dnslb::config::RuleConfig> {
    let whole = format!("[ls]\n[[ls.backend]]\nname = \"b\"\naddr = \"127.0.0.1:5301\"\n{text}");
    let c = dnslb::config::Config::from_toml(&whole, std::path::Path::new("rules.toml")).unwrap();
    c.ls.unwrap().rule
}

/// The blocks in force are checked before the query rules (as dnsdist
/// does): a client flooding names a rule answers by itself is counted and
/// blocked, and then neither that rule's made-up answer nor an `allow`
/// rule spares it; another client still gets the rules' answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_come_before_the_query_rules_and_allow_spares_no_blocked_client() {
    let (_dir, ts) = table_ts("www.ok.example 10.9.3.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.rule = query_rules(
        "[[ls.rule]]\nname = \"ok\"\nmatch = { suffix = [\"ok.example\"] }\naction = \"allow\"\n\
         [[ls.rule]]\nname = \"fake\"\nmatch = { suffix = [\"spoof.example\"] }\n\
         action = { spoof = [\"192.0.2.7\"], ttl = 30 }\n",
    );
    cfg.dynamic_block = vec![rule("floods", DynKind::QueryRate, 50.0, 5)];
    let ls = start_ls(cfg).await;
    let spoofed = |m: &Message| a_addrs(m) == [Ipv4Addr::new(192, 0, 2, 7)];
    let m = answer_from(ls.addr, "127.0.0.40", "x.spoof.example").await;
    assert!(spoofed(&m), "the rule answers: {m:?}");
    // 300 queries a rule answers at the door, from one client.
    flood(ls.addr, "127.0.0.40", 300, |i| {
        format!("n{i}.spoof.example")
    })
    .await;
    assert!(
        blocked(ls.addr, "127.0.0.40", "x.spoof.example").await,
        "the rule's answers spared the flooding client"
    );
    // An `allow` rule does not spare it either, over UDP or TCP.
    let m = answer_from(ls.addr, "127.0.0.40", "www.ok.example").await;
    assert!(refused_by_block(&m), "allowed past its block: {m:?}");
    assert_eq!(
        tcp_rcode_from(ls.addr, "127.0.0.40", "www.ok.example").await,
        Some(ResponseCode::Refused)
    );
    // Another client: the rules as before.
    let m = answer_from(ls.addr, "127.0.0.41", "x.spoof.example").await;
    assert!(spoofed(&m), "{m:?}");
    let m = answer_from(ls.addr, "127.0.0.41", "www.ok.example").await;
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 9, 3, 1)]);
    ls.stop().await;
    ts.stop().await;
}

/// A backend that answers NXDOMAIN for names starting `nx`, else an A.
async fn nx_or_a_backend() -> Fake {
    Fake::answering(|q| {
        let m = Message::from_vec(q).unwrap();
        let nx = m.queries[0].name().to_ascii().starts_with("nx");
        let rcode = if nx {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        answer_with_ttl(q, rcode, 1)
    })
    .await
}

/// Sends `n` queries from `src`, the `i`th for `ask(i)`, without waiting
/// for answers.
async fn flood_typed(
    ls: SocketAddr,
    src: &str,
    n: usize,
    ask: impl Fn(usize) -> (String, RecordType),
) {
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(ip(src), 0))
        .await
        .unwrap();
    for i in 0..n {
        let (name, qtype) = ask(i);
        let q = wire_query(&name, qtype, rand_id(), true, true);
        let _ = sock.send_to(&q, ls).await;
    }
}

/// The targets of the blocks `GET /blocks` lists.
async fn blocked_targets(metrics: SocketAddr) -> Vec<String> {
    let list = http_get(metrics, "/blocks").await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&list.body).unwrap();
    list.iter()
        .map(|b| b["target"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// One answer-counting kind end to end: `over` (from 127.0.0.50) crosses
/// rule `r`'s threshold, `under` (from 127.0.0.51, at the same time) stays
/// under it. The client over is listed in `/blocks` (polled) and refused
/// with EDE 15; the client under is never listed and is answered; the block
/// is lifted after `block_s` (2 s).
async fn a_kind_blocks_the_client_over_it_only(
    r: DynBlockConfig,
    (n_over, over): (usize, impl Fn(usize) -> (String, RecordType)),
    (n_under, under): (usize, impl Fn(usize) -> (String, RecordType)),
) {
    let backend = nx_or_a_backend().await;
    let mut cfg = ls_config(&[("fake", backend.addr)]);
    cfg.layout = dnslb::config::Layout::Replicated;
    let rule_name = r.name.clone();
    cfg.dynamic_block = vec![r];
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    flood_typed(ls.addr, "127.0.0.50", n_over, over).await;
    flood_typed(ls.addr, "127.0.0.51", n_under, under).await;
    let listed = poll_until_async(BLOCKED_WITHIN, Duration::from_millis(50), async || {
        let t = blocked_targets(metrics.addr).await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(
        listed.as_deref(),
        Some(&["127.0.0.50".to_owned()][..]),
        "{rule_name}: the client over, and it alone"
    );
    let blocked_at = Instant::now();
    let m = answer_from(ls.addr, "127.0.0.50", "www.dyn.example").await;
    assert!(refused_by_block(&m), "{rule_name}: {m:?}");
    let m = answer_from(ls.addr, "127.0.0.51", "www.dyn.example").await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{rule_name}"
    );
    // Lifted after block_s; the client under was never listed.
    let lifted = poll_until_async(
        Duration::from_secs(6),
        Duration::from_millis(100),
        async || blocked_targets(metrics.addr).await.is_empty().then_some(()),
    )
    .await;
    assert!(lifted.is_some(), "{rule_name}: never lifted");
    assert!(
        blocked_at.elapsed() >= Duration::from_millis(900),
        "{rule_name}: lifted after {:?}, before block_s",
        blocked_at.elapsed()
    );
    let m = answer_from(ls.addr, "127.0.0.50", "www.dyn.example").await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{rule_name}"
    );
    let e = parse_exposition(&http_get(metrics.addr, "/metrics").await.body);
    let labels = [("rule", rule_name.as_str()), ("action", "refuse")];
    assert_eq!(
        value(&e, "dnslb_dynblock_blocks_total", &labels),
        1.0,
        "{rule_name}: one block, the client under never"
    );
    metrics.stop().await;
    ls.stop().await;
}

fn a_query(i: usize) -> (String, RecordType) {
    (format!("q{i}.dyn.example"), RecordType::A)
}

fn nx_query(i: usize) -> (String, RecordType) {
    (format!("nx{i}.dyn.example"), RecordType::A)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcode_rate_blocks_the_client_over_its_nxdomain_rate_only() {
    let mut r = rule("nx-rate", DynKind::RcodeRate, 20.0, 2);
    r.rcode = Some(dnslb::config::DynRcode::Nxdomain);
    // 100 NXDOMAINs against 100 answers of which 5 are NXDOMAIN.
    let under = |i| if i % 20 == 0 { nx_query(i) } else { a_query(i) };
    a_kind_blocks_the_client_over_it_only(r, (100, nx_query), (100, under)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcode_ratio_blocks_the_client_over_its_share_with_min_responses_only() {
    let mut r = rule("nx-ratio", DynKind::RcodeRatio, 0.5, 2);
    r.rcode = Some(dnslb::config::DynRcode::Nxdomain);
    r.min_responses = 20;
    // Every answer NXDOMAIN, against one in ten.
    let under = |i| if i % 10 == 0 { nx_query(i) } else { a_query(i) };
    a_kind_blocks_the_client_over_it_only(r, (60, nx_query), (60, under)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qtype_rate_blocks_the_client_over_its_type_rate_only() {
    let mut r = rule("txt-rate", DynKind::QtypeRate, 20.0, 2);
    r.qtype = Some(RecordType::TXT);
    let txt = |i| (format!("t{i}.dyn.example"), RecordType::TXT);
    // 100 TXT queries against 100 queries of which 5 are TXT.
    let under = |i| if i % 20 == 0 { txt(i) } else { a_query(i) };
    a_kind_blocks_the_client_over_it_only(r, (100, txt), (100, under)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bytes_rate_blocks_the_client_over_its_byte_rate_only() {
    // Each answer is about 90 bytes: 100 of them against 10.
    let r = rule("bytes", DynKind::ResponseBytesRate, 3000.0, 2);
    a_kind_blocks_the_client_over_it_only(r, (100, a_query), (10, a_query)).await;
}

/// The LS's own answers at the deadline (`on_timeout`, here NXDOMAIN
/// with EDE 22 for a backend that never answers) do not count toward the
/// rcode rules: the client whose names are under the dead backend is never
/// blocked, while a client getting as many NXDOMAINs from a live backend is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_s_own_on_timeout_answers_do_not_count_toward_rcode_rules() {
    let live = nx_or_a_backend().await;
    // A backend that never answers (its port held, nothing read).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = ls_config(&[("live", live.addr), ("dead", dead.local_addr().unwrap())]);
    cfg.layout = dnslb::config::Layout::Replicated;
    cfg.timeout_ms = 200;
    let zone = |z: &str| vec![Name::from_ascii(z).unwrap()];
    cfg.pool = vec![
        dnslb::config::PoolConfig::new("live", &["live"], zone("live.example.")),
        dnslb::config::PoolConfig::new("dead", &["dead"], zone("dead.example.")),
    ];
    let mut r = rule("nx-rate", DynKind::RcodeRate, 20.0, 10);
    r.rcode = Some(dnslb::config::DynRcode::Nxdomain);
    cfg.dynamic_block = vec![r];
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    // 60 names under the dead backend, every answer the LS's NXDOMAIN.
    let sock = tokio::net::UdpSocket::bind("127.0.0.60:0").await.unwrap();
    for i in 0..60 {
        let q = wire_query(
            &format!("n{i}.dead.example"),
            RecordType::A,
            rand_id(),
            true,
            true,
        );
        sock.send_to(&q, ls.addr).await.unwrap();
    }
    let mut buf = [0u8; 1500];
    for _ in 0..60 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .expect("answered at the deadline")
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(ede(&m).map(|(code, _)| code), Some(22), "the LS's own");
    }
    // Then 60 real NXDOMAINs for another client: it is blocked, and that
    // tick has judged the first client's answers too.
    flood(ls.addr, "127.0.0.61", 60, |i| format!("nx{i}.live.example")).await;
    let listed = poll_until_async(BLOCKED_WITHIN, Duration::from_millis(50), async || {
        let t = blocked_targets(metrics.addr).await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(listed.as_deref(), Some(&["127.0.0.61".to_owned()][..]));
    let m = answer_from(ls.addr, "127.0.0.60", "www.live.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    metrics.stop().await;
    ls.stop().await;
}

/// A live control `POST` (with its header) to the metrics listener at `addr`.
async fn control_post(addr: SocketAddr, path: &str) -> HttpResponse {
    let r = http_request_with(addr, "POST", path, &[("X-Dnslb-Control", "1")]).await;
    assert_eq!(r.status, 200, "POST {path}: {}", r.body);
    r
}

/// `GET /top` with `query`, parsed.
async fn top_of(metrics: SocketAddr, query: &str) -> serde_json::Value {
    let r = http_get(metrics, &format!("/top?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// A report list (`rcodes`, `names`...) as (key, count) pairs.
fn entries(report: &serde_json::Value, list: &str) -> Vec<(String, u64)> {
    report[list]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["key"].as_str().unwrap().to_owned(),
                        e["count"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `dnslb top` counts every answer sent, those the LS makes up itself too
/// (a block's REFUSED, a rule's NXDOMAIN, over UDP and TCP) beside the
/// backend's; asked for `labels = 2`, the names of a random-subdomain flood
/// add up under their zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_counts_every_answer_the_ls_makes_up_and_groups_names_by_zone() {
    let (_dir, ts) = table_ts("www.top.example 10.9.5.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.rule = query_rules(
        "[[ls.rule]]\nname = \"made\"\nmatch = { suffix = [\"made.example\"] }\n\
         action = \"nxdomain\"\n",
    );
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    control_post(
        metrics.addr,
        "/blocks?target=127.0.0.70&for=60&action=refuse",
    )
    .await;
    for (src, name, want) in [
        ("127.0.0.69", "www.top.example", ResponseCode::NoError),
        ("127.0.0.69", "x.made.example", ResponseCode::NXDomain),
        ("127.0.0.70", "www.top.example", ResponseCode::Refused),
    ] {
        let m = answer_from(ls.addr, src, name).await;
        assert_eq!(m.metadata.response_code, want, "{name} from {src} (UDP)");
        let tcp = tcp_rcode_from(ls.addr, src, name).await;
        assert_eq!(tcp, Some(want), "{name} from {src} (TCP)");
    }
    // A random-subdomain flood of 40 names, each of count 1.
    for i in 0..40 {
        let m = answer_from(ls.addr, "127.0.0.71", &format!("r{i}.made.example")).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
    let want = [
        ("NXDOMAIN".to_owned(), 42),
        ("NOERROR".to_owned(), 2),
        ("REFUSED".to_owned(), 2),
    ];
    // Polled: a worker's tally is skipped while `top` reads its ring.
    let seen = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let r = top_of(metrics.addr, "seconds=60&n=10").await;
            (entries(&r, "rcodes") == want).then_some(r)
        },
    )
    .await;
    let last = entries(&top_of(metrics.addr, "seconds=60&n=10").await, "rcodes");
    let whole = seen.unwrap_or_else(|| panic!("rcodes {last:?}, want {want:?}"));
    let names = entries(&whole, "names");
    assert_eq!(
        names[..2],
        [
            ("www.top.example.".to_owned(), 4),
            ("x.made.example.".to_owned(), 2)
        ]
    );
    assert_eq!(names[2].1, 1, "whole names: the flood's each alone");
    let zones = top_of(metrics.addr, "seconds=60&n=2&labels=2").await;
    assert_eq!(zones["labels"], 2, "{zones}");
    assert_eq!(
        entries(&zones, "names"),
        [
            ("made.example.".to_owned(), 42),
            ("top.example.".to_owned(), 4)
        ],
        "{zones}"
    );
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

/// `q` as a message of opcode `op` (2 STATUS, 5 UPDATE).
fn with_opcode(mut q: Vec<u8>, op: u8) -> Vec<u8> {
    q[2] = (q[2] & !0x78) | (op << 3);
    q
}

/// The blocks come first for every opcode: a client blocked by hand gets
/// its block's REFUSED (EDE 15) for UPDATE and STATUS over UDP and TCP,
/// not the NOTIMP the door gives them otherwise; under a `drop` block they
/// go unanswered; another client still gets NOTIMP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_gets_its_block_for_every_opcode() {
    let (_dir, ts) = table_ts("www.op.example 10.9.6.1 A\n").await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    control_post(
        metrics.addr,
        "/blocks?target=127.0.0.80&for=60&action=refuse",
    )
    .await;
    control_post(metrics.addr, "/blocks?target=127.0.0.81&for=60&action=drop").await;
    for (op, what) in [(5, "UPDATE"), (2, "STATUS")] {
        let q = with_opcode(
            wire_query("www.op.example", RecordType::A, 7, true, true),
            op,
        );
        let raw = udp_raw_from(ip("127.0.0.80"), ls.addr, &q, Duration::from_secs(2)).await;
        let m = Message::from_vec(&raw.expect("answered")).unwrap();
        assert!(refused_by_block(&m), "{what} over UDP: {m:?}");
        let tcp = tcp_rcode_of(ls.addr, "127.0.0.80", &q).await;
        assert_eq!(tcp, Some(ResponseCode::Refused), "{what} over TCP");
        let raw = udp_raw_from(ip("127.0.0.82"), ls.addr, &q, Duration::from_secs(2)).await;
        let m = Message::from_vec(&raw.expect("answered")).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{what}");
        let dropped = udp_raw_from(ip("127.0.0.81"), ls.addr, &q, Duration::from_secs(1)).await;
        assert_eq!(dropped, None, "{what} from a client under a drop block");
    }
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

/// A network blocked by hand is the network written: an IPv4-mapped one
/// is the IPv4 network it names (its IPv4 clients blocked), an IPv6 one
/// longer than the client group is listed as written, not widened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_network_blocked_by_hand_blocks_the_ipv4_network_it_names() {
    let (_dir, ts) = table_ts("www.map.example 10.9.7.1 A\n").await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let r = control_post(
        metrics.addr,
        "/blocks?target=::ffff:127.0.0.64/122&action=refuse",
    )
    .await;
    assert!(
        r.body.contains("\"target\":\"127.0.0.64/26\""),
        "{}",
        r.body
    );
    let m = answer_from(ls.addr, "127.0.0.90", "www.map.example").await;
    assert!(refused_by_block(&m), "inside the network: {m:?}");
    let m = answer_from(ls.addr, "127.0.0.30", "www.map.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    control_post(metrics.addr, "/blocks?target=2001:db8::/120&action=drop").await;
    let targets = blocked_targets(metrics.addr).await;
    assert!(
        targets.contains(&"2001:db8::/120".to_owned()),
        "{targets:?}"
    );
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

/// An `rcode-rate` rule on SERVFAIL is refused, by `dnslb check` and by the
/// LS at start, at its line and saying why: a backend's failure is not the
/// client's doing (the LS passes a backend's SERVFAIL on only when it is
/// the authority's own and no backend answered).
#[test]
fn a_servfail_rcode_rule_is_refused_by_check_and_at_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let [port, backend] = ports::<2>();
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{port}\"]\n\n[[ls.backend]]\nname = \"b\"\n\
         addr = \"127.0.0.1:{backend}\"\n\n[[ls.dynamic_block]]\nname = \"sf\"\n\
         kind = \"rcode-rate\"\nrcode = \"SERVFAIL\"\nthreshold = 5\n"
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let want = "c.toml:11: ls.dynamic_block.rcode: SERVFAIL is not counted: a backend's \
                SERVFAIL is passed on only when it is authoritative";
    let out = dnslb_check(&path, dir.path());
    assert!(!out.status.success(), "dnslb check passed: {}", out.stdout);
    assert!(out.stderr.contains(want), "{}", out.stderr);
    let out = run_dnslb(
        &["ls", "-c", "c.toml"],
        dir.path(),
        None,
        Duration::from_secs(10),
    );
    assert!(!out.status.success(), "the LS started");
    assert!(out.stderr.contains(want), "{}", out.stderr);
}

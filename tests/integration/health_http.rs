//! `/health` and `/ready` over real sockets, with an in-process LS and the
//! metrics server: the JSON is read as plain JSON (the schema documented in
//! docs/METRICS.md, not the crate's own types), its counters must equal
//! `/metrics`, the status code follows the backends (200 while one is up,
//! 503 once none is), and `/ready` follows the [`Readiness`] its runner sets.
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;

use dnslb::config::LsConfig;
use dnslb::metrics::{self, Readiness, StatusExtra};

use crate::kit::{
    Stalled, TestMetrics, ZoneDir, check_histogram, http_get, ls_config, parse_exposition,
    poll_until_async, query, start_ls, start_ts_table, udp_raw, value,
};

const TABLE: &str = "\
www.a.test    192.0.2.1    A
mail.a.test   192.0.2.3    A
";

/// `/health`: its status code and the JSON body.
async fn health(m: &TestMetrics) -> (u16, Value) {
    let r = http_get(m.addr, "/health").await;
    assert_eq!(r.headers["content-type"], "application/json");
    let json = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {}", r.body));
    (r.status, json)
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
fn dead_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// The backend entry named `name` of a `/health` report.
fn backend<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["backends"]
        .as_array()
        .expect("backends is an array")
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {report}"))
}

/// One backend up, one never heard from: 200, each backend's state, policy
/// and counters, the counters equal to `/metrics`, latency where there
/// were answers and `null` where there were none.
#[tokio::test]
async fn health_shows_backends_and_is_200_while_one_is_up() {
    let dir = ZoneDir::new();
    let ts1 = start_ts_table(&dir, "ts1.txt", TABLE).await;
    let dead = dead_addr();
    let mut cfg: LsConfig = ls_config(&[("ts1", ts1.addr), ("dead", dead)]);
    cfg.health.timeout_ms = 200;
    let ls = start_ls(cfg).await;
    let m = TestMetrics::start(ls.balancer.clone(), StatusExtra::default()).await;

    let names = ["www.a.test.", "mail.a.test."];
    let rounds = 5;
    for _ in 0..rounds {
        for name in names {
            let raw = query(name, RecordType::A, None).to_vec().unwrap();
            let answer = udp_raw(ls.addr, &raw).await.expect("an answer");
            let answer = Message::from_vec(&answer).unwrap();
            assert_eq!(answer.response_code, ResponseCode::NoError, "{name}");
        }
    }
    let asked = (rounds * names.len()) as u64;

    let (status, h) = health(&m).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["backends_up"], 1);
    assert_eq!(h["ready"], "starting", "nobody said it serves");
    assert_eq!(h["strategy"], "hedge");
    assert_eq!(h["order"], "least-outstanding");
    assert_eq!(h["layout"], "partitioned");
    assert_eq!(h["queries"], asked);
    assert_eq!(h["version"], metrics::BUILD_VERSION);
    assert_eq!(h["commit"], metrics::BUILD_COMMIT);
    assert!(h["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert!(h["children"].is_null(), "no supervisor: {h}");
    let names: Vec<&str> = h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ts1", "dead"], "config order");

    let up = backend(&h, "ts1");
    assert_eq!(up["addr"], ts1.addr.to_string());
    assert_eq!(up["state"], "up");
    // Only ts1 holds names and is up: it answered and won every query.
    assert_eq!(up["wins"], asked);
    assert_eq!(up["outstanding"], 0);
    let ewma = up["ewma_us"].as_u64().expect("an EWMA after answers");
    let p50 = up["p50_us"].as_u64().expect("a p50 after answers");
    let p99 = up["p99_us"].as_u64().expect("a p99 after answers");
    assert!(ewma > 0 && p50 > 0 && p50 <= p99, "{up}");
    let down = backend(&h, "dead");
    assert_eq!(down["addr"], dead.to_string());
    assert_eq!(down["state"], "down");
    assert_eq!(down["sent"], 0, "a down backend gets no client query");
    for key in ["ewma_us", "p50_us", "p99_us"] {
        assert!(
            down[key].is_null(),
            "{key} of a backend never heard: {down}"
        );
    }

    // The same counters as /metrics.
    let e = parse_exposition(&http_get(m.addr, "/metrics").await.body);
    for b in h["backends"].as_array().unwrap() {
        let addr = b["addr"].as_str().unwrap();
        let l = [("backend", b["name"].as_str().unwrap()), ("addr", addr)];
        for (key, family) in [
            ("sent", "dnslb_backend_sent_total"),
            ("answered", "dnslb_backend_answered_total"),
            ("wins", "dnslb_backend_wins_total"),
            ("timeouts", "dnslb_backend_timeouts_total"),
            ("errors", "dnslb_backend_errors_total"),
            ("outstanding", "dnslb_backend_outstanding"),
        ] {
            assert_eq!(b[key].as_f64().unwrap(), value(&e, family, &l), "{key} {b}");
        }
        let up = if b["state"] == "up" { 1.0 } else { 0.0 };
        assert_eq!(value(&e, "dnslb_backend_up", &l), up);
        let answered = b["answered"].as_f64().unwrap();
        assert_eq!(
            check_histogram(&e, "dnslb_backend_latency_seconds", &l),
            answered
        );
    }

    m.stop().await;
    ls.stop().await;
    ts1.stop().await;
}

/// A backend that stops answering its probes is marked down, and `/health`
/// turns from 200 to 503 with it.
#[tokio::test]
async fn health_is_503_once_no_backend_is_up() {
    let stalled = Stalled::start().await;
    let mut cfg = ls_config(&[("only", stalled.addr)]);
    cfg.health.interval_ms = 50;
    cfg.health.timeout_ms = 100;
    cfg.health.fall = 1;
    let ls = start_ls(cfg).await;
    let m = TestMetrics::start(ls.balancer.clone(), StatusExtra::default()).await;

    let (status, h) = health(&m).await;
    assert_eq!((status, &h["status"]), (200, &Value::from("ok")), "{h}");
    assert_eq!(backend(&h, "only")["state"], "up");

    stalled.mute_probes();
    let (status, h) = poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            let (status, h) = health(&m).await;
            (status != 200).then_some((status, h))
        },
    )
    .await
    .expect("/health leaves 200 once the only backend is down");
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["status"], "down");
    assert_eq!(h["backends_up"], 0);
    assert_eq!(backend(&h, "only")["state"], "down");

    m.stop().await;
    ls.stop().await;
}

/// `/ready` is 503 until the runner says the LS serves, 200 while it does,
/// and 503 for good from the moment it stops; `/health` shows the same.
#[tokio::test]
async fn ready_follows_the_readiness_its_runner_sets() {
    let mut cfg = ls_config(&[("dead", dead_addr())]);
    cfg.health.timeout_ms = 100;
    let ls = start_ls(cfg).await;
    let ready = Readiness::default();
    let extra = StatusExtra {
        ready: ready.clone(),
        ..StatusExtra::default()
    };
    let m = TestMetrics::start(ls.balancer.clone(), extra).await;
    let check = async |code: u16, state: &str| {
        let r = http_get(m.addr, "/ready").await;
        assert_eq!(r.status, code, "/ready while {state}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["state"], state);
        assert_eq!(body["ready"], code == 200);
        assert_eq!(health(&m).await.1["ready"], state);
    };
    check(503, "starting").await;
    ready.set_serving();
    check(200, "serving").await;
    ready.set_stopping();
    check(503, "stopping").await;
    ready.set_serving();
    check(503, "stopping").await;
    m.stop().await;
    ls.stop().await;
}

//! The metrics server over real sockets: an LS in front of two in-process TS
//! answers some queries, then `/metrics` must count exactly those and parse
//! as the Prometheus text format (openmetrics-parser, plus the naming
//! conventions; `promtool check metrics` too where it is installed), `/`
//! must show the backends, unknown paths 404, and cancelling the token ends
//! the server.
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::TcpStream;

use dnslb::metrics::{self, StatusExtra};

use crate::kit::{
    TestMetrics, ZoneDir, assert_promtool_accepts, check_histogram, http_get, ls_config,
    parse_exposition, promtool, query, start_ls, start_ts_table, udp_raw, value,
};

const TABLE1: &str = "\
www.a.test    192.0.2.1    A
mail.a.test   192.0.2.3    A
";

const TABLE2: &str = "\
www.b.test    198.51.100.1  A
api.b.test    198.51.100.2  A
";

#[tokio::test]
async fn metrics_and_status_page() {
    let dir = ZoneDir::new();
    let ts1 = start_ts_table(&dir, "ts1.txt", TABLE1).await;
    let ts2 = start_ts_table(&dir, "ts2.txt", TABLE2).await;
    let ls = start_ls(ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)])).await;

    let children: Arc<metrics::ChildrenFn> = Arc::new(|| {
        vec![
            ("child-one".to_owned(), Some(4242), 0),
            ("child-two".to_owned(), None, 3),
        ]
    });
    let extra = StatusExtra {
        supervisor: Some(children),
        ..StatusExtra::default()
    };
    let server = TestMetrics::start(ls.balancer.clone(), extra).await;
    let http = server.addr;

    // Hits on both partitions, and misses.
    let hits = ["www.a.test.", "mail.a.test.", "www.b.test.", "api.b.test."];
    let misses = ["nope.a.test.", "nope.b.test."];
    let mut sent = 0u64;
    for _ in 0..3 {
        for (names, want) in [
            (&hits[..], ResponseCode::NoError),
            (&misses[..], ResponseCode::NXDomain),
        ] {
            for name in names {
                let raw = query(name, RecordType::A, None).to_vec().unwrap();
                sent += 1;
                let answer = udp_raw(ls.addr, &raw).await.expect("an answer");
                let answer = Message::from_vec(&answer).unwrap();
                assert_eq!(answer.response_code, want, "{name}");
            }
        }
    }
    let (n_hits, n_misses) = (3 * hits.len() as u64, 3 * misses.len() as u64);

    // /metrics: exact counters, and the format.
    let r = http_get(http, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4");
    let samples = parse_exposition(&r.body);
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    // This process's figures and the build, beside the LS's.
    assert!(v("process_cpu_seconds_total", &[]) > 0.0);
    assert!(v("process_resident_memory_bytes", &[]) > 0.0);
    assert!(v("process_open_fds", &[]) >= 3.0);
    v("process_start_time_seconds", &[]);
    assert_eq!(
        v(
            "dnslb_build_info",
            &[
                ("version", metrics::BUILD_VERSION),
                ("commit", metrics::BUILD_COMMIT)
            ]
        ),
        1.0
    );
    assert_eq!(v("dnslb_queries_total", &[]), sent as f64);
    assert_eq!(
        v("dnslb_answers_total", &[("rcode", "NOERROR")]),
        n_hits as f64
    );
    assert_eq!(
        v("dnslb_answers_total", &[("rcode", "NXDOMAIN")]),
        n_misses as f64
    );
    assert_eq!(v("dnslb_answers_total", &[("rcode", "SERVFAIL")]), 0.0);
    assert_eq!(v("dnslb_synthesized_total", &[]), 0.0);
    for reason in ["wrong_source", "wrong_id", "wrong_question"] {
        assert_eq!(
            v("dnslb_dropped_responses_total", &[("reason", reason)]),
            0.0
        );
    }
    for name in [
        "dnslb_hedges_total",
        "dnslb_hedge_wins_total",
        "dnslb_hedges_refused_total",
        "dnslb_refused_acl_total",
        "dnslb_rate_limited_total",
    ] {
        v(name, &[]);
    }
    assert_eq!(
        check_histogram(&samples, "dnslb_client_latency_seconds", &[]),
        sent as f64
    );
    let (mut wins, mut sent_up) = (0.0, 0.0);
    for (name, addr) in [("ts1", ts1.addr), ("ts2", ts2.addr)] {
        let addr = addr.to_string();
        let l = [("backend", name), ("addr", addr.as_str())];
        let answered = v("dnslb_backend_answered_total", &l);
        let w = v("dnslb_backend_wins_total", &l);
        assert!(w <= answered && answered <= v("dnslb_backend_sent_total", &l));
        assert!(w > 0.0, "{name} holds names, so it wins some");
        wins += w;
        sent_up += v("dnslb_backend_sent_total", &l);
        assert_eq!(v("dnslb_backend_up", &l), 1.0);
        assert_eq!(v("dnslb_backend_outstanding", &l), 0.0);
        assert_eq!(v("dnslb_backend_timeouts_total", &l), 0.0);
        assert_eq!(v("dnslb_backend_errors_total", &l), 0.0);
        assert_eq!(
            check_histogram(&samples, "dnslb_backend_latency_seconds", &l),
            answered,
            "one latency sample per answer"
        );
    }
    assert_eq!(wins, sent as f64, "every answered query has one winner");
    assert!(sent_up >= sent as f64);

    // The status page.
    let r = http_get(http, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/html"));
    for needle in [
        "<b>ts1</b>".to_owned(),
        "<b>ts2</b>".to_owned(),
        ts1.addr.to_string(),
        ts2.addr.to_string(),
        "child-one".to_owned(),
        "4242".to_owned(),
        "child-two".to_owned(),
        "restarting".to_owned(),
        "<svg".to_owned(),
        "http-equiv=refresh".to_owned(),
    ] {
        assert!(r.body.contains(&needle), "page lacks {needle:?}");
    }
    assert_eq!(
        r.body.matches("pill up\">up<").count(),
        2,
        "both backends up"
    );
    assert!(!r.body.contains("pill down\">down<"));

    assert_eq!(http_get(http, "/nope").await.status, 404);

    // Cancelling ends the server, even with an idle connection open.
    let _idle = TcpStream::connect(http).await.unwrap();
    server.token.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns after cancel")
        .unwrap();
    assert!(TcpStream::connect(http).await.is_err(), "listener closed");
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}

#[test]
fn exposition_checks_reject_bad_text() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"q\\\"\\\\\\n\"} 1\n";
    let e = parse_exposition(ok);
    let sample = e.families["a_total"].iter_samples().next().unwrap();
    assert_eq!(
        sample.get_labelset().unwrap().get_label_value("k"),
        Some("q\"\\\n")
    );
    for bad in [
        "# HELP a x\n# TYPE a counter\na 1\n", // counter without _total
        "# HELP a_total x\n# TYPE a_total gauge\na_total 1\n", // gauge with _total
        "# TYPE a_total counter\na_total 1\n", // no HELP
        "a 1\n",                               // untyped
        "# HELP a_ms x\n# TYPE a_ms gauge\na_ms 1\n", // not a base unit
        "# HELP a_latency x\n# TYPE a_latency gauge\na_latency 1\n", // a duration without a unit
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\" 1\n", // syntax
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// Prometheus's own linter (`promtool check metrics`: syntax, and naming:
/// `_total` on counters, base units, snake_case, HELP present) finds nothing
/// in a live `/metrics` with traffic, a histogram and two backends. Skipped,
/// saying so, where promtool is not installed (Debian: package `prometheus`).
#[tokio::test]
async fn promtool_finds_no_problem() {
    let Some(tool) = promtool() else {
        crate::kit::skip(
            "promtool_finds_no_problem",
            "no promtool (install Debian's `prometheus` package, or set PROMTOOL=/path/to/promtool)",
        );
        return;
    };
    let dir = ZoneDir::new();
    let ts1 = start_ts_table(&dir, "ts1.txt", TABLE1).await;
    let ts2 = start_ts_table(&dir, "ts2.txt", TABLE2).await;
    let ls = start_ls(ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)])).await;
    let server = TestMetrics::start(ls.balancer.clone(), StatusExtra::default()).await;
    let http = server.addr;
    for name in ["www.a.test.", "www.b.test.", "nope.a.test."] {
        let raw = query(name, RecordType::A, None).to_vec().unwrap();
        udp_raw(ls.addr, &raw).await.expect("an answer");
    }
    let body = http_get(http, "/metrics").await.body;
    assert_promtool_accepts(&tool, &body);
    server.stop().await;
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}

//! The metrics server over real sockets: an LS in front of two in-process TS
//! answers some queries, then `/metrics` must count exactly those and parse
//! as the Prometheus text format (openmetrics-parser, plus the naming
//! conventions; `promtool check metrics` too where it is installed), `/`
//! must show the backends, unknown paths 404, and cancelling the token ends
//! the server.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use dnslb::metrics::{self, StatusExtra};

use crate::harness::{ZoneDir, ls_config, query, start_ls, start_ts, ts_settings, udp_raw};
use crate::procs::TOOL_LIMIT;

const TABLE1: &str = "\
www.a.test    192.0.2.1    A
mail.a.test   192.0.2.3    A
";

const TABLE2: &str = "\
www.b.test    198.51.100.1  A
api.b.test    198.51.100.2  A
";

/// One HTTP response: status, lower-cased headers, body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A minimal HTTP/1.1 GET over a fresh connection (closed after the answer).
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_try_get(addr, path)
        .await
        .unwrap_or_else(|| panic!("cannot connect to {addr}"))
}

/// [`http_get`], or `None` when nothing accepts the connection (a server not
/// started yet, or gone).
pub async fn http_try_get(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("an HTTP answer in time")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if let Some(len) = headers.get("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), body.len(), "content-length");
    }
    Some(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A parsed exposition: families by name.
pub type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// Suffixes that name a unit other than the base one (Prometheus naming:
/// seconds, bytes; `promtool check metrics` flags the same).
const NON_BASE_UNITS: &[&str] = &[
    "_ms",
    "_us",
    "_ns",
    "_millis",
    "_milliseconds",
    "_microseconds",
    "_nanoseconds",
    "_minutes",
    "_hours",
    "_days",
    "_kb",
    "_mb",
    "_kilobytes",
    "_megabytes",
];

/// Parses `text` with openmetrics-parser's Prometheus text-format parser
/// (syntax, escapes, one label set per sample, families, histogram structure:
/// a `+Inf` bucket, cumulative counts, `_sum` with `_count`), then checks
/// the naming conventions the parser leaves to us: each family declared
/// once, with a HELP and a TYPE; counters and only counters end in `_total`;
/// base units only; durations in `_seconds`.
pub fn parse_exposition(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    let e = parse_prometheus(text).unwrap_or_else(|err| panic!("not the text format: {err}"));
    let mut declared = HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(declared.insert(name), "family declared twice: {line}");
    }
    assert_eq!(declared.len(), e.families.len(), "every family has a TYPE");
    for (name, f) in &e.families {
        assert!(!f.help.trim().is_empty(), "{name}: no HELP");
        assert_ne!(f.family_type, PrometheusType::Unknown, "{name}: untyped");
        let counter = f.family_type == PrometheusType::Counter;
        assert_eq!(
            name.ends_with("_total"),
            counter,
            "{name}: `_total` is for counters, and every counter has it"
        );
        for unit in NON_BASE_UNITS {
            let stem = name.strip_suffix("_total").unwrap_or(name);
            assert!(!stem.ends_with(unit), "{name}: not in base units");
        }
        let words: Vec<&str> = name.split('_').collect();
        if ["latency", "duration", "time"]
            .iter()
            .any(|w| words.contains(w))
        {
            let stem = name.strip_suffix("_total").unwrap_or(name);
            assert!(stem.ends_with("_seconds"), "{name}: a duration in seconds");
        }
    }
    e
}

/// The samples of family `name` whose labels include `want`.
fn matching<'a>(e: &'a Exposition, name: &str, want: &[(&str, &str)]) -> Vec<&'a PrometheusValue> {
    let family = e
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    family
        .iter_samples()
        .filter(|s| {
            let set = s.get_labelset().unwrap();
            want.iter().all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| &s.value)
        .collect()
}

/// The value of the one counter or gauge sample of `name` whose labels include `want`.
pub fn value(e: &Exposition, name: &str, want: &[(&str, &str)]) -> f64 {
    let hits = matching(e, name, want);
    assert_eq!(hits.len(), 1, "{name} {want:?}: {hits:?}");
    match hits[0] {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(g) => g.as_f64(),
        other => panic!("{name}: not a counter or gauge: {other:?}"),
    }
}

/// The histogram `name` with `labels`: buckets in increasing `le`, ending
/// with `+Inf` == `_count`; returns the count.
pub fn check_histogram(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits = matching(e, name, labels);
    assert_eq!(hits.len(), 1, "{name} {labels:?}");
    let PrometheusValue::Histogram(h) = hits[0] else {
        panic!("{name}: not a histogram")
    };
    let les: Vec<f64> = h.buckets.iter().map(|b| b.upper_bound).collect();
    assert!(les.len() > 2, "{name} {labels:?} has buckets");
    assert!(
        les.windows(2).all(|w| w[0] < w[1]),
        "{name}: le increasing {les:?}"
    );
    let last = h.buckets.last().unwrap();
    assert_eq!(last.upper_bound, f64::INFINITY, "{name}: ends with +Inf");
    let count = h.count.expect("a _count") as f64;
    assert_eq!(
        last.count.as_f64(),
        count,
        "{name} {labels:?}: +Inf == _count"
    );
    let sum = h.sum.expect("a _sum").as_f64();
    assert!(sum >= 0.0 && (count > 0.0 || sum == 0.0));
    count
}

#[tokio::test]
async fn metrics_and_status_page() {
    let dir = ZoneDir::new();
    let ts1 = start_ts(ts_settings(vec![dir.write("ts1.txt", TABLE1)])).await;
    let ts2 = start_ts(ts_settings(vec![dir.write("ts2.txt", TABLE2)])).await;
    let ls = start_ls(ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)])).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let token = CancellationToken::new();
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
    let server = tokio::spawn(metrics::serve(
        listener,
        ls.balancer.clone(),
        extra,
        token.clone(),
    ));

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
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
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

/// `promtool`: `$PROMTOOL`, else the first on the `PATH`.
fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Prometheus's own linter (`promtool check metrics`: syntax, and naming:
/// `_total` on counters, base units, snake_case, HELP present) finds nothing
/// in a live `/metrics` with traffic, a histogram and two backends. Skipped,
/// saying so, where promtool is not installed (Debian: package `prometheus`).
#[tokio::test]
async fn promtool_finds_no_problem() {
    let Some(tool) = promtool() else {
        crate::harness::skip(
            "promtool_finds_no_problem",
            "no promtool (install Debian's `prometheus` package, or set PROMTOOL=/path/to/promtool)",
        );
        return;
    };
    let dir = ZoneDir::new();
    let ts1 = start_ts(ts_settings(vec![dir.write("ts1.txt", TABLE1)])).await;
    let ts2 = start_ts(ts_settings(vec![dir.write("ts2.txt", TABLE2)])).await;
    let ls = start_ls(ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)])).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(metrics::serve(
        listener,
        ls.balancer.clone(),
        StatusExtra::default(),
        token.clone(),
    ));
    for name in ["www.a.test.", "www.b.test.", "nope.a.test."] {
        let raw = query(name, RecordType::A, None).to_vec().unwrap();
        udp_raw(ls.addr, &raw).await.expect("an answer");
    }
    let body = http_get(http, "/metrics").await.body;
    let mut cmd = std::process::Command::new(&tool);
    cmd.args(["check", "metrics"]);
    let out = crate::procs::run(
        "promtool check metrics",
        cmd,
        Some(body.as_bytes()),
        TOOL_LIMIT,
    );
    assert!(
        out.status.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "promtool check metrics: {}\nstdout:\n{}\nstderr:\n{}\n--- /metrics ---\n{body}",
        out.status,
        out.stdout,
        out.stderr
    );
    token.cancel();
    server.await.unwrap();
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}

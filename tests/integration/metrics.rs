//! The metrics server over real sockets: an LS in front of two in-process TS
//! answers some queries, then `/metrics` must count exactly those and parse
//! as the Prometheus text format, `/` must show the backends, unknown paths
//! 404, and cancelling the token ends the server.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use dnslb::metrics::{self, StatusExtra};

use crate::harness::{ZoneDir, ls_config, query, start_ls, start_ts, ts_settings, udp_raw};

const TABLE1: &str = "\
www.a.test    192.0.2.1    A
mail.a.test   192.0.2.3    A
";

const TABLE2: &str = "\
www.b.test    198.51.100.1  A
api.b.test    198.51.100.2  A
";

/// One HTTP response: status, lower-cased headers, body.
struct HttpResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 GET over a fresh connection (closed after the answer).
async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
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
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// One sample of the exposition.
#[derive(Debug)]
struct PromSample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format strictly: every sample line is
/// `name{labels} value`, its family has a `# HELP` then a `# TYPE` before
/// it, families are contiguous and declared once, histograms only carry
/// `_bucket`/`_sum`/`_count`, counters end in `_total`.
fn parse_exposition(text: &str) -> Vec<PromSample> {
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    let mut helped: Option<String> = None;
    let mut current: Option<(String, String)> = None; // (family, type)
    let mut declared = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{line}");
            helped = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(helped.as_deref(), Some(name), "HELP before TYPE: {line}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type: {line}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter name: {line}");
            }
            assert!(declared.insert(name.to_owned()), "declared twice: {line}");
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let sample = parse_sample(line);
        let (family, kind) = current.as_ref().expect("a TYPE before samples");
        let ok = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| sample.name == format!("{family}{suffix}"))
        } else {
            &sample.name == family
        };
        assert!(ok, "sample {line:?} outside its family {family}");
        if sample.name.ends_with("_bucket") {
            assert!(sample.labels.contains_key("le"), "{line}");
        }
        out.push(sample);
    }
    out
}

/// `name{k="v",...} value`, with `\\`, `\"` and `\n` escapes in values.
fn parse_sample(line: &str) -> PromSample {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let name = &line[..name_end];
    assert!(
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'),
        "{line}"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            let (start, _) = *chars.peek().expect("label or }");
            if r[start..].starts_with('}') {
                rest = &r[start + 1..];
                break;
            }
            let eq = r[start..].find("=\"").expect("label=\"") + start;
            let key = &r[start..eq];
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "label name {key:?} in {line}"
            );
            while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
                chars.next();
            }
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    (_, '\\') => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    (_, '"') => break,
                    (_, c) => value.push(c),
                }
            }
            assert!(labels.insert(key.to_owned(), value).is_none(), "{line}");
            if chars.peek().is_some_and(|(_, c)| *c == ',') {
                chars.next();
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value {v:?} in {line}")),
    };
    PromSample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// The value of the sample `name` whose labels include `want`.
fn value(samples: &[PromSample], name: &str, want: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    assert_eq!(hits.len(), 1, "{name} {want:?}: {hits:?}");
    hits[0]
}

/// The histogram `name` with `labels` is cumulative, and `+Inf` == `_count`;
/// returns the count.
fn check_histogram(samples: &[PromSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| {
            s.name == bucket
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| {
            let le = s.labels["le"].as_str();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect();
    assert!(buckets.len() > 2, "{name} {labels:?} has buckets");
    let in_order = buckets.clone();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(in_order, buckets, "{name}: buckets in increasing le");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} {labels:?}: cumulative {buckets:?}"
    );
    let (last_le, inf) = *buckets.last().unwrap();
    assert_eq!(last_le, f64::INFINITY, "{name}: ends with +Inf");
    let count = value(samples, &format!("{name}_count"), labels);
    assert_eq!(inf, count, "{name} {labels:?}: +Inf == _count");
    let sum = value(samples, &format!("{name}_sum"), labels);
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
fn exposition_parser_rejects_bad_text() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"q\\\"\\\\\\n\"} 1\n";
    let s = parse_exposition(ok);
    assert_eq!(s[0].labels["k"], "q\"\\\n");
    for bad in [
        "a_total 1\n",                                            // no TYPE
        "# TYPE a_total counter\na_total 1\n",                    // no HELP
        "# HELP a x\n# TYPE a counter\na 1\n",                    // counter without _total
        "# HELP a_total x\n# TYPE a_total counter\nb_total 1\n",  // outside family
        "# HELP a_total x\n# TYPE a_total counter\na_total  1\n", // two spaces
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

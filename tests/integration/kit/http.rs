//! HTTP against the metrics servers: a minimal GET or other request (one
//! connection, closed after the answer), and `/metrics` parsed as the Prometheus text format
//! with the naming conventions checked.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::procs::{Proc, TOOL_LIMIT, poll_until_async, run};

/// The value of the first sample of `metrics` (the text of `/metrics`)
/// whose line starts with `line_start` (a name and its labels), as an
/// integer; 0 when there is none.
pub fn sample_u64(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

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
    http_try_request(addr, "GET", path).await
}

/// A minimal HTTP/1.1 request of `method` (no body) over a fresh connection.
#[allow(dead_code)] // the panicking form of http_try_request; no test needs it today
pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> HttpResponse {
    http_try_request(addr, method, path)
        .await
        .unwrap_or_else(|| panic!("cannot connect to {addr}"))
}

/// [`http_request`], or `None` when nothing accepts the connection.
pub async fn http_try_request(addr: SocketAddr, method: &str, path: &str) -> Option<HttpResponse> {
    http_try_request_with(addr, method, path, &[]).await
}

/// [`http_request`] with these extra header lines (name, value).
pub async fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http_try_request_with(addr, method, path, headers)
        .await
        .unwrap_or_else(|| panic!("cannot connect to {addr}"))
}

/// [`http_request_with`], or `None` when nothing accepts the connection.
pub async fn http_try_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<HttpResponse> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
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
pub fn matching<'a>(
    e: &'a Exposition,
    name: &str,
    want: &[(&str, &str)],
) -> Vec<&'a PrometheusValue> {
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

/// How long [`http_get_from`] retries by default while nothing accepts.
pub const HTTP_READY_LIMIT: Duration = Duration::from_secs(10);

/// GETs `path` from the server process `p`, retrying every 20 ms while
/// nothing accepts the connection, for up to [`HTTP_READY_LIMIT`]; panics
/// (with `p`'s stderr) if `p` ends meanwhile.
pub async fn http_get_from(p: &mut Proc, addr: SocketAddr, path: &str) -> HttpResponse {
    let limit = HTTP_READY_LIMIT;
    poll_until_async(limit, Duration::from_millis(20), async || {
        p.assert_running();
        http_try_get(addr, path).await
    })
    .await
    .unwrap_or_else(|| panic!("nothing answered http://{addr}{path} within {limit:?}"))
}

/// `promtool`: `$PROMTOOL`, else the first on the `PATH`.
pub fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Prometheus's own linter, `promtool check metrics` run as `tool`, finds
/// nothing in `body` (it ends at once and prints nothing).
pub fn assert_promtool_accepts(tool: &Path, body: &str) {
    let mut cmd = std::process::Command::new(tool);
    cmd.args(["check", "metrics"]);
    let out = run(
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
}

//! `dnslb status`: asks a running LS for its `/health` report (at the config's
//! `ls.metrics`, or `--addr`) and prints it as a table, in the manner of
//! dnsdist's `showServers()`: one row per backend, then the TS children when
//! the LS runs under `dnslb up`. And `dnslb cache flush` ([`flush`]): a
//! `POST /cache/flush` to the same listener. Then the `[[ts.service]]`
//! endpoints of every `[[ts]]` of the config that has `metrics`, from each
//! TS's `/health` ([`render_endpoints`]).
//!
//! Each HTTP exchange is one request over hyper's HTTP/1 client connection,
//! bounded by a timeout and a cap on the body size. [`render`] is pure.

use crate::metrics::sig3;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{Config, ConfigError};
use crate::ls::backend::admin::AdminState;
use crate::ls::identity::ProbeToken;
use crate::metrics::{
    BackendState, CONTROL_HEADER, ChildState, FLUSH_HEADER, FLUSH_PATH, FlushAnswer, HealthReport,
    HealthStatus, PROBE_TOKEN_PATH, ProbeTokenAnswer, TS_HEALTH_PATH, TsHealthReport,
};

/// How long the whole exchange with the LS may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `/health` body read (a report is about 300 bytes per backend).
const MAX_BODY: usize = 4 << 20;
/// The largest TS `/health` body read: about 110 bytes an endpoint, so
/// some 600,000 endpoints.
const MAX_TS_BODY: usize = 64 << 20;
/// Above this many endpoints of one TS, the table lists its DOWN ones only
/// and a summary line.
const LIST_ALL_UP_TO: usize = 200;

/// Why `dnslb status` could not show the LS (or `dnslb cache flush` flush it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has no `[ls]` section or no `ls.metrics`.
    #[error("{}: no ls.metrics address, so the LS has no metrics listener to ask; set it, or give --addr", path.display())]
    NoMetrics {
        /// The config file.
        path: PathBuf,
    },
    /// Nothing answers at the address.
    #[error("cannot reach the LS at {addr}")]
    Connect {
        /// Where the metrics server should be.
        addr: SocketAddr,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The LS did not answer in time.
    #[error("the LS at {addr} did not answer within {wait:?}")]
    Timeout {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// How long we waited.
        wait: Duration,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {addr} failed")]
    Http {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer's body is over the cap read.
    #[error("{addr} answered with more than {limit} bytes: too large to read")]
    TooLarge {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// The cap, in bytes.
        limit: usize,
    },
    /// An HTTP status other than 200 or 503 (not a dnslb LS, or an old one).
    #[error("{addr} answered /health with HTTP {status}: is it a dnslb LS's metrics address?")]
    Status {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// The status it gave.
        status: u16,
    },
    /// The LS refused or could not do what was asked (`POST /cache/flush`
    /// with no cache: 404, a bad name: 400; a live-control request it
    /// refused), or it is not a dnslb LS.
    #[error("the LS at {addr} answered HTTP {status}: {text}")]
    Refused {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// The status it gave.
        status: u16,
        /// What it said.
        text: String,
    },
    /// The body is not what a dnslb LS answers.
    #[error("{addr} answered with something that is not a dnslb LS's answer")]
    Json {
        /// Where the metrics server is.
        addr: SocketAddr,
        /// Why it did not decode.
        source: serde_json::Error,
    },
}

/// The environment variable that holds the `api_key` for commands that
/// change a running LS's state from another machine.
pub const KEY_ENV: &str = "DNSLB_API_KEY";

/// The `api_key` from [`KEY_ENV`], if set and not empty.
pub fn env_key() -> Option<String> {
    std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty())
}

/// The metrics address: `addr` if given, else `ls.metrics` of the config at `path`.
///
/// # Errors
/// The config cannot be loaded, or has no `ls.metrics`.
pub fn metrics_addr(path: &Path, addr: Option<SocketAddr>) -> Result<SocketAddr, StatusError> {
    if let Some(a) = addr {
        return Ok(a);
    }
    let cfg = Config::load(path)?;
    cfg.ls
        .and_then(|ls| ls.metrics)
        .ok_or_else(|| StatusError::NoMetrics {
            path: path.to_owned(),
        })
}

/// The `[[ts]]` of the config at `path` that have a `metrics` address: name
/// and address, in config order (none when the config cannot be read: the
/// LS's table is shown without them).
#[must_use]
pub fn ts_metrics_addrs(path: &Path) -> Vec<(String, SocketAddr)> {
    Config::load(path)
        .map(|cfg| {
            cfg.ts
                .into_iter()
                .filter_map(|t| Some((t.name, t.metrics?)))
                .collect()
        })
        .unwrap_or_default()
}

/// GETs a TS's `/health` (its services' endpoints) from `addr`, within `wait`.
///
/// # Errors
/// See [`StatusError`]: unreachable, too slow, not a dnslb TS's report.
pub async fn fetch_ts(addr: SocketAddr, wait: Duration) -> Result<TsHealthReport, StatusError> {
    let get = exchange_capped(addr, Method::GET, TS_HEALTH_PATH, &[], MAX_TS_BODY);
    let (status, body) = tokio::time::timeout(wait, get)
        .await
        .unwrap_or(Err(StatusError::Timeout { addr, wait }))?;
    if status != 200 {
        return Err(StatusError::Status { addr, status });
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Json { addr, source })
}

/// GETs `/health` from `addr` and decodes the report (a 503, every backend
/// down, is a report too), all within `wait`.
///
/// # Errors
/// See [`StatusError`]: unreachable, too slow, not HTTP, not a report.
pub async fn fetch(addr: SocketAddr, wait: Duration) -> Result<HealthReport, StatusError> {
    tokio::time::timeout(wait, fetch_now(addr))
        .await
        .unwrap_or(Err(StatusError::Timeout { addr, wait }))
}

/// `dnslb status`: the report of the LS at `addr` (see [`fetch`]) as a table
/// ([`render`]).
///
/// # Errors
/// See [`fetch`].
pub async fn show(addr: SocketAddr) -> Result<String, StatusError> {
    show_with(addr, &[]).await
}

/// `dnslb status`: the LS at `addr`, else at the `ls.metrics` of the config
/// at `config`, and then the endpoints of its `[[ts]]`s with `metrics`
/// ([`show_with`]); with no `ls.metrics` but such `[[ts]]`s, their
/// endpoints alone; an `addr` that is a TS's metrics listener, its endpoints.
///
/// # Errors
/// See [`fetch`] (the LS's report), and [`metrics_addr`].
pub async fn status_of(config: &Path, addr: Option<SocketAddr>) -> Result<String, StatusError> {
    // With --addr the config is not read: the LS alone.
    let tables = if addr.is_some() {
        Vec::new()
    } else {
        ts_metrics_addrs(config)
    };
    match metrics_addr(config, addr) {
        Ok(addr) => show_with(addr, &tables).await,
        Err(StatusError::NoMetrics { .. }) if !tables.is_empty() => {
            Ok(endpoints_of(&tables).await.trim_start().to_owned())
        }
        Err(e) => Err(e),
    }
}

/// The endpoints table of the TSs in `tables`, asked at once.
async fn endpoints_of(tables: &[(String, SocketAddr)]) -> String {
    let asks = tables.iter().map(|(name, a)| async move {
        let r = fetch_ts(*a, FETCH_TIMEOUT).await.map_err(|e| e.to_string());
        (name.clone(), *a, r)
    });
    let tss = futures_util::future::join_all(asks).await;
    let mut out = render_endpoints(&tss, now_unix());
    if tss
        .iter()
        .all(|(_, _, r)| r.as_ref().is_ok_and(|r| r.endpoints.is_empty()))
    {
        out.push_str("no [[ts.service]] endpoint\n");
    }
    out
}

/// Seconds since the epoch.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`show`], then the endpoints of the services of each TS in `tables` (name,
/// metrics address; see [`ts_metrics_addrs`]), asked at once: a TS that
/// cannot be asked is one line, not an error.
///
/// # Errors
/// See [`fetch`] (the LS's report).
pub async fn show_with(
    addr: SocketAddr,
    tables: &[(String, SocketAddr)],
) -> Result<String, StatusError> {
    if tables.is_empty() {
        // An LS's report, or a TS's metrics listener: its endpoints.
        return match fetch_either(addr, FETCH_TIMEOUT).await? {
            Health::Ls(report) => Ok(render(&report, addr)),
            Health::Ts(ts) => {
                let one = [(addr.to_string(), addr, Ok(ts))];
                let out = render_endpoints(&one, now_unix());
                Ok(if out.is_empty() {
                    format!("TS at {addr}: no [[ts.service]] endpoint\n")
                } else {
                    out.trim_start().to_owned()
                })
            }
        };
    }
    let asks = tables.iter().map(|(name, a)| async move {
        let r = fetch_ts(*a, FETCH_TIMEOUT).await.map_err(|e| e.to_string());
        (name.clone(), *a, r)
    });
    let (report, tss) = tokio::join!(
        fetch(addr, FETCH_TIMEOUT),
        futures_util::future::join_all(asks)
    );
    let mut out = render(&report?, addr);
    out.push_str(&render_endpoints(&tss, now_unix()));
    Ok(out)
}

/// The "Endpoints" table of `dnslb status`: one row per endpoint of each
/// TS's services (TS, service, endpoint, check, up or DOWN, since when, as
/// time before `now_unix`); a TS with more than [`LIST_ALL_UP_TO`]
/// endpoints, its DOWN ones only, and a summary line under the table
/// (services, endpoints, DOWN); a TS that could not be asked is one line
/// under it. Empty when no TS has services and every one answered.
#[must_use]
pub fn render_endpoints(
    tss: &[(String, SocketAddr, Result<TsHealthReport, String>)],
    now_unix: u64,
) -> String {
    let mut rows = vec![
        ["TS", "Service", "Endpoint", "Check", "State", "Since"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let mut failed = String::new();
    let mut summary = String::new();
    for (name, addr, r) in tss {
        match r {
            Ok(report) => {
                let large = report.endpoints.len() > LIST_ALL_UP_TO;
                if large {
                    let down = report.endpoints.iter().filter(|e| !e.up).count();
                    let mut services: Vec<&str> = report
                        .endpoints
                        .iter()
                        .map(|e| e.service.as_str())
                        .collect();
                    // A service's endpoints need not be next to each other.
                    services.sort_unstable();
                    services.dedup();
                    let _ = writeln!(
                        summary,
                        "TS {name}: {} services, {} endpoints, {down} DOWN (over {LIST_ALL_UP_TO} \
                         endpoints: only the DOWN ones listed; its /health has every one)",
                        services.len(),
                        report.endpoints.len()
                    );
                }
                for e in report.endpoints.iter().filter(|e| !large || !e.up) {
                    rows.push(vec![
                        name.clone(),
                        e.service.clone(),
                        e.endpoint.clone(),
                        e.check.clone(),
                        if e.up { "up" } else { "DOWN" }.to_owned(),
                        format!(
                            "{} ago",
                            uptime(now_unix.saturating_sub(e.since_unix) as f64)
                        ),
                    ]);
                }
            }
            Err(why) => {
                let _ = writeln!(failed, "TS {name} at {addr}: not asked: {why}");
            }
        }
    }
    let mut out = String::new();
    if rows.len() > 1 {
        out.push_str("\nEndpoints of services:\n");
        out.push_str(&columns(&rows));
    }
    if !summary.is_empty() {
        out.push('\n');
        out.push_str(&summary);
    }
    if !failed.is_empty() {
        out.push('\n');
        out.push_str(&failed);
    }
    out
}

/// The `/health` of an LS or of a TS.
enum Health {
    Ls(HealthReport),
    Ts(TsHealthReport),
}

/// GETs `/health` from `addr`, an LS's or a TS's metrics listener, once
/// (up to a TS's cap, the larger) within `wait`, then reads which it is.
async fn fetch_either(addr: SocketAddr, wait: Duration) -> Result<Health, StatusError> {
    let get = exchange_capped(addr, Method::GET, TS_HEALTH_PATH, &[], MAX_TS_BODY);
    let (status, body) = tokio::time::timeout(wait, get)
        .await
        .unwrap_or(Err(StatusError::Timeout { addr, wait }))?;
    if status != 200 && status != 503 {
        return Err(StatusError::Status { addr, status });
    }
    match serde_json::from_slice(&body) {
        Ok(report) => Ok(Health::Ls(report)),
        Err(source) if status == 200 => serde_json::from_slice(&body)
            .map(Health::Ts)
            .map_err(|_| StatusError::Json { addr, source }),
        Err(source) => Err(StatusError::Json { addr, source }),
    }
}

async fn fetch_now(addr: SocketAddr) -> Result<HealthReport, StatusError> {
    let (status, body) = exchange(addr, Method::GET, "/health", &[]).await?;
    if status != 200 && status != 503 {
        return Err(StatusError::Status { addr, status });
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Json { addr, source })
}

/// One request of `method` on `path` (with its query) to `addr`, no body,
/// with the `extra` headers: the answer's status and body (at most
/// [`MAX_BODY`] bytes).
pub(crate) async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
) -> Result<(u16, Bytes), StatusError> {
    exchange_capped(addr, method, path, extra, MAX_BODY).await
}

/// [`exchange`] reading at most `limit` bytes of body ([`StatusError::TooLarge`]
/// past it).
pub(crate) async fn exchange_capped(
    addr: SocketAddr,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
    limit: usize,
) -> Result<(u16, Bytes), StatusError> {
    let http =
        |source: Box<dyn std::error::Error + Send + Sync>| StatusError::Http { addr, source };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| StatusError::Connect { addr, source })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.into()))?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(e.into()))?;
    // The request owns the sender: once it is done, the connection ends too.
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.into()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    StatusError::TooLarge { addr, limit }
                } else {
                    http(e)
                }
            })?
            .to_bytes();
        Ok::<_, StatusError>((status, body))
    };
    let (result, _) = tokio::join!(exchange, conn);
    result
}

/// One state-changing request to the LS at `addr` (see [`exchange`]), all
/// within `wait`: it carries `marker` (the header that tells the listener no
/// web page sent it) and, when given, the `api_key`; its 200 answer decoded
/// from JSON. Every command that changes a running LS asks through this.
///
/// # Errors
/// See [`StatusError`]: unreachable, too slow, refused (any status but 200),
/// not JSON of the expected shape.
pub(crate) async fn ask_json<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    method: Method,
    path: &str,
    marker: &str,
    key: Option<&str>,
    wait: Duration,
) -> Result<T, StatusError> {
    let mut headers = vec![(marker, "1")];
    if let Some(k) = key {
        headers.push((crate::metrics::KEY_HEADER, k));
    }
    let (status, body) = tokio::time::timeout(wait, exchange(addr, method, path, &headers))
        .await
        .unwrap_or(Err(StatusError::Timeout { addr, wait }))?;
    if status != 200 {
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        return Err(StatusError::Refused { addr, status, text });
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Json { addr, source })
}

/// `dnslb cache flush`: POSTs `/cache/flush` for `name` (with `zone`, every
/// name at or under it) to the LS's metrics listener at `addr`, all within
/// `wait`; the line to print. The key sent is `DNSLB_API_KEY`, else
/// `config_key` (the config's `ls.api_key`).
///
/// # Errors
/// See [`StatusError`]: unreachable, too slow, no cache, refused.
pub async fn flush(
    addr: SocketAddr,
    name: &Name,
    zone: bool,
    config_key: Option<String>,
    wait: Duration,
) -> Result<String, StatusError> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("name", &name.to_ascii());
    if zone {
        query.append_pair("zone", "1");
    }
    let path = format!("{FLUSH_PATH}?{}", query.finish());
    let key = env_key().or(config_key);
    let answer: FlushAnswer = ask_json(
        addr,
        Method::POST,
        &path,
        FLUSH_HEADER,
        key.as_deref(),
        wait,
    )
    .await?;
    let what = if answer.zone { "zone" } else { "name" };
    let s = if answer.removed == 1 { "y" } else { "ies" };
    Ok(format!(
        "{} entr{s} removed ({what} {})\n",
        answer.removed, answer.name
    ))
}

/// `dnslb anycast`: the probe token of the LS whose metrics listener is at
/// `addr` (`GET /probe-token`, a live-control request: `key` is sent when
/// given), all within `wait`.
///
/// # Errors
/// See [`StatusError`]: unreachable, too slow, refused (not in
/// `control_allow`, no key or a wrong one), not a token.
pub async fn probe_token(
    addr: SocketAddr,
    key: Option<&str>,
    wait: Duration,
) -> Result<ProbeToken, StatusError> {
    let answer: ProbeTokenAnswer = ask_json(
        addr,
        Method::GET,
        PROBE_TOKEN_PATH,
        CONTROL_HEADER,
        key,
        wait,
    )
    .await?;
    ProbeToken::from_hex(&answer.token).ok_or_else(|| StatusError::Refused {
        addr,
        status: 200,
        text: "not a probe token".to_owned(),
    })
}

/// A latency in µs for the table: `850us`, `12.3ms`, `1.25s`; `-` when unknown.
fn latency(us: Option<u64>) -> String {
    let Some(us) = us else { return "-".to_owned() };
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{}ms", sig3(us as f64 / 1e3))
    } else {
        format!("{}s", sig3(us as f64 / 1e6))
    }
}

/// A rate with one decimal; `-` when unknown.
fn per_second(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |q| format!("{q:.1}"))
}

/// Seconds as `1d 2h`, `3h 4m`, `5m 6s` or `7s`.
fn uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m {sec}s"),
        (0, h, m, _) => format!("{h}h {m}m"),
        (d, h, _, _) => format!("{d}d {h}h"),
    }
}

/// Rows of cells as left-aligned columns two spaces apart (no trailing blanks).
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The backend table's header row.
const COLUMNS: [&str; 12] = [
    "#",
    "Backend",
    "Address",
    "State",
    "Qps",
    "p50",
    "p99",
    "In-flight",
    "Sent",
    "Wins",
    "Timeouts",
    "Errors",
];

/// The report as `dnslb status` prints it; `addr` is where it came from.
pub fn render(r: &HealthReport, addr: SocketAddr) -> String {
    let mut out = String::new();
    let health = match r.status {
        HealthStatus::Ok => "ok",
        HealthStatus::Down => "DOWN (no backend up)",
    };
    let ready = serde_json::to_value(r.ready)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "dnslb {} ({}) at {addr}: {health}, {ready}, up {}",
        r.version,
        r.commit,
        uptime(r.uptime_seconds)
    );
    let _ = writeln!(
        out,
        "strategy {}, order {}, layout {}; {} queries, {} qps; {} of {} backends up\n",
        r.strategy,
        r.order,
        r.layout,
        r.queries,
        per_second(r.qps),
        r.backends_up,
        r.backends.len()
    );
    let mut rows = vec![COLUMNS.map(str::to_owned).to_vec()];
    for (i, b) in r.backends.iter().enumerate() {
        rows.push(vec![
            i.to_string(),
            b.name.clone(),
            b.addr.to_string(),
            match (b.state, b.admin) {
                (_, AdminState::Drain) => "drain (by hand)",
                (_, AdminState::Down) => "down (by hand)",
                (BackendState::Up, AdminState::Auto) => "up",
                (BackendState::Down, AdminState::Auto) => "down",
            }
            .to_owned(),
            per_second(b.qps),
            latency(b.p50_us),
            latency(b.p99_us),
            b.outstanding.to_string(),
            b.sent.to_string(),
            b.wins.to_string(),
            b.timeouts.to_string(),
            b.errors.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    if let Some(children) = &r.children {
        let mut rows = vec![
            ["#", "Name", "PID", "State", "Restarts"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for (i, c) in children.iter().enumerate() {
            rows.push(vec![
                i.to_string(),
                c.name.clone(),
                c.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                match c.state {
                    ChildState::Running => "running",
                    ChildState::Restarting => "restarting",
                }
                .to_owned(),
                c.restarts.to_string(),
            ]);
        }
        out.push_str("\nTable servers under dnslb up:\n");
        out.push_str(&columns(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BackendHealth, ChildHealth, ReadyState};

    fn backend(name: &str, port: u16, state: BackendState) -> BackendHealth {
        BackendHealth {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state,
            admin: AdminState::Auto,
            ewma_us: None,
            p50_us: None,
            p99_us: None,
            outstanding: 0,
            qps: None,
            sent: 0,
            answered: 0,
            wins: 0,
            timeouts: 0,
            errors: 0,
        }
    }

    #[test]
    fn table_has_a_row_per_backend_and_child() {
        let mut ts1 = backend("ts1", 5301, BackendState::Up);
        (ts1.qps, ts1.p50_us, ts1.p99_us) = (Some(12.34), Some(850), Some(12_300));
        (ts1.outstanding, ts1.sent, ts1.wins) = (3, 1200, 800);
        let mut ts2 = backend("a-long-backend-name", 5302, BackendState::Down);
        (ts2.timeouts, ts2.errors) = (4, 1);
        let r = HealthReport {
            status: HealthStatus::Ok,
            ready: ReadyState::Serving,
            version: "0.1.0".into(),
            commit: "abc1234".into(),
            uptime_seconds: 3725.0,
            strategy: "hedge".into(),
            order: "fixed".into(),
            layout: "partitioned".into(),
            queries: 1000,
            qps: Some(10.0),
            backends_up: 1,
            backends: vec![ts1, ts2],
            children: Some(vec![
                ChildHealth {
                    name: "ts1".into(),
                    pid: Some(4242),
                    state: ChildState::Running,
                    restarts: 0,
                },
                ChildHealth {
                    name: "ts2".into(),
                    pid: None,
                    state: ChildState::Restarting,
                    restarts: 2,
                },
            ]),
        };
        let text = render(&r, "127.0.0.1:5390".parse().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "dnslb 0.1.0 (abc1234) at 127.0.0.1:5390: ok, serving, up 1h 2m"
        );
        assert!(lines[1].contains("strategy hedge, order fixed, layout partitioned"));
        assert!(lines[1].contains("10.0 qps; 1 of 2 backends up"));
        let row = |name: &str| -> Vec<&str> {
            lines
                .iter()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
                .split_whitespace()
                .collect()
        };
        assert_eq!(row("Backend"), COLUMNS);
        let ts1_rows: Vec<&&str> = lines.iter().filter(|l| l.contains(" ts1 ")).collect();
        assert_eq!(ts1_rows.len(), 2, "a backend row and a child row");
        assert_eq!(
            ts1_rows[0].split_whitespace().collect::<Vec<_>>(),
            [
                "0",
                "ts1",
                "127.0.0.1:5301",
                "up",
                "12.3",
                "850us",
                "12.3ms",
                "3",
                "1200",
                "800",
                "0",
                "0"
            ]
        );
        assert_eq!(
            row("a-long-backend-name"),
            [
                "1",
                "a-long-backend-name",
                "127.0.0.1:5302",
                "down",
                "-",
                "-",
                "-",
                "0",
                "0",
                "0",
                "4",
                "1"
            ]
        );
        assert_eq!(row("Name"), ["#", "Name", "PID", "State", "Restarts"]);
        assert!(lines.contains(&"Table servers under dnslb up:"));
        assert_eq!(
            ts1_rows[1].split_whitespace().collect::<Vec<_>>(),
            ["0", "ts1", "4242", "running", "0"]
        );
        assert_eq!(row("ts2"), ["1", "ts2", "-", "restarting", "2"]);
        // Columns line up: every backend row has its address where the header has it.
        let col = lines[3].find("Address").unwrap();
        assert_eq!(lines[4].find("127.0.0.1:5301"), Some(col));
        assert_eq!(lines[5].find("127.0.0.1:5302"), Some(col));
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn latency_units() {
        assert_eq!(latency(None), "-");
        assert_eq!(latency(Some(850)), "850us");
        assert_eq!(latency(Some(1_000)), "1ms");
        assert_eq!(latency(Some(12_345)), "12.3ms");
        assert_eq!(latency(Some(1_250_000)), "1.25s");
        assert_eq!(uptime(59.9), "59s");
        assert_eq!(uptime(90_000.0), "1d 1h");
    }

    #[tokio::test]
    async fn unreachable_is_a_connect_error() {
        // A port just closed: nothing listens there.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let err = fetch(addr, FETCH_TIMEOUT).await.unwrap_err();
        assert!(matches!(err, StatusError::Connect { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("cannot reach the LS at {addr}"));
    }

    #[test]
    fn endpoints_table_shows_each_endpoint_and_each_ts_not_asked() {
        use crate::metrics::TsEndpoint;
        let ep = |endpoint: &str, up: bool, since_unix: u64| TsEndpoint {
            service: "app.example.test.".into(),
            endpoint: endpoint.into(),
            check: "http".into(),
            up,
            since_unix,
        };
        let a = SocketAddr::from(([127, 0, 0, 1], 5359));
        let tss = vec![
            (
                "ts1".to_owned(),
                a,
                Ok(TsHealthReport {
                    endpoints: vec![ep("192.0.2.1", true, 1_000), ep("192.0.2.2", false, 1_065)],
                }),
            ),
            ("ts2".to_owned(), a, Ok(TsHealthReport::default())),
            ("ts3".to_owned(), a, Err("cannot reach".to_owned())),
        ];
        let text = render_endpoints(&tss, 1_070);
        assert_eq!(
            text,
            "\nEndpoints of services:\n\
             TS   Service            Endpoint   Check  State  Since\n\
             ts1  app.example.test.  192.0.2.1  http   up     1m 10s ago\n\
             ts1  app.example.test.  192.0.2.2  http   DOWN   5s ago\n\
             \nTS ts3 at 127.0.0.1:5359: not asked: cannot reach\n"
        );
        // A TS without services adds nothing.
        assert_eq!(render_endpoints(&tss[1..2], 0), "");
    }

    #[test]
    fn a_large_endpoints_table_lists_the_down_ones_and_a_summary() {
        use crate::metrics::TsEndpoint;
        let endpoints = (0..LIST_ALL_UP_TO + 1)
            .map(|i| TsEndpoint {
                service: format!("s{}.example.test.", i / 4),
                endpoint: format!("10.0.{}.{}", i / 250, i % 250),
                check: "tcp".into(),
                up: i != 7,
                since_unix: 0,
            })
            .collect();
        let a = SocketAddr::from(([127, 0, 0, 1], 5359));
        let tss = vec![("big".to_owned(), a, Ok(TsHealthReport { endpoints }))];
        let text = render_endpoints(&tss, 5);
        assert_eq!(
            text,
            "\nEndpoints of services:\n\
             TS   Service           Endpoint  Check  State  Since\n\
             big  s1.example.test.  10.0.0.7  tcp    DOWN   5s ago\n\
             \nTS big: 51 services, 201 endpoints, 1 DOWN (over 200 endpoints: only the \
             DOWN ones listed; its /health has every one)\n"
        );
    }

    #[test]
    fn a_large_endpoints_table_counts_each_service_once_in_any_order() {
        use crate::metrics::TsEndpoint;
        // Two services, their endpoints interleaved.
        let endpoints = (0..LIST_ALL_UP_TO + 2)
            .map(|i| TsEndpoint {
                service: format!("s{}.example.test.", i % 2),
                endpoint: format!("10.0.{}.{}", i / 250, i % 250),
                check: "tcp".into(),
                up: true,
                since_unix: 0,
            })
            .collect();
        let a = SocketAddr::from(([127, 0, 0, 1], 5359));
        let tss = vec![("big".to_owned(), a, Ok(TsHealthReport { endpoints }))];
        let text = render_endpoints(&tss, 5);
        assert!(
            text.contains("TS big: 2 services, 202 endpoints, 0 DOWN"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_ts_health_over_the_ls_cap_is_read_as_a_ts_report() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Endpoints whose report is over the LS's cap, under the TS's.
        let one = r#"{"service":"s.example.test.","endpoint":"192.0.2.1","check":"tcp","up":false,"since_unix":0}"#;
        let n = MAX_BODY / one.len() + 1;
        let body = format!("{{\"endpoints\":[{}]}}", vec![one; n].join(","));
        assert!(body.len() > MAX_BODY && body.len() < MAX_TS_BODY);
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // The request read first: unread, its close would reset the answer.
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if s.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                request.push(byte[0]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body.as_bytes()).await.unwrap();
            let _ = s.read_to_end(&mut request).await;
        });
        let text = show(addr).await.unwrap();
        assert!(
            text.contains(&format!("1 services, {n} endpoints, {n} DOWN")),
            "{}",
            &text[text.len().saturating_sub(300)..]
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_too_large() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let body = "x".repeat(100);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{body}");
            let _ = s.write_all(head.as_bytes()).await;
        });
        let err = exchange_capped(addr, Method::GET, TS_HEALTH_PATH, &[], 10)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StatusError::TooLarge { limit: 10, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("too large"), "{err}");
        server.await.unwrap();
    }
}

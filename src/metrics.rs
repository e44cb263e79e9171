//! The LS's metrics over HTTP: Prometheus `/metrics` and a status page at `/`.
//!
//! [`render_prometheus`] writes the text exposition format (0.0.4) straight
//! from the balancer's atomics; it is pure. [`serve`] runs the HTTP server
//! (axum) and a sampler task that keeps one sample per second for five
//! minutes, from which the status page draws its rates, windowed
//! percentiles and chart. Memory is bounded: the history is a ring of
//! [`HISTORY_SECS`] samples, connections are capped and time out when idle.
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{MissedTickBehavior, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ls::backend::Backend;
use crate::ls::latency::{BUCKETS_US, LatencySnapshot};
use crate::ls::{Balancer, LsMetrics};

/// Seconds of 1-second samples kept for the chart.
pub const HISTORY_SECS: usize = 300;
/// Window of the page's rates and percentiles.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Most HTTP connections open at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;
/// A connection with no byte read or written for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`serve`] waits for open requests after cancellation.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Content type of the Prometheus text format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The supervisor's view of its TS children: (name, pid, restarts).
pub type ChildrenFn = dyn Fn() -> Vec<(String, Option<u32>, u64)> + Send + Sync;

/// What the status page shows beyond the balancer.
#[derive(Clone, Default)]
pub struct StatusExtra {
    /// TS children of `dnslb up` as (name, pid or `None` while restarting,
    /// restarts); shown on the page when `Some`.
    pub supervisor: Option<Arc<ChildrenFn>>,
}

impl std::fmt::Debug for StatusExtra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusExtra")
            .field("supervisor", &self.supervisor.is_some())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------

/// The name of rcode `i` as the `rcode` label shows it.
fn rcode_name(i: usize) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    NAMES
        .get(i)
        .map_or_else(|| format!("RCODE{i}"), |s| (*s).to_owned())
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Microseconds as seconds, in the shortest form that reads back exactly.
fn seconds(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// One exposition being written. Writing to a `String` cannot fail, so the
/// `fmt::Result`s below are ignored.
struct Expo(String);

impl Expo {
    /// `# HELP` and `# TYPE` of a family (help text needs no escaping: ours
    /// are constants without backslash or newline).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled counter.
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series (the family header is written by
    /// the caller). `_count` is the sum of the buckets, so `+Inf` equals it
    /// even when the snapshot raced a recording.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], s: &LatencySnapshot) {
        let bucket = format!("{name}_bucket");
        let les: Vec<String> = BUCKETS_US.iter().map(|&b| seconds(b)).collect();
        let mut cumulative = 0u64;
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        for (i, le) in les.iter().enumerate() {
            cumulative += s.counts.get(i).copied().unwrap_or(0);
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, cumulative);
            with_le.pop();
        }
        cumulative += s
            .counts
            .get(BUCKETS_US.len()..)
            .unwrap_or_default()
            .iter()
            .sum::<u64>();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cumulative);
        self.sample(&format!("{name}_sum"), labels, seconds(s.sum_us));
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// The balancer's metrics in the Prometheus text exposition format 0.0.4.
pub fn render_prometheus(balancer: &Balancer) -> String {
    let state = balancer.state();
    write_prometheus(balancer.metrics(), &state.backends)
}

/// [`render_prometheus`] over the parts.
fn write_prometheus(m: &LsMetrics, backends: &[Arc<Backend>]) -> String {
    let mut e = Expo(String::with_capacity(4096 + backends.len() * 4096));
    e.counter(
        "dnslb_queries_total",
        "Client queries received (well-formed).",
        m.queries.load(Relaxed),
    );
    e.family(
        "dnslb_answers_total",
        "counter",
        "Answers sent to clients, by rcode.",
    );
    for (i, c) in m.answers.iter().enumerate() {
        let v = c.load(Relaxed);
        // The common rcodes always (so rates start from zero), others once seen.
        if i <= 5 || v > 0 {
            e.sample("dnslb_answers_total", &[("rcode", &rcode_name(i))], v);
        }
    }
    #[rustfmt::skip]
    let counters: [(&str, &str, &AtomicU64); 8] = [
        ("dnslb_synthesized_total", "Answers made up by the LS.", &m.synthesized),
        ("dnslb_hedges_total", "Hedges sent after the hedge delay.", &m.hedges),
        ("dnslb_hedge_wins_total", "Hedges whose answer won.", &m.hedge_wins),
        ("dnslb_hedges_refused_total", "Hedges not sent: budget spent.", &m.hedges_refused),
        ("dnslb_refused_acl_total", "Client queries refused by the ACL.", &m.refused_acl),
        ("dnslb_rate_limited_total", "Client queries over the rate limit.", &m.rate_limited),
        ("dnslb_health_rounds_total", "Health probe rounds completed.", &m.health_rounds),
        (
            "dnslb_late_responses_total",
            "Upstream answers that came after their query was settled (not suspect).",
            &m.drops.late,
        ),
    ];
    for (name, help, c) in counters {
        e.counter(name, help, c.load(Relaxed));
    }
    e.family(
        "dnslb_dropped_responses_total",
        "counter",
        "Upstream responses dropped as not matching their query.",
    );
    for (reason, c) in [
        ("wrong_source", &m.drops.wrong_source),
        ("wrong_id", &m.drops.wrong_id),
        ("wrong_question", &m.drops.wrong_question),
    ] {
        e.sample(
            "dnslb_dropped_responses_total",
            &[("reason", reason)],
            c.load(Relaxed),
        );
    }
    e.family(
        "dnslb_client_latency_seconds",
        "histogram",
        "Time from a client query's arrival to its answer.",
    );
    e.histogram(
        "dnslb_client_latency_seconds",
        &[],
        &m.client_latency.snapshot(),
    );

    let addrs: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    let labels = |i: usize| -> [(&str, &str); 2] {
        let name = backends.get(i).map_or("", |b| b.name.as_str());
        let addr = addrs.get(i).map_or("", String::as_str);
        [("backend", name), ("addr", addr)]
    };
    type Read = fn(&Backend) -> u64;
    #[rustfmt::skip]
    let families: [(&str, &str, &str, Read); 7] = [
        ("dnslb_backend_sent_total", "counter", "Upstream queries sent.",
            |b| b.stats.sent.load(Relaxed)),
        ("dnslb_backend_answered_total", "counter", "Valid upstream responses received.",
            |b| b.stats.answered.load(Relaxed)),
        ("dnslb_backend_wins_total", "counter", "Upstream responses that became the answer.",
            |b| b.stats.wins.load(Relaxed)),
        ("dnslb_backend_timeouts_total", "counter", "Client deadlines hit while it was asked.",
            |b| b.stats.timeouts.load(Relaxed)),
        ("dnslb_backend_errors_total", "counter", "Upstream responses with an error rcode.",
            |b| b.stats.errors.load(Relaxed)),
        ("dnslb_backend_outstanding", "gauge", "Upstream queries in flight.",
            |b| u64::from(b.stats.outstanding.load(Relaxed))),
        ("dnslb_backend_up", "gauge", "1 when health checks find the backend usable, else 0.",
            |b| u64::from(b.is_up())),
    ];
    for (name, kind, help, read) in families {
        e.family(name, kind, help);
        for (i, b) in backends.iter().enumerate() {
            e.sample(name, &labels(i), read(b));
        }
    }
    let ewma = "dnslb_backend_latency_ewma_seconds";
    e.family(
        ewma,
        "gauge",
        "Moving average of upstream response latency (0 = no sample yet).",
    );
    for (i, b) in backends.iter().enumerate() {
        e.sample(ewma, &labels(i), seconds(b.stats.latency_us.load(Relaxed)));
    }
    e.family(
        "dnslb_backend_latency_seconds",
        "histogram",
        "Upstream response latency.",
    );
    for (i, b) in backends.iter().enumerate() {
        e.histogram(
            "dnslb_backend_latency_seconds",
            &labels(i),
            &b.stats.latency.snapshot(),
        );
    }
    e.0
}

// ---------------------------------------------------------------------------
// History: one sample per second
// ---------------------------------------------------------------------------

/// The LS as a whole at one second.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    queries: u64,
    latency: LatencySnapshot,
}

/// One backend's latency at one second, keyed by name and address (a
/// reload may add, drop or reorder backends).
#[derive(Debug, Clone)]
struct BackendSample {
    name: String,
    addr: SocketAddr,
    latency: LatencySnapshot,
}

/// Bounded rings of samples: [`HISTORY_SECS`] of totals, and the last
/// [`RATE_WINDOW`] of per-backend latency.
#[derive(Debug, Default)]
struct History {
    samples: VecDeque<Sample>,
    backends: VecDeque<(Instant, Vec<BackendSample>)>,
}

impl History {
    /// Takes one sample of `balancer` now, dropping the oldest beyond the bounds.
    fn record(&mut self, balancer: &Balancer, at: Instant) {
        let m = balancer.metrics();
        if self.samples.len() > HISTORY_SECS {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at,
            queries: m.queries.load(Relaxed),
            latency: m.client_latency.snapshot(),
        });
        let state = balancer.state();
        let per = state
            .backends
            .iter()
            .map(|b| BackendSample {
                name: b.name.clone(),
                addr: b.addr,
                latency: b.stats.latency.snapshot(),
            })
            .collect();
        if self.backends.len() > RATE_WINDOW.as_secs() as usize {
            self.backends.pop_front();
        }
        self.backends.push_back((at, per));
    }

    /// The newest sample at least [`RATE_WINDOW`] old, else the oldest.
    fn window_base(&self, now: Instant) -> Option<&Sample> {
        self.samples
            .iter()
            .rev()
            .find(|s| now.duration_since(s.at) >= RATE_WINDOW)
            .or_else(|| self.samples.front())
    }

    /// `b`'s latency snapshot at the start of the window, if it was there.
    fn backend_base(&self, b: &Backend) -> Option<&LatencySnapshot> {
        let (_, per) = self.backends.front()?;
        per.iter()
            .find(|s| s.name == b.name && s.addr == b.addr)
            .map(|s| &s.latency)
    }
}

/// State shared by the HTTP handlers and the sampler.
struct Shared {
    balancer: Arc<Balancer>,
    extra: StatusExtra,
    started: Instant,
    history: Mutex<History>,
}

impl Shared {
    /// The history, even if a panicking holder poisoned the lock (it only
    /// ever holds plain samples).
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Samples once a second until `token` is cancelled.
async fn sampler(shared: Arc<Shared>, token: CancellationToken) {
    // `serve` took the first sample; the next is due in a second.
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => shared.history().record(&shared.balancer, Instant::now()),
        }
    }
}

// ---------------------------------------------------------------------------
// Status page
// ---------------------------------------------------------------------------

/// Escapes text for HTML content and attribute values.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A latency for people: µs, ms or s with about three significant digits.
fn human(d: Option<Duration>) -> String {
    let Some(d) = d else { return "—".to_owned() };
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{} ms", sig3(us as f64 / 1e3))
    } else {
        format!("{} s", sig3(d.as_secs_f64()))
    }
}

/// `v` (≥ 1) with three significant digits, trailing zeros removed.
fn sig3(v: f64) -> String {
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// An uptime as `1d 2h`, `3h 4m`, `5m 6s` or `7s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, sec) => format!("{m}m {sec}s"),
        (0, h, m, _) => format!("{h}h {m}m"),
        (d, h, _, _) => format!("{d}d {h}h"),
    }
}

const CSS: &str = "\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328;background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:24px 0 8px}
.sub{color:#59636e}.sub b{color:#1f2328;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.card{background:#fff;border:1px solid #d1d9e0;border-radius:6px;padding:8px 14px;min-width:110px}
.card .k{color:#59636e;font-size:12px}.card .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;background:#fff;border:1px solid #d1d9e0;border-radius:6px}
th,td{padding:5px 10px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
th{background:#f6f8fa;font-weight:600;font-size:12px;color:#59636e}
td.l,th.l{text-align:left}tr:last-child td{border-bottom:0}
.pill{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600}
.up{background:#dafbe1;color:#1a7f37}.down{background:#ffebe9;color:#cf222e}
.bar{display:inline-block;height:8px;background:#54aeff;border-radius:2px;vertical-align:middle;margin-right:6px}
.warn{color:#bc4c00;font-weight:600}
svg{background:#fff;border:1px solid #d1d9e0;border-radius:6px}
.legend{font-size:12px;color:#59636e}.legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 12px}
footer{margin-top:24px;color:#59636e;font-size:12px}a{color:#0969da}
";

/// Width and height of the chart, in px.
const CHART_W: f64 = 720.0;
const CHART_H: f64 = 150.0;

/// The status page.
fn render_status(shared: &Shared, now: Instant) -> String {
    let b = &shared.balancer;
    let state = b.state();
    let m = b.metrics();
    let p = &state.policy;
    let queries = m.queries.load(Relaxed);
    let latency = m.client_latency.snapshot();
    let history = shared.history();

    // Rates and percentiles over the last ~10 s.
    let (qps, window) = match history.window_base(now) {
        Some(base) if now.duration_since(base.at) >= Duration::from_millis(500) => {
            let secs = now.duration_since(base.at).as_secs_f64();
            let q = queries.saturating_sub(base.queries) as f64 / secs;
            (Some(q), Some(latency.since(&base.latency)))
        }
        _ => (None, None),
    };
    let q50 = window.as_ref().and_then(|w| w.quantile(0.5));
    let q99 = window.as_ref().and_then(|w| w.quantile(0.99));

    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=refresh content=2><title>dnslb status</title>\
         <style>{CSS}</style></head><body><h1>dnslb</h1><div class=sub>\
         strategy <b>{}</b> · order <b>{}</b> · layout <b>{}</b> · timeout <b>{} ms</b> · \
         on timeout <b>{}</b> · hedge delay <b>{}</b> · up <b>{}</b></div>",
        p.strategy,
        p.order,
        p.layout,
        p.timeout.as_millis(),
        p.on_timeout,
        p.hedge_delay,
        uptime(now.duration_since(shared.started)),
    );

    let drops = m.drops.total();
    let cards: [(&str, String); 10] = [
        ("queries", queries.to_string()),
        ("qps (10 s)", qps.map_or("—".into(), |q| format!("{q:.1}"))),
        ("p50 (10 s)", human(q50)),
        ("p99 (10 s)", human(q99)),
        ("synthesized", m.synthesized.load(Relaxed).to_string()),
        (
            "hedges sent / won / refused",
            format!(
                "{} / {} / {}",
                m.hedges.load(Relaxed),
                m.hedge_wins.load(Relaxed),
                m.hedges_refused.load(Relaxed)
            ),
        ),
        ("dropped responses", drops.to_string()),
        ("refused (ACL)", m.refused_acl.load(Relaxed).to_string()),
        ("rate limited", m.rate_limited.load(Relaxed).to_string()),
        (
            "NOERROR / NXDOMAIN / SERVFAIL",
            [0usize, 3, 2]
                .iter()
                .map(|&i| m.answers.get(i).map_or(0, |c| c.load(Relaxed)).to_string())
                .collect::<Vec<_>>()
                .join(" / "),
        ),
    ];
    o.push_str("<div class=cards>");
    for (k, v) in cards {
        let _ = write!(
            o,
            "<div class=card><div class=k>{}</div><div class=v>{}</div></div>",
            html(k),
            html(&v)
        );
    }
    o.push_str("</div>");

    o.push_str("<h2>Last 5 minutes</h2>");
    chart(&mut o, &history, now);

    o.push_str(
        "<h2>Backends</h2><table><tr><th class=l>name</th><th class=l>addr</th>\
         <th class=l>health</th><th>outstanding</th><th>sent</th><th>answered</th>\
         <th>wins</th><th class=l>win share</th><th>timeouts</th><th>errors</th>\
         <th>latency (EWMA)</th><th>p50 (10 s)</th><th>p99 (10 s)</th></tr>",
    );
    let total_wins: u64 = state
        .backends
        .iter()
        .map(|b| b.stats.wins.load(Relaxed))
        .sum();
    for be in &state.backends {
        let s = &be.stats;
        let wins = s.wins.load(Relaxed);
        let share = if total_wins == 0 {
            0.0
        } else {
            100.0 * wins as f64 / total_wins as f64
        };
        let ewma = s.latency_us.load(Relaxed);
        let now_lat = s.latency.snapshot();
        let win = history
            .backend_base(be)
            .map_or_else(|| now_lat.clone(), |base| now_lat.since(base));
        let (health, class) = if be.is_up() {
            ("up", "up")
        } else {
            ("down", "down")
        };
        let (timeouts, errors) = (s.timeouts.load(Relaxed), s.errors.load(Relaxed));
        let flag = |v: u64| {
            if v > 0 {
                format!("<span class=warn>{v}</span>")
            } else {
                "0".to_owned()
            }
        };
        let _ = write!(
            o,
            "<tr><td class=l><b>{}</b></td><td class=l>{}</td>\
             <td class=l><span class=\"pill {class}\">{health}</span></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{wins}</td>\
             <td class=l><span class=bar style=\"width:{:.0}px\"></span>{share:.1}%</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&be.name),
            be.addr,
            s.outstanding.load(Relaxed),
            s.sent.load(Relaxed),
            s.answered.load(Relaxed),
            share * 0.6,
            flag(timeouts),
            flag(errors),
            human((ewma > 0).then(|| Duration::from_micros(ewma))),
            human(win.quantile(0.5)),
            human(win.quantile(0.99)),
        );
    }
    o.push_str("</table>");

    if let Some(children) = &shared.extra.supervisor {
        o.push_str(
            "<h2>Table servers</h2><table><tr><th class=l>name</th><th class=l>state</th>\
             <th>pid</th><th>restarts</th></tr>",
        );
        for (name, pid, restarts) in children() {
            let (state, class, pid) = match pid {
                Some(pid) => ("running", "up", pid.to_string()),
                None => ("restarting", "down", "—".to_owned()),
            };
            let restarts = if restarts > 0 {
                format!("<span class=warn>{restarts}</span>")
            } else {
                "0".to_owned()
            };
            let _ = write!(
                o,
                "<tr><td class=l><b>{}</b></td><td class=l><span class=\"pill {class}\">{state}\
                 </span></td><td>{pid}</td><td>{restarts}</td></tr>",
                html(&name)
            );
        }
        o.push_str("</table>");
    }
    o.push_str(
        "<footer>Refreshes every 2 s · <a href=\"/metrics\">/metrics</a> (Prometheus)</footer>\
         </body></html>",
    );
    o
}

/// Writes the SVG chart of qps (area, left scale) and p99 (line, right
/// scale) per second over the last [`HISTORY_SECS`].
fn chart(o: &mut String, history: &History, now: Instant) {
    let span = HISTORY_SECS as f64;
    // (age in s, qps, p99 in ms) per consecutive pair of samples.
    let points: Vec<(f64, f64, Option<f64>)> = history
        .samples
        .iter()
        .zip(history.samples.iter().skip(1))
        .filter_map(|(a, b)| {
            let dt = b.at.duration_since(a.at).as_secs_f64();
            // A pair closer than half a second would make a spike of noise.
            (dt >= 0.5).then(|| {
                let qps = b.queries.saturating_sub(a.queries) as f64 / dt;
                let p99 = b.latency.since(&a.latency).quantile(0.99);
                let age = now.duration_since(b.at).as_secs_f64();
                (age, qps, p99.map(|d| d.as_secs_f64() * 1e3))
            })
        })
        .filter(|(age, _, _)| *age <= span)
        .collect();
    let max_q = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let max_l = nice_max(points.iter().filter_map(|p| p.2).fold(0.0, f64::max));
    let (left, right, top, bottom) = (48.0, 60.0, 10.0, 22.0);
    let (w, h) = (CHART_W - left - right, CHART_H - top - bottom);
    let x = |age: f64| left + w * (1.0 - age / span);
    let yq = |v: f64| top + h * (1.0 - v / max_q);
    let yl = |v: f64| top + h * (1.0 - v / max_l);

    let _ = write!(
        o,
        "<svg width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         font-size=\"11\" fill=\"#59636e\" role=\"img\" aria-label=\"qps and p99 over the last 5 minutes\">"
    );
    for frac in [0.0, 0.5, 1.0] {
        let y = top + h * (1.0 - frac);
        let _ = write!(
            o,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eaeef2\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            left + w,
            left - 6.0,
            y + 4.0,
            short(max_q * frac),
            left + w + 6.0,
            y + 4.0,
            format_args!("{} ms", short(max_l * frac)),
        );
    }
    for (age, label) in [(span, "−5 min"), (span / 2.0, "−2.5 min"), (0.0, "now")] {
        let anchor = match label {
            "now" => "end",
            "−5 min" => "start",
            _ => "middle",
        };
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
            x(age),
            CHART_H - 6.0
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let mut qline = String::new();
        for p in &points {
            let cmd = if qline.is_empty() { 'M' } else { 'L' };
            let _ = write!(qline, "{cmd}{:.1},{:.1} ", x(p.0), yq(p.1));
        }
        // The area under the qps line, then the line itself on top.
        let _ = write!(
            o,
            "<path d=\"M{:.1},{:.1} {} L{:.1},{:.1} Z\" fill=\"#ddf4ff\"/>\
             <path d=\"{qline}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\"/>",
            x(first.0),
            yq(0.0),
            qline.replacen('M', "L", 1),
            x(last.0),
            yq(0.0),
        );
        let mut line = String::new();
        for p in &points {
            if let Some(l) = p.2 {
                let cmd = if line.is_empty() { 'M' } else { 'L' };
                let _ = write!(line, "{cmd}{:.1},{:.1} ", x(p.0), yl(l));
            }
        }
        if !line.is_empty() {
            let _ = write!(
                o,
                "<path d=\"{line}\" fill=\"none\" stroke=\"#bc4c00\" stroke-width=\"1.5\"/>"
            );
        }
    } else {
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">collecting samples…</text>",
            left + w / 2.0,
            top + h / 2.0
        );
    }
    o.push_str(
        "</svg><div class=legend><i style=\"background:#0969da\"></i>queries/s (left)\
         <i style=\"background:#bc4c00\"></i>client p99 latency (right)</div>",
    );
}

/// A round upper bound for an axis (1, 2 or 5 × 10ⁿ), at least 1.
fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 1.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * base)
}

/// An axis label: integers as such, fractions with one decimal.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    let body = render_status(&shared, Instant::now());
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render_prometheus(&shared.balancer),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Serves `/metrics` and `/` on `listener` until `token` is cancelled, then
/// gives open requests two seconds to finish and returns once the
/// sampler has stopped too.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    extra: StatusExtra,
    token: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    let mut history = History::default();
    history.record(&balancer, Instant::now());
    let shared = Arc::new(Shared {
        balancer,
        extra,
        started: Instant::now(),
        history: Mutex::new(history),
    });
    let sampler = tokio::spawn(sampler(shared.clone(), token.clone()));
    let app = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .with_state(shared);
    let listener = Capped {
        inner: listener,
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    debug!(?addr, "metrics server ready");
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = token.cancelled() => match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(r) => r,
            Err(_) => {
                debug!("metrics: open connections cut at shutdown");
                Ok(())
            }
        },
    };
    if let Err(err) = result {
        warn!(%err, "metrics server stopped");
    }
    // The sampler only ends on cancel; an early stop of the server cancels it.
    token.cancel();
    let _ = sampler.await;
}

/// A listener that holds at most [`MAX_CONNECTIONS`] open connections:
/// past that it closes new ones at once rather than queue them.
struct Capped {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl axum::serve::Listener for Capped {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            // axum's TcpListener impl retries transient accept errors itself.
            let (io, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
                    return (
                        Conn {
                            io,
                            idle,
                            _permit: permit,
                        },
                        peer,
                    );
                }
                Err(_) => debug!(%peer, "metrics: connection cap reached; closed"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One HTTP connection: holds its slot, and fails with `TimedOut` after
/// [`IDLE_TIMEOUT`] without progress either way.
struct Conn {
    io: TcpStream,
    idle: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Progress was made: push the idle deadline back.
    fn touch(&mut self) {
        self.idle
            .as_mut()
            .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    }

    /// `Pending` from the socket becomes `TimedOut` once the deadline passed.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.touch();
                Poll::Ready(r)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, LsConfig};

    fn balancer(backends: &[(&str, &str)]) -> Balancer {
        let cfg = LsConfig {
            backend: backends
                .iter()
                .map(|(name, addr)| BackendConfig {
                    name: (*name).to_owned(),
                    addr: addr.parse().unwrap(),
                    weight: 1,
                })
                .collect(),
            ..LsConfig::default()
        };
        Balancer::new(&cfg)
    }

    #[test]
    fn counters_gauges_and_labels() {
        let b = balancer(&[("ts1", "127.0.0.1:5301"), ("ts2", "127.0.0.1:5302")]);
        let m = b.metrics();
        m.queries.fetch_add(7, Relaxed);
        m.answers[0].fetch_add(5, Relaxed);
        m.answers[3].fetch_add(2, Relaxed);
        m.answers[9].fetch_add(1, Relaxed);
        m.drops.wrong_id.fetch_add(4, Relaxed);
        let s = b.state();
        s.backends[0].stats.wins.fetch_add(3, Relaxed);
        s.backends[1].stats.outstanding.fetch_add(2, Relaxed);
        s.backends[1].set_up(false);
        let text = render_prometheus(&b);
        for line in [
            "# HELP dnslb_queries_total Client queries received (well-formed).",
            "# TYPE dnslb_queries_total counter",
            "dnslb_queries_total 7",
            "# TYPE dnslb_answers_total counter",
            "dnslb_answers_total{rcode=\"NOERROR\"} 5",
            "dnslb_answers_total{rcode=\"NXDOMAIN\"} 2",
            "dnslb_answers_total{rcode=\"REFUSED\"} 0",
            "dnslb_answers_total{rcode=\"NOTAUTH\"} 1",
            "dnslb_dropped_responses_total{reason=\"wrong_id\"} 4",
            "dnslb_dropped_responses_total{reason=\"wrong_source\"} 0",
            "dnslb_backend_wins_total{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 3",
            "dnslb_backend_wins_total{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 0",
            "# TYPE dnslb_backend_outstanding gauge",
            "dnslb_backend_outstanding{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 2",
            "dnslb_backend_up{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 1",
            "dnslb_backend_up{backend=\"ts2\",addr=\"127.0.0.1:5302\"} 0",
            "# TYPE dnslb_backend_latency_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Unseen uncommon rcodes are left out; the text ends with a newline.
        assert!(!text.contains("YXDOMAIN"));
        assert!(text.ends_with('\n'));
        // Every family has exactly one HELP and TYPE, before its samples.
        let mut seen = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(l.split(' ').nth(2).unwrap()), "dup {l}");
        }
    }

    #[test]
    fn histogram_is_cumulative_in_seconds() {
        let b = balancer(&[("ts1", "127.0.0.1:5301")]);
        let h = &b.metrics().client_latency;
        h.record(Duration::from_micros(40));
        h.record(Duration::from_micros(700));
        h.record(Duration::from_secs(9));
        let text = render_prometheus(&b);
        for line in [
            "dnslb_client_latency_seconds_bucket{le=\"0.00005\"} 1",
            "dnslb_client_latency_seconds_bucket{le=\"0.0005\"} 1",
            "dnslb_client_latency_seconds_bucket{le=\"0.001\"} 2",
            "dnslb_client_latency_seconds_bucket{le=\"2.5\"} 2",
            "dnslb_client_latency_seconds_bucket{le=\"5\"} 2",
            "dnslb_client_latency_seconds_bucket{le=\"+Inf\"} 3",
            "dnslb_client_latency_seconds_sum 9.00074",
            "dnslb_client_latency_seconds_count 3",
            "dnslb_backend_latency_seconds_bucket{backend=\"ts1\",addr=\"127.0.0.1:5301\",le=\"+Inf\"} 0",
            "dnslb_backend_latency_seconds_count{backend=\"ts1\",addr=\"127.0.0.1:5301\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("dnslb_client_latency_seconds_bucket"))
            .count();
        assert_eq!(buckets, BUCKETS_US.len() + 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("ts-1.é"), "ts-1.é");
        let b = balancer(&[("we\"ird\\na\nme", "[::1]:53")]);
        let text = render_prometheus(&b);
        assert!(
            text.contains(
                r#"dnslb_backend_sent_total{backend="we\"ird\\na\nme",addr="[::1]:53"} 0"#
            ),
            "{text}"
        );
    }

    #[test]
    fn status_page_shows_backends_and_children() {
        let b = Arc::new(balancer(&[
            ("ts1", "127.0.0.1:5301"),
            ("<b>", "127.0.0.1:5302"),
        ]));
        b.state().backends[1].set_up(false);
        let t0 = Instant::now();
        let mut history = History::default();
        history.record(&b, t0);
        b.metrics().queries.fetch_add(20, Relaxed);
        b.metrics().client_latency.record(Duration::from_millis(3));
        history.record(&b, t0 + Duration::from_secs(1));
        let children: Arc<ChildrenFn> =
            Arc::new(|| vec![("ts1".to_owned(), Some(42), 0), ("ts2".to_owned(), None, 3)]);
        let shared = Shared {
            balancer: b,
            extra: StatusExtra {
                supervisor: Some(children),
            },
            started: t0,
            history: Mutex::new(history),
        };
        let page = render_status(&shared, t0 + Duration::from_secs(2));
        assert!(page.contains("<b>ts1</b>"));
        assert!(page.contains("&lt;b&gt;") && !page.contains("<b><b></b>"));
        assert!(page.contains("pill up\">up<") && page.contains("pill down\">down<"));
        assert!(page.contains("10.0"), "20 queries over 2 s"); // qps card
        assert!(page.contains("restarting") && page.contains(">42<"));
        assert!(page.contains("<svg") && page.contains("<path"));
    }

    #[test]
    fn history_is_bounded() {
        let b = balancer(&[("ts1", "127.0.0.1:5301")]);
        let mut h = History::default();
        let t0 = Instant::now();
        for i in 0..1000 {
            h.record(&b, t0 + Duration::from_secs(i));
        }
        assert_eq!(h.samples.len(), HISTORY_SECS + 1);
        assert_eq!(h.backends.len(), RATE_WINDOW.as_secs() as usize + 1);
        let now = t0 + Duration::from_secs(999);
        let base = h.window_base(now).unwrap();
        assert_eq!(now.duration_since(base.at), RATE_WINDOW);
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(1000.0), 1000.0);
        assert_eq!(human(Some(Duration::from_micros(850))), "850 µs");
        assert_eq!(human(Some(Duration::from_micros(12_300))), "12.3 ms");
        assert_eq!(human(Some(Duration::from_millis(1250))), "1.25 s");
        assert_eq!(human(None), "—");
        assert_eq!(uptime(Duration::from_secs(3725)), "1h 2m");
    }
}

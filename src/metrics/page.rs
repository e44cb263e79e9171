//! The HTML status page at `/`: cards, a chart of the last five minutes (inline SVG), the
//! backends, the pools and the supervised table servers.
//!
//! The page updates itself in place: a small inline script fetches `/` every two seconds
//! and swaps the new body in, so the view stays current without a reload (no flash, the
//! scroll position kept). Without JavaScript a `<noscript>` meta refresh reloads it
//! instead. It loads nothing else: no external assets, and an empty inline favicon so
//! the browser does not ask for `/favicon.ico`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::escape::html;
use super::history::{History, rate};
use super::{HISTORY_SECS, Shared};
use crate::ls::cache::CacheStats;

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

/// `v` (≥ 1) with three significant digits, trailing zeros removed (also
/// `dnslb status`'s figures).
pub(crate) fn sig3(v: f64) -> String {
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
.drain{background:#fff8c5;color:#9a6700}
.bar{display:inline-block;height:8px;background:#54aeff;border-radius:2px;vertical-align:middle;margin-right:6px}
.warn{color:#bc4c00;font-weight:600}
svg{background:#fff;border:1px solid #d1d9e0;border-radius:6px}
.legend{font-size:12px;color:#59636e}.legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 12px}
footer{margin-top:24px;color:#59636e;font-size:12px}a{color:#0969da}
.stale .cards,.stale table,.stale svg{opacity:.5}
.stale footer::after{content:' · cannot reach the LS: figures are stale';color:#cf222e;font-weight:600}
";

/// Every [`REFRESH_MS`], fetch this page and swap its body in; while the
/// fetch fails, keep the last figures and mark them stale (the `stale` class
/// on `<html>`). Skipped while the tab is hidden, and never two at once.
const SCRIPT: &str = "\
(()=>{let busy=false;const root=document.documentElement;
setInterval(async()=>{if(busy||document.hidden)return;busy=true;
try{const r=await fetch(location.href,{cache:'no-store'});
if(!r.ok)throw new Error('HTTP '+r.status);
const d=new DOMParser().parseFromString(await r.text(),'text/html');
document.body.replaceWith(document.adoptNode(d.body));root.classList.remove('stale');}
catch(e){root.classList.add('stale');}finally{busy=false;}},REFRESH_MS);})();
";

/// How often the page updates itself, in ms.
const REFRESH_MS: u32 = 2000;

/// Width and height of the chart, in px.
const CHART_W: f64 = 720.0;
const CHART_H: f64 = 150.0;

/// The status page.
pub(super) fn render_status(shared: &Shared, now: Instant) -> String {
    let b = &shared.balancer;
    let state = b.state();
    let m = b.metrics();
    let p = &state.policy;
    let queries = m.queries.load(Relaxed);
    let latency = m.client_latency.snapshot();
    let history = shared.history();

    // Rates and percentiles over the last ~10 s.
    let (qps, window) = match history.window_base(now) {
        Some(base) => match rate(queries, base.queries, now.duration_since(base.at)) {
            Some(q) => (Some(q), Some(latency.since(&base.latency))),
            None => (None, None),
        },
        None => (None, None),
    };
    let q50 = window.as_ref().and_then(|w| w.quantile(0.5));
    let q99 = window.as_ref().and_then(|w| w.quantile(0.99));

    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <noscript><meta http-equiv=refresh content={}></noscript>\
         <link rel=icon href=\"data:,\"><title>dnslb status</title>\
         <style>{CSS}</style><script>{}</script></head><body><h1>dnslb</h1><div class=sub>\
         strategy <b>{}</b> · order <b>{}</b> · layout <b>{}</b> · timeout <b>{} ms</b> · \
         on timeout <b>{}</b> · hedge delay <b>{}</b> · up <b>{}</b></div>",
        REFRESH_MS / 1000,
        SCRIPT.replace("REFRESH_MS", &REFRESH_MS.to_string()),
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
    let mut caches = state.caches().peekable();
    let cache = caches.peek().is_some().then(|| {
        let s = caches.fold(CacheStats::default(), |t, (_, c)| t.plus(&c.stats()));
        let v = format!("{} / {} / {} / {}", s.hits, s.misses, s.stale, s.entries);
        ("cache hits / misses / stale / entries", v)
    });
    o.push_str("<div class=cards>");
    for (k, v) in cards.into_iter().chain(cache) {
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
        "<h2>Backends</h2><table id=backends><tr><th class=l>name</th><th class=l>addr</th>\
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
            .map_or_else(|| now_lat.clone(), |(_, base)| now_lat.since(&base.latency));
        use crate::ls::backend::admin::AdminState;
        let (health, class) = match (be.admin.get(), be.is_up()) {
            // Amber, not the red of down: a drained backend is healthy.
            (AdminState::Drain, _) => ("drain (by hand)", "drain"),
            (AdminState::Down, _) => ("down (by hand)", "down"),
            (AdminState::Auto, true) => ("up", "up"),
            (AdminState::Auto, false) => ("down", "down"),
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
            "<tr data-backend=\"{}\"><td class=l><b>{}</b></td><td class=l>{}</td>\
             <td class=l><span class=\"pill {class}\">{health}</span></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{wins}</td>\
             <td class=l><span class=bar style=\"width:{:.0}px\"></span>{share:.1}%</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&be.name),
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
    pools(&mut o, &state.pools);
    blocks(
        &mut o,
        &shared.balancer.dynblocks().list(std::time::Instant::now()),
    );

    if let Some(children) = &shared.extra.supervisor {
        o.push_str(
            "<h2>Table servers</h2><table id=children><tr><th class=l>name</th><th class=l>state</th>\
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
                "<tr data-ts=\"{0}\"><td class=l><b>{0}</b></td><td class=l>\
                 <span class=\"pill {class}\">{state}</span></td><td>{pid}</td>\
                 <td>{restarts}</td></tr>",
                html(&name)
            );
        }
        o.push_str("</table>");
    }
    let _ = write!(
        o,
        "<footer>Updates every {} s · <a href=\"/metrics\">/metrics</a> (Prometheus) · \
         <a href=\"/health\">/health</a> (JSON) · <a href=\"/ready\">/ready</a></footer>\
         </body></html>",
        REFRESH_MS / 1000
    );
    o
}

/// Writes the table of the blocks in force (none when none is), at most 100.
fn blocks(o: &mut String, list: &[crate::ls::dynblock::BlockInfo]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<h2>Blocks in force ({})</h2><table id=blocks><tr><th class=l>client or name</th>\
         <th class=l>rule</th><th class=l>reason</th><th class=l>action</th>\
         <th>seconds left</th><th>queries blocked</th></tr>",
        list.len()
    );
    for b in list.iter().take(100) {
        let _ = write!(
            o,
            "<tr data-block=\"{0}\"><td class=l><b>{0}</b></td><td class=l>{1}</td>\
             <td class=l>{2}</td><td class=l>{3}</td><td>{4}</td><td>{5}</td></tr>",
            html(&b.target),
            html(&b.rule),
            html(&b.reason),
            html(&b.action),
            b.seconds_left,
            b.queries_blocked,
        );
    }
    o.push_str("</table>");
}

/// Writes the table of the pools (none without `[[ls.pool]]`): each one's
/// zones, backends (with their health), policy and counters.
fn pools(o: &mut String, pools: &[crate::ls::Route]) {
    if pools.is_empty() {
        return;
    }
    o.push_str(
        "<h2>Pools</h2><table id=pools><tr><th class=l>name</th><th class=l>zones</th>\
         <th class=l>backends</th><th class=l>policy</th><th>queries</th>\
         <th>NOERROR / NXDOMAIN / SERVFAIL</th><th>cache hits / misses / stale</th></tr>",
    );
    for pool in pools {
        let name = pool.name.as_deref().unwrap_or_default();
        let zones: Vec<String> = pool.zones.iter().map(crate::config::zone_text).collect();
        let backends: Vec<String> = pool
            .backends
            .iter()
            .map(|b| {
                let class = match (b.admin.get(), b.is_up()) {
                    (crate::ls::backend::admin::AdminState::Drain, _) => "drain",
                    (_, true) => "up",
                    (_, false) => "down",
                };
                format!("<span class=\"pill {class}\">{}</span>", html(&b.name))
            })
            .collect();
        let p = &pool.policy;
        let (queries, answers, cached) = pool.counters.as_deref().map_or_else(
            || ("—".to_owned(), "—".to_owned(), "—".to_owned()),
            |m| {
                let by = |i: usize| m.answers.get(i).map_or(0, |c| c.load(Relaxed));
                let cached = if pool.cache.is_some() {
                    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
                    let (h, mi, st) = (&m.cache_hits, &m.cache_misses, &m.cache_stale);
                    format!("{} / {} / {}", n(h), n(mi), n(st))
                } else {
                    "off".to_owned()
                };
                (
                    m.queries.load(Relaxed).to_string(),
                    format!("{} / {} / {}", by(0), by(3), by(2)),
                    cached,
                )
            },
        );
        let _ = write!(
            o,
            "<tr data-pool=\"{0}\"><td class=l><b>{0}</b></td><td class=l>{1}</td>\
             <td class=l>{2}</td><td class=l>{3} · {4} · {5} · {6} ms · {7}</td>\
             <td>{queries}</td><td>{answers}</td><td>{cached}</td></tr>",
            html(name),
            html(&zones.join(", ")),
            backends.join(" "),
            p.strategy,
            p.order,
            p.layout,
            p.timeout.as_millis(),
            p.on_timeout,
        );
    }
    o.push_str("</table>");
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::ls::Balancer;
    use crate::metrics::test_balancer as balancer;
    use crate::metrics::{ChildrenFn, StatusExtra};

    /// A balancer over `backends` (name, address, whether health says up).
    fn balancer_up(backends: &[(&str, &str, bool)]) -> Arc<Balancer> {
        let named: Vec<(&str, &str)> = backends.iter().map(|&(n, a, _)| (n, a)).collect();
        let b = Arc::new(balancer(&named));
        for (be, &(_, _, up)) in b.state().backends.iter().zip(backends) {
            be.set_up(up);
        }
        b
    }

    /// What the page of `b` reads, started at `t0` with `history`, no extras.
    fn shared(b: Arc<Balancer>, history: History, t0: Instant) -> Shared {
        Shared {
            balancer: b,
            extra: StatusExtra::default(),
            started: t0,
            history: Mutex::new(history),
        }
    }

    /// The table row of `page` that opens with `<tr ATTR>`, up to its `</tr>`.
    fn row<'a>(page: &'a str, attr: &str) -> &'a str {
        page.split(&format!("<tr {attr}>"))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row <tr {attr}> in {page}"))
    }

    #[test]
    fn status_page_shows_backends_and_children() {
        // Backends start down until probed: ts1 has answered a probe.
        let b = balancer_up(&[
            ("ts1", "127.0.0.1:5301", true),
            ("<b>", "127.0.0.1:5302", false),
        ]);
        let t0 = Instant::now();
        let mut history = History::default();
        history.record(&b, t0);
        b.metrics().queries.fetch_add(20, Relaxed);
        b.metrics().client_latency.record(Duration::from_millis(3));
        history.record(&b, t0 + Duration::from_secs(1));
        let children: Arc<ChildrenFn> =
            Arc::new(|| vec![("ts1".to_owned(), Some(42), 0), ("ts2".to_owned(), None, 3)]);
        let shared = Shared {
            extra: StatusExtra {
                supervisor: Some(children),
                ..StatusExtra::default()
            },
            ..shared(b, history, t0)
        };
        let page = render_status(&shared, t0 + Duration::from_secs(2));
        assert!(page.contains("<b>ts1</b>"));
        assert!(page.contains("&lt;b&gt;") && !page.contains("<b><b></b>"));
        assert!(page.contains("pill up\">up<") && page.contains("pill down\">down<"));
        assert!(page.contains("10.0"), "20 queries over 2 s"); // qps card
        assert!(page.contains("restarting") && page.contains(">42<"));
        assert!(page.contains("<svg") && page.contains("<path"));
        assert!(page.contains("<tr data-backend=\"&lt;b&gt;\">"));
        assert!(page.contains("<tr data-ts=\"ts2\">"));
    }

    #[test]
    fn a_drained_backend_is_painted_amber_not_red_as_down() {
        use crate::ls::backend::admin::AdminState;
        let b = balancer_up(&[
            ("ts1", "127.0.0.1:5301", true),
            ("ts2", "127.0.0.1:5302", true),
        ]);
        b.set_admin("ts1", AdminState::Drain);
        let t0 = Instant::now();
        let page = render_status(&shared(b, History::default(), t0), t0);
        let row = row(&page, "data-backend=\"ts1\"");
        assert!(row.contains("pill drain\">drain (by hand)<"), "{row}");
        assert!(!page.contains("pill down"), "nothing is down");
        assert!(CSS.contains(".drain{"), "drain has its own colour");
    }

    #[test]
    fn status_page_shows_the_pools_with_their_backends() {
        let mut cfg =
            crate::metrics::test_config(&[("ts1", "127.0.0.1:5301"), ("ts2", "127.0.0.1:5302")]);
        let page = |cfg: &crate::config::LsConfig, queries: u64| {
            let b = Arc::new(Balancer::new(cfg));
            b.state().backends[1].set_up(true);
            if let Some(m) = b.state().pools.first().and_then(|p| p.counters.clone()) {
                m.queries.fetch_add(queries, Relaxed);
            }
            let t0 = Instant::now();
            render_status(&shared(b, History::default(), t0), t0)
        };
        assert!(!page(&cfg, 0).contains("<h2>Pools</h2>"));
        let zone = crate::config::parse_name("Example.ORG.").unwrap();
        cfg.pool = vec![crate::config::PoolConfig {
            strategy: Some(crate::config::Strategy::Race),
            ..crate::config::PoolConfig::new("org", &["ts2"], vec![zone])
        }];
        let page = page(&cfg, 9);
        let row = row(&page, "data-pool=\"org\"");
        assert!(row.contains("<td class=l>example.org</td>"), "{row}");
        assert!(
            row.contains("pill up\">ts2<") && !row.contains("ts1"),
            "{row}"
        );
        assert!(
            row.contains("race · least-outstanding · partitioned"),
            "{row}"
        );
        assert!(row.contains("<td>9</td>"), "{row}");
    }

    #[test]
    fn page_updates_itself_without_a_reload() {
        let b = Arc::new(balancer(&[("ts1", "127.0.0.1:5301")]));
        let t0 = Instant::now();
        let mut history = History::default();
        history.record(&b, t0);
        let page = render_status(&shared(b, history, t0), t0);
        // The script fetches the page every 2 s; a reload only without JavaScript.
        assert!(
            page.contains("setInterval(") && page.contains("},2000);"),
            "{page}"
        );
        assert!(!page.contains("REFRESH_MS"), "placeholder left: {page}");
        assert!(page.contains("<noscript><meta http-equiv=refresh content=2></noscript>"));
        assert_eq!(page.matches("http-equiv=refresh").count(), 1);
        // Nothing loaded from elsewhere, no favicon request.
        assert!(page.contains("<link rel=icon href=\"data:,\">"));
        assert!(!page.contains("src=") && !page.contains("http://") && !page.contains("https://"));
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

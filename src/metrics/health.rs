//! The report behind `/health`: the LS's policy, each backend's state and
//! counters, and the TS children of `dnslb up`. It is serialized as JSON by
//! the metrics server and read back by `dnslb status`, so both ends share
//! these types; the schema is documented in `docs/METRICS.md`.
//!
//! Rates and percentiles are over the status page's window (about the last
//! ten seconds of 1-second samples); counters are totals since start.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::ls::backend::admin::AdminState;
use serde::{Deserialize, Serialize};

use super::history::rate;
use super::process::{BUILD_COMMIT, BUILD_VERSION};
use super::{ReadyState, Shared};

/// The LS as a whole: `ok` while at least one backend is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// At least one backend is up (HTTP 200).
    Ok,
    /// No backend is up (HTTP 503).
    Down,
}

/// One backend as health checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Usable: gets client queries.
    Up,
    /// Marked down (or never heard from): gets none while another is up.
    Down,
}

/// A TS child of `dnslb up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    /// The process is running.
    Running,
    /// It exited and waits for its restart (backoff).
    Restarting,
}

/// The JSON document of `/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok` while at least one backend is up, else `down`.
    pub status: HealthStatus,
    /// The readiness `/ready` reports.
    pub ready: ReadyState,
    /// The crate version.
    pub version: String,
    /// The commit it was built from (`unknown` when not known).
    pub commit: String,
    /// Seconds since the metrics server started.
    pub uptime_seconds: f64,
    /// The strategy in force (`race`, `hedge`, `sequential`).
    pub strategy: String,
    /// The order in force.
    pub order: String,
    /// The data layout in force (`partitioned`, `replicated`).
    pub layout: String,
    /// Client queries received since start.
    pub queries: u64,
    /// Client queries per second over the window; `null` before there is one.
    pub qps: Option<f64>,
    /// How many backends are up.
    pub backends_up: usize,
    /// Every backend, in config order.
    pub backends: Vec<BackendHealth>,
    /// The TS children under `dnslb up`; `null` for `dnslb ls`.
    pub children: Option<Vec<ChildHealth>>,
}

/// One backend in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// Its name in the config.
    pub name: String,
    /// Where its queries go.
    pub addr: SocketAddr,
    /// Up or down.
    pub state: BackendState,
    /// Its state set by hand (`dnslb backend NAME drain|down|auto`).
    #[serde(default)]
    pub admin: crate::ls::backend::admin::AdminState,
    /// Moving average of response latency, µs; `null` before the first response.
    pub ewma_us: Option<u64>,
    /// Median response latency over the window, µs; `null` without responses in it.
    pub p50_us: Option<u64>,
    /// 99th percentile of response latency over the window, µs.
    pub p99_us: Option<u64>,
    /// Upstream queries in flight now.
    pub outstanding: u32,
    /// Upstream queries sent per second over the window.
    pub qps: Option<f64>,
    /// Upstream queries sent since start (client queries; health probes are not counted).
    pub sent: u64,
    /// Valid responses received.
    pub answered: u64,
    /// Responses that became the client's answer.
    pub wins: u64,
    /// Client deadlines hit while this backend was asked.
    pub timeouts: u64,
    /// Responses with an error rcode (SERVFAIL, REFUSED, FORMERR, NOTIMP).
    pub errors: u64,
}

/// One TS child in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildHealth {
    /// The `[[ts]]` name.
    pub name: String,
    /// Its process ID; `null` while it waits for a restart.
    pub pid: Option<u32>,
    /// Running or restarting.
    pub state: ChildState,
    /// Times it was restarted.
    pub restarts: u64,
}

/// Whole microseconds of `d`.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl HealthReport {
    /// The report at `now`.
    pub(super) fn build(shared: &Shared, now: Instant) -> Self {
        let state = shared.balancer.state();
        let m = shared.balancer.metrics();
        let history = shared.history();
        let queries = m.queries.load(Relaxed);
        let qps = history
            .window_base(now)
            .and_then(|base| rate(queries, base.queries, now.duration_since(base.at)));
        let backends: Vec<BackendHealth> = state
            .backends
            .iter()
            .map(|b| {
                let s = &b.stats;
                let sent = s.sent.load(Relaxed);
                let latency = s.latency.snapshot();
                let base = history.backend_base(b);
                let window =
                    base.map_or_else(|| latency.clone(), |(_, base)| latency.since(&base.latency));
                let ewma = s.latency_us.load(Relaxed);
                BackendHealth {
                    name: b.name.clone(),
                    addr: b.addr,
                    state: if b.is_up() && b.admin.get() != AdminState::Down {
                        BackendState::Up
                    } else {
                        BackendState::Down
                    },
                    admin: b.admin.get(),
                    ewma_us: (ewma > 0).then_some(ewma),
                    p50_us: window.quantile(0.5).map(micros),
                    p99_us: window.quantile(0.99).map(micros),
                    outstanding: s.outstanding.load(Relaxed),
                    qps: base.and_then(|(at, base)| rate(sent, base.sent, now.duration_since(at))),
                    sent,
                    answered: s.answered.load(Relaxed),
                    wins: s.wins.load(Relaxed),
                    timeouts: s.timeouts.load(Relaxed),
                    errors: s.errors.load(Relaxed),
                }
            })
            .collect();
        drop(history);
        let backends_up = backends
            .iter()
            .filter(|b| b.state == BackendState::Up)
            .count();
        let children = shared.extra.supervisor.as_ref().map(|f| {
            f().into_iter()
                .map(|(name, pid, restarts)| ChildHealth {
                    name,
                    pid,
                    state: if pid.is_some() {
                        ChildState::Running
                    } else {
                        ChildState::Restarting
                    },
                    restarts,
                })
                .collect()
        });
        let p = &state.policy;
        HealthReport {
            status: if backends_up > 0 {
                HealthStatus::Ok
            } else {
                HealthStatus::Down
            },
            ready: shared.extra.ready.state(),
            version: BUILD_VERSION.to_owned(),
            commit: BUILD_COMMIT.to_owned(),
            uptime_seconds: now.duration_since(shared.started).as_secs_f64(),
            strategy: p.strategy.to_string(),
            order: p.order.to_string(),
            layout: p.layout.to_string(),
            queries,
            qps,
            backends_up,
            backends,
            children,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::metrics::history::History;
    use crate::metrics::test_balancer as balancer;
    use crate::metrics::{ChildrenFn, StatusExtra};

    fn shared(b: crate::ls::Balancer, extra: StatusExtra, t0: Instant) -> Shared {
        let b = Arc::new(b);
        let mut history = History::default();
        history.record(&b, t0);
        Shared {
            balancer: b,
            extra,
            started: t0,
            history: Mutex::new(history),
        }
    }

    #[test]
    fn reports_backends_rates_and_children() {
        let b = balancer(&[("ts1", "127.0.0.1:5301"), ("ts2", "127.0.0.1:5302")]);
        let t0 = Instant::now();
        let children: Arc<ChildrenFn> =
            Arc::new(|| vec![("ts1".to_owned(), Some(42), 0), ("ts2".to_owned(), None, 3)]);
        let extra = StatusExtra {
            supervisor: Some(children),
            ..StatusExtra::default()
        };
        let shared = shared(b, extra, t0);
        let st = shared.balancer.state();
        st.backends[0].set_up(true);
        // 20 client queries and 30 upstream ones to ts1 after the first sample.
        shared.balancer.metrics().queries.fetch_add(20, Relaxed);
        st.backends[0].stats.sent.fetch_add(30, Relaxed);
        st.backends[0].stats.wins.fetch_add(7, Relaxed);
        st.backends[0].stats.outstanding.fetch_add(2, Relaxed);
        for _ in 0..98 {
            st.backends[0].observe_latency(Duration::from_micros(80));
        }
        for _ in 0..2 {
            st.backends[0].observe_latency(Duration::from_millis(40));
        }

        let r = HealthReport::build(&shared, t0 + Duration::from_secs(2));
        assert_eq!(r.status, HealthStatus::Ok);
        assert_eq!(r.ready, ReadyState::Starting);
        assert_eq!(
            (r.strategy.as_str(), r.order.as_str(), r.layout.as_str()),
            ("hedge", "least-outstanding", "partitioned")
        );
        assert_eq!((r.queries, r.qps, r.backends_up), (20, Some(10.0), 1));
        let ts1 = &r.backends[0];
        assert_eq!((ts1.name.as_str(), ts1.state), ("ts1", BackendState::Up));
        assert_eq!(ts1.addr.to_string(), "127.0.0.1:5301");
        assert_eq!((ts1.sent, ts1.wins, ts1.outstanding), (30, 7, 2));
        assert_eq!(ts1.qps, Some(15.0));
        let p50 = ts1.p50_us.unwrap();
        assert!(p50 > 50 && p50 <= 100, "{p50}");
        let p99 = ts1.p99_us.unwrap();
        assert!(p99 > 25_000 && p99 <= 50_000, "{p99}");
        assert!(ts1.ewma_us.unwrap() >= 80);
        let ts2 = &r.backends[1];
        assert_eq!(ts2.state, BackendState::Down);
        assert_eq!((ts2.ewma_us, ts2.p50_us, ts2.p99_us), (None, None, None));
        assert_eq!(ts2.qps, Some(0.0));
        let children = r.children.as_ref().unwrap();
        assert_eq!(children[0].pid, Some(42));
        assert_eq!(children[0].state, ChildState::Running);
        assert_eq!(
            (children[1].state, children[1].restarts),
            (ChildState::Restarting, 3)
        );

        // The JSON round-trips, with the documented spelling.
        let text = serde_json::to_string(&r).unwrap();
        for needle in [
            r#""status":"ok""#,
            r#""state":"up""#,
            r#""state":"down""#,
            r#""state":"restarting""#,
            r#""ready":"starting""#,
            r#""addr":"127.0.0.1:5301""#,
            r#""ewma_us":null"#,
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert_eq!(serde_json::from_str::<HealthReport>(&text).unwrap(), r);
    }

    #[test]
    fn down_without_a_backend_up_and_no_rates_too_early() {
        let b = balancer(&[("ts1", "127.0.0.1:5301")]);
        let t0 = Instant::now();
        let shared = shared(b, StatusExtra::default(), t0);
        shared.balancer.state().backends[0].set_up(false);
        let r = HealthReport::build(&shared, t0 + Duration::from_millis(100));
        assert_eq!(r.status, HealthStatus::Down);
        assert_eq!(r.backends_up, 0);
        assert_eq!(r.qps, None, "no rate over 100 ms");
        assert_eq!(r.backends[0].qps, None);
        assert_eq!(r.children, None);
        assert!(
            serde_json::to_string(&r)
                .unwrap()
                .contains(r#""children":null"#)
        );
    }
}

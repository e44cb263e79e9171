//! The LS's metrics over HTTP: Prometheus `/metrics`, a status page at `/`,
//! the health endpoints `/health` (JSON) and `/ready`, and `POST /cache/flush`
//! (the packet cache's entries of a name or zone removed); and the TS's own
//! `/metrics` ([`serve_ts`]).
//!
//! [`render_prometheus`] writes the text exposition format (0.0.4) straight
//! from the balancer's atomics, plus the process metrics. [`serve`] runs the
//! HTTP server (axum) and a sampler task that keeps one sample per second
//! for five minutes, from which the status page and `/health` draw their
//! rates and windowed percentiles. Memory is bounded: the history is a ring
//! of [`HISTORY_SECS`] samples, connections are capped and time out when
//! idle. `docs/METRICS.md` documents every metric and the JSON schema.
//!
//! # Layout
//! - `prom`: [`render_prometheus`] and the exposition writer.
//! - `process`: [`ProcessStats`] from `/proc/self`, and the build's version and commit.
//! - `health`: the [`HealthReport`] behind `/health` (and `dnslb status`).
//! - `history`: the ring of 1-second samples and the sampler task that fills it.
//! - `page`: the status page (HTML, with an inline SVG chart).
//! - `escape`: text escaped for HTML and for Prometheus label values.
//! - `flush`: `POST /cache/flush`.
//! - `control`: live control (`/backend/{name}`, `/blocks`, `/top`) and the gate of every
//!   state-changing request (`api_key`, `control_allow`).
//! - `reload`: `POST /reload`, the reload of `dnslb reload`, with each role's outcome.
//! - `listener`: the HTTP listener that caps connections and times out idle ones.
//! - `ts`: the TS's `/metrics` ([`serve_ts`], [`render_ts_prometheus`]).
//! - `zone_control`: the routes of the TS's control listener
//!   ([`serve_zone_control`], in `ts`).
//! - Here: [`serve`], the routes, [`StatusExtra`] and [`Readiness`].
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ls::Balancer;

mod control;
mod escape;
mod flush;
mod health;
mod history;
mod json;
mod listener;
mod page;
mod process;
mod prom;
mod reload;
mod ts;
mod zone_control;

pub use control::{
    BackendAnswer, BlockAsk, CONTROL_HEADER, ClearAnswer, KEY_HEADER, PROBE_TOKEN_PATH,
    ProbeTokenAnswer, parse_block, parse_target,
};
pub use flush::{
    FLUSH_HEADER, FLUSH_PATH, FLUSH_WAIT, FlushAnswer, FlushQuery, parse_query as parse_flush_query,
};
pub use health::{
    BackendHealth, BackendState, ChildHealth, ChildState, HealthReport, HealthStatus,
};
pub(crate) use page::sig3;
pub use process::{BUILD_COMMIT, BUILD_VERSION, ProcessStats};
pub use prom::render_prometheus;
pub use reload::{RELOAD_PATH, ReloadAnswer, ReloadFn, RoleReload};
pub use ts::{
    TS_HEALTH_PATH, TsEndpoint, TsHealthReport, render_ts_prometheus, serve_ts, serve_zone_control,
};
pub use zone_control::ZONES_PATH;

use history::{History, sampler};
use json::json;
use listener::Capped;
use page::render_status;

/// Seconds of 1-second samples kept for the chart.
pub const HISTORY_SECS: usize = 300;
/// How long [`serve`] waits for open requests after cancellation.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Content type of the Prometheus text format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The supervisor's view of its TS children: (name, pid, restarts).
pub type ChildrenFn = dyn Fn() -> Vec<(String, Option<u32>, u64)> + Send + Sync;

/// Where the LS is in its life, as `/ready` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyState {
    /// Not serving yet: sockets being bound, or the first health round running.
    Starting,
    /// Listeners bound, first health round done, client queries answered.
    Serving,
    /// Shutting down: listeners closed, queries in flight being drained.
    Stopping,
}

/// The LS's readiness, shared between whoever runs the LS (which says when
/// serving starts and stops) and the metrics server (which reports it on
/// `/ready`). Starts as [`ReadyState::Starting`]; clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    const STARTING: u8 = 0;
    const SERVING: u8 = 1;
    const STOPPING: u8 = 2;

    /// The listeners are bound and the first health round is done: clients are served.
    pub fn set_serving(&self) {
        // Never back from stopping: a late call cannot make a stopping LS ready.
        let _ = self.0.compare_exchange(
            Self::STARTING,
            Self::SERVING,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Shutdown has begun: no longer ready, for good.
    pub fn set_stopping(&self) {
        self.0.store(Self::STOPPING, Ordering::Release);
    }

    /// The state now.
    pub fn state(&self) -> ReadyState {
        match self.0.load(Ordering::Acquire) {
            Self::STARTING => ReadyState::Starting,
            Self::SERVING => ReadyState::Serving,
            _ => ReadyState::Stopping,
        }
    }
}

/// What the status page and `/health` show beyond the balancer.
#[derive(Clone, Default)]
pub struct StatusExtra {
    /// TS children of `dnslb up` as (name, pid or `None` while restarting,
    /// restarts); shown on the page and in `/health` when `Some`.
    pub supervisor: Option<Arc<ChildrenFn>>,
    /// Whether the LS serves yet (or still); `/ready` answers 200 only while
    /// it is [`ReadyState::Serving`]. Whoever runs the LS sets it.
    pub ready: Readiness,
    /// What `POST /reload` runs (none: the route answers 404).
    pub reload: Option<Arc<ReloadFn>>,
}

impl std::fmt::Debug for StatusExtra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusExtra")
            .field("supervisor", &self.supervisor.is_some())
            .field("ready", &self.ready.state())
            .field("reload", &self.reload.is_some())
            .finish()
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

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    let body = render_status(&shared, Instant::now());
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = render_prometheus(&shared.balancer);
    if let Some(children) = &shared.extra.supervisor {
        text.push_str(&prom::render_ts_restarts(&children()));
    }
    exposition(text)
}

/// An exposition in the Prometheus text format, uncached.
fn exposition(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// `/health`: the report; 200 while at least one backend is up, else 503.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let report = HealthReport::build(&shared, Instant::now());
    let status = match report.status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Down => StatusCode::SERVICE_UNAVAILABLE,
    };
    json(status, &report)
}

/// The body of `/ready`.
#[derive(serde::Serialize)]
struct ReadyBody {
    ready: bool,
    state: ReadyState,
}

/// `/ready`: 200 while serving, 503 while starting or stopping.
async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.extra.ready.state();
    let ready = state == ReadyState::Serving;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &ReadyBody { ready, state })
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Serves `/metrics`, `/`, `/health`, `/ready`, `POST /cache/flush`, the live control and
/// `POST /reload` on `listener` until `token` is cancelled, then
/// gives open requests two seconds to finish and returns once the
/// sampler has stopped too.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    extra: StatusExtra,
    token: CancellationToken,
) {
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
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(FLUSH_PATH, post(flush::cache_flush))
        .fallback(not_found)
        .with_state(shared.clone())
        .merge(control::routes(shared.balancer.clone()))
        .merge(reload::routes(
            shared.balancer.clone(),
            shared.extra.reload.clone(),
        ));
    serve_app(listener, app, token.clone()).await;
    // The sampler only ends on cancel; an early stop of the server cancels it.
    token.cancel();
    let _ = sampler.await;
}

/// Serves `app` on `listener` (connections capped, idle ones closed) until
/// `token` is cancelled, then gives open requests [`SHUTDOWN_GRACE`].
async fn serve_app(listener: TcpListener, app: Router, token: CancellationToken) {
    let addr = listener.local_addr().ok();
    let listener = Capped::new(listener);
    debug!(?addr, "metrics server ready");
    let app = app.into_make_service_with_connect_info::<control::HttpPeer>();
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
}

/// A balancer over `backends` (name, address), every other key at its default: for the
/// tests of the submodules.
#[cfg(test)]
fn test_balancer(backends: &[(&str, &str)]) -> Balancer {
    Balancer::new(&test_config(backends))
}

/// An `[ls]` over `backends` (name, address), every other key at its default.
#[cfg(test)]
fn test_config(backends: &[(&str, &str)]) -> crate::config::LsConfig {
    use crate::config::{BackendConfig, LsConfig};

    LsConfig {
        backend: backends
            .iter()
            .map(|(name, addr)| BackendConfig {
                name: (*name).to_owned(),
                addr: addr.parse().unwrap(),
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            })
            .collect(),
        ..LsConfig::default()
    }
}

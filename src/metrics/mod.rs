//! The LS's metrics over HTTP: Prometheus `/metrics` and a status page at `/`.
//!
//! [`render_prometheus`] writes the text exposition format (0.0.4) straight
//! from the balancer's atomics; it is pure. [`serve`] runs the HTTP server
//! (axum) and a sampler task that keeps one sample per second for five
//! minutes, from which the status page draws its rates, windowed
//! percentiles and chart. Memory is bounded: the history is a ring of
//! [`HISTORY_SECS`] samples, connections are capped and time out when idle.
//!
//! # Layout
//! - `prom`: [`render_prometheus`] and the exposition writer.
//! - `history`: the ring of 1-second samples and the sampler task that fills it.
//! - `page`: the status page (HTML, with an inline SVG chart).
//! - `listener`: the HTTP listener that caps connections and times out idle ones.
//! - Here: [`serve`], the routes and [`StatusExtra`].
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ls::Balancer;

mod history;
mod listener;
mod page;
mod prom;

pub use prom::render_prometheus;

use history::{History, sampler};
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
    let listener = Capped::new(listener);
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

/// A balancer over `backends` (name, address), every other key at its default: for the
/// tests of the submodules.
#[cfg(test)]
fn test_balancer(backends: &[(&str, &str)]) -> Balancer {
    use crate::config::{BackendConfig, LsConfig};

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

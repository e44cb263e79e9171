//! The history behind the status page: bounded rings of 1-second samples, and the
//! sampler task that takes them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{HISTORY_SECS, Shared};
use crate::ls::Balancer;
use crate::ls::backend::Backend;
use crate::ls::latency::LatencySnapshot;

/// Window of the page's rates and percentiles.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The shortest interval a rate is given over: a shorter one is mostly noise.
const MIN_RATE_SPAN: Duration = Duration::from_millis(500);

/// Events per second from `base` to `now` over `span`; `None` when the span
/// is under [`MIN_RATE_SPAN`].
pub(super) fn rate(now: u64, base: u64, span: Duration) -> Option<f64> {
    (span >= MIN_RATE_SPAN).then(|| now.saturating_sub(base) as f64 / span.as_secs_f64())
}

/// The LS as a whole at one second.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) at: Instant,
    pub(super) queries: u64,
    pub(super) latency: LatencySnapshot,
}

/// One backend's latency and queries sent at one second, keyed by name and
/// address (a reload may add, drop or reorder backends).
#[derive(Debug, Clone)]
pub(super) struct BackendSample {
    name: String,
    addr: SocketAddr,
    pub(super) latency: LatencySnapshot,
    pub(super) sent: u64,
}

/// Bounded rings of samples: [`HISTORY_SECS`] of totals, and the last
/// [`RATE_WINDOW`] of per-backend latency.
#[derive(Debug, Default)]
pub(super) struct History {
    pub(super) samples: VecDeque<Sample>,
    backends: VecDeque<(Instant, Vec<BackendSample>)>,
}

impl History {
    /// Takes one sample of `balancer` now, dropping the oldest beyond the bounds.
    pub(super) fn record(&mut self, balancer: &Balancer, at: Instant) {
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
                sent: b.stats.sent.load(Relaxed),
            })
            .collect();
        if self.backends.len() > RATE_WINDOW.as_secs() as usize {
            self.backends.pop_front();
        }
        self.backends.push_back((at, per));
    }

    /// The newest sample at least [`RATE_WINDOW`] old, else the oldest.
    pub(super) fn window_base(&self, now: Instant) -> Option<&Sample> {
        self.samples
            .iter()
            .rev()
            .find(|s| now.duration_since(s.at) >= RATE_WINDOW)
            .or_else(|| self.samples.front())
    }

    /// `b`'s sample at the start of the window and when it was taken, if
    /// `b` was there.
    pub(super) fn backend_base(&self, b: &Backend) -> Option<(Instant, &BackendSample)> {
        let (at, per) = self.backends.front()?;
        per.iter()
            .find(|s| s.name == b.name && s.addr == b.addr)
            .map(|s| (*at, s))
    }
}

/// Samples once a second until `token` is cancelled.
pub(super) async fn sampler(shared: Arc<Shared>, token: CancellationToken) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_balancer as balancer;

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
}

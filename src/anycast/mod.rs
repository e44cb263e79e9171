//! `dnslb anycast`: ties an LS's health to a route announcement by BIRD
//! (docs/DEPLOY.md "A fleet", docs/DEPLOY.md "Anycast"). A small process of its own,
//! beside the LS, so that a hung LS (SIGSTOP, a deadlock) is withdrawn too:
//! every `interval_ms` it asks the LS a real DNS query and `GET /ready`
//! (`probe`), the identity question with the LS's probe token, read from
//! its live control (`GET /probe-token`, with `ls.api_key` or
//! `DNSLB_API_KEY` when the listener wants it; [`TokenState`]: read once,
//! again when the LS's answer does not acknowledge it), judges the round
//! (`decision`, pure: the `rise`/`fall`
//! hysteresis) and enables or disables BIRD's static protocols holding the
//! service addresses through BIRD's control socket (`bird`). The desired
//! state is said to BIRD every round, so a BIRD that restarted (its static
//! protocols `disabled` in its config) is put right within one round. When
//! the probe stops it withdraws the address first.
//!
//! The LS's own part, the drain after SIGTERM, is `roles::ls`'s.

pub mod bird;
pub mod decision;
pub mod probe;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{AnycastConfig, LsConfig, ProbeQuestion};
use crate::ls::identity::ProbeToken;
use bird::Bird;
use decision::{Announcer, RoundVerdict, RouteChange};

/// What `dnslb anycast` runs by: `[ls.anycast]` with the addresses resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct AnycastSettings {
    /// Where the DNS query goes.
    pub dns: SocketAddr,
    /// The LS's metrics listener (`/ready`).
    pub ready: SocketAddr,
    /// The question asked.
    pub query: ProbeQuestion,
    /// A round this often.
    pub interval: Duration,
    /// Each part of a round waits at most this long.
    pub timeout: Duration,
    /// `rise` and `fall`.
    pub rise: u32,
    /// Lost rounds in a row that withdraw.
    pub fall: u32,
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// The protocols enabled while healthy.
    pub protocols: Vec<String>,
    /// The `api_key` sent for the probe token (`DNSLB_API_KEY`, else
    /// `ls.api_key`), when there is one.
    pub key: Option<String>,
}

impl std::fmt::Debug for AnycastSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnycastSettings")
            .field("dns", &self.dns)
            .field("ready", &self.ready)
            .field("query", &self.query)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("rise", &self.rise)
            .field("fall", &self.fall)
            .field("bird_socket", &self.bird_socket)
            .field("protocols", &self.protocols)
            .field("key", &self.key.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why `dnslb anycast` cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AnycastError {
    /// The `[ls]` has no `[ls.anycast]`.
    #[error("no [ls.anycast] in the config")]
    NoAnycast,
    /// The `[ls]` has no metrics listener to read `/ready` from.
    #[error("[ls.anycast] needs ls.metrics")]
    NoMetrics,
    /// The `[ls]` listens nowhere and `probe` is not set.
    #[error("[ls.anycast]: no probe address and no ls.listen")]
    NoProbe,
}

/// `addr` as the probe can reach it: an unspecified address becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

impl AnycastSettings {
    /// The settings of `ls`'s `[ls.anycast]`.
    ///
    /// # Errors
    /// No `[ls.anycast]`, no `metrics`, nowhere to ask.
    pub fn from_ls(ls: &LsConfig) -> Result<Self, AnycastError> {
        let a: &AnycastConfig = ls.anycast.as_ref().ok_or(AnycastError::NoAnycast)?;
        let ready = ls.metrics.ok_or(AnycastError::NoMetrics)?;
        let dns = a
            .probe
            .or_else(|| ls.listen.first().copied())
            .ok_or(AnycastError::NoProbe)?;
        Ok(AnycastSettings {
            dns: reachable(dns),
            ready: reachable(ready),
            query: a.query.clone(),
            interval: Duration::from_millis(a.interval_ms.max(1)),
            timeout: Duration::from_millis(a.timeout_ms.max(1)),
            rise: a.rise,
            fall: a.fall,
            bird_socket: a.bird_socket.clone(),
            protocols: a.protocols.clone(),
            key: crate::status::env_key().or_else(|| ls.api_key.clone()),
        })
    }
}

/// After a failed read of the probe token, the next try waits this long.
const TOKEN_RETRY: Duration = Duration::from_secs(1);

/// The LS's probe token as the probe knows it: read from the live control
/// when there is none (at most once per [`TOKEN_RETRY`] while that fails),
/// and forgotten when a round's answer does not acknowledge it or no
/// answer comes (the LS may have restarted with a new one).
#[derive(Debug, Default)]
struct TokenState {
    /// The token, once read.
    token: Option<ProbeToken>,
    /// No read before this, after a failed one.
    retry_at: Option<Instant>,
    /// The failure in progress was logged.
    warned: bool,
}

impl TokenState {
    /// Reads the token from `s.ready` when due, by `deadline`.
    async fn refresh(&mut self, s: &AnycastSettings, deadline: Instant) {
        let now = Instant::now();
        if self.token.is_some() || self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        let read = crate::status::probe_token(s.ready, s.key.as_deref(), s.timeout);
        match timeout_at(deadline, read).await {
            Ok(Ok(t)) => {
                if self.warned {
                    info!("probe token read");
                }
                (self.token, self.retry_at, self.warned) = (Some(t), None, false);
            }
            failed => {
                self.retry_at = Some(now + TOKEN_RETRY);
                if !self.warned {
                    let err = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", s.timeout),
                    };
                    warn!(%err, ready = %s.ready, "cannot read the ls's probe token: its identity question meets the ls's blocks and rules as any client's; trying again");
                    self.warned = true;
                }
            }
        }
    }

    /// Takes in a round's DNS half: a token not acknowledged is forgotten.
    fn judge(&mut self, r: &probe::DnsRound) {
        if self.token.is_some() && !r.token_taken {
            self.token = None;
        }
    }
}

/// One round: the DNS query (the token read first when due, within the
/// round's timeout) and `/ready` side by side, each's verdict.
async fn round(s: &AnycastSettings, token: &mut TokenState) -> (RoundVerdict, RoundVerdict) {
    let deadline = Instant::now() + s.timeout;
    let dns = async {
        if s.query.is_identity() {
            token.refresh(s, deadline).await;
        }
        let r = probe::dns_until(s.dns, &s.query, token.token.as_ref(), deadline).await;
        token.judge(&r);
        r.verdict
    };
    tokio::join!(dns, probe::ready(s.ready, s.timeout))
}

/// Says `on` to BIRD for every protocol; whether all of them took it.
async fn tell(bird: &mut Bird, s: &AnycastSettings, on: bool, failing: &mut bool) -> bool {
    let mut all = true;
    for p in &s.protocols {
        if let Err(err) = bird.set(p, on).await {
            all = false;
            if !*failing {
                warn!(%err, protocol = %p, "cannot tell bird; trying again every round");
            }
        }
    }
    if all && *failing {
        info!("bird reached again");
    }
    *failing = !all;
    all
}

/// `dnslb anycast`: runs the probe until `signals` says stop. A SIGHUP
/// changes nothing: a new `[ls.anycast]` takes a restart.
pub async fn run_until_stopped(s: AnycastSettings, mut signals: crate::shutdown::Signals) {
    let stop =
        async move { while !matches!(signals.next().await, crate::shutdown::Signal::Stop) {} };
    run(s, stop).await;
}

/// `dnslb anycast`: probes until `stop` ends (the binary passes SIGINT or
/// SIGTERM), keeping BIRD told; then withdraws.
pub async fn run(s: AnycastSettings, stop: impl Future<Output = ()>) {
    let token = CancellationToken::new();
    let probe = probe_loop(s, token.clone());
    tokio::pin!(probe);
    tokio::select! {
        () = &mut probe => return,
        () = stop => token.cancel(),
    }
    probe.await;
}

/// Probes until `stop`, keeping BIRD told; then withdraws.
async fn probe_loop(s: AnycastSettings, stop: CancellationToken) {
    let mut bird = Bird::new(&s.bird_socket, s.timeout.max(Duration::from_millis(500)));
    let mut announcer = Announcer::new(s.rise, s.fall);
    let mut failing = false;
    let mut last_parts = (RoundVerdict::Good, RoundVerdict::Good);
    let mut token = TokenState::default();
    info!(dns = %s.dns, ready = %s.ready, protocols = ?s.protocols,
          interval_ms = s.interval.as_millis() as u64, "anycast probe started; withdrawn until the ls answers");
    // Withdrawn until proven: whatever BIRD had before.
    tell(&mut bird, &s, false, &mut failing).await;
    let mut tick = tokio::time::interval(s.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let parts = tokio::select! {
            _ = stop.cancelled() => break,
            v = round(&s, &mut token) => v,
        };
        if let Some(note) = decision::round_note(&mut last_parts, parts) {
            let timeout_ms = s.timeout.as_millis() as u64;
            if parts == (RoundVerdict::Good, RoundVerdict::Good) {
                info!(query = %s.query, "{note}");
            } else {
                warn!(query = %s.query, dns = ?parts.0, ready = ?parts.1, timeout_ms, "{note}");
            }
        }
        let verdict = parts.0.and(parts.1);
        let change = announcer.observe(verdict);
        let told = tell(&mut bird, &s, announcer.announced(), &mut failing).await;
        // Said once BIRD took it; BIRD not told: said when it is reached
        // again (the next round tells it the same).
        match change {
            Some(RouteChange::Announce) if told => info!("the ls answers: announced"),
            Some(RouteChange::Withdraw) if told => {
                warn!(?verdict, "the ls fails: withdrawn");
            }
            Some(RouteChange::Announce) => {
                warn!("the ls answers, but bird was not told: not announced");
            }
            Some(RouteChange::Withdraw) => {
                warn!(
                    ?verdict,
                    "the ls fails, but bird was not told: not withdrawn"
                );
            }
            None => {}
        }
    }
    let done = tell(&mut bird, &s, false, &mut failing).await;
    info!(withdrawn = done, "anycast probe stopped");
}

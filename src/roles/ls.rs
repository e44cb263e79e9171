//! The LS role (`dnslb ls`, and the LS of `dnslb up`): binds its sockets
//! ([`LsSockets`]: UDP and TCP, DNS over TLS, metrics), waits for a first round of
//! probes, serves until told to stop, reloads its `[ls]` and its TLS certificate on
//! [`Control::Reload`] (and, under `up`, makes the children reread their zones), and
//! drains on [`Control::Shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::reload::{LsLive, Reloader, set_conn_rates, trusted_proxies, warn_expiry};
use super::{Control, Controls, RoleError, SHUTDOWN_GRACE, bind_metrics};
use crate::config::{Config, DnstapSide, LsConfig, LsXdpConfig, XdpUpstream, cores};
use crate::dnstap::{self, Dnstap, DnstapWriter};
use crate::ls::xdp_policy::LsXdpPolicy;
use crate::ls::{Balancer, probe};
use crate::metrics::{Readiness, StatusExtra};
use crate::server::Listeners;
use crate::server::doh::{ALPN_DOH, DohListeners};
use crate::server::doh3;
use crate::server::doq::{DoqListeners, quic_server_config};
use crate::server::forwarded::TrustedProxies;
use crate::server::socket::{BindError, bind_stream};
use crate::server::tls::{ALPN_DOT, CertSwap, DotListeners, server_config};
use crate::supervise::Supervisor;
use crate::xdp::upstream::{UpstreamPlan, XskUpstream};
use crate::xdp::{XdpPlan, XdpServer};

/// The `[ls]` of `cfg`.
///
/// # Errors
/// [`RoleError::NoLs`] when the config has none.
pub fn section(cfg: &Config) -> Result<&LsConfig, RoleError> {
    cfg.ls
        .as_ref()
        .ok_or_else(|| RoleError::NoLs(cfg.path.clone()))
}

/// Every socket the LS serves on, bound before anything else happens.
pub struct LsSockets {
    dns: Listeners,
    metrics: Option<TcpListener>,
    /// The DNS over TLS listeners (`[ls.tls]`), with their bound addresses.
    dot: Vec<(TcpListener, SocketAddr)>,
    /// The DNS over HTTPS listeners (`[ls.https]`), with their bound addresses.
    doh: Vec<(TcpListener, SocketAddr)>,
    /// The DNS over QUIC sockets (`[ls.quic]`), UDP.
    doq: Vec<std::net::UdpSocket>,
    /// The DNS over HTTP/3 sockets (`[ls.https]` with `http3`): UDP at DoH's ports.
    doh3: Vec<std::net::UdpSocket>,
}

impl LsSockets {
    /// Binds `listen` (UDP and TCP), `tls.listen`, `https.listen` and, when set,
    /// `metrics`.
    ///
    /// # Errors
    /// An address cannot be bound.
    pub async fn bind(lsc: &LsConfig) -> Result<Self, RoleError> {
        let dns = Listeners::bind(&lsc.listen, lsc.workers)?;
        let bind = |addrs: &[SocketAddr], proto| {
            addrs
                .iter()
                .map(|addr| bind_stream(*addr, proto))
                .collect::<Result<Vec<_>, _>>()
        };
        let dot = bind(lsc.tls.as_ref().map_or(&[], |t| &t.listen), "tls")?;
        let doh = bind(lsc.https.as_ref().map_or(&[], |h| &h.listen), "https")?;
        let h3 = lsc.https.as_ref().is_some_and(|h| h.http3);
        let h3_addrs: Vec<_> = doh.iter().filter(|_| h3).map(|(_, a)| *a).collect();
        let doh3 = crate::server::doh3::bind_udp(&h3_addrs)?;
        let metrics = bind_metrics("ls.metrics", lsc.metrics).await?;
        let doq = lsc.quic.as_ref().map_or(&[][..], |q| &q.listen);
        let doq = doq
            .iter()
            .map(|addr| {
                std::net::UdpSocket::bind(addr).map_err(|source| BindError {
                    addr: *addr,
                    proto: "quic",
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LsSockets {
            dns,
            metrics,
            dot,
            doh,
            doq,
            doh3,
        })
    }

    /// The DNS over HTTPS addresses bound (with the real port when 0 was asked).
    pub fn doh_addrs(&self) -> Vec<SocketAddr> {
        self.doh.iter().map(|(_, addr)| *addr).collect()
    }

    /// The DNS over TLS addresses bound (with the real port when 0 was asked).
    pub fn dot_addrs(&self) -> Vec<SocketAddr> {
        self.dot.iter().map(|(_, addr)| *addr).collect()
    }

    /// The DNS addresses bound (with the real port when 0 was asked).
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        self.dns.local_addrs()
    }

    /// The metrics address bound, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// `dnslb ls`: binds the sockets of `cfg`'s `[ls]`, then [`LsRole::run`].
///
/// # Errors
/// No `[ls]`, a socket that cannot be bound, or the DNS server dying.
pub async fn run(cfg: Config, controls: Controls) -> Result<(), RoleError> {
    let sockets = LsSockets::bind(section(&cfg)?).await?;
    LsRole::new(cfg)?.run(sockets, controls).await
}

/// One LS: its balancer, what a reload changes of it, and (under `up`) the
/// children a reload reaches too.
pub struct LsRole {
    lsc: LsConfig,
    balancer: Arc<Balancer>,
    /// Its reload (SIGHUP, `POST /reload`).
    reloader: Arc<Reloader>,
    extra: StatusExtra,
    /// The `[ls.dnstap]` writer, run while the LS serves.
    dnstap: Option<DnstapWriter>,
}

impl LsRole {
    /// An LS for `cfg`'s `[ls]`, not serving yet.
    ///
    /// # Errors
    /// [`RoleError::NoLs`] when the config has none, [`RoleError::Cert`] when
    /// the `[ls.tls]` certificate cannot be served.
    pub fn new(cfg: Config) -> Result<Self, RoleError> {
        let lsc = section(&cfg)?.clone();
        let certs = match &lsc.tls {
            Some(tls) => Some(Arc::new(CertSwap::load(&tls.cert, &tls.key)?)),
            None => None,
        };
        let https_certs = match lsc.https.as_ref().map(|h| (&h.cert, &h.key)) {
            Some((Some(cert), Some(key))) => Some(Arc::new(CertSwap::load(cert, key)?)),
            _ => None,
        };
        let quic_certs = match &lsc.quic {
            Some(q) => Some(Arc::new(CertSwap::load(&q.cert, &q.key)?)),
            None => None,
        };
        let (tap, dnstap) = match &lsc.dnstap {
            Some(d) => {
                let (tap, writer) = Dnstap::new(dnstap::Settings::from_config(d, DnstapSide::Ls));
                (tap, Some(writer))
            }
            None => (Dnstap::off(), None),
        };
        let balancer = Arc::new(Balancer::new(&lsc).with_dnstap(tap));
        let (dot_rate, doh_rate) = (Arc::default(), Arc::default());
        set_conn_rates(&lsc, &dot_rate, &doh_rate);
        let trusted = Arc::new(TrustedProxies::new(trusted_proxies(&lsc)));
        let live = LsLive {
            lsc: lsc.clone(),
            balancer: balancer.clone(),
            certs,
            https_certs,
            quic_certs,
            dot_rate,
            doh_rate,
            trusted,
        };
        let reloader = Arc::new(Reloader::new(cfg, Some(live)));
        let reload = reloader.clone();
        let extra = StatusExtra {
            reload: Some(Arc::new(move || {
                let r = reload.clone();
                Box::pin(async move { r.run().await })
            })),
            ..StatusExtra::default()
        };
        Ok(LsRole {
            lsc,
            balancer,
            reloader,
            extra,
            dnstap,
        })
    }

    /// The LS of `dnslb up`: a reload reaches `children` too; the status page shows them.
    pub(super) fn with_children(mut self, children: &Arc<Supervisor>, extra: StatusExtra) -> Self {
        self.reloader.set_children(children);
        self.extra = StatusExtra {
            reload: self.extra.reload.take(),
            ..extra
        };
        self
    }

    /// The balancer (its state and counters).
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.balancer
    }

    /// Whether it serves yet (or still), as `/ready` says.
    pub fn readiness(&self) -> Readiness {
        self.extra.ready.clone()
    }

    /// `dnslb ls`: one round of probes first, so that no backend is skipped as down
    /// merely because it has not been asked yet; then serves until
    /// [`Control::Shutdown`] (a [`Control::Reload`] reloads its `[ls]`; stopping drains).
    ///
    /// # Errors
    /// [`RoleError::Died`]: the DNS server ended on its own.
    pub async fn run(self, sockets: LsSockets, mut controls: Controls) -> Result<(), RoleError> {
        let wait = Duration::from_millis(self.lsc.health.timeout_ms.max(1));
        let late = probe::first_round(&self.balancer, wait).await;
        if !late.is_empty() {
            warn!(late = ?late, "these backends did not answer the first probe; down until they do");
        }
        let root = CancellationToken::new();
        // Dropped before its end (a task aborted): whatever `serve` spawned
        // (the server, the dnstap writer, the metrics) is told to stop.
        let _on_drop = root.clone().drop_guard();
        let result = self.serve(sockets, &mut controls, &root).await;
        root.cancel();
        result
    }

    /// A reload, in a task of its own (reloads run one at a time, in the
    /// order asked): see [`Reloader::run`]; its outcome is logged.
    pub(super) fn reload(&self) {
        let r = self.reloader.clone();
        tokio::spawn(async move { r.run().await });
    }

    /// What a reload changes of the LS.
    fn live(&self) -> Option<&LsLive> {
        self.reloader.ls()
    }

    /// The LS's XDP path on `[ls.xdp]`'s interfaces for `addrs`, with its
    /// upstream queries through the workers under `upstream = "xdp"` (see
    /// [`XdpServer::start`]); `None` when it did not start.
    fn start_xdp(
        &self,
        x: &LsXdpConfig,
        addrs: &[SocketAddr],
        sock: std::net::UdpSocket,
        later_max: usize,
    ) -> Option<XdpServer> {
        let counters = self.balancer.metrics().xdp.clone();
        let upstream = (x.upstream == XdpUpstream::Xdp).then(|| {
            let handle = Arc::new(XskUpstream::new(counters.clone()));
            let link = self.balancer.upstream_through_xdp(Some(handle.clone()));
            link.map(|link| UpstreamPlan { handle, link })
        });
        let upstream = upstream.flatten();
        let policy = LsXdpPolicy::new(self.balancer.clone()).with_backends(upstream.is_some());
        let started = XdpServer::start(XdpPlan {
            who: "ls",
            ifaces: &x.interfaces,
            addrs,
            handler: self.balancer.clone(),
            kernel_sock: sock,
            counters,
            policy: Some(Box::new(policy)),
            later_max,
            later: self.balancer.detached().clone(),
            upstream: upstream.clone(),
        });
        if started.is_none() && upstream.is_some() {
            self.balancer.upstream_through_xdp(None);
        }
        started
    }

    /// Serves the LS on `sockets` until [`Control::Shutdown`]; [`Control::Reload`]
    /// reloads it (and the TS children of `up`). Stopping drains: the listeners
    /// close, every query in flight is answered, then the metrics server stops.
    pub(super) async fn serve(
        mut self,
        sockets: LsSockets,
        controls: &mut Controls,
        root: &CancellationToken,
    ) -> Result<(), RoleError> {
        let lsc = &self.lsc;
        let mut sockets = sockets;
        let addrs = sockets.dns.local_addrs().to_vec();
        let (dot_addrs, doh_addrs) = (sockets.dot_addrs(), sockets.doh_addrs());
        let (certs, https_certs) = match self.live() {
            Some(l) => (l.certs.clone(), l.https_certs.clone()),
            None => (None, None),
        };
        if let Some(certs) = &certs
            && !sockets.dot.is_empty()
        {
            let stats = self.balancer.metrics().tls.get_or_init(Default::default);
            let listeners = std::mem::take(&mut sockets.dot).into_iter().map(|(l, _)| l);
            let dot = DotListeners::new(
                listeners.collect(),
                server_config(certs.clone(), &[ALPN_DOT])?,
                stats.clone(),
            )
            .with_conn_rate(self.live().map(|l| l.dot_rate.clone()).unwrap_or_default());
            sockets.dns.set_dot(dot);
        }
        let mut doh3_addrs = Vec::new();
        if let Some(https) = &lsc.https
            && !sockets.doh.is_empty()
        {
            let stats = self.balancer.metrics().tls.get_or_init(Default::default);
            let config = match &https_certs {
                Some(certs) => Some(server_config(certs.clone(), &ALPN_DOH)?),
                None => None,
            };
            let listeners = std::mem::take(&mut sockets.doh).into_iter().map(|(l, _)| l);
            let (doh_rate, trusted) = match self.live() {
                Some(l) => (l.doh_rate.clone(), l.trusted.clone()),
                None => Default::default(),
            };
            let mut doh =
                DohListeners::new(listeners.collect(), config, &https.path, stats.clone())
                    .with_conn_rate(doh_rate)
                    .with_trusted_proxies(trusted);
            if let Some(certs) = https_certs.as_ref().filter(|_| https.http3) {
                doh = doh.with_http3();
                let h3_stats = self.balancer.metrics().doh3.get_or_init(Default::default);
                let h3 = doh3::Doh3Listeners::new(
                    std::mem::take(&mut sockets.doh3),
                    doh3::h3_server_config(certs.clone(), h3_stats)?,
                    &doh,
                    h3_stats.clone(),
                )?;
                doh3_addrs = h3.local_addrs();
                sockets.dns.set_doh3(h3);
            }
            sockets.dns.set_doh(doh);
        }
        let mut doq_addrs = Vec::new();
        if let Some(quic) = &lsc.quic
            && !sockets.doq.is_empty()
        {
            let certs = match self.live().and_then(|l| l.quic_certs.clone()) {
                Some(c) => c,
                None => Arc::new(CertSwap::load(&quic.cert, &quic.key)?),
            };
            let stats = self.balancer.metrics().doq.get_or_init(Default::default);
            let config = quic_server_config(certs, stats)?;
            let doq = DoqListeners::new(std::mem::take(&mut sockets.doq), config, stats.clone())?;
            doq_addrs = doq.local_addrs();
            sockets.dns.set_doq(doq);
        }
        if let Some(l) = self.live() {
            l.export_not_after();
        }
        for (table, certs) in [("ls.tls", &certs), ("ls.https", &https_certs)] {
            if let Some(c) = certs {
                warn_expiry(table, c);
            }
        }
        // The dnstap writer: stopped last, once every answer is written.
        let dnstap_token = root.child_token();
        let dnstap = self.dnstap.take().and_then(|w| {
            w.spawn_thread(dnstap_token.clone())
                .inspect_err(|e| error!(error = %e, "dnstap: cannot start the writer's thread"))
                .ok()
        });
        let xdp_socket = lsc.xdp.as_ref().map(|_| sockets.dns.udp_dup());
        // The UDP workers (started by `serve` below) take the XDP workers'
        // forwarded queries, unless those leave through the XDP workers
        // themselves (the shared pool's lane: the async path).
        if lsc
            .xdp
            .as_ref()
            .is_some_and(|x| x.upstream == crate::config::XdpUpstream::Sockets)
        {
            self.balancer.handoffs().turn_on();
        }
        let dns_token = root.child_token();
        let mut server = tokio::spawn(crate::ls::serve(
            self.balancer.clone(),
            sockets.dns,
            crate::ls::server_options(lsc),
            dns_token.clone(),
        ));
        let xdp = match (&lsc.xdp, xdp_socket) {
            (Some(x), Some(Ok(sock))) => self.start_xdp(x, &addrs, sock, lsc.max_inflight),
            (_, Some(Err(err))) => {
                warn!(%err, "xdp: no socket to share; serving through sockets");
                None
            }
            _ => None,
        };
        // Listeners bound, first health round done (callers wait for it), the
        // server spawned: ready before the metrics server can be asked, and not
        // ready again from the moment stopping begins.
        let ready = self.extra.ready.clone();
        ready.set_serving();
        // Its own token: the metrics server stopping can never stop the LS.
        let metrics_token = root.child_token();
        let metrics = sockets.metrics.map(|l| {
            if let Ok(addr) = l.local_addr() {
                info!(%addr, "metrics and status page ready");
            }
            tokio::spawn(crate::metrics::serve(
                l,
                self.balancer.clone(),
                self.extra.clone(),
                metrics_token.clone(),
            ))
        });
        let backends: Vec<String> = lsc
            .backend
            .iter()
            .map(|b| format!("{}={}", b.name, b.addr))
            .collect();
        if !dot_addrs.is_empty() {
            info!(addr = ?dot_addrs, "dns over tls ready");
        }
        if !doq_addrs.is_empty() {
            info!(addr = ?doq_addrs, "dns over quic ready");
        }
        if !doh_addrs.is_empty() {
            let tls = https_certs.is_some();
            info!(addr = ?doh_addrs, tls, "dns over https ready");
        }
        if !doh3_addrs.is_empty() {
            info!(addr = ?doh3_addrs, "dns over http/3 ready");
        }
        info!(addr = ?addrs, strategy = %lsc.strategy, order = %lsc.order, layout = %lsc.layout,
              backends = ?backends, "load balancer ready");
        crate::systemd::ready(&format!("answering on {addrs:?}"));
        info!("{}", cores::detect().workers_line(lsc.workers));
        // The DNS server only ends when told to: one that ends on its own (a
        // task died) takes the process down rather than leave it half alive.
        let died = loop {
            tokio::select! {
                end = &mut server => break Some(end),
                control = controls.next() => match control {
                    Control::Shutdown => break None,
                    Control::Reload => self.reload(),
                },
            }
        };
        let stop_dnstap = async move {
            dnstap_token.cancel();
            if let Some(task) = dnstap {
                task.stopped().await;
            }
        };
        if let Some(end) = died {
            ready.set_stopping();
            crate::systemd::stopping();
            error!(
                panicked = end.is_err(),
                "the DNS server stopped on its own; exiting"
            );
            metrics_token.cancel();
            if let Some(m) = metrics {
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, m).await;
            }
            stop_dnstap.await;
            return Err(RoleError::Died);
        }
        let drain = lsc.anycast.as_ref().map_or(0, |a| a.drain_s);
        if drain == 0 {
            // No drain: a query sent once /ready says stopping is not read.
            self.balancer.close_udp_reads();
        }
        ready.set_stopping();
        crate::systemd::stopping();
        let mut server_ended = false;
        if drain > 0 {
            // /ready is 503 from now on: the anycast probe withdraws the
            // route; the LS answers while the routers converge.
            info!(
                drain_s = drain,
                "stopping: /ready says 503; answering for drain_s while the route is withdrawn"
            );
            match drain_wait(Duration::from_secs(drain), controls, &mut server).await {
                DrainEnd::Done => {}
                DrainEnd::Again => warn!("told to stop again: the drain is cut short"),
                DrainEnd::Died => {
                    server_ended = true;
                    error!("the DNS server stopped on its own while draining");
                }
            }
        }
        info!("stopping: answering the queries in flight");
        dns_token.cancel();
        // The XDP path drains beside the server: its workers read no new
        // client query but keep sending the forwarded queries' answers and
        // the queries to the backends, and take the backends' answers (with
        // `upstream = "xdp"` they come through the workers), until those
        // answers are all out or the same grace as the server's is over;
        // then the programs are detached.
        let xdp = xdp.map(|x| x.drain_and_stop(self.balancer.drain_grace()));
        // The server bounds its own drain (timeout_ms and a grace).
        if !server_ended {
            let _ = server.await;
        }
        if let Some(x) = xdp {
            let _ = x.await;
        }
        metrics_token.cancel();
        if let Some(m) = metrics {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, m).await;
        }
        stop_dnstap.await;
        info!("load balancer stopped");
        Ok(())
    }
}

/// How a drain ended.
#[derive(Debug, PartialEq, Eq)]
enum DrainEnd {
    /// `drain_s` went by.
    Done,
    /// A second stop (SIGTERM, SIGINT) came first.
    Again,
    /// The DNS server ended on its own first.
    Died,
}

/// The drain after a first [`Control::Shutdown`] under `[ls.anycast]`: waits
/// `drain` while the LS keeps answering, unless told to stop again (an
/// operator's second SIGTERM) or the server ends first. Reloads are ignored
/// by then.
async fn drain_wait<T>(
    drain: Duration,
    controls: &mut Controls,
    server: &mut tokio::task::JoinHandle<T>,
) -> DrainEnd {
    let until = tokio::time::sleep(drain);
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => return DrainEnd::Done,
            _ = &mut *server => return DrainEnd::Died,
            control = controls.next() => match control {
                Control::Shutdown => return DrainEnd::Again,
                Control::Reload => info!("draining: the reload is ignored"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_server() -> tokio::task::JoinHandle<()> {
        tokio::spawn(std::future::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_lasts_drain_s_and_reloads_do_not_end_it() {
        let (tx, mut controls) = Controls::channel();
        let mut server = idle_server();
        let t0 = tokio::time::Instant::now();
        tx.send(Control::Reload).unwrap();
        let end = drain_wait(Duration::from_secs(5), &mut controls, &mut server).await;
        assert_eq!(end, DrainEnd::Done);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_stop_cuts_the_drain_short() {
        let (tx, mut controls) = Controls::channel();
        let mut server = idle_server();
        let t0 = tokio::time::Instant::now();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(Control::Shutdown).unwrap();
            tx
        });
        let end = drain_wait(Duration::from_secs(5), &mut controls, &mut server).await;
        assert_eq!(end, DrainEnd::Again);
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        drop(later.await);
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_dies_ends_the_drain() {
        let (_tx, mut controls) = Controls::channel();
        let mut server = tokio::spawn(tokio::time::sleep(Duration::from_secs(1)));
        let end = drain_wait(Duration::from_secs(5), &mut controls, &mut server).await;
        assert_eq!(end, DrainEnd::Died);
    }
}

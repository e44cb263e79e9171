//! The XDP path of one server ([`XdpServer::start`]): on each interface the
//! program attached, told the addresses served, and an AF_XDP socket and a
//! worker thread per receive queue; a keeper thread sets the programs'
//! filters, copies their counters for `/metrics`, and every second looks at
//! the interfaces again (MTU, MAC, addresses; gone or back: [`super::live`]).
//! Whatever cannot start is said in one log line
//! and left to the sockets: an interface the program cannot attach to is
//! served by the kernel as before, and a queue without a socket has its
//! datagrams passed to the kernel by the program. [`XdpServer::stop`] (or
//! dropping it) ends the workers and detaches the programs.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::IpNet;
use tracing::{info, warn};

use super::counters::XdpCounters;
use super::filter::Filter;
use super::iface;
use super::live::{self, IfaceNow, Live};
use super::program::{Counters, Program};
use super::ring::Xsk;
use super::route::IfaceSeen;
use super::upstream::UpstreamPlan;
use super::worker::{self, KernelPath, WorkerParts, WorkerUpstream};
use crate::server::Handler;
use crate::server::detached::Detached;

/// Ethernet header: the MTU counts from the IP header.
const ETHERNET: usize = 14;
/// How often the keeper brings the programs' filters up to date and copies
/// their counters.
const KEEP_EVERY: Duration = Duration::from_millis(100);

/// The XDP path of a server, running.
pub struct XdpServer {
    stop: Arc<AtomicBool>,
    /// The workers' [`KernelPath::closing`] and [`KernelPath::later`].
    closing: Arc<AtomicBool>,
    later: Detached,
    threads: Vec<JoinHandle<()>>,
}

/// What [`XdpServer::start`] serves, and with what.
pub struct XdpPlan<'a, H> {
    /// Who, for the log (`ts1`, `ls`).
    pub who: &'a str,
    /// The interfaces (`xdp` in `[[ts]]`, `[ls.xdp] interfaces`).
    pub ifaces: &'a [String],
    /// The UDP addresses served (the listen addresses).
    pub addrs: &'a [SocketAddr],
    /// The server answering.
    pub handler: Arc<H>,
    /// A duplicate of the server's UDP socket, for what leaves through the kernel.
    pub kernel_sock: std::net::UdpSocket,
    /// Its counters, read by its `/metrics`.
    pub counters: Arc<XdpCounters>,
    /// The clients the program drops, and where its drops are counted;
    /// `None`: it drops none.
    pub policy: Option<Box<dyn XdpPolicy>>,
    /// Answers given later (forwarded) in flight at most, as the server's
    /// own in-flight bound (`max_inflight`); past it, SERVFAIL at once.
    pub later_max: usize,
    /// Where those are counted in flight: the server's count of the answers
    /// it awaits outside its server layer (the LS waits for it before it
    /// closes its upstream pools), or one of the path's own.
    pub later: Detached,
    /// The server's queries to its backends through the workers, when on:
    /// the addresses they leave from are served too, and the backends'
    /// paths are read again with the interfaces, every second.
    pub upstream: Option<UpstreamPlan>,
}

/// The server's say in what the XDP program drops (the LS's `allow` and
/// its blocks whose action is drop), asked by the keeper every
/// [`KEEP_EVERY`].
pub trait XdpPolicy: Send + 'static {
    /// The clients to drop now.
    fn filter(&mut self) -> Filter;
    /// The program dropped `not_allowed` more datagrams of clients outside
    /// the allowed networks, and for each blocked network in `blocked` that
    /// many more of its clients' (none listed: none more).
    fn dropped(&mut self, not_allowed: u64, blocked: &[(IpNet, u64)]);
}

impl XdpServer {
    /// Starts the XDP path on every interface of `plan` that takes it. `None`
    /// when none did (each said why in the log): sockets serve alone. Must
    /// be called within the server's runtime.
    pub fn start<H: Handler>(plan: XdpPlan<'_, H>) -> Option<XdpServer> {
        let XdpPlan {
            who,
            ifaces,
            addrs,
            handler,
            kernel_sock,
            counters,
            policy,
            later_max,
            later,
            upstream,
        } = plan;
        let kernel = match kernel_path(kernel_sock, later) {
            Ok(k) => k,
            Err(err) => {
                warn!(%who, %err, "xdp: not started (the kernel socket for large answers); serving through sockets");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (closing, later) = (kernel.closing.clone(), kernel.later.clone());
        let attach = {
            let (addrs, handler, counters, stop, upstream) = (
                addrs.to_vec(),
                handler.clone(),
                counters.clone(),
                stop.clone(),
                upstream.clone(),
            );
            move |name: &str| {
                let shared = IfaceParts {
                    handler: &handler,
                    counters: &counters,
                    kernel: &kernel,
                    stop: &stop,
                    later_max,
                    upstream: &upstream,
                };
                start_iface(name, &addrs, &shared)
            }
        };
        let mut attached = Vec::new();
        for name in ifaces {
            match attach(name) {
                Ok(a) => {
                    info!(%who, iface = %name, queues = a.workers.len(), "xdp: serving UDP through AF_XDP");
                    attached.push(a);
                }
                Err(why) => {
                    warn!(%who, iface = %name, %why, "xdp: not on this interface; serving it through sockets");
                }
            }
        }
        if attached.is_empty() {
            return None;
        }
        counters.started.store(true, Relaxed);
        let keeper = {
            let (stop, counters, who) = (stop.clone(), counters.clone(), who.to_owned());
            let addrs = addrs.to_vec();
            std::thread::Builder::new()
                .name("xdp-keeper".into())
                .spawn(move || {
                    let mut keeper = Keeper {
                        who,
                        attached,
                        addrs,
                        attach: Box::new(attach),
                        counters,
                        retired: Counters::default(),
                        upstream,
                        said_served: false,
                    };
                    keeper.keep(policy, &stop);
                })
        };
        match keeper {
            // Without its keeper the interfaces' workers and programs were
            // dropped with the closure: stopped and detached.
            Ok(k) => Some(XdpServer {
                stop,
                closing,
                later,
                threads: vec![k],
            }),
            Err(err) => {
                warn!(%who, %err, "xdp: no keeper thread; serving through sockets");
                stop.store(true, Relaxed);
                None
            }
        }
    }

    /// A stop beside the server's own, as a task of the runtime: the
    /// workers read no new client query from now on; once every answer
    /// given later (the forwarded queries) has been sent, or `grace` has
    /// gone by, [`XdpServer::stop`] on a blocking thread (the workers keep
    /// sending the server's queries to its backends and taking their
    /// answers meanwhile); done when its handle is.
    pub fn drain_and_stop(self, grace: Duration) -> tokio::task::JoinHandle<()> {
        self.closing.store(true, Relaxed);
        tokio::spawn(async move {
            if !self.later.settled(grace).await {
                warn!(
                    left = self.later.running(),
                    "xdp: answers still in flight after the drain grace; abandoned"
                );
            }
            let _ = tokio::task::spawn_blocking(move || self.stop()).await;
        })
    }

    /// Ends the workers and detaches the programs.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Relaxed);
        join(std::mem::take(&mut self.threads));
    }
}

impl Drop for XdpServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn join(threads: Vec<JoinHandle<()>>) {
    for t in threads {
        let _ = t.join();
    }
}

/// The way out through the kernel, on `sock`, a duplicate of the server's
/// UDP socket. Its flags are left as they are: they belong to the socket the
/// two descriptors share, and the server's worker may wait in a blocking
/// receive on it; the sends on it pass `MSG_DONTWAIT` (`batch::send_some`).
fn kernel_path(sock: std::net::UdpSocket, later: Detached) -> std::io::Result<KernelPath> {
    let wildcard = sock.local_addr()?.ip().is_unspecified();
    Ok(KernelPath {
        wildcard,
        sock: Arc::new(sock),
        rt: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        later,
        closing: Arc::new(AtomicBool::new(false)),
    })
}

/// One interface served: its program, its workers and what they read of it.
/// Dropped, its workers stop (joined) and its program is detached.
struct Attached {
    name: String,
    /// Its index when attached: another under the name is another interface.
    ifindex: Option<u32>,
    program: Program,
    live: Arc<Live>,
    workers: Vec<JoinHandle<()>>,
    counters: Arc<XdpCounters>,
    /// Whether attaching it again failed (said once).
    refused: bool,
    /// The program's drops per blocked network when last read.
    drops_seen: HashMap<IpNet, u64>,
    /// The version of the upstream reply addresses it serves.
    replies_seen: u64,
}

impl Attached {
    /// The program's drops per blocked network since the last call, added
    /// to `into`.
    fn new_drops(&mut self, into: &mut HashMap<IpNet, u64>) {
        let now = self.program.blocked_drops();
        for (net, n) in &now {
            let before = self.drops_seen.get(net).copied().unwrap_or(0);
            // Less than before: removed and added again since, counted anew.
            let more = if *n >= before { n - before } else { *n };
            if more > 0 {
                *into.entry(*net).or_default() += more;
            }
        }
        self.drops_seen = now.into_iter().collect();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.live.retire();
        let n = self.workers.len() as u64;
        join(std::mem::take(&mut self.workers));
        self.counters.sockets.fetch_sub(n, Relaxed);
        self.program.detach();
    }
}

/// What every interface's workers share.
struct IfaceParts<'a, H> {
    handler: &'a Arc<H>,
    counters: &'a Arc<XdpCounters>,
    kernel: &'a KernelPath,
    stop: &'a Arc<AtomicBool>,
    later_max: usize,
    upstream: &'a Option<UpstreamPlan>,
}

/// What the program on `name` serves: the listen addresses `addrs` as the
/// interface holds them ([`iface::served_on`]), and the addresses the
/// server's upstream queries leave from that it holds; with their version.
fn served_with(
    name: &str,
    addrs: &[SocketAddr],
    upstream: Option<&UpstreamPlan>,
) -> (Vec<SocketAddr>, u64) {
    let mut served = iface::served_on(name, addrs);
    let Some(u) = upstream else {
        return (served, 0);
    };
    let (replies, version) = u.handle.reply_addrs();
    let own = iface::addresses(name);
    served.extend(replies.into_iter().filter(|r| own.contains(&r.ip())));
    served.sort();
    served.dedup();
    (served, version)
}

/// The program on `name`, serving `addrs`, with a socket and a worker per
/// queue; an error says why not (and leaves nothing attached).
fn start_iface<H: Handler>(
    name: &str,
    addrs: &[SocketAddr],
    shared: &IfaceParts<'_, H>,
) -> Result<Attached, String> {
    let IfaceParts {
        handler,
        counters,
        kernel,
        stop,
        later_max,
        upstream,
    } = *shared;
    let mac = iface::mac(name).ok_or_else(|| format!("{name}: its MAC address does not read"))?;
    let ifindex = iface::ifindex(name);
    let mut program = Program::attach(name).map_err(|e| e.to_string())?;
    if iface::served_on(name, addrs).is_empty() {
        return Err(format!("{name} holds none of the addresses served"));
    }
    let (served, replies_seen) = served_with(name, addrs, upstream.as_ref());
    program.serve(&served).map_err(|e| e.to_string())?;
    let mut a = Attached {
        name: name.to_owned(),
        ifindex,
        program,
        live: Arc::new(Live::new(iface::mtu(name) + ETHERNET, mac)),
        workers: Vec::new(),
        counters: counters.clone(),
        refused: false,
        drops_seen: HashMap::new(),
        replies_seen,
    };
    let mut failed = None;
    for queue in 0..iface::rx_queues(name) {
        let xsk = match Xsk::open(name, queue) {
            Ok(x) => x,
            Err(e) => {
                failed = Some(format!("queue {queue}: {e}"));
                break;
            }
        };
        if let Err(e) = a.program.add_socket(queue, xsk.fd()) {
            failed = Some(format!("queue {queue}: {e}"));
            break;
        }
        let parts = WorkerParts {
            handler: handler.clone(),
            counters: counters.clone(),
            live: a.live.clone(),
            later_max,
            kernel: kernel.clone(),
            stop: stop.clone(),
            upstream: match (upstream, ifindex) {
                (Some(u), Some(ifindex)) => Some(WorkerUpstream {
                    handle: u.handle.clone(),
                    link: u.link.clone(),
                    ifindex,
                }),
                _ => None,
            },
        };
        let spawned = std::thread::Builder::new()
            .name(format!("xdp-{name}-{queue}"))
            .spawn(move || worker::run(xsk, parts));
        match spawned {
            Ok(t) => {
                counters.sockets.fetch_add(1, Relaxed);
                a.workers.push(t);
            }
            Err(e) => {
                failed = Some(format!("queue {queue}: thread: {e}"));
                break;
            }
        }
    }
    match failed {
        // Queues past the first that failed are the kernel's (the program
        // passes what has no socket).
        Some(why) if a.workers.is_empty() => Err(why),
        Some(why) => {
            warn!(iface = %name, %why, "xdp: the other queues are served through sockets");
            Ok(a)
        }
        None => Ok(a),
    }
}

/// The sum of two programs' counts.
fn add(a: Counters, c: Counters) -> Counters {
    Counters {
        to_user: a.to_user + c.to_user,
        blocked: a.blocked + c.blocked,
        no_socket: a.no_socket + c.no_socket,
        not_allowed: a.not_allowed + c.not_allowed,
    }
}

/// Attaches the XDP path to an interface again (by name).
type Attach = Box<dyn FnMut(&str) -> Result<Attached, String> + Send>;

/// The keeper of a server's XDP path, on a thread of its own.
struct Keeper {
    who: String,
    /// The interfaces served, and those gone (`ifindex` `None`, nothing
    /// attached: their entry keeps the name to look for).
    attached: Vec<Attached>,
    addrs: Vec<SocketAddr>,
    attach: Attach,
    counters: Arc<XdpCounters>,
    /// The counts of programs replaced (an interface attached again), so
    /// that the totals never go back.
    retired: Counters,
    /// The server's queries through the workers, when on.
    upstream: Option<UpstreamPlan>,
    /// Said once: a program's table of served addresses would not take the
    /// addresses the upstream queries leave from.
    said_served: bool,
}

impl Keeper {
    /// Until the stop: the programs' filters brought up to date with
    /// `policy`, their counters copied (the drops told to `policy`), and
    /// every second the interfaces looked at again (MTU, MAC, the addresses
    /// served for an unspecified listen address, gone or back); then the
    /// programs detached.
    fn keep(&mut self, mut policy: Option<Box<dyn XdpPolicy>>, stop: &AtomicBool) {
        let mut said = false;
        let mut seen = Counters::default();
        let mut round = 0u32;
        loop {
            round = round.wrapping_add(1);
            if round.is_multiple_of(10) {
                self.look();
            } else {
                self.serve_replies();
            }
            // The drops per blocked network are read before the filter
            // changes: a network it takes out is counted to its last drop.
            let mut blocked = HashMap::new();
            for a in self.attached.iter_mut().filter(|a| a.ifindex.is_some()) {
                a.new_drops(&mut blocked);
            }
            if let Some(p) = policy.as_mut() {
                let filter = p.filter();
                for a in self.attached.iter_mut().filter(|a| a.ifindex.is_some()) {
                    if let Err(err) = a.program.set_filter(&filter)
                        && !std::mem::replace(&mut said, true)
                    {
                        warn!(iface = %a.name, %err, "xdp: the program's filter could not be set; its drops may be out of date");
                    }
                }
            }
            let now = self
                .attached
                .iter()
                .map(|a| a.program.counters())
                .fold(self.retired, add);
            let counters = &self.counters;
            counters.program_to_user.store(now.to_user, Relaxed);
            counters.program_blocked.store(now.blocked, Relaxed);
            counters.program_no_socket.store(now.no_socket, Relaxed);
            counters.program_not_allowed.store(now.not_allowed, Relaxed);
            if let Some(p) = policy.as_mut() {
                let blocked: Vec<(IpNet, u64)> = blocked.into_iter().collect();
                p.dropped(now.not_allowed.saturating_sub(seen.not_allowed), &blocked);
            }
            seen = now;
            if stop.load(Relaxed) {
                break;
            }
            std::thread::park_timeout(KEEP_EVERY);
        }
        // Dropped: each interface's workers stopped, its program detached.
        self.attached.clear();
    }

    /// Each interface looked at again: its MTU and MAC address for the
    /// workers, the addresses served when a listen address is unspecified,
    /// and whether it is gone (its workers stopped, its program detached:
    /// the kernel serves whatever comes) or back (attached again).
    fn look(&mut self) {
        let wildcard = self.addrs.iter().any(|a| a.ip().is_unspecified());
        for i in 0..self.attached.len() {
            let Some(a) = self.attached.get_mut(i) else {
                continue;
            };
            match live::judge(a.ifindex, iface::ifindex(&a.name)) {
                IfaceNow::Unchanged if a.ifindex.is_some() => {
                    a.live
                        .update(iface::mtu(&a.name) + ETHERNET, iface::mac(&a.name));
                    if wildcard || self.upstream.is_some() {
                        let (served, version) =
                            served_with(&a.name, &self.addrs, self.upstream.as_ref());
                        if a.program.serve(&served).is_ok() {
                            a.replies_seen = version;
                        }
                    }
                }
                IfaceNow::Unchanged => {}
                IfaceNow::Gone => {
                    warn!(who = %self.who, iface = %a.name, "xdp: the interface is gone; its workers stop (if it comes back it is attached again)");
                    a.live.retire();
                    let n = a.workers.len() as u64;
                    join(std::mem::take(&mut a.workers));
                    self.counters.sockets.fetch_sub(n, Relaxed);
                    a.program.detach();
                    a.ifindex = None;
                }
                IfaceNow::Back => match (self.attach)(&a.name) {
                    Ok(again) => {
                        info!(who = %self.who, iface = %a.name, queues = again.workers.len(), "xdp: the interface is back; serving UDP through AF_XDP again");
                        self.retired = add(self.retired, a.program.counters());
                        // The entry of the interface that was gone drops
                        // with nothing left to stop.
                        *a = again;
                    }
                    Err(why) => {
                        if !std::mem::replace(&mut a.refused, true) {
                            warn!(who = %self.who, iface = %a.name, %why, "xdp: the interface is back but XDP does not attach; serving it through sockets");
                        }
                    }
                },
            }
        }
        if let Some(u) = &self.upstream {
            let seen: Vec<IfaceSeen> = (self.attached.iter())
                .filter_map(|a| {
                    Some(IfaceSeen {
                        ifindex: a.ifindex?,
                        mac: a.live.mac(),
                        addrs: iface::addresses(&a.name),
                    })
                })
                .collect();
            u.handle.refresh(&seen);
        }
    }

    /// The addresses the server's upstream queries leave from, served by
    /// each program as soon as they change (a new port, one retired).
    fn serve_replies(&mut self) {
        let Some(u) = &self.upstream else {
            return;
        };
        let version = u.handle.reply_version();
        for a in self.attached.iter_mut().filter(|a| a.ifindex.is_some()) {
            if a.replies_seen != version {
                let (served, version) = served_with(&a.name, &self.addrs, Some(u));
                match a.program.serve(&served) {
                    Ok(()) => a.replies_seen = version,
                    // Its sockets' queries keep to the kernel's sockets
                    // (not served: their answers would miss the workers).
                    Err(err) if !std::mem::replace(&mut self.said_served, true) => {
                        warn!(iface = %a.name, addresses = served.len(), %err, "xdp: the program's table of served addresses is full; the upstream queries from its new ports go through sockets");
                    }
                    Err(_) => {}
                }
            }
        }
        let live = self.attached.iter().filter(|a| a.ifindex.is_some());
        if let Some(least) = live.map(|a| a.replies_seen).min() {
            u.handle.set_served(least);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_way_out_leaves_the_shared_socket_blocking() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dup = server.try_clone().unwrap();
        let out = kernel_path(dup, Detached::default()).unwrap();
        assert!(
            !socket2::SockRef::from(&server).nonblocking().unwrap(),
            "the server's blocking receive would spin"
        );
        // And it sends, from the server's address.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = crate::server::batch::Peer::from(client.local_addr().unwrap());
        out.send(b"x".to_vec(), peer);
        let mut buf = [0u8; 8];
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (1, server.local_addr().unwrap()));
    }
}

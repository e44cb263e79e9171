//! The XDP path of one server ([`XdpServer::start`]): on each interface the
//! program attached, told the addresses served, and an AF_XDP socket and a
//! worker thread per receive queue; a keeper thread copies the program's
//! counters for `/metrics`. Whatever cannot start is said in one log line
//! and left to the sockets: an interface the program cannot attach to is
//! served by the kernel as before, and a queue without a socket has its
//! datagrams passed to the kernel by the program. [`XdpServer::stop`] (or
//! dropping it) ends the workers and detaches the programs.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use super::counters::XdpCounters;
use super::filter::Filter;
use super::iface;
use super::program::{Counters, Program};
use super::ring::Xsk;
use super::worker::{self, KernelPath, WorkerParts};
use crate::server::Handler;

/// Ethernet header: the MTU counts from the IP header.
const ETHERNET: usize = 14;
/// How often the keeper brings the programs' filters up to date and copies
/// their counters.
const KEEP_EVERY: Duration = Duration::from_millis(100);

/// The XDP path of a server, running.
pub struct XdpServer {
    stop: Arc<AtomicBool>,
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
}

/// The server's say in what the XDP program drops (the LS's `allow` and
/// its blocks whose action is drop), asked by the keeper every
/// [`KEEP_EVERY`].
pub trait XdpPolicy: Send + 'static {
    /// The clients to drop now.
    fn filter(&mut self) -> Filter;
    /// The program dropped `not_allowed` more datagrams of clients outside
    /// the allowed networks, and `blocked` more of blocked ones.
    fn dropped(&mut self, not_allowed: u64, blocked: u64);
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
        } = plan;
        let kernel = match kernel_path(kernel_sock) {
            Ok(k) => k,
            Err(err) => {
                warn!(%who, %err, "xdp: not started (the kernel socket for large answers); serving through sockets");
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut programs = Vec::new();
        for name in ifaces {
            match start_iface(name, addrs, &handler, &counters, &kernel, &stop, later_max) {
                Ok((program, workers)) => {
                    info!(%who, iface = %name, queues = workers.len(), "xdp: serving UDP through AF_XDP");
                    programs.push(program);
                    threads.extend(workers);
                }
                Err(why) => {
                    warn!(%who, iface = %name, %why, "xdp: not on this interface; serving it through sockets");
                }
            }
        }
        if programs.is_empty() {
            stop.store(true, Relaxed);
            join(threads);
            return None;
        }
        let keeper = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("xdp-keeper".into())
                .spawn({
                    let addrs = addrs.to_vec();
                    move || keep(programs, &addrs, policy, &counters, &stop)
                })
        };
        match keeper {
            Ok(k) => threads.push(k),
            Err(err) => {
                warn!(%who, %err, "xdp: no keeper thread; serving through sockets");
                stop.store(true, Relaxed);
                join(threads);
                return None;
            }
        }
        Some(XdpServer { stop, threads })
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
fn kernel_path(sock: std::net::UdpSocket) -> std::io::Result<KernelPath> {
    let wildcard = sock.local_addr()?.ip().is_unspecified();
    Ok(KernelPath {
        wildcard,
        sock: Arc::new(sock),
        rt: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        later: Arc::new(AtomicUsize::new(0)),
    })
}

/// The program on `name`, serving `addrs`, with a socket and a worker per
/// queue; an error says why not (and leaves nothing attached).
fn start_iface<H: Handler>(
    name: &str,
    addrs: &[SocketAddr],
    handler: &Arc<H>,
    counters: &Arc<XdpCounters>,
    kernel: &KernelPath,
    stop: &Arc<AtomicBool>,
    later_max: usize,
) -> Result<(Program, Vec<JoinHandle<()>>), String> {
    let mac = iface::mac(name).ok_or_else(|| format!("{name}: its MAC address does not read"))?;
    let mut program = Program::attach(name).map_err(|e| e.to_string())?;
    let served = iface::served_on(name, addrs);
    if served.is_empty() {
        return Err(format!("{name} holds none of the addresses served"));
    }
    program.serve(&served).map_err(|e| e.to_string())?;
    let max_frame = iface::mtu(name) + ETHERNET;
    let mut workers = Vec::new();
    let mut failed = None;
    for queue in 0..iface::rx_queues(name) {
        let xsk = match Xsk::open(name, queue) {
            Ok(x) => x,
            Err(e) => {
                failed = Some(format!("queue {queue}: {e}"));
                break;
            }
        };
        if let Err(e) = program.add_socket(queue, xsk.fd()) {
            failed = Some(format!("queue {queue}: {e}"));
            break;
        }
        let parts = WorkerParts {
            handler: handler.clone(),
            counters: counters.clone(),
            max_frame,
            mac,
            later_max,
            kernel: kernel.clone(),
            stop: stop.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("xdp-{name}-{queue}"))
            .spawn(move || worker::run(xsk, parts));
        match spawned {
            Ok(t) => {
                counters.sockets.fetch_add(1, Relaxed);
                workers.push(t);
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
        Some(why) if workers.is_empty() => Err(why),
        Some(why) => {
            warn!(iface = %name, %why, "xdp: the other queues are served through sockets");
            Ok((program, workers))
        }
        None => Ok((program, workers)),
    }
}

/// Until the stop: the programs' filters brought up to date with `policy`,
/// the addresses served with the interfaces' own when a listen address is
/// unspecified, and their counters copied into `counters` (the drops told
/// to `policy`); then the programs detached.
fn keep(
    mut programs: Vec<Program>,
    addrs: &[SocketAddr],
    mut policy: Option<Box<dyn XdpPolicy>>,
    counters: &XdpCounters,
    stop: &AtomicBool,
) {
    let mut said = false;
    let mut seen = Counters::default();
    let wildcard = addrs.iter().any(|a| a.ip().is_unspecified());
    let mut round = 0u32;
    loop {
        round = round.wrapping_add(1);
        // An unspecified listen address follows the interface's addresses
        // (read again every second).
        if wildcard && round.is_multiple_of(10) {
            for prog in &mut programs {
                let served = iface::served_on(prog.iface(), addrs);
                let _ = prog.serve(&served);
            }
        }
        if let Some(p) = policy.as_mut() {
            let filter = p.filter();
            for prog in &mut programs {
                if let Err(err) = prog.set_filter(&filter)
                    && !std::mem::replace(&mut said, true)
                {
                    warn!(iface = %prog.iface(), %err, "xdp: the program's filter could not be set; its drops may be out of date");
                }
            }
        }
        let now = programs
            .iter()
            .map(Program::counters)
            .fold(Counters::default(), |a, c| Counters {
                to_user: a.to_user + c.to_user,
                blocked: a.blocked + c.blocked,
                no_socket: a.no_socket + c.no_socket,
                not_allowed: a.not_allowed + c.not_allowed,
            });
        counters.program_to_user.store(now.to_user, Relaxed);
        counters.program_blocked.store(now.blocked, Relaxed);
        counters.program_no_socket.store(now.no_socket, Relaxed);
        counters.program_not_allowed.store(now.not_allowed, Relaxed);
        if let Some(p) = policy.as_mut() {
            p.dropped(
                now.not_allowed.saturating_sub(seen.not_allowed),
                now.blocked.saturating_sub(seen.blocked),
            );
        }
        seen = now;
        if stop.load(Relaxed) {
            break;
        }
        std::thread::park_timeout(KEEP_EVERY);
    }
    for p in &mut programs {
        p.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_way_out_leaves_the_shared_socket_blocking() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dup = server.try_clone().unwrap();
        let out = kernel_path(dup).unwrap();
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

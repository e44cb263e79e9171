//! A server's queries to its backends through the AF_XDP sockets (the LS's
//! `[ls.xdp] upstream = "xdp"`): [`XskUpstream`] holds, for each backend
//! asked of, how a worker reaches it ([`super::route`]: the kernel's route
//! and next hop, read again every second by the XDP keeper), and the way
//! into each worker ([`XskUpstream::send`]: a bounded channel and the
//! worker's eventfd, as the answers given later take). The worker writes
//! the query into a free frame of its socket (Ethernet to the next hop,
//! IP and UDP with their checksums: [`super::frame::reply`]) and puts it on
//! its transmit ring; the backend's answer comes back through the program
//! (its address and port are served) to a worker, which hands it to the
//! server ([`UpstreamLink::deliver`]).
//!
//! The queries leave from the addresses of kernel UDP sockets the server
//! holds open (so the kernel gives their ports to no one else, and an
//! answer the program passes to the kernel lands on them); the server
//! says which ([`XskUpstream::set_reply_addrs`]), and the keeper adds them
//! to what the program serves. A backend the tables do not resolve, a full
//! channel, no free frame: the query goes through the kernel's socket
//! instead, counted (`upstream_sockets`).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use tracing::info;

use super::counters::XdpCounters;
use super::doorbell::{Doorbell, given_back};
use super::frame::Datagram;
use super::route::{self, IfaceSeen, Netlink, Why, XskPath};

/// Queries waiting for one worker to send them, at most (past that they
/// leave through the kernel's socket).
pub const OUTBOX_MAX: usize = 4096;

/// The server's side of its upstream queries through the workers.
pub trait UpstreamLink: Send + Sync + 'static {
    /// A datagram a worker took, sent from `from` to `to`: `true` when `to`
    /// is an address the server's queries leave from (the datagram is the
    /// server's to judge as an answer: taken or dropped, counted); `false`
    /// when it is not (a client's query, for the handler).
    fn deliver(&self, to: SocketAddr, from: SocketAddr, payload: &[u8]) -> bool;

    /// A query a worker could not put in a frame: sent from `from` to `to`
    /// through the kernel's socket on `from`.
    fn send_by_socket(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]);
}

/// The server's queries through the workers, as [`super::XdpServer::start`]
/// takes them.
#[derive(Clone)]
pub struct UpstreamPlan {
    /// The backends' paths and the workers' outboxes.
    pub handle: Arc<XskUpstream>,
    /// The server's side.
    pub link: Arc<dyn UpstreamLink>,
}

/// A query for a worker to send.
pub struct Outgoing {
    /// The frame's addresses, written as the answer to this datagram
    /// ([`super::frame::reply`]): `src` the backend, `dst` the address the
    /// query leaves from, `src_mac` the next hop's, `dst_mac` the interface's.
    pub d: Datagram,
    /// The query.
    pub payload: Vec<u8>,
}

/// The way into one worker.
#[derive(Clone)]
pub struct Outbox {
    /// Its queue of queries to send.
    pub tx: std::sync::mpsc::SyncSender<Outgoing>,
    /// Its doorbell: rung when it may be asleep.
    pub bell: Arc<Doorbell>,
}

/// The backends' paths and the workers' outboxes; see the module's header.
pub struct XskUpstream {
    /// Every backend asked of, with its path (`None`: the sockets').
    paths: ArcSwap<HashMap<IpAddr, Option<XskPath>>>,
    /// Backends asked of that `paths` does not hold yet.
    wanted: Mutex<Vec<IpAddr>>,
    /// The workers' outboxes, by interface index (read without a lock
    /// for each query; made anew when a worker starts or stops).
    outboxes: ArcSwap<HashMap<u32, Vec<Outbox>>>,
    /// Held while `outboxes` is made anew.
    changing: Mutex<()>,
    /// The addresses the queries leave from, and how many times they changed.
    reply_addrs: Mutex<(Vec<SocketAddr>, u64)>,
    /// The version of the reply addresses every attached program serves: a
    /// query leaves through a worker only from an address served, so that
    /// its answer comes back to the workers.
    served: AtomicU64,
    /// Round-robin over an interface's workers.
    next: AtomicU64,
    /// Where the queries are counted.
    pub counters: Arc<XdpCounters>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl XskUpstream {
    /// No backend known, no worker yet; queries counted in `counters`.
    pub fn new(counters: Arc<XdpCounters>) -> Self {
        counters.upstream_on.store(true, Relaxed);
        XskUpstream {
            paths: ArcSwap::default(),
            wanted: Mutex::new(Vec::new()),
            outboxes: ArcSwap::default(),
            changing: Mutex::new(()),
            reply_addrs: Mutex::new((Vec::new(), 0)),
            served: AtomicU64::new(0),
            next: AtomicU64::new(0),
            counters,
        }
    }

    /// How a worker reaches `backend`; `None`: through the sockets (a
    /// backend not seen before is looked up within a second).
    pub fn path(&self, backend: IpAddr) -> Option<XskPath> {
        if let Some(p) = self.paths.load().get(&backend) {
            return *p;
        }
        let mut wanted = locked(&self.wanted);
        if !wanted.contains(&backend) {
            wanted.push(backend);
        }
        None
    }

    /// Hands `payload` (a query from `from`, the address of one of the
    /// server's sockets, to `to`) to a worker of `path`'s interface; gives
    /// it back when there is none or its channel is full.
    ///
    /// # Errors
    /// The payload, for the caller to send through its socket.
    pub fn send(
        &self,
        path: &XskPath,
        from: SocketAddr,
        to: SocketAddr,
        payload: Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        let boxes = self.outboxes.load();
        let Some(all) = boxes.get(&path.ifindex).filter(|a| !a.is_empty()) else {
            return Err(payload);
        };
        // One worker: no count shared between threads to bump.
        let i = match all.len() {
            1 => 0,
            n => self.next.fetch_add(1, Relaxed) as usize % n,
        };
        let Some(out) = all.get(i) else {
            return Err(payload);
        };
        let msg = Outgoing {
            d: query_datagram(path, from, to),
            payload,
        };
        out.bell
            .hand(&out.tx, msg)
            .map_err(|e| given_back(e).payload)
    }

    /// A worker of interface `ifindex` takes queries through `out`.
    pub fn register(&self, ifindex: u32, out: Outbox) {
        let _one = locked(&self.changing);
        let mut boxes = HashMap::clone(&self.outboxes.load());
        boxes.entry(ifindex).or_default().push(out);
        self.outboxes.store(Arc::new(boxes));
    }

    /// The worker of `ifindex` woken by `bell` stopped: its box goes.
    pub fn unregister(&self, ifindex: u32, bell: &Arc<Doorbell>) {
        let _one = locked(&self.changing);
        let mut boxes = HashMap::clone(&self.outboxes.load());
        if let Some(all) = boxes.get_mut(&ifindex) {
            all.retain(|o| !Arc::ptr_eq(&o.bell, bell));
        }
        self.outboxes.store(Arc::new(boxes));
    }

    /// The addresses the server's queries leave from now; their version
    /// (served once [`XskUpstream::served_version`] reaches it).
    pub fn set_reply_addrs(&self, addrs: Vec<SocketAddr>) -> u64 {
        let mut r = locked(&self.reply_addrs);
        if r.0 != addrs {
            r.0 = addrs;
            r.1 += 1;
        }
        r.1
    }

    /// The version of the reply addresses that every attached program
    /// serves now (the keeper's to set).
    pub fn served_version(&self) -> u64 {
        self.served.load(Relaxed)
    }

    /// Every attached program serves the reply addresses of `version`.
    pub fn set_served(&self, version: u64) {
        self.served.fetch_max(version, Relaxed);
    }

    /// The addresses the server's queries leave from, and how many times
    /// they changed (for the keeper to see a change cheaply).
    pub fn reply_addrs(&self) -> (Vec<SocketAddr>, u64) {
        locked(&self.reply_addrs).clone()
    }

    /// How many times the reply addresses changed.
    pub fn reply_version(&self) -> u64 {
        locked(&self.reply_addrs).1
    }

    /// Every backend asked of looked up again in the kernel's tables, with
    /// the interfaces the XDP path is on now (the keeper's, every second);
    /// a change of path is logged. On a netlink error the paths are kept.
    pub fn refresh(&self, ifaces: &[IfaceSeen]) {
        let mut backends: Vec<IpAddr> = self.paths.load().keys().copied().collect();
        backends.extend(locked(&self.wanted).drain(..));
        if backends.is_empty() {
            return;
        }
        let Ok(mut nl) = Netlink::open() else {
            return;
        };
        let (mut v4, mut v6) = (None, None);
        let old = self.paths.load_full();
        let mut next = HashMap::with_capacity(backends.len());
        for b in backends {
            let neigh = if b.is_ipv4() { &mut v4 } else { &mut v6 };
            let decided = match nl.route_to(b) {
                Ok(Some(route)) => {
                    if neigh.is_none() {
                        *neigh = nl.neighbours(b.is_ipv4()).ok();
                    }
                    route::decide(b, &route, neigh.as_deref().unwrap_or_default(), ifaces)
                }
                Ok(None) => Err(Why::NoRoute),
                // Kept as it was.
                Err(_) => match old.get(&b) {
                    Some(Some(p)) => Ok(*p),
                    _ => Err(Why::NoRoute),
                },
            };
            let path = decided.as_ref().ok().copied();
            let before = old.get(&b).copied().flatten();
            if path != before {
                match decided {
                    Ok(p) => {
                        info!(backend = %b, ifindex = p.ifindex, src = %p.src, "xdp: the backend's queries go through the AF_XDP sockets")
                    }
                    Err(why) => {
                        info!(backend = %b, ?why, "xdp: the backend's queries go through the sockets")
                    }
                }
            }
            next.insert(b, path);
        }
        self.paths.store(Arc::new(next));
    }
}

/// The datagram whose answer ([`super::frame::reply`]) is the query from
/// `from` to `to` over `path`.
pub fn query_datagram(path: &XskPath, from: SocketAddr, to: SocketAddr) -> Datagram {
    Datagram {
        src: to,
        dst: from,
        payload: 0..0,
        src_mac: path.dst_mac,
        dst_mac: path.src_mac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{SlicedPacket, TransportSlice};

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const HOP: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// The frame a worker writes for a query, as another host's kernel
    /// reads it: from our MAC to the next hop's, from the reply address to
    /// the backend, every checksum right.
    #[test]
    fn a_query_s_frame_goes_from_the_reply_address_to_the_backend_checksums_right() {
        for (from, to) in [
            ("198.18.0.1:40001", "198.18.0.2:53"),
            ("[2001:2::1]:40001", "[2001:2::2]:5353"),
        ] {
            let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
            let path = XskPath {
                ifindex: 3,
                src: from.ip(),
                src_mac: OURS,
                dst_mac: HOP,
            };
            let d = query_datagram(&path, from, to);
            let mut buf = vec![0u8; 2048];
            let n = crate::xdp::frame::reply(&mut buf, &d, b"a query of odd length").unwrap();
            let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
                panic!("not ethernet")
            };
            assert_eq!((eth.source(), eth.destination()), (OURS, HOP));
            let Some(TransportSlice::Udp(udp)) = &p.transport else {
                panic!("not udp")
            };
            let (src, dst, sum) = match &p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    let h = ip.header().to_header();
                    assert_eq!(h.header_checksum, h.calc_header_checksum());
                    let sum = udp.to_header().calc_checksum_ipv4(&h, udp.payload());
                    (
                        IpAddr::from(h.source),
                        IpAddr::from(h.destination),
                        sum.unwrap(),
                    )
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    let h = ip.header().to_header();
                    let sum = udp.to_header().calc_checksum_ipv6(&h, udp.payload());
                    (
                        IpAddr::from(h.source),
                        IpAddr::from(h.destination),
                        sum.unwrap(),
                    )
                }
                _ => panic!("not ip"),
            };
            assert_eq!(udp.checksum(), sum, "UDP checksum");
            assert_eq!(SocketAddr::new(src, udp.source_port()), from);
            assert_eq!(SocketAddr::new(dst, udp.destination_port()), to);
            assert_eq!(udp.payload(), b"a query of odd length");
        }
    }

    #[test]
    fn a_backend_is_wanted_once_and_sent_to_only_through_a_worker_that_takes_it() {
        let up = XskUpstream::new(Arc::default());
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        assert_eq!(up.path(b), None);
        assert_eq!(up.path(b), None);
        assert_eq!(*locked(&up.wanted), vec![b]);
        let path = XskPath {
            ifindex: 3,
            src: "198.18.0.1".parse().unwrap(),
            src_mac: OURS,
            dst_mac: HOP,
        };
        let (from, to) = (
            "198.18.0.1:4000".parse().unwrap(),
            "198.18.0.2:53".parse().unwrap(),
        );
        // No worker: given back.
        assert_eq!(up.send(&path, from, to, vec![1]), Err(vec![1]));
        let bell = Arc::new(Doorbell::new().unwrap());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        up.register(
            3,
            Outbox {
                tx,
                bell: bell.clone(),
            },
        );
        assert_eq!(up.send(&path, from, to, vec![2]), Ok(()));
        // Full: given back.
        assert_eq!(up.send(&path, from, to, vec![3]), Err(vec![3]));
        let got = rx.try_recv().unwrap();
        assert_eq!((got.payload, got.d.src, got.d.dst), (vec![2], to, from));
        // The worker gone: given back, and its box dropped when it says so.
        drop(rx);
        assert_eq!(up.send(&path, from, to, vec![4]), Err(vec![4]));
        up.unregister(3, &bell);
        assert_eq!(up.outboxes.load().get(&3).map(Vec::len), Some(0));
    }
}

//! Where a backend's datagrams can leave through an AF_XDP socket: the
//! kernel's route to the backend (its out interface, the gateway or none
//! when the backend is on the link, the preferred source address) and the
//! next hop's MAC address in the neighbour table, read through netlink
//! (`RTM_GETROUTE` for the address, `RTM_GETNEIGH` dumped); [`decide`]
//! (pure) says from what was read whether a worker can write the frame
//! itself ([`XskPath`]) or the backend is left to the sockets ([`Why`]).
//!
//! The kernel learns a neighbour's MAC address when something of its own
//! goes to it (the health probes, which always leave through sockets); an
//! entry the kernel is not sure of any more (`STALE`, `DELAY`, `PROBE`) is
//! still the address to use, as the kernel itself uses it while it checks.
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

/// The kernel's route to one address, as far as it matters here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSeen {
    /// A unicast route (not local, blackhole, unreachable...).
    pub unicast: bool,
    /// The out interface's index.
    pub oif: Option<u32>,
    /// The gateway; `None`: the address is on the link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would send from.
    pub prefsrc: Option<IpAddr>,
}

/// One entry of the neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighSeen {
    /// The interface it is on.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub addr: IpAddr,
    /// Its link-layer address, when it has one of 6 bytes.
    pub mac: Option<[u8; 6]>,
    /// Whether its state makes the address one to send to: `REACHABLE`,
    /// `STALE`, `DELAY`, `PROBE` or `PERMANENT` (not `INCOMPLETE`,
    /// `FAILED`, `NOARP`, none).
    pub usable: bool,
}

/// One interface the XDP path is on, as the keeper read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceSeen {
    /// Its index.
    pub ifindex: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// The addresses it holds.
    pub addrs: Vec<IpAddr>,
}

/// How a worker sends to a backend itself: on which interface, from which
/// address, between which MAC addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskPath {
    /// The interface the frame leaves on.
    pub ifindex: u32,
    /// The source address (the route's, one the interface holds).
    pub src: IpAddr,
    /// The interface's MAC address.
    pub src_mac: [u8; 6],
    /// The next hop's MAC address.
    pub dst_mac: [u8; 6],
}

/// Why a backend's datagrams go through the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No route, or one the kernel does not send on (local, blackhole,
    /// unreachable, multicast...).
    NoRoute,
    /// The route leaves by an interface the XDP path is not on.
    OtherInterface,
    /// The route names no source address, or one the interface does not hold.
    NoSource,
    /// The next hop is not in the neighbour table, or not in a usable state.
    NoNeighbour,
}

/// The path to `backend`, from its route, the neighbour table and the
/// interfaces the XDP path is on; or why there is none.
///
/// # Errors
/// [`Why`] the backend is left to the sockets.
pub fn decide(
    backend: IpAddr,
    route: &RouteSeen,
    neighbours: &[NeighSeen],
    ifaces: &[IfaceSeen],
) -> Result<XskPath, Why> {
    let oif = match (route.unicast, route.oif) {
        (true, Some(oif)) => oif,
        _ => return Err(Why::NoRoute),
    };
    let iface = ifaces
        .iter()
        .find(|i| i.ifindex == oif)
        .ok_or(Why::OtherInterface)?;
    let src = route
        .prefsrc
        .filter(|s| s.is_ipv4() == backend.is_ipv4() && iface.addrs.contains(s))
        .ok_or(Why::NoSource)?;
    let hop = route.gateway.unwrap_or(backend);
    let dst_mac = neighbours
        .iter()
        .find(|n| n.ifindex == oif && n.addr == hop && n.usable)
        .and_then(|n| n.mac)
        .ok_or(Why::NoNeighbour)?;
    Ok(XskPath {
        ifindex: oif,
        src,
        src_mac: iface.mac,
        dst_mac,
    })
}

/// A netlink socket of the routing family, for [`route_to`] and
/// [`neighbours`].
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// A new socket, bound.
    ///
    /// # Errors
    /// The OS error.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends `msg` with `flags` and reads the kernel's messages until its
    /// answer ends (one message, or a dump's `DONE`).
    fn ask(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (bytes, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at < bytes.len() {
                let rest = bytes.get(at..).unwrap_or_default();
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::from(io::ErrorKind::InvalidData));
                }
                at += len.next_multiple_of(4);
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            None => Ok(out),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// The kernel's route to `dst` (`ip route get DST`); `None` when it has
    /// none (unreachable, no route).
    ///
    /// # Errors
    /// The OS error of the socket.
    pub fn route_to(&mut self, dst: IpAddr) -> io::Result<Option<RouteSeen>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let answer = match self.ask(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST) {
            Ok(a) => a,
            // No route, unreachable, prohibited: the kernel says so as an error.
            Err(e) if e.raw_os_error().is_some_and(|c| c != libc_enobufs()) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answer.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(route_seen(&r)),
            _ => None,
        }))
    }

    /// The neighbour table of `v4`'s family (IPv4's ARP, IPv6's neighbour
    /// discovery), whole.
    ///
    /// # Errors
    /// The OS error of the socket.
    pub fn neighbours(&mut self, v4: bool) -> io::Result<Vec<NeighSeen>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let all = self.ask(
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neigh_seen(&n),
                _ => None,
            })
            .collect())
    }
}

/// `ENOBUFS`: the socket's buffer overran, a real error (any other errno
/// to a route request is the kernel saying there is no route).
fn libc_enobufs() -> i32 {
    rustix::io::Errno::NOBUFS.raw_os_error()
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// What matters of a route message.
fn route_seen(r: &RouteMessage) -> RouteSeen {
    let mut seen = RouteSeen {
        unicast: r.header.kind == RouteType::Unicast,
        ..RouteSeen::default()
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => seen.oif = Some(*i),
            RouteAttribute::Gateway(g) => seen.gateway = ip_of(g),
            RouteAttribute::PrefSource(s) => seen.prefsrc = ip_of(s),
            // A gateway of the other family (RFC 5549): not a frame this
            // path writes.
            RouteAttribute::Via(_) | RouteAttribute::MultiPath(_) => seen.unicast = false,
            _ => {}
        }
    }
    seen
}

/// What matters of a neighbour message.
fn neigh_seen(n: &NeighbourMessage) -> Option<NeighSeen> {
    let mut addr = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                addr = Some(IpAddr::V4(*v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                addr = Some(IpAddr::V6(*v6));
            }
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => {}
        }
    }
    Some(NeighSeen {
        ifindex: n.header.ifindex,
        addr: addr?,
        mac,
        usable: usable(n.header.state),
    })
}

/// Whether a neighbour in `state` is one to send to.
fn usable(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const THEIRS: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn veth() -> Vec<IfaceSeen> {
        vec![IfaceSeen {
            ifindex: 7,
            mac: OURS,
            addrs: vec![ip("198.18.0.1"), ip("2001:2::1")],
        }]
    }

    fn on_link(src: &str) -> RouteSeen {
        RouteSeen {
            unicast: true,
            oif: Some(7),
            gateway: None,
            prefsrc: Some(ip(src)),
        }
    }

    fn neigh(addr: &str, mac: [u8; 6], usable: bool) -> NeighSeen {
        NeighSeen {
            ifindex: 7,
            addr: ip(addr),
            mac: Some(mac),
            usable,
        }
    }

    #[test]
    fn a_backend_on_the_link_with_a_known_neighbour_goes_through_the_xsk() {
        let n = [neigh("198.18.0.2", THEIRS, true)];
        let path = decide(ip("198.18.0.2"), &on_link("198.18.0.1"), &n, &veth());
        assert_eq!(
            path,
            Ok(XskPath {
                ifindex: 7,
                src: ip("198.18.0.1"),
                src_mac: OURS,
                dst_mac: THEIRS,
            })
        );
        // IPv6 the same way.
        let n = [neigh("2001:2::2", THEIRS, true)];
        let path = decide(ip("2001:2::2"), &on_link("2001:2::1"), &n, &veth()).unwrap();
        assert_eq!((path.src, path.dst_mac), (ip("2001:2::1"), THEIRS));
    }

    #[test]
    fn behind_a_gateway_the_frame_goes_to_the_gateway_s_mac() {
        let route = RouteSeen {
            gateway: Some(ip("198.18.0.254")),
            ..on_link("198.18.0.1")
        };
        let n = [
            neigh("203.0.113.5", THEIRS, true),
            neigh("198.18.0.254", ROUTER, true),
        ];
        let path = decide(ip("203.0.113.5"), &route, &n, &veth()).unwrap();
        assert_eq!(path.dst_mac, ROUTER);
        // The gateway unknown: sockets, even if the backend's own entry is there.
        assert_eq!(
            decide(ip("203.0.113.5"), &route, &n[..1], &veth()),
            Err(Why::NoNeighbour)
        );
    }

    #[test]
    fn what_the_tables_do_not_resolve_is_left_to_the_sockets() {
        let b = ip("198.18.0.2");
        let good = [neigh("198.18.0.2", THEIRS, true)];
        // A local or unreachable route.
        let local = RouteSeen {
            unicast: false,
            ..on_link("198.18.0.1")
        };
        assert_eq!(decide(b, &local, &good, &veth()), Err(Why::NoRoute));
        let no_oif = RouteSeen {
            oif: None,
            ..on_link("198.18.0.1")
        };
        assert_eq!(decide(b, &no_oif, &good, &veth()), Err(Why::NoRoute));
        // Out another interface (lo, eth0 without XDP).
        let other = RouteSeen {
            oif: Some(1),
            ..on_link("198.18.0.1")
        };
        assert_eq!(decide(b, &other, &good, &veth()), Err(Why::OtherInterface));
        // A source the interface does not hold, or none, or the other family's.
        for src in [Some(ip("10.0.0.1")), None, Some(ip("2001:2::1"))] {
            let r = RouteSeen {
                prefsrc: src,
                ..on_link("198.18.0.1")
            };
            assert_eq!(decide(b, &r, &good, &veth()), Err(Why::NoSource), "{src:?}");
        }
        // The neighbour unknown, in a state not to send to (INCOMPLETE,
        // FAILED), without a MAC address, or on another interface.
        let route = on_link("198.18.0.1");
        assert_eq!(decide(b, &route, &[], &veth()), Err(Why::NoNeighbour));
        let failed = [neigh("198.18.0.2", THEIRS, false)];
        assert_eq!(decide(b, &route, &failed, &veth()), Err(Why::NoNeighbour));
        let mut no_mac = neigh("198.18.0.2", THEIRS, true);
        no_mac.mac = None;
        assert_eq!(decide(b, &route, &[no_mac], &veth()), Err(Why::NoNeighbour));
        let mut elsewhere = neigh("198.18.0.2", THEIRS, true);
        elsewhere.ifindex = 8;
        assert_eq!(
            decide(b, &route, &[elsewhere], &veth()),
            Err(Why::NoNeighbour)
        );
    }

    #[test]
    fn the_usable_states_are_those_the_kernel_sends_to() {
        use NeighbourState as S;
        for s in [S::Reachable, S::Stale, S::Delay, S::Probe, S::Permanent] {
            assert!(usable(s), "{s:?}");
        }
        for s in [S::Incomplete, S::Failed, S::Noarp, S::None] {
            assert!(!usable(s), "{s:?}");
        }
    }

    /// The kernel's tables read for real: loopback's route is local (left
    /// to the sockets), and the neighbour dump reads.
    #[test]
    fn the_kernel_s_route_to_loopback_is_not_one_to_send_frames_on() {
        let Ok(mut nl) = Netlink::open() else {
            return;
        };
        let route = nl.route_to(ip("127.0.0.1")).unwrap().unwrap();
        assert!(!route.unicast, "{route:?}");
        assert_eq!(route.oif, crate::xdp::iface::ifindex("lo"));
        assert!(nl.neighbours(true).is_ok());
        assert!(nl.neighbours(false).is_ok());
    }
}

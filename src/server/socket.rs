//! Socket set-up with socket2: SO_REUSEPORT UDP sockets (one per worker) and a
//! TCP listener, bound to the same address and port.
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Receive buffer asked of the kernel for each UDP socket (it may grant less).
pub(crate) const UDP_RECV_BUFFER: usize = 4 << 20;
/// Pending connections the kernel queues before `accept`.
const TCP_BACKLOG: i32 = 1024;

/// A socket could not be set up.
///
/// Its message names the address and protocol; when the OS refused a port
/// below 1024 for want of privilege, it also says how to grant it.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({proto}){}", privilege_hint(*.addr, .source))]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// "udp", "tcp", or the encrypted transport ("tls").
    pub proto: &'static str,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Ports below this one are privileged: binding them needs root or
/// CAP_NET_BIND_SERVICE (Linux's default `net.ipv4.ip_unprivileged_port_start`).
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// How to fix a bind refused for want of privilege, or nothing for any other
/// failure (the OS error itself follows the message).
fn privilege_hint(addr: SocketAddr, source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::PermissionDenied
        && addr.port() < FIRST_UNPRIVILEGED_PORT
    {
        " (ports below 1024 need root or CAP_NET_BIND_SERVICE: \
         setcap cap_net_bind_service=+ep $(command -v dnslb), \
         or run it from its unit in deploy/: dnslb-ls.service for an LS, \
         dnslb-ts@.service for a TS, dnslb-up.service for both)"
    } else {
        ""
    }
}

fn new_socket(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let s = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: a small buffer only means drops under bursts.
    let _ = s.set_recv_buffer_size(UDP_RECV_BUFFER);
    s.bind(&addr.into())?;
    // On a wildcard address: learn each query's local address, to answer from it.
    super::batch::enable_pktinfo(&s, addr)?;
    UdpSocket::from_std(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// Binds a TCP listener alone on `addr` (an encrypted transport's), `proto` naming
/// it in errors; returns it with the address bound (the real port when 0 was asked).
///
/// # Errors
/// [`BindError`] naming the address and `proto`.
pub fn bind_stream(
    addr: SocketAddr,
    proto: &'static str,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let err = |source| BindError {
        addr,
        proto,
        source,
    };
    let tcp = tcp_listener(addr).map_err(err)?;
    let bound = tcp.local_addr().map_err(err)?;
    Ok((tcp, bound))
}

/// Times [`bind_pair`] tries another port when port 0 was asked and the port
/// the kernel picked for TCP is taken for UDP.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// Binds one TCP listener and `workers` UDP sockets on `addr`.
///
/// With port 0 the kernel picks a free TCP port, which may be in use for UDP
/// by another program: another port is then tried, a few times.
///
/// # Errors
/// [`BindError`] naming the address and protocol.
pub fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), BindError> {
    let mut attempt = 1;
    loop {
        match bind_pair_once(addr, workers) {
            Err(e)
                if addr.port() == 0
                    && attempt < PORT_ZERO_ATTEMPTS
                    && e.source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Binds one TCP listener and `workers` UDP sockets on `addr`, once; every
/// socket bound here is kept (nothing is closed and bound again, so a port
/// is never free for a moment in between).
///
/// TCP comes first and without SO_REUSEPORT: it fails if anyone else holds
/// the port for TCP (another dnslb does), which makes it the exclusivity
/// check, and it resolves port 0. The UDP sockets then join on that port
/// with SO_REUSEPORT, one per worker; a UDP socket bound there without
/// SO_REUSEPORT (another DNS server) makes that fail too. A port the kernel
/// picked (port 0) must also be free of UDP sockets with SO_REUSEPORT
/// ([`udp_vacant`]).
///
/// # Errors
/// [`BindError`] naming the address and protocol.
fn bind_pair_once(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), BindError> {
    let tcp = tcp_listener(addr).map_err(|source| BindError {
        addr,
        proto: "tcp",
        source,
    })?;
    let bound = tcp.local_addr().map_err(|source| BindError {
        addr,
        proto: "tcp",
        source,
    })?;
    join_udp(tcp, bound, workers, addr.port() == 0)
}

/// The UDP half of [`bind_pair_once`]: `workers` SO_REUSEPORT sockets on
/// `bound`, whose TCP listener `tcp` is held; with `picked` (the kernel chose
/// the port) only if no UDP socket is there yet ([`udp_vacant`]).
fn join_udp(
    tcp: TcpListener,
    bound: SocketAddr,
    workers: usize,
    picked: bool,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), BindError> {
    if picked {
        udp_vacant(bound).map_err(|source| BindError {
            addr: bound,
            proto: "udp",
            source,
        })?;
    }
    let udp = (0..workers.max(1))
        .map(|_| udp_socket(bound, true))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| BindError {
            addr: bound,
            proto: "udp",
            source,
        })?;
    Ok((udp, tcp, bound))
}

/// `Ok` when no UDP socket holds `addr`; `AddrInUse` when one does.
///
/// A port free for TCP may still be held for UDP by a socket with
/// SO_REUSEPORT of the same user: one whose server's TCP listener is gone
/// (a server whose task was dropped while its UDP workers run on, in this
/// process or another). Our sockets would join it, and the kernel would hand
/// that socket a share of the datagrams sent to us, for its server to
/// answer. A socket bound without SO_REUSEPORT or SO_REUSEADDR fails where
/// any other is bound; it is closed at once. Only asked of a port the
/// kernel picked: an address named in a config keeps joining as before.
fn udp_vacant(addr: SocketAddr) -> std::io::Result<()> {
    let probe = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    probe.bind(&addr.into())
}

/// The inode of socket `fd` (how `/proc/net/udp` names it).
pub fn socket_inode(fd: &impl std::os::fd::AsFd) -> Option<u64> {
    rustix::fs::fstat(fd).ok().map(|st| st.st_ino)
}

/// Datagrams the kernel dropped, for want of room in their receive queues,
/// on the UDP sockets of this process with one of `inodes` (the `drops`
/// column of `/proc/self/net/udp` and `udp6`). Read on demand (a metrics
/// scrape), never per datagram.
pub fn udp_drops(inodes: &[u64]) -> u64 {
    if inodes.is_empty() {
        return 0;
    }
    ["/proc/self/net/udp", "/proc/self/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|table| udp_drops_in(&table, inodes))
        .sum()
}

/// [`udp_drops`] over the text of one table.
pub fn udp_drops_in(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            let drops: u64 = cols.last()?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    fn message(addr: &str, kind: ErrorKind) -> String {
        BindError {
            addr: addr.parse().unwrap(),
            proto: "tcp",
            source: Error::from(kind),
        }
        .to_string()
    }

    const HINT: &str = "(ports below 1024 need root or CAP_NET_BIND_SERVICE: \
                        setcap cap_net_bind_service=+ep $(command -v dnslb), \
                        or run it from its unit in deploy/: dnslb-ls.service for an LS, \
         dnslb-ts@.service for a TS, dnslb-up.service for both)";

    #[test]
    fn permission_denied_below_1024_says_how_to_fix_it() {
        for addr in ["127.0.0.1:53", "[::1]:53", "0.0.0.0:1023"] {
            let msg = message(addr, ErrorKind::PermissionDenied);
            assert_eq!(msg, format!("cannot listen on {addr} (tcp) {HINT}"));
        }
    }

    #[test]
    fn other_failures_get_no_hint() {
        for (addr, kind) in [
            ("127.0.0.1:5300", ErrorKind::PermissionDenied),
            ("127.0.0.1:1024", ErrorKind::PermissionDenied),
            ("127.0.0.1:53", ErrorKind::AddrInUse),
            ("127.0.0.1:53", ErrorKind::AddrNotAvailable),
        ] {
            let msg = message(addr, kind);
            assert_eq!(msg, format!("cannot listen on {addr} (tcp)"), "{kind:?}");
        }
    }

    /// A UDP socket with SO_REUSEPORT left on a port whose TCP listener is
    /// gone (an LS whose task was dropped, its UDP workers serving on): when
    /// the kernel picks that port for a new server's TCP, the new server's
    /// UDP sockets do not join it (they would share its datagrams: some of
    /// the new server's queries answered by the old one). The bind fails
    /// and `bind_pair` tries another port; a configured port joins as before.
    #[tokio::test]
    async fn a_picked_port_whose_udp_another_server_holds_is_not_joined() {
        let (held, tcp, bound) = bind_pair_once("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        drop(tcp);
        let tcp = tcp_listener(bound).unwrap();
        let err = join_udp(tcp, bound, 2, true).unwrap_err();
        assert_eq!(err.source.kind(), ErrorKind::AddrInUse, "{err}");
        assert_eq!((err.addr, err.proto), (bound, "udp"));
        // Named in a config: joined, as before.
        let tcp = tcp_listener(bound).unwrap();
        let (joined, tcp, at) = join_udp(tcp, bound, 2, false).unwrap();
        assert_eq!((joined.len(), at), (2, bound));
        // Once the others are gone, the port is free again.
        drop((held, joined, tcp));
        let tcp = tcp_listener(bound).unwrap();
        assert!(join_udp(tcp, bound, 1, true).is_ok());
        // Port 0: a free port, every time.
        let (udp, _tcp, picked) = bind_pair("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(udp.len(), 2);
        assert_ne!(picked.port(), 0);
    }

    #[test]
    fn kernel_drops_are_read_for_our_sockets_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 459: 0100007F:797D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2373174 2 0000000060f6a262 29918\n\
 460: 0100007F:797E 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2373175 2 0000000060f6a263 7\n";
        assert_eq!(udp_drops_in(table, &[2373174]), 29918);
        assert_eq!(udp_drops_in(table, &[2373174, 2373175]), 29925);
        assert_eq!(udp_drops_in(table, &[1]), 0);
    }
}

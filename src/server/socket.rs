//! Socket set-up with socket2: SO_REUSEPORT UDP sockets (one per worker) and a
//! TCP listener, bound to the same address and port.
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Receive buffer asked of the kernel for each UDP socket (it may grant less).
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Pending connections the kernel queues before `accept`.
const TCP_BACKLOG: i32 = 1024;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({proto})")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// "udp" or "tcp".
    pub proto: &'static str,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
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
    UdpSocket::from_std(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    TcpListener::from_std(s.into())
}

/// Times [`bind_pair`] tries another port when port 0 was asked and the port
/// the kernel picked for UDP is taken for TCP.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// Binds `workers` UDP sockets and one TCP listener on `addr`.
///
/// With port 0 the kernel picks a free UDP port, which may be in use for TCP
/// (another listener, or a connection's ephemeral port): another port is then
/// tried, a few times.
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

/// Binds `workers` UDP sockets and one TCP listener on `addr`, once.
///
/// A plain (non-reuseport) UDP socket is bound first: it fails if anyone else
/// holds the port, even with SO_REUSEPORT, so two servers never silently share
/// a port; it also resolves port 0. It is then replaced by the worker sockets.
///
/// # Errors
/// [`BindError`] naming the address and protocol.
fn bind_pair_once(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), BindError> {
    let udp_err = |source| BindError {
        addr,
        proto: "udp",
        source,
    };
    let probe = udp_socket(addr, false).map_err(udp_err)?;
    let bound = probe.local_addr().map_err(udp_err)?;
    // TCP first on the resolved port while the probe still holds UDP.
    let tcp = tcp_listener(bound).map_err(|source| BindError {
        addr: bound,
        proto: "tcp",
        source,
    })?;
    drop(probe);
    let udp = (0..workers)
        .map(|_| udp_socket(bound, true))
        .collect::<Result<Vec<_>, _>>()
        .map_err(udp_err)?;
    Ok((udp, tcp, bound))
}

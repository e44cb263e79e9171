//! UDP past the kernel's socket path: an XDP program on the named interfaces
//! takes UDP to a server's listen addresses into AF_XDP sockets (one per
//! queue), and a worker per queue answers each frame in place from user
//! space; every other packet passes to the kernel untouched.
//!
//! - [`start`]: [`XdpServer::start`], the program on each interface, a
//!   socket and a worker per queue; falling back to sockets with one log line.
//! - [`program`]: the XDP program (`bpf/dnslb_xdp.c`) loaded, attached by a
//!   BPF link, its maps filled and its counters read.
//! - [`ring`]: one AF_XDP socket, its UMEM and rings: the crate's only `unsafe`.
//! - [`worker`]: the loop of one queue: frames in, the handler asked, answers out.
//! - [`doorbell`]: the eventfd that wakes a worker, written only when it may sleep.
//! - [`frame`]: reading an Ethernet frame's IPv4/IPv6 UDP datagram and
//!   turning the frame into its answer in place (pure, no I/O).
//! - [`filter`]: the clients the program drops (outside `allow`, blocked).
//! - [`iface`]: an interface's queues, MTU, MAC address and index.
//! - [`live`]: what can change under a running path (MTU, MAC, the
//!   interface gone or back) and what the keeper does then.
//! - [`route`]: the kernel's route and neighbour tables read (netlink): a
//!   backend's datagrams sent from a worker, or left to the sockets.
//! - [`upstream`]: the server's queries to its backends sent by the
//!   workers, their answers taken back.
//! - [`preflight`]: what `dnslb check` says of an interface, nothing attached.
//! - [`counters`]: what the path did, for `/metrics`.
pub mod counters;
pub mod doorbell;
pub mod filter;
pub mod frame;
pub mod iface;
pub mod live;
pub mod preflight;
pub mod program;
pub mod ring;
pub mod route;
pub mod start;
pub mod upstream;
pub mod worker;

pub use counters::XdpCounters;
pub use filter::Filter;
pub use start::{XdpPlan, XdpPolicy, XdpServer};

//! UDP past the kernel's socket path: an XDP program on the named interfaces
//! takes UDP to a server's listen ports into AF_XDP sockets (one per queue),
//! and a worker per queue answers each frame in place from user space; every
//! other packet passes to the kernel untouched.
//!
//! - [`frame`]: reading an Ethernet frame's IPv4/IPv6 UDP datagram and
//!   turning the frame into its answer in place (pure, no I/O).
pub mod frame;

//! The PROXY protocol version 2 header (HAProxy's `proxy-protocol.txt`,
//! section 2.2), read and written without allocating: a sender in front
//! puts it before a UDP datagram's DNS message or at the start of a TCP
//! connection, and tells the client's address and port and the address
//! the client reached.
//!
//! [`parse`] reads one header from the start of a buffer that may hold
//! only part of it (a TCP stream), [`parse_datagram`] one that must be
//! whole (a UDP datagram). Both are pure and treat every byte as hostile:
//! version 1's text header is refused; the TLVs after the addresses are
//! checked (each one's length must end inside the header) and skipped; a
//! header longer than [`MAX_LEN`] is refused before its bytes are awaited
//! (a stream never swallows DNS bytes as a lying header's); a length past
//! the bytes at hand is an error or "more needed", never a read beyond.
//! [`Built`] is a header written for one query (`PROXY`) or for a
//! health check (`LOCAL`).
//!
//! Hand-written rather than the `ppp` crate: the LS writes a header per
//! query into a fixed buffer on its UDP path (`ppp`'s builder makes a
//! `Vec`), and reading the fixed part is some sixty lines.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The twelve bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part: signature, version and command, family and
/// protocol, length.
const FIXED: usize = 16;
/// The longest header [`Built`] writes: the fixed part and two IPv6
/// addresses and ports.
pub const MAX_BUILT: usize = FIXED + 36;
/// The longest header body (addresses and TLVs, after the fixed sixteen
/// bytes) this reader takes: dnsdist's default maximum PROXY payload.
/// Longer is refused (a datagram dropped, a connection closed).
pub const MAX_LEN: usize = 512;

/// Why a buffer does not start with a header this reader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// It does not start with the version 2 signature.
    #[error("no PROXY v2 signature")]
    NoSignature,
    /// It starts with version 1's text header (`PROXY TCP4 ...`), refused.
    #[error("a PROXY v1 text header, refused")]
    Version1,
    /// The version nibble is not 2.
    #[error("PROXY header version {0}, not 2")]
    Version(u8),
    /// The command is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY header command {0}")]
    Command(u8),
    /// The address family is not one of UNSPEC, INET, INET6, UNIX.
    #[error("PROXY header address family {0}")]
    Family(u8),
    /// The length is shorter than its family's addresses.
    #[error("PROXY header length {0} too short for its addresses")]
    ShortAddresses(u16),
    /// A datagram shorter than the header it announces.
    #[error("PROXY header longer than the datagram")]
    Truncated,
    /// The header announces a body longer than [`MAX_LEN`].
    #[error("PROXY header length {0} over the limit")]
    TooLong(u16),
    /// A TLV after the addresses runs past the header's end.
    #[error("PROXY header TLV runs past the header")]
    Tlv,
}

/// LOCAL (the sender's own traffic: a health check) or PROXY (a relayed
/// client's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyCommand {
    /// The sender speaks for itself; the connection's own addresses hold.
    Local,
    /// The sender relays a client: [`Header::addrs`] says who.
    Proxy,
}

/// The transport the header says the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Unspecified (LOCAL, or AF_UNSPEC).
    Unspec,
    /// TCP (SOCK_STREAM).
    Stream,
    /// UDP (SOCK_DGRAM).
    Datagram,
}

/// One header read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// LOCAL or PROXY.
    pub command: ProxyCommand,
    /// The transport the client used.
    pub protocol: Protocol,
    /// The client's address and the address it reached, for a PROXY header
    /// of family INET or INET6; `None` for LOCAL, AF_UNSPEC and AF_UNIX
    /// (the receiver then keeps the sender's address).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

impl Header {
    /// The client this header speaks for: its source address when it has
    /// one, else `sender` (LOCAL, AF_UNSPEC, AF_UNIX).
    #[must_use]
    pub fn client_or(&self, sender: SocketAddr) -> SocketAddr {
        match (self.command, self.addrs) {
            (ProxyCommand::Proxy, Some((src, _))) => src,
            _ => sender,
        }
    }
}

/// Reads a header from the start of `buf`, which may hold only its first
/// bytes (a TCP stream): `Ok(None)` when more bytes are needed, else the
/// header and its whole length (TLVs included, skipped).
///
/// # Errors
/// The bytes at hand already show it is no version 2 header this reader
/// takes ([`ProxyError`]).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    let seen = buf.len().min(SIGNATURE.len());
    if buf[..seen] != SIGNATURE[..seen] {
        return Err(if b"PROXY ".starts_with(&buf[..seen.min(6)]) {
            ProxyError::Version1
        } else {
            ProxyError::NoSignature
        });
    }
    let Some(fixed) = buf.get(..FIXED) else {
        return Ok(None);
    };
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(ProxyError::Version(version));
    }
    let command = match fixed[12] & 0x0f {
        0 => ProxyCommand::Local,
        1 => ProxyCommand::Proxy,
        c => return Err(ProxyError::Command(c)),
    };
    let protocol = match fixed[13] & 0x0f {
        1 => Protocol::Stream,
        2 => Protocol::Datagram,
        _ => Protocol::Unspec,
    };
    let len = u16::from_be_bytes([fixed[14], fixed[15]]);
    let need = match fixed[13] >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        f => return Err(ProxyError::Family(f)),
    };
    if usize::from(len) < need {
        return Err(ProxyError::ShortAddresses(len));
    }
    if usize::from(len) > MAX_LEN {
        return Err(ProxyError::TooLong(len));
    }
    let total = FIXED + usize::from(len);
    let Some(body) = buf.get(FIXED..total) else {
        return Ok(None);
    };
    check_tlvs(body.get(need..).unwrap_or_default())?;
    let addrs = match (command, fixed[13] >> 4) {
        (ProxyCommand::Proxy, 1) => Some(v4_pair(body)),
        (ProxyCommand::Proxy, 2) => Some(v6_pair(body)),
        _ => None,
    };
    let header = Header {
        command,
        protocol,
        addrs,
    };
    Ok(Some((header, total)))
}

/// Checks the TLVs after the addresses: each one's type, two-byte length
/// and value must end inside the header (no byte left over).
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(&[_, hi, lo]) = tlvs.get(..3) else {
            return Err(ProxyError::Tlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        tlvs = tlvs.get(end..).ok_or(ProxyError::Tlv)?;
    }
    Ok(())
}

/// Reads the header a datagram starts with: the header and the DNS
/// message after it.
///
/// # Errors
/// No version 2 header this reader takes, or one longer than the datagram.
pub fn parse_datagram(datagram: &[u8]) -> Result<(Header, &[u8]), ProxyError> {
    match parse(datagram)? {
        Some((header, len)) => Ok((header, datagram.get(len..).unwrap_or_default())),
        None => Err(ProxyError::Truncated),
    }
}

/// Whether `buf` starts as a version 2 header does (the signature, or as
/// much of it as `buf` holds).
#[must_use]
pub fn looks_proxied(buf: &[u8]) -> bool {
    let seen = buf.len().min(SIGNATURE.len());
    seen > 0 && buf[..seen] == SIGNATURE[..seen]
}

fn port(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The addresses of an INET body (at least 12 bytes, checked by the caller).
fn v4_pair(b: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
    (
        SocketAddr::new(ip(0), port(&b[8..])),
        SocketAddr::new(ip(4), port(&b[10..])),
    )
}

/// The addresses of an INET6 body (at least 36 bytes, checked by the caller).
fn v6_pair(b: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    (
        SocketAddr::new(ip(0), port(&b[32..])),
        SocketAddr::new(ip(16), port(&b[34..])),
    )
}

/// A header written into a fixed buffer (no allocation).
#[derive(Clone, Copy)]
pub struct Built {
    bytes: [u8; MAX_BUILT],
    len: u8,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("bytes", &self.as_bytes())
            .finish()
    }
}

impl Built {
    /// A PROXY header for a client at `src` that reached `dst` over UDP
    /// (`stream` false) or TCP. One IPv4 and one IPv6 address are both
    /// written as IPv6 (the IPv4 one mapped), as the family is one.
    #[must_use]
    pub fn proxy(src: SocketAddr, dst: SocketAddr, stream: bool) -> Self {
        let proto = if stream { 0x01 } else { 0x02 };
        let mut b = Built::fixed(0x21, 0x00);
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                b.bytes[13] = 0x10 | proto;
                b.body(&[&s.octets(), &d.octets()], src.port(), dst.port());
            }
            (s, d) => {
                b.bytes[13] = 0x20 | proto;
                b.body(&[&v6(s).octets(), &v6(d).octets()], src.port(), dst.port());
            }
        }
        b
    }

    /// A LOCAL header (the sender's own query: a health check).
    #[must_use]
    pub fn local() -> Self {
        Built::fixed(0x20, 0x00)
    }

    fn fixed(ver_cmd: u8, fam: u8) -> Self {
        let mut bytes = [0u8; MAX_BUILT];
        bytes[..12].copy_from_slice(&SIGNATURE);
        bytes[12] = ver_cmd;
        bytes[13] = fam;
        Built {
            bytes,
            len: FIXED as u8,
        }
    }

    fn body(&mut self, ips: &[&[u8]; 2], sport: u16, dport: u16) {
        let mut at = FIXED;
        for ip in ips {
            self.bytes[at..at + ip.len()].copy_from_slice(ip);
            at += ip.len();
        }
        self.bytes[at..at + 2].copy_from_slice(&sport.to_be_bytes());
        self.bytes[at + 2..at + 4].copy_from_slice(&dport.to_be_bytes());
        at += 4;
        let body = (at - FIXED) as u16;
        self.bytes[14..16].copy_from_slice(&body.to_be_bytes());
        self.len = at as u8;
    }

    /// The header's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_built_proxy_header_reads_back_over_ipv4_and_ipv6_for_udp_and_tcp() {
        for (src, dst) in [
            ("192.0.2.7:40000", "127.0.0.1:53"),
            ("[2001:db8::7]:40000", "[::1]:53"),
        ] {
            for stream in [false, true] {
                let b = Built::proxy(addr(src), addr(dst), stream);
                let mut datagram = b.as_bytes().to_vec();
                datagram.extend_from_slice(b"dns");
                let (h, rest) = parse_datagram(&datagram).unwrap();
                assert_eq!(h.command, ProxyCommand::Proxy);
                let want = if stream {
                    Protocol::Stream
                } else {
                    Protocol::Datagram
                };
                assert_eq!(h.protocol, want);
                assert_eq!(h.addrs, Some((addr(src), addr(dst))));
                assert_eq!(rest, b"dns");
                assert_eq!(h.client_or(addr("10.0.0.1:1")), addr(src));
            }
        }
        assert_eq!(
            Built::proxy(addr("1.2.3.4:5"), addr("5.6.7.8:53"), false)
                .as_bytes()
                .len(),
            28
        );
        assert_eq!(
            Built::proxy(addr("[::1]:5"), addr("[::1]:53"), false)
                .as_bytes()
                .len(),
            MAX_BUILT
        );
    }

    #[test]
    fn mixed_families_are_written_as_ipv6_with_the_ipv4_address_mapped() {
        let b = Built::proxy(addr("192.0.2.7:1"), addr("[::1]:53"), false);
        let (h, _) = parse_datagram(b.as_bytes()).unwrap();
        let (src, _) = h.addrs.unwrap();
        assert_eq!(src, addr("[::ffff:192.0.2.7]:1"));
    }

    #[test]
    fn a_local_header_keeps_the_senders_address() {
        let local = Built::local();
        let (h, rest) = parse_datagram(local.as_bytes()).unwrap();
        assert_eq!(h.command, ProxyCommand::Local);
        assert_eq!(h.addrs, None);
        assert!(rest.is_empty());
        assert_eq!(h.client_or(addr("10.0.0.1:1")), addr("10.0.0.1:1"));
    }

    /// A header of `fam`, command PROXY, with `body`.
    fn raw(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&[ver_cmd, fam]);
        v.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let mut body = vec![192, 0, 2, 1, 127, 0, 0, 1, 0x9c, 0x40, 0, 53];
        body.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_NOOP
        let mut d = raw(0x21, 0x12, &body);
        d.extend_from_slice(b"q");
        let (h, rest) = parse_datagram(&d).unwrap();
        assert_eq!(
            h.addrs,
            Some((addr("192.0.2.1:40000"), addr("127.0.0.1:53")))
        );
        assert_eq!(rest, b"q");
    }

    #[test]
    fn a_tlv_running_past_the_header_or_a_stray_byte_is_refused() {
        let addrs = [192, 0, 2, 1, 127, 0, 0, 1, 0x9c, 0x40, 0, 53];
        let with = |tlvs: &[u8]| {
            let mut body = addrs.to_vec();
            body.extend_from_slice(tlvs);
            raw(0x21, 0x12, &body)
        };
        // A TLV claiming 60000 bytes with 10 at hand.
        let mut long = vec![0x04, 0xea, 0x60];
        long.extend_from_slice(&[0; 10]);
        assert_eq!(parse(&with(&long)), Err(ProxyError::Tlv));
        assert_eq!(parse_datagram(&with(&long)), Err(ProxyError::Tlv));
        // One byte past the header.
        assert_eq!(parse(&with(&[0x04, 0, 2, b'a'])), Err(ProxyError::Tlv));
        // A type with no length, a type and half a length.
        assert_eq!(parse(&with(&[0x04])), Err(ProxyError::Tlv));
        assert_eq!(parse(&with(&[0x04, 0])), Err(ProxyError::Tlv));
        // Two good TLVs, one empty.
        let good = with(&[0x04, 0, 0, 0x01, 0, 2, b'h', b'2']);
        assert_eq!(parse(&good).unwrap().unwrap().1, good.len());
        // A LOCAL header with TLVs and no addresses: checked alike.
        assert_eq!(parse(&raw(0x20, 0x00, &[0x04, 0, 9])), Err(ProxyError::Tlv));
        assert!(parse(&raw(0x20, 0x00, &[0x04, 0, 1, 0])).unwrap().is_some());
    }

    #[test]
    fn a_header_longer_than_the_limit_is_refused_before_its_bytes_arrive() {
        let mut h = raw(0x21, 0x12, &[0; 12]);
        let over = u16::try_from(MAX_LEN + 1).unwrap();
        h[14..16].copy_from_slice(&over.to_be_bytes());
        // Over a stream the fixed part alone decides: no waiting for
        // bytes that would be the client's DNS messages.
        assert_eq!(parse(&h[..16]), Err(ProxyError::TooLong(over)));
        assert_eq!(parse_datagram(&h), Err(ProxyError::TooLong(over)));
        // The limit itself is taken.
        let mut body = vec![0u8; 12];
        body.extend_from_slice(&[0x04, 0x01, 0xf1]);
        body.resize(MAX_LEN, 0);
        assert!(parse(&raw(0x21, 0x12, &body)).unwrap().is_some());
    }

    #[test]
    fn af_unspec_and_af_unix_carry_no_address() {
        let (h, _) = parse_datagram(&raw(0x21, 0x00, &[])).unwrap();
        assert_eq!((h.command, h.addrs), (ProxyCommand::Proxy, None));
        let (h, _) = parse_datagram(&raw(0x21, 0x31, &[0; 216])).unwrap();
        assert_eq!(h.addrs, None);
        assert_eq!(h.client_or(addr("10.0.0.1:1")), addr("10.0.0.1:1"));
    }

    #[test]
    fn a_length_past_the_datagram_is_truncated_and_a_stream_waits_for_more() {
        let whole = Built::proxy(addr("192.0.2.7:1"), addr("127.0.0.1:53"), true);
        let bytes = whole.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "{cut} bytes");
            assert_eq!(
                parse_datagram(&bytes[..cut]).unwrap_err(),
                ProxyError::Truncated
            );
        }
        let mut long = raw(0x21, 0x12, &[0; 12]);
        long[14..16].copy_from_slice(&300u16.to_be_bytes());
        assert_eq!(parse_datagram(&long).unwrap_err(), ProxyError::Truncated);
        assert_eq!(parse(&long), Ok(None));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::Version1)
        );
        assert_eq!(parse(b"PRO"), Err(ProxyError::Version1));
        assert_eq!(parse(b"\x12\x34\x01\x00"), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::NoSignature));
        assert_eq!(
            parse(&raw(0x11, 0x12, &[0; 12])),
            Err(ProxyError::Version(1))
        );
        assert_eq!(
            parse(&raw(0x22, 0x12, &[0; 12])),
            Err(ProxyError::Command(2))
        );
        assert_eq!(
            parse(&raw(0x21, 0x42, &[0; 12])),
            Err(ProxyError::Family(4))
        );
        assert_eq!(
            parse(&raw(0x21, 0x12, &[0; 11])),
            Err(ProxyError::ShortAddresses(11))
        );
        assert_eq!(
            parse(&raw(0x21, 0x22, &[0; 12])),
            Err(ProxyError::ShortAddresses(12))
        );
        assert!(looks_proxied(b"\r\n\r\n"));
        assert!(!looks_proxied(b"\x12\x34"));
        assert!(!looks_proxied(b""));
    }

    #[test]
    fn no_prefix_of_any_bytes_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut d = raw(0x21, (seed & 0xff) as u8, &[]);
            d[14..16].copy_from_slice(&((seed >> 8) as u16 % 300).to_be_bytes());
            d.extend((0..(seed >> 24) % 80).map(|i| (seed >> (i % 56)) as u8));
            let _ = parse_datagram(&d);
            let _ = parse(&d);
        }
    }
}

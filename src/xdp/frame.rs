//! The Ethernet frames of the XDP path. [`read`] finds the UDP datagram an
//! Ethernet II frame carries over IPv4 or IPv6 and holds it to the rules the
//! kernel's receive path holds a datagram to (lengths, fragments, checksums,
//! addresses one can answer), or says why it [`Skip`]s the frame; [`reply`]
//! (or [`payload_room`] then [`finish`]) turns the query's frame into its
//! answer in place: every header rewritten from the [`Datagram`], both
//! checksums computed. Pure: no I/O, no allocation.
//!
//! Checksums are one's-complement sums of 16-bit words, taken here as 32-bit
//! big-endian words added into a `u64` (the same sum modulo 0xffff, half the
//! additions) and folded once at the end.
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
/// Ethernet, IPv4 (no options) and UDP headers: where an IPv4 payload starts.
const V4_HEADERS: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
/// Ethernet, IPv6 and UDP headers: where an IPv6 payload starts.
const V6_HEADERS: usize = ETH_LEN + IPV6_LEN + UDP_LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const PROTO_UDP: u8 = 17;
/// IPv4's more-fragments flag and fragment offset.
const FRAGMENT_BITS: u16 = 0x3fff;
/// IPv4's don't-fragment flag, set on answers as Linux sets it on a UDP
/// socket's (path MTU discovery on; the ID is then 0, RFC 6864).
const DONT_FRAGMENT: u16 = 0x4000;
/// The TTL (IPv6: hop limit) of answers: Linux's default for both.
pub const HOP_LIMIT: u8 = 64;
/// The shortest Ethernet frame (without its FCS): a shorter answer is padded
/// with zeros up to it when the buffer has the room.
pub const MIN_FRAME: usize = 60;
/// The largest payload of an IPv4 answer (its total length is 16 bits).
const MAX_V4_PAYLOAD: usize = u16::MAX as usize - IPV4_LEN - UDP_LEN;
/// The largest payload of an IPv6 answer (its payload length is 16 bits).
const MAX_V6_PAYLOAD: usize = u16::MAX as usize - UDP_LEN;

/// Where a UDP datagram sits in a frame and who sent it to whom: what
/// [`finish`] needs to write the answer's headers (it reads none of the
/// query's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The client: the IP source address and UDP source port.
    pub src: SocketAddr,
    /// The server: the IP destination address and UDP destination port.
    pub dst: SocketAddr,
    /// The UDP payload's bytes in the frame (without Ethernet padding).
    pub payload: Range<usize>,
    /// The Ethernet source (the client's next hop).
    pub src_mac: [u8; 6],
    /// The Ethernet destination (this interface).
    pub dst_mac: [u8; 6],
}

/// Why a frame is not a datagram the server takes (counted by reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The frame ends before its headers do.
    Short,
    /// Neither IPv4 nor IPv6 (ARP, LLDP...).
    NotIp,
    /// An 802.1Q or 802.1ad tag before the IP header.
    VlanTagged,
    /// An IP version that is not the EtherType's, or an IPv4 header length
    /// under 20 bytes.
    BadIpHeader,
    /// IPv4 options (a header over 20 bytes).
    IpOptions,
    /// An IPv4 fragment (more fragments, or an offset).
    Fragment,
    /// IPv6 extension headers before the transport header.
    ExtensionHeaders,
    /// Another transport than UDP.
    NotUdp,
    /// An IP or UDP length longer than what holds it, or too short for the
    /// headers.
    BadLength,
    /// An IPv4 header checksum or a UDP checksum that does not verify.
    BadChecksum,
    /// A UDP checksum of zero ("none") over IPv6, where it is mandatory.
    ZeroChecksum,
    /// An Ethernet source or destination that is a group (multicast or
    /// broadcast) address: no single host to answer, or to answer from.
    GroupMac,
    /// A source one cannot answer: port 0, or a multicast, broadcast,
    /// loopback, unspecified (IPv4: 0.0.0.0/8) or IPv4-mapped address.
    BadSource,
    /// A destination one cannot answer from: the same rules as the source.
    BadDestination,
}

impl Skip {
    /// Every reason, in the order counters list them.
    pub const ALL: [Self; 14] = [
        Self::Short,
        Self::NotIp,
        Self::VlanTagged,
        Self::BadIpHeader,
        Self::IpOptions,
        Self::Fragment,
        Self::ExtensionHeaders,
        Self::NotUdp,
        Self::BadLength,
        Self::BadChecksum,
        Self::ZeroChecksum,
        Self::GroupMac,
        Self::BadSource,
        Self::BadDestination,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::NotIp => "not_ip",
            Self::VlanTagged => "vlan_tagged",
            Self::BadIpHeader => "bad_ip_header",
            Self::IpOptions => "ip_options",
            Self::Fragment => "fragment",
            Self::ExtensionHeaders => "extension_headers",
            Self::NotUdp => "not_udp",
            Self::BadLength => "bad_length",
            Self::BadChecksum => "bad_checksum",
            Self::ZeroChecksum => "zero_checksum",
            Self::GroupMac => "group_mac",
            Self::BadSource => "bad_source",
            Self::BadDestination => "bad_destination",
        }
    }
}

/// Reads an Ethernet II frame carrying IPv4 (no options, not a fragment) or
/// IPv6 (UDP as the next header, no extension header) and UDP, with valid
/// lengths and checksums, between addresses one can answer. Bytes after the
/// IP length (Ethernet padding) are ignored; a UDP length shorter than the IP
/// one trims the datagram, as the kernel trims it.
pub fn read(frame: &[u8]) -> Result<Datagram, Skip> {
    let (eth, rest) = frame.split_first_chunk::<ETH_LEN>().ok_or(Skip::Short)?;
    let dst_mac = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    let src_mac = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    let (src, dst, payload) = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETHERTYPE_IPV4 => read_v4(rest)?,
        ETHERTYPE_IPV6 => read_v6(rest)?,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ => return Err(Skip::VlanTagged),
        _ => return Err(Skip::NotIp),
    };
    // The group bit of either address: checked last, as the rarest.
    if (dst_mac[0] | src_mac[0]) & 1 != 0 {
        return Err(Skip::GroupMac);
    }
    Ok(Datagram {
        src,
        dst,
        payload: ETH_LEN + payload.start..ETH_LEN + payload.end,
        src_mac,
        dst_mac,
    })
}

/// An IPv4 packet's datagram: client, server and the payload's place in `ip`.
fn read_v4(ip: &[u8]) -> Result<(SocketAddr, SocketAddr, Range<usize>), Skip> {
    let (h, _) = ip.split_first_chunk::<IPV4_LEN>().ok_or(Skip::Short)?;
    if h[0] >> 4 != 4 || h[0] & 0xf < 5 {
        return Err(Skip::BadIpHeader);
    }
    if h[0] & 0xf > 5 {
        return Err(Skip::IpOptions);
    }
    if fold(add(0, h)) != 0xffff {
        return Err(Skip::BadChecksum);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total > ip.len() || total < IPV4_LEN + UDP_LEN {
        return Err(Skip::BadLength);
    }
    if u16::from_be_bytes([h[6], h[7]]) & FRAGMENT_BITS != 0 {
        return Err(Skip::Fragment);
    }
    if h[9] != PROTO_UDP {
        return Err(Skip::NotUdp);
    }
    let src = Ipv4Addr::from([h[12], h[13], h[14], h[15]]);
    let dst = Ipv4Addr::from([h[16], h[17], h[18], h[19]]);
    if !answerable_v4(src) {
        return Err(Skip::BadSource);
    }
    if !answerable_v4(dst) {
        return Err(Skip::BadDestination);
    }
    let udp = ip.get(IPV4_LEN..total).ok_or(Skip::BadLength)?;
    // The pseudo-header: both addresses, the protocol, then the UDP length.
    let pseudo = add(u64::from(PROTO_UDP), &h[12..20]);
    let (sport, dport, ulen) = read_udp(udp, pseudo, false)?;
    let src = SocketAddr::V4(SocketAddrV4::new(src, sport));
    let dst = SocketAddr::V4(SocketAddrV4::new(dst, dport));
    Ok((src, dst, IPV4_LEN + UDP_LEN..IPV4_LEN + ulen))
}

/// An IPv6 packet's datagram: client, server and the payload's place in `ip`.
fn read_v6(ip: &[u8]) -> Result<(SocketAddr, SocketAddr, Range<usize>), Skip> {
    let (h, rest) = ip.split_first_chunk::<IPV6_LEN>().ok_or(Skip::Short)?;
    if h[0] >> 4 != 6 {
        return Err(Skip::BadIpHeader);
    }
    match h[6] {
        PROTO_UDP => {}
        // Hop-by-hop, routing, fragment, ESP, AH, destination options,
        // mobility, HIP, shim6, and the two for experiments (RFC 8200 §4).
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => {
            return Err(Skip::ExtensionHeaders);
        }
        _ => return Err(Skip::NotUdp),
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let udp = rest.get(..plen).ok_or(Skip::BadLength)?;
    let mut a = [0; 16];
    a.copy_from_slice(&h[8..24]);
    let src = Ipv6Addr::from(a);
    a.copy_from_slice(&h[24..40]);
    let dst = Ipv6Addr::from(a);
    if !answerable_v6(src) {
        return Err(Skip::BadSource);
    }
    if !answerable_v6(dst) {
        return Err(Skip::BadDestination);
    }
    let pseudo = add(u64::from(PROTO_UDP), &h[8..40]);
    let (sport, dport, ulen) = read_udp(udp, pseudo, true)?;
    let src = SocketAddr::V6(SocketAddrV6::new(src, sport, 0, 0));
    let dst = SocketAddr::V6(SocketAddrV6::new(dst, dport, 0, 0));
    Ok((src, dst, IPV6_LEN + UDP_LEN..IPV6_LEN + ulen))
}

/// The ports and length of the UDP datagram at the start of `udp` (what the
/// IP length gives it), its checksum verified with `pseudo`, the sum of the
/// pseudo-header without the length.
fn read_udp(udp: &[u8], pseudo: u64, v6: bool) -> Result<(u16, u16, usize), Skip> {
    let (h, _) = udp.split_first_chunk::<UDP_LEN>().ok_or(Skip::BadLength)?;
    let mut ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if v6 && ulen == 0 {
        // Linux reads a zero length over IPv6 as "the IP payload" (a
        // jumbogram's, RFC 2675): the checksum below holds it to that.
        ulen = udp.len();
    }
    if ulen < UDP_LEN || ulen > udp.len() {
        return Err(Skip::BadLength);
    }
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    if sport == 0 {
        return Err(Skip::BadSource);
    }
    if dport == 0 {
        return Err(Skip::BadDestination);
    }
    match u16::from_be_bytes([h[6], h[7]]) {
        0 if v6 => return Err(Skip::ZeroChecksum),
        0 => {}
        _ => {
            let datagram = udp.get(..ulen).ok_or(Skip::BadLength)?;
            // `ulen` fits 32 bits: it came from a 16-bit field or a slice
            // length bounded by one.
            let _ = (pseudo, datagram);
        }
    }
    Ok((sport, dport, ulen))
}

/// An IPv4 address a datagram can come from and be answered to (the kernel
/// drops these sources and destinations as martians): not multicast,
/// limited broadcast, 0.0.0.0/8 or loopback. A subnet's broadcast address
/// cannot be told from here.
fn answerable_v4(a: Ipv4Addr) -> bool {
    !(a.is_multicast() || a.is_broadcast() || a.octets()[0] == 0 || a.is_loopback())
}

/// An IPv6 address a datagram can come from and be answered to: not
/// multicast, unspecified, loopback or IPv4-mapped (the kernel drops
/// mapped sources, RFC 4291 §2.5.5.2).
fn answerable_v6(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.to_ipv4_mapped().is_some())
}

/// Turns `buf` (its first bytes the query frame read as `d`, its length the
/// frame's capacity) into the answer frame carrying `answer`; the frame's
/// length, or None when the answer does not fit. See [`finish`].
pub fn reply(buf: &mut [u8], d: &Datagram, answer: &[u8]) -> Option<usize> {
    payload_room(buf, d)
        .get_mut(..answer.len())?
        .copy_from_slice(answer);
    finish(buf, d, answer.len())
}

/// Where the answer's payload goes in `buf`: from the end of the headers to
/// the end of the buffer (or the largest payload IP can carry), for the
/// caller to write the answer straight into before [`finish`]. It overlaps
/// the query's payload: read the query first. Empty when `d`'s two addresses
/// are not of one family.
pub fn payload_room<'a>(buf: &'a mut [u8], d: &Datagram) -> &'a mut [u8] {
    let (start, max) = match (d.src, d.dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => (V4_HEADERS, MAX_V4_PAYLOAD),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => (V6_HEADERS, MAX_V6_PAYLOAD),
        _ => return &mut [],
    };
    let end = buf.len().min(start + max);
    buf.get_mut(start..end).unwrap_or_default()
}

/// Writes the headers of the answer to `d` whose `len` payload bytes are in
/// place ([`payload_room`]): Ethernet, IP and UDP sources and destinations
/// swapped; IPv4 with no options, ID 0, DF, TTL [`HOP_LIMIT`] and its
/// header checksum; IPv6 with traffic class and flow label 0, hop limit
/// [`HOP_LIMIT`]; the lengths and the UDP checksum (over IPv4 too). The
/// query's headers are not read, so finishing twice is harmless. A frame
/// shorter than [`MIN_FRAME`] is padded with zeros when `buf` has the room.
/// The frame's length, or None when the payload does not fit `buf` or IP, or
/// `d`'s two addresses are not of one family.
pub fn finish(buf: &mut [u8], d: &Datagram, len: usize) -> Option<usize> {
    let end = match (d.src, d.dst) {
        (SocketAddr::V4(client), SocketAddr::V4(server)) => finish_v4(buf, d, client, server, len)?,
        (SocketAddr::V6(client), SocketAddr::V6(server)) => finish_v6(buf, d, client, server, len)?,
        _ => return None,
    };
    if end >= MIN_FRAME {
        return Some(end);
    }
    match buf.get_mut(end..MIN_FRAME) {
        Some(pad) => {
            pad.fill(0);
            Some(MIN_FRAME)
        }
        None => Some(end),
    }
}

/// [`finish`] over IPv4: the frame's length before padding.
fn finish_v4(
    buf: &mut [u8],
    d: &Datagram,
    client: SocketAddrV4,
    server: SocketAddrV4,
    len: usize,
) -> Option<usize> {
    if len > MAX_V4_PAYLOAD {
        return None;
    }
    let end = V4_HEADERS + len;
    let (h, payload) = buf.get_mut(..end)?.split_first_chunk_mut::<V4_HEADERS>()?;
    write_eth(h, d, ETHERTYPE_IPV4);
    let ip = &mut h[ETH_LEN..ETH_LEN + IPV4_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&((IPV4_LEN + UDP_LEN + len) as u16).to_be_bytes());
    ip[4..6].fill(0);
    ip[6..8].copy_from_slice(&DONT_FRAGMENT.to_be_bytes());
    ip[8] = HOP_LIMIT;
    ip[9] = PROTO_UDP;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&server.ip().octets());
    ip[16..20].copy_from_slice(&client.ip().octets());
    let check = !fold(add(0, ip));
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let pseudo = add(u64::from(PROTO_UDP), &ip[12..20]);
    let udp = &mut h[ETH_LEN + IPV4_LEN..];
    write_udp(udp, pseudo, server.port(), client.port(), payload);
    Some(end)
}

/// [`finish`] over IPv6: the frame's length.
fn finish_v6(
    buf: &mut [u8],
    d: &Datagram,
    client: SocketAddrV6,
    server: SocketAddrV6,
    len: usize,
) -> Option<usize> {
    if len > MAX_V6_PAYLOAD {
        return None;
    }
    let end = V6_HEADERS + len;
    let (h, payload) = buf.get_mut(..end)?.split_first_chunk_mut::<V6_HEADERS>()?;
    write_eth(h, d, ETHERTYPE_IPV6);
    let ip = &mut h[ETH_LEN..ETH_LEN + IPV6_LEN];
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&((UDP_LEN + len) as u16).to_be_bytes());
    ip[6] = PROTO_UDP;
    ip[7] = HOP_LIMIT;
    ip[8..24].copy_from_slice(&server.ip().octets());
    ip[24..40].copy_from_slice(&client.ip().octets());
    let pseudo = add(u64::from(PROTO_UDP), &ip[8..40]);
    let udp = &mut h[ETH_LEN + IPV6_LEN..];
    write_udp(udp, pseudo, server.port(), client.port(), payload);
    Some(end)
}

/// The answer's Ethernet header: back to where the query came from.
fn write_eth(h: &mut [u8], d: &Datagram, ethertype: u16) {
    h[0..6].copy_from_slice(&d.src_mac);
    h[6..12].copy_from_slice(&d.dst_mac);
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// The answer's UDP header (8 bytes of `h`) for `payload`, with its checksum
/// (`pseudo`: the pseudo-header's sum without the length); a sum of zero is
/// sent as 0xffff, zero meaning "no checksum".
fn write_udp(h: &mut [u8], pseudo: u64, sport: u16, dport: u16, payload: &[u8]) {
    // At most MAX_V6_PAYLOAD + 8: the callers checked.
    let ulen = (UDP_LEN + payload.len()) as u16;
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&ulen.to_be_bytes());
    // The header's words, its checksum 0, twice the length with the pseudo-header's.
    let head = (u64::from(sport) << 16) + u64::from(dport) + 2 * u64::from(ulen);
    let check = match !fold(add(pseudo + head, payload)) {
        0 => 0xffff,
        c => c,
    };
    h[6..8].copy_from_slice(&check.to_be_bytes());
}

/// `acc` plus the 16-bit big-endian words of `bytes` (an odd last byte as the
/// high half of a word), unfolded: added as 32-bit words into 64 bits, which
/// cannot carry out for any slice under 16 GiB.
fn add(mut acc: u64, bytes: &[u8]) -> u64 {
    let (words, tail) = bytes.as_chunks::<4>();
    for w in words {
        acc += u64::from(u32::from_be_bytes(*w));
    }
    match *tail {
        [a, b, c] => acc + u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => acc + u64::from(u16::from_be_bytes([a, b])),
        [a] => acc + (u64::from(a) << 8),
        _ => acc,
    }
}

/// `sum` folded to 16 bits with the end-around carry: the one's-complement
/// sum (0xffff for a zero sum of nonzero words; 0 only for no bits at all).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

//! The Ethernet frames of the XDP path. [`read`] finds the UDP datagram an
//! Ethernet II frame carries over IPv4 or IPv6 and holds it to the rules the
//! kernel's receive path holds a datagram to (lengths, fragments, the IPv4
//! header checksum, addresses one can answer; not the UDP checksum, which
//! checksum offload leaves partial), or says why it [`Skip`]s the frame; [`reply`]
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
/// socket's (path MTU discovery on); the ID is 0, which RFC 6864 allows on
/// a datagram that is never fragmented (Linux counts one per socket).
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
    /// An IPv4 header checksum that does not verify (the UDP checksum is
    /// not verified: see [`read`]).
    BadChecksum,
    /// A UDP checksum of zero ("none") over IPv6, where it is mandatory.
    ZeroChecksum,
    /// An Ethernet source or destination that is a group (multicast or
    /// broadcast) address: no single host to answer, or to answer from.
    GroupMac,
    /// Sent to another host's MAC address (a frame flooded by a switch, a
    /// mirror port): the kernel drops those (`PACKET_OTHERHOST`). Said by
    /// the worker, which knows the interface's address.
    OtherHost,
    /// A source one cannot answer: port 0, or a multicast, broadcast,
    /// loopback, unspecified (IPv4: 0.0.0.0/8) or IPv4-mapped address.
    BadSource,
    /// A destination one cannot answer from: the same rules as the source.
    BadDestination,
}

impl Skip {
    /// Every reason, in the order counters list them.
    pub const ALL: [Self; 15] = [
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
        Self::OtherHost,
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
            Self::OtherHost => "other_host",
            Self::BadSource => "bad_source",
            Self::BadDestination => "bad_destination",
        }
    }
}

/// Reads an Ethernet II frame carrying IPv4 (no options, not a fragment) or
/// IPv6 (UDP as the next header, no extension header) and UDP, with valid
/// lengths and IPv4 header checksum, between addresses one can answer. The
/// UDP checksum is not verified: a frame from a local socket over veth, or
/// through a NIC that offloads it, carries a partial one. Bytes after the
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
    let (sport, dport, ulen) = read_udp(udp, false)?;
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
    let (sport, dport, ulen) = read_udp(udp, true)?;
    let src = SocketAddr::V6(SocketAddrV6::new(src, sport, 0, 0));
    let dst = SocketAddr::V6(SocketAddrV6::new(dst, dport, 0, 0));
    Ok((src, dst, IPV6_LEN + UDP_LEN..IPV6_LEN + ulen))
}

/// The ports and length of the UDP datagram at the start of `udp` (what the
/// IP length gives it).
fn read_udp(udp: &[u8], v6: bool) -> Result<(u16, u16, usize), Skip> {
    let (h, _) = udp.split_first_chunk::<UDP_LEN>().ok_or(Skip::BadLength)?;
    let mut ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if v6 && ulen == 0 {
        // Linux reads a zero length over IPv6 as "the IP payload" (a
        // jumbogram's, RFC 2675): taken as the IP payload's length.
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
    // The UDP checksum is not verified, as Knot's and NSD's XDP modes do
    // not: a frame from a local socket over veth, or from a NIC that
    // offloads it, carries only the pseudo-header's partial sum, which the
    // kernel trusts on the socket path. A zero one over IPv6 ("none") is
    // still refused, as the kernel refuses it.
    if v6 && u16::from_be_bytes([h[6], h[7]]) == 0 {
        return Err(Skip::ZeroChecksum);
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

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// A UDP frame from 198.18.0.2:40000 to 198.18.0.1:53 built by etherparse.
    fn v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .udp(40000, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn v6(payload: &[u8]) -> Vec<u8> {
        let c: Ipv6Addr = "2001:2::2".parse().unwrap();
        let s: Ipv6Addr = "2001:2::1".parse().unwrap();
        let b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
            .ipv6(c.octets(), s.octets(), 64)
            .udp(40000, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// The answer frame as etherparse reads it: its addresses, ports and
    /// payload, with every checksum verified independently.
    fn checked(frame: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("not ethernet")
        };
        assert_eq!((eth.source(), eth.destination()), (SERVER_MAC, CLIENT_MAC));
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not udp")
        };
        let (src, dst, sum) = match &p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header checksum"
                );
                assert_eq!(h.time_to_live, HOP_LIMIT);
                let sum = udp
                    .to_header()
                    .calc_checksum_ipv4(&h, udp.payload())
                    .unwrap();
                (
                    IpAddr::V4(h.source.into()),
                    IpAddr::V4(h.destination.into()),
                    sum,
                )
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.hop_limit, HOP_LIMIT);
                let sum = udp
                    .to_header()
                    .calc_checksum_ipv6(&h, udp.payload())
                    .unwrap();
                (
                    IpAddr::V6(h.source.into()),
                    IpAddr::V6(h.destination.into()),
                    sum,
                )
            }
            _ => panic!("not ip"),
        };
        assert_eq!(udp.checksum(), sum, "UDP checksum");
        (
            SocketAddr::new(src, udp.source_port()),
            SocketAddr::new(dst, udp.destination_port()),
            udp.payload().to_vec(),
        )
    }

    use std::net::IpAddr;

    #[test]
    fn a_query_is_read_and_its_answer_written_over_it_with_checksums_right() {
        for (frame, client, server) in [
            (v4(b"query"), "198.18.0.2:40000", "198.18.0.1:53"),
            (v6(b"query"), "[2001:2::2]:40000", "[2001:2::1]:53"),
        ] {
            let d = read(&frame).unwrap();
            assert_eq!(d.src, client.parse().unwrap());
            assert_eq!(d.dst, server.parse().unwrap());
            assert_eq!(&frame[d.payload.clone()], b"query");
            for answer in [&b"an odd-length answer"[..], &[7u8; 1200][..], b""] {
                let mut buf = frame.clone();
                buf.resize(2048, 0xee);
                let n = reply(&mut buf, &d, answer).unwrap();
                let (src, dst, payload) = checked(&buf[..n]);
                assert_eq!((src, dst), (d.dst, d.src), "addresses swapped");
                assert_eq!(payload, answer);
            }
        }
    }

    #[test]
    fn padding_is_ignored_and_short_answers_are_padded() {
        let mut frame = v4(b"q");
        let real = frame.len();
        frame.resize(60, 0xaa);
        let d = read(&frame).unwrap();
        assert_eq!(d.payload.end, real);
        let mut buf = frame.clone();
        buf.resize(256, 0);
        assert_eq!(reply(&mut buf, &d, b"a"), Some(MIN_FRAME));
        assert_eq!(checked(&buf[..MIN_FRAME]).2, b"a");
    }

    #[test]
    fn an_answer_that_does_not_fit_is_none() {
        let frame = v4(b"q");
        let d = read(&frame).unwrap();
        let mut buf = frame.clone();
        buf.resize(100, 0);
        assert_eq!(reply(&mut buf, &d, &[0u8; 100]), None);
    }

    #[test]
    fn frames_the_kernel_would_not_deliver_are_skipped_with_their_reason() {
        let good = v4(b"query");
        let at = |f: &mut Vec<u8>, i: usize, b: u8| f[i] = b;
        let cases: Vec<(Vec<u8>, Skip)> = vec![
            (good[..10].to_vec(), Skip::Short),
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 12, 0x08);
                    at(&mut f, 13, 0x06);
                    f
                },
                Skip::NotIp,
            ),
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 12, 0x81);
                    at(&mut f, 13, 0x00);
                    f
                },
                Skip::VlanTagged,
            ),
            // IHL 6: options.
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 14, 0x46);
                    f
                },
                Skip::IpOptions,
            ),
            // More fragments.
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 20, 0x20);
                    f
                },
                Skip::Fragment,
            ),
            // Protocol TCP.
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 23, 6);
                    f
                },
                Skip::NotUdp,
            ),
            // A header checksum that does not verify.
            (
                {
                    let mut f = good.clone();
                    f[24] ^= 0xff;
                    f
                },
                Skip::BadChecksum,
            ),
            // Total length past the frame.
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 16, 0x7f);
                    f
                },
                Skip::BadLength,
            ),
            // Source port 0.
            (
                {
                    let mut f = good.clone();
                    at(&mut f, 34, 0);
                    at(&mut f, 35, 0);
                    f
                },
                Skip::BadSource,
            ),
        ];
        for (frame, want) in cases {
            let got = read(&frame);
            // A changed header byte also breaks the header checksum: the
            // reason may be that one, as the kernel checks it first too.
            assert!(
                got == Err(want) || (got == Err(Skip::BadChecksum) && want != Skip::Short),
                "{want:?}: got {got:?}"
            );
        }
        // A wrong UDP checksum is read (offload leaves partial ones).
        let mut f = good.clone();
        let n = f.len();
        f[40] ^= 0x55;
        f[n - 1] ^= 0x01;
        assert!(read(&f).is_ok());
        // IPv6 with a zero UDP checksum is refused.
        let mut f = v6(b"query");
        f[60] = 0;
        f[61] = 0;
        assert_eq!(read(&f), Err(Skip::ZeroChecksum));
        // IPv6 with a hop-by-hop header first.
        let mut f = v6(b"query");
        f[20] = 0;
        assert_eq!(read(&f), Err(Skip::ExtensionHeaders));
    }

    #[test]
    fn no_bytes_make_read_panic() {
        let good = v4(b"query with some bytes");
        for cut in 0..good.len() {
            let _ = read(&good[..cut]);
        }
        let mut f = good.clone();
        for i in 0..f.len() {
            for b in [0u8, 0xff, 0x45, 0x11] {
                let old = f[i];
                f[i] = b;
                if let Ok(d) = read(&f) {
                    let mut buf = f.clone();
                    let _ = reply(&mut buf, &d, b"x");
                }
                f[i] = old;
            }
        }
    }
}

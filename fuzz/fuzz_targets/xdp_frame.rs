//! The XDP path's frames (`dnslb::xdp::frame`) from hostile bytes.
//!
//! Input: two bytes of control (the answer's length, the buffer's spare
//! room), then an Ethernet frame. Properties: no panic; a frame read as a
//! datagram turned into its answer in place reads back as a datagram with
//! the addresses and ports swapped and the answer as its payload, and its
//! UDP checksum is right (the receiver's kernel checks it: the reader here
//! does not); an answer is refused (None) only when it does not fit.
#![no_main]

use dnslb::xdp::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[alen, room], frame_bytes)) = data.split_first_chunk::<2>() else {
        return;
    };
    let Ok(d) = frame::read(frame_bytes) else {
        return;
    };
    assert!(d.payload.end <= frame_bytes.len() && d.payload.start <= d.payload.end);
    let answer: Vec<u8> = (0..usize::from(alen) * 7).map(|i| i as u8).collect();
    let mut buf = frame_bytes.to_vec();
    buf.resize(frame_bytes.len() + usize::from(room) * 4, 0);
    let headers = d.payload.start;
    match frame::reply(&mut buf, &d, &answer) {
        Some(n) => {
            let back = frame::read(&buf[..n]).expect("an answer frame reads back");
            assert_eq!((back.src, back.dst), (d.dst, d.src));
            assert_eq!((back.src_mac, back.dst_mac), (d.dst_mac, d.src_mac));
            assert_eq!(&buf[back.payload.clone()], &answer[..]);
            let udp = &buf[back.payload.start - 8..back.payload.end];
            assert_eq!(udp_sum(back.src.ip(), back.dst.ip(), udp), 0xffff, "a bad UDP checksum");
        }
        None => assert!(headers + answer.len() > buf.len(), "an answer that fits was refused"),
    }
});

/// The one's-complement sum (folded) of the UDP pseudo-header of `src` and
/// `dst` and the datagram `udp`: 0xffff when its checksum is right.
fn udp_sum(src: std::net::IpAddr, dst: std::net::IpAddr, udp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |&b| u64::from(b));
        }
    };
    let octets = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    add(&octets(src));
    add(&octets(dst));
    let len = udp.len() as u32;
    if src.is_ipv4() {
        add(&[0, 17]);
        add(&(len as u16).to_be_bytes());
    } else {
        add(&len.to_be_bytes());
        add(&[0, 0, 0, 17]);
    }
    add(udp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

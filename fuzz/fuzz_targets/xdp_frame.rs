//! The XDP path's frames (`dnslb::xdp::frame`) from hostile bytes.
//!
//! Input: two bytes of control (the answer's length, the buffer's spare
//! room), then an Ethernet frame. Properties: no panic; a frame read as a
//! datagram turned into its answer in place reads back as a datagram with
//! the addresses and ports swapped and the answer as its payload; an answer
//! is refused (None) only when it does not fit.
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
            assert_eq!(&buf[back.payload], &answer[..]);
        }
        None => assert!(headers + answer.len() > buf.len(), "an answer that fits was refused"),
    }
});

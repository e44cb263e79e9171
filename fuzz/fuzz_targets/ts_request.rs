//! The table server's request path: any bytes from a client, over UDP or TCP,
//! from an address allowed to transfer zones or not.
//!
//! Input: one control byte (bit 0: TCP, bit 1: a source outside
//! `axfr_allow`), then the DNS message. Property: no panic, and every message
//! of the reply meets [`dnslb_fuzz::check_answer`].
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use dnslb::server::{Action, Handler, Reply, Request};
use dnslb::ts::{TableServer, TsSettings};
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fn server() -> &'static TableServer {
    static TS: OnceLock<TableServer> = OnceLock::new();
    TS.get_or_init(|| {
        let mut settings = TsSettings::serving(
            "fuzz".to_owned(),
            dnslb_fuzz::ts_fixture().to_vec(),
            Name::root(),
            60,
        );
        settings.axfr_allow = vec!["127.0.0.0/8".parse().expect("net")];
        settings.nsid = Some("ts-fuzz".to_owned());
        TableServer::load(settings).expect("the fixture loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, raw)) = data.split_first() else {
        return;
    };
    let transport = dnslb_fuzz::transport(ctl);
    let src: SocketAddr = if ctl & 2 == 0 {
        "127.0.0.1:5353".parse().expect("addr")
    } else {
        "192.0.2.1:5353".parse().expect("addr")
    };
    // The request path as the server layer calls it; with no fault knobs
    // set, every answer is given at once.
    let Action::Now(reply) = server().handle(Request {
        raw,
        src,
        transport,
        via: match transport {
            dnslb::dns::Transport::Udp => dnslb::dns::Via::Udp,
            dnslb::dns::Transport::Tcp => dnslb::dns::Via::Tcp,
        },
        local: None,
    }) else {
        panic!("an answer deferred with no fault knob set");
    };
    match reply {
        Reply::Drop => {}
        Reply::One(resp) => dnslb_fuzz::check_answer(raw, &resp, transport),
        Reply::Stream(mut msgs) => {
            let mut i = 0;
            while let Some(resp) = msgs.next_message() {
                let resp = resp.expect("the fuzz zone's transfer never stops midway");
                dnslb_fuzz::check_message(raw, &resp, transport, i == 0);
                i += 1;
            }
            assert!(i > 0, "a transfer of no message");
        }
    }
});

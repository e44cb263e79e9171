//! The load balancer's client path up to the first send: any bytes from a
//! client go through `Balancer::admit` (peek, decode, ACL, rate limit,
//! rejections), and a query admitted for forwarding gets the answer the LS
//! makes up when no backend answers. Nothing is sent: the backends are
//! 127.0.0.1 ports no test listens on, and forwarding is never started.
//!
//! Input: one control byte (bit 0: TCP; bit 1: a client outside `allow`;
//! bit 2: the balancer with a 1 qps rate limit; bit 3: the balancer with
//! the query rules, response rules and dynamic blocks of
//! `corpus/config/seed-policy.toml`, and a name blocked by hand, its
//! blocks' tick run every 256 inputs), then the DNS message.
//! Property: no panic; every answer meets [`dnslb_fuzz::check_answer`]; a
//! forwarded job keeps the client's ID and a question inside the message.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use dnslb::config::{BackendConfig, LsConfig, PoolConfig};
use dnslb::dns::{self, HEADER_LEN};
use dnslb::ls::{Admission, Balancer};
use dnslb::server::{Reply, Request};
use hickory_proto::op::ResponseCode;
use libfuzzer_sys::fuzz_target;

fn config(rate_limit_qps: u32) -> LsConfig {
    LsConfig {
        workers: 1,
        rate_limit_qps,
        allow: vec!["127.0.0.0/8".parse().expect("net")],
        backend: [("ts1", 9), ("ts2", 7)]
            .into_iter()
            .map(|(name, port)| BackendConfig {
                name: name.to_owned(),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                weight: 1,
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
            })
            .collect(),
        // A pool, so that the door's route lookup reads every question too.
        pool: vec![PoolConfig::new(
            "org",
            &["ts2"],
            vec!["example.org.".parse().expect("zone")],
        )],
        ..LsConfig::default()
    }
}

/// The balancer with rules and dynamic blocks (see the module's docs).
fn policy() -> &'static Balancer {
    static POLICY: OnceLock<Balancer> = OnceLock::new();
    POLICY.get_or_init(|| {
        let text = include_str!("../corpus/config/seed-policy.toml");
        let c = dnslb::config::Config::from_toml(text, std::path::Path::new("policy.toml"))
            .expect("the policy seed parses");
        let b = Balancer::new(c.ls.as_ref().expect("[ls]"));
        let name = "manual.example.".parse().expect("name");
        b.dynblocks()
            .add_manual(
                &dnslb::ls::dynblock::ManualTarget::Name(name),
                600,
                dnslb::config::DynAction::Refuse,
                std::time::Instant::now(),
            )
            .expect("a block by hand");
        b
    })
}

fn balancer(limited: bool) -> &'static Balancer {
    static OPEN: OnceLock<Balancer> = OnceLock::new();
    static LIMITED: OnceLock<Balancer> = OnceLock::new();
    if limited {
        LIMITED.get_or_init(|| Balancer::new(&config(1)))
    } else {
        OPEN.get_or_init(|| Balancer::new(&config(0)))
    }
}

fn check_reply(raw: &[u8], reply: &Reply, transport: dns::Transport) {
    match reply {
        Reply::Drop => {}
        Reply::One(resp) => dnslb_fuzz::check_answer(raw, resp, transport),
        Reply::Stream(_) => panic!("the LS never answers with several messages"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, raw)) = data.split_first() else {
        return;
    };
    let transport = dnslb_fuzz::transport(ctl);
    let src: SocketAddr = if ctl & 2 == 0 {
        "127.0.0.1:5353".parse().expect("addr")
    } else {
        "203.0.113.5:5353".parse().expect("addr")
    };
    let req = Request {
        raw,
        src,
        transport,
        via: match transport {
            dnslb::dns::Transport::Udp => dnslb::dns::Via::Udp,
            dnslb::dns::Transport::Tcp => dnslb::dns::Via::Tcp,
        },
        local: None,
    };
    let b = if ctl & 8 != 0 {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let runs = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if runs % 256 == 255 {
            // Judged as if a second had passed since the last tick.
            let later = std::time::Instant::now() + std::time::Duration::from_secs(runs / 256);
            policy().dynblocks().tick(later);
        }
        policy()
    } else {
        balancer(ctl & 4 != 0)
    };
    match b.admit(req) {
        Admission::Reply(reply) => check_reply(raw, &reply, transport),
        Admission::Forward(_state, admitted) => {
            assert!(ctl & 2 == 0, "a client outside allow was forwarded");
            if let Some(delay) = admitted.delay() {
                assert_eq!(delay, std::time::Duration::from_millis(5), "only `slow` delays");
            }
            // What admit read, before any copy; the job the worker makes of it.
            let question_end = admitted.question_end();
            let job = admitted.into_job(raw.to_vec());
            assert_eq!(question_end, job.question_end);
            assert_eq!(Some(job.client_id), dnslb_fuzz::query_id(raw));
            assert!(
                job.question_end > HEADER_LEN + 4 && job.question_end <= raw.len(),
                "question end {} outside the message of {}",
                job.question_end,
                raw.len()
            );
            if let Ok(q) = dns::decode_query(raw) {
                assert_eq!(q.question_end, job.question_end, "peek and decode disagree");
            }
            // The answer at the deadline, as the LS synthesizes it.
            let made_up = match dns::decode_query(&job.raw) {
                Ok(q) => Some(dns::synthesized(
                    &q,
                    transport,
                    ResponseCode::NXDomain,
                    5,
                    "no answer from ts1, ts2 within 1500 ms",
                )),
                Err(reject) => reject.response(),
            };
            if let Some(resp) = made_up {
                dnslb_fuzz::check_answer(raw, &resp, transport);
            }
        }
    }
    // The in-flight bound's answer.
    if let Some(resp) = dns::servfail_for(raw) {
        dnslb_fuzz::check_answer(raw, &resp, transport);
    }
});

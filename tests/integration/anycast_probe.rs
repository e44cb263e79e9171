//! The anycast probe's question against an LS's own defences (R3's A4,
//! A5, A6; docs/CONFIG.md `[ls.anycast]` `query`, `[ls]` `identity`), over
//! real sockets, the LS in process, its only backend a black hole:
//!
//! - a `name-rate` dynamic block keyed `server.` (suffix `.`, action drop),
//!   set off by a client flooding random names under `server.`, does not
//!   withdraw the LS: the probe (`dnslb anycast`'s own round, UDP from
//!   loopback) is answered throughout, while another client's `id.server.`
//!   (over TCP: not the probe's path) is dropped by the block;
//! - a rule that drops every name the LS does not serve (dnsdist's usual
//!   "our zones, drop the rest") does not either; other clients' identity
//!   questions are dropped by it;
//! - `hide_identity`: a client gets REFUSED, the probe its answer;
//!   `identity` is the text told.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use crate::kit::{LsServiceRun, Via, ZoneDir, poll_until_async, send, start_ls_service};
use dnslb::anycast::decision::RoundVerdict;
use dnslb::config::AnycastConfig;

/// `name` CH TXT, a random ID.
fn ch_txt(name: &str) -> Vec<u8> {
    let mut q = Query::query(Name::from_ascii(name).unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.add_query(q);
    m.to_vec().unwrap()
}

/// An LS with `[ls.anycast]` and `extra` (TOML after `[ls]`'s keys), its
/// only backend `hole`; its anycast table.
async fn anycast_ls(dir: &ZoneDir, hole: &UdpSocket, extra: &str) -> (LsServiceRun, AnycastConfig) {
    let path = dir.write(
        "config.toml",
        &format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\nmetrics = \"127.0.0.1:0\"\n{extra}\n\
             [ls.anycast]\n\n[[ls.backend]]\nname = \"hole\"\naddr = \"{}\"\n",
            hole.local_addr().unwrap()
        ),
    );
    let run = start_ls_service(&path).await;
    let cfg = dnslb::config::Config::load(&path).unwrap();
    (run, cfg.ls.unwrap().anycast.unwrap())
}

/// Five probe rounds' DNS half, as `dnslb anycast` asks: each verdict.
async fn probe_rounds(run: &LsServiceRun, a: &AnycastConfig) -> Vec<RoundVerdict> {
    let wait = Duration::from_millis(a.timeout_ms);
    let mut out = Vec::new();
    for _ in 0..5 {
        out.push(dnslb::anycast::probe::dns(run.addr, &a.query, wait).await);
    }
    out
}

/// Sends `n` `<random>.server. CH TXT` from `src`, answers not awaited.
fn flood_server_names(ls: SocketAddr, src: &str, n: usize) {
    let sock = UdpSocket::bind((src, 0)).unwrap();
    for i in 0..n {
        let name = format!("r{i}x{:08x}.server.", rand::random::<u32>());
        let _ = sock.send_to(&ch_txt(&name), ls);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rate_block_on_server_from_a_flooding_client_does_not_withdraw_the_ls() {
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let block = "[[ls.dynamic_block]]\nname = \"tld-floods\"\nkind = \"name-rate\"\n\
                 suffix = \".\"\nthreshold = 5\nwindow_s = 1\nblock_s = 30\n";
    let (run, anycast) = anycast_ls(&dir, &hole, block).await;
    let good = vec![RoundVerdict::Good; 5];
    assert_eq!(probe_rounds(&run, &anycast).await, good, "before the flood");
    let tcp_id = async || send(run.addr, &ch_txt("id.server."), Via::Tcp).await;
    assert!(
        tcp_id().await.is_ok(),
        "a client's id.server. before the flood"
    );
    // 60 random names under server. from 127.0.0.5 in a burst: `server.`
    // is blocked (drop) at the next tick.
    let blocks = run.balancer.dynblocks().clone();
    let in_force = poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            flood_server_names(run.addr, "127.0.0.5", 60);
            (blocks.in_force() > 0).then_some(())
        },
    )
    .await;
    assert!(in_force.is_some(), "the flood set off no block");
    // Another client's identity question (TCP is never the probe's path)
    // is dropped: the block holds for everybody else.
    assert!(
        tcp_id().await.is_err(),
        "a client's id.server. passed the block on server."
    );
    // The probe's is answered: the LS stays announced.
    assert_eq!(probe_rounds(&run, &anycast).await, good, "under the block");
    run.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_dropping_names_not_served_does_not_withdraw_the_ls() {
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let rules = "[[ls.rule]]\nname = \"our-zones\"\nmatch = { suffix = [\"a.test\"] }\naction = \"allow\"\n\
                 [[ls.rule]]\nname = \"nothing-else\"\nmatch = { suffix = [\".\"] }\naction = \"drop\"\n";
    let (run, anycast) = anycast_ls(&dir, &hole, rules).await;
    assert_eq!(
        probe_rounds(&run, &anycast).await,
        vec![RoundVerdict::Good; 5]
    );
    // Any other client's identity question meets the rule.
    let tcp = send(run.addr, &ch_txt("id.server."), Via::Tcp).await;
    assert!(
        tcp.is_err(),
        "the drop rule let a client's id.server. by: {tcp:?}"
    );
    let drops: u64 = run
        .balancer
        .state()
        .rules
        .counts()
        .filter(|(name, _, _)| *name == "nothing-else")
        .map(|(_, _, n)| n)
        .sum();
    assert!(drops >= 1, "the drop rule counted nothing");
    run.task.abort();
}

/// The TXT string of an identity answer.
fn txt_of(m: &Message) -> Option<String> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::TXT(t) => Some(t.to_string()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hide_identity_refuses_clients_but_answers_the_probe_and_identity_names_the_ls() {
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let (run, anycast) = anycast_ls(&dir, &hole, "identity = \"ls-7.example\"\n").await;
    for (name, via) in [
        ("id.server.", Via::Udp),
        ("hostname.bind.", Via::Udp),
        ("id.server.", Via::Tcp),
    ] {
        let m = send(run.addr, &ch_txt(name), via).await.unwrap();
        assert_eq!(
            txt_of(&m).as_deref(),
            Some("ls-7.example"),
            "{name} {via:?}"
        );
    }
    run.task.abort();
    let dir = ZoneDir::new();
    let (run, anycast2) = anycast_ls(&dir, &hole, "hide_identity = true\n").await;
    assert_eq!(anycast, anycast2);
    let m = send(run.addr, &ch_txt("id.server."), Via::Tcp)
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(txt_of(&m), None, "the name told while hidden");
    // The probe (UDP from loopback) still gets its answer.
    assert_eq!(
        probe_rounds(&run, &anycast).await,
        vec![RoundVerdict::Good; 5]
    );
    run.task.abort();
}

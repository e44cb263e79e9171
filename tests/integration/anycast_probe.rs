//! The anycast probe's question against an LS's own defences (docs/CONFIG.md
//! `[ls.anycast]` `query`, `[ls]` `identity`), over
//! real sockets, the LS in process, its only backend a black hole:
//!
//! - a `name-rate` dynamic block keyed `server.` (suffix `.`, action drop),
//!   set off by a client flooding random names under `server.`, does not
//!   withdraw the LS: the probe (`dnslb anycast`'s own round, with the
//!   token its live control gives, `GET /probe-token`) is answered
//!   throughout, while any other `id.server.`, UDP from loopback without
//!   the token included, is dropped by the block;
//! - a rule that drops every name the LS does not serve (dnsdist's usual
//!   "our zones, drop the rest") does not either; other clients' identity
//!   questions are dropped by it;
//! - `hide_identity`: a client gets REFUSED (UDP from loopback too), the
//!   probe its answer; `identity` is the text told;
//! - dnsdist on the LS's host forwards its clients' identity
//!   questions from 127.0.0.1: they get REFUSED under `hide_identity` and
//!   meet the rules, while the probe keeps its answer.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use crate::kit::{
    Dnsdist, LsRoleRun, TestMetrics, Via, ZoneDir, free_ports, need, poll_until_async, send,
    start_ls_role,
};
use dnslb::anycast::decision::RoundVerdict;
use dnslb::config::AnycastConfig;
use dnslb::ls::identity::ProbeToken;

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
/// only backend `hole`; its anycast table and its probe token, read as
/// `dnslb anycast` reads it (`GET /probe-token` on its metrics listener).
async fn anycast_ls(
    dir: &ZoneDir,
    hole: &UdpSocket,
    extra: &str,
) -> (LsRoleRun, AnycastConfig, ProbeToken) {
    let path = dir.write(
        "config.toml",
        &format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\nmetrics = \"127.0.0.1:0\"\n{extra}\n\
             [ls.anycast]\ndrain_s = 0\n\n[[ls.backend]]\nname = \"hole\"\naddr = \"{}\"\n",
            hole.local_addr().unwrap()
        ),
    );
    let run = start_ls_role(&path).await;
    let cfg = dnslb::config::Config::load(&path).unwrap();
    let metrics = TestMetrics::start(run.balancer.clone(), Default::default()).await;
    let token = dnslb::status::probe_token(metrics.addr, None, Duration::from_secs(5))
        .await
        .expect("the live control gives the probe token to loopback");
    metrics.stop().await;
    (run, cfg.ls.unwrap().anycast.unwrap(), token)
}

/// Five probe rounds' DNS half, as `dnslb anycast` asks (with `token` when
/// given): each verdict, and whether the LS acknowledged the token each
/// time it was answered.
async fn probe_rounds(
    run: &LsRoleRun,
    a: &AnycastConfig,
    token: Option<&ProbeToken>,
) -> Vec<RoundVerdict> {
    let wait = Duration::from_millis(a.timeout_ms);
    let mut out = Vec::new();
    for _ in 0..5 {
        let r = dnslb::anycast::probe::dns(run.addr, &a.query, token, wait).await;
        if r.verdict == RoundVerdict::Good {
            assert_eq!(r.token_taken, token.is_some(), "the token acknowledged");
        }
        out.push(r.verdict);
    }
    out
}

/// One DNS round of a probe without the token: UDP from loopback, nothing
/// more (which must not pass for the probe: a local forwarder sends its
/// clients' questions from loopback too).
async fn loopback_alone(run: &LsRoleRun, a: &AnycastConfig) -> RoundVerdict {
    let wait = Duration::from_millis(a.timeout_ms);
    dnslb::anycast::probe::dns(run.addr, &a.query, None, wait)
        .await
        .verdict
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
    let (run, anycast, token) = anycast_ls(&dir, &hole, block).await;
    let good = vec![RoundVerdict::Good; 5];
    let probe = Some(&token);
    assert_eq!(
        probe_rounds(&run, &anycast, probe).await,
        good,
        "before the flood"
    );
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
    // UDP from loopback proves nothing: without the token, dropped too.
    assert_eq!(loopback_alone(&run, &anycast).await, RoundVerdict::Lost);
    // The probe's is answered: the LS stays announced.
    assert_eq!(
        probe_rounds(&run, &anycast, probe).await,
        good,
        "under the block"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_dropping_names_not_served_does_not_withdraw_the_ls() {
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let rules = "[[ls.rule]]\nname = \"our-zones\"\nmatch = { suffix = [\"a.test\"] }\naction = \"allow\"\n\
                 [[ls.rule]]\nname = \"nothing-else\"\nmatch = { suffix = [\".\"] }\naction = \"drop\"\n";
    let (run, anycast, token) = anycast_ls(&dir, &hole, rules).await;
    assert_eq!(
        probe_rounds(&run, &anycast, Some(&token)).await,
        vec![RoundVerdict::Good; 5]
    );
    assert_eq!(loopback_alone(&run, &anycast).await, RoundVerdict::Lost);
    // Any other client's identity question meets the rule.
    assert_dropped(&run, run.addr, "id.server.", Via::Tcp, "nothing-else").await;
    run.stop().await;
}

/// The TXT string of an identity answer.
/// A CH TXT question for `name` sent to `to` (the LS, or a forwarder in
/// front of it) over `via` gets no answer, and the LS's drop rule `rule`
/// counted it.
async fn assert_dropped(run: &LsRoleRun, to: SocketAddr, name: &str, via: Via, rule: &str) {
    let answer = send(to, &ch_txt(name), via).await;
    assert!(
        answer.is_err(),
        "the drop rule {rule} let {name} by: {answer:?}"
    );
    let hits: u64 = run
        .balancer
        .state()
        .rules
        .counts()
        .filter(|(r, _, _)| *r == rule)
        .map(|(_, _, n)| n)
        .sum();
    assert!(hits >= 1, "the drop rule {rule} counted nothing");
}

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
    let (run, anycast, _) = anycast_ls(&dir, &hole, "identity = \"ls-7.example\"\n").await;
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
    run.stop().await;
    let dir = ZoneDir::new();
    let (run, anycast2, token) = anycast_ls(&dir, &hole, "hide_identity = true\n").await;
    assert_eq!(anycast, anycast2);
    for via in [Via::Tcp, Via::Udp] {
        let m = send(run.addr, &ch_txt("id.server."), via).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{via:?}");
        assert_eq!(txt_of(&m), None, "the name told while hidden ({via:?})");
    }
    // The probe (its token) still gets its answer.
    assert_eq!(
        probe_rounds(&run, &anycast, Some(&token)).await,
        vec![RoundVerdict::Good; 5]
    );
    run.stop().await;
}

/// dnsdist on the LS's host forwards its clients' questions from
/// 127.0.0.1. Under `hide_identity` they get REFUSED, and a rule dropping
/// `hostname.bind.` drops theirs; the probe, with its token, is answered
/// both questions, past the rule, and the LS stays announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_on_the_host_does_not_pass_its_clients_for_the_probe() {
    let Some([bin]) = need(
        "a_forwarder_on_the_host_does_not_pass_its_clients_for_the_probe",
        ["dnsdist"],
    ) else {
        return;
    };
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = ZoneDir::new();
    let extra = "identity = \"ls-secret-host\"\nhide_identity = true\n\
                 [[ls.rule]]\nname = \"no-bind\"\nmatch = { suffix = [\"bind\"] }\naction = \"drop\"\n";
    let (run, anycast, token) = anycast_ls(&dir, &hole, extra).await;
    let [port, console] = free_ports(2).try_into().unwrap();
    let mut dd = Dnsdist::in_front_of(&bin, port, console, run.addr);
    // dnsdist forwards: the first answer through it (REFUSED, the LS's).
    let through = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            dd.proc.assert_running();
            send(dd.addr, &ch_txt("id.server."), Via::Udp).await.ok()
        },
    )
    .await
    .unwrap_or_else(|| panic!("no answer through dnsdist:\n{}", dd.proc.stderr_now()));
    assert_eq!(
        (through.metadata.response_code, txt_of(&through)),
        (ResponseCode::Refused, None),
        "dnsdist's client was told the hidden identity"
    );
    // The LS saw both from loopback, and applied the rule to the second.
    assert_dropped(&run, dd.addr, "hostname.bind.", Via::Udp, "no-bind").await;
    // The probe: told, for both questions, past the rule.
    assert_eq!(
        probe_rounds(&run, &anycast, Some(&token)).await,
        vec![RoundVerdict::Good; 5]
    );
    let bind_q: dnslb::config::ProbeQuestion = "hostname.bind. TXT".parse().unwrap();
    let r =
        dnslb::anycast::probe::dns(run.addr, &bind_q, Some(&token), Duration::from_secs(2)).await;
    assert_eq!((r.verdict, r.token_taken), (RoundVerdict::Good, true));
    drop(dd);
    run.stop().await;
}

//! Unbound (a recursive resolver) in front of the LS, the LS being the
//! authoritative front end of `example.test.` for it (a `stub-zone`).
//!
//! The LS is partitioned over two `dnslb ts` serving disjoint halves of the
//! zone (`tests/data/peers/half1.zone`, `half2.zone`), with `on_timeout =
//! "servfail"` and `timeout_ms = 800`: docs/CONFIG.md (the LS) calls SERVFAIL "the honest
//! choice" behind a resolver. Normal answers pass through Unbound (A, AAAA,
//! MX, TXT, a CNAME whose target is in the other half, NXDOMAIN). Then the
//! second TS is stalled (SIGSTOP; SIGCONT from a guard before cleanup): for
//! its names, Unbound's client must get SERVFAIL within a few seconds and
//! never NXDOMAIN or an empty NOERROR (the name exists), for ~5 s and again
//! after the LS has marked the stalled TS down; the first TS's names must
//! keep answering. Each name is asked fresh (not in Unbound's cache) the
//! first time, so the answer is the LS's, not a cached one.
//!
//! Unbound runs in the foreground with a temporary config: iterator only
//! (no validation, no trust anchor), `local-zone: "." refuse` with only
//! `example.test.` let through and `outgoing-interface: 127.0.0.1`, so no
//! query can leave the machine.
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::{
    PEER_READY_LIMIT, ask, find_program, need, peers_fixture, render, show, start_ls_proc,
    start_ts_ready, summary, wait_down_logged, wait_for,
};
use crate::kit::{Proc, Unbound, free_ports, local, ls_head_toml, pair_backends_toml};

/// How long a client waits for Unbound's answer (dig's default is 5 s).
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// A "prompt" failure: SERVFAIL within this long.
const SERVFAIL_LIMIT: Duration = Duration::from_secs(5);
/// How long the stalled TS's names are asked about.
const STALL_PHASE: Duration = Duration::from_secs(5);
/// How long the LS may take to mark the stalled TS down.
const DOWN_LIMIT: Duration = Duration::from_secs(10);

/// The answer section as a set of "name type rdata" (no TTL: Unbound's
/// cache counts it down).
fn records(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let s = render(r);
            let mut f = s.splitn(3, ' ');
            let (name, _ttl, rest) = (f.next().unwrap(), f.next(), f.next().unwrap());
            format!("{name} {rest}")
        })
        .collect();
    v.sort();
    v
}

/// Asks Unbound `name qtype` (RD=1): the answer and how long it took.
async fn resolve(unbound: SocketAddr, name: &str, qtype: RecordType) -> (Message, Duration) {
    let t = Instant::now();
    let m = ask(unbound, name, qtype, true, CLIENT_WAIT).await;
    let took = t.elapsed();
    let m = m.unwrap_or_else(|| {
        panic!("Unbound gave no answer to {name} {qtype} within {CLIENT_WAIT:?}")
    });
    (m, took)
}

/// Unbound must answer `name qtype` with NOERROR and exactly `want`
/// ("name type rdata", sorted).
async fn expect_records(unbound: SocketAddr, name: &str, qtype: RecordType, want: &[&str]) {
    let (m, took) = resolve(unbound, name, qtype).await;
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert!(
        m.metadata.response_code == ResponseCode::NoError && records(&m) == want,
        "{name} {qtype} through Unbound ({took:?}): {}; want {want:?}",
        show(&m)
    );
}

/// A name of the stalled TS: Unbound must answer SERVFAIL (an honest
/// failure) within [`SERVFAIL_LIMIT`]. NXDOMAIN or an empty NOERROR would
/// deny a name that exists. Returns how long it took.
async fn expect_servfail(unbound: SocketAddr, name: &str, when: &str) -> Duration {
    let (m, took) = resolve(unbound, name, RecordType::A).await;
    let rcode = m.metadata.response_code;
    assert!(
        rcode != ResponseCode::NXDomain
            && !(rcode == ResponseCode::NoError && m.answers.is_empty()),
        "{when}: {name} exists (on the stalled TS) but Unbound's client was told it does not \
         ({took:?}): {}",
        show(&m)
    );
    assert_eq!(
        rcode,
        ResponseCode::ServFail,
        "{when}: {name} on the stalled TS ({took:?}): {}",
        show(&m)
    );
    assert!(
        took <= SERVFAIL_LIMIT,
        "{when}: SERVFAIL for {name} only after {took:?} (> {SERVFAIL_LIMIT:?})"
    );
    took
}

fn ls_config(port: u16, ts1: u16, ts2: u16) -> String {
    let ls_head = ls_head_toml(port, 2);
    format!(
        r#"{ls_head}strategy = "hedge"
layout = "partitioned"
timeout_ms = 800
on_timeout = "servfail"

[ls.health]
query = "example.test. SOA"

{}"#,
        pair_backends_toml(ts1, ts2)
    )
}

/// Two `dnslb ts` (the halves), the partitioned LS in front, and Unbound in
/// front of that when `unbound` is given. Dropped in field order: Unbound,
/// the LS, the table servers, then the folder.
struct Setup {
    unbound: Option<Unbound>,
    ls: Proc,
    ts1: Proc,
    ts2: Proc,
    ls_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start(unbound: Option<&Path>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let [p1, p2, ls_port, ub_port] = free_ports(4).try_into().unwrap();
        let (z1, z2) = (peers_fixture("half1.zone"), peers_fixture("half2.zone"));
        let ts1 = start_ts_ready("ts1", p1, &[&z1], "example.test.").await;
        let ts2 = start_ts_ready("ts2", p2, &[&z2], "example.test.").await;
        let mut ls = start_ls_proc("ls", dir.path(), &ls_config(ls_port, p1, p2), &[]);
        let ls_addr = local(ls_port);
        wait_for(
            ls_addr,
            "web.example.test.",
            RecordType::A,
            false,
            PEER_READY_LIMIT,
            &mut [&mut ls],
            |m| m.metadata.authoritative,
        )
        .await;
        let unbound = match unbound {
            Some(bin) => {
                let mut u =
                    Unbound::start_for(bin, ub_port, ("example.test.", ls_addr), "iterator", "");
                u.wait_ready().await;
                Some(u)
            }
            None => None,
        };
        Setup {
            unbound,
            ls,
            ts1,
            ts2,
            ls_addr,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_over_partitioned_ls_fails_honestly_when_a_partition_stalls() {
    const TEST: &str = "unbound_over_partitioned_ls";
    let Some([bin]) = need(TEST, ["unbound"]) else {
        return;
    };
    // Asserts wall-clock upper bounds (SERVFAIL_LIMIT): never beside a load test.
    let _load = crate::kit::timed().await;
    let mut setup = Setup::start(Some(&bin)).await;
    let Setup {
        unbound,
        ls,
        ts1,
        ts2,
        ls_addr,
        ..
    } = &mut setup;
    let (ls_addr, unbound) = (*ls_addr, unbound.as_mut().unwrap());
    let ub = unbound.addr;

    // Both halves up: every kind of answer passes through Unbound.
    let t = Instant::now();
    expect_records(
        ub,
        "www.example.test.",
        RecordType::A,
        &["www.example.test. A 192.0.2.1"],
    )
    .await;
    eprintln!("unbound: first answer through the LS in {:?}", t.elapsed());
    expect_records(
        ub,
        "www.example.test.",
        RecordType::AAAA,
        &["www.example.test. AAAA 2001:db8::1"],
    )
    .await;
    // A CNAME and its target, both in the second half. (A CNAME into the
    // other half: `partitioned_ls_passes_a_cname_into_another_partition`.)
    expect_records(
        ub,
        "alias2.example.test.",
        RecordType::A,
        &[
            "alias2.example.test. CNAME web.example.test.",
            "web.example.test. A 192.0.2.80",
        ],
    )
    .await;
    expect_records(
        ub,
        "example.test.",
        RecordType::MX,
        &["example.test. MX 10 mail.example.test."],
    )
    .await;
    expect_records(
        ub,
        "info.example.test.",
        RecordType::TXT,
        &["info.example.test. TXT text from the second half"],
    )
    .await;
    expect_records(
        ub,
        "mail.example.test.",
        RecordType::A,
        &["mail.example.test. A 192.0.2.25"],
    )
    .await;
    let (m, _) = resolve(ub, "nope.example.test.", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "both halves say no: {}",
        show(&m)
    );

    // The second TS stalls: it holds its names but answers nothing.
    let _resume = ts2.pause();
    let stalled = Instant::now();
    let stopped_at = SystemTime::now();
    // At once, before the LS can have marked ts2 down: four fresh names of
    // ts2 and two of ts1, all together.
    let stalled_first = (1..=4).map(|i| async move {
        let name = format!("stalled{i}.example.test.");
        expect_servfail(ub, &name, "ts2 just stalled").await
    });
    let live_first = (1..=2).map(|i| async move {
        let name = format!("live{i}.example.test.");
        let t = Instant::now();
        let want = format!("{name} A 192.0.2.{}", 100 + i);
        expect_records(ub, &name, RecordType::A, &[&want]).await;
        t.elapsed()
    });
    let (mut fresh, mut live) = tokio::join!(
        futures_util::future::join_all(stalled_first),
        futures_util::future::join_all(live_first)
    );
    // Then a round every 100 ms for the rest of the phase: stalled5..6 and
    // live3..6 fresh, then stalled1..6 again (cached or not: never a denial).
    let mut again = Vec::new();
    let mut round = 0;
    while stalled.elapsed() < STALL_PHASE {
        let i = round % 6 + 1;
        let name = format!("stalled{}.example.test.", (i + 3) % 6 + 1);
        let took = expect_servfail(ub, &name, "ts2 stalled").await;
        if round < 2 {
            fresh.push(took);
        } else {
            again.push(took);
        }
        if round < 4 {
            let name = format!("live{}.example.test.", round + 3);
            let t = Instant::now();
            let want = format!("{name} A 192.0.2.{}", 103 + round);
            expect_records(ub, &name, RecordType::A, &[&want]).await;
            live.push(t.elapsed());
        }
        round += 1;
        ts1.assert_running();
        ls.assert_running();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = wait_down_logged(ls, "ts2", stopped_at, DOWN_LIMIT).await;

    // Marked down: the LS answers SERVFAIL at once once ts1 has said no.
    let mut after_down = Vec::new();
    for name in ["stalled7.example.test.", "stalled8.example.test."] {
        after_down.push(expect_servfail(ub, name, "ts2 marked down").await);
    }
    for (i, name) in ["live7.example.test.", "live8.example.test."]
        .iter()
        .enumerate()
    {
        let t = Instant::now();
        let ip = format!("192.0.2.{}", 107 + i);
        expect_records(ub, name, RecordType::A, &[&format!("{name} A {ip}")]).await;
        live.push(t.elapsed());
    }
    after_down.push(expect_servfail(ub, "stalled1.example.test.", "ts2 marked down").await);
    // The LS itself, asked directly, says the same (no RD: as Unbound asks).
    let direct = ask(
        ls_addr,
        "stalled1.example.test.",
        RecordType::A,
        false,
        CLIENT_WAIT,
    )
    .await
    .expect("the LS answers");
    assert_eq!(
        direct.metadata.response_code,
        ResponseCode::ServFail,
        "the LS's own answer: {}",
        show(&direct)
    );

    eprintln!(
        "unbound over partitioned LS, ts2 SIGSTOPped: SERVFAIL for ts2's names: fresh (4 at once, then 2) \
         {:?}; asked again {}; after ts2 was marked down {:?}; the LS marked ts2 down {:?} \
         after the SIGSTOP; ts1's fresh names {}",
        fresh,
        summary(&again),
        after_down,
        down,
        summary(&live)
    );
    unbound.proc.assert_running();
}

/// A CNAME in one partition whose target is in the other: the first TS
/// answers NXDOMAIN *with the CNAME* in its answer section (RFC 6604: the
/// rcode is about the chain's last name, which it does not hold), the
/// second a bare NXDOMAIN. docs/CONFIG.md (the LS) (partitioned): "The first positive
/// answer (records in the answer section, a CNAME, or a referral) ends the
/// query", so the LS must pass on the answer with the CNAME, and a resolver
/// then follows it into the other partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_ls_passes_a_cname_into_another_partition() {
    // The LS is asked directly in any case; through Unbound when installed.
    let bin = find_program("unbound");
    if bin.is_none() {
        crate::kit::skip(
            "partitioned_ls_cname (its Unbound part)",
            "unbound not installed",
        );
    }
    let setup = Setup::start(bin.as_deref()).await;
    const ROUNDS: usize = 20;
    let mut without_cname = Vec::new();
    for _ in 0..ROUNDS {
        let m = ask(
            setup.ls_addr,
            "alias.example.test.",
            RecordType::A,
            false,
            CLIENT_WAIT,
        )
        .await
        .expect("the LS answers");
        if !m
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME)
        {
            without_cname.push(show(&m));
        }
    }
    let through_unbound = match &setup.unbound {
        Some(u) => {
            let (m, _) = resolve(u.addr, "alias.example.test.", RecordType::A).await;
            let want = [
                "alias.example.test. CNAME web.example.test.",
                "web.example.test. A 192.0.2.80",
            ];
            let ok = m.metadata.response_code == ResponseCode::NoError && records(&m) == want;
            (!ok).then(|| show(&m))
        }
        None => None,
    };
    // An NXDOMAIN carrying the CNAME is a positive answer (it once counted
    // as a negative, and the bare NXDOMAIN of the other partition was
    // passed on: the existing name was denied).
    assert!(
        without_cname.is_empty() && through_unbound.is_none(),
        "alias.example.test. exists (a CNAME on ts1, its target on ts2), yet: the LS answered \
         without the CNAME {} time(s) of {ROUNDS} (e.g. {:?}); through Unbound: {}",
        without_cname.len(),
        without_cname.first(),
        through_unbound.as_deref().unwrap_or("correct (or not run)")
    );
}

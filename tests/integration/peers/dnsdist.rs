//! dnsdist (PowerDNS's DNS load balancer) in front of two `dnslb ts`
//! processes serving the same zone: dnsdist's own health checks (an SOA
//! query for the zone every second) must see both up, round-robin must
//! reach both, and every answer through dnsdist must be the TS's own. Then
//! one TS is SIGKILLed: dnsdist marks it down and keeps answering from the
//! other.
//!
//! dnsdist is the kit's ([`Dnsdist`]): in the foreground with its Lua
//! config in a temporary folder, its console read with `showServers()`, the
//! security poll off (no query leaves the machine).
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::kit::{
    Dnsdist, PEER_READY_LIMIT, PeerView, ask, need, peers_fixture, start_ts_ready, summary,
    wait_for,
};
use crate::kit::{free_ports, local};

/// How long dnsdist may take to mark a dead backend down (checks every
/// second, one failure marks it down).
const DOWN_LIMIT: Duration = Duration::from_secs(10);

/// What dnsdist is asked and compared with the TS's own answer.
const PROBES: &[(&str, RecordType)] = crate::kit::EXAMPLE_TEST_PROBES;

fn state_of<'a>(servers: &'a [(String, String, u64)], name: &str) -> Option<&'a str> {
    servers.iter().find(|s| s.0 == name).map(|s| s.1.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsdist_health_checks_and_forwards_to_two_table_servers() {
    let Some([bin]) = need("dnsdist_in_front_of_two_ts", ["dnsdist"]) else {
        return;
    };
    let zone = peers_fixture("example.test.zone");
    let [p1, p2, port, console] = free_ports(4).try_into().unwrap();
    let mut ts1 = start_ts_ready("ts1", p1, &[&zone], "example.test.").await;
    let mut ts2 = start_ts_ready("ts2", p2, &[&zone], "example.test.").await;
    let mut dd = Dnsdist::start(
        &bin,
        port,
        console,
        &[("ts1", local(p1)), ("ts2", local(p2))],
    );

    // Its health checks see both up.
    let t = Instant::now();
    dd.wait_servers(PEER_READY_LIMIT, "both backends up", |s| {
        state_of(s, "ts1") == Some("up") && state_of(s, "ts2") == Some("up")
    });
    eprintln!(
        "dnsdist: both table servers up {:?} after its start",
        t.elapsed()
    );
    // Up because a health check succeeded, not by default (its line may
    // reach our reader of dnsdist's stderr after the console says so).
    for (name, p) in [("ts1", p1), ("ts2", p2)] {
        let line = format!("Marking downstream {name} (127.0.0.1:{p}) as 'up'");
        dd.proc.wait_line(&line, PEER_READY_LIMIT).await;
    }
    wait_for(
        dd.addr,
        "www.example.test.",
        RecordType::A,
        false,
        PEER_READY_LIMIT,
        &mut [&mut dd.proc],
        |m| m.metadata.authoritative,
    )
    .await;

    // Every answer through dnsdist is the TS's own, a few rounds (so that
    // round-robin reaches both).
    let mut took = Vec::new();
    for _ in 0..3 {
        for &(name, qtype) in PROBES {
            let direct = ask(local(p1), name, qtype, false, Duration::from_secs(2))
                .await
                .expect("the TS answers");
            let t = Instant::now();
            let via = ask(dd.addr, name, qtype, false, Duration::from_secs(2)).await;
            took.push(t.elapsed());
            let via = via.unwrap_or_else(|| panic!("dnsdist: no answer to {name} {qtype}"));
            PeerView::assert_same(&via, &direct, &format!("{name} {qtype}: dnsdist vs TS"));
        }
    }
    eprintln!("dnsdist -> TS answers: {}", summary(&took));
    let servers = dd.servers().expect("dnsdist's console answers");
    for name in ["ts1", "ts2"] {
        let s = servers.iter().find(|s| s.0 == name).unwrap();
        assert!(
            s.1 == "up" && s.2 > 0,
            "round-robin reaches {name}, still up: {servers:?}"
        );
    }
    let log = dd.proc.stderr_now();
    assert!(
        !log.contains("as 'down'"),
        "no backend was ever marked down while both ran:\n{log}"
    );

    // ts1 killed: dnsdist's checks mark it down, ts2 answers everything.
    let killed = Instant::now();
    ts1.kill_hard();
    dd.wait_servers(DOWN_LIMIT, "ts1 down, ts2 up", |s| {
        state_of(s, "ts1") == Some("down") && state_of(s, "ts2") == Some("up")
    });
    eprintln!(
        "dnsdist: ts1 marked down {:?} after its SIGKILL",
        killed.elapsed()
    );
    for &(name, qtype) in PROBES {
        let direct = ask(local(p2), name, qtype, false, Duration::from_secs(2))
            .await
            .expect("ts2 answers");
        let via = ask(dd.addr, name, qtype, false, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("dnsdist with ts1 down: no answer to {name} {qtype}"));
        PeerView::assert_same(&via, &direct, &format!("{name} {qtype}: dnsdist vs ts2"));
    }
    ts2.assert_running();
    dd.proc.assert_running();
}

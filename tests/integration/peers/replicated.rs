//! `dnslb ls` with `layout = "replicated"` in front of two standard
//! authoritative servers, NSD and Knot, serving the same zone file
//! (`tests/data/peers/example.test.zone`): one LS process per strategy (race,
//! hedge, sequential), Knot first in `fixed` order.
//!
//! Every answer through an LS must equal NSD's own answer to the same
//! question (rcode, AA, answer set, negative SOA). Then Knot is SIGKILLed:
//! every name must still answer correctly through every LS: at once under
//! race; within the LS's deadline under the others until the health checks
//! mark Knot down; promptly under all three once they have.
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::rr::RecordType;

use crate::kit::Knot;
use crate::kit::Nsd;
use crate::kit::{
    PeerView, ask, need, peers_fixture, show, start_ls_proc, summary, wait_down_logged, wait_for,
};
use crate::kit::{Proc, backends_toml, free_ports, local, ls_fixed_head_toml};

/// The questions asked ([`crate::kit::EXAMPLE_TEST_PROBES`]).
const PROBES: &[(&str, RecordType)] = crate::kit::EXAMPLE_TEST_PROBES;

/// How long one question may take through an LS while the first backend is
/// dead and not yet marked down: the LS's 1500 ms deadline and some.
const SLOW_LIMIT: Duration = Duration::from_secs(3);
/// How long one question may take when a live backend answers it at once
/// (race with Knot dead, or any strategy once Knot is marked down): a loose
/// bound for a loaded 2-core machine; the figures printed are the real ones.
const PROMPT: Duration = Duration::from_millis(500);
/// How long the health checks may take to mark Knot down (probes every
/// 250 ms, two failures in a row).
const DOWN_LIMIT: Duration = Duration::from_secs(10);

/// The LS config: `strategy`, replicated, Knot then NSD in fixed order,
/// SERVFAIL at the deadline (so a deadline answer can never pass for a
/// real one), health probes of the zone's SOA every 250 ms.
fn ls_config(port: u16, strategy: &str, knot: SocketAddr, nsd: SocketAddr) -> String {
    let ls_head = ls_fixed_head_toml(port, strategy, "replicated");
    format!(
        r#"{ls_head}timeout_ms = 1500
on_timeout = "servfail"
try_timeout_ms = 300

[ls.health]
interval_ms = 250
timeout_ms = 250
fall = 2
rise = 2
query = "example.test. SOA"

{}"#,
        backends_toml(&[("knot", knot), ("nsd", nsd)])
    )
}

/// Asks every probe of [`PROBES`] at `ls` and checks each against `want`
/// (NSD's answers); returns the latencies. A missing answer or one that
/// differs fails the test; so does one slower than `limit`.
async fn check_all(
    ls: SocketAddr,
    strategy: &str,
    phase: &str,
    want: &[PeerView],
    limit: Duration,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for (&(name, qtype), want) in PROBES.iter().zip(want) {
        let t = Instant::now();
        let m = ask(ls, name, qtype, false, SLOW_LIMIT).await;
        let elapsed = t.elapsed();
        let m = m.unwrap_or_else(|| {
            panic!("{strategy} ({phase}): no answer to {name} {qtype} within {SLOW_LIMIT:?}")
        });
        assert_eq!(
            &PeerView::of(&m),
            want,
            "{strategy} ({phase}): {name} {qtype} through the LS differs from NSD's answer: {}",
            show(&m)
        );
        assert!(
            elapsed <= limit,
            "{strategy} ({phase}): {name} {qtype} took {elapsed:?} > {limit:?}"
        );
        took.push(elapsed);
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_replicated_over_nsd_and_knot_survives_knot_sigkill() {
    const TEST: &str = "ls_replicated_over_nsd_and_knot";
    let [knotd, _nsd] = crate::kit::or_skip!(need(TEST, ["knotd", "nsd"]));
    // Asserts wall-clock upper bounds: never beside a load test.
    let _load = crate::kit::timed().await;
    let zone = std::fs::read_to_string(peers_fixture("example.test.zone")).unwrap();
    let mut nsd = Nsd::primary("example.test.", &zone);
    let mut knot = Knot::primary(&knotd, "example.test.", &zone);
    nsd.wait_ready("example.test.").await;
    knot.wait_ready("example.test.").await;

    // The reference: NSD's answers, which Knot's must equal (the same zone).
    let mut want = Vec::new();
    for &(name, qtype) in PROBES {
        let n = ask(nsd.addr, name, qtype, false, Duration::from_secs(2)).await;
        let k = ask(knot.addr, name, qtype, false, Duration::from_secs(2)).await;
        let (n, k) = (n.expect("NSD answers"), k.expect("Knot answers"));
        let what = format!("NSD and Knot disagree on {name} {qtype} (NSD, then Knot)");
        PeerView::assert_same(&n, &k, &what);
        want.push(PeerView::of(&n));
    }

    let dir = tempfile::tempdir().unwrap();
    let strategies = ["race", "hedge", "sequential"];
    let ports = free_ports(strategies.len());
    let mut lss: Vec<(&str, SocketAddr, Proc)> = strategies
        .iter()
        .zip(&ports)
        .map(|(&s, &port)| {
            let conf = ls_config(port, s, knot.addr, nsd.addr);
            (
                s,
                local(port),
                start_ls_proc(&format!("ls-{s}"), dir.path(), &conf, &[]),
            )
        })
        .collect();
    for (s, addr, ls) in &mut lss {
        let m = wait_for(
            *addr,
            "www.example.test.",
            RecordType::A,
            false,
            crate::kit::PEER_READY_LIMIT,
            &mut [ls],
            |m| m.metadata.authoritative,
        )
        .await;
        eprintln!("{s}: LS ready: {}", show(&m));
    }

    // Both backends up: every answer is NSD's.
    for (s, addr, _) in &lss {
        check_all(*addr, s, "both up", &want, SLOW_LIMIT).await;
    }

    // Knot, first in order, killed outright.
    let killed_at = SystemTime::now();
    knot.proc.kill_hard();
    let mut report = Vec::new();
    // At once: race asks both and NSD answers; hedge and sequential wait for
    // their hedge delay or per-try timeout on the dead Knot first.
    let at_once = futures_util::future::join_all(lss.iter().map(|(s, addr, _)| {
        let limit = if *s == "race" { PROMPT } else { SLOW_LIMIT };
        check_all(*addr, s, "just after Knot's SIGKILL", &want, limit)
    }))
    .await;
    for ((s, _, _), took) in lss.iter().zip(&at_once) {
        report.push(format!(
            "{s}: just after the SIGKILL (Knot first in order): {}",
            summary(took)
        ));
    }

    // Once each LS has marked Knot down, every strategy goes straight to NSD.
    for (s, _, ls) in &mut lss {
        let down = wait_down_logged(ls, "knot", killed_at, DOWN_LIMIT).await;
        report.push(format!("{s}: Knot marked down {down:?} after the SIGKILL"));
    }
    for (s, addr, ls) in &mut lss {
        let took = check_all(*addr, s, "Knot marked down", &want, PROMPT).await;
        report.push(format!("{s}: with Knot marked down: {}", summary(&took)));
        ls.assert_running();
    }
    nsd.check_alive();
    for line in report {
        eprintln!("replicated over NSD+Knot: {line}");
    }
}

//! The endpoint checker of service answers against real
//! endpoints the test starts on 127.0.0.x: TCP listeners, a tiny HTTP
//! server, a UDP DNS responder (`kit::endpoints`). Intervals are small
//! (50 ms); every wait polls the checker's `watch` or its metrics with a
//! generous deadline, and no test asserts an upper bound on time beyond
//! that deadline.
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use tokio_util::sync::CancellationToken;

use dnslb::ts::service::check::{Checker, Probe};

use crate::kit::checker::{
    FALL, RISE, checks, dns_probe, failures, ip, label, next_set, start_checker, stop, target,
    wait_for,
};
use crate::kit::{Endpoint, free_port, parse_exposition, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tcp_endpoint_goes_down_after_fall_and_back_up_after_rise() {
    let port = free_port();
    let (a, b) = (ip(2), ip(3));
    let ep_a = Endpoint::tcp(SocketAddr::new(a, port)).await;
    let mut ep_b = Endpoint::tcp(SocketAddr::new(b, port)).await;
    let cancel = CancellationToken::new();
    let (checker, mut rx) = start_checker(
        &cancel,
        "www.",
        vec![
            target(a, Probe::Tcp { port }),
            target(b, Probe::Tcp { port }),
        ],
    );
    assert_eq!(
        rx.borrow_and_update().up,
        [true, true],
        "every endpoint starts up"
    );

    // Both healthy for a while: the watch stays quiet.
    wait_for("ten good probes of each", || {
        checks(&checker, "www.", a, "ok") >= 10 && checks(&checker, "www.", b, "ok") >= 10
    })
    .await;
    assert!(!rx.has_changed().unwrap(), "no change, no new live set");
    assert!(ep_a.hits() >= 10 && ep_b.hits() >= 10);

    let failed_before = failures(&checker, "www.", b);
    let killed = Instant::now();
    ep_b.kill().await;
    assert_eq!(next_set(&mut rx).await, [true, false]);
    let took = killed.elapsed();
    let failed = failures(&checker, "www.", b) - failed_before;
    assert!(
        failed >= u64::from(FALL),
        "down after {failed} failures, fall is {FALL}"
    );
    eprintln!("tcp endpoint down {took:?} after its kill ({failed} failures counted)");

    // Down and staying down: probes go on, no new live set.
    wait_for("more failed probes", || {
        failures(&checker, "www.", b) >= failed_before + failed + 5
    })
    .await;
    assert!(!rx.has_changed().unwrap(), "still down: no new live set");
    let states = checker.states();
    assert_eq!(states.len(), 2);
    assert_eq!((&states[1].label, states[1].up), (&label("www.", b), false));
    assert_eq!(states[1].check, "tcp");
    assert!(states[0].up, "{states:?}");

    let ok_before = checks(&checker, "www.", b, "ok");
    ep_b.revive().await;
    assert_eq!(next_set(&mut rx).await, [true, true]);
    let ok = checks(&checker, "www.", b, "ok") - ok_before;
    assert!(
        ok >= u64::from(RISE),
        "up after {ok} good probes, rise is {RISE}"
    );

    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_want_the_expected_status_in_time() {
    let port = free_port();
    let (good, wrong, silent) = (ip(4), ip(5), ip(6));
    let _good = Endpoint::http(SocketAddr::new(good, port), 200).await;
    let wrong_ep = Endpoint::http(SocketAddr::new(wrong, port), 503).await;
    let silent_ep = Endpoint::stalled(SocketAddr::new(silent, port)).await;
    let http = || Probe::Http {
        port,
        path: "/health".into(),
        expect: 200,
        host: Some("www.example".into()),
    };
    let cancel = CancellationToken::new();
    let (checker, mut rx) = start_checker(
        &cancel,
        "www.",
        vec![
            target(good, http()),
            target(wrong, http()),
            target(silent, http()),
        ],
    );
    let mut down = [false; 3];
    while down[1..] != [true, true] {
        let set = next_set(&mut rx).await;
        assert!(set[0], "the endpoint answering 200 stays up");
        for (d, up) in down.iter_mut().zip(set) {
            *d |= !up;
        }
    }
    // The first result is the state (the first round): one is enough.
    assert!(
        checks(&checker, "www.", wrong, "fail") >= 1,
        "503 is a failure"
    );
    assert!(
        checks(&checker, "www.", silent, "timeout") >= 1,
        "silence is a timeout"
    );
    assert!(checks(&checker, "www.", good, "ok") >= 1);
    assert!(silent_ep.hits() >= 1);

    wrong_ep.set_answer(200);
    assert_eq!(
        next_set(&mut rx).await,
        [true, true, false],
        "200 again: up"
    );
    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_checks_want_noerror_or_nxdomain() {
    let port = free_port();
    let (ok, nx, refused) = (ip(7), ip(8), ip(9));
    let mut ok_ep = Endpoint::dns(SocketAddr::new(ok, port), ResponseCode::NoError).await;
    let _nx = Endpoint::dns(SocketAddr::new(nx, port), ResponseCode::NXDomain).await;
    let _refused = Endpoint::dns(SocketAddr::new(refused, port), ResponseCode::Refused).await;
    let dns = || dns_probe(port, 1);
    let cancel = CancellationToken::new();
    let (checker, mut rx) = start_checker(
        &cancel,
        "www.",
        vec![target(ok, dns()), target(nx, dns()), target(refused, dns())],
    );
    assert_eq!(
        next_set(&mut rx).await,
        [true, true, false],
        "REFUSED is down"
    );
    assert!(checks(&checker, "www.", ok, "ok") >= 1);
    assert!(
        checks(&checker, "www.", nx, "ok") >= 1,
        "NXDOMAIN answers: up"
    );

    ok_ep.kill().await;
    assert_eq!(
        next_set(&mut rx).await,
        [false, true, false],
        "silent responder: down"
    );
    ok_ep.revive().await;
    assert_eq!(next_set(&mut rx).await, [true, true, false]);
    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_shared_by_services_is_probed_once() {
    let port = free_port();
    let (shared, other) = (ip(10), ip(11));
    let shared_ep = Endpoint::tcp(SocketAddr::new(shared, port)).await;
    let other_ep = Endpoint::tcp(SocketAddr::new(other, port)).await;
    let tcp = Probe::Tcp { port };
    let cancel = CancellationToken::new();
    let (checker, rx) = Checker::start(
        vec![
            (target(shared, tcp.clone()), vec![label("www.", shared)]),
            (target(other, tcp.clone()), vec![label("www.", other)]),
            (target(shared, tcp.clone()), vec![label("api.", shared)]),
        ],
        8,
        cancel.clone(),
    );
    assert_eq!(rx.borrow().up, [true, true, true]);
    wait_for("ten probes of the shared endpoint", || {
        checks(&checker, "www.", shared, "ok") >= 10 && shared_ep.hits() >= 10
    })
    .await;

    // One probe of a target is in flight at a time, so every connection the
    // listener has accepted is a probe counted, or the one in flight.
    let hits = shared_ep.hits();
    let mut text = String::new();
    checker.write_prometheus(&mut text);
    let e = parse_exposition(&text);
    let count = |service: &str| {
        let want = [
            ("service", service),
            ("endpoint", "127.0.0.10"),
            ("result", "ok"),
        ];
        value(&e, "dnslb_ts_endpoint_checks_total", &want) as u64
    };
    assert_eq!(
        count("www."),
        count("api."),
        "one target, one count under each label"
    );
    assert!(
        hits <= count("www.") + 1,
        "{hits} connections for {} probes: probed once per interval, not once per service",
        count("www.")
    );
    assert!(other_ep.hits() >= 1);
    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_max_in_flight_probes_at_once() {
    // Four endpoints that never answer: every probe lasts its whole timeout.
    let port = free_port();
    let ips: Vec<IpAddr> = (12..=15).map(ip).collect();
    let mut held = Vec::new();
    for &a in &ips {
        held.push(Endpoint::stalled(SocketAddr::new(a, port)).await);
    }
    let timeout = Duration::from_millis(300);
    let http = || Probe::Http {
        port,
        path: "/".into(),
        expect: 200,
        host: None,
    };
    let entries = ips
        .iter()
        .map(|&a| {
            let mut t = target(a, http());
            t.check.timeout_ms = timeout.as_millis() as u64;
            (t, vec![label("www.", a)])
        })
        .collect();
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let (checker, _rx) = Checker::start(entries, 2, cancel.clone());
    let total = || {
        ips.iter()
            .map(|&a| checks(&checker, "www.", a, "timeout"))
            .sum::<u64>()
    };
    wait_for("eight timed-out probes", || total() >= 8).await;
    let probes = total();
    let elapsed = started.elapsed();
    // Two places, each holding a probe for its whole timeout: at most two
    // probes end per timeout (four would without the bound). A slow
    // machine only lowers the count.
    let most = 2 * (elapsed.as_millis() / timeout.as_millis() + 1) as u64;
    assert!(
        probes <= most,
        "{probes} probes ended in {elapsed:?}: more than 2 at once (at most {most})"
    );
    stop(&cancel, checker).await;
}

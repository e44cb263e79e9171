//! Service answers' check targets that answer oddly, each against the
//! endpoint checker as the TS runs it (`kit::endpoints`' hostile kinds on
//! 127.0.0.x): an HTTP check reads the status code, not the end of its
//! line (a status line ended by a bare LF, or with an endless reason
//! phrase, is up), a DNS answer larger than the checker's buffer is judged
//! by its rcode (not waited out as a timeout), and an endpoint that accepts
//! then resets stays up, whatever the race between its reset and the
//! checker's read of the connect.
use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use dnslb::ts::service::check::{Checker, Probe};

use crate::kit::checker::{
    FALL, checks, dns_probe, failures, ip, label, next_set, start_checker, stop, target, wait_for,
};
use crate::kit::{Endpoint, free_port};

/// Good probes each endpoint expected up must pass, with no failure.
const GOOD: u64 = 8;

/// `kit::checker::target` with a timeout no loaded machine reaches by
/// accident: only an endpoint that holds its answer back times out.
fn patient(addr: std::net::IpAddr, probe: Probe) -> dnslb::ts::service::check::Target {
    let mut t = target(addr, probe);
    t.check.timeout_ms = 2_000;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_read_the_status_code_not_the_end_of_its_line() {
    let port = free_port();
    let at = |last| SocketAddr::new(ip(last), port);
    let (lf, endless, slow, banner, cut) = (40, 41, 42, 43, 44);
    // Up: a status line ended by a bare LF; a reason phrase of 1 MiB with no
    // line end; a status code whose reason phrase never comes.
    let mut long = b"HTTP/1.1 200 ".to_vec();
    long.resize(1 << 20, b'A');
    let _eps = [
        Endpoint::scripted(at(lf), b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", false).await,
        Endpoint::scripted(at(endless), &long, true).await,
        Endpoint::scripted(at(slow), b"HTTP/1.1 200 ", true).await,
        // Down: not HTTP; a status code cut short.
        Endpoint::scripted(at(banner), b"SSH-2.0-OpenSSH_9.2p1\r\n", true).await,
        Endpoint::scripted(at(cut), b"HTTP/1.1 20", false).await,
    ];
    let http = || Probe::Http {
        port,
        path: "/".into(),
        expect: 200,
        host: None,
    };
    let lasts = [lf, endless, slow, banner, cut];
    let entries = lasts
        .iter()
        .map(|&l| (patient(ip(l), http()), vec![label("web.", ip(l))]))
        .collect();
    let cancel = CancellationToken::new();
    let (checker, mut rx) = Checker::start(entries, 8, cancel.clone());
    let mut down = [false; 5];
    while !(down[3] && down[4]) {
        let set = next_set(&mut rx).await;
        assert_eq!(
            set[..3],
            [true; 3],
            "only the banner and the cut line go down"
        );
        for (d, up) in down.iter_mut().zip(set) {
            *d |= !up;
        }
    }
    wait_for("good probes of the three that answer 200", || {
        [lf, endless, slow]
            .iter()
            .all(|&l| checks(&checker, "web.", ip(l), "ok") >= GOOD)
    })
    .await;
    for l in [lf, endless, slow] {
        assert_eq!(failures(&checker, "web.", ip(l)), 0, "127.0.0.{l}");
    }
    // A banner is told at its first byte: a failure, not a timeout.
    assert!(checks(&checker, "web.", ip(banner), "fail") >= u64::from(FALL));
    assert_eq!(checks(&checker, "web.", ip(banner), "timeout"), 0);
    assert!(!rx.has_changed().unwrap(), "no flap");
    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_checks_judge_a_large_answer_by_its_rcode_and_wait_past_other_ids() {
    let port = free_port();
    let (big, wrong) = (ip(45), ip(46));
    let _big = Endpoint::dns_padded(SocketAddr::new(big, port), 4000).await;
    let _wrong = Endpoint::dns_wrong_id(SocketAddr::new(wrong, port)).await;
    let dns = || dns_probe(port, 16);
    let cancel = CancellationToken::new();
    let (checker, mut rx) = start_checker(
        &cancel,
        "dns.",
        vec![patient(big, dns()), target(wrong, dns())],
    );
    assert_eq!(
        next_set(&mut rx).await,
        [true, false],
        "another ID is no answer"
    );
    // Down by its first result (the first round decides).
    assert!(checks(&checker, "dns.", wrong, "timeout") >= 1);
    wait_for("good probes of the large answer", || {
        checks(&checker, "dns.", big, "ok") >= GOOD
    })
    .await;
    assert_eq!(failures(&checker, "dns.", big), 0);
    stop(&cancel, checker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_endpoint_that_accepts_and_resets_stays_up() {
    let port = free_port();
    let a = ip(47);
    let ep = Endpoint::resetting(SocketAddr::new(a, port)).await;
    let cancel = CancellationToken::new();
    let (checker, rx) = start_checker(&cancel, "tcp.", vec![patient(a, Probe::Tcp { port })]);
    wait_for("forty probes", || {
        checks(&checker, "tcp.", a, "ok") + failures(&checker, "tcp.", a) >= 40
    })
    .await;
    assert_eq!(
        failures(&checker, "tcp.", a),
        0,
        "every connect passed ({} accepted)",
        ep.hits()
    );
    assert!(!rx.has_changed().unwrap(), "it never went down");
    stop(&cancel, checker).await;
}

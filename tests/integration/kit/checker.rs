//! The TS's endpoint checker run in the test process against endpoints on
//! 127.0.0.x ([`Endpoint`](crate::kit::Endpoint)): targets with small
//! intervals (50 ms), labels, the checker started over one service's
//! targets, its counters read from its exposition, waits for its next live
//! set, and its stop. Not re-exported (its names are short and common):
//! `use crate::kit::checker::...`.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use dnslb::ts::service::check::{CheckSpec, Checker, Label, LiveSet, Probe, Target};

use crate::kit::{parse_exposition, poll_until_async, value};

/// The bound of every wait for a state to flip (generous: the machine is shared).
pub const LIMIT: Duration = Duration::from_secs(10);
/// Probe interval of every check here.
const INTERVAL_MS: u64 = 50;
pub const RISE: u32 = 2;
pub const FALL: u32 = 3;

/// 127.0.0.`last`.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

pub fn target(addr: IpAddr, probe: Probe) -> Target {
    Target {
        addr,
        check: CheckSpec {
            probe,
            interval_ms: INTERVAL_MS,
            timeout_ms: 300,
            rise: RISE,
            fall: FALL,
        },
    }
}

pub fn label(service: &str, addr: IpAddr) -> Label {
    Label {
        service: service.into(),
        endpoint: addr.to_string(),
    }
}

/// The checker's count of `result` probes for `service`'s `addr`.
pub fn checks(checker: &Checker, service: &str, addr: IpAddr, result: &str) -> u64 {
    let mut text = String::new();
    checker.write_prometheus(&mut text);
    let e = parse_exposition(&text);
    let endpoint = addr.to_string();
    let want = [
        ("service", service),
        ("endpoint", endpoint.as_str()),
        ("result", result),
    ];
    value(&e, "dnslb_ts_endpoint_checks_total", &want) as u64
}

/// Failures of both kinds (refused or bad answer, and timeouts).
pub fn failures(checker: &Checker, service: &str, addr: IpAddr) -> u64 {
    checks(checker, service, addr, "fail") + checks(checker, service, addr, "timeout")
}

/// Waits for the next live set the checker publishes.
pub async fn next_set(rx: &mut watch::Receiver<Arc<LiveSet>>) -> Vec<bool> {
    tokio::time::timeout(LIMIT, rx.changed())
        .await
        .expect("the live set did not change in time")
        .expect("the checker's sender is gone");
    rx.borrow_and_update().up.clone()
}

/// Waits until `probe` gives true (polling every 10 ms, up to [`LIMIT`]).
pub async fn wait_for(what: &str, mut probe: impl FnMut() -> bool) {
    let ok = poll_until_async(LIMIT, Duration::from_millis(10), async || {
        probe().then_some(())
    })
    .await;
    assert!(ok.is_some(), "{what}: not within {LIMIT:?}");
}

/// Cancels the checker; it must stop within [`LIMIT`].
pub async fn stop(cancel: &CancellationToken, checker: Checker) {
    cancel.cancel();
    tokio::time::timeout(LIMIT, checker.join())
        .await
        .expect("the checker stops on cancel");
}

/// A DNS probe of `www.example.` (`qtype`) on `port`.
pub fn dns_probe(port: u16, qtype: u16) -> Probe {
    Probe::Dns {
        port,
        qname: "www.example.".into(),
        qtype,
    }
}

/// The checker over `targets`, each labelled `service` at its own address
/// (8 probes in flight at most), stopped by `cancel`; and its live sets.
pub fn start_checker(
    cancel: &CancellationToken,
    service: &str,
    targets: Vec<Target>,
) -> (Checker, watch::Receiver<Arc<LiveSet>>) {
    let entries = targets
        .into_iter()
        .map(|t| {
            let labels = vec![label(service, t.addr)];
            (t, labels)
        })
        .collect();
    Checker::start(entries, 8, cancel.clone())
}

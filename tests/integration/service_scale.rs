//! The endpoint checker at scale ("10,000 services x 4 endpoints" in
//! small): a TS run in process with 20 services of 100
//! endpoints each, 2,000 distinct addresses 127.1.S.I with a `tcp` check
//! every second on one port; the test listens on the odd I (1,000
//! listeners) and leaves the even ones closed (refused). While the checker
//! works:
//! - every service query is answered (NOERROR, with addresses) in time;
//! - the probes in flight never pass the checker's bound
//!   (`dnslb_ts_checks_in_flight_peak` <= `dnslb_ts_checks_in_flight_bound`,
//!   the peak counted from the probes themselves);
//! - every endpoint's state converges (`dnslb_ts_endpoint_up`: the open ones
//!   1, the closed ones 0), and then the answers hold only open addresses.
//!
//! Bounds are generous wall-clock ones (60 s to converge on a shared
//! machine); nothing asserts a duration below that.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::{Endpoint, ServiceTs, ZoneDir, free_port, poll_until_async};

const SERVICES: u8 = 20;
const PER_SERVICE: u8 = 100;
/// The generous bound on convergence.
const CONVERGE: Duration = Duration::from_secs(60);

fn addr_of(s: u8, i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, s, i)
}

fn open(i: u8) -> bool {
    i % 2 == 1
}

/// The `[[ts.service]]` tables: service `s{S}.example.org`, endpoints
/// 127.1.S.1 to 127.1.S.100, each with a tcp check on `port`.
fn services(port: u16) -> String {
    let mut out = String::new();
    for s in 0..SERVICES {
        out.push_str(&format!(
            "[[ts.service]]\nname = \"s{s}.example.org\"\nselect = \"all\"\nmax_answers = 8\n\
             check = {{ kind = \"tcp\", port = {port}, interval_ms = 1000, timeout_ms = 500, \
             rise = 1, fall = 2 }}\nendpoint = ["
        ));
        let eps: Vec<String> = (1..=PER_SERVICE)
            .map(|i| format!("{{ addr = \"{}\" }}", addr_of(s, i)))
            .collect();
        out.push_str(&eps.join(", "));
        out.push_str("]\n");
    }
    out
}

/// The checker's gauges: `dnslb_ts_endpoint_up` by endpoint, and the
/// in-flight peak and bound.
struct Seen {
    up: HashMap<Ipv4Addr, bool>,
    peak: u64,
    bound: u64,
}

fn read_metrics(ts: &ServiceTs) -> Seen {
    let mut text = String::new();
    ts.table.write_service_metrics(&mut text);
    let mut seen = Seen {
        up: HashMap::new(),
        peak: 0,
        bound: 0,
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(labels) = series.strip_prefix("dnslb_ts_endpoint_up{") {
            let ep = labels
                .split("endpoint=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|a| a.parse().ok());
            if let Some(ep) = ep {
                seen.up.insert(ep, v == "1");
            }
        } else if series == "dnslb_ts_checks_in_flight_peak" {
            seen.peak = v.parse().unwrap();
        } else if series == "dnslb_ts_checks_in_flight_bound" {
            seen.bound = v.parse().unwrap();
        }
    }
    seen
}

/// Whether every endpoint is up exactly when it listens.
fn converged(seen: &Seen) -> bool {
    seen.up.len() == usize::from(SERVICES) * usize::from(PER_SERVICE)
        && seen.up.iter().all(|(a, &up)| up == open(a.octets()[3]))
}

/// Asks each service once: every answer NOERROR with addresses; the
/// addresses seen.
async fn ask_all(ts: &ServiceTs) -> Vec<Ipv4Addr> {
    let mut got = Vec::new();
    for s in 0..SERVICES {
        let m = ts.ask(&format!("s{s}.example.org"), RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "s{s}");
        let addrs = crate::kit::a_addrs(&m);
        assert!(!addrs.is_empty(), "s{s}: no address");
        got.extend(addrs);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_endpoints_converge_within_the_in_flight_bound_while_answering() {
    // It loads the machine (2,000 probes a second): alone.
    let _load = crate::kit::heavy().await;
    let port = free_port();
    let mut listeners = Vec::new();
    for s in 0..SERVICES {
        for i in (1..=PER_SERVICE).filter(|&i| open(i)) {
            let at = SocketAddr::new(IpAddr::V4(addr_of(s, i)), port);
            listeners.push(Endpoint::tcp(at).await);
        }
    }
    let dir = ZoneDir::new();
    let ts = ServiceTs::start(&dir, "example.org", &services(port)).await;
    let started = Instant::now();
    let mut rounds = 0u32;
    let mut last = read_metrics(&ts);
    let done = poll_until_async(CONVERGE, Duration::from_millis(200), async || {
        // Answered all along, from the first second on.
        ask_all(&ts).await;
        rounds += 1;
        last = read_metrics(&ts);
        assert!(
            last.peak <= last.bound,
            "{} probes in flight at once, over the bound {}",
            last.peak,
            last.bound
        );
        converged(&last).then_some(())
    })
    .await;
    let up = last.up.values().filter(|&&u| u).count();
    assert!(
        done.is_some(),
        "not converged in {CONVERGE:?}: {up} of {} up (want 1000)",
        last.up.len()
    );
    eprintln!(
        "2,000 endpoints converged in {:?} ({rounds} rounds of 20 queries answered meanwhile); \
         probes in flight: peak {}, bound {}",
        started.elapsed(),
        last.peak,
        last.bound
    );
    assert!(last.bound > 0 && last.bound < 2000, "bound {}", last.bound);
    // Converged: the answers hold only endpoints that listen.
    let got = ask_all(&ts).await;
    assert!(
        got.iter().all(|a| open(a.octets()[3])),
        "a closed endpoint answered: {got:?}"
    );
    ts.stop().await;
    drop(listeners);
}

//! Issue 38 side by side: gdnsd (`multifo` over `tcp_connect`) and PowerDNS
//! (an `ifportup` LUA record) answer one name from the same three TCP
//! endpoints on 127.0.0.x; one endpoint is killed and the time until each
//! server stops answering its address is printed. Only that each one
//! eventually stops is asserted (a generous bound): the peers are
//! references, not under test. dnslb's own row is S1's to add, through
//! [`time_until_address_dropped`].
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::{
    ASK_POLL, ASK_POLL_WAIT, Endpoint, Gdnsd, GdnsdChecks, Pdns, a_addrs_sorted, ask, free_port,
    free_ports, local, need, poll_until_async, wait_for,
};

/// The bound of every wait here: gdnsd counts in seconds (a 2 s interval,
/// 2 failures), and the machine is shared.
const LIMIT: Duration = Duration::from_secs(30);

/// The service name both peers answer.
const ZONE: &str = "example.test";
const QNAME: &str = "www.example.test.";

/// How long after `killed` the server at `addr` first answered `qname` A
/// (UDP, NOERROR, at least one address) without `dead`, polling every
/// [`ASK_POLL`] up to `limit`; `None` if it did not within `limit`. A
/// SERVFAIL, an empty answer or silence does not count as dropped. The
/// side-by-side row of any server: dnslb's TS answering a service calls it
/// the same way.
pub async fn time_until_address_dropped(
    addr: SocketAddr,
    qname: &str,
    dead: Ipv4Addr,
    killed: Instant,
    limit: Duration,
) -> Option<Duration> {
    poll_until_async(limit, ASK_POLL, async || {
        let m = ask(addr, qname, RecordType::A, false, ASK_POLL_WAIT).await?;
        let addrs = a_addrs_sorted(&m);
        let dropped = m.metadata.response_code == ResponseCode::NoError
            && !addrs.is_empty()
            && !addrs.contains(&dead);
        dropped.then(|| killed.elapsed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdnsd_and_powerdns_stop_answering_a_killed_endpoint() {
    let test = "gslb_peers: gdnsd and PowerDNS side by side";
    if need(test, ["gdnsd", "pdns_server"]).is_none() {
        return;
    }
    let port = free_port();
    let ips: Vec<Ipv4Addr> = (21..=23).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let endpoints: Vec<IpAddr> = ips.iter().copied().map(IpAddr::V4).collect();
    let mut live = Vec::new();
    for &ip in &endpoints {
        live.push(Endpoint::tcp(SocketAddr::new(ip, port)).await);
    }
    let [gdnsd_port, pdns_port] = free_ports(2)[..] else {
        unreachable!()
    };
    let checks = GdnsdChecks {
        interval_s: 2,
        fall: 2,
        rise: 2,
    };
    let mut gdnsd = Gdnsd::multifo_tcp(local(gdnsd_port), ZONE, "www", &endpoints, port, checks);
    let mut pdns = Pdns::ifportup(local(pdns_port), ZONE, "www", &endpoints, port, 1);
    gdnsd.wait_ready().await;
    pdns.wait_ready().await;

    // Every endpoint up: each answers all three (PowerDNS starts checking
    // with this first query; gdnsd checked once before it served).
    for (addr, proc) in [(gdnsd.addr, &mut gdnsd.proc), (pdns.addr, &mut pdns.proc)] {
        wait_for(addr, QNAME, RecordType::A, false, LIMIT, &mut [proc], |m| {
            a_addrs_sorted(m) == ips
        })
        .await;
    }

    let dead = ips[2];
    live[2].kill().await;
    let killed = Instant::now();
    let (g, p) = tokio::join!(
        time_until_address_dropped(gdnsd.addr, QNAME, dead, killed, LIMIT),
        time_until_address_dropped(pdns.addr, QNAME, dead, killed, LIMIT),
    );
    eprintln!(
        "time from an endpoint's death to its absence from answers:\n\
         \x20 gdnsd 3.8 multifo, tcp_connect every 2 s, down_thresh 2: {g:?}\n\
         \x20 PowerDNS 4.7 ifportup, lua-health-checks-interval 1 s: {p:?}"
    );
    gdnsd.proc.assert_running();
    pdns.proc.assert_running();
    assert!(
        g.is_some(),
        "gdnsd still answers {dead} {LIMIT:?} after its death"
    );
    assert!(
        p.is_some(),
        "PowerDNS still answers {dead} {LIMIT:?} after its death"
    );
}

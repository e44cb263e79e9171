//! Service answers side by side: dnslb's TS (a `[[ts.service]]`, `select = "all"`
//! over `tcp` checks), gdnsd (`multifo` over `tcp_connect`) and PowerDNS
//! (an `ifportup` LUA record) answer one name from the same three TCP
//! endpoints on 127.0.0.x; one endpoint is killed and the time until each
//! server stops answering its address is printed. dnslb's time is asserted
//! within its documented bound (`interval_ms x fall + timeout_ms`, plus 1 s);
//! for the peers only that each one eventually stops (a generous bound):
//! they are references, not under test.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::{
    ASK_POLL, ASK_POLL_WAIT, Endpoint, FollowedName, Gdnsd, GdnsdChecks, Pdns, ServiceTs, ZoneDir,
    a_addrs_sorted, ask, free_port, free_ports, local, need, poll_until_async, timed, wait_for,
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

/// dnslb's checks: every second, 500 ms to connect, 2 failures down.
const DNSLB_CHECK: (u64, u64, u32) = (1000, 500, 2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnslb_gdnsd_and_powerdns_stop_answering_a_killed_endpoint() {
    let test = "service_peers: dnslb, gdnsd and PowerDNS side by side";
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
    let www = FollowedName {
        zone: ZONE,
        label: "www",
        endpoints: &endpoints,
        port,
    };
    let mut gdnsd = Gdnsd::multifo_tcp(local(gdnsd_port), www, checks);
    let mut pdns = Pdns::ifportup(local(pdns_port), www, 1);
    let dir = ZoneDir::new();
    let (interval_ms, timeout_ms, fall) = DNSLB_CHECK;
    let listed: Vec<String> = ips
        .iter()
        .map(|ip| format!("{{ addr = \"{ip}\" }}"))
        .collect();
    let service = format!(
        "[[ts.service]]\nname = \"www.{ZONE}\"\nselect = \"all\"\n\
         check = {{ kind = \"tcp\", port = {port}, interval_ms = {interval_ms}, timeout_ms = {timeout_ms}, rise = 2, fall = {fall} }}\n\
         endpoint = [ {} ]\n",
        listed.join(", ")
    );
    let ts = ServiceTs::start(&dir, ZONE, &service).await;
    gdnsd.wait_ready().await;
    pdns.wait_ready().await;

    // Every endpoint up: each answers all three (PowerDNS starts checking
    // with this first query; gdnsd checked once before it served; dnslb
    // once its checks have run).
    let all_up = poll_until_async(LIMIT, ASK_POLL, async || {
        let m = ask(ts.addr, QNAME, RecordType::A, false, ASK_POLL_WAIT).await?;
        (a_addrs_sorted(&m) == ips).then_some(())
    })
    .await;
    assert!(all_up.is_some(), "dnslb answers the three endpoints");
    for (addr, proc) in [(gdnsd.addr, &mut gdnsd.proc), (pdns.addr, &mut pdns.proc)] {
        wait_for(addr, QNAME, RecordType::A, false, LIMIT, &mut [proc], |m| {
            a_addrs_sorted(m) == ips
        })
        .await;
    }

    let _load = timed().await;
    let dead = ips[2];
    live[2].kill().await;
    let killed = Instant::now();
    let (d, g, p) = tokio::join!(
        time_until_address_dropped(ts.addr, QNAME, dead, killed, LIMIT),
        time_until_address_dropped(gdnsd.addr, QNAME, dead, killed, LIMIT),
        time_until_address_dropped(pdns.addr, QNAME, dead, killed, LIMIT),
    );
    eprintln!(
        "time from an endpoint's death to its absence from answers:\n\
         \x20 dnslb ts, tcp check every {interval_ms} ms, timeout {timeout_ms} ms, fall {fall}: {d:?}\n\
         \x20 gdnsd 3.8 multifo, tcp_connect every 2 s, down_thresh 2: {g:?}\n\
         \x20 PowerDNS 4.7 ifportup, lua-health-checks-interval 1 s: {p:?}"
    );
    ts.stop().await;
    let bound = Duration::from_millis(interval_ms * u64::from(fall) + timeout_ms + 1000);
    let d = d.unwrap_or_else(|| panic!("dnslb still answers {dead} {LIMIT:?} after its death"));
    assert!(
        d <= bound,
        "dnslb took {d:?} to drop {dead}, over {bound:?}"
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

//! Per-zone query counters (`dnslb_ts_zone_queries_total{zone,rcode}`) on
//! a TS serving two zones, asked over real sockets (UDP and TCP) and
//! scraped from its own `/metrics`:
//!
//! - each answer counts under the zone that gave it, by rcode; a name in
//!   no zone counts once under `zone="-"`, `REFUSED`;
//! - a reload that changes a zone keeps its counts (the new version goes
//!   on from them); a zone nobody asked shows no sample.
use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::{
    Exposition, TestMetrics, ZoneDir, ask_a, http_get, matching, parse_exposition, query, start_ts,
    tcp, ts_settings, value,
};

/// A master file of `origin` at `serial`, with `www` and `ns`.
fn zone(origin: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 60\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\nwww A 192.0.2.80\n"
    )
}

async fn scrape(addr: SocketAddr) -> Exposition {
    let r = http_get(addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    parse_exposition(&r.body)
}

fn count(e: &Exposition, zone: &str, rcode: &str) -> f64 {
    value(
        e,
        "dnslb_ts_zone_queries_total",
        &[("zone", zone), ("rcode", rcode)],
    )
}

#[tokio::test]
async fn each_zone_counts_its_answers_and_keeps_them_across_a_reload() {
    let dir = ZoneDir::new();
    let a = dir.write("a.test.zone", &zone("a.test.", 1));
    let b = dir.write("b.test.zone", &zone("b.test.", 1));
    let c = dir.write("c.test.zone", &zone("c.test.", 1));
    let ts = start_ts(ts_settings(vec![a.clone(), b, c])).await;
    let metrics = TestMetrics::start_ts(ts.ts.clone()).await;

    for (name, want) in [
        ("www.a.test.", ResponseCode::NoError),
        ("nope.a.test.", ResponseCode::NXDomain),
        ("www.b.test.", ResponseCode::NoError),
        ("ns.b.test.", ResponseCode::NoError),
        ("www.example.org.", ResponseCode::Refused),
    ] {
        assert_eq!(ask_a(ts.addr, name).await.response_code, want, "{name}");
    }
    let over_tcp = tcp(ts.addr, &query("www.b.test.", RecordType::A, None)).await;
    assert_eq!(over_tcp.response_code, ResponseCode::NoError);

    let e = scrape(metrics.addr).await;
    assert_eq!(count(&e, "a.test.", "NOERROR"), 1.0);
    assert_eq!(count(&e, "a.test.", "NXDOMAIN"), 1.0);
    assert_eq!(count(&e, "b.test.", "NOERROR"), 3.0);
    assert_eq!(count(&e, "-", "REFUSED"), 1.0);
    // Nothing asked of c.test., nor a miss in b.test.: no sample.
    assert!(matching(&e, "dnslb_ts_zone_queries_total", &[("zone", "c.test.")]).is_empty());
    assert!(
        matching(
            &e,
            "dnslb_ts_zone_queries_total",
            &[("zone", "b.test."), ("rcode", "NXDOMAIN")]
        )
        .is_empty()
    );

    // a.test. changes: its new version goes on from its counts.
    std::fs::write(&a, zone("a.test.", 2) + "new A 192.0.2.81\n").unwrap();
    let report = ts.ts.reload().unwrap();
    assert_eq!(report.changed, 1);
    assert_eq!(
        ask_a(ts.addr, "new.a.test.").await.response_code,
        ResponseCode::NoError
    );
    let e = scrape(metrics.addr).await;
    assert_eq!(count(&e, "a.test.", "NOERROR"), 2.0);
    assert_eq!(count(&e, "a.test.", "NXDOMAIN"), 1.0);
    assert_eq!(count(&e, "b.test.", "NOERROR"), 3.0);
    metrics.stop().await;
    ts.stop().await;
}

//! The TS's own `/metrics` (`metrics` in its `[[ts]]`): requests by what
//! became of them, the zones served with their serials, reloads; then the
//! process metrics and `dnslb_build_info`, as the LS's exposition has them.
//! And its `/health`: the `[[ts.service]]` endpoints' states as JSON
//! ([`TsHealthReport`]), which `dnslb status` prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::json::json;
use super::process::ProcessStats;
use super::prom::{
    Expo, rcode_name, write_build_info, write_dnstap, write_doq, write_process, write_xdp,
};
use super::{exposition, not_found, serve_app};
use crate::ts::TableServer;
use crate::ts::metrics::{OTHER_RCODE, TsMetrics, Unanswered};
use crate::ts::xfr::tsig::TsigRefusal;

/// The `rcode` label of slot `i` of [`TsMetrics::answers`].
fn rcode_label(i: usize) -> String {
    match i {
        16 => "BADVERS".to_owned(),
        OTHER_RCODE => "OTHER".to_owned(),
        i => rcode_name(i),
    }
}

/// `dnslb_ts_zone_queries_total`: the requests each zone answered, by
/// rcode, and those refused as no zone's (`zone="-"`); a count still at 0
/// is left out (a TS of 100,000 zones would write six lines a zone).
fn write_zone_queries<'z>(
    e: &mut Expo,
    zones: impl Iterator<Item = (&'z crate::ts::zone::Zone, &'z String)>,
    m: &TsMetrics,
) {
    const NAME: &str = "dnslb_ts_zone_queries_total";
    e.family(
        NAME,
        "counter",
        "Requests each zone answered, by rcode (NONE: a silent miss); zone=\"-\": refused, no zone's.",
    );
    let by_zone = zones.map(|(z, label)| (label.as_str(), z.queries()));
    for (zone, queries) in by_zone.chain([("-", &m.no_zone)]) {
        for (rcode, n) in queries.counts().filter(|&(_, n)| n > 0) {
            e.sample(NAME, &[("zone", zone), ("rcode", rcode)], n);
        }
    }
}

/// The TS's metrics in the Prometheus text exposition format 0.0.4, then
/// this process's (`process_*`) and `dnslb_build_info`.
pub fn render_ts_prometheus(ts: &TableServer) -> String {
    let catalog = ts.catalog();
    let mut e = Expo(String::with_capacity(4096 + catalog.zones().len() * 256));
    write_ts(&mut e, ts.metrics(), ts.tsig_refused());
    write_xdp(&mut e, "dnslb_ts", &ts.metrics().xdp);
    if let Some(doq) = ts.metrics().doq.get() {
        write_doq(&mut e, "dnslb_ts", doq);
    }
    let gate = crate::server::Handler::proxy_gate(ts);
    let none = std::sync::atomic::AtomicU64::new(0);
    e.by_label(
        "dnslb_ts_proxy_headers_total",
        "PROXY protocol v2 headers (proxy_from): taken (accepted), or refused with their datagram dropped or connection closed (refused).",
        "outcome",
        [
            ("accepted", gate.map_or(&none, |g| &g.accepted)),
            ("refused", gate.map_or(&none, |g| &g.refused)),
        ],
    );

    let zone_labels: Vec<String> = catalog
        .zones()
        .iter()
        .map(|z| z.origin().to_string())
        .collect();
    let zones = catalog.zones().iter().zip(&zone_labels);
    e.family(
        "dnslb_ts_zone_serial",
        "gauge",
        "SOA serial of each zone served.",
    );
    for (z, label) in zones.clone() {
        e.sample("dnslb_ts_zone_serial", &[("zone", label)], z.serial());
    }
    e.family(
        "dnslb_ts_zone_rrsets",
        "gauge",
        "RRsets of each zone served, its SOA included.",
    );
    for (z, label) in zones.clone() {
        e.sample("dnslb_ts_zone_rrsets", &[("zone", label)], z.rrset_count());
    }
    write_zone_queries(&mut e, zones, ts.metrics());
    write_dnstap(&mut e, ts.dnstap().stats().as_deref());
    // `[[ts.service]]` endpoints: up and checks by result (the checker's).
    ts.write_service_metrics(&mut e.0);
    write_process(&mut e, &ProcessStats::read());
    write_build_info(&mut e);
    e.0
}

/// The counters' families.
fn write_ts(e: &mut Expo, m: &TsMetrics, tsig: &[AtomicU64]) {
    e.counter(
        "dnslb_ts_queries_total",
        "Requests received: answered plus unanswered.",
        m.queries.load(Relaxed),
    );
    e.by_rcode(
        "dnslb_ts_answers_total",
        "Answers sent, by rcode (a zone transfer counts once).",
        &m.answers,
        rcode_label,
    );
    let reasons = Unanswered::ALL.map(Unanswered::label);
    e.by_label(
        "dnslb_ts_unanswered_total",
        "Requests given no answer, by reason.",
        "reason",
        reasons.into_iter().zip(&m.unanswered),
    );
    let rrl = &m.rrl;
    e.by_label(
        "dnslb_ts_rrl_total",
        "Response rate limiting (rrl) of UDP answers: limited answers sent truncated (slipped) or dropped, answers log_only would have limited (would_limit), answers to exempt clients (exempt).",
        "action",
        [
            ("slipped", &rrl.slipped),
            ("dropped", &rrl.dropped),
            ("would_limit", &rrl.would_limit),
            ("exempt", &rrl.exempt),
        ],
    );
    let x = &m.xfr;
    e.by_label(
        "dnslb_ts_xfr_total",
        "Zone transfers answered: axfr (whole zone), ixfr_incremental (the differences), ixfr_full (an IXFR given the whole zone), ixfr_soa (an IXFR given the SOA alone).",
        "kind",
        [
            ("axfr", &x.axfr),
            ("ixfr_incremental", &x.ixfr_incremental),
            ("ixfr_full", &x.ixfr_full),
            ("ixfr_soa", &x.ixfr_soa),
        ],
    );
    let counters = [
        (
            "dnslb_ts_xfr_bytes_total",
            "Bytes of zone transfer messages sent (AXFR and IXFR).",
            &x.bytes,
        ),
        (
            "dnslb_ts_xfr_refused_busy_total",
            "Zone transfers answered SERVFAIL: the cap of transfers at once was reached.",
            &x.refused_busy,
        ),
        (
            "dnslb_ts_xfr_failed_total",
            "Zone transfers stopped midway (a record could not be encoded): the connection was closed.",
            &x.failed,
        ),
    ];
    e.counters(counters);
    let sc = &m.secondary;
    e.by_label(
        "dnslb_ts_secondary_total",
        "Secondary zones: transfers applied (axfr, ixfr), checks up to date, attempts failed, IXFRs that did not apply, zones expired, NOTIFYs accepted and refused.",
        "event",
        [
            ("axfr", &sc.axfr),
            ("ixfr", &sc.ixfr),
            ("up_to_date", &sc.up_to_date),
            ("failed", &sc.failed),
            ("ixfr_refused", &sc.ixfr_refused),
            ("expired", &sc.expired),
            ("notify_accepted", &sc.notify_accepted),
            ("notify_refused", &sc.notify_refused),
        ],
    );
    e.by_label(
        "dnslb_ts_tcp_connections_refused_total",
        "New TCP connections closed right after accept, by reason (cap: the connection cap was full; share: it was contended and their source held its share).",
        "reason",
        [("cap", &m.tcp_cap_refused), ("share", &m.tcp_share_refused)],
    );
    e.by_label(
        "dnslb_ts_tsig_refused_total",
        "Requests refused for their TSIG (xfr_key set), by error: unsigned transfers, FORMERR, BADSIG, BADKEY, BADTIME, BADTRUNC.",
        "error",
        TsigRefusal::ALL.iter().map(|why| why.label()).zip(tsig),
    );
    e.reloads(
        "dnslb_ts_reloads_total",
        "Reloads (SIGHUP): applied, or refused with the old zones kept.",
        &m.reloads_applied,
        &m.reloads_refused,
    );
}

/// Where the TS's metrics listener answers with its [`TsHealthReport`].
pub const TS_HEALTH_PATH: &str = "/health";

/// One endpoint of one service in a TS's `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsEndpoint {
    /// The service's name.
    pub service: String,
    /// The endpoint's address.
    pub endpoint: String,
    /// Its check's kind: `none`, `tcp`, `http`, `dns`.
    pub check: String,
    /// Whether it is up (answered).
    pub up: bool,
    /// When it last went up or down (the TS's start if never), unix seconds.
    pub since_unix: u64,
}

/// The JSON document of a TS's `/health`: its services' endpoints (empty
/// without services), in config order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TsHealthReport {
    /// Every endpoint of every service; an endpoint shared by two services
    /// shows under each.
    pub endpoints: Vec<TsEndpoint>,
}

impl TsHealthReport {
    /// The report of `ts` now.
    #[must_use]
    pub fn of(ts: &TableServer) -> Self {
        let endpoints = ts
            .service_states()
            .into_iter()
            .map(|s| TsEndpoint {
                service: s.label.service,
                endpoint: s.label.endpoint,
                check: s.check.to_owned(),
                up: s.up,
                since_unix: s.since_unix,
            })
            .collect();
        Self { endpoints }
    }
}

async fn ts_health(State(ts): State<Arc<TableServer>>) -> Response {
    json(StatusCode::OK, &TsHealthReport::of(&ts))
}

async fn ts_metrics(State(ts): State<Arc<TableServer>>) -> Response {
    exposition(render_ts_prometheus(&ts))
}

/// Serves the TS's `/metrics` on `listener` until `token` is cancelled, then
/// gives open requests two seconds to finish.
pub async fn serve_ts(listener: TcpListener, ts: Arc<TableServer>, token: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(ts_metrics))
        .route(TS_HEALTH_PATH, get(ts_health))
        .fallback(not_found)
        .with_state(ts);
    serve_app(listener, app, token).await;
}

/// Serves the zone control of a TS (`control` in its `[[ts]]`) on
/// `listener` until `token` is cancelled: see `zone_control.rs`.
pub async fn serve_zone_control(
    listener: TcpListener,
    zones: crate::ts::zone_control::ZoneControl,
    token: CancellationToken,
) {
    let bound = listener.local_addr().ok();
    let app = super::zone_control::routes(zones, bound).fallback(not_found);
    serve_app(listener, app, token).await;
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use super::*;
    use crate::metrics::prom::tests::assert_line;
    use crate::ts::TsSettings;
    use crate::ts::metrics::RequestOutcome;

    fn table_server(dir: &std::path::Path) -> TableServer {
        let table = dir.join("t.txt");
        std::fs::write(&table, "www.a.test 192.0.2.1 A\nmail.a.test 192.0.2.2 A\n").unwrap();
        let zone = dir.join("b.test.zone");
        std::fs::write(
            &zone,
            "$ORIGIN b.test.\n$TTL 60\n@ SOA ns hostmaster 42 3600 600 86400 60\n\
             @ NS ns\nns A 192.0.2.53\n",
        )
        .unwrap();
        let settings = TsSettings::serving(
            "t".into(),
            vec![table, zone],
            "a.test.".parse().unwrap(),
            300,
        );
        TableServer::load(settings).unwrap()
    }

    #[test]
    fn counters_zones_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let ts = table_server(dir.path());
        let m = ts.metrics();
        m.record(RequestOutcome::Answered(ResponseCode::NoError));
        m.record(RequestOutcome::Answered(ResponseCode::NXDomain));
        m.record(RequestOutcome::Answered(ResponseCode::BADVERS));
        m.record(RequestOutcome::Unanswered(Unanswered::SilentMiss));
        m.record_reload(false);
        let text = render_ts_prometheus(&ts);
        let serial_a = ts.catalog().zones()[0].serial();
        for line in [
            "# TYPE dnslb_ts_queries_total counter",
            "dnslb_ts_queries_total 4",
            "# TYPE dnslb_ts_answers_total counter",
            "dnslb_ts_answers_total{rcode=\"NOERROR\"} 1",
            "dnslb_ts_answers_total{rcode=\"NXDOMAIN\"} 1",
            "dnslb_ts_answers_total{rcode=\"REFUSED\"} 0",
            "dnslb_ts_answers_total{rcode=\"BADVERS\"} 1",
            "dnslb_ts_unanswered_total{reason=\"silent_miss\"} 1",
            "dnslb_ts_unanswered_total{reason=\"fault\"} 0",
            "dnslb_ts_reloads_total{result=\"applied\"} 0",
            "dnslb_ts_reloads_total{result=\"refused\"} 1",
            "# TYPE dnslb_ts_zone_serial gauge",
            &format!("dnslb_ts_zone_serial{{zone=\"a.test.\"}} {serial_a}"),
            "dnslb_ts_zone_serial{zone=\"b.test.\"} 42",
            "dnslb_ts_zone_rrsets{zone=\"b.test.\"} 3",
            "# TYPE process_open_fds gauge",
        ] {
            assert_line(&text, line);
        }
        // Unseen uncommon rcodes are left out; one TYPE per family; a final newline.
        assert!(
            !text.contains("OTHER") && !text.contains("NOTAUTH"),
            "{text}"
        );
        let mut seen = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(l.split(' ').nth(2).unwrap()), "dup {l}");
        }
        assert!(text.ends_with('\n'));
    }
}

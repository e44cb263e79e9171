//! The TS's own `/metrics` on a real `dnslb ts -c config --name ts1`
//! process: hits, misses and a refusal are counted by rcode, exactly; the
//! zones show their serials; a SIGHUP after a change applies the new zones
//! (a master file's serial as written, the PROJ table's raised), one with a
//! bad line is refused and changes nothing. Every scrape must parse as the
//! Prometheus text format with its naming conventions, and pass
//! `promtool check metrics` where promtool is installed.
//!
//! The process is stopped by PID through its [`Proc`] guard; every wait is a
//! bounded poll of real state.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use rustix::process::Signal;

use crate::kit::{Exposition, http_try_get, parse_exposition, value};
use crate::kit::{Proc, free_ports, local, poll_until_async};
use crate::kit::{ask_a, assert_promtool_accepts, promtool};

/// How long the TS may take to start serving, or to apply a reload.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL_PAUSE: Duration = Duration::from_millis(20);

const TABLE: &str = "\
www.t.test    192.0.2.1    A
mail.t.test   192.0.2.2    A
";

const MASTER: &str = "\
$ORIGIN m.test.
$TTL 60
@     SOA  ns hostmaster 2024010101 3600 600 86400 60
@     NS   ns
ns    A    192.0.2.53
www   A    192.0.2.80
";

/// The config of one TS on `dns` with its metrics on `metrics`.
fn config(dir: &Path, dns: u16, metrics: u16) -> PathBuf {
    std::fs::write(dir.join("t.txt"), TABLE).unwrap();
    std::fs::write(dir.join("m.test.zone"), MASTER).unwrap();
    let text = format!(
        r#"[[ts]]
name = "ts1"
listen = "127.0.0.1:{dns}"
zones = ["t.txt", "m.test.zone"]
origin = "t.test"
workers = 1
metrics = "127.0.0.1:{metrics}"
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Scrapes `/metrics` (retrying while nothing accepts the connection, and
/// panicking if `ts` ends meanwhile) and checks the exposition.
async fn scrape(ts: &mut Proc, addr: SocketAddr) -> (String, Exposition) {
    let r = poll_until_async(READY_LIMIT, POLL_PAUSE, async || {
        ts.assert_running();
        http_try_get(addr, "/metrics").await
    })
    .await
    .unwrap_or_else(|| panic!("nothing answered http://{addr}/metrics"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4")
    );
    let e = parse_exposition(&r.body);
    (r.body, e)
}

/// Scrapes until `done` accepts the exposition.
async fn scrape_until(
    ts: &mut Proc,
    addr: SocketAddr,
    what: &str,
    done: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let mut last = String::new();
    let found = poll_until_async(READY_LIMIT, POLL_PAUSE, async || {
        let (body, e) = scrape(ts, addr).await;
        last = body;
        done(&e).then_some(e)
    })
    .await;
    found.unwrap_or_else(|| panic!("/metrics never showed {what}; last:\n{last}"))
}

fn answers(e: &Exposition, rcode: &str) -> f64 {
    value(e, "dnslb_ts_answers_total", &[("rcode", rcode)])
}

fn serial(e: &Exposition, zone: &str) -> f64 {
    value(e, "dnslb_ts_zone_serial", &[("zone", zone)])
}

fn reloads(e: &Exposition, result: &str) -> f64 {
    value(e, "dnslb_ts_reloads_total", &[("result", result)])
}

/// `promtool check metrics` finds nothing in `body`; skipped, saying so,
/// where promtool is not installed (Debian: package `prometheus`).
fn promtool_check(body: &str) {
    let Some(tool) = promtool() else {
        crate::kit::skip("promtool check of the TS's /metrics", "no promtool");
        return;
    };
    assert_promtool_accepts(&tool, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_metrics_count_queries_by_rcode_and_show_reloaded_serials() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let (dns, http) = (local(ports[0]), local(ports[1]));
    let config = config(dir.path(), ports[0], ports[1]);
    let config = config.to_str().unwrap();
    let mut ts = Proc::dnslb(
        "dnslb ts",
        &["ts", "-c", config, "--name", "ts1"],
        Path::new("/"),
    );

    // Before any query (the DNS sockets are bound before /metrics answers):
    // every count zero, both zones with their serials.
    let (_, e) = scrape(&mut ts, http).await;
    assert_eq!(value(&e, "dnslb_ts_queries_total", &[]), 0.0);
    for rcode in [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ] {
        assert_eq!(answers(&e, rcode), 0.0, "{rcode}");
    }
    assert_eq!(serial(&e, "m.test."), 2_024_010_101.0);
    let table_serial = serial(&e, "t.test.");
    assert!(table_serial > 0.0, "the PROJ table's made-up serial");
    assert_eq!(
        value(&e, "dnslb_ts_zone_rrsets", &[("zone", "m.test.")]),
        4.0,
        "SOA, NS, ns A, www A"
    );
    assert_eq!((reloads(&e, "applied"), reloads(&e, "refused")), (0.0, 0.0));

    // Three hits, two misses, one name outside both zones.
    for (name, want) in [
        ("www.t.test.", ResponseCode::NoError),
        ("www.m.test.", ResponseCode::NoError),
        ("mail.t.test.", ResponseCode::NoError),
        ("nope.t.test.", ResponseCode::NXDomain),
        ("nope.m.test.", ResponseCode::NXDomain),
        ("www.example.org.", ResponseCode::Refused),
    ] {
        assert_eq!(ask_a(dns, name).await.response_code, want, "{name}");
    }
    let (body, e) = scrape(&mut ts, http).await;
    assert_eq!(value(&e, "dnslb_ts_queries_total", &[]), 6.0, "{body}");
    assert_eq!(answers(&e, "NOERROR"), 3.0, "{body}");
    assert_eq!(answers(&e, "NXDOMAIN"), 2.0, "{body}");
    assert_eq!(answers(&e, "REFUSED"), 1.0, "{body}");
    for reason in ["malformed", "silent_miss", "fault"] {
        assert_eq!(
            value(&e, "dnslb_ts_unanswered_total", &[("reason", reason)]),
            0.0
        );
    }
    promtool_check(&body);

    // A change to both files, then SIGHUP: applied; the master file's new
    // serial as written, the table's raised; the new names answer.
    std::fs::write(
        dir.path().join("m.test.zone"),
        MASTER.replace("2024010101", "2024010102") + "new   A    192.0.2.81\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.txt"),
        format!("{TABLE}new.t.test    192.0.2.3    A\n"),
    )
    .unwrap();
    ts.signal(Signal::HUP);
    let e = scrape_until(&mut ts, http, "the reload applied", |e| {
        reloads(e, "applied") == 1.0
    })
    .await;
    assert_eq!(serial(&e, "m.test."), 2_024_010_102.0);
    let raised = serial(&e, "t.test.");
    assert!(raised > table_serial, "{raised} > {table_serial}");
    assert_eq!(reloads(&e, "refused"), 0.0);
    assert_eq!(
        ask_a(dns, "new.m.test.").await.response_code,
        ResponseCode::NoError
    );
    assert_eq!(
        ask_a(dns, "new.t.test.").await.response_code,
        ResponseCode::NoError
    );

    // A bad line: refused, the serials as they were, the old zones serving.
    std::fs::write(dir.path().join("t.txt"), "www.t.test  not-an-ip  A\n").unwrap();
    ts.signal(Signal::HUP);
    let e = scrape_until(&mut ts, http, "the reload refused", |e| {
        reloads(e, "refused") == 1.0
    })
    .await;
    assert_eq!(reloads(&e, "applied"), 1.0);
    assert_eq!(serial(&e, "m.test."), 2_024_010_102.0);
    assert_eq!(serial(&e, "t.test."), raised);
    assert_eq!(
        ask_a(dns, "new.t.test.").await.response_code,
        ResponseCode::NoError
    );
    // Every query so far: 6 before the first reload, 2 after it, 1 now.
    let (body, e) = scrape(&mut ts, http).await;
    assert_eq!(value(&e, "dnslb_ts_queries_total", &[]), 9.0, "{body}");
    assert_eq!(answers(&e, "NOERROR"), 6.0, "{body}");

    // Unknown paths are 404.
    let r = http_try_get(http, "/").await.expect("an answer");
    assert_eq!(r.status, 404);

    ts.signal(Signal::TERM);
    let status = ts.wait_exit(READY_LIMIT).expect("dnslb ts stops");
    assert!(status.success(), "{status}");
}

//! `dnslb status` shows the `[[ts.service]]` endpoints: `dnslb up` with one TS whose service has a
//! live TCP endpoint and a dead one; the "Endpoints of services" table
//! shows one up and one DOWN once the checks settle, and the TS's
//! `/health` JSON agrees with its `dnslb_ts_endpoint_up`.
//!
//! Every process is stopped by PID through its [`Proc`] guard; every wait is
//! a bounded poll of real state.
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::kit::{
    Endpoint, Proc, free_ports, http_get_from, local, parse_exposition, path_str, poll_until,
    run_dnslb, value,
};

/// How long the checks may take to settle (interval 100 ms, fall 2).
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// Pause between two polls.
const POLL_PAUSE: Duration = Duration::from_millis(50);
/// How long `dnslb status` may take.
const STATUS_LIMIT: Duration = Duration::from_secs(10);

/// The endpoint rows (service, endpoint, check, state) of `dnslb status`.
fn endpoint_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip_while(|l| !l.starts_with("TS "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The `[[ts]]` table of a TS named ts1 listening on `port`, its metrics
/// on `metrics`, serving example.test. from a zone file it writes in `dir`.
fn ts1_table(dir: &Path, port: u16, metrics: u16) -> String {
    let zone = dir.join("example.test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n",
    )
    .unwrap();
    format!(
        r#"[[ts]]
name = "ts1"
listen = "127.0.0.1:{port}"
zones = ["{}"]
workers = 1
metrics = "127.0.0.1:{metrics}"
"#,
        zone.display()
    )
}

/// A service's TCP check of `port`, quick to settle (every 100 ms, rise
/// and fall 2).
fn tcp_check(port: u16) -> String {
    format!(
        "check = {{ kind = \"tcp\", port = {port}, interval_ms = 100, timeout_ms = 300, rise = 2, fall = 2 }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_service_endpoint_up_or_down() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(5);
    let (pl, pm, pt, ptm, pc) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    // The live endpoint listens on the check's port; on the dead one's
    // address nothing does (refused).
    let live = Endpoint::tcp(SocketAddr::from(([127, 0, 61, 1], pc))).await;
    let (ts1, check) = (ts1_table(dir.path(), pt, ptm), tcp_check(pc));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[ls]
listen = ["127.0.0.1:{pl}"]
workers = 1
metrics = "127.0.0.1:{pm}"

[[ls.backend]]
name = "ts1"
addr = "127.0.0.1:{pt}"

{ts1}
[[ts.service]]
name = "app.example.test"
{check}
endpoint = [ {{ addr = "127.0.61.1" }}, {{ addr = "127.0.61.2" }} ]
"#
        ),
    )
    .unwrap();
    let config = path_str(&config).to_owned();
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", &config], Path::new("/"));
    let tsm = local(ptm);
    http_get_from(&mut up, tsm, "/metrics").await;

    let mut last = String::new();
    let rows = poll_until(SETTLE_LIMIT, POLL_PAUSE, || {
        let out = run_dnslb(
            &["status", "-c", &config],
            Path::new("/"),
            None,
            STATUS_LIMIT,
        );
        last = format!("{}\n{}", out.stdout, out.stderr);
        let rows = endpoint_rows(&out.stdout);
        let states: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.get(4))
            .map(|s| s.as_str())
            .collect();
        (out.status.success() && states == ["up", "DOWN"]).then_some(rows)
    })
    .unwrap_or_else(|| panic!("dnslb status never showed one up, one DOWN; last:\n{last}"));
    for (row, addr, state) in [
        (&rows[0], "127.0.61.1", "up"),
        (&rows[1], "127.0.61.2", "DOWN"),
    ] {
        assert_eq!(
            row[..5],
            ["ts1", "app.example.test.", addr, "tcp", state],
            "{last}"
        );
        assert_eq!(row.last().map(String::as_str), Some("ago"), "{last}");
    }

    // The TS's JSON agrees with its own metrics (the states are settled:
    // the live endpoint keeps answering, the dead one keeps refusing).
    let health: Value = serde_json::from_str(&http_get_from(&mut up, tsm, "/health").await.body)
        .expect("/health is JSON");
    let e = parse_exposition(&http_get_from(&mut up, tsm, "/metrics").await.body);
    let endpoints = health["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2, "{health}");
    for ep in endpoints {
        let service = ep["service"].as_str().unwrap();
        let endpoint = ep["endpoint"].as_str().unwrap();
        let metric = value(
            &e,
            "dnslb_ts_endpoint_up",
            &[("service", service), ("endpoint", endpoint)],
        );
        let up = ep["up"].as_bool().unwrap();
        assert_eq!(metric, f64::from(u8::from(up)), "{health}");
        assert_eq!(up, endpoint == "127.0.61.1", "{health}");
        assert_eq!(ep["check"], "tcp", "{health}");
    }
    drop(live);
}

/// A TS alone (`dnslb ts`, no LS in the config): `dnslb status -c` shows
/// its endpoints, and so does `--addr` at its metrics listener; over 200
/// endpoints only the DOWN ones are listed, with a summary line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_ts_s_endpoints_without_an_ls_and_sums_up_a_large_table() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let (pt, ptm, pc) = (ports[0], ports[1], ports[2]);
    let many = (0..250)
        .map(|i| format!("{{ addr = \"10.1.{}.{}\" }}", i / 200, i % 200 + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let (ts1, check) = (ts1_table(dir.path(), pt, ptm), tcp_check(pc));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"{ts1}
[[ts.service]]
name = "many.example.test"
endpoint = [ {many} ]

[[ts.service]]
name = "dead.example.test"
{check}
endpoint = [ {{ addr = "127.0.61.2" }} ]
"#
        ),
    )
    .unwrap();
    let config = path_str(&config).to_owned();
    let mut ts = Proc::dnslb(
        "dnslb ts",
        &["ts", "-c", &config, "--name", "ts1"],
        Path::new("/"),
    );
    let tsm = local(ptm);
    http_get_from(&mut ts, tsm, "/metrics").await;
    let tsm_text = tsm.to_string();
    for args in [
        vec!["status", "-c", config.as_str()],
        vec!["status", "--addr", tsm_text.as_str()],
    ] {
        let mut last = String::new();
        let shown = poll_until(SETTLE_LIMIT, POLL_PAUSE, || {
            let out = run_dnslb(&args, Path::new("/"), None, STATUS_LIMIT);
            last = format!("{}\n{}", out.stdout, out.stderr);
            let rows = endpoint_rows(&out.stdout);
            let down = rows.len() == 1
                && rows[0][1..5] == ["dead.example.test.", "127.0.61.2", "tcp", "DOWN"];
            (out.status.success() && down).then_some(out.stdout)
        })
        .unwrap_or_else(|| panic!("{args:?}: never the one DOWN row; last:\n{last}"));
        assert!(
            shown.contains(": 2 services, 251 endpoints, 1 DOWN (over 200 endpoints"),
            "{args:?}:\n{shown}"
        );
    }
}

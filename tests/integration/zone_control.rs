//! `dnslb zone list|status|reload|notify|retransfer|refresh` against a
//! running TS's control listener (`control` in its `[[ts]]`), on a dnslb
//! primary and a dnslb secondary of it, each command's effect seen where it
//! lands:
//!
//! * `reload` on the primary picks up its changed file (its serial in
//!   `status`), and the NOTIFY it sends brings the change to the secondary;
//! * `notify` on the primary reaches the secondary, which asks its primary
//!   (counted in both; acknowledged in the primary's `status`);
//! * `refresh` on the secondary is a SOA check the primary answers (an IXFR
//!   given the SOA alone), `retransfer` an AXFR the primary counts;
//! * an unknown zone, a file zone asked to transfer, a secondary zone asked
//!   to reload: exit 1 and one line saying so; a mutating request by GET is
//!   405, one without the control header 403; `--json` parses;
//! * a listener not bound to loopback wants the `api_key` from every peer
//!   (401 without it, taken with it, the command sending the config's).
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::kit::hostile::secondary_config;
use crate::kit::xfr::{TsProc, sec_zone};
use crate::kit::{
    ZoneDir, dnslb_cli, free_port, http_get, http_request_with, local, parse_exposition,
    poll_until_async, value,
};

/// How long a change may take to show (a NOTIFY, a transfer).
const FOLLOW: Duration = Duration::from_secs(10);
const CONTROL: (&str, &str) = ("X-Dnslb-Control", "1");

/// `dnslb zone ARGS -c CONFIG`: success, stdout, stderr.
async fn zone(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["zone"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", config.to_str().unwrap()]);
    dnslb_cli(&all).await
}

/// `dnslb zone ARGS` that must succeed: its stdout.
async fn zone_ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = zone(config, args).await;
    assert!(ok, "dnslb zone {args:?} failed: {err}");
    out
}

/// The value of a TS's counter `name{label}` on its `/metrics` at `at`.
async fn counter(at: SocketAddr, name: &str, label: (&str, &str)) -> f64 {
    let e = parse_exposition(&http_get(at, "/metrics").await.body);
    value(&e, name, &[label])
}

/// Waits until the counter reaches `want` (panics after [`FOLLOW`]).
async fn counter_reaches(at: SocketAddr, name: &str, label: (&str, &str), want: f64) {
    let seen = poll_until_async(FOLLOW, Duration::from_millis(20), async || {
        (counter(at, name, label).await >= want).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{name}{label:?} never reached {want}: {}",
        counter(at, name, label).await
    );
}

/// The zone's status as JSON, from `dnslb zone status NAME --json`.
async fn status_json(config: &Path, name: &str) -> serde_json::Value {
    let out = zone_ok(config, &["status", name, "--json"]).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Waits until `done` holds of the zone's status (panics after [`FOLLOW`]).
async fn status_until(config: &Path, name: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let seen = poll_until_async(FOLLOW, Duration::from_millis(50), async || {
        done(&status_json(config, name).await).then_some(())
    })
    .await;
    assert!(seen.is_some(), "never: {}", status_json(config, name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_zone_command_does_what_it_says_on_a_primary_and_its_secondary() {
    let sec_port = free_port();
    let (pm, pc, sm, sc) = (free_port(), free_port(), free_port(), free_port());
    let pdir = ZoneDir::new();
    pdir.write("sec.zone", &sec_zone(1, ""));
    let extra = format!("metrics = \"127.0.0.1:{pm}\"\ncontrol = \"127.0.0.1:{pc}\"\n");
    let primary = TsProc::start(pdir.path(), ("sec.zone", &extra), sec_port, "sec.test.").await;
    let pconfig = pdir.path().join("config.toml");
    let sdir = ZoneDir::new();
    let config = secondary_config(sdir.path(), sec_port, primary.addr, "")
        + &format!("metrics = \"127.0.0.1:{sm}\"\ncontrol = \"127.0.0.1:{sc}\"\n");
    let mut sec = TsProc::spawn(sdir.path(), "sec", sec_port, &config);
    sec.wait_serving("sec.test.").await;
    let sconfig = sdir.path().join("config.toml");
    let (pmetrics, smetrics) = (local(pm), local(sm));

    // list and status, as text and as JSON.
    let list = zone_ok(&pconfig, &["list"]).await;
    assert!(list.starts_with("zone "), "{list}");
    assert!(
        list.contains("sec.test.") && list.contains(" file "),
        "{list}"
    );
    let list = zone_ok(&sconfig, &["list", "--json"]).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "sec.test.");
    assert_eq!(list[0]["source"], "secondary");
    assert_eq!(list[0]["serial"], 1);
    let text = zone_ok(&sconfig, &["status", "sec.test"]).await;
    assert!(
        text.contains(&format!("primary {}", primary.addr)),
        "{text}"
    );
    assert!(
        text.contains("last transfer:") && text.contains("new version by axfr"),
        "{text}"
    );
    assert!(text.contains("next refresh:   in "), "{text}");
    let text = zone_ok(&pconfig, &["status"]).await;
    assert!(
        text.contains("source:         file (") && text.contains("sec.zone"),
        "{text}"
    );

    // reload on the primary: the changed file, serial 2; its NOTIFY
    // brings the change to the secondary, and is acknowledged.
    pdir.write("sec.zone", &sec_zone(2, "new IN A 192.0.2.99\n"));
    let out = zone_ok(&pconfig, &["reload", "sec.test."]).await;
    assert_eq!(out, "reload sec.test.: reloaded: serial 1 -> 2\n");
    let p = status_json(&pconfig, "sec.test").await;
    assert_eq!(p["serial"], 2);
    assert_eq!(p["last_reload"]["ok"], true);
    status_until(&sconfig, "sec.test", |s| s["serial"] == 2).await;
    status_until(&pconfig, "sec.test", |s| s["notify"][0]["acked"] == 1).await;
    // Nothing changed since: a reload says so.
    let out = zone_ok(&pconfig, &["reload", "sec.test"]).await;
    assert!(out.contains("unchanged"), "{out}");

    // notify on the primary reaches the secondary, which asks its primary.
    let accepted = ("event", "notify_accepted");
    let before = counter(smetrics, "dnslb_ts_secondary_total", accepted).await;
    let out = zone_ok(&pconfig, &["notify", "sec.test"]).await;
    assert!(
        out.starts_with("notify sec.test.: NOTIFY of serial 2 sent to"),
        "{out}"
    );
    counter_reaches(smetrics, "dnslb_ts_secondary_total", accepted, before + 1.0).await;
    status_until(&pconfig, "sec.test", |s| s["notify"][0]["acked"] == 2).await;

    // refresh on the secondary: a SOA check, answered by the primary with
    // its SOA alone.
    let soa_only = ("kind", "ixfr_soa");
    let before = counter(pmetrics, "dnslb_ts_xfr_total", soa_only).await;
    let out = zone_ok(&sconfig, &["refresh", "sec.test"]).await;
    assert_eq!(out, "refresh sec.test.: up to date\n");
    counter_reaches(pmetrics, "dnslb_ts_xfr_total", soa_only, before + 1.0).await;

    // retransfer on the secondary: an AXFR the primary counts, the zone
    // served again, same serial.
    let axfr = ("kind", "axfr");
    let before = counter(pmetrics, "dnslb_ts_xfr_total", axfr).await;
    let out = zone_ok(&sconfig, &["retransfer", "sec.test", "--json"]).await;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (a["done"].clone(), a["detail"].clone()),
        (true.into(), "new version by axfr".into())
    );
    assert_eq!(a["serial_after"], 2);
    counter_reaches(pmetrics, "dnslb_ts_xfr_total", axfr, before + 1.0).await;
    let s = status_json(&sconfig, "sec.test").await;
    assert_eq!(s["last_transfer"]["detail"], "new version by axfr");

    // What does not fit: exit 1, one line saying so.
    for (config, args, says) in [
        (
            &pconfig,
            &["status", "nope.test"][..],
            "no such zone: nope.test.",
        ),
        (
            &pconfig,
            &["reload", "nope.test"][..],
            "no such zone: nope.test.",
        ),
        (
            &pconfig,
            &["retransfer", "sec.test"][..],
            "not a secondary zone",
        ),
        (
            &sconfig,
            &["reload", "sec.test"][..],
            "a secondary zone has no file",
        ),
    ] {
        let (ok, _, err) = zone(config, args).await;
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A mutating request by GET: 405; by POST without the header: 403.
    let control = local(pc);
    let r = http_get(control, "/zones/sec.test/reload").await;
    assert_eq!(r.status, 405, "{}", r.body);
    let r = http_request_with(control, "POST", "/zones/sec.test/notify", &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http_request_with(control, "POST", "/zones/sec.test/notify", &[CONTROL]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(sec);
    drop(primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_listener_not_on_loopback_wants_the_key_from_every_peer() {
    let key = "the-zone-key-0123456789";
    let c = free_port();
    let dir = ZoneDir::new();
    dir.write("sec.zone", &sec_zone(1, ""));
    let extra = format!("control = \"0.0.0.0:{c}\"\napi_key = \"{key}\"\n");
    let ts = TsProc::start(dir.path(), ("sec.zone", &extra), free_port(), "sec.test.").await;
    let config = dir.path().join("config.toml");
    let at = local(c);
    // Reading needs no key; changing does, even from loopback.
    let r = http_get(at, "/zones").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http_request_with(at, "POST", "/zones/sec.test/reload", &[CONTROL]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let wrong = [CONTROL, ("X-Dnslb-Key", "the-zone-key-012345678X")];
    let r = http_request_with(at, "POST", "/zones/sec.test/reload", &wrong).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let addr = at.to_string();
    let (ok, _, err) = dnslb_cli(&["zone", "reload", "sec.test", "-s", &addr]).await;
    assert!(!ok && err.contains("api_key"), "{err}");
    let (ok, out, err) =
        dnslb_cli(&["zone", "reload", "sec.test", "-s", &addr, "--key", key]).await;
    assert!(ok, "{err}");
    assert!(out.contains("unchanged"), "{out}");
    // The command sends the config's key.
    let out = zone_ok(&config, &["reload", "sec.test"]).await;
    assert!(out.contains("unchanged"), "{out}");
    // `dnslb check` warns of such a listener without a key (nothing could
    // change through it), and of no other.
    let path = config.to_str().unwrap();
    let (ok, _, err) = dnslb_cli(&["check", "-c", path]).await;
    assert!(ok && !err.contains("warning"), "{err}");
    let text = std::fs::read_to_string(&config).unwrap();
    let keyless = dir.path().join("keyless.toml");
    std::fs::write(
        &keyless,
        text.replace(&format!("api_key = \"{key}\"\n"), ""),
    )
    .unwrap();
    let (ok, _, err) = dnslb_cli(&["check", "-c", keyless.to_str().unwrap()]).await;
    assert!(ok, "a warning, not a problem: {err}");
    let warned =
        format!("ts.control: warning: 0.0.0.0:{c} is not loopback and there is no api_key");
    assert!(err.contains(&warned), "{err}");
    drop(ts);
}

/// A secondary zone whose primary never answered is listed as not served
/// yet, its status says the attempts failed, and a refresh exits 1 saying
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_zone_not_served_yet_is_listed_with_its_failed_attempts() {
    let (port, c) = (free_port(), free_port());
    let dead = local(free_port());
    let dir = ZoneDir::new();
    let config =
        secondary_config(dir.path(), port, dead, "") + &format!("control = \"127.0.0.1:{c}\"\n");
    let ts = TsProc::spawn(dir.path(), "sec", port, &config);
    let config = dir.path().join("config.toml");
    let listed = poll_until_async(FOLLOW, Duration::from_millis(50), async || {
        let (ok, out, _) = zone(&config, &["list"]).await;
        ok.then_some(out)
    })
    .await
    .unwrap_or_else(|| panic!("the control never answered: {}", ts.stderr_now()));
    assert!(
        listed.contains("sec.test.") && listed.contains("not-served-yet"),
        "{listed}"
    );
    status_until(&config, "sec.test", |s| s["last_attempt"]["ok"] == false).await;
    let text = zone_ok(&config, &["status", "sec.test"]).await;
    assert!(text.contains("NOT SERVED YET"), "{text}");
    let (ok, _, err) = zone(&config, &["refresh", "sec.test"]).await;
    assert!(!ok && err.contains("refresh sec.test.: failed:"), "{err}");
    drop(ts);
}

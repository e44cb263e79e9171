//! The status page in a real browser: Debian's headless Chromium, driven by
//! `tests/browser/status_page.mjs` (playwright-core, never a downloaded
//! browser), loads the page of a real `dnslb up`, sees both backends up,
//! then, once the test has SIGSTOPped the ts1 child, sees ts1 go down
//! *without a reload* (the page updates itself in place). No console
//! message, page error, failed request or HTTP error along the way; the
//! browser leaves a full-page screenshot.
//!
//! Set `DNSLB_SCREENSHOT=docs/status-page.png` to copy the screenshot there
//! (relative to the crate root) — how the README's picture is made; the
//! browser then opens after a minute of traffic, so the chart has a history.
//!
//! Skipped, with a message saying what is missing, when `/usr/bin/chromium`,
//! `node` or `tests/browser/node_modules` (`npm ci` there) is absent;
//! `scripts/test` installs them.
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use rustix::process::Signal;
use serde_json::Value;

use crate::kit::{
    Proc, crate_dir, free_ports, http_get_from, local, ls_head_toml, path_str, pause_pid, pids_of,
    poll_until, poll_until_async, query, write_up_pair,
};

/// Debian's Chromium; the only browser these tests use.
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a server may take to start serving.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// How long the browser may take to start and show the page.
const LOAD_LIMIT: Duration = Duration::from_secs(40);
/// How soon after the SIGSTOP the page must show ts1 down: two failed probes
/// 200 ms apart (each waiting up to its 300 ms timeout), then one update of
/// the page (every 2 s), with room for a loaded machine.
const DOWN_WITHIN: Duration = Duration::from_secs(8);
/// How long the whole browser run may take (its own watchdog is 60 s).
const DRIVER_LIMIT: Duration = Duration::from_secs(75);
/// With `DNSLB_SCREENSHOT` set: traffic before the browser opens, for the chart.
const SCREENSHOT_WARMUP: Duration = Duration::from_secs(60);

/// What the browser run needs and lacks, if anything.
fn missing_tools() -> Option<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("{CHROMIUM} (Debian package `chromium`)"));
    }
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        missing.push("node (Debian package `nodejs`)".to_owned());
    }
    if !crate_dir()
        .join("tests/browser/node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("playwright-core (run `npm ci` in tests/browser)".to_owned());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// A thread sending one query every 25 ms to the LS (names of both tables)
/// until dropped, so that the page has figures and a chart to show.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Traffic {
    fn start(ls: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(25)))
                .unwrap();
            let names = ["www.example.com.", "www.example.org.", "shop.example.net."];
            let mut answered = 0u64;
            let mut buf = [0u8; 1500];
            for name in names.iter().cycle() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let q = query(name, RecordType::A, None).to_vec().unwrap();
                sock.send_to(&q, ls).unwrap();
                // Whatever comes within the pause; late answers are read later.
                while sock.recv(&mut buf).is_ok() {
                    answered += 1;
                }
            }
            answered
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `/health` until backend `name` is in `state`.
async fn backend_state(p: &mut Proc, addr: SocketAddr, name: &str, state: &str) {
    let mut last = Value::Null;
    let found = poll_until_async(READY_LIMIT, POLL_PAUSE, async || {
        last = serde_json::from_str(&http_get_from(p, addr, "/health").await.body).unwrap();
        let b = last["backends"]
            .as_array()?
            .iter()
            .find(|b| b["name"] == name)?;
        (b["state"] == state).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "/health never showed {name} {state}:\n{last:#}"
    );
}

/// Writes the deployment into `dir`: LS on `pl` with metrics on `pm`, TS on `p1`, `p2`,
/// health probes every 200 ms, two failures mark a backend down.
fn up_config(dir: &Path, pl: u16, pm: u16, p1: u16, p2: u16) -> PathBuf {
    let ls_head = ls_head_toml(pl, 1);
    let ls = format!(
        r#"{ls_head}metrics = "127.0.0.1:{pm}"

[ls.health]
interval_ms = 200
timeout_ms = 300
fall = 2
"#
    );
    write_up_pair(dir, &ls, p1, p2)
}

/// Width and height of a PNG, from its IHDR chunk; `None` if `bytes` is not a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.get(..8)? != SIGNATURE || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |r: std::ops::Range<usize>| Some(u32::from_be_bytes(bytes.get(r)?.try_into().ok()?));
    Some((be(16..20)?, be(20..24)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_a_backend_going_down_without_a_reload() {
    let _load = crate::kit::timed().await;
    if let Some(missing) = missing_tools() {
        crate::kit::skip("browser test", &format!("missing {missing}"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let (pl, pm, p1, p2) = (ports[0], ports[1], ports[2], ports[3]);
    let config = up_config(dir.path(), pl, pm, p1, p2);
    let maddr = local(pm);
    let mut up = Proc::dnslb("dnslb up", &["up", "-c", path_str(&config)], Path::new("/"));

    let ready = http_get_from(&mut up, maddr, "/ready").await;
    assert_eq!(ready.status, 200, "/ready of a serving LS: {}", ready.body);
    let ts1 = poll_until(READY_LIMIT, POLL_PAUSE, || {
        pids_of(&up.stderr_now(), "ts1").first().copied()
    })
    .expect("up logged the start of ts1 with its pid");
    let traffic = Traffic::start(local(pl));
    let screenshot_to = std::env::var("DNSLB_SCREENSHOT").ok();
    if screenshot_to.is_some() {
        tokio::time::sleep(SCREENSHOT_WARMUP).await;
    }

    // The browser: its profile, HOME and caches in the test's folder.
    let profile = dir.path().join("profile");
    let handshake = dir.path().join("handshake");
    std::fs::create_dir(&handshake).unwrap();
    let shot = dir.path().join("status-page.png");
    let mut cmd = Command::new("node");
    cmd.current_dir(crate_dir().join("tests/browser"))
        .arg("status_page.mjs")
        .args(["--url", &format!("http://{maddr}/")])
        .args(["--profile", path_str(&profile)])
        .args(["--screenshot", path_str(&shot)])
        .args(["--handshake", path_str(&handshake)])
        .args(["--up", "ts1,ts2", "--down", "ts1"])
        .args(["--down-within-ms", &DOWN_WITHIN.as_millis().to_string()])
        .args(["--chromium", CHROMIUM])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let mut driver = Proc::spawn("status_page.mjs", cmd);

    // The page shows both backends up: stop ts1 (SIGCONT when this test ends).
    let loaded = poll_until(LOAD_LIMIT, POLL_PAUSE, || {
        if driver.exited().is_some() {
            return Some(false);
        }
        handshake.join("loaded").exists().then_some(true)
    });
    if loaded != Some(true) {
        let out = driver.finish(DRIVER_LIMIT);
        panic!(
            "the browser never showed both backends up ({:?}):\n{}\n{}",
            loaded, out.stdout, out.stderr
        );
    }
    let resume = pause_pid(ts1);
    std::fs::write(handshake.join("stopped"), "stopped\n").unwrap();

    let out = driver.finish(DRIVER_LIMIT);
    let report: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("driver output ({e}):\n{}\n{}", out.stdout, out.stderr));
    assert!(
        out.status.success() && report["error"].is_null(),
        "browser run failed ({}): {report:#}\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(report["before"]["ts1"], "up", "{report:#}");
    assert_eq!(report["before"]["ts2"], "up", "{report:#}");
    assert_eq!(report["after"]["ts1"], "down", "{report:#}");
    assert_eq!(report["after"]["ts2"], "up", "{report:#}");
    // Updated in place: the same document, no navigation since it loaded.
    assert_eq!(report["same_document"], true, "{report:#}");
    assert_eq!(report["navigations_after_load"], 0, "{report:#}");
    let down_ms = report["down_after_ms"].as_u64().unwrap();
    assert!(down_ms <= DOWN_WITHIN.as_millis() as u64, "{report:#}");
    for key in ["console", "page_errors", "failed_requests", "http_errors"] {
        assert_eq!(report[key], Value::Array(vec![]), "{key}: {report:#}");
    }
    // The page told the truth: the LS itself has ts1 down.
    backend_state(&mut up, maddr, "ts1", "down").await;

    // A full-page screenshot, at the viewport's width.
    let png = std::fs::read(&shot).expect("the screenshot was saved");
    let (w, h) = png_size(&png).expect("the screenshot is a PNG");
    assert!(w == 1200 && (600..=4000).contains(&h), "{w}x{h}");
    assert!(
        (10_000..3_000_000).contains(&png.len()),
        "{} bytes",
        png.len()
    );
    if let Some(to) = screenshot_to {
        std::fs::copy(&shot, crate_dir().join(&to)).unwrap();
        eprintln!("screenshot copied to {to} ({w}x{h}, {} bytes)", png.len());
    }

    // Resumed, ts1 answers again and comes back up.
    drop(resume);
    backend_state(&mut up, maddr, "ts1", "up").await;
    drop(traffic);
    up.signal(Signal::TERM);
    let status = up.wait_exit(READY_LIMIT).expect("dnslb up stops");
    assert!(status.success(), "{status}");
    eprintln!("ts1 shown down {down_ms} ms after its SIGSTOP");
}

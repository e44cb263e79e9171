//! Live control (docs/CONFIG.md (the LS) "Live control") over the metrics
//! listener and the commands that speak to it:
//!
//! * a backend drained under load: no query lost, it gets no new queries
//!   while drained (its in-flight ones answered), `auto` brings it back;
//!   `/health` says so;
//! * a state set by hand survives a reload (SIGHUP) that keeps the backend
//!   (its weight changed, another backend added);
//! * `dnslb backend`, `dnslb blocks [add|clear]`, `dnslb top` and `dnslb
//!   status` against a running LS;
//! * from a non-loopback address (a network namespace and a veth pair the
//!   test makes; the LS listens on the namespace's address), a
//!   state-changing request without the `api_key`, or with a wrong one,
//!   gets 401, is counted, and changes nothing; with the key it is taken.
//!   "Loopback" is the peer as the listener sees it: 127.0.0.0/8 or ::1.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::kit::*;
use dnslb::ls::backend::admin::AdminState;

const LIMIT: Duration = Duration::from_secs(10);
const CONTROL: (&str, &str) = ("X-Dnslb-Control", "1");

fn sent(ls: &TestLs, i: usize) -> u64 {
    ls.balancer.state().backends[i].stats.sent.load(Relaxed)
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request_with(addr, "POST", path, headers).await
}

/// The `admin` of backend `name` in `/health`.
async fn admin_in_health(addr: SocketAddr, name: &str) -> String {
    let h: serde_json::Value = serde_json::from_str(&http_get(addr, "/health").await.body).unwrap();
    let b = h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap()
        .clone();
    b["admin"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_drained_under_load_loses_nothing_and_auto_brings_it_back() {
    let dir = ZoneDir::new();
    let table = "www.drain.example 10.8.0.1 A\n";
    let [ts1, ts2] = replicas(&dir, table).await;
    let mut cfg = ls_config(&[("ts1", ts1.addr), ("ts2", ts2.addr)]);
    cfg.strategy = dnslb::config::Strategy::Sequential;
    cfg.order = dnslb::config::Order::RoundRobin;
    cfg.layout = dnslb::config::Layout::Replicated;
    let ls = start_ls(cfg).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;

    // Load: 16 clients, each asking again as soon as it is answered.
    let stop = Arc::new(AtomicBool::new(false));
    let (asked, good) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (stop, asked, good, to) = (stop.clone(), asked.clone(), good.clone(), ls.addr);
        clients.push(tokio::spawn(async move {
            let q = query("www.drain.example", RecordType::A, None);
            while !stop.load(Relaxed) {
                asked.fetch_add(1, Relaxed);
                if let Some(m) = udp_exchange(to, &q, Duration::from_secs(3)).await
                    && m.metadata.response_code == ResponseCode::NoError
                    && a_addrs(&m) == [Ipv4Addr::new(10, 8, 0, 1)]
                {
                    good.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let both = poll_until_async(LIMIT, Duration::from_millis(20), async || {
        (sent(&ls, 0) > 100 && sent(&ls, 1) > 100).then_some(())
    })
    .await;
    assert!(both.is_some(), "both backends asked under load");

    let r = post(metrics.addr, "/backend/ts1?state=drain", &[CONTROL]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a: dnslb::metrics::BackendAnswer = serde_json::from_str(&r.body).unwrap();
    assert_eq!((a.state, a.previous), (AdminState::Drain, AdminState::Auto));
    assert_eq!(admin_in_health(metrics.addr, "ts1").await, "drain");
    // Its queries in flight end (answered within milliseconds); then no new one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s1, s2) = (sent(&ls, 0), sent(&ls, 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent(&ls, 0), s1, "a drained backend gets no new queries");
    assert!(sent(&ls, 1) > s2 + 100, "the other takes them");

    let r = post(metrics.addr, "/backend/ts1?state=auto", &[CONTROL]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let back = poll_until_async(LIMIT, Duration::from_millis(20), async || {
        (sent(&ls, 0) > s1 + 100).then_some(())
    })
    .await;
    assert!(back.is_some(), "auto brings it back");
    stop.store(true, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (asked, good) = (asked.load(Relaxed), good.load(Relaxed));
    assert_eq!(
        good, asked,
        "every query answered with the record: none lost"
    );
    // Unknown backend, bad state.
    assert_eq!(
        post(metrics.addr, "/backend/nope?state=drain", &[CONTROL])
            .await
            .status,
        404
    );
    assert_eq!(
        post(metrics.addr, "/backend/ts1?state=up", &[CONTROL])
            .await
            .status,
        400
    );
    metrics.stop().await;
    ls.stop().await;
    ts1.stop().await;
    ts2.stop().await;
}

fn ls_toml(ts1: SocketAddr, ts2: SocketAddr, weight: u32, third: Option<SocketAddr>) -> String {
    let mut t = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"{ts1}\"\nweight = {weight}\n\n\
         [[ls.backend]]\nname = \"ts2\"\naddr = \"{ts2}\"\n"
    );
    if let Some(a) = third {
        t.push_str(&format!(
            "\n[[ls.backend]]\nname = \"ts3\"\naddr = \"{a}\"\n"
        ));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_set_by_hand_survives_a_reload_that_keeps_the_backend() {
    let dir = ZoneDir::new();
    let table = "www.keep.example 10.8.1.1 A\n";
    let [ts1, ts2, ts3] = replicas(&dir, table).await;
    let path = dir.write("config.toml", &ls_toml(ts1.addr, ts2.addr, 1, None));
    let run = start_ls_role(&path).await;
    let metrics = TestMetrics::start(run.balancer.clone(), Default::default()).await;
    let r = post(metrics.addr, "/backend/ts1?state=down", &[CONTROL]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(metrics.addr, "/backend/ts2?state=drain", &[CONTROL]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // ts1's weight changes (a new backend object) and ts3 comes: SIGHUP.
    std::fs::write(&path, ls_toml(ts1.addr, ts2.addr, 5, Some(ts3.addr))).unwrap();
    run.controls.send(dnslb::roles::Control::Reload).unwrap();
    let reloaded = poll_until_async(LIMIT, Duration::from_millis(20), async || {
        (run.balancer.state().backends.len() == 3).then_some(())
    })
    .await;
    assert!(reloaded.is_some(), "the reload was applied");
    let s = run.balancer.state();
    assert_eq!(s.backends[0].weight, 5);
    assert_eq!(s.backends[0].admin.get(), AdminState::Down);
    assert_eq!(s.backends[1].admin.get(), AdminState::Drain);
    assert_eq!(s.backends[2].admin.get(), AdminState::Auto);
    assert_eq!(admin_in_health(metrics.addr, "ts1").await, "down");
    assert_eq!(admin_in_health(metrics.addr, "ts2").await, "drain");
    // Queries go to ts3, the one left in auto.
    let m = udp_exchange(
        run.addr,
        &query("www.keep.example", RecordType::A, None),
        LIMIT,
    )
    .await
    .expect("answered");
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 8, 1, 1)]);
    metrics.stop().await;
    run.controls.send(dnslb::roles::Control::Shutdown).unwrap();
    let _ = run.task.await;
    ts1.stop().await;
    ts2.stop().await;
    ts3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_speak_to_a_running_ls() {
    let (_dir, ts) = table_ts("www.cmd.example 10.8.2.1 A\n").await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let addr = metrics.addr.to_string();
    let at = ["--addr", addr.as_str()];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain(at.iter().map(|a| (*a).to_owned()))
            .collect()
    };
    let run = async |args: Vec<String>| {
        let v: Vec<&str> = args.iter().map(String::as_str).collect();
        dnslb_cli(&v).await
    };
    let (ok, out, err) = run(with(&["backend", "ts1", "drain"])).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("backend ts1: drain (was auto)\n"), "{out}");
    assert!(
        out.contains("queries in flight finish"),
        "what it does: {out}"
    );
    let (ok, out, err) = run(with(&["status"])).await;
    assert!(ok, "{err}");
    assert!(out.contains("drain (by hand)"), "{out}");
    let (ok, _, err) = run(with(&["backend", "nope", "down"])).await;
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, out, err) = run(with(&[
        "blocks",
        "add",
        "192.0.2.0/24",
        "--for",
        "60",
        "--action",
        "refuse",
    ]))
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("192.0.2.0/24") && out.contains("manual") && out.contains("refuse"),
        "{out}"
    );
    let (ok, _, err) = run(with(&[
        "blocks",
        "add",
        "bad.example",
        "--action",
        "nxdomain",
    ]))
    .await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(with(&["blocks"])).await;
    assert!(
        ok && out.contains("bad.example.") && out.contains("192.0.2.0/24"),
        "{out}"
    );
    // In force at once: a name blocked by hand gets NXDOMAIN (EDE 15).
    let m = udp_exchange(
        ls.addr,
        &query("x.bad.example", RecordType::A, Some(1232)),
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m).map(|e| e.0), Some(15));
    let m = udp_exchange(
        ls.addr,
        &query("www.cmd.example", RecordType::A, None),
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let (ok, out, _) = run(with(&["blocks", "clear"])).await;
    assert!(ok);
    assert_eq!(out, "2 blocks lifted\n");
    let (ok, out, _) = run(with(&["blocks"])).await;
    assert!(ok);
    assert_eq!(out, "no blocks in force\n");
    // `top` over the seconds the tick has summed up (one tick a second).
    let seen = poll_until_async(LIMIT, Duration::from_millis(200), async || {
        let (ok, out, _) = run(with(&["top", "--seconds", "30"])).await;
        (ok && out.contains("www.cmd.example.")).then_some(out)
    })
    .await;
    let out = seen.expect("top lists the name asked");
    assert!(
        out.contains("clients:") && out.contains("127.0.0.1"),
        "{out}"
    );
    assert!(out.contains("NOERROR"), "{out}");
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

/// A network namespace with a veth pair to it: `host` on this side, `ns`
/// inside; both removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host: Ipv4Addr,
    ns: Ipv4Addr,
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn new() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let sub = u8::try_from(id % 250).unwrap_or(1) + 1;
        let n = Netns {
            name: format!("dnslbg{id}"),
            host_if: format!("vgh{id}"),
            host: Ipv4Addr::new(10, 213, sub, 1),
            ns: Ipv4Addr::new(10, 213, sub, 2),
        };
        let ns_if = format!("vgn{id}");
        ip_cmd(&["netns", "add", &n.name])?;
        let steps: [Vec<String>; 6] = [
            [
                "link", "add", &n.host_if, "type", "veth", "peer", "name", &ns_if, "netns", &n.name,
            ]
            .map(str::to_owned)
            .to_vec(),
            ["addr", "add", &format!("{}/30", n.host), "dev", &n.host_if]
                .map(|s| s.to_owned())
                .to_vec(),
            ["link", "set", &n.host_if, "up"]
                .map(str::to_owned)
                .to_vec(),
            [
                "-n",
                &n.name,
                "addr",
                "add",
                &format!("{}/30", n.ns),
                "dev",
                &ns_if,
            ]
            .map(|s| s.to_owned())
            .to_vec(),
            ["-n", &n.name, "link", "set", &ns_if, "up"]
                .map(str::to_owned)
                .to_vec(),
            ["-n", &n.name, "link", "set", "lo", "up"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            ip_cmd(&args)?;
        }
        Ok(n)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip_cmd(&["link", "del", &self.host_if]);
        let _ = ip_cmd(&["netns", "del", &self.name]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_request_from_another_address_without_the_key_gets_401_and_changes_nothing() {
    const TEST: &str = "ls_control::a_control_request_from_another_address_without_the_key";
    if find_program("ip").is_none() {
        return skip(TEST, "no `ip` (iproute2)");
    }
    let ns = match Netns::new() {
        Ok(ns) => ns,
        Err(why) => return skip(TEST, &format!("cannot make a network namespace: {why}")),
    };
    let dir = ZoneDir::new();
    let key = "the-api-key-0123456789";
    let metrics_at = SocketAddr::from((ns.ns, 5390));
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:5300\"]\nworkers = 1\nmetrics = \"{metrics_at}\"\n\
         api_key = \"{key}\"\ncontrol_allow = [\"10.213.0.0/16\", \"127.0.0.0/8\"]\n\n\
         [ls.health]\ntimeout_ms = 100\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:5301\"\n"
    );
    let path = dir.write("config.toml", &config);
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns.name,
        BIN,
        "ls",
        "-c",
        path.to_str().unwrap(),
    ])
    .env("RUST_LOG", "info")
    .env_remove(dnslb::supervise::SUPERVISOR_PID_ENV);
    let mut ls = Proc::spawn("dnslb ls (in its namespace)", cmd);
    let up = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        http_try_get(metrics_at, "/health").await
    })
    .await;
    assert!(
        up.is_some(),
        "the LS's metrics never answered: {}",
        ls.stderr_now()
    );

    // From 10.213.x.1: not loopback. No key, a wrong key, a key as Bearer
    // that is wrong: 401, counted, nothing changed.
    let wrong = [CONTROL, ("X-Dnslb-Key", "the-api-key-012345678X")];
    let bearer = [CONTROL, ("Authorization", "Bearer nope")];
    for headers in [&[CONTROL][..], &wrong, &bearer] {
        let r = post(metrics_at, "/backend/ts1?state=drain", headers).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
    }
    let r = post(metrics_at, "/blocks?target=192.0.2.0/24", &[CONTROL]).await;
    assert_eq!(r.status, 401);
    let r = post(
        metrics_at,
        "/cache/flush?name=x.example",
        &[("X-Dnslb-Flush", "1")],
    )
    .await;
    assert_eq!(r.status, 401, "the cache flush needs the key too");
    assert_eq!(admin_in_health(metrics_at, "ts1").await, "auto");
    let blocks = http_get(metrics_at, "/blocks").await;
    assert_eq!(blocks.body.trim(), "[]");
    let e = parse_exposition(&http_get(metrics_at, "/metrics").await.body);
    assert_eq!(
        value(
            &e,
            "dnslb_control_requests_total",
            &[("result", "unauthorized")]
        ),
        5.0
    );
    // The command without the key fails; with it, the state changes.
    let addr = metrics_at.to_string();
    let (ok, _, err) = dnslb_cli(&["backend", "ts1", "drain", "--addr", &addr]).await;
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, out, err) =
        dnslb_cli(&["backend", "ts1", "drain", "--addr", &addr, "--key", key]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("backend ts1: drain (was auto)\n"), "{out}");
    assert_eq!(admin_in_health(metrics_at, "ts1").await, "drain");
    let r = post(
        metrics_at,
        "/blocks/clear",
        &[CONTROL, ("Authorization", &format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    ls.signal(rustix::process::Signal::TERM);
    let out = ls.finish(LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    drop(ns);
}

/// `-c`, `--addr` and `--key` given before `add`/`clear` are the ones used
/// (not lost to the subcommands' own defaults, which would act on
/// ./config.toml's LS, or fail on its absence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_flags_before_the_subcommand_are_used() {
    let (dir, ts) = table_ts("www.flags.example 10.8.3.1 A\n").await;
    let ls = start_ls(ls_config(&[("ts1", ts.addr)])).await;
    let metrics = TestMetrics::start(ls.balancer.clone(), Default::default()).await;
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:5300\"]\nmetrics = \"{}\"\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"{}\"\n",
        metrics.addr, ts.addr
    );
    let path = dir.write("other.toml", &config);
    let path = path.to_str().unwrap();
    // Run from `/`: no config.toml there.
    let (ok, out, err) = dnslb_cli(&["blocks", "-c", path, "add", "192.0.2.1"]).await;
    assert!(ok, "-c before add: {err}");
    assert!(out.contains("192.0.2.1"), "{out}");
    let (ok, out, err) = dnslb_cli(&["blocks", "add", "198.51.100.1", "-c", path]).await;
    assert!(ok, "-c after add: {err}");
    assert!(out.contains("198.51.100.1"), "{out}");
    let addr = metrics.addr.to_string();
    let (ok, out, err) = dnslb_cli(&["blocks", "--addr", &addr, "add", "203.0.113.1"]).await;
    assert!(ok, "--addr before add: {err}");
    assert!(out.contains("203.0.113.1"), "{out}");
    assert_eq!(
        ls.balancer
            .dynblocks()
            .list(std::time::Instant::now())
            .len(),
        3
    );
    let (ok, out, err) = dnslb_cli(&["blocks", "-c", path, "clear"]).await;
    assert!(ok, "-c before clear: {err}");
    assert_eq!(out, "3 blocks lifted\n");
    metrics.stop().await;
    ls.stop().await;
    ts.stop().await;
}

/// A metrics listener bound to 0.0.0.0 wants the `api_key` from a
/// loopback peer too (a proxy or a user on the host); with it, taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_not_on_loopback_wants_the_key_from_loopback_too() {
    let dir = ZoneDir::new();
    let key = "the-api-key-0123456789";
    let [dns, port, ts] = ports();
    let config = format!(
        "[ls]\nlisten = [\"127.0.0.1:{dns}\"]\nworkers = 1\nmetrics = \"0.0.0.0:{port}\"\n\
         api_key = \"{key}\"\n\n[ls.health]\ntimeout_ms = 100\n\n\
         [[ls.backend]]\nname = \"ts1\"\naddr = \"127.0.0.1:{ts}\"\n"
    );
    let path = dir.write("config.toml", &config);
    let cmd = dnslb_command(&["ls", "-c", path.to_str().unwrap()], Path::new("/"));
    let mut ls = Proc::spawn("dnslb ls (metrics on 0.0.0.0)", cmd);
    let at = local(port);
    let up = poll_until_async(LIMIT, Duration::from_millis(50), async || {
        http_try_get(at, "/health").await
    })
    .await;
    assert!(up.is_some(), "metrics never answered: {}", ls.stderr_now());
    let r = post(at, "/backend/ts1?state=drain", &[CONTROL]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post(at, "/blocks?target=192.0.2.0/24", &[CONTROL]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(admin_in_health(at, "ts1").await, "auto");
    let with_key = [CONTROL, ("X-Dnslb-Key", key)];
    let r = post(at, "/backend/ts1?state=drain", &with_key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(admin_in_health(at, "ts1").await, "drain");
    // The command sends the config's key.
    let (ok, out, err) = dnslb_cli(&["backend", "ts1", "auto", "-c", path.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("backend ts1: auto (was drain)\n"), "{out}");
    // `dnslb cache flush` sends it too: let through, then 404 (no cache
    // here), not 401.
    let (ok, _, err) =
        dnslb_cli(&["cache", "flush", "x.example", "-c", path.to_str().unwrap()]).await;
    assert!(!ok && err.contains("no packet cache"), "{err}");
    ls.signal(rustix::process::Signal::TERM);
    let out = ls.finish(LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
}

/// A request let through but not done is counted by why (400
/// `invalid`, 404 `not_found`), a flush without its header as `forbidden`;
/// `/top` with a bad `seconds` or `n` is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_requests_are_counted_by_what_became_of_them() {
    let ls_cfg = ls_config(&[("ts1", "127.0.0.1:9".parse().unwrap())]);
    let metrics = TestMetrics::start_for(&ls_cfg).await;
    let at = metrics.addr;
    assert_eq!(
        post(at, "/backend/nope?state=drain", &[CONTROL])
            .await
            .status,
        404
    );
    assert_eq!(
        post(at, "/backend/ts1?state=bogus", &[CONTROL])
            .await
            .status,
        400
    );
    assert_eq!(
        post(at, "/blocks?target=x&for=0", &[CONTROL]).await.status,
        400
    );
    assert_eq!(
        post(at, "/cache/flush?name=x.example", &[]).await.status,
        403
    );
    assert_eq!(
        post(at, "/backend/ts1?state=drain", &[CONTROL])
            .await
            .status,
        200
    );
    let e = parse_exposition(&http_get(at, "/metrics").await.body);
    let count = |result: &str| value(&e, "dnslb_control_requests_total", &[("result", result)]);
    assert_eq!(count("accepted"), 1.0);
    assert_eq!(count("invalid"), 2.0);
    assert_eq!(count("not_found"), 1.0);
    assert_eq!(count("forbidden"), 1.0);
    for bad in [
        "seconds=abc",
        "seconds=100000",
        "seconds=0",
        "n=-1",
        "n=101",
    ] {
        let r = http_get(at, &format!("/top?{bad}")).await;
        assert_eq!(r.status, 400, "/top?{bad}: {}", r.body);
    }
    assert_eq!(http_get(at, "/top?seconds=5&n=3").await.status, 200);
    metrics.stop().await;
}

/// `dnslb blocks | head` (a reader that goes away) is no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_is_no_error() {
    let ls_cfg = ls_config(&[("ts1", "127.0.0.1:9".parse().unwrap())]);
    let metrics = TestMetrics::start_for(&ls_cfg).await;
    let addr = metrics.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = dnslb_command(&["blocks", "--addr", &addr], Path::new("/"));
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // The reader is gone before the command writes.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    metrics.stop().await;
}

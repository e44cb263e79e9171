//! A TS of many zone files, started (its zones logged
//! in one line) and reloaded by a real SIGHUP: the zone whose file changed
//! answers its new data, every other zone still
//! answers, and the reload's log line says one zone was compiled (the
//! others are kept as they were, not read again). A bad file applies
//! nothing: the change beside it waits for the next good reload.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use rustix::process::Signal;

use crate::kit::{Proc, ZoneDir, a_addrs, free_port, local, wait_for, wait_stderr};

/// Zones served: more than a scan of them is kept for, few enough for a
/// debug build to load in a moment.
const ZONES: usize = 300;
/// How long a start or a reload may take (a debug build on a busy machine).
const LIMIT: Duration = Duration::from_secs(60);

/// Zone `z{i}.test.`: SOA at `serial`, NS and glue, `www` at `www`.
fn zone(i: usize, serial: u32, www: Ipv4Addr) -> String {
    format!(
        "$ORIGIN z{i}.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 300\n\
         @ NS ns\nns A 192.0.2.53\nwww A {www}\n"
    )
}

/// Rewrites `file` as a careful editor does: aside, then renamed over.
fn rewrite(file: &Path, text: &str) {
    let aside = file.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, file).unwrap();
}

/// Waits until `www.z{i}.test.` answers exactly `want`.
async fn answers(ts: &mut Proc, dns: SocketAddr, i: usize, want: Ipv4Addr) {
    let name = format!("www.z{i}.test.");
    wait_for(dns, &name, RecordType::A, false, LIMIT, &mut [ts], |m| {
        a_addrs(m) == [want]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_compiles_only_the_changed_zone_and_the_others_still_answer() {
    let dir = ZoneDir::new();
    let old = Ipv4Addr::new(192, 0, 2, 1);
    let files: Vec<PathBuf> = (0..ZONES)
        .map(|i| dir.write(&format!("z{i}.zone"), &zone(i, 1, old)))
        .collect();
    let port = free_port();
    let dns = local(port);
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    let config = dir.write(
        "config.toml",
        &format!(
            "[[ts]]\nname = \"many\"\nlisten = \"{dns}\"\nworkers = 1\nzones = [{}]\n",
            list.join(", ")
        ),
    );
    let mut ts = Proc::dnslb(
        "ts",
        &["ts", "-c", &config.display().to_string(), "--name", "many"],
        dir.path(),
    );
    answers(&mut ts, dns, ZONES - 1, old).await;
    // Started: one line for all the zones, not a line a zone. The answer can
    // come before the log's reader has the lines: wait for the line that
    // follows them.
    wait_stderr(&mut ts, "table server ready", 1, LIMIT).await;
    let log = ts.stderr_now();
    let loaded = log.lines().find(|l| l.contains("zones loaded"));
    let loaded = loaded.unwrap_or_else(|| panic!("no 'zones loaded' line:\n{log}"));
    assert!(
        loaded.contains(&format!("zones={ZONES}")) && loaded.contains("rrsets="),
        "{loaded}"
    );
    assert!(!log.contains("zone loaded"), "{log}");

    // One zone changes: served, the others still answer, one compiled.
    let new = Ipv4Addr::new(203, 0, 113, 7);
    rewrite(&files[150], &zone(150, 2, new));
    ts.signal(Signal::HUP);
    wait_stderr(&mut ts, "reload done", 1, LIMIT).await;
    answers(&mut ts, dns, 150, new).await;
    for i in [0, 149, 151, ZONES - 1] {
        answers(&mut ts, dns, i, old).await;
    }
    let log = ts.stderr_now();
    let line = log.lines().find(|l| l.contains("reload done")).unwrap();
    assert!(
        line.contains("changed=1")
            && line.contains("compiled=1")
            && line.contains(&format!("zones={ZONES}")),
        "{line}"
    );

    // A good change beside a bad file: nothing applied, the bad line named.
    rewrite(&files[10], &zone(10, 2, new));
    rewrite(
        &files[11],
        "$ORIGIN z11.test.\n@ SOA ns hostmaster 2 3600 600 86400 300\nwww A 300.1.2.3\n",
    );
    ts.signal(Signal::HUP);
    wait_stderr(&mut ts, "reload refused", 1, LIMIT).await;
    let log = ts.stderr_now();
    let refused = log.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(
        refused.contains(&format!("{}:3", files[11].display())),
        "{refused}"
    );
    answers(&mut ts, dns, 10, old).await;
    answers(&mut ts, dns, 11, old).await;

    // Fixed: both applied, two compiled.
    rewrite(&files[11], &zone(11, 2, new));
    ts.signal(Signal::HUP);
    wait_stderr(&mut ts, "reload done", 2, LIMIT).await;
    answers(&mut ts, dns, 10, new).await;
    answers(&mut ts, dns, 11, new).await;
    let log = ts.stderr_now();
    let line = log
        .lines()
        .filter(|l| l.contains("reload done"))
        .nth(1)
        .unwrap();
    assert!(
        line.contains("changed=2") && line.contains("compiled=2"),
        "{line}"
    );
    ts.signal(Signal::TERM);
    let end = ts.finish(Duration::from_secs(10));
    assert!(end.status.success(), "{}", end.stderr);
}

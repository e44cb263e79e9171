//! Zones added, removed and changed live (docs/CONFIG.md (the TS) `zones`,
//! docs/DEPLOY.md "Adding and removing zones"): a SIGHUP to `dnslb ts`
//! whose config changed `zones` applies it without a restart, in one swap:
//! the zones added answer, the zones removed are REFUSED, the zones kept
//! never miss an answer, and the catalog it publishes lists exactly the
//! zones it serves after every change. A config or a zone that does not
//! load changes nothing. Secondary zones added to `zones` are transferred
//! and served, removed ones stop (their `state_dir` copy deleted). Knot
//! (a catalog consumer), NSD (told by NOTIFY) and a dnslb consumer
//! (`catalog_from`) follow each change.
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::xfr::TsProc;
use crate::kit::{self, Knot, Nsd, ZoneDir, free_port, local};

/// How long one reload, or one peer's following of it, may take at most
/// (a loaded machine; they take milliseconds).
const FOLLOW: Duration = Duration::from_secs(20);

/// The zones every config of the storm keeps.
const KEPT: [&str; 4] = ["k0.test", "k1.test", "k2.test", "k3.test"];

/// The zones the storm adds and removes.
const MOVING: [&str; 8] = [
    "v0.test", "v1.test", "v2.test", "v3.test", "v4.test", "v5.test", "v6.test", "v7.test",
];

/// A small zone `name` at `serial`, its `info` TXT naming it.
fn zone(name: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {name}.\n$TTL 300\n\
         @ IN SOA ns1 hostmaster {serial} 3600 600 604800 60\n\
         @ IN NS ns1\n\
         ns1 IN A 192.0.2.53\n\
         info IN TXT \"zone {name} serial {serial}\"\n"
    )
}

/// The TS's config: the zone files of `zones` (each `NAME.zone`) and the
/// `secondaries` entries, publishing cat.test., NOTIFYing `notify`, its
/// metrics on `metrics`.
fn config(
    port: u16,
    metrics: u16,
    zones: &[&str],
    secondaries: &[String],
    notify: &[u16],
) -> String {
    let mut entries: Vec<String> = zones.iter().map(|z| format!("\"{z}.zone\"")).collect();
    entries.extend(secondaries.iter().cloned());
    let notify: Vec<String> = notify
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    format!(
        "[[ts]]\nname = \"primary\"\nlisten = \"127.0.0.1:{port}\"\n\
         metrics = \"127.0.0.1:{metrics}\"\n\
         zones = [{}]\ncatalog = \"cat.test.\"\n\
         axfr_allow = [\"127.0.0.0/8\"]\nnotify = [{}]\nworkers = 1\n",
        entries.join(", "),
        notify.join(", ")
    )
}

/// A TS run from `dir/config.toml` (its zone files there), with what its
/// config names: its port, its metrics address, its NOTIFY targets.
struct Live {
    ts: TsProc,
    dir: ZoneDir,
    port: u16,
    metrics: SocketAddr,
    notify: Vec<u16>,
}

impl Live {
    /// The TS serving `zones` (their files written), NOTIFYing `notify`.
    async fn start(zones: &[&str], notify: Vec<u16>) -> Live {
        let dir = ZoneDir::new();
        for z in KEPT.iter().chain(&MOVING).chain(zones) {
            dir.write(&format!("{z}.zone"), &zone(z, 1));
        }
        let (port, mport) = (free_port(), free_port());
        let text = config(port, mport, zones, &[], &notify);
        let mut ts = TsProc::spawn(dir.path(), "primary", port, &text);
        ts.wait_serving(&format!("{}.", zones[0])).await;
        Live {
            ts,
            dir,
            port,
            metrics: local(mport),
            notify,
        }
    }

    /// Reloads applied and refused so far.
    async fn reloads(&self) -> (u64, u64) {
        let page = kit::http_get(self.metrics, "/metrics").await;
        let e = kit::parse_exposition(&page.body);
        let n = |result| kit::value(&e, "dnslb_ts_reloads_total", &[("result", result)]) as u64;
        (n("applied"), n("refused"))
    }

    /// Writes the config of `zones` and `secondaries`, SIGHUPs the TS and
    /// waits until the reload is counted (applied or refused): whether it
    /// was applied.
    async fn change(&mut self, zones: &[&str], secondaries: &[String]) -> bool {
        let text = config(
            self.port,
            self.metrics.port(),
            zones,
            secondaries,
            &self.notify,
        );
        self.dir.write("config.toml", &text);
        let (applied, refused) = self.reloads().await;
        self.ts.reload();
        let this = &*self;
        // Every 4 ms: each look is a /metrics page the TS renders meanwhile.
        let done = kit::poll_until_async(FOLLOW, Duration::from_millis(4), async || {
            let (a, r) = this.reloads().await;
            (a + r > applied + refused).then_some(a > applied)
        })
        .await;
        done.unwrap_or_else(|| {
            panic!(
                "no reload counted within {FOLLOW:?}:\n{}",
                self.ts.stderr_now()
            )
        })
    }
}

/// The members the catalog cat.test. of the TS at `addr` lists (its AXFR's
/// PTR targets, without the final dot).
async fn catalog_members(addr: SocketAddr) -> BTreeSet<String> {
    let q = kit::query("cat.test.", RecordType::AXFR, None);
    let mut conn = kit::tcp_sent(addr, &q).await;
    let mut records = Vec::new();
    let soas = |r: &Vec<hickory_proto::rr::Record>| {
        r.iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count()
    };
    while soas(&records) < 2 {
        let raw = kit::tcp_recv(&mut conn).await.expect("the catalog's AXFR");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        records.extend(m.answers);
    }
    (records.iter())
        .filter(|r| r.record_type() == RecordType::PTR)
        .map(|r| r.data.to_string().trim_end_matches('.').to_owned())
        .collect()
}

/// `info.ZONE. TXT` asked once of `addr` (2 s).
async fn info(addr: SocketAddr, zone: &str) -> Option<Message> {
    kit::ask(
        addr,
        &format!("info.{zone}."),
        RecordType::TXT,
        false,
        Duration::from_secs(2),
    )
    .await
}

/// Whether `m` is `zone`'s own answer (its TXT names it).
fn answers(m: &Message, zone: &str) -> bool {
    m.metadata.response_code == ResponseCode::NoError
        && m.answers.len() == 1
        && m.answers[0]
            .data
            .to_string()
            .contains(&format!("zone {zone} "))
}

/// What a client asking every zone without pause saw go wrong: a kept zone
/// not answered (or answered wrong), a moving zone answered neither with
/// its own data nor REFUSED.
fn asker(addr: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut asked, mut wrong) = (0, Vec::new());
        while !stop.load(Relaxed) {
            for z in KEPT.iter().chain(&MOVING) {
                asked += 1;
                let m = info(addr, z).await;
                let ok = match &m {
                    Some(m) if answers(m, z) => true,
                    Some(m) => {
                        !KEPT.contains(z) && m.metadata.response_code == ResponseCode::Refused
                    }
                    None => false,
                };
                if !ok && wrong.len() < 20 {
                    wrong.push(format!(
                        "{z}: {}",
                        m.as_ref().map_or("no answer".into(), kit::show)
                    ));
                }
            }
        }
        (asked, wrong)
    })
}

/// The zones of round `i` of the storm: the kept ones and a subset of the
/// moving ones that differs from round to round.
fn round_zones(i: u32) -> Vec<&'static str> {
    let pick = i.wrapping_mul(2_654_435_761) >> 24;
    let mut zones = KEPT.to_vec();
    zones.extend(
        MOVING
            .iter()
            .enumerate()
            .filter(|(b, _)| pick & (1 << b) != 0)
            .map(|(_, z)| *z),
    );
    zones
}

/// SIGHUPs that add, remove and change zones beside a client asking every
/// zone: 1,000 of them, or as many as fit in 90 s (said; a reload that
/// adds a zone whose file was written long before waits for no settle
/// pause: about 25 s here in debug). After each,
/// the catalog lists exactly the zones answered, and at the end the client
/// saw no kept zone miss an answer and no wrong answer.
#[tokio::test]
async fn sighups_add_remove_and_change_zones_and_the_others_never_miss_an_answer() {
    let mut live = Live::start(&KEPT, Vec::new()).await;
    let addr = live.ts.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let client = asker(addr, stop.clone());
    let started = Instant::now();
    let (mut rounds, mut took) = (0u32, Vec::new());
    while rounds < 1_000 && started.elapsed() < Duration::from_secs(90) {
        rounds += 1;
        let zones = round_zones(rounds);
        // Every fifth round a kept zone's data changes too.
        if rounds % 5 == 0 {
            let z = KEPT[(rounds as usize / 5) % KEPT.len()];
            live.dir.write(&format!("{z}.zone"), &zone(z, rounds + 1));
        }
        let t = Instant::now();
        assert!(
            live.change(&zones, &[]).await,
            "round {rounds}: refused:\n{}",
            live.ts.stderr_now()
        );
        took.push(t.elapsed());
        let want: BTreeSet<String> = zones.iter().map(|z| (*z).to_owned()).collect();
        assert_eq!(
            catalog_members(addr).await,
            want,
            "round {rounds}: the catalog lists what is served"
        );
        // The moving zones asked at once: the round's assertions in one
        // round trip, not eight.
        let seen = futures_util::future::join_all(MOVING.iter().map(|z| info(addr, z))).await;
        for (z, m) in MOVING.iter().zip(seen) {
            let m = m.expect("an answer");
            if want.contains(*z) {
                assert!(
                    answers(&m, z),
                    "round {rounds}: {z} added: {}",
                    kit::show(&m)
                );
            } else {
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::Refused,
                    "round {rounds}: {z} removed"
                );
            }
        }
    }
    stop.store(true, Relaxed);
    let (asked, wrong) = client.await.unwrap();
    eprintln!(
        "zones live: {rounds} SIGHUPs in {:.1?} (reload, from SIGHUP to counted: {}); the client asked {asked} times",
        started.elapsed(),
        kit::summary(&took)
    );
    assert!(wrong.is_empty(), "the client saw:\n{}", wrong.join("\n"));
    assert!(rounds >= 100, "only {rounds} SIGHUPs in 90 s");
    assert!(asked > u64::from(rounds), "the client asked throughout");
    let log = live.ts.stderr_now();
    assert!(!log.contains("only a restart"), "{log}");
}

/// A zone file added with an error beside a good one: nothing of the
/// change is applied, the error names the file and line, the old zones
/// keep serving; fixed, the same change is applied whole.
#[tokio::test]
async fn a_zone_that_does_not_load_leaves_every_zone_as_it_was() {
    let mut live = Live::start(&KEPT, Vec::new()).await;
    let addr = live.ts.addr;
    live.dir.write(
        "bad.test.zone",
        "$ORIGIN bad.test.\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\nwww IN A 300.1.2.3\n",
    );
    let mut zones = KEPT.to_vec();
    zones.extend(["v0.test", "bad.test"]);
    assert!(!live.change(&zones, &[]).await, "refused");
    let line = live.ts.wait_line("reload refused", FOLLOW).await;
    assert!(line.contains("bad.test.zone:4"), "file:line named: {line}");
    let m = info(addr, "v0.test").await.unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "the good zone of the change is not served either"
    );
    let want: BTreeSet<String> = KEPT.iter().map(|z| (*z).to_owned()).collect();
    assert_eq!(catalog_members(addr).await, want);
    for z in KEPT {
        assert!(
            answers(&info(addr, z).await.unwrap(), z),
            "{z} still served"
        );
    }
    // A zone given both as a file and as a secondary zone: refused too.
    let twice = ["{ name = \"v1.test\", primary = \"127.0.0.1:9\" }".to_owned()];
    let mut with_v1 = KEPT.to_vec();
    with_v1.push("v1.test");
    assert!(!live.change(&with_v1, &twice).await, "given twice: refused");
    live.ts.wait_line("given twice", FOLLOW).await;
    // The same with the files as they are (a reload that reads none).
    let kept_twice = ["{ name = \"k0.test\", primary = \"127.0.0.1:9\" }".to_owned()];
    assert!(
        !live.change(&KEPT, &kept_twice).await,
        "a kept zone given twice: refused"
    );
    assert!(answers(&info(addr, "k0.test").await.unwrap(), "k0.test"));
    assert!(
        !live.ts.stderr_now().contains("secondary zone added"),
        "no secondary zone started"
    );
    live.dir.write("bad.test.zone", &zone("bad.test", 1));
    assert!(live.change(&zones, &[]).await, "fixed: applied");
    assert!(answers(&info(addr, "v0.test").await.unwrap(), "v0.test"));
    assert!(answers(&info(addr, "bad.test").await.unwrap(), "bad.test"));
    assert_eq!(catalog_members(addr).await.len(), KEPT.len() + 2);
}

/// The `{ name, primary }` entry of `zone` from the TS at `primary`.
fn secondary(zone: &str, primary: SocketAddr) -> String {
    format!("{{ name = \"{zone}\", primary = \"{primary}\" }}")
}

/// Secondary zones added to `zones` are transferred and served; removed,
/// they are REFUSED and their copy in `state_dir` is deleted; a zone whose
/// primary changed keeps answering while it is transferred from the new one.
#[tokio::test]
async fn secondary_zones_come_and_go_with_zones() {
    // Two primaries serving s1.test. and s2.test. alike.
    let primaries: Vec<Live> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let live = Live::start(&["s1.test", "s2.test"], Vec::new()).await;
            v.push(live);
        }
        v
    };
    let (p1, p2) = (primaries[0].ts.addr, primaries[1].ts.addr);
    let dir = ZoneDir::new();
    dir.write("own.test.zone", &zone("own.test", 1));
    let (port, mport) = (free_port(), free_port());
    let state = dir.path().join("state");
    let text = |secs: &[String]| {
        let mut entries = vec!["\"own.test.zone\"".to_owned()];
        entries.extend(secs.iter().cloned());
        format!(
            "[[ts]]\nname = \"sec\"\nlisten = \"127.0.0.1:{port}\"\nmetrics = \"127.0.0.1:{mport}\"\n\
             zones = [{}]\nstate_dir = \"{}\"\nworkers = 1\n",
            entries.join(", "),
            state.display()
        )
    };
    let mut sec = TsProc::spawn(dir.path(), "sec", port, &text(&[]));
    sec.wait_serving("own.test.").await;
    let applied = async |n: u64| {
        kit::poll_until_async(FOLLOW, Duration::from_millis(5), async || {
            let page = kit::http_try_get(local(mport), "/metrics").await?;
            let e = kit::parse_exposition(&page.body);
            (kit::value(&e, "dnslb_ts_reloads_total", &[("result", "applied")]) as u64 >= n)
                .then_some(())
        })
        .await
        .expect("the reload applied");
    };
    let sec_addr = sec.addr;
    let served = async |zone: &str| {
        kit::wait_for(
            sec_addr,
            &format!("info.{zone}."),
            RecordType::TXT,
            false,
            FOLLOW,
            &mut [],
            |m| answers(m, zone),
        )
        .await;
    };
    // Added: transferred and served, its copy kept.
    dir.write(
        "config.toml",
        &text(&[secondary("s1.test", p1), secondary("s2.test", p1)]),
    );
    sec.reload();
    applied(1).await;
    sec.wait_line("secondaries_added=2 secondaries_removed=0", FOLLOW)
        .await;
    served("s1.test").await;
    served("s2.test").await;
    let copy = state.join("s2.test.xfr");
    assert!(
        kit::poll_until(FOLLOW, Duration::from_millis(10), || copy
            .exists()
            .then_some(()))
        .is_some(),
        "the copy is kept"
    );
    // s1.test. from the other primary: served throughout; s2.test. removed.
    dir.write("config.toml", &text(&[secondary("s1.test", p2)]));
    sec.reload();
    applied(2).await;
    sec.wait_line("secondaries_added=0 secondaries_removed=1", FOLLOW)
        .await;
    sec.wait_line("secondary zone removed", FOLLOW).await;
    let m = info(sec.addr, "s2.test").await.unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        kit::show(&m)
    );
    assert!(!copy.exists(), "the copy of a zone removed is deleted");
    assert!(answers(
        &info(sec.addr, "s1.test").await.unwrap(),
        "s1.test"
    ));
    sec.wait_line("secondary zone transferred", FOLLOW).await;
    assert!(answers(
        &info(sec.addr, "own.test").await.unwrap(),
        "own.test"
    ));
    let log = sec.stderr_now();
    assert!(!log.contains("only a restart"), "{log}");
    drop(primaries);
}

/// Knot (consuming the catalog), a dnslb TS (`catalog_from`) and NSD (a
/// secondary of one zone, told by NOTIFY) follow twenty changes of the
/// zones a TS serves: each member added is served by the consumers, each
/// removed is dropped.
#[tokio::test]
async fn knot_nsd_and_a_dnslb_consumer_follow_zones_added_and_removed() {
    let Some([knotd]) = kit::need(
        "knot_nsd_and_a_dnslb_consumer_follow_zones_added_and_removed",
        ["knotd"],
    ) else {
        return;
    };
    let Some(_) = kit::find_program("nsd") else {
        kit::skip(
            "knot_nsd_and_a_dnslb_consumer_follow_zones_added_and_removed",
            "no nsd",
        );
        return;
    };
    let port = free_port();
    let primary = local(port);
    // knotd starts once the primary serves: started before, its first
    // refresh of the catalog is refused and its retry comes past the wait.
    let knot_port = free_port();
    let nsd_port = free_port();
    let mut nsd = Nsd::secondary(nsd_port, "v7.test", primary);
    let cdir = ZoneDir::new();
    let cport = free_port();
    let consumer_text = format!(
        "[[ts]]\nname = \"consumer\"\nlisten = \"127.0.0.1:{cport}\"\nzones = []\n\
         catalog_from = {{ name = \"cat.test.\", primary = \"{primary}\" }}\n\
         state_dir = \"{}\"\nworkers = 1\n",
        cdir.path().join("state").display()
    );
    let consumer = TsProc::spawn(cdir.path(), "consumer", cport, &consumer_text);
    // The primary, on the port the peers were told.
    let dir = ZoneDir::new();
    for z in KEPT.iter().chain(&MOVING) {
        dir.write(&format!("{z}.zone"), &zone(z, 1));
    }
    let mport = free_port();
    let notify = vec![knot_port, nsd_port, cport];
    let mut ts = TsProc::spawn(
        dir.path(),
        "primary",
        port,
        &config(port, mport, &KEPT, &[], &notify),
    );
    ts.wait_serving("k0.test.").await;
    let mut knot = Knot::catalog_consumer_on(&knotd, knot_port, "cat.test.", primary);
    let mut live = Live {
        ts,
        dir,
        port,
        metrics: local(mport),
        notify,
    };
    knot.wait_ready("k0.test.").await;
    let follows = async |addr: SocketAddr, zone: &str, there: bool, who: &str| {
        let done = kit::poll_answer(
            addr,
            (&format!("info.{zone}."), RecordType::TXT, false),
            FOLLOW,
            &mut [],
            |m| answers(m, zone) == there,
        )
        .await;
        assert!(
            done.is_ok(),
            "{who}: {zone} {}",
            if there { "served" } else { "dropped" }
        );
    };
    let mut before = KEPT.to_vec();
    for i in 1..=20u32 {
        let zones = round_zones(i * 7);
        assert!(live.change(&zones, &[]).await, "applied");
        for z in &MOVING {
            let (now, was) = (zones.contains(z), before.contains(z));
            if now != was {
                follows(knot.addr, z, now, "knot").await;
                follows(consumer.addr, z, now, "the dnslb consumer").await;
            }
        }
        before = zones;
    }
    // NSD: v7.test. (configured there) is transferred once the TS serves
    // it and NOTIFYs.
    if !before.contains(&"v7.test") {
        let mut zones = before.clone();
        zones.push("v7.test");
        assert!(live.change(&zones, &[]).await);
    }
    nsd.wait_ready("v7.test.").await;
    follows(local(nsd_port), "v7.test", true, "nsd").await;
    for z in KEPT {
        follows(knot.addr, z, true, "knot").await;
    }
}

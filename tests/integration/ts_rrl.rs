//! Response rate limiting on the TS (`rrl` in `[[ts]]`), over real sockets.
//!
//! A spoofed-looking flood (2,000 UDP queries for one name over 2 s, from
//! ten addresses of 127.0.0.0/24: the whole /8 is local on Linux) is held to
//! the rate plus its burst of full answers, about half of the rest coming
//! back truncated (TC=1, no records: "ask again over TCP"), while a second
//! client network asking meanwhile is answered in full, an exempt network is
//! never limited, and TCP is never limited. `log_only` limits nothing and
//! counts what it would have. Side by side with NSD's and Knot's RRL, same
//! settings, same zone, same flood: the answers that come back (full and
//! truncated) and the truncated ones count within 10% of theirs.
//!
//! Counting UDP answers has no end a server can say: each flood's receivers
//! run until no answer has come for [`QUIET`] (bounded by [`DRAIN_LIMIT`]);
//! stopping early only loses answers, which the bounds below allow for.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use dnslb::config::RrlConfig;

use crate::kit::{
    Knot, Nsd, ZoneDir, need, or_skip, poll_until_async, query, start_ts, tcp_from, ts_settings,
    udp_raw_from, wire_query,
};

/// The zone every server serves.
const ZONE: &str = "rrl.test.";
const ZONE_TEXT: &str = "$ORIGIN rrl.test.\n$TTL 300\n\
    @ IN SOA ns.rrl.test. hostmaster.rrl.test. 1 3600 600 86400 300\n\
    @ IN NS ns.rrl.test.\n\
    ns IN A 192.0.2.53\n\
    www IN A 192.0.2.1\n";
/// The name flooded.
const NAME: &str = "www.rrl.test.";
/// The limit under test: answers a second, and every second limited one slips.
const RATE: u32 = 20;
const SLIP: u32 = 2;
/// The flood: this many queries, spread evenly over [`FLOOD_FOR`].
const FLOOD: u64 = 2000;
const FLOOD_FOR: Duration = Duration::from_secs(2);
/// The receivers stop after this long without an answer...
const QUIET: Duration = Duration::from_millis(400);
/// ...or after this long, whatever comes.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What came back to a flood.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Queries sent.
    sent: u64,
    /// Full answers: records (or NXDOMAIN with its SOA), TC=0.
    full: u64,
    /// Truncated answers: TC=1, no records.
    slipped: u64,
    /// Anything else.
    other: u64,
}

impl Tally {
    /// Answers that came back, full or truncated.
    fn answers(&self) -> u64 {
        self.full + self.slipped
    }
}

/// Answers by kind, shared with the receivers.
#[derive(Default)]
struct Counts([AtomicU64; 3]);

impl Counts {
    fn note(&self, raw: &[u8]) {
        let tc = raw.get(2).is_some_and(|b| b & 0x02 != 0);
        let ancount = raw
            .get(6..8)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let rcode = raw.get(3).map_or(0, |b| b & 0x0f);
        let kind = match (tc, ancount, rcode) {
            (false, n, 0) if n > 0 => 0,
            (false, _, 3) => 0,
            (true, 0, _) => 1,
            _ => 2,
        };
        self.0[kind].fetch_add(1, Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Floods `target` with `total` queries for [`NAME`] spread evenly over
/// `over` (a round every 10 ms), taking turns among `sources` (one socket
/// each), and counts what comes back.
async fn flood(target: SocketAddr, sources: &[Ipv4Addr], total: u64, over: Duration) -> Tally {
    flood_names(target, sources, (total, over), |_| NAME.to_owned()).await
}

/// [`flood`] asking `name(i)` in the `i`-th query.
async fn flood_names(
    target: SocketAddr,
    sources: &[Ipv4Addr],
    (total, over): (u64, Duration),
    name: impl Fn(u64) -> String,
) -> Tally {
    let counts = Arc::new(Counts::default());
    let mut socks = Vec::new();
    let mut receivers = Vec::new();
    for &src in sources {
        let sock = Arc::new(UdpSocket::bind(SocketAddr::from((src, 0))).await.unwrap());
        let (s, c) = (sock.clone(), counts.clone());
        receivers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let deadline = tokio::time::Instant::now() + over + DRAIN_LIMIT;
            while let Ok(Ok((n, from))) =
                tokio::time::timeout_at(deadline, s.recv_from(&mut buf)).await
            {
                if from == target {
                    c.note(&buf[..n]);
                }
            }
        }));
        socks.push(sock);
    }
    let rounds = u64::try_from(over.as_millis() / 10).unwrap().max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    for round in 1..=rounds {
        tick.tick().await;
        while sent < total * round / rounds {
            let sock = &socks[usize::try_from(sent).unwrap() % socks.len()];
            let id = u16::try_from(sent % 65_536).unwrap();
            let q = wire_query(&name(sent), RecordType::A, id, false, false);
            sock.send_to(&q, target).await.unwrap();
            sent += 1;
        }
    }
    // Until no answer has come for QUIET (bounded): a wait, not an assert.
    let mut last = u64::MAX;
    poll_until_async(DRAIN_LIMIT, QUIET, async || {
        let now = counts.total();
        let quiet = now == last;
        last = now;
        quiet.then_some(())
    })
    .await;
    for r in receivers {
        r.abort();
    }
    let [full, slipped, other] = counts.0.each_ref().map(|c| c.load(Relaxed));
    Tally {
        sent,
        full,
        slipped,
        other,
    }
}

/// 127.0.0.10 .. 127.0.0.19: ten addresses of one /24.
fn flood_sources() -> Vec<Ipv4Addr> {
    (10..20).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect()
}

/// A TS in the test process serving [`ZONE_TEXT`] with `rrl`.
async fn rrl_ts(rrl: RrlConfig) -> (ZoneDir, crate::kit::TestTs) {
    let dir = ZoneDir::new();
    let zone = dir.write("rrl.test.zone", ZONE_TEXT);
    let mut settings = ts_settings(vec![zone]);
    settings.rrl = rrl;
    (dir, start_ts(settings).await)
}

fn limit(rate: u32, slip: u32) -> RrlConfig {
    RrlConfig {
        responses_per_s: rate,
        slip,
        ..RrlConfig::default()
    }
}

fn counter(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

/// Asks [`NAME`] over UDP from `src` every `gap` for `over`, each answer
/// awaited: (asked, full answers).
async fn paced(target: SocketAddr, src: Ipv4Addr, gap: Duration, over: Duration) -> (u64, u64) {
    let q = wire_query(NAME, RecordType::A, 7, false, false);
    let (mut asked, mut full) = (0, 0);
    let end = Instant::now() + over;
    let mut tick = tokio::time::interval(gap);
    while Instant::now() < end {
        tick.tick().await;
        asked += 1;
        let got = udp_raw_from(IpAddr::V4(src), target, &q, Duration::from_secs(2)).await;
        let counts = Counts::default();
        if let Some(raw) = got {
            counts.note(&raw);
        }
        full += counter(&counts.0[0]);
    }
    (asked, full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_network_gets_the_rate_while_others_are_answered_in_full() {
    let _load = crate::kit::heavy().await;
    let mut rrl = limit(RATE, SLIP);
    rrl.exempt = vec!["127.2.0.0/24".parse().unwrap()];
    let (_dir, ts) = rrl_ts(rrl).await;
    let target = ts.addr;

    let (sources, exempt_source) = (flood_sources(), [Ipv4Addr::new(127, 2, 0, 5)]);
    let started = Instant::now();
    let (flooded, other_net, exempt) = tokio::join!(
        flood(target, &sources, FLOOD, FLOOD_FOR),
        // A second network, a query every 80 ms: under its own limit.
        paced(
            target,
            Ipv4Addr::new(127, 1, 0, 1),
            Duration::from_millis(80),
            FLOOD_FOR
        ),
        // An exempt network flooding too.
        flood(target, &exempt_source, 400, FLOOD_FOR),
    );
    let took = started.elapsed().as_secs_f64();
    eprintln!("flood {flooded:?}; other network {other_net:?}; exempt {exempt:?}; {took:.2} s");

    // The flood: the burst (one second's worth) and the rate over its span,
    // no more; most of it did come back, half of the limited truncated.
    let span = FLOOD_FOR.as_secs_f64();
    let most = f64::from(RATE) * (1.0 + took);
    let least = f64::from(RATE) * (1.0 + span) * 0.8;
    let full = flooded.full as f64;
    assert!(
        (least..=most).contains(&full),
        "full answers {full}, want {least}..={most}"
    );
    assert_eq!(flooded.other, 0, "{flooded:?}");
    let m = &ts.ts.metrics().rrl;
    let (slipped, dropped) = (counter(&m.slipped), counter(&m.dropped));
    assert!(
        slipped.abs_diff(dropped) <= 1,
        "slip 2: slipped {slipped}, dropped {dropped}"
    );
    assert!(
        flooded.slipped * 100 >= slipped * 95,
        "{flooded:?}: the TS slipped {slipped}"
    );
    let limited = (flooded.sent - flooded.full) as f64;
    let half = flooded.slipped as f64 / limited;
    assert!(
        (0.45..=0.55).contains(&half),
        "slipped {half:.3} of the limited"
    );
    let unanswered = &ts.ts.metrics().unanswered;
    let rrl_reason = dnslb::ts::metrics::Unanswered::RateLimited as usize;
    assert_eq!(
        counter(&unanswered[rrl_reason]),
        dropped,
        "dropped = unanswered{{rrl}}"
    );

    // The other network and the exempt one: every answer in full.
    let (asked, answered) = other_net;
    assert!(asked >= 10, "{asked} asked");
    assert_eq!(answered, asked, "the second network answered in full");
    assert_eq!(exempt.full, exempt.sent, "the exempt network: {exempt:?}");
    assert_eq!(counter(&m.exempt), exempt.sent);

    // The flooding network is still limited over UDP, never over TCP.
    let burst = flood(
        target,
        &[Ipv4Addr::new(127, 0, 0, 10)],
        60,
        Duration::from_millis(10),
    )
    .await;
    assert!(burst.full < 40, "still limited over UDP: {burst:?}");
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10));
    for i in 0..30 {
        let m = tcp_from(src, target, &query(NAME, RecordType::A, None)).await;
        assert!(
            !m.metadata.truncation && m.answers.len() == 1,
            "TCP query {i}: {m:?}"
        );
    }
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_only_limits_nothing_and_counts_what_it_would() {
    let _load = crate::kit::heavy().await;
    let mut rrl = limit(RATE, SLIP);
    rrl.log_only = true;
    let (_dir, ts) = rrl_ts(rrl).await;
    let got = flood(ts.addr, &flood_sources(), 500, Duration::from_millis(500)).await;
    assert_eq!((got.full, got.slipped), (got.sent, 0), "{got:?}");
    let m = &ts.ts.metrics().rrl;
    let would = counter(&m.would_limit);
    // All but the burst and half a second's rate.
    let least = got.sent - u64::from(RATE) * 2;
    assert!(
        (least..got.sent).contains(&would),
        "would_limit {would} of {}",
        got.sent
    );
    assert_eq!(counter(&m.slipped) + counter(&m.dropped), 0);
    ts.stop().await;
}

/// `ours` within 10% of `theirs`.
fn within_10_percent(ours: u64, theirs: u64) -> bool {
    ours.abs_diff(theirs) * 10 <= theirs
}

/// The same flood against dnslb, NSD and Knot, one after the other (each
/// alone on the machine), each with `rrl` at [`RATE`] and [`SLIP`].
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_flood_is_limited_as_nsd_and_knot_limit_it() {
    const TEST: &str = "the_same_flood_is_limited_as_nsd_and_knot_limit_it";
    let [_, knotd] = or_skip!(need(TEST, ["nsd", "knotd"]));
    let _load = crate::kit::heavy().await;
    let sources = flood_sources();

    let (_dir, ts) = rrl_ts(limit(RATE, SLIP)).await;
    let ours = flood(ts.addr, &sources, FLOOD, FLOOD_FOR).await;
    ts.stop().await;

    let mut nsd = Nsd::primary_with_rrl(ZONE, ZONE_TEXT, RATE, SLIP);
    nsd.wait_ready(ZONE).await;
    let by_nsd = flood(nsd.addr, &sources, FLOOD, FLOOD_FOR).await;
    drop(nsd);

    let mut knot = Knot::primary_with_rrl(&knotd, ZONE, ZONE_TEXT, RATE, SLIP);
    knot.wait_ready(ZONE).await;
    let by_knot = flood(knot.addr, &sources, FLOOD, FLOOD_FOR).await;
    let knot_logs = knot.logs();
    drop(knot);

    let table = format!(
        "{FLOOD} queries over {FLOOD_FOR:?} from one /24, {RATE}/s, slip {SLIP}:\n\
         server  full  truncated  answers\n\
         dnslb   {:>4}  {:>9}  {:>7}\n\
         nsd     {:>4}  {:>9}  {:>7}\n\
         knot    {:>4}  {:>9}  {:>7}",
        ours.full,
        ours.slipped,
        ours.answers(),
        by_nsd.full,
        by_nsd.slipped,
        by_nsd.answers(),
        by_knot.full,
        by_knot.slipped,
        by_knot.answers(),
    );
    eprintln!("{table}");
    for (peer, theirs) in [("nsd", by_nsd), ("knot", by_knot)] {
        assert!(
            theirs.full < FLOOD / 10,
            "{peer} limited the flood\n{table}\n{knot_logs}"
        );
        assert!(
            within_10_percent(ours.answers(), theirs.answers()),
            "answers within 10% of {peer}'s\n{table}"
        );
        assert!(
            within_10_percent(ours.slipped, theirs.slipped),
            "truncated answers within 10% of {peer}'s\n{table}"
        );
    }
}

/// Random names under one zone (NXDOMAIN, each name asked once) are one
/// limit, the zone's: asking a new name each time buys nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_names_under_one_zone_share_the_zones_limit() {
    let _load = crate::kit::heavy().await;
    let (_dir, ts) = rrl_ts(limit(RATE, SLIP)).await;
    let started = Instant::now();
    let names = |i: u64| format!("r{i}x{}.rrl.test.", rand::random::<u32>());
    let got = flood_names(
        ts.addr,
        &flood_sources(),
        (1000, Duration::from_secs(1)),
        names,
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    let most = f64::from(RATE) * (1.0 + took);
    assert!(
        (got.full as f64) <= most,
        "{got:?}: at most {most} full answers"
    );
    assert!(got.slipped * 100 >= (got.sent - got.full) * 45, "{got:?}");
    assert_eq!(got.other, 0, "{got:?}");
    ts.stop().await;
}

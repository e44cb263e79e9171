//! Tests of the dynamic blocks, on a made-up clock: each kind blocks the
//! key over its threshold within a tick and lifts it after `block_s`;
//! clients at a normal rate and excluded ones are never blocked.
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::config::{DynAction, DynBlockConfig, DynKind, DynRcode, LsConfig};
use crate::dns::fixtures::wire_name;

const A: u16 = 1;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `name` in wire form, with type A and class IN after it (as at the door).
fn wire(name: &str) -> Vec<u8> {
    let mut w = wire_name(name);
    w.extend_from_slice(&[0, 1, 0, 1]);
    w
}

fn blocks(rules: Vec<DynBlockConfig>, t0: Instant) -> DynBlocks {
    let c = LsConfig {
        dynamic_block: rules,
        ..LsConfig::default()
    };
    DynBlocks::new(&c, t0)
}

fn rule(kind: DynKind, threshold: f64) -> DynBlockConfig {
    DynBlockConfig {
        window_s: 2,
        block_s: 5,
        ..DynBlockConfig::new("r", kind, threshold)
    }
}

fn queries(d: &DynBlocks, from: &str, name: &str, qtype: u16, n: usize) {
    let w = wire(name);
    for _ in 0..n {
        d.on_query(ip(from), &w, qtype);
    }
}

fn blocked(d: &DynBlocks, from: &str, name: &str) -> Option<DynAction> {
    d.check(ip(from), &wire(name), true)
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn query_rate_blocks_the_flood_only_until_block_s_and_never_the_excluded() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::QueryRate, 50.0);
    r.exclude = vec!["10.9.0.0/16".parse().unwrap()];
    r.action = DynAction::Refuse;
    let d = blocks(vec![r], t0);
    // 2 s window: 100 queries reach 50/s; the normal client sends 40.
    queries(&d, "192.0.2.1", "www.example.com", A, 100);
    queries(&d, "192.0.2.2", "www.example.com", A, 40);
    queries(&d, "10.9.1.1", "www.example.com", A, 1000);
    assert_eq!(
        blocked(&d, "192.0.2.1", "x."),
        None,
        "nothing before the tick"
    );
    d.tick(secs(t0, 1));
    assert_eq!(blocked(&d, "192.0.2.1", "x."), Some(DynAction::Refuse));
    assert_eq!(blocked(&d, "192.0.2.2", "x."), None, "normal rate");
    assert_eq!(blocked(&d, "10.9.1.1", "x."), None, "excluded");
    let list = d.list(secs(t0, 1));
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].target.as_str(),
            list[0].rule.as_str(),
            list[0].seconds_left
        ),
        ("192.0.2.1", "r", 5)
    );
    assert_eq!(list[0].queries_blocked, 1);
    assert!(
        list[0].reason.contains("100 queries in 2 s"),
        "{}",
        list[0].reason
    );
    // It stops sending; the block runs its 5 s and is lifted.
    for s in 2..6 {
        d.tick(secs(t0, s));
        assert!(blocked(&d, "192.0.2.1", "x.").is_some(), "{s} s");
    }
    d.tick(secs(t0, 6));
    assert_eq!(blocked(&d, "192.0.2.1", "x."), None, "lifted after block_s");
    let stats = d.stats();
    assert_eq!(stats[0].blocks.load(Relaxed), 1);
    assert_eq!(stats[0].queries_blocked.load(Relaxed), 5);
}

#[test]
fn a_client_that_keeps_flooding_stays_blocked_and_windows_start_over() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 50.0)], t0);
    // 60 in the first window (under 100), 60 in the next: never over.
    queries(&d, "192.0.2.1", "a.", A, 60);
    d.tick(secs(t0, 1));
    d.tick(secs(t0, 2));
    queries(&d, "192.0.2.1", "a.", A, 60);
    d.tick(secs(t0, 3));
    assert_eq!(
        blocked(&d, "192.0.2.1", "a."),
        None,
        "the window started over"
    );
    // Over, and still over when the block would end: renewed.
    queries(&d, "192.0.2.1", "a.", A, 100);
    d.tick(secs(t0, 4));
    assert!(blocked(&d, "192.0.2.1", "a.").is_some());
    for s in 5..12 {
        queries(&d, "192.0.2.1", "a.", A, 100);
        d.tick(secs(t0, s));
    }
    assert!(blocked(&d, "192.0.2.1", "a.").is_some(), "renewed");
    assert_eq!(d.stats()[0].blocks.load(Relaxed), 1, "one block, renewed");
}

#[test]
fn drops_before_the_door_count_for_the_block_and_keep_it_renewed() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 50.0)], t0);
    queries(&d, "192.0.2.1", "a.", A, 150);
    d.tick(secs(t0, 1));
    assert!(blocked(&d, "192.0.2.1", "a.").is_some());
    let before = d.stats()[0].queries_blocked.load(Relaxed);
    // From now on the flood never reaches the door: the XDP program drops
    // it and tells its counts, per blocked network.
    let net: ipnet::IpNet = "192.0.2.1/32".parse().unwrap();
    for s in 2..14 {
        d.on_dropped(net, 100);
        d.tick(secs(t0, s));
    }
    assert!(
        blocked(&d, "192.0.2.1", "a.").is_some(),
        "renewed by the drops alone, past block_s"
    );
    let stats = d.stats();
    assert_eq!(stats[0].blocks.load(Relaxed), 1, "one block, renewed");
    // 12 seconds of drops (the check above counts one more).
    assert_eq!(stats[0].queries_blocked.load(Relaxed), before + 1200 + 1);
    // The flood stops: the block lifts after block_s.
    for s in 14..22 {
        d.tick(secs(t0, s));
    }
    assert_eq!(blocked(&d, "192.0.2.1", "a."), None, "lifted");
    // Drops of a network no block holds (lifted meanwhile) count nothing
    // and block nothing; those of a network blocked by hand are its own.
    d.on_dropped(net, 1000);
    d.tick(secs(t0, 22));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), None);
    let by_hand: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
    d.add_manual(
        &ManualTarget::Net(by_hand),
        60,
        DynAction::Drop,
        secs(t0, 22),
    )
    .unwrap();
    d.on_dropped(by_hand, 1000);
    d.tick(secs(t0, 23));
    let list = d.list(secs(t0, 23));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].queries_blocked, 1000);
    assert_eq!(
        d.stats()[0].blocks.load(Relaxed),
        1,
        "no block of 198.51.100.0"
    );
}

#[test]
fn a_packet_filter_drops_only_whole_groups_whose_blocks_drop() {
    let t0 = Instant::now();
    let mut excluding = rule(DynKind::QueryRate, 50.0);
    excluding.name = "excluding".into();
    excluding.exclude = vec!["2001:db8:1::5/128".parse().unwrap()];
    excluding.action = DynAction::Drop;
    let mut truncating = rule(DynKind::QtypeRate, 50.0);
    truncating.name = "truncating".into();
    truncating.qtype = Some(RecordType::TXT);
    truncating.action = DynAction::Truncate;
    let mut any = rule(DynKind::QtypeRate, 50.0);
    any.name = "any".into();
    any.qtype = Some(RecordType::ANY);
    any.action = DynAction::Drop;
    let d = blocks(vec![any, excluding, truncating], t0);
    queries(&d, "192.0.2.1", "a.", u16::from(RecordType::ANY), 150);
    queries(&d, "2001:db8:1::9", "a.", A, 150);
    queries(&d, "192.0.2.3", "a.", u16::from(RecordType::TXT), 150);
    d.tick(secs(t0, 1));
    assert_eq!(d.list(secs(t0, 1)).len(), 3);
    let by_hand: ipnet::IpNet = "198.51.100.7/24".parse().unwrap();
    d.add_manual(
        &ManualTarget::Net(by_hand),
        60,
        DynAction::Drop,
        secs(t0, 1),
    )
    .unwrap();
    // The ANY flood's address and the network by hand (its network
    // address); not the IPv6 group its rule lets 2001:db8:1::5 out of, not
    // the block that truncates.
    let want: Vec<ipnet::IpNet> = vec![
        "192.0.2.1/32".parse().unwrap(),
        "198.51.100.0/24".parse().unwrap(),
    ];
    assert_eq!(d.drop_nets(), want);
    // The ANY flood goes on, dropped before the door: its block is renewed.
    for s in 2..14 {
        d.on_dropped(want[0], 150);
        d.tick(secs(t0, s));
    }
    assert!(blocked(&d, "192.0.2.1", "a.").is_some(), "renewed");
}

#[test]
fn qtype_rate_counts_its_type_only() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::QtypeRate, 10.0);
    r.qtype = Some(RecordType::ANY);
    let d = blocks(vec![r], t0);
    queries(&d, "192.0.2.1", "a.", 255, 20);
    queries(&d, "192.0.2.2", "a.", A, 500);
    d.tick(secs(t0, 1));
    assert!(blocked(&d, "192.0.2.1", "a.").is_some());
    assert_eq!(blocked(&d, "192.0.2.2", "a."), None);
}

#[test]
fn rcode_rate_and_response_bytes_count_answers() {
    let t0 = Instant::now();
    let mut nx = rule(DynKind::RcodeRate, 5.0);
    nx.rcode = Some(DynRcode::Nxdomain);
    let mut bytes = rule(DynKind::ResponseBytesRate, 1000.0);
    bytes.name = "bytes".into();
    let d = blocks(vec![nx, bytes], t0);
    for _ in 0..10 {
        d.on_answer(ip("192.0.2.1"), 3, 50);
        d.on_answer(ip("192.0.2.2"), 0, 50);
    }
    d.on_answer(ip("192.0.2.3"), 0, 1500);
    d.on_answer(ip("192.0.2.3"), 0, 600);
    d.tick(secs(t0, 1));
    let rules: Vec<(String, String)> = d
        .list(secs(t0, 1))
        .into_iter()
        .map(|b| (b.target, b.rule))
        .collect();
    let mut rules = rules;
    rules.sort();
    assert_eq!(
        rules,
        [
            ("192.0.2.1".to_owned(), "r".to_owned()),
            ("192.0.2.3".to_owned(), "bytes".to_owned())
        ]
    );
}

#[test]
fn rcode_ratio_waits_for_min_responses() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::RcodeRatio, 0.5);
    r.rcode = Some(DynRcode::Refused);
    r.min_responses = 10;
    let d = blocks(vec![r], t0);
    // 9 answers, all REFUSED: too few to judge.
    for _ in 0..9 {
        d.on_answer(ip("192.0.2.1"), 5, 40);
    }
    // 20 answers, 6 REFUSED: under half.
    for i in 0..20 {
        d.on_answer(ip("192.0.2.2"), if i < 6 { 5 } else { 0 }, 40);
    }
    d.tick(secs(t0, 1));
    assert!(d.list(secs(t0, 1)).is_empty());
    d.on_answer(ip("192.0.2.1"), 0, 40);
    d.tick(secs(t0, 2));
    let list = d.list(secs(t0, 2));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].target, "192.0.2.1");
    assert!(
        list[0].reason.contains("9 of 10 answers REFUSED"),
        "{}",
        list[0].reason
    );
}

#[test]
fn name_rate_blocks_a_random_subdomain_flood_under_one_zone_only() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::NameRate, 50.0);
    r.suffix = Some(Name::from_ascii("com.").unwrap());
    r.action = DynAction::Nxdomain;
    let d = blocks(vec![r], t0);
    // 200 random names under victim.com from 200 sources; others at ease.
    for i in 0..200u32 {
        let from = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        d.on_query(from, &wire(&format!("r{i}.Victim.com")), A);
    }
    queries(&d, "192.0.2.2", "www.other.com", A, 30);
    d.tick(secs(t0, 1));
    assert_eq!(
        blocked(&d, "192.0.2.9", "fresh.victim.com"),
        Some(DynAction::Nxdomain)
    );
    assert_eq!(
        blocked(&d, "192.0.2.9", "VICTIM.com"),
        Some(DynAction::Nxdomain)
    );
    assert_eq!(blocked(&d, "192.0.2.2", "www.other.com"), None);
    assert_eq!(blocked(&d, "192.0.2.2", "victim.org"), None);
    let list = d.list(secs(t0, 1));
    assert_eq!(
        (list[0].target.as_str(), list[0].kind.as_str()),
        ("victim.com.", "name")
    );
}

#[test]
fn warn_threshold_warns_without_blocking() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::QueryRate, 50.0);
    r.warn_threshold = Some(20.0);
    let d = blocks(vec![r], t0);
    queries(&d, "192.0.2.1", "a.", A, 60);
    d.tick(secs(t0, 1));
    queries(&d, "192.0.2.1", "a.", A, 1);
    d.tick(secs(t0, 1));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), None);
    assert_eq!(d.stats()[0].warnings.load(Relaxed), 1, "once a window");
}

/// 200,000 forged sources, one query each, beside a real flood: only the
/// flood is blocked, the tables stay at their fixed size, and no forged
/// source inherits anyone's count.
#[test]
fn forged_sources_cannot_grow_memory_or_block_anyone_else() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 150.0)], t0);
    let w = wire("x.example");
    for i in 0..200_000u32 {
        d.on_query(IpAddr::V4(Ipv4Addr::from(0x6400_0000 + i)), &w, A);
        if i % 1000 == 0 {
            queries(&d, "192.0.2.1", "x.example", A, 1);
        }
    }
    let most = d.shards.iter().map(|s| lock(s).clients.allocated()).max();
    assert_eq!(most, Some(CLIENT_SETS * CLIENT_WAYS), "fixed size");
    assert_eq!(
        d.footprint().0,
        SHARDS * CLIENT_SETS * CLIENT_WAYS + WINDOW_SHARDS * CLIENT_SETS * CLIENT_WAYS
    );
    d.tick(secs(t0, 1));
    assert!(
        d.list(secs(t0, 1)).is_empty(),
        "200 from the real client: under 300"
    );
    queries(&d, "192.0.2.1", "x.example", A, 200);
    d.tick(secs(t0, 2));
    let list = d.list(secs(t0, 2));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].target, "192.0.2.1");
}

#[test]
fn ipv6_clients_are_grouped_by_prefix() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 50.0)], t0);
    for i in 0..100u16 {
        let from = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
        d.on_query(from, &wire("a."), A);
    }
    d.tick(secs(t0, 1));
    assert!(
        blocked(&d, "2001:db8:0:1::ffff", "a.").is_some(),
        "same /64"
    );
    assert_eq!(blocked(&d, "2001:db8:0:2::1", "a."), None);
    // `/blocks` shows the group with its prefix length.
    assert_eq!(d.list(secs(t0, 1))[0].target, "2001:db8:0:1::/64");
    let stop = d.stop(ip("2001:db8:0:1::1"), &wire("a."), true).unwrap();
    assert!(!stop.by_hand, "a rule's block");
}

/// A block added by hand says so (its EDE text is chosen on it).
#[test]
fn a_block_by_hand_is_told_from_a_dynamic_one() {
    let t0 = Instant::now();
    let d = blocks(Vec::new(), t0);
    let net = ManualTarget::Addr(ip("2001:db8:a::5"));
    d.add_manual(&net, 60, DynAction::Refuse, t0).unwrap();
    let stop = d.stop(ip("2001:db8:a::9"), &wire("a."), true).unwrap();
    assert_eq!(stop.action, DynAction::Refuse);
    assert!(stop.by_hand);
    assert_eq!(d.list(t0)[0].target, "2001:db8:a::/64");
}

#[test]
fn blocks_by_hand_stop_nets_and_names_and_clear_lifts_all() {
    let t0 = Instant::now();
    let d = blocks(Vec::new(), t0);
    let net = ManualTarget::Net("198.51.100.0/24".parse().unwrap());
    d.add_manual(&net, 600, DynAction::Drop, t0).unwrap();
    let name = ManualTarget::Name(Name::from_ascii("Bad.Example.").unwrap());
    d.add_manual(&name, 60, DynAction::Truncate, t0).unwrap();
    assert_eq!(blocked(&d, "198.51.100.7", "a."), Some(DynAction::Drop));
    assert_eq!(
        blocked(&d, "192.0.2.1", "x.bad.example"),
        Some(DynAction::Truncate)
    );
    // Truncate passes over TCP: the client's address is proven there.
    assert_eq!(
        d.check(ip("192.0.2.1"), &wire("x.bad.example"), false),
        None
    );
    assert_eq!(
        d.add_manual(&net, 0, DynAction::Drop, t0),
        Err(ManualError::Duration {
            max: 86_400,
            got: 0
        })
    );
    let list = d.list(t0);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|b| b.rule == MANUAL));
    d.tick(secs(t0, 61));
    assert_eq!(d.list(secs(t0, 61)).len(), 1, "the name's 60 s ran out");
    assert_eq!(d.clear(), 1);
    assert_eq!(blocked(&d, "198.51.100.7", "a."), None);
}

#[test]
fn top_reports_the_busiest_of_the_last_seconds() {
    let t0 = Instant::now();
    let d = blocks(Vec::new(), t0);
    queries(&d, "192.0.2.1", "a.example", A, 30);
    queries(&d, "192.0.2.2", "b.example", 28, 10);
    d.on_answer(ip("192.0.2.1"), 3, 40);
    d.tick(secs(t0, 1));
    let top = d.top(10, 5, None);
    assert_eq!(top.seconds, 1);
    assert_eq!(top.clients[0].key, "192.0.2.1");
    assert_eq!(top.clients[0].count, 30);
    assert_eq!(top.names[0].key, "a.example.");
    assert_eq!(top.qtypes[1].key, "AAAA");
    assert_eq!(top.rcodes[0].key, "NXDOMAIN");
}

/// With no rule, a fast-path worker's queries and answers go to its ring
/// only (nothing counted for the tick), and `top` reads them as soon as
/// the worker's round ends (`hand_in`), before any tick; with a
/// `name-rate` rule only, no client is counted.
#[test]
fn without_rules_a_worker_s_queries_reach_top_through_its_ring_only() {
    let t0 = Instant::now();
    let d = blocks(Vec::new(), t0);
    let mut mine = d.worker_counts();
    for _ in 0..3 {
        d.count_query(&mut mine, ip("192.0.2.7"), &wire("W.example"), 28);
        d.count_answer(&mut mine, ip("192.0.2.7"), 2, 40);
    }
    assert!(!mine.shard.used, "nothing counted for rules");
    assert_eq!(mine.shard.clients.allocated(), 0);
    d.hand_in(&mut mine);
    let top = d.top(1, 5, None);
    assert_eq!(top.clients[0].key, "192.0.2.7");
    assert_eq!(top.clients[0].count, 3);
    assert_eq!(top.names[0].key, "w.example.");
    assert_eq!(top.rcodes[0].key, "SERVFAIL");
    assert_eq!(top.note, None);
    drop(mine);
    let mut names = rule(DynKind::NameRate, 10.0);
    names.suffix = Some(Name::from_ascii("example.").unwrap());
    let d = blocks(vec![names], t0);
    let mut mine = d.worker_counts();
    d.count_query(&mut mine, ip("192.0.2.7"), &wire("a.example"), A);
    assert!(mine.shard.used);
    assert_eq!(mine.shard.clients.allocated(), 0, "no client counted");
    assert!(mine.shard.names.allocated() > 0);
}

#[test]
fn a_reload_keeps_the_blocks_and_counts_by_the_new_rules() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 50.0)], t0);
    queries(&d, "192.0.2.1", "a.", A, 100);
    d.tick(secs(t0, 1));
    let c = LsConfig {
        dynamic_block: vec![rule(DynKind::QueryRate, 10.0)],
        ..LsConfig::default()
    };
    d.reload(&c);
    assert!(blocked(&d, "192.0.2.1", "a.").is_some(), "kept");
    queries(&d, "192.0.2.2", "a.", A, 25);
    d.tick(secs(t0, 2));
    assert!(
        blocked(&d, "192.0.2.2", "a.").is_some(),
        "the new threshold"
    );
}

/// A tick that comes late (a busy machine) judges the counts over the time
/// they took: 30 queries in 3 s is 10/s, not 30/s.
#[test]
fn a_late_tick_judges_over_the_time_the_counts_took() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::QueryRate, 20.0);
    r.window_s = 1;
    let d = blocks(vec![r], t0);
    queries(&d, "192.0.2.1", "a.", A, 30);
    d.tick(secs(t0, 3));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), None, "10/s over 3 s");
    queries(&d, "192.0.2.1", "a.", A, 30);
    d.tick(secs(t0, 4));
    assert!(blocked(&d, "192.0.2.1", "a.").is_some(), "30 in 1 s");
}

/// A fast-path worker counts into its own tables with no lock; it hands
/// them in at its first event after the tick calls for them, and the next
/// tick judges them with the async path's counts: a block made from both,
/// in force for every worker at once.
#[test]
fn a_worker_s_own_counts_are_handed_in_and_merged_by_the_tick() {
    let t0 = Instant::now();
    let d = blocks(vec![rule(DynKind::QueryRate, 50.0)], t0);
    let (mut one, mut two) = (d.worker_counts(), d.worker_counts());
    let w = wire("a.");
    // 2 s window: 100 needed; 40 on each worker and 30 on the async path.
    for _ in 0..40 {
        d.count_query(&mut one, ip("192.0.2.1"), &w, A);
        d.count_query(&mut two, ip("192.0.2.1"), &w, A);
    }
    queries(&d, "192.0.2.1", "a.", A, 30);
    d.tick(secs(t0, 1));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), None, "not handed in yet");
    d.call_in();
    // Worker one has an event (an answer); worker two only wakes.
    d.count_answer(&mut one, ip("192.0.2.9"), 0, 40);
    d.hand_in(&mut two);
    d.tick(secs(t0, 2));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), Some(DynAction::Drop));
    let list = d.list(secs(t0, 2));
    assert!(list[0].reason.starts_with("110 queries"), "{list:?}");
    // Handed in once per call: the next ticks count nothing twice.
    d.hand_in(&mut one);
    d.tick(secs(t0, 3));
    assert_eq!(
        d.top(1, 5, None).clients.len(),
        0,
        "{:?}",
        d.top(1, 5, None)
    );
}

/// A spray of sources over one rule's low threshold fills that rule's
/// share of the table of blocks only: another rule still blocks its
/// flooder, and a block by hand still finds room.
#[test]
fn a_rule_that_fills_its_share_of_the_table_leaves_room_to_the_others_and_by_hand() {
    let t0 = Instant::now();
    let mut any = DynBlockConfig {
        qtype: Some(RecordType::ANY),
        action: DynAction::Truncate,
        window_s: 1,
        block_s: 600,
        ..DynBlockConfig::new("any", DynKind::QtypeRate, 1.0)
    };
    any.name = "any".into();
    let mut qr = rule(DynKind::QueryRate, 50.0);
    qr.name = "qr".into();
    qr.window_s = 1;
    let d = blocks(vec![any, qr], t0);
    let w = wire("x.example");
    // 12,000 forged sources, two ANY queries each, over a few ticks (the
    // counting tables keep 8,192 keys a shard).
    let mut s = 0;
    for batch in 0..3u32 {
        for i in 0..4000u32 {
            let from = IpAddr::V4(Ipv4Addr::from(0x6400_0000 + batch * 4000 + i));
            d.on_query(from, &w, 255);
            d.on_query(from, &w, 255);
        }
        s += 1;
        d.tick(secs(t0, s));
    }
    let share = tick::rule_share(2);
    assert_eq!(d.in_force(), share, "the rule's share, no more");
    assert!(d.table_full.load(Relaxed) > 0);
    // A real flooder over `qr`: blocked all the same.
    queries(&d, "192.0.2.1", "x.example", A, 100);
    d.tick(secs(t0, s + 1));
    assert_eq!(blocked(&d, "192.0.2.1", "a."), Some(DynAction::Drop));
    // And the operator can add a block by hand.
    let net = ManualTarget::Net("198.51.100.0/24".parse().unwrap());
    assert_eq!(
        d.add_manual(&net, 60, DynAction::Refuse, secs(t0, s + 1)),
        Ok(())
    );
}

/// An excluded IPv6 address inside a client group that is blocked
/// (its neighbours flooded) is still let through; its neighbours are not.
#[test]
fn an_excluded_address_inside_a_blocked_group_is_let_through() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::QueryRate, 50.0);
    r.exclude = vec!["2001:db8:a::1/128".parse().unwrap()];
    let d = blocks(vec![r], t0);
    for _ in 0..200 {
        d.on_query(ip("2001:db8:a::1"), &wire("a."), A);
    }
    d.tick(secs(t0, 1));
    assert_eq!(blocked(&d, "2001:db8:a::2", "a."), Some(DynAction::Drop));
    assert_eq!(blocked(&d, "2001:db8:a::1", "a."), None, "excluded");
}

/// A rule with `log = true` reports its block and its release (for
/// dnstap); one without reports nothing.
#[test]
fn a_rule_with_log_reports_its_block_and_release() {
    let t0 = Instant::now();
    let mut logged = rule(DynKind::QueryRate, 50.0);
    logged.log = true;
    let mut quiet = rule(DynKind::QueryRate, 50.0);
    quiet.name = "q".into();
    let d = blocks(vec![logged, quiet], t0);
    queries(&d, "192.0.2.1", "a.", A, 200);
    let made = d.tick(secs(t0, 1));
    let what: Vec<_> = made
        .iter()
        .map(|e| (e.what, e.rule.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(what, [("block", "r", "192.0.2.1")], "{made:?}");
    assert!(
        made[0]
            .text()
            .starts_with("dnslb dynblock r block 192.0.2.1 ")
    );
    let mut lifted = Vec::new();
    for s in 2..10 {
        lifted.extend(d.tick(secs(t0, s)));
    }
    let what: Vec<_> = lifted.iter().map(|e| (e.what, e.rule.as_str())).collect();
    assert_eq!(what, [("release", "r")], "{lifted:?}");
}

/// An IPv6 client group is named with its prefix length wherever a
/// block is told of (the events for dnstap, the log lines, `/blocks`):
/// `2001:db8:a::/64`, not the bare address of the group.
#[test]
fn an_ipv6_group_is_named_with_its_prefix_length() {
    let t0 = Instant::now();
    let mut logged = rule(DynKind::QueryRate, 50.0);
    logged.log = true;
    let d = blocks(vec![logged], t0);
    queries(&d, "2001:db8:a::1", "a.", A, 200);
    let made = d.tick(secs(t0, 1));
    let targets: Vec<_> = made.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["2001:db8:a::/64"], "{made:?}");
    assert_eq!(d.list(secs(t0, 1))[0].target, "2001:db8:a::/64");
    let mut lifted = Vec::new();
    for s in 2..10 {
        lifted.extend(d.tick(secs(t0, s)));
    }
    let targets: Vec<_> = lifted.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["2001:db8:a::/64"], "{lifted:?}");
}

/// A network blocked by hand is the network written: an IPv4-mapped one
/// the IPv4 network it names (its clients blocked, whether they come as
/// IPv4 or mapped), an IPv6 one longer than the client group kept exact
/// (its group's other addresses pass); a bare IPv6 address is its group.
#[test]
fn a_network_by_hand_is_blocked_as_written_and_a_mapped_one_as_ipv4() {
    let t0 = Instant::now();
    let d = blocks(Vec::new(), t0);
    let mapped = ManualTarget::Net("::ffff:127.0.0.0/104".parse().unwrap());
    d.add_manual(&mapped, 60, DynAction::Refuse, t0).unwrap();
    assert_eq!(d.list(t0)[0].target, "127.0.0.0/8");
    for from in ["127.0.0.1", "127.9.8.7", "::ffff:127.0.0.5"] {
        assert_eq!(blocked(&d, from, "a."), Some(DynAction::Refuse), "{from}");
    }
    assert_eq!(blocked(&d, "128.0.0.1", "a."), None);
    let v4 = ManualTarget::Net("198.51.100.0/24".parse().unwrap());
    d.add_manual(&v4, 60, DynAction::Refuse, t0).unwrap();
    assert_eq!(
        blocked(&d, "::ffff:198.51.100.9", "a."),
        Some(DynAction::Refuse)
    );
    let narrow = ManualTarget::Net("2001:db8::/120".parse().unwrap());
    d.add_manual(&narrow, 60, DynAction::Drop, t0).unwrap();
    assert_eq!(blocked(&d, "2001:db8::5", "a."), Some(DynAction::Drop));
    assert_eq!(
        blocked(&d, "2001:db8::1:5", "a."),
        None,
        "same /64, outside"
    );
    let one = ManualTarget::Net("2001:db8:1::7/128".parse().unwrap());
    d.add_manual(&one, 60, DynAction::Drop, t0).unwrap();
    assert_eq!(blocked(&d, "2001:db8:1::8", "a."), None, "the one address");
    let targets: Vec<String> = d.list(t0).into_iter().map(|b| b.target).collect();
    assert!(
        targets.contains(&"2001:db8::/120".to_owned()),
        "{targets:?}"
    );
    assert!(
        targets.contains(&"2001:db8:1::7/128".to_owned()),
        "{targets:?}"
    );
    let bare = ManualTarget::Addr(ip("2001:db8:2::7"));
    d.add_manual(&bare, 60, DynAction::Drop, t0).unwrap();
    assert_eq!(blocked(&d, "2001:db8:2::8", "a."), Some(DynAction::Drop));
    let group = ManualTarget::Net("2001:db8:3::/64".parse().unwrap());
    d.add_manual(&group, 60, DynAction::Drop, t0).unwrap();
    assert!(
        d.list(t0)
            .iter()
            .any(|b| b.target == "2001:db8:3::/64" && b.kind == "client"),
        "a network of the group's size is the group"
    );
}

/// The answers the LS makes up itself (at the door, at the deadline, shed)
/// reach `dnslb top`'s rcodes, on the async path and a worker's ring
/// alike, and never the rcode rules: a client getting a rule's NXDOMAINs
/// is not blocked by an NXDOMAIN rule.
#[test]
fn made_up_answers_reach_top_and_never_the_rcode_rules() {
    let t0 = Instant::now();
    let mut r = rule(DynKind::RcodeRate, 5.0);
    r.rcode = Some(DynRcode::Nxdomain);
    let d = blocks(vec![r], t0);
    let mut mine = d.worker_counts();
    for _ in 0..50 {
        queries(&d, "192.0.2.1", "x.made.example", A, 1);
        d.on_made_up(3);
        d.count_query(&mut mine, ip("192.0.2.1"), &wire("y.made.example"), A);
        d.count_made_up(&mut mine, 5);
    }
    d.call_in();
    d.hand_in(&mut mine);
    d.tick(secs(t0, 1));
    assert_eq!(
        blocked(&d, "192.0.2.1", "a."),
        None,
        "not the client's doing"
    );
    let top = d.top(10, 5, None);
    let rc: Vec<(&str, u64)> = top
        .rcodes
        .iter()
        .map(|e| (e.key.as_str(), e.count))
        .collect();
    assert_eq!(rc, [("NXDOMAIN", 50), ("REFUSED", 50)]);
}

//! Which endpoints answer (pure). [`AnswerSets::build`] turns the live set
//! into each service's answer for every view and family, once per health
//! change; [`SetChoice::draw`] makes one query's answer from it without
//! allocating, from the worker's own [`Rng`] (`weighted`: `pick` endpoints
//! drawn by weight without repetition; the others: at most `max_answers`
//! taken at random, in a random order: every answer shuffled, as gdnsd
//! shuffles its own, so that the clients that use the first address, and
//! the live endpoints past `max_answers`, get their share).
//!
//! The rules: a view's group order, or `failover`'s groups in config order,
//! is tried group by group: the first with at least `min_live` live
//! endpoints of the family answers (`all` and `failover`: its live ones, at
//! most `max_answers`; `weighted`: `pick` drawn among them). Without a view,
//! `all` and `weighted` take every live endpoint of the family. When no group
//! reaches `min_live` but some endpoint of the order is live, those live
//! ones answer. A view's order is a hard restriction (as a gdnsd geoip map's
//! datacenter list): the groups it leaves out never answer its clients.
//! When no endpoint of the order is live, `when_all_down` decides: every
//! endpoint of the family in the order's groups (fail-open; at most
//! `max_answers`, under `weighted` too: no draw), or SERVFAIL. The fallback
//! CNAME is one decision for the name, not per family (a CNAME owner holds
//! no other data, RFC 2181 §10.1): it answers every type when no endpoint of
//! either family is live; while one family has a live endpoint, a family
//! with none answers fail-open (as gdnsd and PowerDNS answer a family with
//! nothing up). A family with no endpoint at all is the zone's to answer
//! (NODATA), unless the whole name falls back.
use std::cell::Cell;

use super::compiled::{AddrFamily, Service};
use crate::config::{MAX_SERVICE_ANSWERS, Select, WhenAllDown};

/// Most endpoints one answer holds: the bound of the draw's stack array.
pub const MAX_PICK: usize = MAX_SERVICE_ANSWERS as usize;

/// One service's answer for one view and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetChoice {
    /// These endpoints (indexes into the service's): `pick` of them drawn
    /// by weight, or (`pick` 0) at most `max_answers` of them at random, in
    /// a random order.
    Records {
        /// The endpoints that may answer, in config order.
        members: Vec<u16>,
        /// Draw this many by weight (`weighted`); 0: take at most
        /// `max_answers` of the members, shuffled.
        pick: usize,
    },
    /// The fallback CNAME.
    Fallback,
    /// SERVFAIL.
    Servfail,
    /// The service has no endpoint of this family: the zone answers (NODATA).
    NoFamily,
}

/// One service's answers: by view (0: none applies, then each view) and family.
pub type ServiceSets = Vec<[SetChoice; 2]>;

/// Every service's answers for one live set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerSets {
    /// By service, in config order.
    pub services: Vec<ServiceSets>,
}

impl AnswerSets {
    /// The answers of `services` when endpoint `i` (the checker's index) is
    /// up as `up(i)` says.
    pub fn build(services: &[Service], up: &dyn Fn(usize) -> bool) -> AnswerSets {
        let services = services
            .iter()
            .map(|s| {
                let up = |i: usize| up(s.base + i);
                let mut sets = Vec::with_capacity(1 + s.views.len());
                for v in 0..=s.views.len() {
                    let order = v.checked_sub(1).map(|i| s.views[i].order.as_slice());
                    sets.push(choose(s, order, &up));
                }
                sets
            })
            .collect();
        AnswerSets { services }
    }
}

/// The answers of `s` for one group order, by family: a fallback CNAME
/// only when neither family has a live endpoint (then for both).
fn choose(s: &Service, order: Option<&[usize]>, up: &dyn Fn(usize) -> bool) -> [SetChoice; 2] {
    let live = [AddrFamily::V4, AddrFamily::V6].map(|f| {
        let has = s.endpoints.iter().any(|e| AddrFamily::of(e.addr) == f);
        has.then(|| candidates(s, order, f, up))
    });
    let none_live = live.iter().all(|l| !matches!(l, Some(Some(_))));
    let falls_back = none_live && matches!(s.when_all_down, WhenAllDown::Fallback(_));
    let [v4, v6] = live;
    [(AddrFamily::V4, v4), (AddrFamily::V6, v6)].map(|(f, live)| match live {
        _ if falls_back => SetChoice::Fallback,
        None => SetChoice::NoFamily,
        Some(Some(members)) => finish(s, members, false),
        Some(None) if s.when_all_down == WhenAllDown::Servfail => SetChoice::Servfail,
        // Every endpoint of the family in the order's groups (docs/CONFIG.md
        // (the TS): fail-open answers every endpoint the client may get).
        Some(None) => {
            let every = s
                .endpoints
                .iter()
                .enumerate()
                .filter(|(_, e)| AddrFamily::of(e.addr) == f)
                .filter(|(_, e)| order.is_none_or(|o| o.contains(&e.group)))
                .filter_map(|(i, _)| u16::try_from(i).ok());
            finish(s, every.collect(), true)
        }
    })
}

/// What an answer draws from the members: `pick` by weight (`weighted`,
/// unless `fail_open`: then as `all` answers), else at most `max_answers`
/// of them, shuffled (at each draw).
fn finish(s: &Service, members: Vec<u16>, fail_open: bool) -> SetChoice {
    if s.select == Select::Weighted && !fail_open {
        let pick = s.pick.min(members.len()).min(MAX_PICK);
        SetChoice::Records { members, pick }
    } else {
        SetChoice::Records { members, pick: 0 }
    }
}

/// The live endpoints of family `f` that answer, by the rules in the header;
/// `None` when none is live.
fn candidates(
    s: &Service,
    order: Option<&[usize]>,
    f: AddrFamily,
    up: &dyn Fn(usize) -> bool,
) -> Option<Vec<u16>> {
    let of = |g: Option<usize>| -> Vec<u16> {
        s.endpoints
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                AddrFamily::of(e.addr) == f && g.is_none_or(|g| e.group == g) && up(*i)
            })
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect()
    };
    let all_groups: Vec<usize>;
    let order = match order {
        Some(o) => Some(o),
        None if s.select == Select::Failover => {
            all_groups = (0..s.groups.len()).collect();
            Some(all_groups.as_slice())
        }
        None => None,
    };
    let Some(order) = order else {
        let live = of(None);
        return (!live.is_empty()).then_some(live);
    };
    let mut any = Vec::new();
    for &g in order {
        let live = of(Some(g));
        if live.len() >= s.min_live {
            return Some(live);
        }
        any.extend(live);
    }
    (!any.is_empty()).then_some(any)
}

/// A small fast generator (xorshift64*), one per worker thread.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is made 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0), by the multiply-shift reduction.
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// An index in `0..n` (`n` > 0).
    fn index_below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.below(n)).unwrap_or(0)
    }
}

/// `take` of `members` (all of them when fewer) chosen uniformly without
/// repetition, in a random order, written into `out`; how many. No
/// allocation: up to [`MAX_PICK`] members a partial Fisher-Yates shuffle in
/// `out`; past that, selection sampling (Knuth's Algorithm S: one pass, each
/// kept with the chance still needed), then those shuffled.
fn shuffled(members: &[u16], take: usize, rng: &mut Rng, out: &mut [u16; MAX_PICK]) -> usize {
    let n = members.len();
    let k = take.min(n).min(MAX_PICK);
    if let Some(all) = out.get_mut(..n) {
        all.copy_from_slice(members);
        for i in 0..k {
            let j = i + rng.index_below(n - i);
            out.swap(i, j);
        }
        return k;
    }
    let mut chosen = 0;
    for (seen, &m) in members.iter().enumerate() {
        if chosen == k {
            break;
        }
        if rng.index_below(n - seen) < k - chosen {
            out[chosen] = m;
            chosen += 1;
        }
    }
    for i in 0..chosen {
        let j = i + rng.index_below(chosen - i);
        out.swap(i, j);
    }
    chosen
}

thread_local! {
    /// This thread's generator, seeded once from the OS.
    static WORKER_RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// Runs `f` with this thread's generator.
pub fn with_worker_rng<T>(f: impl FnOnce(&mut Rng) -> T) -> T {
    WORKER_RNG.with(|cell| {
        let mut rng = Rng::new(cell.get());
        let out = f(&mut rng);
        cell.set(rng.0);
        out
    })
}

impl SetChoice {
    /// Calls `each` with the endpoints of one answer, in order: at most
    /// `max_answers` of the members shuffled, or `pick` drawn by weight
    /// without repetition. No allocation.
    pub fn draw(&self, s: &Service, rng: &mut Rng, mut each: impl FnMut(usize)) {
        let mut drawn = [0u16; MAX_PICK];
        let n = self.draw_into(s, rng, &mut drawn);
        for &m in &drawn[..n] {
            each(usize::from(m));
        }
    }

    /// The endpoints of one answer written into `out`, in order (at most
    /// `max_answers` of the members, shuffled, or `pick` drawn by weight
    /// without repetition); how many.
    pub fn draw_into(&self, s: &Service, rng: &mut Rng, out: &mut [u16; MAX_PICK]) -> usize {
        let SetChoice::Records { members, pick } = self else {
            return 0;
        };
        if *pick == 0 {
            return shuffled(members, s.max_answers, rng, out);
        }
        let weight = |m: u16| u64::from(s.endpoints.get(usize::from(m)).map_or(1, |e| e.weight));
        let mut total: u64 = members.iter().map(|&m| weight(m)).sum();
        let mut k = 0;
        while k < (*pick).min(MAX_PICK) {
            if total == 0 {
                break;
            }
            let mut r = rng.below(total);
            let taken = &out[..k];
            let Some(&m) = members.iter().find(|&&m| {
                if taken.contains(&m) {
                    return false;
                }
                let w = weight(m);
                if r < w {
                    return true;
                }
                r -= w;
                false
            }) else {
                break;
            };
            out[k] = m;
            k += 1;
            total -= weight(m);
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::super::compiled::Services;
    use super::*;
    use crate::config::{Config, ServiceConfig};

    fn service(body: &str) -> Vec<ServiceConfig> {
        let text = format!(
            "[[ts]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nzones = [\"z.zone\"]\n[[ts.service]]\nname = \"www.example.org\"\n{body}"
        );
        let c = Config::from_toml(&text, std::path::Path::new("c.toml")).unwrap();
        c.ts[0].service.clone()
    }

    fn members(c: &SetChoice) -> Vec<u16> {
        match c {
            SetChoice::Records { members, .. } => members.clone(),
            other => panic!("{other:?}"),
        }
    }

    const FAILOVER: &str = r#"select = "failover"
min_live = 2
endpoint = [ { addr = "192.0.2.1", group = "dc1" }, { addr = "192.0.2.2", group = "dc1" },
             { addr = "198.51.100.1", group = "dc2" }, { addr = "198.51.100.2", group = "dc2" },
             { addr = "2001:db8::1", group = "dc2" } ]
view = [ { clients = ["10.0.0.0/8"], groups = ["dc2", "dc1"] } ]
"#;

    #[test]
    fn failover_takes_the_first_group_with_min_live_in_the_views_order() {
        let s = Services::compile(&service(FAILOVER));
        let sets = AnswerSets::build(&s.list, &|_| true);
        let svc = &sets.services[0];
        assert_eq!(members(&svc[0][0]), [0, 1], "no view: dc1 first");
        assert_eq!(members(&svc[1][0]), [2, 3], "the view: dc2 first");
        assert_eq!(
            members(&svc[0][1]),
            [4],
            "AAAA: dc1 has none, below min_live in dc2: the live ones"
        );
        // dc1 below min_live: dc2 answers; back when dc1 is whole again.
        let sets = AnswerSets::build(&s.list, &|i| i != 1);
        assert_eq!(members(&sets.services[0][0][0]), [2, 3]);
        // Nothing reaches min_live: the live ones of the order.
        let sets = AnswerSets::build(&s.list, &|i| i == 0 || i == 3);
        assert_eq!(members(&sets.services[0][0][0]), [0, 3]);
    }

    #[test]
    fn all_down_is_every_endpoint_the_fallback_or_servfail() {
        let body = |w: &str| {
            format!(
                "{w}max_answers = 2\nendpoint = [ {{ addr = \"192.0.2.1\" }}, {{ addr = \"192.0.2.2\" }}, {{ addr = \"192.0.2.3\" }} ]\n"
            )
        };
        let down = |_: usize| false;
        let s = Services::compile(&service(&body("")));
        let sets = AnswerSets::build(&s.list, &down);
        assert_eq!(members(&sets.services[0][0][0]), [0, 1, 2], "fail-open");
        let mut rng = Rng::new(5);
        let mut got = Vec::new();
        sets.services[0][0][0].draw(&s.list[0], &mut rng, |m| got.push(m));
        assert_eq!(got.len(), 2, "max_answers");
        assert_eq!(sets.services[0][0][1], SetChoice::NoFamily);
        let s = Services::compile(&service(&body("when_all_down = \"servfail\"\n")));
        assert_eq!(
            AnswerSets::build(&s.list, &down).services[0][0][0],
            SetChoice::Servfail
        );
        let s = Services::compile(&service(&body(
            "when_all_down = { fallback = \"sorry.example.org\" }\n",
        )));
        assert_eq!(
            AnswerSets::build(&s.list, &down).services[0][0][0],
            SetChoice::Fallback
        );
        let sets = AnswerSets::build(&s.list, &|i| i == 2);
        assert_eq!(members(&sets.services[0][0][0]), [2], "one live: it alone");
    }

    #[test]
    fn the_fallback_is_one_decision_for_the_name_and_a_view_restricts_its_groups() {
        let s = Services::compile(&service(
            "when_all_down = { fallback = \"sorry.example.org\" }\n\
             endpoint = [ { addr = \"192.0.2.1\", group = \"a\" }, { addr = \"2001:db8::1\", group = \"a\" },\n\
                          { addr = \"192.0.2.2\", group = \"b\" } ]\n\
             view = [ { clients = [\"10.0.0.0/8\"], groups = [\"b\"] } ]\n",
        ));
        // IPv4 dead, IPv6 live: no CNAME; A fail-open, AAAA the live one.
        let sets = AnswerSets::build(&s.list, &|i| i == 1);
        assert_eq!(members(&sets.services[0][0][0]), [0, 2]);
        assert_eq!(members(&sets.services[0][0][1]), [1]);
        // The view (group b only): its one endpoint dead, the others not
        // its: the name falls back for it, for both families.
        assert_eq!(
            sets.services[0][1],
            [SetChoice::Fallback, SetChoice::Fallback]
        );
        // Every endpoint dead: the fallback for both families.
        let sets = AnswerSets::build(&s.list, &|_| false);
        assert_eq!(
            sets.services[0][0],
            [SetChoice::Fallback, SetChoice::Fallback]
        );
        // Fail-open in a view: the view's groups only.
        let s = Services::compile(&service(
            "endpoint = [ { addr = \"192.0.2.1\", group = \"a\" }, { addr = \"192.0.2.2\", group = \"b\" } ]\n\
             view = [ { clients = [\"10.0.0.0/8\"], groups = [\"b\"] } ]\n",
        ));
        let sets = AnswerSets::build(&s.list, &|i| i == 0);
        assert_eq!(members(&sets.services[0][1][0]), [1], "b's dead one only");
        assert_eq!(members(&sets.services[0][0][0]), [0]);
    }

    /// Fail-open under `weighted` answers every endpoint (up to
    /// `max_answers`), not `pick` of them drawn.
    #[test]
    fn weighted_all_down_answers_every_endpoint_not_pick() {
        let eps: Vec<String> = (1..=12)
            .map(|i| format!("{{ addr = \"192.0.2.{i}\", weight = {i} }}"))
            .collect();
        let body = |extra: &str| {
            format!(
                "select = \"weighted\"\npick = 3\n{extra}endpoint = [ {} ]\n",
                eps.join(", ")
            )
        };
        let s = Services::compile(&service(&body("max_answers = 64\n")));
        let sets = AnswerSets::build(&s.list, &|_| false);
        let choice = &sets.services[0][0][0];
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let mut got = Vec::new();
            choice.draw(&s.list[0], &mut rng, |m| got.push(m));
            got.sort_unstable();
            assert_eq!(got, (0..12).collect::<Vec<_>>(), "every endpoint");
        }
        let s = Services::compile(&service(&body("")));
        let sets = AnswerSets::build(&s.list, &|_| false);
        assert_eq!(
            sets.services[0][0][0],
            SetChoice::Records {
                members: (0..12).collect(),
                pick: 0
            },
            "every endpoint, not drawn by weight"
        );
        let mut got = Vec::new();
        sets.services[0][0][0].draw(&s.list[0], &mut rng, |m| got.push(m));
        assert_eq!(got.len(), 8, "at most max_answers (8)");
        // One live: the draw as usual, among the live.
        let sets = AnswerSets::build(&s.list, &|i| i == 4);
        let mut got = Vec::new();
        sets.services[0][0][0].draw(&s.list[0], &mut rng, |m| got.push(m));
        assert_eq!(got, [4]);
    }

    #[test]
    fn weighted_draws_without_repetition() {
        let s = Services::compile(&service(
            "select = \"weighted\"\npick = 2\nendpoint = [ { addr = \"192.0.2.1\", weight = 5 }, { addr = \"192.0.2.2\" }, { addr = \"192.0.2.3\" } ]\n",
        ));
        let sets = AnswerSets::build(&s.list, &|i| i != 1);
        let choice = &sets.services[0][0][0];
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let mut got = Vec::new();
            choice.draw(&s.list[0], &mut rng, |m| got.push(m));
            assert_eq!(got.len(), 2);
            assert_ne!(got[0], got[1]);
            assert!(!got.contains(&1), "a dead one drawn: {got:?}");
        }
    }

    /// Pearson's chi-square of `counts` against shares `weights` of their sum.
    fn chi_square(counts: &[u64], weights: &[u64]) -> f64 {
        let n: u64 = counts.iter().sum();
        let w: u64 = weights.iter().sum();
        counts
            .iter()
            .zip(weights)
            .map(|(&c, &wi)| {
                let expected = n as f64 * wi as f64 / w as f64;
                (c as f64 - expected).powi(2) / expected
            })
            .sum()
    }

    #[test]
    fn weights_hold_over_100000_draws_by_chi_square() {
        let s = Services::compile(&service(
            "select = \"weighted\"\nendpoint = [ { addr = \"192.0.2.1\", weight = 1 }, { addr = \"192.0.2.2\", weight = 2 }, { addr = \"192.0.2.3\", weight = 3 }, { addr = \"192.0.2.4\", weight = 4 } ]\n",
        ));
        let sets = AnswerSets::build(&s.list, &|_| true);
        let choice = &sets.services[0][0][0];
        let mut rng = Rng::new(0x5eed_1234_abcd);
        let mut counts = [0u64; 4];
        for _ in 0..100_000 {
            choice.draw(&s.list[0], &mut rng, |m| counts[m] += 1);
        }
        // 3 degrees of freedom: 16.27 is the 0.999 quantile.
        let x2 = chi_square(&counts, &[1, 2, 3, 4]);
        assert!(x2 < 16.27, "chi-square {x2} for {counts:?}");
        // And it can tell: uniform shares are rejected.
        assert!(chi_square(&counts, &[1, 1, 1, 1]) > 1000.0);
        // Dead endpoints drop out; the rest keep their proportions.
        let sets = AnswerSets::build(&s.list, &|i| i != 3);
        let mut counts = [0u64; 4];
        for _ in 0..100_000 {
            sets.services[0][0][0].draw(&s.list[0], &mut rng, |m| counts[m] += 1);
        }
        assert_eq!(counts[3], 0);
        let x2 = chi_square(&counts[..3], &[1, 2, 3]);
        assert!(x2 < 13.82, "chi-square {x2} for {counts:?}"); // 2 dof, 0.999
    }

    /// `all` answers its live endpoints in a random order, as gdnsd
    /// shuffles each answer: in config order every time, the first would
    /// take the traffic of every client that uses the first address, and
    /// past `max_answers` the later live ones would never be answered.
    #[test]
    fn all_answers_are_shuffled_and_every_live_endpoint_gets_its_share() {
        for (endpoints, max) in [(12u32, 4usize), (100, 8)] {
            let eps: Vec<String> = (0..endpoints)
                .map(|i| format!("{{ addr = \"10.0.{}.{}\" }}", i / 250, i % 250 + 1))
                .collect();
            let s = Services::compile(&service(&format!(
                "max_answers = {max}\nendpoint = [ {} ]\n",
                eps.join(", ")
            )));
            let sets = AnswerSets::build(&s.list, &|_| true);
            let choice = &sets.services[0][0][0];
            let n = endpoints as usize;
            let mut rng = Rng::new(0xfeed);
            let (mut any, mut first) = (vec![0u64; n], vec![0u64; n]);
            let rounds = 1000 * n as u64;
            for _ in 0..rounds {
                let mut got = Vec::new();
                choice.draw(&s.list[0], &mut rng, |m| got.push(m));
                assert_eq!(got.len(), max);
                let mut distinct = got.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), max, "no endpoint twice: {got:?}");
                first[got[0]] += 1;
                for m in got {
                    any[m] += 1;
                }
            }
            // Every endpoint as often as any other, in an answer and first
            // in it: chi-square against equal shares (0.999 quantiles).
            let crit = if n == 12 { 31.26 } else { 148.2 };
            let even = vec![1u64; n];
            let x2 = chi_square(&any, &even);
            assert!(x2 < crit, "{n}: answered {x2}: {any:?}");
            let x2 = chi_square(&first, &even);
            assert!(x2 < crit, "{n}: first {x2}: {first:?}");
        }
    }
}

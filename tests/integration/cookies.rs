//! DNS Cookies (RFC 7873, RFC 9018 server cookies) as `dig +cookie` and
//! `kdig +cookie` see them: a TS gives a server cookie to a first query
//! and echoes it back valid on the next; a forged server cookie gets
//! BADCOOKIE over UDP with a fresh cookie (dig retries with it and gets its
//! answer) and an answer over TCP; a malformed COOKIE gets FORMERR; TSs of
//! one config that share `cookie_secret` accept each other's cookies, and
//! one that rotated to a new secret still accepts the old one's, answering
//! with a cookie of the new. ISC's genreport is not installed here: its
//! two cookie cases (`cookie`, `cookie` with a bad server cookie) are
//! asked with dig as it asks them. The LS: its own answers (cache hits,
//! blocks) carry its server cookies, a forwarded query's COOKIE reaches the
//! backend and the backend's answer comes back as it made it, and a client
//! with a valid LS cookie is spared a `truncate` block.
use std::net::SocketAddr;

use std::time::Instant;

use dnslb::config::{Config, DynAction};
use dnslb::ls::dynblock::ManualTarget;
use dnslb::ts::TsSettings;

use crate::kit::{TestLs, TestTs, ZoneDir, run_tool, start_ls, start_ts, tool_args};

const TABLE: &str = "www.example.com 192.0.2.1 A\nwww.tc.example.com 192.0.2.2 A\n";
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
const NEW_SECRET: &str = "445536bcd2513298075a5d379663c962";

/// A TS serving [`TABLE`] from a `[[ts]]` with `cookie_secret = secrets`
/// (the key read as `dnslb ts -c` reads it; none: a random secret).
async fn ts_with(dir: &ZoneDir, secrets: &[&str]) -> TestTs {
    let zone = dir.write("t.txt", TABLE);
    let mut text = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\n",
        zone.display().to_string()
    );
    if !secrets.is_empty() {
        text.push_str(&format!("cookie_secret = {secrets:?}\n"));
    }
    let cfg = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
    start_ts(TsSettings::from_config(&cfg.ts[0])).await
}

/// What a `dig` or `kdig` run showed: the last status and COOKIE lines
/// (the COOKIE in lower-case hex), and all it printed.
struct Shown {
    status: String,
    cookie: Option<String>,
    out: String,
}

/// `prog` (dig or kdig) asking `at` for www.example.com A with `extra`.
async fn ask(prog: &'static str, at: SocketAddr, extra: &[&str]) -> Shown {
    ask_name(prog, at, "www.example.com", extra).await
}

/// `prog` (dig or kdig) asking `at` for `name` A with `extra`.
async fn ask_name(prog: &'static str, at: SocketAddr, name: &str, extra: &[&str]) -> Shown {
    let once = if prog == "kdig" {
        "+retry=0"
    } else {
        "+tries=1"
    };
    let plain = ["-t", "A", "+norec", "+time=2", once];
    let args = tool_args(at, &[&plain[..], extra, &[name]].concat());
    let out = tokio::task::spawn_blocking(move || run_tool(prog, &args))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{prog} {extra:?}: {}\n{}",
        out.stdout,
        out.stderr
    );
    let last = |key: &str| {
        out.stdout
            .lines()
            .rfind(|l| l.contains(key))
            .map(str::to_owned)
    };
    let status = last("status")
        .and_then(|l| {
            let at = l.find("status")?;
            let rest = l.get(at + 7..)?.trim_start_matches([':', ' ']);
            Some(rest.split([',', ';']).next()?.trim().to_owned())
        })
        .unwrap_or_default();
    let cookie = last("COOKIE:").and_then(|l| {
        let word = l.split("COOKIE:").nth(1)?.split_whitespace().next()?;
        Some(word.to_ascii_lowercase())
    });
    Shown {
        status,
        cookie,
        out: out.stdout,
    }
}

/// The client cookie dig sends with `+cookie=VALUE`, and a server cookie
/// of our form no secret of these tests made.
const CLIENT: &str = "0102030405060708";
const FORGED: &str = "010000005cf79f111f8130c3eee29480";

/// A cookie: the client's and a well-formed server cookie of 16 bytes.
#[track_caller]
fn assert_full(cookie: &Option<String>, client: Option<&str>, ctx: &str) -> String {
    let c = cookie.clone().unwrap_or_else(|| panic!("{ctx}: no COOKIE"));
    assert_eq!(c.len(), 48, "{ctx}: client + 16-byte server cookie: {c}");
    assert!(c[16..].starts_with("01000000"), "{ctx}: version 1: {c}");
    if let Some(client) = client {
        assert_eq!(&c[..16], client, "{ctx}: the client cookie echoed");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_and_kdig_learn_a_server_cookie_then_see_it_echoed_valid() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, &[SECRET]).await;
    for prog in ["dig", "kdig"] {
        for tcp in [&[][..], &["+tcp"]] {
            let ctx = format!("{prog} {tcp:?}");
            let first = ask(prog, ts.addr, &[&["+cookie"], tcp].concat()).await;
            assert_eq!(first.status, "NOERROR", "{ctx}: {}", first.out);
            assert!(first.out.contains("192.0.2.1"), "{ctx}: {}", first.out);
            let cookie = assert_full(&first.cookie, None, &ctx);
            let sent = format!("+cookie={cookie}");
            let again = ask(prog, ts.addr, &[&[sent.as_str()], tcp].concat()).await;
            assert_eq!(again.status, "NOERROR", "{ctx}: {}", again.out);
            assert_eq!(
                again.cookie.as_deref(),
                Some(cookie.as_str()),
                "{ctx}: echoed"
            );
            if prog == "dig" {
                assert!(again.out.contains("(good)"), "{ctx}: {}", again.out);
            }
        }
    }
    // Without a COOKIE, none comes back.
    let none = ask("dig", ts.addr, &["+nocookie"]).await;
    assert_eq!((none.status.as_str(), none.cookie), ("NOERROR", None));
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_server_cookie_gets_badcookie_over_udp_and_an_answer_over_tcp() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, &[SECRET]).await;
    let forged = format!("+cookie={CLIENT}{FORGED}");
    // genreport's second cookie case: the bad cookie and no retry.
    let bad = ask("dig", ts.addr, &[&forged, "+nobadcookie"]).await;
    assert_eq!(bad.status, "BADCOOKIE", "{}", bad.out);
    assert!(!bad.out.contains("192.0.2.1"), "no records: {}", bad.out);
    let fresh = assert_full(&bad.cookie, Some(CLIENT), "BADCOOKIE");
    assert_ne!(&fresh[16..], FORGED, "a fresh server cookie");
    // dig retries with the fresh cookie, as BIND's resolver does.
    let retried = ask("dig", ts.addr, &[&forged]).await;
    assert!(
        retried.out.contains("BADCOOKIE, retrying"),
        "{}",
        retried.out
    );
    assert_eq!(retried.status, "NOERROR", "{}", retried.out);
    assert!(retried.out.contains("192.0.2.1"), "{}", retried.out);
    // kdig too: BADCOOKIE, then the question again with the fresh cookie,
    // echoed valid.
    let kdig = ask("kdig", ts.addr, &[&forged]).await;
    assert!(kdig.out.contains("status: BADCOOKIE"), "kdig: {}", kdig.out);
    assert_eq!(kdig.status, "NOERROR", "kdig: {}", kdig.out);
    assert!(kdig.out.contains("192.0.2.1"), "kdig: {}", kdig.out);
    // Over TCP the address is proven: the answer, with a fresh cookie.
    let tcp = ask("dig", ts.addr, &[&forged, "+tcp"]).await;
    assert_eq!(tcp.status, "NOERROR", "{}", tcp.out);
    assert!(tcp.out.contains("192.0.2.1"), "{}", tcp.out);
    assert_full(&tcp.cookie, Some(CLIENT), "TCP");
    // genreport's first cookie case: a client cookie alone.
    let plain = ask("dig", ts.addr, &[&format!("+cookie={CLIENT}")]).await;
    assert_eq!(plain.status, "NOERROR", "{}", plain.out);
    assert_full(&plain.cookie, Some(CLIENT), "client cookie only");
    // Malformed lengths (RFC 7873 §5.2.2): FORMERR.
    for option in [
        "10:0102",
        "10:010203040506070809",
        &format!("10:{}", "ab".repeat(41)),
    ] {
        let opt = format!("+ednsopt={option}");
        let m = ask("dig", ts.addr, &["+nocookie", &opt]).await;
        assert_eq!(m.status, "FORMERR", "{option}: {}", m.out);
    }
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_for_a_cookie_alone_is_answered_with_one_by_the_ts_and_the_ls() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, &[SECRET]).await;
    let ls = ls_before(&dir, ts.addr).await;
    // `dig +header-only +cookie`: no question, a client cookie (RFC 7873
    // §5.4): NOERROR with a server cookie, then that cookie echoed good.
    for (who, at) in [("the TS", ts.addr), ("the LS", ls.addr)] {
        let first = ask("dig", at, &["+header-only", "+cookie"]).await;
        assert_eq!(first.status, "NOERROR", "{who}: {}", first.out);
        let cookie = assert_full(&first.cookie, None, who);
        let sent = format!("+cookie={cookie}");
        let again = ask("dig", at, &["+header-only", &sent]).await;
        assert_eq!(again.status, "NOERROR", "{who}: {}", again.out);
        assert!(again.out.contains("(good)"), "{who}: {}", again.out);
    }
    // A forged server cookie over UDP: BADCOOKIE and a fresh one from the
    // TS (the LS never answers BADCOOKIE: it cannot tell a backend's).
    let forged = format!("+cookie={CLIENT}{FORGED}");
    let bad = ask("dig", ts.addr, &["+header-only", &forged, "+nobadcookie"]).await;
    assert_eq!(bad.status, "BADCOOKIE", "{}", bad.out);
    assert_full(&bad.cookie, Some(CLIENT), "BADCOOKIE");
    // No question and no COOKIE is still FORMERR.
    for (who, at) in [("the TS", ts.addr), ("the LS", ls.addr)] {
        let none = ask("dig", at, &["+header-only", "+nocookie"]).await;
        assert_eq!(none.status, "FORMERR", "{who}: {}", none.out);
    }
    ls.stop().await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_badcookie_still_reads_as_badcookie() {
    let dir = ZoneDir::new();
    let zone = dir.write("t.txt", TABLE);
    let text = format!(
        "[[ts]]\nname = \"ts1\"\nlisten = \"127.0.0.1:0\"\nzones = [{:?}]\n\
         cookie_secret = [\"{SECRET}\"]\nrrl = {{ responses_per_s = 5, slip = 1 }}\n",
        zone.display().to_string()
    );
    let cfg = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
    let ts = start_ts(TsSettings::from_config(&cfg.ts[0])).await;
    // Forty clients at once with a forged server cookie: past the first
    // few, RRL slips each answer (slip 1). A slipped answer keeps its OPT,
    // so the extended rcode reads BADCOOKIE, not its low bits (YXRRSET).
    let forged = format!("+cookie={CLIENT}{FORGED}");
    let mut asks = Vec::new();
    for _ in 0..40 {
        let args = tool_args(
            ts.addr,
            &[
                "-t",
                "A",
                "+norec",
                "+time=2",
                "+tries=1",
                "+ignore",
                "+nobadcookie",
                &forged,
                "www.example.com",
            ],
        );
        asks.push(tokio::task::spawn_blocking(move || run_tool("dig", &args)));
    }
    let mut slipped = 0;
    for ask in asks {
        let out = ask.await.unwrap();
        assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("status: BADCOOKIE"), "{}", out.stdout);
        assert!(!out.stdout.contains("expected opt"), "{}", out.stdout);
        slipped += usize::from(out.stdout.contains("flags: qr tc;"));
    }
    assert!(slipped >= 10, "past the rate, answers slipped: {slipped}");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_sharing_a_secret_accept_each_others_cookies_through_a_rotation() {
    let dir = ZoneDir::new();
    let a = ts_with(&dir, &[SECRET]).await;
    let b = ts_with(&dir, &[SECRET]).await;
    let rotated = ts_with(&dir, &[NEW_SECRET, SECRET]).await;
    let alone = ts_with(&dir, &[]).await;
    let from_a = ask("dig", a.addr, &["+cookie"]).await;
    let cookie = assert_full(&from_a.cookie, None, "from a");
    let sent = format!("+cookie={cookie}");
    // The sibling echoes it: valid there too.
    let at_b = ask("dig", b.addr, &[&sent, "+nobadcookie"]).await;
    assert_eq!(at_b.status, "NOERROR", "{}", at_b.out);
    assert_eq!(
        at_b.cookie.as_deref(),
        Some(cookie.as_str()),
        "echoed by the sibling"
    );
    // Rotated: the old secret's cookie is valid, the answer's is the new one's.
    let at_rotated = ask("dig", rotated.addr, &[&sent, "+nobadcookie"]).await;
    assert_eq!(at_rotated.status, "NOERROR", "{}", at_rotated.out);
    let renewed = assert_full(&at_rotated.cookie, Some(&cookie[..16]), "rotated");
    assert_ne!(renewed, cookie, "made again with the new secret");
    // ... which `a` (old secret only) does not know, and `rotated` echoes.
    let renewed_sent = format!("+cookie={renewed}");
    let at_a = ask("dig", a.addr, &[&renewed_sent, "+nobadcookie"]).await;
    assert_eq!(at_a.status, "BADCOOKIE", "{}", at_a.out);
    let again = ask("dig", rotated.addr, &[&renewed_sent, "+nobadcookie"]).await;
    assert_eq!(again.cookie.as_deref(), Some(renewed.as_str()));
    // A TS with no secret configured made its own: it knows none of these.
    // A TS without `cookie_secret` answers no cookie at all (as NSD's and
    // Knot's cookies are turned on): never BADCOOKIE.
    let at_alone = ask("dig", alone.addr, &[&sent, "+nobadcookie"]).await;
    assert_eq!(at_alone.status, "NOERROR", "{}", at_alone.out);
    assert_eq!(at_alone.cookie, None, "{}", at_alone.out);
    for ts in [a, b, rotated, alone] {
        ts.stop().await;
    }
}

/// An LS with a cache and `cookie_secret = [NEW_SECRET]` in front of `ts`.
async fn ls_before(dir: &ZoneDir, ts: SocketAddr) -> TestLs {
    let text = format!(
        r#"[ls]
listen = ["127.0.0.1:0"]
workers = 2
cookie_secret = ["{NEW_SECRET}"]
[ls.cache]
[[ls.backend]]
name = "ts1"
addr = "{ts}"
"#
    );
    let cfg = Config::from_toml(&text, &dir.path().join("ls.toml")).unwrap();
    start_ls(cfg.ls.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ls_answers_hits_with_its_cookie_and_passes_the_backends_through() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, &[SECRET]).await;
    let ls = ls_before(&dir, ts.addr).await;
    let client_only = format!("+cookie={CLIENT}");
    // A miss: forwarded, the TS's cookie comes back (the TS echoes it valid).
    let miss = ask("dig", ls.addr, &[&client_only]).await;
    assert_eq!(miss.status, "NOERROR", "{}", miss.out);
    let backends = assert_full(&miss.cookie, Some(CLIENT), "miss");
    let sent = format!("+cookie={backends}");
    let at_ts = ask("dig", ts.addr, &[&sent, "+nobadcookie"]).await;
    assert_eq!(
        at_ts.cookie.as_deref(),
        Some(backends.as_str()),
        "the TS's own"
    );
    // A hit for a client cookie alone: the LS's own cookie, which the LS
    // echoes valid and the TS does not know.
    let hit = ask("dig", ls.addr, &[&client_only]).await;
    assert_eq!(hit.status, "NOERROR", "{}", hit.out);
    assert!(hit.out.contains("192.0.2.1"), "{}", hit.out);
    let lss = assert_full(&hit.cookie, Some(CLIENT), "hit");
    assert_ne!(lss, backends);
    let sent_lss = format!("+cookie={lss}");
    let again = ask("dig", ls.addr, &[&sent_lss, "+nobadcookie"]).await;
    assert_eq!(again.status, "NOERROR", "{}", again.out);
    assert_eq!(
        again.cookie.as_deref(),
        Some(lss.as_str()),
        "echoed by the LS"
    );
    let at_ts = ask("dig", ts.addr, &[&sent_lss, "+nobadcookie"]).await;
    assert_eq!(at_ts.status, "BADCOOKIE", "not the TS's: {}", at_ts.out);
    // The LS's own cookie on a miss: cut to the client cookie on its way to
    // the TS, which answers with a fresh cookie of its own, not BADCOOKIE
    // (as a resolver whose cookie went from a hit to a miss would see).
    let miss = ask_name(
        "dig",
        ls.addr,
        "other.example.com",
        &[&sent_lss, "+nobadcookie"],
    )
    .await;
    assert_ne!(miss.status, "BADCOOKIE", "{}", miss.out);
    let ts_fresh = assert_full(&miss.cookie, Some(CLIENT), "a miss with the LS's cookie");
    assert_ne!(ts_fresh, lss, "the TS's cookie, not the LS's");
    let ts_fresh_sent = format!("+cookie={ts_fresh}");
    let at_ts = ask("dig", ts.addr, &[&ts_fresh_sent, "+nobadcookie"]).await;
    assert_eq!(at_ts.status, "NOERROR", "the TS's own: {}", at_ts.out);
    // A hit with the backend's cookie: echoed as sent, never BADCOOKIE.
    let hit = ask("dig", ls.addr, &[&sent, "+nobadcookie"]).await;
    assert_eq!(hit.status, "NOERROR", "{}", hit.out);
    assert_eq!(hit.cookie.as_deref(), Some(backends.as_str()), "as sent");
    // A forged cookie on a miss reaches the TS: its BADCOOKIE comes back
    // as it made it, with its fresh cookie (which the TS echoes valid).
    let forged = format!("+cookie={CLIENT}{FORGED}");
    let bad = ask_name(
        "dig",
        ls.addr,
        "nope.example.com",
        &[&forged, "+nobadcookie"],
    )
    .await;
    assert_eq!(bad.status, "BADCOOKIE", "{}", bad.out);
    let fresh = assert_full(&bad.cookie, Some(CLIENT), "the TS's BADCOOKIE");
    let fresh_sent = format!("+cookie={fresh}");
    let at_ts = ask("dig", ts.addr, &[&fresh_sent, "+nobadcookie"]).await;
    assert_eq!(at_ts.status, "NOERROR", "the TS's cookie: {}", at_ts.out);
    // kdig through the LS: a cookie on its answer.
    let k = ask("kdig", ls.addr, &["+cookie"]).await;
    assert_eq!(k.status, "NOERROR", "{}", k.out);
    assert_full(&k.cookie, None, "kdig through the LS");
    ls.stop().await;
    ts.stop().await;
}

/// Whether dig shows TC=1 in its last answer's flags.
fn truncated(s: &Shown) -> bool {
    let flags = s.out.lines().rfind(|l| l.starts_with(";; flags:"));
    flags
        .and_then(|l| l.split(';').nth(2))
        .is_some_and(|f| f.contains(" tc"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_ls_cookie_spares_a_truncate_block_and_no_other_cookie_does() {
    let dir = ZoneDir::new();
    let ts = ts_with(&dir, &[SECRET]).await;
    let ls = ls_before(&dir, ts.addr).await;
    let name = "www.tc.example.com";
    // The answer in the cache, then the name blocked by hand with
    // `truncate` (a spared query is answered from the cache: a forwarded
    // one would carry the LS's cookie to the TS, which does not know it).
    let primed = ask_name("dig", ls.addr, name, &["+nocookie"]).await;
    assert!(primed.out.contains("192.0.2.2"), "{}", primed.out);
    let target = ManualTarget::Name(name.parse().unwrap());
    let blocks = ls.balancer.dynblocks();
    blocks
        .add_manual(&target, 600, DynAction::Truncate, Instant::now())
        .unwrap();
    // Over UDP with a client cookie alone: TC=1, with the LS's cookie.
    let client_only = format!("+cookie={CLIENT}");
    let first = ask_name("dig", ls.addr, name, &[&client_only, "+ignore"]).await;
    assert!(truncated(&first), "truncated: {}", first.out);
    let lss = assert_full(&first.cookie, Some(CLIENT), "the TC answer");
    // With that cookie back: proven, let through (the cache's answer).
    let sent = format!("+cookie={lss}");
    let proven = ask_name("dig", ls.addr, name, &[&sent, "+ignore"]).await;
    assert!(!truncated(&proven), "spared: {}", proven.out);
    assert!(proven.out.contains("192.0.2.2"), "{}", proven.out);
    assert_eq!(proven.cookie.as_deref(), Some(lss.as_str()));
    // A forged server cookie, or the LS's for another client cookie, proves
    // nothing; TCP needs none.
    for other in [
        format!("{CLIENT}{FORGED}"),
        format!("{}{}", "aa".repeat(8), &lss[16..]),
    ] {
        let sent = format!("+cookie={other}");
        let s = ask_name("dig", ls.addr, name, &[&sent, "+ignore"]).await;
        assert!(truncated(&s), "{other}: {}", s.out);
    }
    let tcp = ask_name("dig", ls.addr, name, &["+tcp", "+nocookie"]).await;
    assert!(
        !truncated(&tcp) && tcp.out.contains("192.0.2.2"),
        "{}",
        tcp.out
    );
    ls.stop().await;
    ts.stop().await;
}

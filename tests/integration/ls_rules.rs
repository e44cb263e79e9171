//! Query rules (`[[ls.rule]]`) and response rules (`[[ls.response_rule]]`)
//! end to end: real clients (dig over UDP and TCP, kdig over TLS and
//! HTTPS) ask an LS with rules in front of two table servers; each
//! selector and action shows in the answer, its flags, its EDE and the
//! rule's counter; rule order and `allow`; a pool action reaches only that
//! pool's backend; `truncate` sends dig to TCP, where it gets its answer;
//! `delay_ms` delays that query and not the others.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::kit::tls::{HOST, Pki};
use crate::kit::{
    LsRoleRun, TestTs, ZoneDir, free_ports, need, path_str, query_rd, run_tool, start_ls_role,
    start_ts_table, udp_exchange,
};

/// Backend `a`'s table: the names every rule test asks.
const TABLE_A: &str = "www.example.com 192.0.2.10 A\n\
slow.example.com 192.0.2.11 A\n\
ok.blocked.test 192.0.2.30 A\n\
www.example.org 192.0.2.40 A\n\
www.dot.test 192.0.2.50 A\n\
www.doh.test 192.0.2.51 A\n";
/// Backend `b`'s table: `www.example.com` at another address, so an answer
/// says which backend gave it.
const TABLE_B: &str = "www.example.com 192.0.2.99 A\n";

/// The rules under test, in this order.
const RULES: &str = r#"
[[ls.pool]]
name = "only-b"
backends = ["b"]
zones = ["b.invalid"]

[[ls.rule]]
name = "no-any"
match = { qtype = ["ANY"], transport = ["udp"] }
action = "truncate"

[[ls.rule]]
name = "allowed"
match = { suffix = ["ok.blocked.test"] }
action = "allow"

[[ls.rule]]
name = "blocked"
match = { suffix = ["Blocked.TEST"] }
action = "nxdomain"
ede = 17

[[ls.rule]]
name = "refused"
match = { qtype = ["MX"] }
action = "refuse"

[[ls.rule]]
name = "failed"
match = { qtype = ["SRV"] }
action = "servfail"
aa = true
ede = 16

[[ls.rule]]
name = "dropped"
match = { suffix = ["drop.test"] }
action = "drop"

[[ls.rule]]
name = "spoofed"
match = { suffix = ["spoof.test"] }
action = { spoof = ["192.0.2.1", "2001:db8::1"], ttl = 30 }

[[ls.rule]]
name = "aliased"
match = { suffix = ["alias.test"] }
action = { spoof_cname = "www.example.com." }

[[ls.rule]]
name = "to-b"
match = { suffix = ["example.com"], rd = false }
action = { pool = "only-b" }

[[ls.rule]]
name = "slow"
match = { suffix = ["slow.example.com"] }
action = { delay_ms = 400 }

[[ls.rule]]
name = "dot-only"
match = { suffix = ["dot.test"], transport = ["dot"] }
action = "refuse"

[[ls.rule]]
name = "doh-only"
match = { suffix = ["doh.test"], transport = ["doh"] }
action = "refuse"

[[ls.response_rule]]
name = "short-org"
match = { rcode = ["NOERROR"], answer_type = ["A"], qtype = ["A"] }
action = { limit_ttl = { max = 7 } }

[[ls.response_rule]]
name = "no-txt-nx"
match = { rcode = ["NXDOMAIN"], qtype = ["TXT"] }
action = "servfail"
"#;

/// The LS with [`RULES`] in front of two table servers, with DoT and DoH.
struct Setup {
    pki: Pki,
    ls: LsRoleRun,
    tls: SocketAddr,
    https: SocketAddr,
    ts: [TestTs; 2],
    /// dig and kdig, when started by [`Setup::asking`].
    clients: Option<[PathBuf; 2]>,
}

impl Setup {
    /// `None` (skipped) without openssl.
    async fn start(test: &str) -> Option<Setup> {
        let pki = Pki::new(test)?;
        let (cert, key) = pki.leaf("ls");
        let a = start_ts_table(&pki.dir, "a.txt", TABLE_A).await;
        let b = start_ts_table(&pki.dir, "b.txt", TABLE_B).await;
        let ports = free_ports(3);
        let tls = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let https = SocketAddr::from(([127, 0, 0, 1], ports[2]));
        let files = format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            path_str(&cert),
            path_str(&key)
        );
        let text = format!(
            "[ls]\nlisten = [\"127.0.0.1:{}\"]\nmetrics = \"127.0.0.1:0\"\n\n\
             [ls.tls]\nlisten = [\"{tls}\"]\n{files}\n\
             [ls.https]\nlisten = [\"{https}\"]\n{files}\n\
             [[ls.backend]]\nname = \"a\"\naddr = \"{}\"\n\n\
             [[ls.backend]]\nname = \"b\"\naddr = \"{}\"\n{RULES}",
            ports[0], a.addr, b.addr
        );
        let config = pki.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let ls = start_ls_role(&config).await;
        Some(Setup {
            pki,
            ls,
            tls,
            https,
            ts: [a, b],
            clients: None,
        })
    }

    /// [`Setup::start`] with dig and kdig to ask through ([`Setup::ask`]):
    /// `None` (skipped) without them or openssl.
    async fn asking(test: &str) -> Option<Setup> {
        let clients = need(test, ["dig", "kdig"])?;
        let mut s = Setup::start(test).await?;
        s.clients = Some(clients);
        Some(s)
    }

    /// Asks `question` over `via` with its program (dig for plain DNS, kdig
    /// encrypted), with `extra` options; its output.
    fn ask(&self, via: Via, question: &[&str], extra: &[&str]) -> String {
        let [dig, kdig] = self.clients.as_ref().expect("started by Setup::asking");
        let prog = match via {
            Via::Udp | Via::Tcp => dig,
            Via::Dot | Via::Doh => kdig,
        };
        self.ask_with(prog, via, question, extra)
    }

    fn metrics(&self) -> String {
        dnslb::metrics::render_prometheus(&self.ls.balancer)
    }

    /// The count of `dnslb_rule_hits_total{rule,action}` (0 when absent).
    fn hits(&self, rule: &str, action: &str) -> u64 {
        let line = format!("dnslb_rule_hits_total{{rule=\"{rule}\",action=\"{action}\"}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Asks `question` with `prog` (dig or kdig) over `via`, with `extra`
    /// options; its output.
    fn ask_with(&self, prog: &Path, via: Via, question: &[&str], extra: &[&str]) -> String {
        let ca = format!("+tls-ca={}", path_str(&self.pki.ca()));
        let host = format!("+tls-hostname={HOST}");
        let mut args: Vec<String> = vec!["@127.0.0.1".into(), "-p".into()];
        let port = match via {
            Via::Udp | Via::Tcp => self.ls.addr.port(),
            Via::Dot => self.tls.port(),
            Via::Doh => self.https.port(),
        };
        args.push(port.to_string());
        match via {
            Via::Udp => {}
            Via::Tcp => args.push("+tcp".into()),
            Via::Dot => args.extend(["+tls".into(), ca, host]),
            Via::Doh => args.extend(["+https".into(), ca, host]),
        }
        // One try, 2 s: dig's options and kdig's say it differently.
        if matches!(via, Via::Udp | Via::Tcp) {
            args.extend(["+tries=1".into(), "+timeout=2".into()]);
        } else {
            args.extend(["+retry=0".into(), "+time=2".into()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(question.iter().map(|s| (*s).to_owned()));
        run_tool(path_str(prog), &args).stdout
    }

    async fn stop(self) {
        self.ls
            .controls
            .send(dnslb::roles::Control::Shutdown)
            .unwrap();
        self.ls.task.await.unwrap().unwrap();
        for ts in self.ts {
            ts.stop().await;
        }
    }
}

/// How a client asks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Udp,
    Tcp,
    Dot,
    Doh,
}

const ALL: [Via; 4] = [Via::Udp, Via::Tcp, Via::Dot, Via::Doh];

/// Whether an output of dig or kdig shows EDE `code`.
fn has_ede(out: &str, code: u16) -> bool {
    out.contains(&format!("EDE: {code} ")) || out.contains(&format!("EDE: {code}:"))
}

/// The header flags line of dig's or kdig's output.
fn flags(out: &str) -> String {
    out.lines()
        .find(|l| l.contains("flags:") || l.contains("Flags:"))
        .unwrap_or_default()
        .to_owned()
}

/// Each answering action, over UDP, TCP, DoT and DoH: the rcode, the
/// flags (RA=0, AA as the rule says), the EDE, the records, the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_answers_alike_on_every_transport() {
    const TEST: &str = "each_action_answers_alike_on_every_transport";
    let Some(s) = Setup::asking(TEST).await else {
        return;
    };
    for via in ALL {
        let ctx = |out: &str| format!("{via:?}: {out}");
        // nxdomain, EDE 17, AA=0, RA=0; allow comes first for ok.blocked.test.
        let out = s.ask(via, &["x.BLOCKED.test", "A"], &[]);
        assert!(
            out.contains("status: NXDOMAIN") && has_ede(&out, 17),
            "{}",
            ctx(&out)
        );
        let f = flags(&out);
        assert!(!f.contains(" aa") && !f.contains(" ra"), "{}", ctx(&out));
        let out = s.ask(via, &["ok.blocked.test", "A"], &[]);
        assert!(
            out.contains("status: NOERROR") && out.contains("192.0.2.30"),
            "{}",
            ctx(&out)
        );
        assert!(!has_ede(&out, 17), "{}", ctx(&out));
        // refuse: EDE 15 by default.
        let out = s.ask(via, &["www.example.com", "MX"], &[]);
        assert!(
            out.contains("status: REFUSED") && has_ede(&out, 15),
            "{}",
            ctx(&out)
        );
        // servfail with aa = true and ede = 16.
        let out = s.ask(via, &["www.example.com", "SRV"], &[]);
        assert!(
            out.contains("status: SERVFAIL") && has_ede(&out, 16),
            "{}",
            ctx(&out)
        );
        assert!(flags(&out).contains(" aa"), "{}", ctx(&out));
        // spoof: A and AAAA from the list, NODATA for TXT.
        let out = s.ask(via, &["www.spoof.test", "A"], &[]);
        assert!(
            out.contains("status: NOERROR") && out.contains("192.0.2.1"),
            "{}",
            ctx(&out)
        );
        assert!(
            out.contains("30") && !out.contains("2001:db8::1"),
            "{}",
            ctx(&out)
        );
        let out = s.ask(via, &["www.spoof.test", "AAAA"], &[]);
        assert!(
            out.contains("2001:db8::1") && !out.contains("192.0.2.1"),
            "{}",
            ctx(&out)
        );
        let out = s.ask(via, &["www.spoof.test", "TXT"], &[]);
        assert!(
            out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
            "{}",
            ctx(&out)
        );
        // spoof_cname: the CNAME only.
        let out = s.ask(via, &["a.alias.test", "A"], &[]);
        assert!(
            out.contains("CNAME") && out.contains("www.example.com."),
            "{}",
            ctx(&out)
        );
        assert!(out.contains("ANSWER: 1"), "{}", ctx(&out));
    }
    for (rule, action) in [
        ("blocked", "nxdomain"),
        ("allowed", "allow"),
        ("refused", "refuse"),
        ("failed", "servfail"),
    ] {
        assert_eq!(s.hits(rule, action), 4, "{rule}");
    }
    assert_eq!(s.hits("spoofed", "spoof"), 12);
    assert_eq!(s.hits("aliased", "spoof_cname"), 4);
    s.stop().await;
}

/// `drop` answers nothing on any transport; the transport selector picks
/// DoT or DoH alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_the_transport_selector() {
    const TEST: &str = "drop_and_the_transport_selector";
    let Some(s) = Setup::asking(TEST).await else {
        return;
    };
    for via in ALL {
        let out = s.ask(via, &["x.drop.test", "A"], &[]);
        // No DNS answer at all (a DoH client gets HTTP 503 instead).
        let none = if via == Via::Doh {
            out.contains("status: 503") && !out.contains("NOERROR")
        } else {
            !out.contains("status:")
        };
        assert!(none, "{via:?}: {out}");
        let refused = |name: &str| s.ask(via, &[name, "A"], &[]).contains("status: REFUSED");
        assert_eq!(refused("www.dot.test"), via == Via::Dot, "{via:?}");
        assert_eq!(refused("www.doh.test"), via == Via::Doh, "{via:?}");
    }
    assert!(s.hits("dropped", "drop") >= 4);
    assert_eq!(s.hits("dot-only", "refuse"), 1);
    assert_eq!(s.hits("doh-only", "refuse"), 1);
    s.stop().await;
}

/// `truncate` on UDP: dig gets TC=1, asks again over TCP and gets the
/// backend's answer there (the rule names UDP only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_sends_dig_to_tcp_where_it_gets_its_answer() {
    const TEST: &str = "truncate_sends_dig_to_tcp_where_it_gets_its_answer";
    let Some([dig]) = need(TEST, ["dig"]) else {
        return;
    };
    let Some(s) = Setup::start(TEST).await else {
        return;
    };
    // dig asks ANY over TCP unless told +notcp.
    let out = s.ask_with(&dig, Via::Udp, &["www.example.com", "ANY"], &["+notcp"]);
    // dig says it asked over TCP in the end (its "Truncated, retrying in
    // TCP mode" goes to stderr).
    assert!(out.contains("(TCP)"), "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        !flags(&out).contains(" tc"),
        "the TCP answer is whole: {out}"
    );
    assert_eq!(s.hits("no-any", "truncate"), 1);
    // Asked over TCP from the start: not truncated.
    let out = s.ask_with(&dig, Via::Tcp, &["www.example.com", "ANY"], &[]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert_eq!(s.hits("no-any", "truncate"), 1);
    s.stop().await;
}

/// The pool action sends the query to that pool's backend only: with RD=0
/// every answer is backend b's, on every transport, and backend a is sent
/// none of them; with RD=1 the name goes to both backends as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_action_reaches_only_that_pools_backends() {
    const TEST: &str = "a_pool_action_reaches_only_that_pools_backends";
    let Some(s) = Setup::asking(TEST).await else {
        return;
    };
    let sent_to_a = || {
        let st = s.ls.balancer.state();
        let a = st.backends.iter().find(|b| b.name == "a").unwrap().clone();
        a.stats.sent.load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = sent_to_a();
    for via in ALL {
        for _ in 0..3 {
            let out = s.ask(via, &["www.example.com", "A"], &["+nordflag"]);
            assert!(out.contains("192.0.2.99"), "{via:?}: {out}");
            assert!(!out.contains("192.0.2.10"), "{via:?}: {out}");
        }
    }
    assert_eq!(sent_to_a(), before, "backend a was asked");
    assert_eq!(s.hits("to-b", "pool"), 12);
    s.stop().await;
}

/// `delay_ms` holds that query for its delay (a timer: the worker answers
/// other queries meanwhile), not the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_delays_that_query_and_not_the_others() {
    let Some(s) = Setup::start("delay_delays_that_query_and_not_the_others").await else {
        return;
    };
    let addr = s.ls.addr;
    let wait = Duration::from_secs(5);
    let t0 = Instant::now();
    let slow = tokio::spawn(async move {
        let q = query_rd("slow.example.com", RecordType::A, true);
        let m = udp_exchange(addr, &q, wait).await;
        (m, t0.elapsed())
    });
    // Asked after the slow one, answered before it.
    let mut fast = Vec::new();
    for _ in 0..5 {
        let q = query_rd("www.example.com", RecordType::A, true);
        let m = udp_exchange(addr, &q, wait).await.expect("no answer");
        assert!(!m.answers.is_empty());
        fast.push(t0.elapsed());
    }
    let (m, slow_took) = slow.await.unwrap();
    let m = m.expect("the delayed query was not answered");
    assert!(!m.answers.is_empty());
    assert!(slow_took >= Duration::from_millis(400), "{slow_took:?}");
    assert!(
        fast.iter().all(|&f| f < slow_took),
        "{fast:?} vs {slow_took:?}"
    );
    assert_eq!(s.hits("slow", "delay"), 1);
    s.stop().await;
}

/// Past the bound of held queries (`max_inflight`, its worker's split)
/// a delayed query gets SERVFAIL at once, not silence, and a client flooding
/// a delayed name holds only its fair share: another client's delayed query
/// is still held and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_queries_past_the_bound_get_servfail_and_others_their_share() {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "a.txt", TABLE_A).await;
    let port = free_ports(1)[0];
    let text = format!(
        "[ls]\nlisten = [\"127.0.0.1:{port}\"]\nmetrics = \"127.0.0.1:0\"\n\
         workers = 1\nmax_inflight = 8\n\n\
         [[ls.backend]]\nname = \"a\"\naddr = \"{}\"\n\n\
         [[ls.rule]]\nname = \"slow\"\nmatch = {{ suffix = [\"slow.example.com\"] }}\n\
         action = {{ delay_ms = 1000 }}\n",
        ts.addr
    );
    let config = dir.write("config.toml", &text);
    let ls = start_ls_role(&config).await;
    let addr = ls.addr;
    let wait = Duration::from_secs(5);
    // 127.0.0.1 asks the delayed name 20 times at once.
    let flooder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    flooder.connect(addr).await.unwrap();
    for _ in 0..20 {
        let q = query_rd("slow.example.com", RecordType::A, true);
        flooder.send(&q.to_vec().unwrap()).await.unwrap();
    }
    // Then another client (127.0.0.2) asks it once.
    let other = tokio::spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
        sock.connect(addr).await.unwrap();
        let q = query_rd("slow.example.com", RecordType::A, true);
        sock.send(&q.to_vec().unwrap()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(wait, sock.recv(&mut buf)).await;
        n.ok()
            .and_then(Result::ok)
            .and_then(|n| Message::from_vec(&buf[..n]).ok())
    });
    let (mut servfail, mut answered) = (0, 0);
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while servfail + answered < 20 {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, flooder.recv(&mut buf)).await else {
            break;
        };
        match Message::from_vec(&buf[..n]).map(|m| m.metadata.response_code) {
            Ok(ResponseCode::ServFail) => servfail += 1,
            Ok(ResponseCode::NoError) => answered += 1,
            other => panic!("{other:?}"),
        }
    }
    let other = other
        .await
        .unwrap()
        .expect("the other client got no answer");
    assert_eq!(other.metadata.response_code, ResponseCode::NoError);
    assert!(!other.answers.is_empty());
    assert_eq!(servfail + answered, 20, "every query answered");
    assert!(servfail >= 10, "{servfail} SERVFAIL, {answered} answered");
    assert!(answered >= 1, "{servfail} SERVFAIL, {answered} answered");
    ls.controls.send(dnslb::roles::Control::Shutdown).unwrap();
    ls.task.await.unwrap().unwrap();
    ts.stop().await;
}

/// Response rules: TTLs capped by `limit_ttl` before the client gets the
/// answer; an NXDOMAIN to TXT turned into SERVFAIL; both counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rules_cap_ttls_and_turn_answers_into_servfail() {
    const TEST: &str = "response_rules_cap_ttls_and_turn_answers_into_servfail";
    let Some(s) = Setup::asking(TEST).await else {
        return;
    };
    for via in ALL {
        let out = s.ask(via, &["www.example.org", "A"], &[]);
        let ttl_line = out
            .lines()
            .find(|l| l.contains("192.0.2.40"))
            .unwrap_or_else(|| panic!("{via:?}: {out}"));
        let ttl: u32 = ttl_line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(ttl <= 7, "{via:?}: {ttl_line}");
        let out = s.ask(via, &["nope.example.org", "TXT"], &[]);
        assert!(out.contains("status: SERVFAIL"), "{via:?}: {out}");
    }
    let text = s.metrics();
    for line in [
        "dnslb_response_rule_hits_total{rule=\"short-org\",action=\"limit_ttl\"} 4",
        "dnslb_response_rule_hits_total{rule=\"no-txt-nx\",action=\"servfail\"} 4",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    s.stop().await;
}

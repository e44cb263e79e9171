//! Interop with real DNS software, over real sockets on 127.0.0.1.
//!
//! * `dig` and `kdig` against an in-process TS: rcode, flags and records of a
//!   hit, a miss, NODATA and an empty non-terminal; TCP; a big RRset that is
//!   truncated over UDP and fetched again over TCP by the client itself; a kdig
//!   AXFR of a master-file zone spanning several messages, and its ACL.
//! * A differential test: NSD and the TS serve the same `.zone` file and get
//!   the same queries; their answers must agree, field by field, except where
//!   a comment says why they differ by design.
//!
//! Every child process is stopped from a `Drop` guard (dig and kdig by PID,
//! NSD by its process group's id), so a failing test leaves nothing running.
//! Readiness is polled with bounded loops, never slept on.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::kit::Nsd;
use crate::kit::run_tool;
use crate::kit::{self, TestTs, Via, ZoneDir, record_text, send, show_sections};

// ---------------------------------------------------------------------------
// Running dig / kdig and reading their output
// ---------------------------------------------------------------------------

/// Runs a tool that must succeed and parses what it printed.
fn ask_tool(prog: &str, args: Vec<String>) -> ToolAnswer {
    let run = run_tool(prog, &args);
    assert!(
        run.status.success(),
        "`{prog} {}` failed\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    let mut t = parse_tool(&run.stdout);
    t.cmd = format!("{prog} {}", args.join(" "));
    t
}

/// One resource record as dig/kdig print it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    name: String,
    ttl: u32,
    rtype: String,
    data: String,
}

fn rec(name: &str, ttl: u32, rtype: &str, data: &str) -> Rec {
    Rec {
        name: name.into(),
        ttl,
        rtype: rtype.into(),
        data: data.into(),
    }
}

/// The last DNS message a dig/kdig run printed.
#[derive(Debug, Default)]
struct ToolAnswer {
    cmd: String,
    /// `NOERROR`, `NXDOMAIN`, ... from the header line.
    status: Option<String>,
    /// Header flags, lower case (`qr`, `aa`, `tc`, ...).
    flags: Vec<String>,
    answer: Vec<Rec>,
    authority: Vec<Rec>,
    /// `UDP` or `TCP`, from dig's `;; SERVER:` or kdig's `;; From` line.
    transport: Option<String>,
    /// dig said it got TC=1 and went on over TCP.
    retried_tcp: bool,
    raw: String,
}

impl ToolAnswer {
    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("<no header>")
    }

    /// Context for assertion messages.
    fn ctx(&self) -> String {
        format!("`{}` printed:\n{}", self.cmd, self.raw)
    }

    fn answer_set(&self) -> BTreeSet<Rec> {
        self.answer.iter().cloned().collect()
    }
}

#[derive(Clone, Copy)]
enum Section {
    Answer,
    Authority,
    Other,
}

/// Parses dig (`+comments +answer +authority +stats`) and kdig output.
///
/// When the output holds several messages (dig's retry over TCP after TC=1),
/// each new header line starts over, so the last message is what is returned.
/// Records outside any `SECTION` heading (kdig's AXFR listing) count as answer.
fn parse_tool(out: &str) -> ToolAnswer {
    let mut t = ToolAnswer {
        raw: out.to_string(),
        ..ToolAnswer::default()
    };
    let mut section = Section::Answer;
    for line in out.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if lower.contains("truncated, retrying in tcp mode") {
            t.retried_tcp = true;
        }
        if lower.starts_with(";; ->>header<<-") {
            let status = lower
                .split_once("status: ")
                .map(|(_, rest)| rest.split([',', ';']).next().unwrap_or("").trim())
                .unwrap_or("");
            t.status = Some(status.to_ascii_uppercase());
            t.flags.clear();
            t.answer.clear();
            t.authority.clear();
            section = Section::Answer;
        } else if let Some(rest) = lower.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or("");
            t.flags = flags.split_whitespace().map(str::to_string).collect();
        } else if lower.starts_with(";; answer section") {
            section = Section::Answer;
        } else if lower.starts_with(";; authority section") {
            section = Section::Authority;
        } else if lower.starts_with(";; ") && lower.contains(" section") {
            section = Section::Other;
        } else if lower.starts_with(";; server:") || lower.starts_with(";; from ") {
            if lower.contains("(tcp)") {
                t.transport = Some("TCP".into());
            } else if lower.contains("(udp)") {
                t.transport = Some("UDP".into());
            }
        } else if !l.starts_with(';') {
            let mut f = l.split_whitespace();
            let (Some(name), Some(ttl), Some(_class), Some(rtype)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let Ok(ttl) = ttl.parse() else { continue };
            let r = rec(name, ttl, rtype, &f.collect::<Vec<_>>().join(" "));
            match section {
                Section::Answer => t.answer.push(r),
                Section::Authority => t.authority.push(r),
                Section::Other => {}
            }
        }
    }
    t
}

fn dig_args(ts: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> Vec<String> {
    let plain = [
        "-q",
        name,
        "-t",
        qtype,
        "+norec",
        "+time=2",
        "+tries=1",
        "+noall",
        "+comments",
        "+answer",
        "+authority",
        "+stats",
    ];
    kit::tool_args(ts, &[&plain[..], extra].concat())
}

fn dig(ts: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> ToolAnswer {
    ask_tool("dig", dig_args(ts, name, qtype, extra))
}

fn kdig_args(ts: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> Vec<String> {
    let plain = ["-t", qtype, "+norec", "+time=2", "+retry=0"];
    kit::tool_args(ts, &[&plain[..], extra, &[name]].concat())
}

fn kdig(ts: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> ToolAnswer {
    ask_tool("kdig", kdig_args(ts, name, qtype, extra))
}

// ---------------------------------------------------------------------------
// dig / kdig against an in-process TS
// ---------------------------------------------------------------------------

/// Addresses of the big RRset: more than 512 bytes, less than 1232.
const BIG_COUNT: usize = 60;

fn big_ips() -> Vec<String> {
    (1..=BIG_COUNT).map(|i| format!("10.0.0.{i}")).collect()
}

/// A PROJ table with a hit, a CNAME, a TXT, an empty non-terminal
/// (`example.com`) and the big RRset; TTL is the kit's 300.
fn proj_table() -> String {
    let mut t = String::from(
        "# interop test table\n\
         www.example.com 192.0.2.1 A\n\
         www.example.com 192.0.2.2 A\n\
         www.example.com 2001:db8::1 AAAA\n\
         alias.example.com www.example.com CNAME\n\
         info.example.com \"hello, world\" TXT\n",
    );
    for ip in big_ips() {
        writeln!(t, "big.example.com {ip} A").unwrap();
    }
    t
}

/// A TS serving [`proj_table`] from a folder of its own (kept beside it).
async fn start_proj_ts() -> (ZoneDir, TestTs) {
    let dir = ZoneDir::new();
    let table = dir.write("table.txt", &proj_table());
    (dir, kit::start_ts(kit::ts_settings(vec![table])).await)
}

fn www_set(owner: &str) -> BTreeSet<Rec> {
    ["192.0.2.1", "192.0.2.2"]
        .iter()
        .map(|ip| rec(owner, 300, "A", ip))
        .collect()
}

fn big_set() -> BTreeSet<Rec> {
    big_ips()
        .iter()
        .map(|ip| rec("big.example.com.", 300, "A", ip))
        .collect()
}

/// `t`'s answer came over `transport` ("UDP" or "TCP").
fn assert_over(t: &ToolAnswer, transport: &str) {
    assert_eq!(t.transport.as_deref(), Some(transport), "{}", t.ctx());
}

/// Asserts a negative answer (NXDOMAIN or NODATA): authoritative, no answer,
/// exactly one SOA in the authority section.
fn assert_negative(t: &ToolAnswer, status: &str) {
    assert_eq!(t.status(), status, "{}", t.ctx());
    assert!(t.has_flag("qr") && t.has_flag("aa"), "{}", t.ctx());
    assert!(t.answer.is_empty(), "no answer expected; {}", t.ctx());
    let soas: Vec<_> = t.authority.iter().filter(|r| r.rtype == "SOA").collect();
    assert_eq!(soas.len(), 1, "one SOA in authority; {}", t.ctx());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_hit_miss_nodata_cname_and_tcp() {
    let (_dir, ts) = start_proj_ts().await;
    let a = ts.addr;

    let hit = dig(a, "www.example.com", "A", &[]);
    assert_eq!(hit.status(), "NOERROR", "{}", hit.ctx());
    assert!(hit.has_flag("qr"), "{}", hit.ctx());
    assert!(hit.has_flag("aa"), "{}", hit.ctx());
    assert!(!hit.has_flag("tc"), "{}", hit.ctx());
    assert_eq!(
        hit.answer_set(),
        www_set("www.example.com."),
        "{}",
        hit.ctx()
    );
    assert_eq!(hit.answer.len(), 2, "{}", hit.ctx());
    assert_over(&hit, "UDP");

    // 0x20: dig prints the owner as received; the TS keeps the client's case.
    let mixed = dig(a, "WwW.ExAmPlE.cOm", "A", &[]);
    assert_eq!(mixed.status(), "NOERROR", "{}", mixed.ctx());
    assert_eq!(
        mixed.answer_set(),
        www_set("WwW.ExAmPlE.cOm."),
        "{}",
        mixed.ctx()
    );

    let miss = dig(a, "nope.example.com", "A", &[]);
    assert_negative(&miss, "NXDOMAIN");

    let nodata = dig(a, "www.example.com", "TXT", &[]);
    assert_negative(&nodata, "NOERROR");

    // Empty non-terminal: NODATA, not NXDOMAIN (RFC 8020).
    let ent = dig(a, "example.com", "A", &[]);
    assert_negative(&ent, "NOERROR");

    let txt = dig(a, "info.example.com", "TXT", &[]);
    assert_eq!(txt.status(), "NOERROR", "{}", txt.ctx());
    assert_eq!(
        txt.answer,
        vec![rec("info.example.com.", 300, "TXT", "\"hello, world\"")],
        "{}",
        txt.ctx()
    );

    let cname = dig(a, "alias.example.com", "A", &[]);
    assert_eq!(cname.status(), "NOERROR", "{}", cname.ctx());
    assert!(cname.has_flag("aa"), "{}", cname.ctx());
    let mut want = www_set("www.example.com.");
    want.insert(rec("alias.example.com.", 300, "CNAME", "www.example.com."));
    assert_eq!(cname.answer_set(), want, "{}", cname.ctx());

    let tcp = dig(a, "www.example.com", "A", &["+tcp"]);
    assert_over(&tcp, "TCP");
    assert_eq!(tcp.status(), "NOERROR", "{}", tcp.ctx());
    assert!(tcp.has_flag("qr") && tcp.has_flag("aa"), "{}", tcp.ctx());
    assert_eq!(
        tcp.answer_set(),
        www_set("www.example.com."),
        "{}",
        tcp.ctx()
    );

    let tcp_miss = dig(a, "nope.example.com", "AAAA", &["+tcp"]);
    assert_over(&tcp_miss, "TCP");
    assert_negative(&tcp_miss, "NXDOMAIN");

    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_big_rrset_truncates_over_udp_and_retries_over_tcp() {
    let (_dir, ts) = start_proj_ts().await;
    let a = ts.addr;

    // With +ignore dig shows the UDP answer as it came: TC=1 (and, for this
    // TS, empty sections).
    for size_opt in ["+noedns", "+bufsize=512"] {
        let t = dig(a, "big.example.com", "A", &["+ignore", size_opt]);
        assert_eq!(t.status(), "NOERROR", "{}", t.ctx());
        assert!(t.has_flag("tc"), "TC=1 expected; {}", t.ctx());
        assert!(t.has_flag("aa"), "{}", t.ctx());
        assert!(!t.retried_tcp, "{}", t.ctx());
        assert_over(&t, "UDP");
        assert!(
            t.answer.is_empty(),
            "truncated answer is empty; {}",
            t.ctx()
        );
    }

    // By default dig sees TC=1, says so, and asks again over TCP, where the
    // whole RRset comes back.
    for size_opt in ["+noedns", "+bufsize=512"] {
        let t = dig(a, "big.example.com", "A", &[size_opt]);
        assert!(t.retried_tcp, "dig should retry over TCP; {}", t.ctx());
        assert_over(&t, "TCP");
        assert_eq!(t.status(), "NOERROR", "{}", t.ctx());
        assert!(!t.has_flag("tc"), "{}", t.ctx());
        assert_eq!(t.answer.len(), BIG_COUNT, "{}", t.ctx());
        assert_eq!(t.answer_set(), big_set(), "{}", t.ctx());
    }

    // The client's EDNS size is honoured: 1232 bytes hold all 60 records, so
    // no truncation and no retry.
    let t = dig(a, "big.example.com", "A", &["+bufsize=1232"]);
    assert!(!t.has_flag("tc"), "{}", t.ctx());
    assert!(!t.retried_tcp, "{}", t.ctx());
    assert_over(&t, "UDP");
    assert_eq!(t.answer_set(), big_set(), "{}", t.ctx());

    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_hit_miss_tcp_and_truncation() {
    let (_dir, ts) = start_proj_ts().await;
    let a = ts.addr;

    let hit = kdig(a, "www.example.com", "A", &[]);
    assert_eq!(hit.status(), "NOERROR", "{}", hit.ctx());
    assert!(hit.has_flag("qr") && hit.has_flag("aa"), "{}", hit.ctx());
    assert_eq!(
        hit.answer_set(),
        www_set("www.example.com."),
        "{}",
        hit.ctx()
    );
    assert_over(&hit, "UDP");

    let miss = kdig(a, "nope.example.com", "A", &[]);
    assert_negative(&miss, "NXDOMAIN");

    let nodata = kdig(a, "www.example.com", "MX", &[]);
    assert_negative(&nodata, "NOERROR");

    let tcp = kdig(a, "www.example.com", "AAAA", &["+tcp"]);
    assert_over(&tcp, "TCP");
    assert_eq!(tcp.status(), "NOERROR", "{}", tcp.ctx());
    assert!(tcp.has_flag("aa"), "{}", tcp.ctx());
    assert_eq!(
        tcp.answer,
        vec![rec("www.example.com.", 300, "AAAA", "2001:db8::1")],
        "{}",
        tcp.ctx()
    );

    let tcp_miss = kdig(a, "nope.example.com", "A", &["+tcp"]);
    assert_over(&tcp_miss, "TCP");
    assert_negative(&tcp_miss, "NXDOMAIN");

    // kdig sends no EDNS by default: 512 bytes, the big RRset is truncated.
    let tc = kdig(a, "big.example.com", "A", &["+ignore"]);
    assert!(tc.has_flag("tc"), "{}", tc.ctx());
    assert_over(&tc, "UDP");
    let full = kdig(a, "big.example.com", "A", &[]);
    assert!(!full.has_flag("tc"), "{}", full.ctx());
    assert_over(&full, "TCP");
    assert_eq!(full.answer_set(), big_set(), "{}", full.ctx());

    ts.stop().await;
}

/// Hosts in the AXFR zone: enough to need several transfer messages.
const AXFR_HOSTS: usize = 1500;

/// A master file for `axfr.test.` and the records (SOA aside) kdig should print.
fn axfr_zone() -> (String, BTreeSet<Rec>) {
    let mut text = String::from(
        "$ORIGIN axfr.test.\n\
         $TTL 300\n\
         @ IN SOA ns1.axfr.test. hostmaster.axfr.test. 2024050501 3600 600 604800 60\n\
         @ IN NS ns1\n\
         @ IN NS ns2.axfr.test.\n\
         @ IN MX 10 mail\n\
         ns1 IN A 192.0.2.53\n\
         ns2 IN A 192.0.2.54\n\
         mail IN A 192.0.2.25\n\
         www IN A 192.0.2.1\n\
         www IN AAAA 2001:db8::1\n\
         www IN TXT \"hello world\"\n\
         alias IN CNAME www\n",
    );
    let mut want: BTreeSet<Rec> = [
        rec("axfr.test.", 300, "NS", "ns1.axfr.test."),
        rec("axfr.test.", 300, "NS", "ns2.axfr.test."),
        rec("axfr.test.", 300, "MX", "10 mail.axfr.test."),
        rec("ns1.axfr.test.", 300, "A", "192.0.2.53"),
        rec("ns2.axfr.test.", 300, "A", "192.0.2.54"),
        rec("mail.axfr.test.", 300, "A", "192.0.2.25"),
        rec("www.axfr.test.", 300, "A", "192.0.2.1"),
        rec("www.axfr.test.", 300, "AAAA", "2001:db8::1"),
        rec("www.axfr.test.", 300, "TXT", "\"hello world\""),
        rec("alias.axfr.test.", 300, "CNAME", "www.axfr.test."),
    ]
    .into_iter()
    .collect();
    for i in 0..AXFR_HOSTS {
        let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        writeln!(text, "h{i} 120 IN A {ip}").unwrap();
        want.insert(rec(&format!("h{i}.axfr.test."), 120, "A", &ip));
    }
    (text, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_axfr_gets_every_record() {
    let dir = ZoneDir::new();
    let (text, want) = axfr_zone();
    let zone = dir.write("axfr.test.zone", &text);
    let ts = kit::start_ts(kit::ts_settings(vec![zone.clone()])).await;

    let t = kdig(ts.addr, "axfr.test.", "AXFR", &[]);
    let ctx = || {
        let head: String = t.raw.lines().take(20).collect::<Vec<_>>().join("\n");
        format!("`{}` printed (first lines):\n{head}", t.cmd)
    };
    assert!(t.answer.len() >= 2, "{}", ctx());
    let first = &t.answer[0];
    let last = &t.answer[t.answer.len() - 1];
    assert_eq!(
        first.rtype,
        "SOA",
        "transfer starts with the SOA; {}",
        ctx()
    );
    assert_eq!(last.rtype, "SOA", "transfer ends with the SOA; {}", ctx());
    assert_eq!(first, last, "{}", ctx());
    assert_eq!(first.name, "axfr.test.", "{}", ctx());
    assert!(
        first.data.contains(" 2024050501 3600 600 604800 60"),
        "the file's SOA serial and timers; {}",
        ctx()
    );
    assert_eq!(
        t.answer.len(),
        want.len() + 2,
        "every record once, plus the two SOAs; {}",
        ctx()
    );
    let got: BTreeSet<Rec> = t.answer[1..t.answer.len() - 1].iter().cloned().collect();
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}; {}",
        ctx()
    );
    assert!(
        t.raw.contains("messages"),
        "kdig's summary line names the message count; {}",
        ctx()
    );
    ts.stop().await;

    // A client outside axfr_allow gets no transfer (kdig reports the refusal).
    let mut settings = kit::ts_settings(vec![zone]);
    settings.axfr_allow = vec![];
    let closed = kit::start_ts(settings).await;
    let run = run_tool("kdig", &kdig_args(closed.addr, "axfr.test.", "AXFR", &[]));
    let t = parse_tool(&run.stdout);
    assert!(
        t.answer.is_empty(),
        "no records for a client not in axfr_allow:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("REFUSED"),
        "kdig should report REFUSED:\n{said}"
    );
    closed.stop().await;
}

// ---------------------------------------------------------------------------
// Differential test: the TS against NSD on the same zone
// ---------------------------------------------------------------------------

const DIFF_ZONE: &str = "diff.test";
/// Records in the big RRset: more than fits in 1232 bytes.
const DIFF_BIG: usize = 80;
/// Records in the mid RRset: more than 512 bytes, less than 1232.
const DIFF_MID: usize = 40;

fn diff_zone_text() -> String {
    let mut t = String::from(
        "$ORIGIN diff.test.\n\
         $TTL 300\n\
         @        IN SOA ns1.diff.test. hostmaster.diff.test. ( 2024010101 3600 600 604800 60 )\n\
         @        IN NS    ns1\n\
         @        IN NS    ns2.diff.test.\n\
         @        IN MX    10 mail\n\
         @        IN MX    20 mail2\n\
         @        IN TXT   \"apex text\"\n\
         ns1      IN A     192.0.2.53\n\
         ns2      IN A     192.0.2.54\n\
         ns2      IN AAAA  2001:db8::54\n\
         mail     IN A     192.0.2.25\n\
         mail2    IN AAAA  2001:db8::25\n\
         www      IN A     192.0.2.1\n\
         www      IN AAAA  2001:db8::1\n\
         www      IN TXT   \"hello world\" \"second string\"\n\
         alias    IN CNAME www\n\
         chain    IN CNAME alias\n\
         ext      IN CNAME www.example.org.\n\
         dangling IN CNAME nowhere\n\
         x.y.ent  IN A     192.0.2.30\n\
         MiXeD    IN A     192.0.2.77\n\
         short 60 IN A     192.0.2.60\n\
         *.wild   IN A     192.0.2.99\n\
         *.wild   IN TXT   \"wildcard\"\n\
         sub      IN NS    ns.sub\n\
         sub      IN NS    ns.elsewhere.example.\n\
         ns.sub   IN A     192.0.2.200\n",
    );
    for i in 1..=5 {
        writeln!(t, "multi    IN A     192.0.2.{}", 10 + i).unwrap();
    }
    for i in 1..=DIFF_BIG {
        writeln!(t, "big      IN A     10.0.0.{i}").unwrap();
    }
    for i in 1..=DIFF_MID {
        writeln!(t, "mid      IN A     10.1.0.{i}").unwrap();
    }
    t
}

#[derive(Debug, Clone)]
struct Probe {
    name: String,
    qtype: RecordType,
    edns: Option<u16>,
    via: Via,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let edns = self
            .edns
            .map_or_else(|| "no EDNS".to_string(), |s| format!("EDNS {s}"));
        write!(
            f,
            "{} {} over {:?}, {edns}",
            self.name, self.qtype, self.via
        )
    }
}

fn diff_probes() -> Vec<Probe> {
    use RecordType::*;
    let z = |label: &str| {
        if label.is_empty() {
            "diff.test.".to_string()
        } else {
            format!("{label}.diff.test.")
        }
    };
    // (name, type): every one is asked over UDP without EDNS, over UDP with
    // EDNS 1232 and over TCP with EDNS 4096.
    let basic: Vec<(String, RecordType)> = vec![
        // hits
        (z("www"), A),
        (z("www"), AAAA),
        (z("www"), TXT),
        (z(""), SOA),
        (z(""), NS),
        (z(""), MX),
        (z(""), TXT),
        (z("ns1"), A),
        (z("ns2"), AAAA),
        (z("mail"), A),
        (z("multi"), A),
        (z("short"), A),
        (z("x.y.ent"), A),
        // case variants
        (z("mixed"), A),
        (z("MIXED"), A),
        (z("MiXeD"), A),
        ("WwW.DiFf.TeSt.".into(), A),
        ("DIFF.TEST.".into(), SOA),
        ("Diff.Test.".into(), NS),
        // CNAMEs: in-zone target, chain, out-of-zone target, dangling
        (z("alias"), A),
        (z("alias"), CNAME),
        (z("alias"), AAAA),
        (z("alias"), TXT),
        (z("ALIAS"), A),
        (z("chain"), A),
        (z("ext"), A),
        (z("dangling"), A),
        // misses (NXDOMAIN)
        (z("nope"), A),
        (z("nope"), AAAA),
        (z("a.b.nope"), A),
        (z("www2"), A),
        (z("below.www"), A),
        (z("NoPe"), TXT),
        // NODATA
        (z("www"), MX),
        (z("mail"), AAAA),
        (z(""), AAAA),
        (z("ns1"), TXT),
        (z("multi"), TXT),
        (z("mixed"), AAAA),
        (z("alias"), NS),
        // empty non-terminals (RFC 8020)
        (z("ent"), A),
        (z("y.ent"), A),
        (z("Y.Ent"), TXT),
        (z("wild"), A),
        // wildcards
        (z("foo.wild"), A),
        (z("foo.wild"), TXT),
        (z("a.b.wild"), A),
        (z("foo.wild"), AAAA),
        // delegation: referral with glue; DS is the parent's to answer
        (z("host.sub"), A),
        (z("sub"), DS),
        (z("sub"), A),
        (z("sub"), NS),
        (z("ns.sub"), A),
        // ANY (refuse-any: no)
        (z("www"), ANY),
        (z("multi"), ANY),
        // outside the zone: neither server is authoritative
        ("example.org.".into(), A),
        ("test.".into(), SOA),
    ];
    let mut probes = Vec::new();
    for (name, qtype) in basic {
        for (edns, via) in [
            (None, Via::Udp),
            (Some(1232), Via::Udp),
            (Some(4096), Via::Tcp),
        ] {
            probes.push(Probe {
                name: name.clone(),
                qtype,
                edns,
                via,
            });
        }
    }
    // Sizes: `mid` fits 1232 but not 512; `big` fits only TCP.
    for label in ["big", "mid", "MID"] {
        for (edns, via) in [
            (None, Via::Udp),
            (Some(512), Via::Udp),
            (Some(1232), Via::Udp),
            (Some(4096), Via::Udp),
            (None, Via::Tcp),
            (Some(4096), Via::Tcp),
        ] {
            probes.push(Probe {
                name: z(label),
                qtype: A,
                edns,
                via,
            });
        }
    }
    probes
}

/// The names (lower case) an answer's NS records point to.
fn ns_targets(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_ascii().to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn section(rs: &[Record]) -> BTreeSet<String> {
    rs.iter().map(record_text).collect()
}

/// The fields of an answer the two servers are expected to agree on.
#[derive(Debug, PartialEq)]
struct View {
    id: u16,
    rcode: ResponseCode,
    qr: bool,
    aa: bool,
    tc: bool,
    /// The question as echoed, case and all.
    question: Vec<String>,
    /// Payload size of the OPT, if any (both servers cap it at 1232).
    edns: Option<u16>,
    /// The sections, as sets; `None` where they are not compared.
    answer: Option<BTreeSet<String>>,
    authority: Option<BTreeSet<String>>,
    additional: Option<BTreeSet<String>>,
}

fn view(m: &Message) -> View {
    let md = &m.metadata;
    // For TC=1 answers only the header is compared: servers may keep
    // different amounts of a truncated message (this TS sends empty
    // sections, NSD may keep the RRsets that fit), and a client re-asks over
    // TCP anyway.
    let sections = !md.truncation;
    // By design the TS adds no additional-section data to authoritative
    // answers (no addresses of NS targets; a resolver asks if it wants them),
    // while NSD, even with minimal-responses, adds the in-zone A/AAAA of the
    // targets to an authoritative NS answer (seen for `diff.test. NS`; for MX
    // it adds nothing). Exactly those records are left out, on both sides;
    // everything else in the additional section (referral glue, MX answers,
    // anything unexpected) is compared.
    let targets = ns_targets(m);
    let additional: Vec<Record> = m
        .additionals
        .iter()
        .filter(|r| {
            !(matches!(r.record_type(), RecordType::A | RecordType::AAAA)
                && md.authoritative
                && targets.contains(&r.name.to_ascii().to_ascii_lowercase()))
        })
        .cloned()
        .collect();
    View {
        id: md.id,
        rcode: md.response_code,
        qr: md.message_type == hickory_proto::op::MessageType::Response,
        aa: md.authoritative,
        tc: md.truncation,
        question: m
            .queries
            .iter()
            .map(|q| format!("{} {}", q.name().to_ascii(), q.query_type()))
            .collect(),
        edns: m.edns.as_ref().map(|e| e.max_payload()),
        answer: sections.then(|| section(&m.answers)),
        authority: sections.then(|| section(&m.authorities)),
        additional: sections.then(|| section(&additional)),
    }
}

/// Names the fields where `a` (NSD) and `b` (TS) differ.
fn differences(a: &View, b: &View, qtype: RecordType) -> Vec<&'static str> {
    let mut d = Vec::new();
    let mut check = |same: bool, field: &'static str| {
        if !same {
            d.push(field);
        }
    };
    check(a.id == b.id, "id");
    check(a.rcode == b.rcode, "rcode");
    check(a.qr == b.qr, "qr");
    check(a.aa == b.aa, "aa");
    check(a.tc == b.tc, "tc");
    check(a.question == b.question, "question");
    check(a.edns == b.edns, "edns");
    // Sections are compared only when both sides kept them.
    let both = |x: &Option<BTreeSet<String>>, y: &Option<BTreeSet<String>>| match (x, y) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    if qtype == RecordType::ANY {
        // RFC 8482: a server may answer ANY over UDP with a subset of the
        // RRsets; NSD and the TS each return one. NSD's answer must be a
        // non-empty part of the TS's.
        let subset = match (&a.answer, &b.answer) {
            (Some(x), Some(y)) => x.is_subset(y) && (x.is_empty() == y.is_empty()),
            _ => true,
        };
        check(subset, "answer (NSD's ANY subset of TS's)");
    } else {
        check(both(&a.answer, &b.answer), "answer");
    }
    check(both(&a.authority, &b.authority), "authority");
    check(both(&a.additional, &b.additional), "additional");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_nsd() {
    let mut nsd = Nsd::primary(DIFF_ZONE, &diff_zone_text());
    // The TS loads the very file NSD serves.
    let ts = kit::start_ts(kit::ts_settings(vec![nsd.zone_file(DIFF_ZONE)])).await;
    nsd.wait_ready(DIFF_ZONE).await;

    let probes = diff_probes();
    assert!(probes.len() >= 50, "{} probes", probes.len());
    let mut report = String::new();
    let mut mismatches = 0;
    let mut truncated = 0;
    for probe in &probes {
        let msg = kit::query(&probe.name, probe.qtype, probe.edns);
        let bytes = msg.to_vec().unwrap();
        let from_nsd = send(nsd.addr, &bytes, probe.via).await;
        let from_ts = send(ts.addr, &bytes, probe.via).await;
        let (n, t) = match (&from_nsd, &from_ts) {
            (Ok(n), Ok(t)) => (n, t),
            _ => {
                mismatches += 1;
                writeln!(
                    report,
                    "\n{probe}: NSD {:?}, TS {:?}",
                    from_nsd.as_ref().map(|_| "answered"),
                    from_ts.as_ref().map(|_| "answered")
                )
                .unwrap();
                continue;
            }
        };
        let (vn, vt) = (view(n), view(t));
        // Both must echo the query's ID and question; checked against the
        // query itself so two servers that agree on a wrong echo still fail.
        let mut diff = differences(&vn, &vt, probe.qtype);
        if vt.id != msg.metadata.id {
            diff.push("id (TS vs query)");
        }
        let asked = vec![format!("{} {}", probe.name, probe.qtype)];
        if vt.question != asked {
            diff.push("question (TS vs query)");
        }
        truncated += usize::from(vn.tc);
        if !diff.is_empty() {
            mismatches += 1;
            writeln!(
                report,
                "\n{probe}: differs in {}\n  NSD:\n{}  TS:\n{}",
                diff.join(", "),
                show_sections(n),
                show_sections(t)
            )
            .unwrap();
        }
    }
    // The size probes must have produced TC=1 answers, or the comparison
    // above did not exercise truncation at all.
    assert!(
        truncated >= 6,
        "only {truncated} truncated answers from NSD"
    );
    assert!(
        mismatches == 0,
        "{mismatches} of {} probes differ between NSD ({}) and the TS ({}):{report}",
        probes.len(),
        nsd.addr,
        ts.addr
    );
    ts.stop().await;
    drop(nsd);
}

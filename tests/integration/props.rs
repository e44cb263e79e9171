//! Property tests (proptest) over real sockets on 127.0.0.1.
//!
//! - Mutated queries: valid queries of several types, with and without
//!   EDNS (COOKIE, NSID, option garbage) and with 0x20 case, are mutated (bit
//!   flips, truncation, byte insertions and deletions, header counts, label
//!   length bytes, compression pointers, repeated tails; some are left
//!   valid) and sent to a TS and to an LS over UDP (and some over
//!   TCP). Neither server stops answering valid queries; every answer parses,
//!   carries the query's ID and QR=1, and echoes a readable question byte for
//!   byte; a query with QR=1 or without a whole header gets no answer.
//! - Random tables: random names under a zone (mixed case, depths 1-4, so
//!   that empty non-terminals arise) with random A records, served by a TS
//!   and by an LS in front of two TS in the replicated layout (the whole
//!   table on each) and in the partitioned layout (the table split by name):
//!   every name resolves to exactly its records, other types and empty
//!   non-terminals get NODATA, names not in the table get NXDOMAIN, under
//!   each LS strategy.
//!
//! The servers run in a tokio runtime of the test's own; proptest's runner
//! drives the cases from the test thread. The mutation servers are started
//! once and fed every case; the table servers are started per case (a case
//! is a table). Case counts are small and fixed so the file runs in seconds;
//! `PROPTEST_CASES=400` runs a longer hunt. Shrinking is bounded in
//! iterations and time; a failure reports the minimal case.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use dnslb::config::{Layout, Order, Strategy as LsStrategy};

use crate::kit::{STRATEGIES, case_mix, strategy_config};
use crate::kit::{TestLs, TestTs, ZoneDir, a_addrs, start_ls, start_ts, ts_settings, udp_raw_wait};

// ---------------------------------------------------------------------------
// Shared: runtime, runner, wire helpers
// ---------------------------------------------------------------------------

/// A runtime for the servers of one test; the test thread drives the cases.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runner for `cases` cases (or `PROPTEST_CASES` when set, for a longer
/// hunt); a failure shrinks for at most 1000 runs or 60 s.
fn runner(cases: u32) -> TestRunner {
    let defaults = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        defaults.cases
    } else {
        cases
    };
    TestRunner::new(Config {
        cases,
        max_shrink_iters: 1_000,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..defaults
    })
}

/// Runs `cases` cases of `strategy` through `test` (inside `rt`); panics with
/// proptest's report (the minimal failing input) if a case fails.
fn run_cases<S: Strategy>(
    rt: &tokio::runtime::Runtime,
    cases: u32,
    strategy: &S,
    test: impl AsyncFn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let result = runner(cases).run(strategy, |v| rt.block_on(test(v)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The message ID of `raw`.
fn id_of(raw: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*raw.first()?, *raw.get(1)?]))
}

/// Header count `which` (0 QD, 1 AN, 2 NS, 3 AR) of `raw`.
fn count(raw: &[u8], which: usize) -> Option<u16> {
    let at = 4 + 2 * which;
    Some(u16::from_be_bytes([*raw.get(at)?, *raw.get(at + 1)?]))
}

/// The question of `q` (name, type, class) as bytes, when its header says
/// one question and the name is plain labels (no pointer, at most 255 bytes).
fn question_bytes(q: &[u8]) -> Option<&[u8]> {
    if count(q, 0)? != 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = usize::from(*q.get(i)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
    if i + 1 - 12 > 255 {
        return None;
    }
    q.get(12..i + 1 + 4)
}

// ---------------------------------------------------------------------------
// Queries built byte by byte
// ---------------------------------------------------------------------------

/// One EDNS option of a query.
#[derive(Debug, Clone)]
enum EdnsOpt {
    /// COOKIE (10): a client cookie, with or without a server cookie.
    Cookie(Vec<u8>),
    /// NSID (3), empty: asks for the server's identifier.
    Nsid,
    /// Any code, any data, with a length field that may lie.
    Garbage {
        code: u16,
        declared: Option<u16>,
        data: Vec<u8>,
    },
}

/// The OPT record of a query.
#[derive(Debug, Clone)]
struct OptRr {
    size: u16,
    version: u8,
    dnssec_ok: bool,
    options: Vec<EdnsOpt>,
}

/// A valid query, before any mutation.
#[derive(Debug, Clone)]
struct WireQuery {
    id: u16,
    rd: bool,
    /// The name as sent (case kept), without the final dot; empty for the root.
    name: String,
    qtype: u16,
    opt: Option<OptRr>,
}

impl WireQuery {
    fn new(id: u16, name: &str, qtype: RecordType) -> Self {
        WireQuery {
            id,
            rd: false,
            name: name.to_owned(),
            qtype: u16::from(qtype),
            opt: None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.id.to_be_bytes());
        b.push(if self.rd { 0x01 } else { 0 });
        b.push(0);
        let ar = u16::from(self.opt.is_some());
        for c in [1u16, 0, 0, ar] {
            b.extend_from_slice(&c.to_be_bytes());
        }
        for label in self.name.split('.').filter(|l| !l.is_empty()) {
            b.push(label.len() as u8);
            b.extend_from_slice(label.as_bytes());
        }
        b.push(0);
        b.extend_from_slice(&self.qtype.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        if let Some(opt) = &self.opt {
            b.push(0);
            b.extend_from_slice(&41u16.to_be_bytes());
            b.extend_from_slice(&opt.size.to_be_bytes());
            b.push(0);
            b.push(opt.version);
            b.extend_from_slice(&(if opt.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
            let mut rdata = Vec::new();
            for o in &opt.options {
                let (code, declared, data): (u16, Option<u16>, &[u8]) = match o {
                    EdnsOpt::Cookie(c) => (10, None, c),
                    EdnsOpt::Nsid => (3, None, &[]),
                    EdnsOpt::Garbage {
                        code,
                        declared,
                        data,
                    } => (*code, *declared, data),
                };
                rdata.extend_from_slice(&code.to_be_bytes());
                let len = declared.unwrap_or(data.len() as u16);
                rdata.extend_from_slice(&len.to_be_bytes());
                rdata.extend_from_slice(data);
            }
            b.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            b.extend_from_slice(&rdata);
        }
        b
    }
}

// ---------------------------------------------------------------------------
// 1. Mutated queries
// ---------------------------------------------------------------------------

/// The table of the mutation servers: positive names of several types, an
/// empty non-terminal (`m.test`), a CNAME, and an RRset too big for 512 bytes.
const MUT_TABLE: &str = "\
www.m.test    192.0.2.1    A
www.m.test    192.0.2.2    A
mail.m.test   192.0.2.3    A
v6.m.test     2001:db8::1  AAAA
txt.m.test    \"hello, world\"  TXT
alias.m.test  www.m.test   CNAME
ts1.m.test    -            NS
";

/// Names the base queries ask about (`big` is added by [`mut_table`]).
const MUT_NAMES: [&str; 9] = [
    "www.m.test",
    "mail.m.test",
    "v6.m.test",
    "txt.m.test",
    "alias.m.test",
    "m.test",
    "big.m.test",
    "nope.m.test",
    "",
];

/// Query types the base queries ask for (ANY, IXFR, AXFR included).
const MUT_TYPES: [u16; 11] = [1, 28, 16, 5, 2, 6, 15, 255, 251, 252, 65];

/// [`MUT_TABLE`] plus 60 A records at `big.m.test` (over 512 bytes).
fn mut_table() -> String {
    let mut t = MUT_TABLE.to_owned();
    for i in 0..60 {
        t.push_str(&format!("big.m.test 198.51.100.{i} A\n"));
    }
    t
}

/// Mutated queries per case (sent at once), and cases.
const BATCH_MAX: usize = 40;
const MUT_CASES: u32 = 16;
/// The first queries of a batch that also go over TCP (each on its own connection).
const TCP_PER_BATCH: usize = 3;
/// How long a mutated query waits for an answer: the LS's deadline is
/// [`MUT_LS_TIMEOUT_MS`], so anything later is no answer at all.
const MUT_WAIT: Duration = Duration::from_millis(700);
const MUT_LS_TIMEOUT_MS: u64 = 200;
/// How long a valid query waits for an answer (generous: a loaded machine).
const LIVENESS_WAIT: Duration = Duration::from_secs(5);

/// One change to a query's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    Truncate {
        at: Index,
    },
    Insert {
        at: Index,
        byte: u8,
    },
    Delete {
        at: Index,
    },
    SetByte {
        at: Index,
        byte: u8,
    },
    /// A header count: 0 QD, 1 AN, 2 NS, 3 AR.
    Count {
        which: usize,
        value: u16,
    },
    /// The length byte of one label of the question's name.
    LabelLen {
        label: Index,
        value: u8,
    },
    /// The flags bytes (opcode, QR, rcode bits).
    Flags {
        high: u8,
        low: u8,
    },
    /// A compression pointer in place of one label of the question's name
    /// (to anywhere, itself included).
    Pointer {
        label: Index,
        target: u16,
    },
    /// The bytes from `from` to the end appended again (a second OPT, say).
    Repeat {
        from: Index,
    },
}

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>) {
        let len = b.len();
        match self {
            Mutation::FlipBit { at, bit } if len > 0 => b[at.index(len)] ^= 1 << (bit % 8),
            Mutation::Truncate { at } => b.truncate(at.index(len + 1)),
            Mutation::Insert { at, byte } => b.insert(at.index(len + 1), *byte),
            Mutation::Delete { at } if len > 0 => {
                b.remove(at.index(len));
            }
            Mutation::SetByte { at, byte } if len > 0 => b[at.index(len)] = *byte,
            Mutation::Count { which, value } => {
                let i = 4 + 2 * (which % 4);
                if let Some(s) = b.get_mut(i..i + 2) {
                    s.copy_from_slice(&value.to_be_bytes());
                }
            }
            Mutation::LabelLen { label, value } => {
                let starts = label_starts(b);
                if !starts.is_empty() {
                    b[starts[label.index(starts.len())]] = *value;
                }
            }
            Mutation::Flags { high, low } if len >= 4 => {
                b[2] = *high;
                b[3] = *low;
            }
            Mutation::Pointer { label, target } => {
                let starts = label_starts(b);
                if !starts.is_empty() {
                    let at = starts[label.index(starts.len())];
                    let ptr = (0xc000u16 | (target & 0x3fff)).to_be_bytes();
                    b[at] = ptr[0];
                    match b.get_mut(at + 1) {
                        Some(next) => *next = ptr[1],
                        None => b.push(ptr[1]),
                    }
                }
            }
            Mutation::Repeat { from } => {
                let tail = b[from.index(len + 1)..].to_vec();
                b.extend_from_slice(&tail);
            }
            _ => {}
        }
    }
}

/// Offsets of the length bytes of the question name's labels (the final 0 included).
fn label_starts(b: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 12;
    while let Some(&len) = b.get(i) {
        out.push(i);
        if len == 0 || len > 63 {
            break;
        }
        i += 1 + usize::from(len);
    }
    out
}

fn edns_opt() -> impl Strategy<Value = EdnsOpt> {
    prop_oneof![
        prop_oneof![
            prop::collection::vec(any::<u8>(), 8..=8),
            prop::collection::vec(any::<u8>(), 16..=40),
        ]
        .prop_map(EdnsOpt::Cookie),
        Just(EdnsOpt::Nsid),
        (
            any::<u16>(),
            prop::option::weighted(0.3, any::<u16>()),
            prop::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(code, declared, data)| EdnsOpt::Garbage {
                code,
                declared,
                data
            }),
    ]
}

fn opt_rr() -> impl Strategy<Value = OptRr> {
    (
        prop_oneof![Just(512u16), Just(1232), Just(4096), any::<u16>()],
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        any::<bool>(),
        prop::collection::vec(edns_opt(), 0..3),
    )
        .prop_map(|(size, version, dnssec_ok, options)| OptRr {
            size,
            version,
            dnssec_ok,
            options,
        })
}

fn base_query() -> impl Strategy<Value = WireQuery> {
    (
        any::<u16>(),
        any::<bool>(),
        prop::sample::select(MUT_NAMES.to_vec()),
        any::<u64>(),
        prop_oneof![4 => prop::sample::select(MUT_TYPES.to_vec()), 1 => any::<u16>()],
        prop::option::weighted(0.7, opt_rr()),
    )
        .prop_map(|(id, rd, name, mask, qtype, opt)| WireQuery {
            id,
            rd,
            name: case_mix(name, mask),
            qtype,
            opt,
        })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        2 => any::<Index>().prop_map(|at| Mutation::Delete { at }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        2 => (0usize..4, prop_oneof![0u16..4, any::<u16>()])
            .prop_map(|(which, value)| Mutation::Count { which, value }),
        2 => (
            any::<Index>(),
            prop_oneof![Just(0u8), Just(63), Just(64), Just(0xc0), Just(0xff), any::<u8>()],
        )
            .prop_map(|(label, value)| Mutation::LabelLen { label, value }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(high, low)| Mutation::Flags { high, low }),
        1 => (any::<Index>(), prop_oneof![0u16..64, any::<u16>()])
            .prop_map(|(label, target)| Mutation::Pointer { label, target }),
        1 => any::<Index>().prop_map(|from| Mutation::Repeat { from }),
    ]
}

/// A base query and the mutations applied to it, in order.
#[derive(Debug, Clone)]
struct Mutated {
    base: WireQuery,
    mutations: Vec<Mutation>,
}

impl Mutated {
    fn bytes(&self) -> Vec<u8> {
        let mut b = self.base.encode();
        for m in &self.mutations {
            m.apply(&mut b);
        }
        b
    }
}

fn mutated() -> impl Strategy<Value = Mutated> {
    (base_query(), prop::collection::vec(mutation(), 0..=3))
        .prop_map(|(base, mutations)| Mutated { base, mutations })
}

/// What a server sent back for a mutated query, by transport.
#[derive(Default)]
struct Tally {
    sent: u64,
    answered: u64,
    rcodes: BTreeMap<u8, u64>,
}

/// The answer (if any) `server` gave to `q` keeps the rules; `Ok` when it does.
fn check_answer(
    server: &str,
    udp: bool,
    q: &[u8],
    answer: Option<&[u8]>,
) -> Result<(), TestCaseError> {
    let Some(a) = answer else {
        // docs/CONFIG.md (the TS): "A packet too short or unparseable is dropped, or FORMERR
        // where the header is readable", and a packet with QR=1 is never
        // answered. So a query with a whole header and QR=0 gets an answer
        // (FORMERR, NOTIMP, REFUSED or a real one): a client must never wait
        // out its timeout for a query the server could tell was bad.
        prop_assert!(
            q.len() < 12 || q[2] & 0x80 != 0,
            "{server} left a query with a readable header and QR=0 unanswered \
             (docs/CONFIG.md (the TS): FORMERR where the header is readable): {q:02x?}"
        );
        return Ok(());
    };
    prop_assert!(
        q.len() >= 12,
        "{server} answered a query without a whole header: {q:02x?} -> {a:02x?}"
    );
    prop_assert!(
        q[2] & 0x80 == 0,
        "{server} answered a query with QR=1: {q:02x?} -> {a:02x?}"
    );
    let m = Message::from_vec(a).map_err(|e| {
        TestCaseError::fail(format!(
            "{server}: the answer does not parse ({e}): {q:02x?} -> {a:02x?}"
        ))
    })?;
    prop_assert_eq!(
        id_of(a),
        id_of(q),
        "{} answered with another ID: {:02x?} -> {:02x?}",
        server,
        q,
        a
    );
    prop_assert!(a[2] & 0x80 != 0, "{server}: QR=0 in {a:02x?}");
    if udp {
        // The client's UDP size, as far as its query can be read: never exceeded.
        let size = Message::from_vec(q)
            .ok()
            .map_or(512, |m| m.max_payload().max(512));
        prop_assert!(
            a.len() <= usize::from(size),
            "{server}: {} bytes over UDP to a client of {size}: {q:02x?}",
            a.len()
        );
    }
    if let Some(question) = question_bytes(q) {
        let echoed = a.get(12..12 + question.len());
        let rcode = m.response_code;
        if count(a, 0) == Some(0) {
            prop_assert!(
                matches!(rcode, ResponseCode::FormErr | ResponseCode::NotImp),
                "{server} answered {rcode:?} without the question: {q:02x?} -> {a:02x?}"
            );
        } else {
            prop_assert_eq!(
                echoed,
                Some(question),
                "{} did not echo the question byte for byte: {:02x?} -> {:02x?}",
                server,
                q,
                a
            );
        }
    }
    Ok(())
}

/// Sends `q` over a new TCP connection; the first answer, or why none came
/// (connection refused or closed, or nothing within `wait`).
async fn tcp_raw(addr: SocketAddr, q: &[u8], wait: Duration) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(q);
        s.write_all(&framed)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)
            .await
            .map_err(|e| format!("read the length: {e}"))?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf)
            .await
            .map_err(|e| format!("read {} bytes: {e}", buf.len()))?;
        Ok(buf)
    };
    tokio::time::timeout(wait, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("nothing within {wait:?}")))
}

/// Tries a valid query gets before a missed LS deadline counts as a failure.
const LIVENESS_TRIES: u16 = 5;

/// `addr` answers a valid query with its ID, and with the two records of
/// `www.m.test` within [`LIVENESS_TRIES`] tries (an LS under a loaded machine
/// may miss its short deadline once and answer by `on_timeout`).
async fn still_answers(server: &str, addr: SocketAddr, id: u16) -> Result<(), TestCaseError> {
    let want = vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
    let mut last = None;
    for _ in 0..LIVENESS_TRIES {
        let q = WireQuery::new(id, "wWw.M.tEsT", RecordType::A).encode();
        let a = udp_raw_wait(addr, &q, LIVENESS_WAIT).await.ok_or_else(|| {
            TestCaseError::fail(format!("{server} no longer answers a valid query"))
        })?;
        let m = Message::from_vec(&a)
            .map_err(|e| TestCaseError::fail(format!("{server}: valid query, bad answer: {e}")))?;
        prop_assert_eq!(id_of(&a), Some(id), "{}", server);
        if a_addrs_sorted_of(&m) == want {
            return Ok(());
        }
        last = Some(m);
    }
    Err(TestCaseError::fail(format!(
        "{server}: www.m.test A after a batch, {LIVENESS_TRIES} tries, last answer {last:?}"
    )))
}

fn a_addrs_sorted_of(m: &Message) -> Vec<Ipv4Addr> {
    let mut v = a_addrs(m);
    v.sort();
    v
}

/// The servers the mutated queries go to: a TS (with an NSID), and two LS
/// in front of two TS holding the same table (replicated and racing;
/// partitioned and hedging).
struct MutServers {
    ts: TestTs,
    ts2: TestTs,
    ls: TestLs,
    ls2: TestLs,
    _dir: ZoneDir,
}

impl MutServers {
    async fn start() -> Self {
        let dir = ZoneDir::new();
        let table = dir.write("m.txt", &mut_table());
        let mut s = ts_settings(vec![table.clone()]);
        s.nsid = Some("props-ts".into());
        let ts = start_ts(s).await;
        let ts2 = start_ts(ts_settings(vec![table])).await;
        let ls_cfg = |strategy, layout| {
            let mut c = strategy_config(&[("ts", ts.addr), ("ts2", ts2.addr)], strategy, layout);
            c.timeout_ms = MUT_LS_TIMEOUT_MS;
            c
        };
        let ls = start_ls(ls_cfg(LsStrategy::Race, Layout::Replicated)).await;
        let ls2 = start_ls(ls_cfg(LsStrategy::Hedge, Layout::Partitioned)).await;
        MutServers {
            ts,
            ts2,
            ls,
            ls2,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.ls.stop().await;
        self.ls2.stop().await;
        self.ts.stop().await;
        self.ts2.stop().await;
    }
}

/// Answers to mutated queries, by (server, transport).
type Tallies = Mutex<BTreeMap<(&'static str, &'static str), Tally>>;

/// Sends a batch of mutated queries to the TS and both LS at once (UDP, and
/// the first few over TCP), checks every answer, then checks every server
/// still answers a valid query.
async fn check_batch(
    s: &MutServers,
    tally: &Tallies,
    batch: Vec<Mutated>,
) -> Result<(), TestCaseError> {
    let targets = [
        ("ts", s.ts.addr),
        ("ls replicated race", s.ls.addr),
        ("ls partitioned hedge", s.ls2.addr),
    ];
    let mut sends = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        let q = m.bytes();
        for (name, addr) in targets {
            let q = q.clone();
            sends.push(tokio::spawn(async move {
                let a = udp_raw_wait(addr, &q, MUT_WAIT).await;
                (name, "udp", q, a)
            }));
            if i < TCP_PER_BATCH {
                let q = m.bytes();
                sends.push(tokio::spawn(async move {
                    let a = tcp_raw(addr, &q, MUT_WAIT).await.ok();
                    (name, "tcp", q, a)
                }));
            }
        }
    }
    let mut outcomes = Vec::new();
    for h in sends {
        outcomes.push(h.await.expect("a send task"));
    }
    for (server, transport, q, a) in &outcomes {
        {
            let mut t = tally.lock().unwrap();
            let e = t.entry((*server, *transport)).or_default();
            e.sent += 1;
            if let Some(a) = a {
                e.answered += 1;
                *e.rcodes
                    .entry(a.get(3).map_or(0xff, |b| b & 0x0f))
                    .or_default() += 1;
            }
        }
        check_answer(
            &format!("{server} ({transport})"),
            *transport == "udp",
            q,
            a.as_deref(),
        )?;
    }
    for (i, (server, addr)) in targets.into_iter().enumerate() {
        still_answers(server, addr, 0x1234 + i as u16).await?;
    }
    Ok(())
}

#[test]
fn mutated_queries_never_crash_a_server_and_every_answer_echoes_id_and_question() {
    let rt = runtime();
    let servers = rt.block_on(MutServers::start());
    let tally: Tallies = Mutex::new(BTreeMap::new());
    let batch = prop::collection::vec(mutated(), 1..=BATCH_MAX);
    run_cases(&rt, MUT_CASES, &batch, async |b| {
        check_batch(&servers, &tally, b).await
    });
    rt.block_on(servers.stop());
    for ((server, transport), t) in tally.into_inner().unwrap() {
        eprintln!(
            "mutated queries, {server} {transport}: {} sent, {} answered, rcodes {:?}",
            t.sent, t.answered, t.rcodes
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Random tables
// ---------------------------------------------------------------------------

/// The zone every generated name is under (written in random case).
const ZONE: &str = "zone.test";
/// Labels drawn often, so that names share parents.
const LABEL_POOL: [&str; 6] = ["a", "b", "www", "mail", "x-1", "node7"];
const TABLE_CASES: u32 = 40;
/// How long a table query waits for its answer, and the LS's deadline:
/// generous, the property is about what the answer says on a loaded machine.
const TABLE_WAIT: Duration = Duration::from_secs(6);
const TABLE_LS_TIMEOUT_MS: u64 = 4_000;
/// Answers that came truncated over UDP and were asked again over TCP.
static TRUNCATED: AtomicU64 = AtomicU64::new(0);
/// The TTL of every record of a table (the kit's TS default).
const TTL: u32 = 300;

/// A label: from the pool, or a random one of 1-10 letters, digits and
/// inner hyphens; in random case.
fn label() -> impl Strategy<Value = String> {
    let random = (
        prop::collection::vec(
            prop::sample::select(b"abcdefghijklmnopqrstuvwxyz0123456789".to_vec()),
            1..=10,
        ),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(mut v, hyphen)| {
            if let Some(ix) = hyphen.filter(|_| v.len() >= 3) {
                let i = 1 + ix.index(v.len() - 2);
                v[i] = b'-';
            }
            String::from_utf8(v).expect("ascii")
        });
    (
        prop_oneof![3 => prop::sample::select(LABEL_POOL.to_vec()).prop_map(str::to_owned), 1 => random],
        any::<u64>(),
    )
        .prop_map(|(l, mask)| case_mix(&l, mask))
}

/// A name of depth 1-4 under [`ZONE`], spelled in random case.
fn zone_name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..=4), any::<u64>())
        .prop_map(|(labels, mask)| format!("{}.{}", labels.join("."), case_mix(ZONE, mask)))
}

/// One table line's worth: a name, its addresses, and which half of the
/// partitioned layout holds it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    addrs: Vec<Ipv4Addr>,
    first_half: bool,
}

/// A generated table, the names asked that are not in it, and how the LS runs.
#[derive(Debug, Clone)]
struct TableCase {
    entries: Vec<Entry>,
    absent: Vec<String>,
    strategy: LsStrategy,
    order: Order,
    /// Case mask for the spelling of each query.
    query_case: u64,
}

/// An address: random, or one of three (so that a name spelled twice may
/// list the same record twice, which the RRset holds once).
fn addr() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        3 => any::<[u8; 4]>().prop_map(Ipv4Addr::from),
        1 => (1u8..=3).prop_map(|i| Ipv4Addr::new(192, 0, 2, i)),
    ]
}

fn table_case() -> impl Strategy<Value = TableCase> {
    let entry = (
        zone_name(),
        prop_oneof![
            9 => prop::collection::vec(addr(), 1..=3),
            // Too many for 512 bytes: TC=1 over UDP, the whole RRset over TCP.
            1 => prop::collection::vec(addr(), 30..=40),
        ],
        any::<bool>(),
    )
        .prop_map(|(name, addrs, first_half)| Entry {
            name,
            addrs,
            first_half,
        });
    (
        prop::collection::vec(entry, 1..=12),
        prop::collection::vec(zone_name(), 0..=6),
        prop::sample::select(STRATEGIES.to_vec()),
        prop::sample::select(vec![
            Order::LeastOutstanding,
            Order::RoundRobin,
            Order::Fixed,
        ]),
        any::<u64>(),
    )
        .prop_map(|(entries, absent, strategy, order, query_case)| TableCase {
            entries,
            absent,
            strategy,
            order,
            query_case,
        })
}

/// The names of a table (lower case, no final dot) and their address sets.
struct Model {
    names: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// Which half holds each name (the first entry of a name decides).
    first_half: BTreeMap<String, bool>,
}

impl Model {
    fn new(entries: &[Entry]) -> Self {
        let mut names: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        let mut first_half = BTreeMap::new();
        for e in entries {
            let key = e.name.to_ascii_lowercase();
            names
                .entry(key.clone())
                .or_default()
                .extend(e.addrs.iter().copied());
            first_half.entry(key).or_insert(e.first_half);
        }
        Model { names, first_half }
    }

    /// The proper ancestors of the names (down to the TLD) that hold no records.
    fn empty_non_terminals(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in self.names.keys() {
            let mut rest = n.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if !self.names.contains_key(parent) {
                    out.insert(parent.to_owned());
                }
                rest = parent;
            }
        }
        out
    }

    /// The table file of the names `keep` selects, spelled as generated.
    fn table(&self, entries: &[Entry], keep: impl Fn(&str) -> bool) -> String {
        let mut t = String::from("# generated\n");
        for e in entries {
            if keep(&e.name.to_ascii_lowercase()) {
                for a in &e.addrs {
                    t.push_str(&format!("{} {a} A\n", e.name));
                }
            }
        }
        t
    }
}

/// What an answer must be.
#[derive(Debug, Clone)]
enum Expect {
    Records(BTreeSet<Ipv4Addr>),
    NoData,
    NxDomain,
}

/// How a query is sent.
#[derive(Debug, Clone, Copy)]
struct How {
    /// With an OPT (1232 bytes).
    edns: bool,
    /// Over TCP (else UDP, and TCP again if truncated).
    tcp: bool,
}

impl How {
    /// About a third of the queries carry an OPT, a quarter go over TCP,
    /// chosen by the case's `seed` and the query's index.
    fn pick(seed: u64, i: usize) -> Self {
        let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
        How {
            edns: h.is_multiple_of(3),
            tcp: (h >> 32).is_multiple_of(4),
        }
    }
}

/// One query of a table case and its expected answer.
struct Ask {
    name: String,
    qtype: RecordType,
    expect: Expect,
}

fn asks(case: &TableCase, model: &Model) -> Vec<Ask> {
    let ents = model.empty_non_terminals();
    let exists = |n: &str| model.names.contains_key(n) || ents.contains(n);
    let mut out = Vec::new();
    let mut mask = case.query_case;
    let mut spell = |n: &str| {
        mask = mask.rotate_left(7);
        case_mix(n, mask)
    };
    for (n, addrs) in &model.names {
        out.push(Ask {
            name: spell(n),
            qtype: RecordType::A,
            expect: Expect::Records(addrs.clone()),
        });
        out.push(Ask {
            name: spell(n),
            qtype: RecordType::AAAA,
            expect: Expect::NoData,
        });
        let child = format!("nx-child.{n}");
        if exists(&child) {
            continue;
        }
        out.push(Ask {
            name: spell(&child),
            qtype: RecordType::A,
            expect: Expect::NxDomain,
        });
    }
    for n in &ents {
        out.push(Ask {
            name: spell(n),
            qtype: RecordType::A,
            expect: Expect::NoData,
        });
    }
    for n in &case.absent {
        if !exists(&n.to_ascii_lowercase()) {
            out.push(Ask {
                name: spell(n),
                qtype: RecordType::A,
                expect: Expect::NxDomain,
            });
        }
    }
    if !exists("nx-sibling.zone.test") {
        out.push(Ask {
            name: spell("nx-sibling.zone.test"),
            qtype: RecordType::A,
            expect: Expect::NxDomain,
        });
    }
    out
}

/// `server`'s answer to `ask` is what the table says.
async fn check_ask(
    server: &str,
    addr: SocketAddr,
    id: u16,
    ask: &Ask,
    how: How,
) -> Result<(), TestCaseError> {
    let mut wq = WireQuery::new(id, &ask.name, ask.qtype);
    if how.edns {
        wq.opt = Some(OptRr {
            size: 1232,
            version: 0,
            dnssec_ok: false,
            options: Vec::new(),
        });
    }
    let q = wq.encode();
    let tcp_first = how.tcp;
    let ctx = format!(
        "{server} ({}): {} {}",
        if tcp_first { "tcp" } else { "udp" },
        ask.name,
        ask.qtype
    );
    let no_answer = |why: String| TestCaseError::fail(format!("{ctx}: no answer: {why}"));
    let mut a = if tcp_first {
        tcp_raw(addr, &q, TABLE_WAIT).await.map_err(no_answer)?
    } else {
        udp_raw_wait(addr, &q, TABLE_WAIT)
            .await
            .ok_or_else(|| no_answer(format!("nothing within {TABLE_WAIT:?}")))?
    };
    if !tcp_first && a.get(2).is_some_and(|b| b & 0x02 != 0) {
        // Truncated over UDP: the whole answer comes over TCP.
        TRUNCATED.fetch_add(1, Relaxed);
        a = tcp_raw(addr, &q, TABLE_WAIT).await.map_err(no_answer)?;
    }
    let m = Message::from_vec(&a)
        .map_err(|e| TestCaseError::fail(format!("{ctx}: answer does not parse: {e}")))?;
    prop_assert!(!m.truncation, "{ctx}: TC=1 over TCP");
    prop_assert_eq!(
        m.edns.is_some(),
        wq.opt.is_some(),
        "{}: an OPT back if and only if the query had one",
        ctx
    );
    prop_assert_eq!(id_of(&a), Some(id), "{}: ID", ctx);
    let question = question_bytes(&q).expect("a valid query");
    prop_assert_eq!(
        a.get(12..12 + question.len()),
        Some(question),
        "{}: question echoed byte for byte",
        ctx
    );
    prop_assert!(
        m.authoritative,
        "{ctx}: AA=1, a table server's answer: {m:?}"
    );
    let soa_in_authority = m
        .authorities
        .iter()
        .any(|r| matches!(r.data, RData::SOA(_)));
    match &ask.expect {
        Expect::Records(addrs) => {
            prop_assert_eq!(m.response_code, ResponseCode::NoError, "{}", ctx);
            prop_assert_eq!(m.answers.len(), addrs.len(), "{}: {:?}", ctx, m.answers);
            prop_assert_eq!(
                a_addrs_sorted_of(&m),
                addrs.iter().copied().collect::<Vec<_>>(),
                "{}",
                ctx
            );
            prop_assert!(
                m.answers.iter().all(|r| r.ttl == TTL),
                "{ctx}: the table's TTL {TTL}: {:?}",
                m.answers
            );
        }
        Expect::NoData => {
            prop_assert_eq!(m.response_code, ResponseCode::NoError, "{}: NODATA", ctx);
            prop_assert!(m.answers.is_empty(), "{ctx}: NODATA, no answer: {m:?}");
            prop_assert!(soa_in_authority, "{ctx}: NODATA with the SOA: {m:?}");
        }
        Expect::NxDomain => {
            prop_assert_eq!(m.response_code, ResponseCode::NXDomain, "{}", ctx);
            prop_assert!(m.answers.is_empty(), "{ctx}: {m:?}");
            prop_assert!(soa_in_authority, "{ctx}: NXDOMAIN with the SOA: {m:?}");
        }
    }
    Ok(())
}

/// Serves the case's table (a TS directly, an LS over two full copies, an
/// LS over the two halves) and checks every ask through all three.
async fn check_table(case: TableCase) -> Result<(), TestCaseError> {
    let model = Model::new(&case.entries);
    let dir = ZoneDir::new();
    let full = dir.write("full.txt", &model.table(&case.entries, |_| true));
    let half = |first: bool| model.table(&case.entries, |k| model.first_half[k] == first);
    let h1 = dir.write("h1.txt", &half(true));
    let h2 = dir.write("h2.txt", &half(false));
    let full1 = start_ts(ts_settings(vec![full.clone()])).await;
    let full2 = start_ts(ts_settings(vec![full])).await;
    let part1 = start_ts(ts_settings(vec![h1])).await;
    let part2 = start_ts(ts_settings(vec![h2])).await;
    let ls_cfg = |a: &TestTs, b: &TestTs, layout| {
        let mut c = strategy_config(&[("t1", a.addr), ("t2", b.addr)], case.strategy, layout);
        c.order = case.order;
        c.timeout_ms = TABLE_LS_TIMEOUT_MS;
        c
    };
    let repl = start_ls(ls_cfg(&full1, &full2, Layout::Replicated)).await;
    let part = start_ls(ls_cfg(&part1, &part2, Layout::Partitioned)).await;

    let asks = asks(&case, &model);
    let targets = [
        ("the TS", full1.addr),
        ("the LS (replicated)", repl.addr),
        ("the LS (partitioned)", part.addr),
    ];
    let checks = targets.iter().flat_map(|&(server, addr)| {
        asks.iter().enumerate().map(move |(i, ask)| {
            let how = How::pick(case.query_case, i);
            check_ask(server, addr, 0x100 + i as u16, ask, how)
        })
    });
    let results = futures_util::future::join_all(checks).await;

    repl.stop().await;
    part.stop().await;
    for ts in [full1, full2, part1, part2] {
        ts.stop().await;
    }
    results.into_iter().collect()
}

#[test]
fn random_tables_resolve_exactly_through_a_ts_and_an_ls_in_both_layouts() {
    let rt = runtime();
    run_cases(&rt, TABLE_CASES, &table_case(), check_table);
    eprintln!(
        "random tables: {} truncated answers asked again over TCP",
        TRUNCATED.load(Relaxed)
    );
}

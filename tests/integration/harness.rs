//! Shared test harness: in-process servers on 127.0.0.1:0, zone files in a
//! temporary folder, and small DNS clients over real UDP and TCP sockets.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use dnslb::config::{Fault, OnMiss};
use dnslb::server::{self, Listeners, ServerOptions};
use dnslb::ts::{TableServer, TsSettings};

/// How long a test waits for one answer before calling it lost.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// A table server running inside the test process.
pub struct TestTs {
    pub addr: SocketAddr,
    pub ts: Arc<TableServer>,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestTs {
    /// Stops the server and waits for every task of it to end.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for TestTs {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Settings for a TS serving `zones` with every other knob at its default.
pub fn ts_settings(zones: Vec<PathBuf>) -> TsSettings {
    TsSettings {
        name: "test".into(),
        zones,
        origin: Name::root(),
        ttl: 300,
        on_miss: OnMiss::Nxdomain,
        axfr_allow: vec!["127.0.0.0/8".parse().unwrap()],
        notify: Vec::new(),
        fault: Fault::default(),
        nsid: None,
    }
}

/// Starts a TS on 127.0.0.1:0 with `opts` (workers etc.).
pub async fn start_ts_with(settings: TsSettings, opts: ServerOptions) -> TestTs {
    let ts = Arc::new(TableServer::load(settings).expect("zones load"));
    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], opts.workers).unwrap();
    let addr = listeners.local_addrs()[0];
    let token = CancellationToken::new();
    let task = tokio::spawn(server::serve(listeners, ts.clone(), opts, token.clone()));
    TestTs {
        addr,
        ts,
        token,
        task: Some(task),
    }
}

/// Starts a TS on 127.0.0.1:0 with two workers.
pub async fn start_ts(settings: TsSettings) -> TestTs {
    let opts = ServerOptions {
        workers: 2,
        ..ServerOptions::default()
    };
    start_ts_with(settings, opts).await
}

/// A temporary folder holding zone files; removed on drop.
pub struct ZoneDir {
    pub dir: tempfile::TempDir,
}

impl ZoneDir {
    pub fn new() -> Self {
        ZoneDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `text` to `name` in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A query message for `name`/`qtype` with RD=0, optionally with an OPT of `edns_size`.
pub fn query(name: &str, qtype: RecordType, edns_size: Option<u16>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns_size {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// The A addresses of the answer section, in the order they came.
pub fn a_addrs(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The A addresses of the answer section, sorted.
pub fn a_addrs_sorted(m: &Message) -> Vec<Ipv4Addr> {
    let mut v = a_addrs(m);
    v.sort();
    v
}

/// Sends raw bytes over UDP from a fresh socket; the answer, or `None` after [`ANSWER_WAIT`].
pub async fn udp_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_wait(addr, bytes, ANSWER_WAIT).await
}

/// [`udp_raw`] with a chosen wait.
pub async fn udp_raw_wait(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Sends `m` over UDP and decodes the answer (panics if none comes).
pub async fn udp(addr: SocketAddr, m: &Message) -> Message {
    let raw = udp_raw(addr, &m.to_vec().unwrap())
        .await
        .expect("an answer over udp");
    Message::from_vec(&raw).unwrap()
}

/// Sends `m` over a new TCP connection and decodes the first answer.
pub async fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(addr).await.unwrap();
    tcp_send(&mut s, &m.to_vec().unwrap()).await;
    let raw = tcp_recv(&mut s).await.expect("an answer over tcp");
    Message::from_vec(&raw).unwrap()
}

/// Writes one length-prefixed message.
pub async fn tcp_send(s: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.unwrap();
}

/// Reads one length-prefixed message; `None` on EOF or after [`ANSWER_WAIT`].
pub async fn tcp_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let fut = async {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(ANSWER_WAIT, fut).await.ok().flatten()
}

/// A load balancer running inside the test process.
pub struct TestLs {
    pub addr: SocketAddr,
    pub balancer: Arc<dnslb::ls::Balancer>,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestLs {
    /// An LS the caller started (e.g. on an address of its choosing).
    pub fn from_parts(
        addr: SocketAddr,
        balancer: Arc<dnslb::ls::Balancer>,
        token: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        TestLs {
            addr,
            balancer,
            token,
            task: Some(task),
        }
    }

    /// Stops the LS and waits for every task of it to end.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for TestLs {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// An `[ls]` section for `backends` (name, address), every other key at its default.
pub fn ls_config(backends: &[(&str, SocketAddr)]) -> dnslb::config::LsConfig {
    dnslb::config::LsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers: 2,
        backend: backends
            .iter()
            .map(|(name, addr)| dnslb::config::BackendConfig {
                name: (*name).to_owned(),
                addr: *addr,
                weight: 1,
            })
            .collect(),
        ..Default::default()
    }
}

/// Starts an LS on 127.0.0.1:0 with `cfg` (its `listen` is ignored), as
/// `dnslb ls` does: one round of health probes first, then serving.
pub async fn start_ls(cfg: dnslb::config::LsConfig) -> TestLs {
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg));
    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], cfg.workers).unwrap();
    let addr = listeners.local_addrs()[0];
    let first_probe = Duration::from_millis(cfg.health.timeout_ms);
    dnslb::ls::health::first_round(&balancer, first_probe).await;
    let token = CancellationToken::new();
    let task = tokio::spawn(dnslb::ls::serve(
        balancer.clone(),
        listeners,
        dnslb::ls::server_options(&cfg),
        token.clone(),
    ));
    TestLs {
        addr,
        balancer,
        token,
        task: Some(task),
    }
}

/// Whether `q` asks about the root name: the LS's health probe (`. SOA`).
pub fn is_probe(q: &[u8]) -> bool {
    q.get(12) == Some(&0)
}

/// A NOERROR answer with no records to `q` (AA=1): what a stalled backend
/// still sends its health probes.
pub fn empty_answer(q: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(q).unwrap();
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    m.metadata.authoritative = true;
    m.to_vec().unwrap()
}

/// A stalled backend: it answers the LS's health probes (so it counts as
/// up) but never a client query. [`Stalled::mute_probes`] silences the
/// probes too.
pub struct Stalled {
    pub addr: SocketAddr,
    /// Client queries received (probes not counted).
    pub queries: Arc<std::sync::atomic::AtomicU64>,
    probes: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Stalled {
    pub async fn start() -> Stalled {
        use std::sync::atomic::Ordering::Relaxed;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let probes = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (q2, p2) = (queries.clone(), probes.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let q = &buf[..n];
                if !is_probe(q) {
                    q2.fetch_add(1, Relaxed);
                } else if p2.load(Relaxed) {
                    let _ = sock.send_to(&empty_answer(q), from).await;
                }
            }
        });
        Stalled {
            addr,
            queries,
            probes,
            task,
        }
    }

    /// From now on the probes go unanswered too.
    pub fn mute_probes(&self) {
        self.probes
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The variable `scripts/test` (and so CI) sets: a test that cannot run
/// (a program missing, no root) must then fail, so that green means "ran".
pub const REQUIRE_PEERS: &str = "DNSLB_REQUIRE_PEERS";

/// Says that `test` cannot run because of `why` and returns, so the caller
/// returns: a plain `cargo test` on a machine without the program passes,
/// saying so. Under `scripts/test` (`DNSLB_REQUIRE_PEERS=1`) it panics
/// instead: a skip there would turn "not run" into green.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(REQUIRE_PEERS).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "{test}: cannot run ({why}) and {REQUIRE_PEERS} is set: install it (scripts/test does)"
        );
    }
    eprintln!("{test}: SKIPPED, not run: {why}");
}

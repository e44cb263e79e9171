//! Servers in the test process: a TS and an LS on 127.0.0.1:0, stopped
//! by their guard, and zone files in a temporary folder.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use dnslb::config::Fault;
use dnslb::server::{self, Listeners, ServerOptions};
use dnslb::ts::{TableServer, TsSettings};

/// A server's task and the token that stops it: cancelled when dropped.
pub struct Running {
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn new(token: CancellationToken, task: tokio::task::JoinHandle<()>) -> Running {
        Running {
            token,
            task: Some(task),
        }
    }

    /// Cancels the token and waits for the task to end.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A table server running inside the test process.
pub struct TestTs {
    pub addr: SocketAddr,
    pub ts: Arc<TableServer>,
    run: Running,
}

impl TestTs {
    /// Stops the server and waits for every task of it to end.
    pub async fn stop(self) {
        self.run.stop().await;
    }
}

/// Settings for a TS serving `zones` with every other knob at its default.
pub fn ts_settings(zones: Vec<PathBuf>) -> TsSettings {
    TsSettings {
        axfr_allow: vec!["127.0.0.0/8".parse().unwrap()],
        ..TsSettings::for_test(zones)
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
        run: Running::new(token, task),
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

/// A temporary folder holding zone files (or any test files); removed on drop.
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

    /// Copies the file `from` to `name` in the folder and returns its path.
    pub fn copy(&self, name: &str, from: &Path) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::copy(from, &p).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A load balancer running inside the test process.
pub struct TestLs {
    pub addr: SocketAddr,
    pub balancer: Arc<dnslb::ls::Balancer>,
    run: Running,
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
            run: Running::new(token, task),
        }
    }

    /// Stops the LS and waits for every task of it to end.
    pub async fn stop(self) {
        self.run.stop().await;
    }

    /// The answers the LS made up itself (`dnslb_synthesized_total`): a
    /// SERVFAIL or NXDOMAIN at the deadline, no backend's.
    pub fn synthesized(&self) -> u64 {
        let m = self.balancer.metrics();
        m.synthesized.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A TS fault that delays every answer by `ms` and drops none.
pub fn delay_all(ms: u64) -> Fault {
    Fault {
        delay_ms: ms,
        delay_ratio: 1.0,
        drop_ratio: 0.0,
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
                notify_key: None,
                transport: Default::default(),
                tls_name: None,
                ca: None,
                proxy: false,
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
    let first_probe = Duration::from_millis(cfg.health.timeout_ms);
    dnslb::ls::probe::first_round(&balancer, first_probe).await;
    serve_ls(&cfg, balancer, listeners)
}

/// [`start_ls`] with one backend (`name` at `addr`), replicated, under
/// race, with a deadline of `timeout_ms`.
pub async fn start_race_ls(name: &str, addr: SocketAddr, timeout_ms: u64) -> TestLs {
    let mut cfg = ls_config(&[(name, addr)]);
    cfg.strategy = dnslb::config::Strategy::Race;
    cfg.layout = dnslb::config::Layout::Replicated;
    cfg.timeout_ms = timeout_ms;
    start_ls(cfg).await
}

/// An LS listening on `addr` (not port 0: two LSes that list each other
/// need each other's address before either starts), serving at once
/// without a first round of probes.
pub async fn start_ls_at(cfg: dnslb::config::LsConfig, addr: SocketAddr) -> TestLs {
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg));
    let listeners = Listeners::bind(&[addr], cfg.workers).unwrap();
    serve_ls(&cfg, balancer, listeners)
}

/// Spawns `dnslb::ls::serve` on `listeners` (its first address is the LS's).
fn serve_ls(
    cfg: &dnslb::config::LsConfig,
    balancer: Arc<dnslb::ls::Balancer>,
    listeners: Listeners,
) -> TestLs {
    let addr = listeners.local_addrs()[0];
    let token = CancellationToken::new();
    let task = tokio::spawn(dnslb::ls::serve(
        balancer.clone(),
        listeners,
        dnslb::ls::server_options(cfg),
        token.clone(),
    ));
    TestLs::from_parts(addr, balancer, token, task)
}

/// A metrics server running inside the test process on 127.0.0.1:0: an
/// LS's (`/metrics`, `/health`, `/ready`, `/`) or a TS's own (`/metrics`).
pub struct TestMetrics {
    pub addr: SocketAddr,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestMetrics {
    /// Serves `balancer`'s metrics with `extra`.
    pub async fn start(
        balancer: Arc<dnslb::ls::Balancer>,
        extra: dnslb::metrics::StatusExtra,
    ) -> TestMetrics {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(dnslb::metrics::serve(
            listener,
            balancer,
            extra,
            token.clone(),
        ));
        TestMetrics { addr, token, task }
    }

    /// Serves the metrics of a fresh balancer for `cfg` (nothing started).
    pub async fn start_for(cfg: &dnslb::config::LsConfig) -> TestMetrics {
        let balancer = Arc::new(dnslb::ls::Balancer::new(cfg));
        TestMetrics::start(balancer, dnslb::metrics::StatusExtra::default()).await
    }

    /// Serves the table server `ts`'s own `/metrics`.
    pub async fn start_ts(ts: Arc<TableServer>) -> TestMetrics {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(dnslb::metrics::serve_ts(listener, ts, token.clone()));
        TestMetrics { addr, token, task }
    }

    /// Stops the server and waits for it to end.
    pub async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap();
    }
}

/// `[ls.health]` with these four keys, the others at their defaults.
pub fn health_config(
    interval_ms: u64,
    fall: u32,
    rise: u32,
    timeout_ms: u64,
) -> dnslb::config::HealthConfig {
    dnslb::config::HealthConfig {
        interval_ms,
        fall,
        rise,
        timeout_ms,
        ..Default::default()
    }
}

/// [`start_ts`] serving one zone file: `text` written to `name` in `dir`.
pub async fn start_ts_table(dir: &ZoneDir, name: &str, text: &str) -> TestTs {
    start_ts(ts_settings(vec![dir.write(name, text)])).await
}

/// A new zone folder and a TS serving `text` from it as the table `t.txt`
/// (keep the folder while the TS runs).
pub async fn table_ts(text: &str) -> (ZoneDir, TestTs) {
    let dir = ZoneDir::new();
    let ts = start_ts_table(&dir, "t.txt", text).await;
    (dir, ts)
}

/// `N` TSes serving the same table `text` (`t1.txt` .. `tN.txt` in `dir`):
/// replicas of one zone, as an LS's backends are.
pub async fn replicas<const N: usize>(dir: &ZoneDir, text: &str) -> [TestTs; N] {
    let mut all = Vec::with_capacity(N);
    for i in 1..=N {
        all.push(start_ts_table(dir, &format!("t{i}.txt"), text).await);
    }
    all.try_into().unwrap_or_else(|_| unreachable!("N started"))
}

/// Waits until `b` has no query in flight: every copy sent to it answered or
/// settled at its deadline (late entries included), so its counters are
/// final. Panics after 10 s.
pub async fn wait_settled(b: &dnslb::ls::backend::Backend) {
    let settled = super::poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || {
            (b.stats
                .outstanding
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0)
                .then_some(())
        },
    )
    .await;
    assert!(
        settled.is_some(),
        "{}: queries still in flight after 10 s",
        b.name
    );
}

/// An LS run by `dnslb::roles::ls` in the test process, as `dnslb ls -c`
/// runs it, told what to do over `controls` instead of by signals
/// (`Control::Reload` is SIGHUP).
pub struct LsRoleRun {
    /// Its first DNS address.
    pub addr: SocketAddr,
    pub balancer: Arc<dnslb::ls::Balancer>,
    pub ready: dnslb::metrics::Readiness,
    pub controls: tokio::sync::mpsc::UnboundedSender<dnslb::roles::Control>,
    pub task: tokio::task::JoinHandle<Result<(), dnslb::roles::RoleError>>,
}

impl LsRoleRun {
    /// Tells it to stop (as SIGTERM does) and waits for a clean stop; give
    /// its config `drain_s = 0` where the anycast drain is not the point.
    pub async fn stop(self) {
        let _ = self.controls.send(dnslb::roles::Control::Shutdown);
        let end = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        end.expect("the LS stopped").unwrap().expect("a clean stop");
    }
}

/// Starts the LS of the config at `path` in a task (as `dnslb ls -c path`)
/// and waits until it says it serves (panics after 5 s).
pub async fn start_ls_role(path: &Path) -> LsRoleRun {
    let cfg = dnslb::config::Config::load(path).unwrap();
    let sockets = dnslb::roles::ls::LsSockets::bind(cfg.ls.as_ref().unwrap())
        .await
        .unwrap();
    let addr = sockets.dns_addrs()[0];
    let role = dnslb::roles::ls::LsRole::new(cfg).unwrap();
    let (balancer, ready) = (role.balancer().clone(), role.readiness());
    let (controls, rx) = dnslb::roles::Controls::channel();
    let task = tokio::spawn(role.run(sockets, rx));
    let serving = super::poll_until_async(
        Duration::from_secs(5),
        Duration::from_millis(5),
        async || (ready.state() == dnslb::metrics::ReadyState::Serving).then_some(()),
    )
    .await;
    assert!(serving.is_some(), "the LS never said it serves");
    LsRoleRun {
        addr,
        balancer,
        ready,
        controls,
        task,
    }
}

//! The role runners of `dnslb::roles` in-process, driven by a channel of
//! `Control`s instead of signals (what SIGHUP and SIGTERM do to `dnslb ts` and
//! `dnslb ls`, without spawning a process):
//!
//! * a TS reload serves a changed table, and refuses a bad one whole (a good
//!   change in another file of the same reload is not applied either);
//! * a TS reload that changed a zone NOTIFYs the secondaries in `notify`;
//! * an LS reload applies a new `[ls]`, and refuses a bad config (the old
//!   backends keep serving);
//! * an LS told to stop answers the TCP query in flight and takes no new
//!   connection.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use dnslb::config::Fault;
use dnslb::metrics::ReadyState;
use dnslb::roles::ts::{TsRole, TsRun};
use dnslb::roles::{Control, Controls, RoleError};

use crate::kit;
use crate::kit::poll_until_async;
use crate::kit::{
    TestTs, ZoneDir, a_addrs, query, start_ts, tcp_recv, tcp_send, ts_settings, udp, udp_raw_wait,
};

/// How long a control may take to show.
const LIMIT: Duration = Duration::from_secs(5);

/// A role running in a task, told what to do over `controls`.
struct Running {
    controls: UnboundedSender<Control>,
    task: JoinHandle<Result<(), RoleError>>,
}

impl Running {
    fn send(&self, c: Control) {
        self.controls.send(c).unwrap();
    }

    /// Tells it to stop; it must end cleanly.
    async fn shutdown(self) {
        // It may have ended already (told before): then the channel is closed.
        let _ = self.controls.send(Control::Shutdown);
        let end = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        end.expect("the role ended").unwrap().expect("a clean stop");
    }
}

/// Starts the TS of `run` in a task: its address, the table server, and the handle.
async fn start_ts_role(
    run: TsRun,
) -> (SocketAddr, std::sync::Arc<dnslb::ts::TableServer>, Running) {
    let role = TsRole::start(run).await.expect("the TS starts");
    let addr = role.local_addrs()[0];
    let table = role.table().clone();
    let (controls, rx) = Controls::channel();
    let task = tokio::spawn(role.serve(rx));
    (addr, table, Running { controls, task })
}

fn ts_run(zones: Vec<std::path::PathBuf>) -> TsRun {
    TsRun {
        settings: ts_settings(zones),
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        metrics: None,
        workers: 1,
        dnstap: None,
        xdp: Vec::new(),
    }
}

/// The A addresses `addr` answers for `name` over UDP.
async fn a_of(addr: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    a_addrs(&udp(addr, &query(name, RecordType::A, None)).await)
}

/// Asks `name` until the answer is `want` (or [`LIMIT`] passes).
async fn until_answer(addr: SocketAddr, name: &str, want: Ipv4Addr) -> bool {
    poll_until_async(LIMIT, Duration::from_millis(20), async || {
        (a_of(addr, name).await == [want]).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_reload_serves_a_changed_table_and_refuses_a_bad_one_whole() {
    let dir = ZoneDir::new();
    let a = dir.write("a.txt", "www.a.test 192.0.2.1 A\n");
    let b = dir.write("b.txt", "www.b.test 192.0.2.2 A\n");
    let (addr, table, ts) = start_ts_role(ts_run(vec![a.clone(), b.clone()])).await;
    assert_eq!(
        a_of(addr, "www.a.test").await,
        [Ipv4Addr::new(192, 0, 2, 1)]
    );

    dir.write("a.txt", "www.a.test 192.0.2.11 A\n");
    ts.send(Control::Reload);
    assert!(
        until_answer(addr, "www.a.test", Ipv4Addr::new(192, 0, 2, 11)).await,
        "the changed table was not served after the reload"
    );

    // A good change in a.txt, a bad line in b.txt: the reload is refused whole.
    dir.write("a.txt", "www.a.test 192.0.2.21 A\n");
    dir.write("b.txt", "www.b.test not-an-address A\n");
    ts.send(Control::Reload);
    let refused = poll_until_async(LIMIT, Duration::from_millis(10), async || {
        (table.metrics().reloads_refused.load(Relaxed) == 1).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the bad table was not refused");
    assert_eq!(
        a_of(addr, "www.a.test").await,
        [Ipv4Addr::new(192, 0, 2, 11)]
    );
    assert_eq!(
        a_of(addr, "www.b.test").await,
        [Ipv4Addr::new(192, 0, 2, 2)]
    );
    assert_eq!(table.metrics().reloads_applied.load(Relaxed), 1);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_reload_notifies_the_secondaries_of_a_changed_zone() {
    let secondary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = ZoneDir::new();
    let table = dir.write("t.txt", "www.svc.test 192.0.2.1 A\n");
    let mut run = ts_run(vec![table]);
    run.settings.origin = Name::from_ascii("svc.test.").unwrap();
    run.settings.notify = vec![secondary.local_addr().unwrap()];
    let (addr, _, ts) = start_ts_role(run).await;

    // Nothing changed: no NOTIFY.
    ts.send(Control::Reload);
    let mut buf = vec![0u8; 4096];
    let early =
        tokio::time::timeout(Duration::from_millis(300), secondary.recv_from(&mut buf)).await;
    assert!(early.is_err(), "a NOTIFY for a reload that changed nothing");

    dir.write("t.txt", "www.svc.test 192.0.2.2 A\n");
    ts.send(Control::Reload);
    let (n, from) = tokio::time::timeout(LIMIT, secondary.recv_from(&mut buf))
        .await
        .expect("a NOTIFY after the reload")
        .unwrap();
    assert_eq!(from.ip(), addr.ip(), "sent from the listen address");
    let m = Message::from_vec(&buf[..n]).expect("a decodable NOTIFY");
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert_eq!(m.metadata.op_code, OpCode::Notify);
    assert!(m.metadata.authoritative, "AA=1 in a NOTIFY");
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "svc.test.");
    assert_eq!(m.queries[0].query_type(), RecordType::SOA);
    // Acknowledged (echoed with QR=1): the TS stops retrying.
    let mut ack = buf[..n].to_vec();
    ack[2] |= 0x80;
    secondary.send_to(&ack, from).await.unwrap();
    assert!(until_answer(addr, "www.svc.test", Ipv4Addr::new(192, 0, 2, 2)).await);
    ts.shutdown().await;
}

/// A config file at `path` with an `[ls]` on 127.0.0.1:0 (plus `ls_keys`), health
/// probes that wait `probe_ms`, and `backends`.
fn write_ls_config(path: &Path, ls_keys: &str, probe_ms: u64, backends: &[(&str, SocketAddr)]) {
    let mut text = format!(
        "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n{ls_keys}\n\
         [ls.health]\ninterval_ms = 60000\ntimeout_ms = {probe_ms}\n"
    );
    for (name, addr) in backends {
        text.push_str(&format!(
            "[[ls.backend]]\nname = \"{name}\"\naddr = \"{addr}\"\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Starts the LS of the config at `path` in a task (as `dnslb ls -c path`): its
/// DNS address, the role's balancer and readiness, and the handle.
async fn start_ls_role(
    path: &Path,
) -> (
    SocketAddr,
    std::sync::Arc<dnslb::ls::Balancer>,
    dnslb::metrics::Readiness,
    Running,
) {
    let run = kit::start_ls_role(path).await;
    let (controls, task) = (run.controls, run.task);
    (
        run.addr,
        run.balancer,
        run.ready,
        Running { controls, task },
    )
}

/// An in-process TS serving the one-line table `line` (as `file` in `dir`), every
/// answer delayed by `delay_ms`.
async fn ts_serving(dir: &ZoneDir, file: &str, line: &str, delay_ms: u64) -> TestTs {
    let mut settings = ts_settings(vec![dir.write(file, &format!("{line}\n"))]);
    settings.fault = Fault {
        delay_ms,
        delay_ratio: if delay_ms > 0 { 1.0 } else { 0.0 },
        drop_ratio: 0.0,
    };
    start_ts(settings).await
}

/// The names of the LS's backends now.
fn backend_names(balancer: &dnslb::ls::Balancer) -> Vec<String> {
    balancer
        .state()
        .backends
        .iter()
        .map(|b| b.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_reload_applies_a_new_ls_and_refuses_a_bad_config() {
    let dir = ZoneDir::new();
    let one = ts_serving(&dir, "1.txt", "www.r.test 192.0.2.1 A", 0).await;
    let two = ts_serving(&dir, "2.txt", "www.r.test 192.0.2.2 A", 0).await;
    let path = dir.path().join("config.toml");
    write_ls_config(&path, "", 500, &[("one", one.addr)]);
    let (addr, balancer, _, ls) = start_ls_role(&path).await;
    assert_eq!(
        a_of(addr, "www.r.test").await,
        [Ipv4Addr::new(192, 0, 2, 1)]
    );

    write_ls_config(&path, "", 500, &[("two", two.addr)]);
    ls.send(Control::Reload);
    assert!(
        until_answer(addr, "www.r.test", Ipv4Addr::new(192, 0, 2, 2)).await,
        "the new backend does not answer after the reload"
    );
    assert_eq!(backend_names(&balancer), ["two"]);

    // Back to `one`, but with a key out of range: refused whole.
    write_ls_config(&path, "timeout_ms = 0", 500, &[("one", one.addr)]);
    let m = balancer.metrics();
    assert_eq!(m.reloads_applied.load(Relaxed), 1);
    ls.send(Control::Reload);
    let refused = poll_until_async(LIMIT, Duration::from_millis(5), async || {
        (m.reloads_refused.load(Relaxed) == 1).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the bad reload was never refused");
    assert_eq!(m.reloads_applied.load(Relaxed), 1);
    assert_eq!(backend_names(&balancer), ["two"]);
    assert_eq!(
        a_of(addr, "www.r.test").await,
        [Ipv4Addr::new(192, 0, 2, 2)]
    );
    ls.shutdown().await;
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_shutdown_answers_the_tcp_query_in_flight_and_refuses_new_connections() {
    const DELAY_MS: u64 = 1500;
    let dir = ZoneDir::new();
    let ts = ts_serving(&dir, "t.txt", "www.d.test 192.0.2.7 A", DELAY_MS).await;
    let path = dir.path().join("config.toml");
    write_ls_config(
        &path,
        "strategy = \"race\"\ntimeout_ms = 5000",
        3000,
        &[("slow", ts.addr)],
    );
    let (addr, balancer, ready, ls) = start_ls_role(&path).await;

    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut q = query("www.d.test", RecordType::A, None);
    q.metadata.id = 4242;
    tcp_send(&mut conn, &q.to_vec().unwrap()).await;
    let read = poll_until_async(LIMIT, Duration::from_millis(5), async || {
        (balancer.metrics().queries.load(Relaxed) >= 1).then_some(())
    })
    .await;
    assert!(read.is_some(), "the LS never read the query");

    ls.send(Control::Shutdown);
    let stopping = poll_until_async(LIMIT, Duration::from_millis(2), async || {
        (ready.state() == ReadyState::Stopping).then_some(())
    })
    .await;
    assert!(stopping.is_some(), "never stopping after Control::Shutdown");
    let refused = poll_until_async(
        Duration::from_secs(1),
        Duration::from_millis(10),
        async || TcpStream::connect(addr).await.is_err().then_some(()),
    )
    .await;
    assert!(
        refused.is_some(),
        "a new TCP connection was still taken while stopping"
    );
    // A UDP query sent now is never read.
    let late = query("www.d.test", RecordType::A, None).to_vec().unwrap();
    let late_answer = tokio::spawn(async move {
        udp_raw_wait(addr, &late, Duration::from_millis(DELAY_MS + 1000)).await
    });

    let answer = tcp_recv(&mut conn).await;
    let answer = Message::from_vec(&answer.expect("the query in flight got no answer")).unwrap();
    assert_eq!(answer.metadata.id, 4242);
    assert_eq!(a_addrs(&answer), [Ipv4Addr::new(192, 0, 2, 7)]);
    ls.shutdown().await;
    assert_eq!(
        late_answer.await.unwrap(),
        None,
        "a query sent while stopping was answered"
    );
    ts.stop().await;
}

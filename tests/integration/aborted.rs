//! Servers whose task is aborted (dropped) rather than shut down: their UDP
//! worker threads, which run outside the caller's runtime, must stop and
//! free their port too (a "zombie" left answering on a port the kernel
//! later hands to another test's server answered in its place). And a server
//! whose UDP workers wait, idle, in their receive stops at once all the same.
//!
//! Each test starts a server on 127.0.0.1:0, sees it answer, aborts its
//! task and then polls (bounded) until both UDP and TCP can bind its port
//! without SO_REUSEPORT. The caller's stop token stays alive (uncancelled)
//! until the end: only the abort may stop the server.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dnslb::server::{self, Listeners, ServerOptions};
use dnslb::ts::TableServer;
use tokio_util::sync::CancellationToken;

use crate::kit::{
    ZoneDir, ls_config, poll_until_async, port_is_free, start_ls_role, ts_settings, udp_ask,
};

const TABLE: &str = "www.drain.example 10.8.1.1 A\n";

/// Generous: a stopped worker closes its socket at its next wake-up.
const FREED_WITHIN: Duration = Duration::from_secs(20);

/// Waits until `addr` answers a query over UDP (panics after 10 s).
async fn until_answers(addr: SocketAddr) {
    let answered = poll_until_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || udp_ask(addr, "www.drain.example", Duration::from_millis(200)).await,
    )
    .await;
    assert!(answered.is_some(), "{addr} never answered");
}

/// Aborts `task`, waits for it to end, then polls until `addr`'s port is free.
async fn abort_and_see_port_freed<T>(task: tokio::task::JoinHandle<T>, addr: SocketAddr) {
    task.abort();
    let end = task.await;
    assert!(end.is_err_and(|e| e.is_cancelled()), "the task was aborted");
    see_port_freed(addr, "the server's task was aborted").await;
}

/// Polls until `addr`'s port is free, at most [`FREED_WITHIN`] after `what`.
async fn see_port_freed(addr: SocketAddr, what: &str) {
    let freed = poll_until_async(FREED_WITHIN, Duration::from_millis(20), async || {
        port_is_free(addr.port()).then_some(())
    })
    .await;
    assert!(
        freed.is_some(),
        "port {} still bound {FREED_WITHIN:?} after {what}",
        addr.port()
    );
}

/// A table server (`server::serve` with two UDP workers) on 127.0.0.1:0,
/// answering: its task, its address and its stop token.
async fn start_table_server(
    dir: &ZoneDir,
) -> (tokio::task::JoinHandle<()>, SocketAddr, CancellationToken) {
    let ts = Arc::new(TableServer::load(ts_settings(vec![dir.write("t.txt", TABLE)])).unwrap());
    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], 2).unwrap();
    let addr = listeners.local_addrs()[0];
    let token = CancellationToken::new();
    let opts = ServerOptions {
        workers: 2,
        ..ServerOptions::default()
    };
    let task = tokio::spawn(server::serve(listeners, ts, opts, token.clone()));
    until_answers(addr).await;
    (task, addr, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_table_server_frees_its_port() {
    let dir = ZoneDir::new();
    let (task, addr, token) = start_table_server(&dir).await;
    abort_and_see_port_freed(task, addr).await;
    drop(token);
}

/// An idle table server's UDP workers wait in their receive (a wait of up to
/// 30 s) and the stop wakes them: stopping takes far less than that wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_table_server_stops_without_waiting_out_its_receive() {
    let dir = ZoneDir::new();
    let (task, addr, token) = start_table_server(&dir).await;
    // Answered: its worker is back in its receive, and the other never left it.
    token.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the server had not stopped 10 s after its stop"
    );
    see_port_freed(addr, "the stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_ls_frees_its_port() {
    let dir = ZoneDir::new();
    let ts = crate::kit::start_ts_table(&dir, "t.txt", TABLE).await;
    let cfg = ls_config(&[("ts", ts.addr)]);
    let balancer = Arc::new(dnslb::ls::Balancer::new(&cfg));
    let listeners = Listeners::bind(&["127.0.0.1:0".parse().unwrap()], cfg.workers).unwrap();
    let addr = listeners.local_addrs()[0];
    let token = CancellationToken::new();
    let task = tokio::spawn(dnslb::ls::serve(
        balancer,
        listeners,
        dnslb::ls::server_options(&cfg),
        token.clone(),
    ));
    until_answers(addr).await;
    abort_and_see_port_freed(task, addr).await;
    drop(token);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_ls_role_frees_its_port() {
    let dir = ZoneDir::new();
    let ts = crate::kit::start_ts_table(&dir, "t.txt", TABLE).await;
    let path = dir.write(
        "config.toml",
        &format!(
            "[ls]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\n\n\
             [[ls.backend]]\nname = \"ts\"\naddr = \"{}\"\n",
            ts.addr
        ),
    );
    let run = start_ls_role(&path).await;
    until_answers(run.addr).await;
    abort_and_see_port_freed(run.task, run.addr).await;
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_ts_role_frees_its_port() {
    let dir = ZoneDir::new();
    let ts = crate::kit::service_ts::ServiceTs::start(&dir, "drain.example", "").await;
    let (addr, controls, task) = ts.into_parts();
    until_answers(addr).await;
    abort_and_see_port_freed(task, addr).await;
    drop(controls);
}

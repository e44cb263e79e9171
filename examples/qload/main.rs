//! qload: a load client for DNS over QUIC, TLS, HTTP/2 and HTTP/3, as the
//! benchmarks run it (bench/quic): `--connections` connections, opened
//! before the clock starts and reused, each with up to `--inflight` queries
//! outstanding, either a new one as each answer comes (closed loop: the
//! server's peak) or paced evenly at a total `--rate` (open loop: a fixed
//! rate, for CPU per answer). One tokio current-thread runtime a
//! `--threads` (one client core each; pin them with taskset), nothing
//! shared between them. It prints one line of `key=value`s:
//!
//! ```text
//! qload transport=doq connections=4 inflight=32 seconds=4 rate=0 sent=… answered=… other_rcode=… errors=… timeouts=… answers_per_s=… p50_us=… p99_us=… client_cpu=… not_sent=…
//! ```
//!
//! `answered` counts NOERROR and NXDOMAIN answers to their query (its ID and
//! its question, the name in any case), `other_rcode` the rest, `errors`
//! what was not an answer to its query (another question, a reset stream,
//! an HTTP status other than 200, a closed connection), `timeouts` queries
//! with no answer in `--timeout-ms`. A connection that ends is used no more
//! (its queries out are errors, once). `answers_per_s` is `answered` over
//! the whole run: `--seconds`, or the time to the last answer when the
//! queries still out at the end answer later; `client_cpu` the cores qload
//! itself kept busy meanwhile (near 1.0 a thread: the client, not the
//! server, may be the limit). `not_sent` is, paced, how many of the queries
//! `--rate` asks for were never sent (every place in flight taken by
//! queries not answered, or the connection ended): a stalled server shows
//! there; closed loop it is 0.
#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: its result is its output"
)]

mod conns;
mod drive;
mod tls;
mod wire;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::time::Instant;

use crate::conns::{Conn, Target, Transport};
use crate::drive::{Plan, Stats, drive};
use crate::tls::Trust;

/// A DoQ/DoT/DoH2/DoH3 load client (closed loop for a peak, or paced at a rate).
#[derive(Parser, Debug, Clone)]
#[command(name = "qload")]
struct Args {
    /// doq, dot, doh2 or doh3.
    #[arg(long, value_enum)]
    transport: Transport,
    /// The server, ADDR:PORT.
    #[arg(long)]
    server: SocketAddr,
    /// The TLS server name (and the HTTP authority); default the server's address.
    #[arg(long)]
    sni: Option<String>,
    /// Trust certificates this PEM CA file signed.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any certificate.
    #[arg(long)]
    insecure: bool,
    /// The DoH path.
    #[arg(long, default_value = "/dns-query")]
    path: String,
    /// DoH by GET (`?dns=`) instead of POST.
    #[arg(long)]
    get: bool,
    /// The queries, dnsperf's format: "name TYPE" a line, asked in turn.
    #[arg(long)]
    queries: PathBuf,
    /// Connections (all opened before the clock starts).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Queries outstanding at most on each connection.
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// How long queries are sent.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Queries a second in all, evenly spaced (open loop); without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Threads, each a current-thread runtime with its share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A query with no answer after this long counts as a timeout.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// A connection not made (handshake done) in this long fails the run.
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qload: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole run: connections, load, the result line.
fn run(args: Args) -> anyhow::Result<()> {
    if args.connections == 0 || args.inflight == 0 || args.threads == 0 {
        bail!("--connections, --inflight and --threads take a positive number");
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        bail!("--seconds takes a positive number");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate takes a positive number of queries a second");
    }
    if args.ca.is_none() && !args.insecure {
        bail!("say whom to trust: --ca PEM or --insecure");
    }
    let queries = wire::load_queries(&args.queries)?;
    let threads = args.threads.min(args.connections);
    let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<()>>();
    let mut go = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let (go_tx, go_rx) = mpsc::channel::<Option<Instant>>();
        go.push(go_tx);
        let ready = ready_tx.clone();
        let queries = queries.clone();
        let args = args.clone();
        let handle = std::thread::Builder::new()
            .name(format!("qload-{t}"))
            .spawn(move || client_thread(t, threads, &args, &queries, &ready, &go_rx))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut failed = None;
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => failed = failed.or(Some(anyhow::anyhow!("a client thread ended"))),
        }
    }
    // Every connection is up: the clock starts a moment from now for all.
    let start = Instant::now() + Duration::from_millis(20);
    let cpu0 = own_cpu();
    for g in &go {
        let _ = g.send(failed.is_none().then_some(start));
    }
    let mut total = Stats::new();
    for h in handles {
        if let Ok(Some(s)) = h.join() {
            total.merge(s);
        }
    }
    let client_cpu = match (cpu0, own_cpu()) {
        (Some(a), Some(b)) => (b - a) / start.elapsed().as_secs_f64(),
        _ => -1.0,
    };
    if let Some(e) = failed {
        return Err(e.context("connecting"));
    }
    for e in &total.first_errors {
        eprintln!("qload: error: {e}");
    }
    let span = total
        .last
        .map_or(0.0, |l| l.saturating_duration_since(start).as_secs_f64());
    let rate = total.answered as f64 / span.max(args.seconds);
    let asked = args.rate.map_or(0, |r| (r * args.seconds).round() as u64);
    let not_sent = asked.saturating_sub(total.sent);
    // A query or two may miss the deadline by a timer tick: a stall is more.
    if not_sent > asked / 100 {
        eprintln!(
            "qload: sent {} of the {asked} queries --rate asks for",
            total.sent
        );
    }
    let q = |p: f64| {
        if total.latency.is_empty() {
            -1
        } else {
            i64::try_from(total.latency.value_at_quantile(p)).unwrap_or(i64::MAX)
        }
    };
    println!(
        "qload transport={} connections={} inflight={} seconds={} rate={} sent={} answered={} \
         other_rcode={} errors={} timeouts={} answers_per_s={:.0} p50_us={} p99_us={} client_cpu={:.2} not_sent={}",
        format!("{:?}", args.transport).to_lowercase(),
        args.connections,
        args.inflight,
        args.seconds,
        args.rate.unwrap_or(0.0),
        total.sent,
        total.answered,
        total.other_rcode,
        total.errors,
        total.timeouts,
        rate,
        q(0.5),
        q(0.99),
        client_cpu,
        not_sent,
    );
    Ok(())
}

/// This process's CPU time (user and system) so far, seconds.
fn own_cpu() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// Thread `t` of `threads`: opens its connections (every `threads`-th),
/// says so on `ready`, waits for the start on `go`, runs, returns its counts.
fn client_thread(
    t: usize,
    threads: usize,
    args: &Args,
    queries: &[hyper::body::Bytes],
    ready: &mpsc::Sender<anyhow::Result<()>>,
    go: &mpsc::Receiver<Option<Instant>>,
) -> Option<Stats> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return None;
        }
    };
    let local = tokio::task::LocalSet::new();
    let mine: Vec<usize> = (t..args.connections).step_by(threads).collect();
    let target = Target {
        transport: args.transport,
        server: args.server,
        sni: args
            .sni
            .clone()
            .unwrap_or_else(|| args.server.ip().to_string()),
        trust: match &args.ca {
            Some(p) => Trust::Ca(p),
            None => Trust::Any,
        },
        path: args.path.clone(),
        get: args.get,
    };
    let opened = local.block_on(&rt, async {
        let mut conns = Vec::new();
        for k in &mine {
            let wait = Duration::from_millis(args.connect_timeout_ms);
            let c = tokio::time::timeout(wait, Conn::open(&target))
                .await
                .map_err(|_| anyhow::anyhow!("no handshake in {wait:?}"))
                .and_then(|c| c)
                .with_context(|| format!("connection {k} to {}", args.server))?;
            conns.push(c);
        }
        anyhow::Ok(conns)
    });
    let conns = match opened {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return None;
        }
    };
    let start = go.recv().ok().flatten()?;
    let stats = RefCell::new(Stats::new());
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let c = args.connections as f64;
    local.block_on(&rt, async {
        let runs = conns.iter().zip(&mine).map(|(conn, &k)| {
            let pace = args.rate.map(|r| {
                (
                    Duration::from_secs_f64(c / r),
                    Duration::from_secs_f64(k as f64 / r),
                )
            });
            let plan = Plan {
                start,
                deadline,
                pace,
                inflight: args.inflight,
                timeout: Duration::from_millis(args.timeout_ms),
            };
            drive(
                conn,
                queries,
                k * queries.len() / args.connections,
                plan,
                &stats,
            )
        });
        futures_util::future::join_all(runs).await;
        for conn in &conns {
            conn.close();
        }
        // The CONNECTION_CLOSE frames go out before the runtime ends.
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    Some(stats.into_inner())
}

//! The per-client rate limit cannot be dodged (docs/CONFIG.md (the LS) "Protection").
//!
//! 1,000 clients, each a UDP socket bound to its own address in 127.0.0.0/8
//! (the whole /8 is local on Linux), send to an in-process LS in interleaved
//! rounds, so that any two clients sharing a slot of the limiter's table take
//! turns in it. However they share it, no client may get more normal (non-TC)
//! answers than its burst plus its rate over the test's duration.
//!
//! Waits poll the LS's own counters (every query received, every reply sent
//! and received) until a bounded deadline; stopping early only loses answers,
//! which can never make a client look over its limit.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::kit::poll_until_async;
use crate::kit::{TestLs, a_addrs, ls_config, query, start_ls, table_ts};

/// Distinct client addresses.
const CLIENTS: usize = 1000;
/// Queries each client sends, one per round.
const ROUNDS: usize = 8;
/// The limit under test, per client: one query a second, a burst of one.
const QPS: u32 = 1;
/// Clients that send before the sender yields for a moment (keeps the LS's
/// socket buffers from overflowing; a lost query only means fewer answers).
const CHUNK: usize = 50;
/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(10);

/// What one client got back.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Normal answers: NOERROR, TC=0, the record.
    normal: usize,
    /// TC=1 answers with no records ("retry over TCP").
    slipped: usize,
    /// The LS's made-up NXDOMAIN (a forwarded query lost on the way to the
    /// TS under load): not a normal answer, and not a limiter's doing.
    synthesized: usize,
    /// Anything else.
    other: usize,
}

/// Client `i`'s address: 127.0.1.1 .. 127.0.4.250 (every octet pattern of
/// the last byte, including 65..=90 and 97..=122, is used).
fn client_ip(i: usize) -> Ipv4Addr {
    let hi = u8::try_from(1 + i / 250).unwrap();
    let lo = u8::try_from(1 + i % 250).unwrap();
    Ipv4Addr::new(127, 0, hi, lo)
}

fn replies_sent(ls: &TestLs) -> u64 {
    ls.balancer
        .metrics()
        .answers
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_client_gets_more_than_its_rate_plus_burst_however_addresses_collide() {
    let _load = crate::kit::heavy().await;
    let (_dir, ts) = table_ts("rl.example 10.7.0.1 A\n").await;
    let mut cfg = ls_config(&[("ts1", ts.addr)]);
    cfg.rate_limit_qps = QPS;
    let ls = start_ls(cfg).await;

    let mut socks = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let bind = SocketAddr::from((client_ip(i), 0));
        socks.push(Arc::new(UdpSocket::bind(bind).await.unwrap()));
    }
    let tallies = Arc::new(Mutex::new(vec![Tally::default(); CLIENTS]));
    let received = Arc::new(AtomicU64::new(0));
    let last_reply = Arc::new(Mutex::new(None::<Instant>));
    let stop = CancellationToken::new();
    let mut receivers = Vec::with_capacity(CLIENTS);
    for (i, sock) in socks.iter().enumerate() {
        let (sock, tallies, received, last_reply, stop) = (
            sock.clone(),
            tallies.clone(),
            received.clone(),
            last_reply.clone(),
            stop.clone(),
        );
        receivers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = tokio::select! {
                    r = sock.recv_from(&mut buf) => r.unwrap().0,
                    () = stop.cancelled() => return,
                };
                *last_reply.lock().unwrap() = Some(Instant::now());
                let m = Message::from_vec(&buf[..n]).unwrap();
                let mut t = tallies.lock().unwrap();
                let t = &mut t[i];
                if m.truncation && m.answers.is_empty() && m.queries.len() == 1 {
                    t.slipped += 1;
                } else if m.response_code == ResponseCode::NoError
                    && !m.truncation
                    && a_addrs(&m) == vec![Ipv4Addr::new(10, 7, 0, 1)]
                {
                    t.normal += 1;
                } else if m.response_code == ResponseCode::NXDomain && !m.truncation {
                    t.synthesized += 1;
                } else {
                    t.other += 1;
                }
                received.fetch_add(1, Relaxed);
            }
        }));
    }

    // Round r: every client sends its r-th query, in address order, so
    // clients sharing a slot alternate in it.
    let start = Instant::now();
    let mut sent = 0u64;
    for round in 0..ROUNDS {
        for (i, sock) in socks.iter().enumerate() {
            let mut q = query("rl.example", RecordType::A, None);
            q.metadata.id = u16::try_from(round * CLIENTS + i).unwrap();
            sock.send_to(&q.to_vec().unwrap(), ls.addr).await.unwrap();
            sent += 1;
            if i % CHUNK == CHUNK - 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let send_time = start.elapsed();

    // Wait until the LS has dealt with every query that reached it and every
    // reply it sent has arrived.
    let metrics = ls.balancer.metrics();
    let settled = poll_until_async(LIMIT, Duration::from_millis(5), async || {
        let passed = metrics.queries.load(Relaxed);
        let seen = passed + metrics.rate_limited.load(Relaxed);
        // Passed queries are answered later (each one then recorded in the
        // latency histogram); limited ones at once or never.
        let resolved = metrics.client_latency.snapshot().count;
        let replies = replies_sent(&ls);
        (seen == sent && resolved >= passed && received.load(Relaxed) >= replies).then_some(())
    })
    .await;
    stop.cancel();
    for r in receivers {
        r.await.unwrap();
    }
    let seen = metrics.queries.load(Relaxed) + metrics.rate_limited.load(Relaxed);
    let last = last_reply.lock().unwrap().unwrap_or_else(Instant::now);
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    // A client's bucket starts full (one second's worth, at least one) and
    // refills at QPS between its first and last query: both fall in
    // [start, last reply].
    let burst = f64::from(QPS).max(1.0);
    let allowed = (burst + f64::from(QPS) * elapsed).floor() as usize;

    let tallies = tallies.lock().unwrap().clone();
    let mut over: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (i, t) in tallies.iter().enumerate() {
        if t.normal > allowed {
            over.insert(client_ip(i), t.normal);
        }
    }
    let normal: usize = tallies.iter().map(|t| t.normal).sum();
    let slipped: usize = tallies.iter().map(|t| t.slipped).sum();
    let synthesized: usize = tallies.iter().map(|t| t.synthesized).sum();
    let other: usize = tallies.iter().map(|t| t.other).sum();
    let answered = tallies.iter().filter(|t| t.normal > 0).count();
    eprintln!(
        "rate limit {QPS} qps, {CLIENTS} clients x {ROUNDS}: sent in {send_time:?}, \
         {seen} reached the LS (settled: {}), {normal} normal answers, {slipped} TC=1, \
         {synthesized} synthesized, {other} other, over {elapsed:.2} s (allowed {allowed} each)",
        settled.is_some()
    );
    assert!(
        over.is_empty(),
        "{} clients got more than {allowed} normal answers (burst {burst} + {QPS} qps x \
         {elapsed:.2} s), e.g. {:?}",
        over.len(),
        over.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(
        other, 0,
        "answers neither normal, nor TC=1 with no records, nor NXDOMAIN"
    );
    // The test only means something if the clients were served at all: a
    // newcomer's bucket is full, so almost every client's first query passes
    // (a few may be lost in socket buffers under load).
    assert!(
        answered >= CLIENTS * 9 / 10,
        "only {answered} of {CLIENTS} clients got a normal answer"
    );
    assert!(slipped > 0, "no query over the limit was answered TC=1");
    ls.stop().await;
    ts.stop().await;
}

//! Overload is shed at the LS's door, not queued in the backend: each
//! backend's adaptive concurrency limit
//! (`dnslb::ls::backend::limit`) shrinks when its answers come later than
//! its no-load latency allows, and a UDP query no backend has room for is
//! answered SERVFAIL at once, so the answers that are given come in time.
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::kit::{Fake, Reply, ls_config, query, start_ls, wire_answer};

/// The backend's service time per query (one query at a time).
const SERVICE: Duration = Duration::from_millis(1);
/// What the client offers: twice what the backend can answer.
const RATE_PER_MS: u32 = 2;
/// How long it offers it.
const OFFERED: Duration = Duration::from_secs(2);

/// A backend that answers one query at a time, each after [`SERVICE`], in
/// arrival order (a FIFO queue in front of one server, as a saturated NSD),
/// is offered twice its capacity for two seconds through the LS (defaults
/// but one worker and the limit on, 4 to 4,096). Answered queries come without the queue's wait (the
/// 90th percentile under 300 ms; without the limit the queue grows by a
/// second per second, answers come up to the deadline late, 1.5 s, and
/// then not at all), the excess is SERVFAIL at once and counted as shed
/// (`limit`), and the limit on /metrics' source has come down from 4,096.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_backend_is_not_queued_for_the_excess_is_shed_at_once() {
    let _load = crate::kit::heavy().await;
    let started = Instant::now();
    let free_at = Mutex::new(tokio::time::Instant::now());
    let backend = Fake::udp(move |q, _| {
        let now = tokio::time::Instant::now();
        let mut f = free_at.lock().unwrap();
        *f = (*f).max(now) + SERVICE;
        Reply::After(*f - now, wire_answer(q, 0))
    })
    .await;
    let mut cfg = ls_config(&[("queue", backend.addr)]);
    cfg.workers = 1;
    // On (it is off by default), from 4,096; the default floor (256) is
    // above what this small backend can take in its horizon: the floor is
    // the knob's, the mechanism is the test's.
    cfg.backend_limit_max = 4096;
    cfg.backend_limit_min = 4;
    let ls = start_ls(cfg).await;
    let addr = ls.addr;

    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let sent_at: Arc<Mutex<HashMap<u16, Instant>>> = Arc::default();
    let reader = {
        let (sock, sent_at) = (sock.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (mut ok, mut servfail, mut other) = (Vec::new(), 0usize, 0usize);
            let quiet = Duration::from_secs(2);
            while let Ok(Ok((n, _))) = tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await {
                if n < 12 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let Some(t) = sent_at.lock().unwrap().remove(&id) else {
                    continue;
                };
                match buf[3] & 0x0f {
                    0 => ok.push(t.elapsed()),
                    2 => servfail += 1,
                    _ => other += 1,
                }
            }
            (ok, servfail, other)
        })
    };
    // The offered load: RATE_PER_MS queries every millisecond (in batches
    // of 20 every 10 ms).
    let mut id: u16 = 0;
    let t0 = Instant::now();
    while t0.elapsed() < OFFERED {
        for _ in 0..RATE_PER_MS * 10 {
            let mut m = query(&format!("n{id}.a.test"), RecordType::A, None);
            m.metadata.id = id;
            sent_at.lock().unwrap().insert(id, Instant::now());
            sock.send_to(&m.to_vec().unwrap(), addr).await.unwrap();
            id += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut ok, servfail, other) = reader.await.unwrap();
    let m = ls.balancer.metrics();
    let shed = m.shed_limit.load(Relaxed);
    let limit = ls.balancer.state().backends[0].limit.current();
    ok.sort();
    let pct = |p: usize| ok.get(ok.len() * p / 100).copied().unwrap_or_default();
    eprintln!(
        "{id} offered: {} NOERROR (p50 {:?}, p90 {:?}, p99 {:?}), {servfail} SERVFAIL, \
         {other} other, {} unanswered; shed (limit) {shed}; limit now {limit}; {:.1?}",
        ok.len(),
        pct(50),
        pct(90),
        pct(99),
        sent_at.lock().unwrap().len(),
        started.elapsed()
    );
    assert!(shed > 0, "the excess was shed at the door");
    assert!(limit < 4096, "the limit came down: {limit}");
    assert!(
        ok.len() > usize::from(id) / 4,
        "the backend's capacity was used: {} answered",
        ok.len()
    );
    assert!(
        pct(90) < Duration::from_millis(300),
        "answers came without the queue's wait: p90 {:?}",
        pct(90)
    );
    assert_eq!(other, 0, "no made-up answers at the deadline");
    ls.stop().await;
}

//! TCP exchanges with backends (a truncated UDP answer asked again, a TCP
//! client's ANY); UDP goes through the drivers' sockets. A TCP response
//! counts only if it carries the query's ID and question (the same check as
//! on UDP, [`super::accept`], but for the source: the connection is the
//! backend's).
//!
//! TCP connections to a backend are reused ([`TcpConns`], RFC 7766 §6.2.1):
//! queries are pipelined over at most [`TCP_CONNS`] connections per
//! backend, a new one opened only when every open one has [`TCP_PIPELINE`]
//! queries in flight ([`choose`], pure); answers are matched by ID (each
//! query gets a random ID free on its connection) and question. One reader
//! task per connection delivers them; it closes the connection after
//! [`TCP_IDLE`] with nothing in flight, and when the backend closes it (or
//! it breaks) the queries in flight on it alone fail, each asked again on
//! another connection while time remains ([`TCP_TRIES`] at most). A backend
//! that twice closed a connection with queries still unanswered after
//! answering `n` (NSD's `tcp-query-count`, dnsdist's per-connection limit:
//! [`learnt_limit`]) is sent at most `n` queries per connection, for
//! [`PER_CONN_TTL`]; a query that finds every connection used up waits for
//! one to close.
//!
//! Stalls: a connection on which nothing at all was read between a query's
//! write and its deadline is closed then (a hung backend handler, a
//! middlebox that forgot the connection): otherwise each query refreshes it
//! and the idle close never comes. Earlier, once the backend's answers over
//! TCP have a measured round trip: a query still unanswered, with nothing
//! read on its connection, [`stall_after`] that round trip (and a quarter
//! of its time left) leaves the connection (which takes no new queries but
//! keeps waiting for the ones it has) and is asked again on another, once:
//! both copies stay registered and race ([`next`], pure), the first answer
//! of either wins and the other's, if it comes, counts as late. A backend
//! that is only slow has a slow round trip and is waited for. A
//! write cut off mid-frame (its query cancelled) closes the connection too:
//! the backend would read the next query's bytes as the rest of that frame.
//!
//! The ID of a query that ended unanswered stays reserved on its connection
//! until [`LATE_GRACE`] past its deadline: its answer then counts as late,
//! an answer with an ID never sent as a wrong ID ([`unmatched`], pure), the
//! same verdicts as on UDP ([`super::accept`]).
//! Before, every exchange opened a connection of its own: a TCP client's ANY
//! queries left thousands of sockets in TIME_WAIT within seconds, and
//! against a remote backend the ephemeral ports ran out.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept::DropCounters;
use super::error::UpstreamError;

mod conn;
mod dial;
mod lane;
mod policy;
use conn::{Conn, Sent, Ticket, TryError, register, send};
use dial::PlainTcp;
pub use dial::{ConnRead, ConnWrite, Dial, Dialed};
use lane::{Lane, Pick, read_loop};
pub use policy::{
    Choice, Event, Next, PER_CONN_TTL, SHED_MAX, STALL_MIN, TCP_CONNS, TCP_IDLE, TCP_PIPELINE,
    TCP_TRIES, Which, choose, full, learnt_limit, next, rtt_sample, stall_after, unmatched,
};

/// Reused TCP connections to the backends; see the module docs. Its reader
/// tasks stop when it is shut down or dropped.
pub struct TcpConns {
    dial: Arc<dyn Dial>,
    lanes: Mutex<HashMap<SocketAddr, Arc<Lane>>>,
    drops: Arc<DropCounters>,
    token: CancellationToken,
    tracker: TaskTracker,
    /// Connections opened so far.
    pub opened: AtomicU64,
    /// Queries in flight per connection, at most, when capped: a query
    /// that finds every connection full and no more may be opened is
    /// refused at once ([`UpstreamError::Full`], [`full`]), not queued.
    depth: Option<usize>,
}

impl TcpConns {
    /// An empty pool; connections are opened on first use.
    pub fn new(drops: Arc<DropCounters>) -> Self {
        Self::with_dial(drops, Arc::new(PlainTcp))
    }

    /// An empty pool whose connections `dial` opens.
    pub fn with_dial(drops: Arc<DropCounters>, dial: Arc<dyn Dial>) -> Self {
        TcpConns {
            dial,
            lanes: Mutex::new(HashMap::new()),
            drops,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            opened: AtomicU64::new(0),
            depth: None,
        }
    }

    /// An empty pool whose connections `dial` opens, each carrying `depth`
    /// queries at most: past that on every one, with no more to open, a
    /// query is refused at once ([`UpstreamError::Full`]).
    pub fn capped(drops: Arc<DropCounters>, dial: Arc<dyn Dial>, depth: usize) -> Self {
        let mut pool = Self::with_dial(drops, dial);
        pool.depth = Some(depth);
        pool
    }

    /// Closes every connection and waits for the reader tasks.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Connections open now, to every backend.
    pub fn open_connections(&self) -> usize {
        let lanes: Vec<Arc<Lane>> = self.lanes().values().cloned().collect();
        lanes
            .iter()
            .map(|l| l.conns().iter().filter(|c| !c.closed.load(Relaxed)).count())
            .sum()
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<Lane>>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `query` (its ID is replaced) to `addr` over a pooled
    /// connection and waits until `deadline` for the response with its ID
    /// and `question`. A connection that closes under it (or is left as
    /// stalled) is replaced and the query asked again, [`TCP_TRIES`] at most.
    ///
    /// # Errors
    /// [`UpstreamError`]: timeout, connection error, or bad framing.
    pub async fn exchange(
        &self,
        addr: SocketAddr,
        query: &[u8],
        question: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Unusable)?;
        let lane = self.lanes().entry(addr).or_default().clone();
        let reset = || UpstreamError::Io(std::io::ErrorKind::ConnectionReset.into());
        let work = async {
            let mut tries = 0;
            let mut shed = 0;
            // The copy left on a connection suspected stalled: still waited
            // for, raced with the next. A query leaves a connection once at
            // most: the backend may only be slow, and gets two copies at most.
            let mut left: Option<Sent> = None;
            loop {
                tries += 1;
                if self.token.is_cancelled() {
                    return Err(UpstreamError::Unusable);
                }
                let asked = async {
                    let ticket = self.ticket(&lane, addr, question, deadline).await?;
                    send(ticket, len, query).await
                };
                // The left copy's answer is taken while another is asked
                // (its connection closing disables its branch).
                let sent = tokio::select! {
                    biased;
                    Some(resp) = answer_of(&mut left) => {
                        return Ok(lane.answered(&mut left, resp));
                    }
                    s = asked => s,
                };
                let mut sent = match sent {
                    Ok(sent) => sent,
                    Err(TryError::Failed(e)) => return last_chance(&lane, &mut left, e).await,
                    Err(TryError::Shed) if shed < SHED_MAX => {
                        (tries, shed) = (tries - 1, shed + 1);
                        continue;
                    }
                    Err(_) if tries < TCP_TRIES => continue,
                    Err(_) => return last_chance(&lane, &mut left, reset()).await,
                };
                let may_leave = tries < TCP_TRIES && left.is_none();
                match wait(&lane, &mut sent, &mut left, deadline, may_leave).await {
                    Ok(resp) => return Ok(resp),
                    Err(TryError::Stalled) => left = Some(sent),
                    Err(TryError::Shed) if shed < SHED_MAX => (tries, shed) = (tries - 1, shed + 1),
                    Err(TryError::Closed | TryError::Shed) if tries < TCP_TRIES => {}
                    Err(TryError::Closed | TryError::Shed) => {
                        return last_chance(&lane, &mut left, reset()).await;
                    }
                    Err(TryError::Failed(e)) => return Err(e),
                }
            }
        };
        timeout_at(deadline, work)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// The query with `question` registered on a connection to `addr`: an
    /// open one, or a new one, waiting for one to close while every one is
    /// used up.
    async fn ticket(
        &self,
        lane: &Arc<Lane>,
        addr: SocketAddr,
        question: &[u8],
        deadline: Instant,
    ) -> Result<Ticket, TryError> {
        let _opening = loop {
            // Registered before the pick, so a close in between is not missed.
            let closed = lane.closed.notified();
            match lane.pick(question, deadline, self.depth)? {
                Pick::Use(t) => return Ok(t),
                Pick::Full => return Err(TryError::Failed(UpstreamError::Full)),
                Pick::Wait => closed.await,
                Pick::Open => {
                    let opening = lane.opening.lock().await;
                    // Another query may have opened one meanwhile (and
                    // reached the bound): picked again under the lock.
                    let closed = lane.closed.notified();
                    match lane.pick(question, deadline, self.depth)? {
                        Pick::Use(t) => return Ok(t),
                        Pick::Full => return Err(TryError::Failed(UpstreamError::Full)),
                        Pick::Wait => {
                            drop(opening);
                            closed.await;
                        }
                        Pick::Open => break opening,
                    }
                }
            }
        };
        let fail = |e: std::io::Error| TryError::Failed(e.into());
        let (rd, wr) = self.dial.dial(addr).await.map_err(fail)?;
        self.opened.fetch_add(1, Relaxed);
        let conn = Arc::new(Conn {
            writer: tokio::sync::Mutex::new(wr),
            waiting: Mutex::new(HashMap::new()),
            late: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            last_used: AtomicU64::new(crate::ls::backend::clock_ms(Instant::now())),
            reads: AtomicU64::new(0),
            sent: AtomicUsize::new(1),
            answered: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            stop: self.token.child_token(),
        });
        // Its query registered before anyone else sees it: with nothing
        // waiting on it and its limit taken, it would be closed as used up.
        let ticket = register(&conn, question, deadline)?;
        lane.add(conn.clone());
        self.tracker
            .spawn(read_loop(lane.clone(), conn, rd, self.drops.clone()));
        Ok(ticket)
    }
}

impl Drop for TcpConns {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The answer of the `left` copy, if any (`None`: its connection closed,
/// and it is dropped); pending forever without one.
async fn answer_of(left: &mut Option<Sent>) -> Option<Vec<u8>> {
    let Some(l) = left.as_mut() else {
        return std::future::pending().await;
    };
    let answer = (&mut l.rx).await.ok();
    if answer.is_none() {
        *left = None;
    }
    answer
}

/// No other copy can be asked (out of tries, or the backend unreachable):
/// the `left` copy's answer if it has one coming, else `err`.
async fn last_chance(
    lane: &Lane,
    left: &mut Option<Sent>,
    err: UpstreamError,
) -> Result<Vec<u8>, UpstreamError> {
    if left.is_some()
        && let Some(resp) = answer_of(left).await
    {
        return Ok(lane.answered(left, resp));
    }
    Err(err)
}

/// Waits for the answer of `sent` (or of the `left` copy, raced with it)
/// until `deadline` ([`next`]). When it `may_leave`, a connection on which
/// nothing was read within the lane's [`stall_after`] is retired and the
/// query asked again on another (`sent` then becomes the left copy); a
/// connection on which nothing was read by the deadline is closed.
async fn wait(
    lane: &Lane,
    sent: &mut Sent,
    left: &mut Option<Sent>,
    deadline: Instant,
    may_leave: bool,
) -> Result<Vec<u8>, TryError> {
    let time_left = deadline.saturating_duration_since(sent.written);
    let mut check = lane
        .stall_after(time_left)
        .filter(|_| may_leave)
        .map(|after| (sent.written + after).min(deadline));
    loop {
        let (event, resp) = tokio::select! {
            biased;
            a = &mut sent.rx => match a {
                Ok(resp) => (Event::Answer(Which::Current), Some(resp)),
                Err(_) => (Event::Closed(Which::Current), None),
            },
            a = answer_of(left) => match a {
                Some(resp) => (Event::Answer(Which::Left), Some(resp)),
                None => (Event::Closed(Which::Left), None),
            },
            () = tokio::time::sleep_until(deadline) => (Event::Deadline, None),
            () = tokio::time::sleep_until(check.unwrap_or(deadline)), if check.is_some() => {
                let event = Event::StallCheck {
                    nothing_read: sent.nothing_read(),
                    before_deadline: Instant::now() < deadline,
                };
                (event, None)
            }
        };
        match (next(event), resp) {
            (Next::Won(Which::Current), Some(resp)) => {
                lane.observe_rtt(sent.written.elapsed());
                return Ok(resp);
            }
            (Next::Won(Which::Left), Some(resp)) => return Ok(lane.answered(left, resp)),
            (Next::Leave, _) => {
                // No new queries on it; those on it (this one too) wait on.
                sent.registered.conn.retired.store(true, Relaxed);
                return Err(TryError::Stalled);
            }
            (Next::AskAgain, _) => return Err(sent.registered.conn.closed_under_query()),
            (Next::TimedOut, _) => {
                for s in std::iter::once(&*sent).chain(left.iter()) {
                    if s.nothing_read() {
                        s.registered.conn.close();
                    }
                }
                return Err(TryError::Failed(UpstreamError::Timeout));
            }
            (Next::Wait | Next::Won(_), _) => {
                if let Event::StallCheck { .. } = event {
                    check = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pool that has learnt `addr` takes one query per connection, and a
    /// query (`www.test A`) to send it.
    fn one_per_connection(addr: SocketAddr) -> (TcpConns, Vec<u8>) {
        let pool = TcpConns::new(Arc::new(DropCounters::default()));
        let lane = pool.lanes().entry(addr).or_default().clone();
        lane.per_conn.store(1, Relaxed);
        lane.learnt_ms
            .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
        let mut query = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        (pool, query)
    }

    #[tokio::test]
    async fn used_up_connections_are_never_more_than_the_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                counted.fetch_add(1, Relaxed);
                held.push(s); // read nothing, answer nothing
            }
        });
        let (pool, query) = one_per_connection(addr);
        let question = &query[12..];
        let deadline = Instant::now() + Duration::from_millis(300);
        let asks = (0..20).map(|_| pool.exchange(addr, &query, question, deadline));
        for r in futures_util::future::join_all(asks).await {
            assert!(r.is_err(), "nothing answers");
        }
        let opened = pool.opened.load(Relaxed);
        assert!(opened <= TCP_CONNS as u64, "{opened} connections opened");
        assert!(accepted.load(Relaxed) <= TCP_CONNS);
        pool.shutdown().await;
        server.abort();
    }

    /// With a learnt limit of one query per connection, every connection
    /// opened carries its query: none is closed as used up (by its reader
    /// or another query's pick) between its opening and its query's
    /// registration, which cost the query a try and, four times over,
    /// failed it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_opened_for_a_query_carries_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, asked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, q) = (accepted.clone(), asked.clone());
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Relaxed);
                let q = q.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).await.is_ok() {
                        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut msg).await.is_ok() {
                            q.fetch_add(1, Relaxed);
                            msg[2] |= 0x80; // QR: the query echoed as its answer
                            let _ = s.write_all(&len).await;
                            let _ = s.write_all(&msg).await;
                        }
                    }
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest).await;
                });
            }
        });
        let (pool, query) = one_per_connection(addr);
        let question = &query[12..];
        let n = 200;
        let deadline = Instant::now() + Duration::from_secs(20);
        let asks = (0..n).map(|_| pool.exchange(addr, &query, question, deadline));
        let failed = futures_util::future::join_all(asks)
            .await
            .iter()
            .filter(|r| r.is_err())
            .count();
        let (opened, asked) = (accepted.load(Relaxed), asked.load(Relaxed));
        assert!(
            failed == 0 && opened == n && asked == n,
            "{failed} of {n} failed; {opened} connections opened, {asked} carried a query"
        );
        pool.shutdown().await;
        server.abort();
    }
}

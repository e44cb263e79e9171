//! TCP exchanges with backends (a truncated UDP answer asked again, a TCP
//! client's ANY); UDP goes through the drivers' sockets. A TCP response
//! counts only if it carries the query's ID and question (the same check as
//! on UDP, [`super::accept`], but for the source: the connection is the
//! backend's).
//!
//! TCP connections to a backend are reused ([`TcpPool`], RFC 7766 §6.2.1):
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
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept::{self, DropCounters, Reject};
use super::error::UpstreamError;
use super::ids::{LATE_GRACE, LATE_MAX, random_free_id};

mod policy;
pub use policy::{
    Choice, Event, Next, STALL_MIN, Which, choose, learnt_limit, next, rtt_sample, stall_after,
    unmatched,
};

/// Checks a response on a connection against the query it answers (ID
/// `id`, question section `question`).
fn check(resp: &[u8], id: u16, question: &[u8]) -> Result<(), Reject> {
    let h = accept::header(resp)?;
    if h.id != id {
        return Err(Reject::WrongId);
    }
    accept::answers(&h, resp, question)
}

/// The same exchange over a connection of its own, closed after it. For a
/// one-off only: queries on the forwarding path go through [`TcpPool`] (a
/// connection per query runs the ephemeral ports out under load).
///
/// # Errors
/// [`UpstreamError`]: timeout, connection error, or bad framing.
pub async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &[u8],
    deadline: Instant,
    drops: &DropCounters,
) -> Result<Vec<u8>, UpstreamError> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Unusable)?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        s.write_all(&framed).await?;
        loop {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut resp).await?;
            match check(&resp, id, question) {
                Ok(()) => return Ok(resp),
                Err(why) => drops.count(why),
            }
        }
    };
    timeout_at(deadline, work)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

/// Late IDs a connection keeps before it forgets the stale ones.
const LATE_PRUNE: usize = 64;

/// Connections kept open to one backend, at most.
pub const TCP_CONNS: usize = 4;
/// Queries in flight on one connection before another one is opened (the
/// LS's own TCP server allows 64 per connection).
pub const TCP_PIPELINE: usize = 32;
/// A connection with nothing in flight for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// Tries of one exchange at most: a connection that closes under a query
/// (or is left as stalled) is replaced and the query asked again, while its
/// deadline allows.
pub const TCP_TRIES: u32 = 4;
/// Tries not spent (see `TryError::Shed`) of one exchange, at most.
const SHED_MAX: u32 = 16;
/// How long a learnt per-connection limit holds before it is learnt anew
/// (the backend may have been restarted with another one).
pub const PER_CONN_TTL: Duration = Duration::from_secs(60);

/// A query waiting on a connection.
struct Pending {
    question: Vec<u8>,
    tx: oneshot::Sender<Vec<u8>>,
}

/// One TCP connection to a backend.
struct Conn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    waiting: Mutex<HashMap<u16, Pending>>,
    /// IDs of queries that ended unanswered, reserved until when (their
    /// answer, if it comes, is late): locked after `waiting` when both are.
    late: Mutex<HashMap<u16, Instant>>,
    /// Broken, closed by the backend, stalled or idle: takes no more queries.
    closed: AtomicBool,
    /// When a query was last sent on it ([`crate::ls::backend::clock_ms`]).
    last_used: AtomicU64,
    /// Reads that returned bytes so far (a stall shows as no change).
    reads: AtomicU64,
    /// Queries sent on it so far (counted when it is picked).
    sent: AtomicUsize,
    /// Answers delivered on it so far.
    answered: AtomicUsize,
    /// Suspected stalled: takes no new queries, waits for those it has.
    retired: AtomicBool,
    /// Stops its reader (the connection was given up).
    stop: CancellationToken,
}

impl Conn {
    /// Why a query could not be answered on this closed connection: shed
    /// when it answered others first, closed otherwise.
    fn closed_under_query(&self) -> TryError {
        if self.answered.load(Relaxed) > 0 {
            TryError::Shed
        } else {
            TryError::Closed
        }
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u16, Pending>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn late(&self) -> MutexGuard<'_, HashMap<u16, Instant>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.late.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends query `id`'s wait: still unanswered, its ID stays reserved
    /// until `forget_at` (at most [`LATE_MAX`] such, the stale ones
    /// forgotten first).
    fn ended(&self, id: u16, forget_at: Instant) {
        let mut waiting = self.waiting();
        if waiting.remove(&id).is_none() || self.closed.load(Relaxed) {
            return;
        }
        let mut late = self.late();
        if late.len() >= LATE_PRUNE {
            let now = Instant::now();
            late.retain(|_, t| now < *t);
        }
        if late.len() < LATE_MAX {
            late.insert(id, forget_at);
        }
    }

    /// Whether it took its `limit` of queries and answered them all (or was
    /// retired as stalled with nothing left on it): of no more use.
    fn used_up(&self, limit: usize) -> bool {
        let spent = self.sent.load(Relaxed) >= limit || self.retired.load(Relaxed);
        spent && self.waiting().is_empty()
    }

    /// Fails every query in flight (their senders dropped), takes no more,
    /// and stops its reader, which closes it.
    fn close(&self) {
        self.closed.store(true, Relaxed);
        self.waiting().clear();
        self.stop.cancel();
    }
}

/// Closes a connection whose write was cut off mid-frame (dropped before
/// [`Self::done`]).
struct Writing<'a>(Option<&'a Conn>);

impl Writing<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            conn.close();
        }
    }
}

/// Removes a query from its connection's table however its exchange ends
/// (unanswered, its ID reserved: [`Conn::ended`]).
struct Registered {
    conn: Arc<Conn>,
    id: u16,
    /// Its deadline plus [`LATE_GRACE`].
    forget_at: Instant,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conn.ended(self.id, self.forget_at);
    }
}

/// A query written on a connection, waiting for its answer.
struct Sent {
    registered: Registered,
    rx: oneshot::Receiver<Vec<u8>>,
    written: Instant,
    /// The connection's reads when it was written.
    reads: u64,
}

impl Sent {
    /// Whether nothing was read on its connection since its write.
    fn nothing_read(&self) -> bool {
        self.registered.conn.reads.load(Relaxed) == self.reads
    }
}

/// The connections to one backend.
struct Lane {
    conns: Mutex<Vec<Arc<Conn>>>,
    /// One connection opened at a time (a burst of queries waits for it
    /// rather than opening one each).
    opening: tokio::sync::Mutex<()>,
    /// Queries the backend takes per connection ([`learnt_limit`];
    /// `usize::MAX` until learnt, and again [`PER_CONN_TTL`] after).
    per_conn: AtomicUsize,
    /// Answers before its last early close (`usize::MAX`: none yet).
    early_close: AtomicUsize,
    /// When `per_conn` was learnt ([`crate::ls::backend::clock_ms`]).
    learnt_ms: AtomicU64,
    /// RFC 6298 estimators of its TCP round trip, µs (`u64::MAX`: none yet).
    srtt_us: AtomicU64,
    rttvar_us: AtomicU64,
    /// A connection closed: a query waiting for one may go on.
    closed: tokio::sync::Notify,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            conns: Mutex::default(),
            opening: tokio::sync::Mutex::default(),
            per_conn: AtomicUsize::new(usize::MAX),
            early_close: AtomicUsize::new(usize::MAX),
            learnt_ms: AtomicU64::new(0),
            srtt_us: AtomicU64::new(u64::MAX),
            rttvar_us: AtomicU64::new(0),
            closed: tokio::sync::Notify::new(),
        }
    }
}

/// Where a query goes on a lane now.
enum Pick {
    Use(Arc<Conn>),
    Open,
    /// Every connection is used up (its per-connection limit reached) and
    /// no more may be opened: wait for one to close.
    Wait,
}

impl Lane {
    fn conns(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection [`choose`] picks among those that take queries
    /// (counted as sent on it at once), or to open one, or to wait.
    fn pick(&self) -> Pick {
        let mut conns = self.conns();
        let limit = self.limit();
        for c in conns.iter().filter(|c| c.used_up(limit)) {
            c.close(); // nothing more to send or to wait for on it
        }
        conns.retain(|c| !c.closed.load(Relaxed));
        let usable: Vec<&Arc<Conn>> = conns
            .iter()
            .filter(|c| !c.retired.load(Relaxed) && c.sent.load(Relaxed) < limit)
            .collect();
        let spent = conns.len() - usable.len();
        if usable.is_empty() && conns.len() >= TCP_CONNS {
            return Pick::Wait;
        }
        let loads: Vec<usize> = usable.iter().map(|c| c.waiting().len()).collect();
        match choose(&loads, TCP_CONNS.saturating_sub(spent), TCP_PIPELINE) {
            Choice::Use(i) => match usable.get(i) {
                Some(&c) => {
                    c.sent.fetch_add(1, Relaxed);
                    Pick::Use(c.clone())
                }
                None => Pick::Open,
            },
            Choice::Open => Pick::Open,
        }
    }

    /// The per-connection limit now: forgotten [`PER_CONN_TTL`] after it
    /// was learnt.
    fn limit(&self) -> usize {
        let limit = self.per_conn.load(Relaxed);
        let age = crate::ls::backend::clock_ms(Instant::now())
            .saturating_sub(self.learnt_ms.load(Relaxed));
        if limit != usize::MAX && Duration::from_millis(age) >= PER_CONN_TTL {
            self.per_conn.store(usize::MAX, Relaxed);
            self.early_close.store(usize::MAX, Relaxed);
            return usize::MAX;
        }
        limit
    }

    /// The backend closed a connection with queries unanswered after
    /// answering `answered` on it.
    fn closed_early(&self, answered: usize) {
        let before = self.early_close.swap(answered, Relaxed);
        if let Some(n) = learnt_limit(before, answered) {
            self.learnt_ms
                .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
            self.per_conn.fetch_min(n, Relaxed);
        }
    }

    /// The connection of a query with `time_left` is suspected stalled
    /// after this long, if any yet.
    fn stall_after(&self, time_left: Duration) -> Option<Duration> {
        let srtt = self.srtt_us.load(Relaxed);
        let rtt = (srtt != u64::MAX).then(|| {
            let var = self.rttvar_us.load(Relaxed);
            (Duration::from_micros(srtt), Duration::from_micros(var))
        });
        stall_after(rtt, time_left)
    }

    /// Feeds an answer's round trip to the estimators (racing updates may
    /// lose a sample: harmless).
    fn observe_rtt(&self, rtt: Duration) {
        let srtt = self.srtt_us.load(Relaxed);
        let est = (srtt != u64::MAX).then(|| (srtt, self.rttvar_us.load(Relaxed)));
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        let (srtt, rttvar) = rtt_sample(est, sample);
        self.rttvar_us.store(rttvar, Relaxed);
        self.srtt_us.store(srtt.min(u64::MAX - 1), Relaxed);
    }

    /// The left copy's answer `resp` won: its round trip observed.
    fn answered(&self, left: &mut Option<Sent>, resp: Vec<u8>) -> Vec<u8> {
        if let Some(l) = left.as_ref() {
            self.observe_rtt(l.written.elapsed());
        }
        resp
    }
}

/// Why one try on a connection gave no answer.
enum TryError {
    /// The connection closed or broke before the answer: try another.
    Closed,
    /// The connection closed before the answer after answering others (the
    /// backend's per-connection limit, not a failure): try another without
    /// spending a try, [`SHED_MAX`] times at most.
    Shed,
    /// Nothing read on the connection for too long: try another.
    Stalled,
    /// Anything else.
    Failed(UpstreamError),
}

/// Reused TCP connections to the backends; see the module docs. Its reader
/// tasks stop when it is shut down or dropped.
pub struct TcpPool {
    lanes: Mutex<HashMap<SocketAddr, Arc<Lane>>>,
    drops: Arc<DropCounters>,
    token: CancellationToken,
    tracker: TaskTracker,
    /// Connections opened so far.
    pub opened: AtomicU64,
}

impl TcpPool {
    /// An empty pool; connections are opened on first use.
    pub fn new(drops: Arc<DropCounters>) -> Self {
        TcpPool {
            lanes: Mutex::new(HashMap::new()),
            drops,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            opened: AtomicU64::new(0),
        }
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
                    let conn = self.conn(&lane, addr).await.map_err(TryError::Failed)?;
                    send(conn, len, query, question, deadline).await
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

    /// A connection to `addr` for one more query: an open one, or a new
    /// one, waiting for one to close while every one is used up.
    async fn conn(&self, lane: &Arc<Lane>, addr: SocketAddr) -> Result<Arc<Conn>, UpstreamError> {
        let _opening = loop {
            // Registered before the pick, so a close in between is not missed.
            let closed = lane.closed.notified();
            match lane.pick() {
                Pick::Use(c) => return Ok(c),
                Pick::Wait => closed.await,
                Pick::Open => {
                    let opening = lane.opening.lock().await;
                    // Another query may have opened one meanwhile (and
                    // reached the bound): picked again under the lock.
                    let closed = lane.closed.notified();
                    match lane.pick() {
                        Pick::Use(c) => return Ok(c),
                        Pick::Wait => {
                            drop(opening);
                            closed.await;
                        }
                        Pick::Open => break opening,
                    }
                }
            }
        };
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        self.opened.fetch_add(1, Relaxed);
        let (rd, wr) = s.into_split();
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
        lane.conns().push(conn.clone());
        self.tracker.spawn(read_loop(
            lane.clone(),
            conn.clone(),
            rd,
            self.drops.clone(),
        ));
        Ok(conn)
    }
}

impl Drop for TcpPool {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Registers a query on `conn` under a free random ID, due by `deadline`,
/// and writes it.
async fn send(
    conn: Arc<Conn>,
    len: u16,
    query: &[u8],
    question: &[u8],
    deadline: Instant,
) -> Result<Sent, TryError> {
    let (tx, rx) = oneshot::channel();
    let id = {
        let mut waiting = conn.waiting();
        if conn.closed.load(Relaxed) {
            return Err(conn.closed_under_query());
        }
        let id = {
            let late = conn.late();
            random_free_id(|id| !waiting.contains_key(&id) && !late.contains_key(&id))
        }
        .ok_or(TryError::Failed(UpstreamError::Unusable))?;
        waiting.insert(
            id,
            Pending {
                question: question.to_vec(),
                tx,
            },
        );
        id
    };
    let registered = Registered {
        conn,
        id,
        forget_at: deadline + LATE_GRACE,
    };
    let conn = &registered.conn;
    conn.last_used
        .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    if let Some(b) = framed.get_mut(2..4) {
        b.copy_from_slice(&id.to_be_bytes());
    }
    {
        let mut writer = conn.writer.lock().await;
        let writing = Writing(Some(conn));
        if writer.write_all(&framed).await.is_err() {
            return Err(TryError::Closed); // `writing` closes it
        }
        writing.done();
    }
    let reads = conn.reads.load(Relaxed);
    Ok(Sent {
        registered,
        rx,
        written: Instant::now(),
        reads,
    })
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

/// Reads `conn`'s responses and hands each to the query it answers, until
/// the backend closes it, it breaks, it has been idle for [`TCP_IDLE`], or
/// it is stopped (given up, or the pool shut down); then fails the queries
/// still in flight on it.
async fn read_loop(
    lane: Arc<Lane>,
    conn: Arc<Conn>,
    mut rd: OwnedReadHalf,
    drops: Arc<DropCounters>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Whole frames first.
        while let Some(&[hi, lo]) = buf.get(..2) {
            let n = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(resp) = buf.get(2..2 + n) else {
                break;
            };
            deliver(&conn, resp, &drops);
            buf.drain(..2 + n);
        }
        let since = Duration::from_millis(
            crate::ls::backend::clock_ms(Instant::now())
                .saturating_sub(conn.last_used.load(Relaxed)),
        );
        let idle = since >= TCP_IDLE && conn.waiting().is_empty();
        if idle || conn.used_up(lane.limit()) {
            break;
        }
        let idle_at = Instant::now() + TCP_IDLE.saturating_sub(since).max(Duration::from_millis(1));
        tokio::select! {
            () = conn.stop.cancelled() => break,
            // `read` is cancel-safe: a byte is either in `chunk` or still in the socket.
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => {
                    // Closed by the backend with queries unanswered, after
                    // answering some: its limit per connection.
                    if !conn.waiting().is_empty() {
                        lane.closed_early(conn.answered.load(Relaxed));
                    }
                    break;
                }
                Ok(n) => {
                    conn.reads.fetch_add(1, Relaxed);
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
            },
            () = tokio::time::sleep_until(idle_at) => {}
        }
    }
    conn.close();
    lane.closed.notify_waiters();
    // Dropping the write half (with the last reference) closes the connection.
    let _ = conn.writer.lock().await.shutdown().await;
}

/// Hands one response to the query on `conn` with its ID, if it carries
/// that query's question; drops it (counted) otherwise.
fn deliver(conn: &Conn, resp: &[u8], drops: &DropCounters) {
    let h = match accept::header(resp) {
        Ok(h) => h,
        Err(why) => return drops.count(why),
    };
    let mut waiting = conn.waiting();
    let Some(p) = waiting.get(&h.id) else {
        // Its query gave up (deadline, a hedge won, its other copy won)
        // before the answer came, or the ID was never sent.
        let forget_at = conn.late().remove(&h.id);
        return drops.count(unmatched(forget_at, Instant::now()));
    };
    if let Err(why) = accept::answers(&h, resp, &p.question) {
        return drops.count(why);
    }
    if let Some(p) = waiting.remove(&h.id) {
        conn.answered.fetch_add(1, Relaxed);
        let _ = p.tx.send(resp.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let pool = TcpPool::new(Arc::new(DropCounters::default()));
        let lane = pool.lanes().entry(addr).or_default().clone();
        lane.per_conn.store(1, Relaxed);
        lane.learnt_ms
            .store(crate::ls::backend::clock_ms(Instant::now()), Relaxed);
        let question = b"\x03www\x04test\x00\x00\x01\x00\x01";
        let mut query = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(question);
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
}
